//! The Kafka protocol as Capstan speaks it, on the `kafka-protocol` crate:
//!
//! - [`Connection`]: an authenticated client connection to one broker (SASL/SCRAM-SHA-512);
//! - the admin reads and changes the control plane needs: [`read_offsets`] (metering),
//!   [`stored_bytes`] (DescribeLogDirs), [`upsert_scram_user`] / [`delete_scram_user`],
//!   [`grant_acls`] / [`revoke_acls`] (a credential's scope as ACLs), [`set_user_quotas`], and
//!   [`pool_names`] / [`delete_prefixed`] (a shared pool's names per tenant),
//!   [`restart_check`] (whether a node can restart without losing min ISR or the quorum),
//!   [`unregister_broker`] (a removed broker's registration) and
//!   [`GroupOffsets`] (committed offsets read often, on kept connections);
//! - [`scram`]: SCRAM-SHA-256/512 arithmetic for both sides;
//! - [`gateway`]: the Kafka gateway's engine, which the control plane drives through
//!   [`gateway::Policy`].
//!
//! It depends on nothing else of Capstan.

mod acls;
mod availability;
mod brokers;
mod client_quotas;
mod connection;
mod error;
pub mod failpoint;
pub mod gateway;
mod group_offsets;
mod log_dirs;
mod membership;
mod offsets;
mod pool_names;
pub mod scram;
mod scram_users;
mod tls;

pub use acls::{AclRule, acl_rules, grant_acls, revoke_acls};
pub use availability::{Availability, QUORUM_FETCH_TIMEOUT_MS, RestartCheck, restart_check};
pub use client_quotas::set_user_quotas;
pub use connection::{Connection, Credentials, Exchange};
pub use error::{Error, Result};
pub use group_offsets::GroupOffsets;
pub use log_dirs::stored_bytes;
pub use membership::unregister_broker;
pub use offsets::{CommittedOffset, PartitionOffsets, Snapshot, read as read_offsets};
pub use pool_names::{PoolNames, delete_prefixed, pool_names};
pub use scram::salted_password;
pub use scram_users::{delete_scram_user, upsert_scram_user};
pub use tls::Tls;
