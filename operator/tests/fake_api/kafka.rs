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

use mock_broker::BrokerCertificate;

/// Starts the mock broker behind TLS with `certificate`; its `localhost:port`.
pub async fn start_tls(state: Kafka, certificate: &BrokerCertificate) -> String {
    mock_broker::start_tls(handler(state), certificate).await
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
