//! Consumption is metered where records are delivered — in the Kafka gateway's Fetch answers
//! and the REST gateway's `/consume` and `/fetch` answers — whether or not a consumer ever
//! commits.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::time::{Duration, Instant};

use rdkafka::{
    Message,
    consumer::{BaseConsumer, Consumer},
};
use reqwest::Method;
use support::{produce_tcp, start};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumers_that_never_commit_are_billed_exactly_for_what_they_were_delivered() {
    let run = start(false).await;
    let cluster = run.cluster("readers", &[("tcp", 2), ("rest", 1)]).await;
    produce_tcp(&cluster, "tcp", 1_000, 20).await;
    produce_tcp(&cluster, "rest", 500, 20).await;

    // 1,000 over TCP by a group member that never commits.
    let mut config = support::tcp(&cluster);
    let read = tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .set("group.id", "never-commits")
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&["tcp"]).unwrap();
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut read = 0;
        while read < 1_000 {
            assert!(Instant::now() < deadline, "read only {read}");
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                assert!(message.payload().is_some());
                read += 1;
            }
        }
        read
    })
    .await
    .unwrap();
    assert_eq!(read, 1_000);

    // 500 over REST `/consume` with auto-commit off, never committed either.
    let settings = [
        ("Kafka-Auto-Offset-Reset", "earliest"),
        ("Kafka-Enable-Auto-Commit", "false"),
    ];
    let mut got = 0;
    let deadline = Instant::now() + Duration::from_secs(60);
    while got < 500 {
        assert!(Instant::now() < deadline, "got only {got}");
        let batch = run
            .rest(
                &cluster,
                Method::GET,
                "/consume/rest-readers/one/rest?timeout=1000",
                "",
                &settings,
            )
            .await;
        got += batch.as_array().unwrap().len();
    }
    assert_eq!(got, 500);

    run.sweep().await;
    let totals = run.totals(&cluster).await;
    assert_eq!(totals["tcp"], (1_000, 1_000));
    assert_eq!(totals["rest"], (500, 500));
    run.sweep().await;
    assert_eq!(run.totals(&cluster).await, totals, "nothing counted twice");
}
