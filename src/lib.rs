//! The `capstan` binary's library side: the platform wired together, so end-to-end tests drive
//! exactly what the binary runs.

pub mod enforcement;
pub mod kubernetes;
pub mod platform;
