//! Capstan's metering (and, as it arrives, pricing and billing).
//!
//! The collector reads every cluster's counters over the Kafka protocol and turns them into
//! exactly-once usage: it keeps a cursor per partition (and per group-partition) and writes each
//! cursor with the usage it accounts for in one transaction. It depends on nothing else of
//! Capstan: the clusters to sweep and their stored bytes are handed to it through [`Fleet`].

pub mod audit;
pub mod customers;
pub mod enforcement;
pub mod invoices;
pub mod ledger;
pub mod metering;
pub mod pricing;
pub mod stripe;

pub use metering::{ClusterTarget, Collector, Fleet, Meter};

/// Result with the crate's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What can go wrong while metering.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Reading a cluster's brokers failed.
    #[error(transparent)]
    Kafka(#[from] capstan_kafka::Error),
    /// A database error.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// The fleet (the control plane) could not list clusters or stored bytes.
    #[error("fleet: {0}")]
    Fleet(String),
    /// A value given by the caller is invalid.
    #[error("{0}")]
    Invalid(String),
    /// Stripe was unreachable or refused a request.
    #[error("{0}")]
    Stripe(String),
    /// Something asked for does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
}
