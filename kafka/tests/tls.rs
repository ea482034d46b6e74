//! The crate's client over TLS (brokers whose listener is SASL_SSL): the broker's certificate
//! must chain to the CA given and name the host dialled, as Kafka's clients check it.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::Arc;

use capstan_kafka::{Credentials, Tls, unregister_broker};
use kafka_protocol::messages::{ApiKey, UnregisterBrokerResponse};

/// A mock broker behind TLS with `certificate` that unregisters any broker id; its address.
async fn tls_broker(certificate: &mock_broker::BrokerCertificate) -> String {
    let handler: mock_broker::Handler = Arc::new(|key, version, id, _| match key {
        ApiKey::UnregisterBroker => {
            mock_broker::encode(id, version, UnregisterBrokerResponse::default())
        }
        other => panic!("unexpected {other:?}"),
    });
    mock_broker::start_tls(handler, certificate).await
}

fn credentials(bootstrap: String, tls: Option<Tls>) -> Credentials {
    Credentials {
        bootstrap,
        username: mock_broker::USER.into(),
        password: mock_broker::PASSWORD.into(),
        tls,
    }
}

#[tokio::test]
async fn a_broker_whose_certificate_chains_to_the_ca_is_spoken_to_over_tls() {
    let certificate = mock_broker::broker_certificate();
    let address = tls_broker(&certificate).await;
    let tls = Tls::trusting(certificate.ca.as_bytes()).unwrap();
    let admin = credentials(address, Some(tls));
    assert!(
        unregister_broker(&admin, 7).await.unwrap(),
        "SCRAM and the request went through TLS"
    );
}

#[tokio::test]
async fn another_ca_a_wrong_name_or_plain_tcp_is_refused() {
    let certificate = mock_broker::broker_certificate();
    let other_ca = mock_broker::broker_certificate().ca;
    let address = tls_broker(&certificate).await;
    let error = unregister_broker(
        &credentials(
            address.clone(),
            Some(Tls::trusting(other_ca.as_bytes()).unwrap()),
        ),
        7,
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("TLS handshake failed"),
        "{error}"
    );

    // The certificate names localhost, not 127.0.0.1.
    let port = address.rsplit(':').next().unwrap();
    let error = unregister_broker(
        &credentials(
            format!("127.0.0.1:{port}"),
            Some(Tls::trusting(certificate.ca.as_bytes()).unwrap()),
        ),
        7,
    )
    .await
    .unwrap_err();
    assert!(
        error.to_string().contains("TLS handshake failed"),
        "{error}"
    );

    // Plain TCP to a TLS listener fails (the broker drops it), it does not hang.
    assert!(
        unregister_broker(&credentials(address, None), 7)
            .await
            .is_err()
    );
    assert!(Tls::trusting(b"not a certificate").is_err());
}
