//! Client quotas on Apache Kafka (AlterClientQuotas, KIP-546), for dedicated clusters held to
//! the limited allowance at their price cap or past the free plan's day: the brokers then
//! throttle those users themselves, the way the Kafka gateway throttles everyone else
//! (KIP-219). Kafka's quotas are bytes per second per broker, not messages, so the caller
//! chooses the bytes that stand for its message allowance.

use kafka_protocol::{
    messages::{
        AlterClientQuotasRequest,
        alter_client_quotas_request::{EntityData, EntryData, OpData},
    },
    protocol::StrBytes,
};

use crate::{
    Error, Result,
    connection::{Credentials, error_text},
};

/// The quota keys set: produce and fetch bandwidth.
const KEYS: [&str; 2] = ["producer_byte_rate", "consumer_byte_rate"];

fn entry(username: &str, bytes_per_second: Option<u64>) -> EntryData {
    let entity = EntityData::default()
        .with_entity_type(StrBytes::from_static_str("user"))
        .with_entity_name(Some(StrBytes::from_string(username.to_owned())));
    let ops = KEYS
        .iter()
        .map(|key| {
            let op = OpData::default().with_key(StrBytes::from_static_str(key));
            match bytes_per_second {
                Some(rate) => op.with_value(rate as f64),
                None => op.with_remove(true),
            }
        })
        .collect();
    EntryData::default().with_entity(vec![entity]).with_ops(ops)
}

/// Limits each of `usernames` to `bytes_per_second` produced and as much fetched (per broker),
/// or removes those limits with `None`, authenticating as the admin user of `credentials`.
/// Setting what is already set, or removing what is not there, changes nothing.
pub async fn set_user_quotas(
    credentials: &Credentials,
    usernames: &[String],
    bytes_per_second: Option<u64>,
) -> Result<()> {
    if usernames.is_empty() {
        return Ok(());
    }
    let entries = usernames
        .iter()
        .map(|username| entry(username, bytes_per_second))
        .collect();
    let response = credentials
        .connect()
        .await?
        .call(AlterClientQuotasRequest::default().with_entries(entries), 0)
        .await?;
    match response.entries.into_iter().find(|e| e.error_code != 0) {
        Some(refused) => Err(Error::Protocol(format!(
            "the broker refused a client quota: {}",
            error_text(refused.error_message, refused.error_code)
        ))),
        None => Ok(()),
    }
}
