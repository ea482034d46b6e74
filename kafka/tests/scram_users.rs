//! SCRAM users on Apache Kafka (AlterUserScramCredentials) against a mock broker that checks
//! what a real one would: the mechanism, the iterations, and a salted password that really is
//! PBKDF2-HMAC-SHA512 of the password with the salt sent.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use capstan_kafka::{Credentials, delete_scram_user, salted_password, upsert_scram_user};
use kafka_protocol::{
    messages::{
        AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse, ApiKey,
        alter_user_scram_credentials_response::AlterUserScramCredentialsResult,
    },
    protocol::{Decodable, StrBytes},
};
use mock_broker::{PASSWORD, USER, encode, start};

type Seen = Arc<Mutex<Vec<AlterUserScramCredentialsRequest>>>;

/// A broker that records every AlterUserScramCredentials request and answers each user with
/// `error_code`.
async fn broker(seen: Seen, error_code: i16) -> Credentials {
    let bootstrap = start(Arc::new(move |api, version, id, mut body: Bytes| {
        assert_eq!(api, ApiKey::AlterUserScramCredentials);
        let request = AlterUserScramCredentialsRequest::decode(&mut body, version).unwrap();
        let users: Vec<StrBytes> = request
            .upsertions
            .iter()
            .map(|u| u.name.clone())
            .chain(request.deletions.iter().map(|d| d.name.clone()))
            .collect();
        seen.lock().unwrap().push(request);
        let results = users
            .into_iter()
            .map(|user| {
                AlterUserScramCredentialsResult::default()
                    .with_user(user)
                    .with_error_code(error_code)
            })
            .collect();
        encode(
            id,
            version,
            AlterUserScramCredentialsResponse::default().with_results(results),
        )
    }))
    .await;
    Credentials {
        bootstrap,
        username: USER.into(),
        password: PASSWORD.into(),
        tls: None,
    }
}

#[tokio::test]
async fn a_user_is_upserted_with_a_fresh_salt_and_its_salted_password() {
    let seen = Seen::default();
    let credentials = broker(seen.clone(), 0).await;
    upsert_scram_user(&credentials, "reader", "a password")
        .await
        .unwrap();
    upsert_scram_user(&credentials, "reader", "a password")
        .await
        .unwrap();
    let requests = seen.lock().unwrap();
    let (first, second) = (&requests[0].upsertions[0], &requests[1].upsertions[0]);
    assert_eq!(first.name.as_str(), "reader");
    assert_eq!(first.mechanism, 2, "SCRAM-SHA-512");
    assert_eq!(first.iterations, 4096);
    assert_eq!(first.salt.len(), 32);
    assert_eq!(
        first.salted_password.as_ref(),
        salted_password("a password", &first.salt, first.iterations as u32)
    );
    assert_ne!(first.salt, second.salt, "every change gets a new salt");
    assert!(requests.iter().all(|r| r.deletions.is_empty()));
}

#[tokio::test]
async fn a_user_is_deleted_and_a_missing_one_is_not_an_error() {
    let seen = Seen::default();
    // 91: RESOURCE_NOT_FOUND, the user had no credential.
    let credentials = broker(seen.clone(), 91).await;
    delete_scram_user(&credentials, "gone").await.unwrap();
    let requests = seen.lock().unwrap();
    let deletion = &requests[0].deletions[0];
    assert_eq!((deletion.name.as_str(), deletion.mechanism), ("gone", 2));
    assert!(requests[0].upsertions.is_empty());
}

#[tokio::test]
async fn a_refusal_of_the_broker_is_an_error() {
    // 41: NOT_CONTROLLER.
    let credentials = broker(Seen::default(), 41).await;
    let error = upsert_scram_user(&credentials, "reader", "a password")
        .await
        .unwrap_err();
    assert!(
        error
            .to_string()
            .contains("refused to change SCRAM user reader"),
        "{error}"
    );
}
