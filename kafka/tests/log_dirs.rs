//! Stored bytes on Apache Kafka (DescribeLogDirs). No Apache Kafka broker can run on the build
//! machines, so two mock brokers stand in: they speak the real wire protocol (encoded with the
//! same `kafka-protocol` crate), check SCRAM-SHA-512 properly, and report their log dirs.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::Arc;

use bytes::Bytes;
use capstan_kafka::{Credentials, stored_bytes};
use kafka_protocol::{
    messages::{
        ApiKey, BrokerId, DescribeLogDirsResponse, MetadataResponse, TopicName,
        describe_log_dirs_response::{
            DescribeLogDirsPartition, DescribeLogDirsResult, DescribeLogDirsTopic,
        },
        metadata_response::MetadataResponseBroker,
    },
    protocol::StrBytes,
};
use mock_broker::{Handler, PASSWORD, USER, encode, serve};
use tokio::net::TcpListener;

/// (topic, partition, size, future replica)
type Replica = (&'static str, i32, i64, bool);

/// A broker of the cluster `brokers` holding `replicas`.
fn broker(brokers: Vec<(i32, u16)>, replicas: Vec<Replica>) -> Handler {
    Arc::new(move |api, version, id, _: Bytes| match api {
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
    })
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
        broker(
            ports.clone(),
            vec![
                ("orders", 0, 1_000, false),
                ("orders", 1, 2_000, false),
                ("audit", 0, 50, false),
            ],
        ),
    ));
    tokio::spawn(serve(
        second,
        broker(
            ports.clone(),
            vec![
                ("orders", 0, 1_000, false),
                ("orders", 1, 2_000, false),
                ("orders", 0, 1_000, true),
            ],
        ),
    ));
    format!("127.0.0.1:{}", ports[0].1)
}

#[tokio::test]
async fn log_dir_sizes_are_summed_over_every_replica_of_every_broker() {
    let credentials = Credentials {
        bootstrap: two_brokers().await,
        username: USER.into(),
        password: PASSWORD.into(),
        tls: None,
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
        tls: None,
    };
    assert!(matches!(
        stored_bytes(&credentials).await,
        Err(capstan_kafka::Error::Authentication(_))
    ));
}
