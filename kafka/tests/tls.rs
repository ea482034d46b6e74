//! The crate's client over TLS (brokers whose listener is SASL_SSL): the broker's certificate
//! must chain to the CA given and name the host dialled, as Kafka's clients check it.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::Arc;

use capstan_kafka::{Credentials, Tls, unregister_broker};
use kafka_protocol::messages::{ApiKey, UnregisterBrokerResponse};
use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
use tokio::net::TcpListener;
use tokio_rustls::{
    TlsAcceptor,
    rustls::{
        self,
        pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer},
    },
};

/// A CA and a broker certificate it signed for `localhost`: the CA's PEM and the broker's TLS
/// settings.
fn certificates() -> (String, Arc<rustls::ServerConfig>) {
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let broker_key = KeyPair::generate().unwrap();
    let broker = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&broker_key, &ca, &ca_key)
        .unwrap();
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![broker.der().clone()],
        PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(broker_key.serialize_der())),
    )
    .unwrap();
    (ca.pem(), Arc::new(config))
}

/// A mock broker behind TLS that unregisters any broker id; its port.
async fn tls_broker(config: Arc<rustls::ServerConfig>) -> u16 {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler: mock_broker::Handler = Arc::new(|key, version, id, _| match key {
        ApiKey::UnregisterBroker => {
            mock_broker::encode(id, version, UnregisterBrokerResponse::default())
        }
        other => panic!("unexpected {other:?}"),
    });
    tokio::spawn(async move {
        let acceptor = TlsAcceptor::from(config);
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let acceptor = acceptor.clone();
            let handler = handler.clone();
            tokio::spawn(async move {
                // A client that fails the handshake is dropped, as a broker does.
                if let Ok(tls) = acceptor.accept(tcp).await {
                    mock_broker::connection(tls, handler).await;
                }
            });
        }
    });
    port
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
    let (ca, config) = certificates();
    let port = tls_broker(config).await;
    let tls = Tls::trusting(ca.as_bytes()).unwrap();
    let admin = credentials(format!("localhost:{port}"), Some(tls));
    assert!(
        unregister_broker(&admin, 7).await.unwrap(),
        "SCRAM and the request went through TLS"
    );
}

#[tokio::test]
async fn another_ca_a_wrong_name_or_plain_tcp_is_refused() {
    let (_, config) = certificates();
    let (other_ca, _) = certificates();
    let port = tls_broker(config).await;
    let error = unregister_broker(
        &credentials(
            format!("localhost:{port}"),
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
    let (ca, config) = certificates();
    let port = tls_broker(config).await;
    let error = unregister_broker(
        &credentials(
            format!("127.0.0.1:{port}"),
            Some(Tls::trusting(ca.as_bytes()).unwrap()),
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
        unregister_broker(&credentials(format!("localhost:{port}"), None), 7)
            .await
            .is_err()
    );
    assert!(Tls::trusting(b"not a certificate").is_err());
}
