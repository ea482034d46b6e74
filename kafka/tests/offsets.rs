//! One read of a cluster's offsets against a mock broker whose partitions are not all readable:
//! a partition without a leader and one whose ListOffsets answer is an error are left out of
//! the snapshot (metered at a later sweep), and the others are read as usual — one bad
//! partition never stops the metering of a whole cluster, nor is it ever read as offset 0.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::Arc;

use bytes::Bytes;
use capstan_kafka::{Credentials, read_offsets};
use kafka_protocol::{
    messages::{
        ApiKey, BrokerId, ListGroupsResponse, ListOffsetsRequest, ListOffsetsResponse,
        MetadataResponse, TopicName,
        list_offsets_response::{ListOffsetsPartitionResponse, ListOffsetsTopicResponse},
        metadata_response::{
            MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
        },
    },
    protocol::{Decodable, StrBytes},
};
use mock_broker::{PASSWORD, USER, encode, serve};
use tokio::net::TcpListener;

/// NOT_LEADER_OR_FOLLOWER: what a broker answers for a partition it just stopped leading.
const NOT_LEADER: i16 = 6;

fn partition(index: i32, leader: i32) -> MetadataResponsePartition {
    MetadataResponsePartition::default()
        .with_partition_index(index)
        .with_leader_id(BrokerId(leader))
        .with_replica_nodes(vec![BrokerId(0)])
}

#[tokio::test]
async fn unreadable_partitions_are_left_out_and_the_rest_is_read() {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(serve(
        listener,
        Arc::new(move |api, version, id, mut body: Bytes| match api {
            ApiKey::Metadata => {
                let broker = MetadataResponseBroker::default()
                    .with_node_id(BrokerId(0))
                    .with_host(StrBytes::from_static_str("127.0.0.1"))
                    .with_port(i32::from(port));
                // Partition 0 is fine, 1 answers an error, 2 has no leader.
                let topic = MetadataResponseTopic::default()
                    .with_name(Some(TopicName(StrBytes::from_static_str("t"))))
                    .with_partitions(vec![partition(0, 0), partition(1, 0), partition(2, -1)]);
                encode(
                    id,
                    version,
                    MetadataResponse::default()
                        .with_brokers(vec![broker])
                        .with_topics(vec![topic]),
                )
            }
            ApiKey::ListOffsets => {
                let request = ListOffsetsRequest::decode(&mut body, version).unwrap();
                let topics = request
                    .topics
                    .into_iter()
                    .map(|topic| {
                        let partitions = topic
                            .partitions
                            .iter()
                            .map(|p| {
                                assert_ne!(p.partition_index, 2, "no leader: not asked");
                                let answer = ListOffsetsPartitionResponse::default()
                                    .with_partition_index(p.partition_index);
                                match (p.partition_index, p.timestamp) {
                                    (1, _) => answer.with_error_code(NOT_LEADER),
                                    (_, -2) => answer.with_offset(2),
                                    _ => answer.with_offset(10),
                                }
                            })
                            .collect();
                        ListOffsetsTopicResponse::default()
                            .with_name(topic.name)
                            .with_partitions(partitions)
                    })
                    .collect();
                encode(
                    id,
                    version,
                    ListOffsetsResponse::default().with_topics(topics),
                )
            }
            ApiKey::ListGroups => encode(id, version, ListGroupsResponse::default()),
            other => panic!("the mock broker does not answer {other:?}"),
        }),
    ));
    let credentials = Credentials {
        bootstrap: format!("127.0.0.1:{port}"),
        username: USER.into(),
        password: PASSWORD.into(),
        tls: None,
    };
    let snapshot = read_offsets(&credentials, "").await.unwrap();
    let read: Vec<(i32, i64, i64)> = snapshot
        .partitions
        .iter()
        .map(|p| (p.partition, p.log_start, p.log_end))
        .collect();
    assert_eq!(read, vec![(0, 2, 10)]);
}
