//! Stored bytes on Apache Kafka (DescribeLogDirs). No Apache Kafka broker can run on the build
//! machines, so two mock brokers stand in: they speak the real wire protocol (encoded with the
//! same `kafka-protocol` crate), check SCRAM-SHA-512 properly, and report their log dirs.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use base64::{Engine, engine::general_purpose::STANDARD};
use bytes::{BufMut, Bytes, BytesMut};
use capstan_billing::kafka::{Credentials, stored_bytes};
use hmac::{Hmac, Mac};
use kafka_protocol::{
    messages::{
        ApiKey, BrokerId, DescribeLogDirsResponse, MetadataResponse, RequestHeader, ResponseHeader,
        SaslAuthenticateRequest, SaslAuthenticateResponse, SaslHandshakeResponse, TopicName,
        describe_log_dirs_response::{
            DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
        },
        metadata_response::MetadataResponseBroker,
    },
    protocol::{Decodable, Encodable, HeaderVersion, StrBytes},
};
use sha2::{Digest, Sha512};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

const USER: &str = "capstan-admin";
const PASSWORD: &str = "s3cret";
const SALT: &[u8] = b"0123456789abcdef";
const ITERATIONS: u32 = 4096;

fn hmac(key: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = <Hmac<Sha512> as Mac>::new_from_slice(key).unwrap();
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// (topic, partition, size, future replica)
type Replica = (&'static str, i32, i64, bool);

fn encode<R: Encodable + HeaderVersion>(correlation: i32, version: i16, response: R) -> Bytes {
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

async fn serve(listener: TcpListener, brokers: Vec<(i32, u16)>, replicas: Vec<Replica>) {
    loop {
        let (stream, _) = listener.accept().await.unwrap();
        tokio::spawn(connection(stream, brokers.clone(), replicas.clone()));
    }
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

fn log_dirs(replicas: &[Replica]) -> DescribeLogDirsResponse {
    let mut topics: Vec<DescribeLogDirsTopic> = Vec::new();
    for (topic, partition, size, future) in replicas {
        let entry = DescribeLogDirsPartition::default()
            .with_partition_index(*partition)
            .with_partition_size(*size)
            .with_is_future_key(*future);
        match topics.iter_mut().find(|t| t.name.0.as_str() == *topic) {
            Some(t) => t.partitions.push(entry),
            None => topics.push(
                DescribeLogDirsTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(topic)))
                    .with_partitions(vec![entry]),
            ),
        }
    }
    let dir = DescribeLogDirsResult::default()
        .with_log_dir(StrBytes::from_static_str("/var/lib/kafka/data"))
        .with_topics(topics);
    DescribeLogDirsResponse::default().with_results(vec![dir])
}

async fn connection(mut stream: TcpStream, brokers: Vec<(i32, u16)>, replicas: Vec<Replica>) {
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
            ApiKey::Metadata => {
                let brokers = brokers
                    .iter()
                    .map(|(node, port)| {
                        MetadataResponseBroker::default()
                            .with_node_id(BrokerId(*node))
                            .with_host(StrBytes::from_static_str("127.0.0.1"))
                            .with_port(i32::from(*port))
                    })
                    .collect();
                encode(
                    id,
                    version,
                    MetadataResponse::default().with_brokers(brokers),
                )
            }
            ApiKey::DescribeLogDirs => encode(id, version, log_dirs(&replicas)),
            other => panic!("the mock broker does not answer {other:?}"),
        };
        stream.write_all(&frame).await.unwrap();
    }
}

async fn two_brokers() -> String {
    let (first, second) = (
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
        TcpListener::bind("127.0.0.1:0").await.unwrap(),
    );
    let ports = vec![
        (1, first.local_addr().unwrap().port()),
        (2, second.local_addr().unwrap().port()),
    ];
    // Each broker holds a replica of orders/0 and orders/1; broker 2 also holds a replica of
    // orders/0 being moved onto it (a future replica, which must not be counted).
    tokio::spawn(serve(
        first,
        ports.clone(),
        vec![
            ("orders", 0, 1_000, false),
            ("orders", 1, 2_000, false),
            ("audit", 0, 50, false),
        ],
    ));
    tokio::spawn(serve(
        second,
        ports.clone(),
        vec![
            ("orders", 0, 1_000, false),
            ("orders", 1, 2_000, false),
            ("orders", 0, 1_000, true),
        ],
    ));
    format!("127.0.0.1:{}", ports[0].1)
}

#[tokio::test]
async fn log_dir_sizes_are_summed_over_every_replica_of_every_broker() {
    let credentials = Credentials {
        bootstrap: two_brokers().await,
        username: USER.into(),
        password: PASSWORD.into(),
    };
    let sizes = stored_bytes(&credentials).await.unwrap();
    assert_eq!(
        sizes.get("orders"),
        Some(&6_000),
        "two brokers × (1,000 + 2,000), the moving replica left out"
    );
    assert_eq!(sizes.get("audit"), Some(&50));
}

#[tokio::test]
async fn a_wrong_password_is_refused_by_scram() {
    let credentials = Credentials {
        bootstrap: two_brokers().await,
        username: USER.into(),
        password: "wrong".into(),
    };
    assert!(matches!(
        stored_bytes(&credentials).await,
        Err(capstan_billing::Error::Authentication(_))
    ));
}
