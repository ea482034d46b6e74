//! A mock Kafka cluster behind the mock broker (kafka/tests/mock_broker): Metadata with the
//! partitions a test sets, `min.insync.replicas` 2 for every topic, the KRaft quorum (every
//! voter caught up), and UnregisterBroker, recorded.

use std::sync::{Arc, Mutex};

use kafka_protocol::{
    messages::{
        ApiKey, BrokerId, DescribeConfigsResponse, DescribeQuorumResponse, MetadataResponse,
        TopicName, UnregisterBrokerResponse,
        describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
        describe_quorum_response::{PartitionData, ReplicaState, TopicData},
        metadata_response::{MetadataResponsePartition, MetadataResponseTopic},
    },
    protocol::StrBytes,
};

#[path = "../../../kafka/tests/mock_broker/mod.rs"]
pub mod mock_broker;

/// One partition: topic, index, replicas, in-sync replicas.
#[derive(Clone, Debug)]
pub struct Partition {
    /// Its topic.
    pub topic: &'static str,
    /// Its index.
    pub index: i32,
    /// Node ids of its replicas.
    pub replicas: Vec<i32>,
    /// Node ids of its in-sync replicas.
    pub isr: Vec<i32>,
}

/// What the mock cluster reports, changed by the test as it goes.
#[derive(Debug, Default)]
pub struct KafkaState {
    /// Every partition of every topic.
    pub partitions: Vec<Partition>,
    /// The quorum's voters.
    pub voters: Vec<i32>,
    /// Its leader.
    pub leader: i32,
    /// Brokers unregistered, in order.
    pub unregistered: Vec<i32>,
}

/// The state, shared with the mock's handler.
pub type Kafka = Arc<Mutex<KafkaState>>;

/// A cluster with `partitions` and the quorum of `voters` led by `leader`.
pub fn kafka(partitions: Vec<Partition>, voters: Vec<i32>, leader: i32) -> Kafka {
    Arc::new(Mutex::new(KafkaState {
        partitions,
        voters,
        leader,
        unregistered: Vec::new(),
    }))
}

/// Starts the mock broker answering as `state` says; its `host:port`.
pub async fn start(state: Kafka) -> String {
    mock_broker::start(handler(state)).await
}

/// A CA's certificate and a broker certificate for `localhost` it signed, with its PKCS#8
/// key: what a cert-manager Secret of the internal listener holds (`ca.crt`, `tls.crt`,
/// `tls.key`, PEM).
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

/// Starts the mock broker behind TLS with `certificate`; its `localhost:port`.
pub async fn start_tls(state: Kafka, certificate: &BrokerCertificate) -> String {
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
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    let handler = handler(state);
    tokio::spawn(async move {
        loop {
            let (tcp, _) = listener.accept().await.unwrap();
            let (acceptor, handler) = (acceptor.clone(), handler.clone());
            tokio::spawn(async move {
                if let Ok(tls) = acceptor.accept(tcp).await {
                    mock_broker::connection(tls, handler).await;
                }
            });
        }
    });
    format!("localhost:{port}")
}

fn handler(state: Kafka) -> mock_broker::Handler {
    Arc::new(move |key, version, id, body| {
        let mut state = state.lock().unwrap();
        match key {
            ApiKey::Metadata => {
                let mut topics: Vec<MetadataResponseTopic> = Vec::new();
                for p in &state.partitions {
                    let partition = MetadataResponsePartition::default()
                        .with_partition_index(p.index)
                        .with_leader_id(BrokerId(p.isr.first().copied().unwrap_or(-1)))
                        .with_replica_nodes(p.replicas.iter().map(|&n| BrokerId(n)).collect())
                        .with_isr_nodes(p.isr.iter().map(|&n| BrokerId(n)).collect());
                    let name = TopicName(StrBytes::from_static_str(p.topic));
                    match topics.iter_mut().find(|t| t.name.as_ref() == Some(&name)) {
                        Some(topic) => topic.partitions.push(partition),
                        None => topics.push(
                            MetadataResponseTopic::default()
                                .with_name(Some(name))
                                .with_partitions(vec![partition]),
                        ),
                    }
                }
                mock_broker::encode(id, version, MetadataResponse::default().with_topics(topics))
            }
            ApiKey::DescribeConfigs => {
                let mut topics: Vec<&'static str> =
                    state.partitions.iter().map(|p| p.topic).collect();
                topics.dedup();
                let results = topics
                    .into_iter()
                    .map(|topic| {
                        DescribeConfigsResult::default()
                            .with_resource_type(2)
                            .with_resource_name(StrBytes::from_static_str(topic))
                            .with_configs(vec![
                                DescribeConfigsResourceResult::default()
                                    .with_name(StrBytes::from_static_str("min.insync.replicas"))
                                    .with_value(Some(StrBytes::from_static_str("2"))),
                            ])
                    })
                    .collect();
                mock_broker::encode(
                    id,
                    version,
                    DescribeConfigsResponse::default().with_results(results),
                )
            }
            ApiKey::DescribeQuorum => {
                let voters = state
                    .voters
                    .iter()
                    .map(|&n| {
                        ReplicaState::default()
                            .with_replica_id(BrokerId(n))
                            .with_log_end_offset(500)
                            .with_last_caught_up_timestamp(1_000_000)
                    })
                    .collect();
                let partition = PartitionData::default()
                    .with_partition_index(0)
                    .with_leader_id(BrokerId(state.leader))
                    .with_current_voters(voters);
                mock_broker::encode(
                    id,
                    version,
                    DescribeQuorumResponse::default().with_topics(vec![
                        TopicData::default()
                            .with_topic_name(TopicName(StrBytes::from_static_str(
                                "__cluster_metadata",
                            )))
                            .with_partitions(vec![partition]),
                    ]),
                )
            }
            ApiKey::UnregisterBroker => {
                use kafka_protocol::protocol::Decodable;
                let mut body = body;
                let request =
                    kafka_protocol::messages::UnregisterBrokerRequest::decode(&mut body, version)
                        .unwrap();
                let broker = request.broker_id.0;
                // Kafka's BROKER_ID_NOT_REGISTERED for an id it does not know.
                let error = if state.unregistered.contains(&broker) {
                    102
                } else {
                    state.unregistered.push(broker);
                    0
                };
                mock_broker::encode(
                    id,
                    version,
                    UnregisterBrokerResponse::default().with_error_code(error),
                )
            }
            other => panic!("the mock broker does not answer {other:?}"),
        }
    })
}
