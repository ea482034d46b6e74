//! Black-box tests of the control plane over real HTTP, with real brokers and real databases.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod helpers;
mod kafka;

mod accounts;
mod authorization;
mod bad_input;
mod clusters;
mod crash_safety;
mod credentials;
mod database_outage;
mod gateway;
mod kafka_clients;
mod openapi;
mod overload;
mod persistence;
mod schema_registry;
mod topics;
