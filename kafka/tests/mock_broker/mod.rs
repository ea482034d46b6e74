//! A mock Kafka broker for the tests of the crate's own Kafka client. No Apache Kafka broker can
//! run on the build machines, so this stands in: it speaks the real wire protocol (encoded with
//! the same `kafka-protocol` crate), checks SCRAM-SHA-512 properly, and hands every other
//! request to the test's handler.

#![allow(dead_code, clippy::unwrap_used)] // each test file uses part of it; tests fail loudly

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::{BufMut, Bytes, BytesMut};
use hmac::{Hmac, Mac};
use kafka_protocol::{
    messages::{
        ApiKey, RequestHeader, ResponseHeader, SaslAuthenticateRequest, SaslAuthenticateResponse,
        SaslHandshakeResponse,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
};
use sha2::{Digest, Sha512};
use tokio::{
    io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt},
    net::TcpListener,
};

/// The admin user the mock accepts.
pub const USER: &str = "capstan-admin";
/// Its password.
pub const PASSWORD: &str = "s3cret";
const SALT: &[u8] = b"0123456789abcdef";
const ITERATIONS: u32 = 4096;

/// Answers one request: API key, version, correlation id and the request body after its
/// header; returns the whole response frame (see [`encode`]).
pub type Handler = Arc<dyn Fn(ApiKey, i16, i32, Bytes) -> Bytes + Send + Sync>;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// A response frame: size, header and body.
pub fn encode<R: Encodable + HeaderVersion>(correlation: i32, version: i16, response: R) -> Bytes {
    let mut body = BytesMut::new();
    ResponseHeader::default()
        .with_correlation_id(correlation)
        .encode(&mut body, R::header_version(version))
        .unwrap();
    response.encode(&mut body, version).unwrap();
    let mut frame = BytesMut::new();
    frame.put_i32(body.len() as i32);
    frame.extend_from_slice(&body);
    frame.freeze()
}

/// Accepts connections on `listener` forever.
pub async fn serve(listener: TcpListener, handler: Handler) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::spawn(connection(stream, handler.clone()));
    }
}

/// A mock broker on a free loopback port; returns its `host:port`.
pub async fn start(handler: Handler) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap().to_string();
    tokio::spawn(serve(listener, handler));
    address
}

fn sasl(state: &mut Option<(String, String)>, text: &str) -> SaslAuthenticateResponse {
    match state.take() {
        None => {
            let bare = text.strip_prefix("n,,").unwrap().to_owned();
            assert!(bare.starts_with(&format!("n={USER},")), "{bare}");
            let nonce = bare.split(",r=").nth(1).unwrap();
            let server_first =
                format!("r={nonce}server,s={},i={ITERATIONS}", STANDARD.encode(SALT));
            *state = Some((bare, server_first.clone()));
            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(server_first))
        }
        Some((bare, server_first)) => {
            let (without_proof, proof) = text.rsplit_once(",p=").unwrap();
            let mut salted = [0u8; 64];
            pbkdf2::pbkdf2_hmac::<Sha512>(PASSWORD.as_bytes(), SALT, ITERATIONS, &mut salted);
            let stored_key = Sha512::digest(hmac(&salted, b"Client Key"));
            let auth_message = format!("{bare},{server_first},{without_proof}");
            let signature = hmac(&stored_key, auth_message.as_bytes());
            let client_key: Vec<u8> = STANDARD
                .decode(proof)
                .unwrap()
                .iter()
                .zip(&signature)
                .map(|(a, b)| a ^ b)
                .collect();
            if Sha512::digest(&client_key) != stored_key {
                return SaslAuthenticateResponse::default().with_error_code(58);
            }
            let server_signature = hmac(&hmac(&salted, b"Server Key"), auth_message.as_bytes());
            SaslAuthenticateResponse::default().with_auth_bytes(Bytes::from(format!(
                "v={}",
                STANDARD.encode(server_signature)
            )))
        }
    }
}

/// Serves one client connection (plain TCP, or TLS over it) until it closes.
pub async fn connection<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S, handler: Handler) {
    let mut scram = None;
    loop {
        let Ok(size) = stream.read_i32().await else {
            return;
        };
        let mut buffer = vec![0u8; size as usize];
        stream.read_exact(&mut buffer).await.unwrap();
        let mut buffer = Bytes::from(buffer);
        let version = i16::from_be_bytes([buffer[2], buffer[3]]);
        let api = ApiKey::try_from(i16::from_be_bytes([buffer[0], buffer[1]])).unwrap();
        let id = RequestHeader::decode(&mut buffer, api.request_header_version(version))
            .unwrap()
            .correlation_id;
        let frame = match api {
            ApiKey::SaslHandshake => encode(
                id,
                version,
                SaslHandshakeResponse::default()
                    .with_mechanisms(vec![StrBytes::from_static_str("SCRAM-SHA-512")]),
            ),
            ApiKey::SaslAuthenticate => {
                let request = SaslAuthenticateRequest::decode(&mut buffer, version).unwrap();
                encode(
                    id,
                    version,
                    sasl(
                        &mut scram,
                        std::str::from_utf8(&request.auth_bytes).unwrap(),
                    ),
                )
            }
            other => handler(other, version, id, buffer),
        };
        stream.write_all(&frame).await.unwrap();
    }
}

/// A CA's certificate and a broker certificate for `localhost` it signed, with its PKCS#8 key,
/// all PEM: what a cert-manager Secret of a TLS listener holds (`ca.crt`, `tls.crt`,
/// `tls.key`).
pub struct BrokerCertificate {
    /// `ca.crt`.
    pub ca: String,
    /// `tls.crt`.
    pub chain: String,
    /// `tls.key`.
    pub key: String,
}

/// A new CA and a broker certificate it signed.
pub fn broker_certificate() -> BrokerCertificate {
    use rcgen::{BasicConstraints, CertificateParams, IsCa, KeyPair};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let chain = CertificateParams::new(vec!["localhost".to_owned()])
        .unwrap()
        .signed_by(&key, &ca, &ca_key)
        .unwrap();
    BrokerCertificate {
        ca: ca.pem(),
        chain: chain.pem(),
        key: key.serialize_pem(),
    }
}

/// A mock broker behind TLS with `certificate`, on a free loopback port; returns
/// `localhost:port` (the name the certificate carries). A client that fails the handshake is
/// dropped, as a broker does.
pub async fn start_tls(handler: Handler, certificate: &BrokerCertificate) -> String {
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_no_client_auth()
    .with_single_cert(
        vec![CertificateDer::from_pem_slice(certificate.chain.as_bytes()).unwrap()],
        PrivateKeyDer::from_pem_slice(certificate.key.as_bytes()).unwrap(),
    )
    .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    connection(tls, handler).await;
                }
            });
        }
    });
    format!("localhost:{port}")
}
