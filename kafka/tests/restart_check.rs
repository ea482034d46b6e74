//! Whether a node can restart (Strimzi's KafkaRoller rules) against a mock broker that speaks
//! the real protocol and reports partitions' ISR, topics' min ISR and the KRaft quorum. No Apache
//! Kafka broker can run on the build machines.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::Arc;

use capstan_kafka::{Credentials, QUORUM_FETCH_TIMEOUT_MS, restart_check};
use kafka_protocol::{
    messages::{
        ApiKey, BrokerId, DescribeConfigsRequest, DescribeConfigsResponse, DescribeQuorumResponse,
        MetadataResponse, TopicName,
        describe_configs_response::{DescribeConfigsResourceResult, DescribeConfigsResult},
        describe_quorum_response::{PartitionData, ReplicaState, TopicData},
        metadata_response::{MetadataResponsePartition, MetadataResponseTopic},
    },
    protocol::{Decodable, StrBytes},
};
use mock_broker::{PASSWORD, USER, encode, start};

/// (topic, replicas, ISR) of each topic's one partition; every topic's min ISR is 2, so
/// `audit` (RF 2) can never keep it through a restart and holds none up.
const PARTITIONS: [(&str, &[i32], &[i32]); 3] = [
    ("orders", &[0, 1, 2], &[0, 1, 2]),
    ("payments", &[0, 1, 2], &[1, 2]),
    ("audit", &[1, 2], &[2]),
];

/// Voters 0, 1, 2 with leader 1; voter 0 has not caught up for longer than the fetch timeout.
fn cluster() -> mock_broker::Handler {
    Arc::new(|key, version, id, mut body| match key {
        ApiKey::Metadata => {
            let topics = PARTITIONS
                .iter()
                .map(|(name, replicas, isr)| {
                    MetadataResponseTopic::default()
                        .with_name(Some(TopicName(StrBytes::from_static_str(name))))
                        .with_partitions(vec![
                            MetadataResponsePartition::default()
                                .with_partition_index(0)
                                .with_replica_nodes(replicas.iter().map(|&n| BrokerId(n)).collect())
                                .with_isr_nodes(isr.iter().map(|&n| BrokerId(n)).collect()),
                        ])
                })
                .collect();
            encode(id, version, MetadataResponse::default().with_topics(topics))
        }
        ApiKey::DescribeConfigs => {
            let request = DescribeConfigsRequest::decode(&mut body, version).unwrap();
            let results = request
                .resources
                .iter()
                .map(|resource| {
                    DescribeConfigsResult::default()
                        .with_resource_type(2)
                        .with_resource_name(resource.resource_name.clone())
                        .with_configs(vec![
                            DescribeConfigsResourceResult::default()
                                .with_name(StrBytes::from_static_str("min.insync.replicas"))
                                .with_value(Some(StrBytes::from_static_str("2"))),
                        ])
                })
                .collect();
            encode(
                id,
                version,
                DescribeConfigsResponse::default().with_results(results),
            )
        }
        ApiKey::DescribeQuorum => {
            let now = 10_000_000;
            let voters = [
                (0, now - QUORUM_FETCH_TIMEOUT_MS - 1),
                (1, now),
                (2, now - 100),
            ]
            .into_iter()
            .map(|(n, caught_up)| {
                ReplicaState::default()
                    .with_replica_id(BrokerId(n))
                    .with_last_caught_up_timestamp(caught_up)
            })
            .collect();
            encode(
                id,
                version,
                DescribeQuorumResponse::default().with_topics(vec![
                    TopicData::default()
                        .with_topic_name(TopicName(StrBytes::from_static_str("__cluster_metadata")))
                        .with_partitions(vec![
                            PartitionData::default()
                                .with_leader_id(BrokerId(1))
                                .with_current_voters(voters),
                        ]),
                ]),
            )
        }
        other => panic!("the mock broker does not answer {other:?}"),
    })
}

async fn credentials() -> Credentials {
    Credentials {
        bootstrap: start(cluster()).await,
        username: USER.into(),
        password: PASSWORD.into(),
        tls: None,
    }
}

#[tokio::test]
async fn a_node_whose_partitions_and_quorum_can_spare_it_may_restart() {
    // Node 0 is in sync only for `orders` (ISR 3 > min ISR 2) and lags the quorum anyway.
    let check = restart_check(&credentials().await, 0).await.unwrap();
    assert!(check.safe(), "{check:?}");
    assert_eq!(check.quorum_leader, Some(1));
}

#[tokio::test]
async fn a_node_needed_in_sync_holds_the_restart_and_says_which_partitions() {
    // `payments` has ISR 1, 2 at min ISR 2; `audit` (RF 2) is already below it and not made
    // worse by node 1.
    let check = restart_check(&credentials().await, 1).await.unwrap();
    assert_eq!(check.under_min_isr, vec!["payments-0".to_owned()]);
    assert!(!check.safe());
    assert!(
        check.explain(1).contains("payments-0"),
        "{}",
        check.explain(1)
    );
}

#[tokio::test]
async fn a_voter_whose_absence_leaves_no_caught_up_majority_holds_the_restart() {
    // Without node 2 only the leader is caught up (voter 0 lags): one of three is no majority.
    let check = restart_check(&credentials().await, 2).await.unwrap();
    let quorum = check
        .quorum
        .clone()
        .expect("the quorum cannot spare node 2");
    assert!(quorum.contains("only 1 of the 3 voters"), "{quorum}");
    assert_eq!(check.under_min_isr, vec!["payments-0".to_owned()]);
}
