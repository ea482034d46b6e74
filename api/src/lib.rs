//! Capstan's control plane: accounts, API keys and sessions, the provisioning API
//! (`/v2/kafka/…`, shaped like Upstash's Developer API), the store (SQLite or PostgreSQL) and
//! the provisioners that turn clusters into running brokers.
//!
//! The binary builds [`app::Settings`] and runs an [`app::Application`].

#![recursion_limit = "256"] // the OpenAPI document is one large json! literal

pub mod accounts;
pub mod api_keys;
pub mod app;
pub mod billing;
pub mod client_address;
pub mod client_quotas;
pub mod clusters;
pub mod concurrency;
pub mod credentials;
pub mod crypto;
mod error;
pub mod extract;
pub use capstan_kafka::failpoint;
pub mod gateway;
pub mod invoice_page;
pub mod journal;
pub mod kafka_admin;
pub mod kafka_policy;
pub mod listener;
pub mod login_limit;
pub mod mail;
pub mod metrics;
pub mod names;
pub mod openapi;
pub mod orphans;
pub mod password_reset;
pub mod plans;
pub mod provisioner;
pub mod routes;
pub mod schema_registry;
pub mod sessions;
pub mod sign_up;
pub mod state;
pub mod stats;
pub mod store;
pub mod topics;
pub mod usage;

pub use error::{Error, Result, cause_chain};
