//! Committed offsets read on kept connections ([`GroupOffsets`]) against a mock broker: the
//! answer follows the request's order with `-1` where nothing is committed, and a connection
//! that broke is opened again once.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod mock_broker;

use std::sync::{Arc, Mutex};

use bytes::Bytes;
use capstan_kafka::{Credentials, GroupOffsets};
use kafka_protocol::{
    messages::{
        ApiKey, FindCoordinatorResponse, OffsetFetchRequest, OffsetFetchResponse,
        offset_fetch_response::{OffsetFetchResponsePartition, OffsetFetchResponseTopic},
    },
    protocol::{Decodable, StrBytes},
};
use mock_broker::{PASSWORD, USER, encode};

/// A broker that coordinates every group itself and has committed offset 7 for partition 0
/// of `t` in group `g` only; the first `broken` OffsetFetch answers carry a wrong correlation
/// id (a broken connection).
async fn broker(broken: usize) -> Credentials {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let fetches = Arc::new(Mutex::new(0usize));
    tokio::spawn(mock_broker::serve(
        listener,
        Arc::new(move |api, version, id, mut body: Bytes| match api {
            ApiKey::FindCoordinator => encode(
                id,
                version,
                FindCoordinatorResponse::default()
                    .with_host(StrBytes::from_string(address.ip().to_string()))
                    .with_port(i32::from(address.port())),
            ),
            ApiKey::OffsetFetch => {
                let request = OffsetFetchRequest::decode(&mut body, version).unwrap();
                let mut fetched = fetches.lock().unwrap();
                *fetched += 1;
                let correlation = if *fetched <= broken { id + 1000 } else { id };
                let topics = request
                    .topics
                    .unwrap()
                    .into_iter()
                    .map(|topic| {
                        let partitions = topic
                            .partition_indexes
                            .iter()
                            .map(|&p| {
                                let committed = request.group_id.as_str() == "g"
                                    && topic.name.as_str() == "t"
                                    && p == 0;
                                OffsetFetchResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_committed_offset(if committed { 7 } else { -1 })
                            })
                            .collect();
                        OffsetFetchResponseTopic::default()
                            .with_name(topic.name)
                            .with_partitions(partitions)
                    })
                    .collect();
                encode(
                    correlation,
                    version,
                    OffsetFetchResponse::default().with_topics(topics),
                )
            }
            other => panic!("unexpected {other:?}"),
        }),
    ));
    Credentials {
        bootstrap: address.to_string(),
        username: USER.into(),
        password: PASSWORD.into(),
        tls: None,
    }
}

fn partitions(list: &[(&str, i32)]) -> Vec<(String, i32)> {
    list.iter().map(|(t, p)| ((*t).to_owned(), *p)).collect()
}

#[tokio::test]
async fn offsets_come_back_in_request_order_with_minus_one_where_nothing_is_committed() {
    let reader = GroupOffsets::new(&broker(0).await);
    let asked = partitions(&[("u", 0), ("t", 1), ("t", 0)]);
    assert_eq!(reader.committed("g", &asked).await.unwrap(), [-1, -1, 7]);
    assert_eq!(
        reader.committed("other", &asked).await.unwrap(),
        [-1, -1, -1],
        "another group's commits are its own"
    );
}

#[tokio::test]
async fn a_broken_connection_is_opened_again_once_and_a_lasting_fault_is_an_error() {
    let reader = GroupOffsets::new(&broker(1).await);
    assert_eq!(
        reader
            .committed("g", &partitions(&[("t", 0)]))
            .await
            .unwrap(),
        [7],
        "read again on a new connection"
    );
    let failing = GroupOffsets::new(&broker(2).await);
    let error = failing
        .committed("g", &partitions(&[("t", 0)]))
        .await
        .unwrap_err();
    assert!(error.to_string().contains("out of order"), "{error}");
    assert_eq!(
        failing
            .committed("g", &partitions(&[("t", 0)]))
            .await
            .unwrap(),
        [7],
        "the next read starts afresh"
    );
}
