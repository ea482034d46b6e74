//! SCRAM users on Apache Kafka brokers (AlterUserScramCredentials, KIP-554), for clusters the
//! operator runs: the salted password is derived here, as Kafka's own tools do, so the password
//! itself never leaves this process.

use bytes::Bytes;
use kafka_protocol::{
    messages::{
        AlterUserScramCredentialsRequest,
        alter_user_scram_credentials_request::{ScramCredentialDeletion, ScramCredentialUpsertion},
    },
    protocol::StrBytes,
};
use rand::RngCore;

use crate::{Error, Result};
use crate::{
    connection::{Credentials, error_text},
    scram::salted_password,
};

/// Kafka's number for SCRAM-SHA-512.
const SCRAM_SHA_512: i8 = 2;
/// PBKDF2 iterations; Kafka's minimum for SCRAM-SHA-512 is 4096.
const ITERATIONS: u32 = 4096;
/// The broker's answer when a user to delete has no credential.
const RESOURCE_NOT_FOUND: i16 = 91;

async fn alter(credentials: &Credentials, request: AlterUserScramCredentialsRequest) -> Result<()> {
    let response = credentials.connect().await?.call(request, 0).await?;
    for result in response.results {
        if result.error_code != 0 && result.error_code != RESOURCE_NOT_FOUND {
            return Err(Error::Protocol(format!(
                "the broker refused to change SCRAM user {}: {}",
                result.user.as_str(),
                error_text(result.error_message, result.error_code)
            )));
        }
    }
    Ok(())
}

/// Creates `username` with `password`, or sets its password, authenticating as the admin user
/// of `credentials`.
pub async fn upsert_scram_user(
    credentials: &Credentials,
    username: &str,
    password: &str,
) -> Result<()> {
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let upsertion = ScramCredentialUpsertion::default()
        .with_name(StrBytes::from_string(username.to_owned()))
        .with_mechanism(SCRAM_SHA_512)
        .with_iterations(ITERATIONS as i32)
        .with_salt(Bytes::copy_from_slice(&salt))
        .with_salted_password(Bytes::copy_from_slice(&salted_password(
            password, &salt, ITERATIONS,
        )));
    alter(
        credentials,
        AlterUserScramCredentialsRequest::default().with_upsertions(vec![upsertion]),
    )
    .await
}

/// Removes `username`'s SCRAM-SHA-512 credential; a user without one is not an error.
pub async fn delete_scram_user(credentials: &Credentials, username: &str) -> Result<()> {
    let deletion = ScramCredentialDeletion::default()
        .with_name(StrBytes::from_string(username.to_owned()))
        .with_mechanism(SCRAM_SHA_512);
    alter(
        credentials,
        AlterUserScramCredentialsRequest::default().with_deletions(vec![deletion]),
    )
    .await
}
