//! Brokers leaving a KRaft cluster for good: once a removed broker's process is gone, its
//! registration stays in the metadata (fenced) until it is unregistered (UnregisterBroker,
//! KIP-500's `kafka-cluster.sh unregister`), which a broker forwards to the active controller.

use kafka_protocol::messages::{BrokerId, UnregisterBrokerRequest};

use crate::connection::{Credentials, error_text};
use crate::{Error, Result};

/// The broker's answer for an id the controllers do not know (never registered, or already
/// unregistered).
const BROKER_ID_NOT_REGISTERED: i16 = 102;

/// Unregisters broker `node`, authenticating as the admin user of `credentials`: true when it
/// was registered, false when the controllers did not know it (so calling it again is safe).
pub async fn unregister_broker(credentials: &Credentials, node: i32) -> Result<bool> {
    let response = credentials
        .connect()
        .await?
        .call(
            UnregisterBrokerRequest::default().with_broker_id(BrokerId(node)),
            0,
        )
        .await?;
    match response.error_code {
        0 => Ok(true),
        BROKER_ID_NOT_REGISTERED => Ok(false),
        code => Err(Error::Protocol(format!(
            "the cluster refused to unregister broker {node}: {}",
            error_text(response.error_message, code)
        ))),
    }
}
