//! The Kafka gateway end to end: librdkafka (the `rdkafka` crate's bundled build) and Capstan's
//! own protocol client through the gateway to the real shared broker (tansu), two tenants on
//! one pool, hostile frames, and a pool broker that crashes.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::{
    collections::{BTreeMap, BTreeSet},
    time::{Duration, Instant},
};

use capstan_kafka::Connection;
use kafka_protocol::{
    messages::{
        ApiKey, ApiVersionsRequest, BrokerId, DeleteTopicsRequest, DescribeConfigsRequest,
        FetchRequest, GroupId, ListGroupsRequest, MetadataRequest, OffsetFetchRequest, TopicName,
        delete_topics_request::DeleteTopicState,
        describe_configs_request::DescribeConfigsResource,
        fetch_request::{FetchPartition, FetchTopic},
        metadata_request::MetadataRequestTopic,
        offset_fetch_request::OffsetFetchRequestTopic,
    },
    protocol::StrBytes,
};
use rdkafka::{
    ClientConfig, Message,
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    consumer::{BaseConsumer, CommitMode, Consumer},
    producer::{FutureProducer, FutureRecord},
};
use reqwest::Method;
use serde_json::Value;
use support::{Running, start};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// A librdkafka client of `cluster` through the gateway, with `mechanism`.
fn client(cluster: &Value, mechanism: &str) -> ClientConfig {
    let mut config = support::tcp(cluster);
    config.set("sasl.mechanism", mechanism);
    config
}

/// A Kafka-protocol connection to the gateway as `cluster`'s default credential.
async fn connect(cluster: &Value) -> Connection {
    Connection::open(
        cluster["tcp_endpoint"].as_str().unwrap(),
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    )
    .await
    .unwrap()
}

fn name(text: &str) -> TopicName {
    TopicName(StrBytes::from_string(text.to_owned()))
}

async fn produce(config: &ClientConfig, topic: &str, values: impl IntoIterator<Item = String>) {
    let producer: FutureProducer = config
        .clone()
        .set("acks", "all")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .create()
        .unwrap();
    let mut deliveries = Vec::new();
    for value in values {
        let key = value.clone();
        deliveries.push(
            producer
                .send_result(FutureRecord::to(topic).key(&key).payload(&value))
                .map_err(|(e, _)| e)
                .unwrap(),
        );
    }
    for delivery in deliveries {
        delivery.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

fn group_consumer(config: &ClientConfig, group: &str, topic: &str) -> BaseConsumer {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    consumer
}

/// Polls `consumer` once; the value of a message, if one came, committed at once (so what
/// a member read stays read whatever rebalances follow).
fn poll_value(consumer: &BaseConsumer) -> Option<String> {
    match consumer.poll(Duration::from_millis(100)) {
        Some(Ok(message)) => {
            consumer.commit_message(&message, CommitMode::Sync).unwrap();
            Some(String::from_utf8_lossy(message.payload().unwrap_or_default()).into_owned())
        }
        _ => None,
    }
}

/// Produce, consume in a group of two that rebalances, commit, resume from the committed
/// offsets, and administer topics — all with librdkafka through the gateway.
async fn librdkafka_round_trip(run: &Running, mechanism: &str) {
    let cluster = run.cluster(&format!("rd-{}", &mechanism[11..]), &[]).await;
    let config = client(&cluster, mechanism);

    // Admin: a topic made over Kafka is made by Capstan's rules and registered at once.
    let admin: AdminClient<DefaultClientContext> = config.create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let made = admin
        .create_topics(
            [&NewTopic::new("orders", 2, TopicReplication::Fixed(1))
                .set("retention.ms", "3600000")],
            &options,
        )
        .await
        .unwrap();
    assert!(made.iter().all(Result::is_ok), "{made:?}");
    let id = cluster["cluster_id"].as_str().unwrap();
    let listed = run
        .api(Method::GET, &format!("/v2/kafka/topics/{id}"), None)
        .await;
    assert_eq!(listed[0]["topic_name"], "orders");
    assert_eq!(listed[0]["partitions"], 2);
    assert_eq!(listed[0]["retention_time"], 3_600_000);
    let rest = run.rest(&cluster, Method::GET, "/topics", "", &[]).await;
    assert_eq!(rest["orders"], 2, "the REST gateway sees it too");
    let over_limit = admin
        .create_topics(
            [&NewTopic::new("huge", 100_000, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .unwrap();
    let refusal = over_limit[0].as_ref().unwrap_err();
    assert_eq!(
        refusal.1,
        rdkafka::types::RDKafkaErrorCode::PolicyViolation,
        "the plan's limit, with Kafka's error"
    );

    // Listing and configs.
    let consumer: BaseConsumer = config.create().unwrap();
    let metadata = consumer
        .fetch_metadata(None, Duration::from_secs(10))
        .unwrap();
    let topics: Vec<&str> = metadata.topics().iter().map(|t| t.name()).collect();
    assert_eq!(topics, vec!["orders"]);
    assert_eq!(
        metadata.brokers()[0].port() as u16,
        run.kafka
            .rsplit(':')
            .next()
            .unwrap()
            .parse::<u16>()
            .unwrap(),
        "the brokers are the gateway"
    );
    let described = admin
        .describe_configs([&ResourceSpecifier::Topic("orders")], &options)
        .await
        .unwrap();
    let entries = described[0].as_ref().unwrap();
    assert_eq!(
        entries
            .get("retention.ms")
            .and_then(|e| e.value.clone())
            .as_deref(),
        Some("3600000")
    );

    // Produce, then two members of one group share the partitions.
    produce(&config, "orders", (0..100).map(|i| format!("m{i}"))).await;
    let (first_seen, second_seen) = {
        let config = config.clone();
        tokio::task::spawn_blocking(move || {
            let first = group_consumer(&config, "g", "orders");
            let mut seen = BTreeMap::new();
            let deadline = Instant::now() + Duration::from_secs(60);
            while seen.len() < 10 {
                assert!(Instant::now() < deadline, "the first member got nothing");
                if let Some(value) = poll_value(&first) {
                    seen.insert(value, 1);
                }
            }
            let second = group_consumer(&config, "g", "orders");
            let mut first_partitions = BTreeSet::new();
            let mut second_partitions = BTreeSet::new();
            while seen.len() < 100 || first_partitions.is_empty() || second_partitions.is_empty() {
                assert!(
                    Instant::now() < deadline,
                    "after the rebalance: {} messages, assignments {first_partitions:?} / {second_partitions:?}",
                    seen.len()
                );
                for (member, consumer) in [(1, &first), (2, &second)] {
                    if let Some(value) = poll_value(consumer) {
                        seen.insert(value, member);
                    }
                }
                for element in first.assignment().unwrap().elements() {
                    first_partitions.insert(element.partition());
                }
                for element in second.assignment().unwrap().elements() {
                    second_partitions.insert(element.partition());
                }
            }
            // Dropping a consumer leaves the group.
            drop((first, second));
            let by_member = |m| seen.values().filter(|v| **v == m).count();
            (by_member(1), by_member(2))
        })
        .await
        .unwrap()
    };
    assert_eq!(first_seen + second_seen, 100);
    assert!(second_seen > 0, "the second member took partitions over");

    // A restart resumes from the committed offsets: only what came after.
    produce(&config, "orders", (100..110).map(|i| format!("m{i}"))).await;
    let resumed = tokio::task::spawn_blocking(move || {
        let consumer = group_consumer(&config, "g", "orders");
        let mut values = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while values.len() < 10 {
            assert!(Instant::now() < deadline, "resumed with {values:?}");
            if let Some(value) = poll_value(&consumer) {
                values.insert(value);
            }
        }
        // Nothing more arrives: nothing before the committed offsets came again.
        let quiet = Instant::now() + Duration::from_secs(2);
        while Instant::now() < quiet {
            if let Some(value) = poll_value(&consumer) {
                values.insert(value);
            }
        }
        values
    })
    .await
    .unwrap();
    let expected: BTreeSet<String> = (100..110).map(|i| format!("m{i}")).collect();
    assert_eq!(resumed, expected);

    run.sweep().await;
    assert_eq!(
        run.totals(&cluster).await["orders"].0,
        110,
        "metered by name"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_consumes_in_a_group_and_administers_topics_with_scram_sha_512() {
    let run = start(false).await;
    librdkafka_round_trip(&run, "SCRAM-SHA-512").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn librdkafka_produces_consumes_in_a_group_and_administers_topics_with_scram_sha_256() {
    let run = start(true).await;
    librdkafka_round_trip(&run, "SCRAM-SHA-256").await;
}

/// Committed offsets of `group` on `topic` as a tenant sees them.
async fn committed(connection: &mut Connection, group: &str, topic: &str) -> BTreeMap<i32, i64> {
    let answer = connection
        .call(
            OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_string(group.to_owned())))
                .with_topics(Some(vec![
                    OffsetFetchRequestTopic::default()
                        .with_name(name(topic))
                        .with_partition_indexes(vec![0, 1]),
                ])),
            7,
        )
        .await
        .unwrap();
    answer
        .topics
        .iter()
        .flat_map(|t| t.partitions.iter())
        .map(|p| (p.partition_index, p.committed_offset))
        .collect()
}

async fn consume_values(config: &ClientConfig, group: &str, count: usize) -> BTreeSet<String> {
    let config = config.clone();
    let group = group.to_owned();
    tokio::task::spawn_blocking(move || {
        let consumer = group_consumer(&config, &group, "orders");
        let mut values = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while values.len() < count {
            assert!(Instant::now() < deadline, "consumed {values:?}");
            if let Some(value) = poll_value(&consumer) {
                values.insert(value);
            }
        }
        values
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_tenants_with_the_same_names_on_one_pool_see_only_their_own() {
    let alice = start(false).await;
    let bob = alice.as_account(alice.account("bob@example.com").await);
    let a = alice.cluster("shop", &[("orders", 2)]).await;
    let b = bob.cluster("shop", &[("orders", 2)]).await;
    produce(
        &support::tcp(&a),
        "orders",
        (0..6).map(|i| format!("alice-{i}")),
    )
    .await;
    produce(
        &support::tcp(&b),
        "orders",
        (0..4).map(|i| format!("bob-{i}")),
    )
    .await;

    // Each group `g` reads its own cluster's messages only.
    let alices = consume_values(&support::tcp(&a), "g", 6).await;
    assert!(alices.iter().all(|v| v.starts_with("alice-")), "{alices:?}");
    let bobs = consume_values(&support::tcp(&b), "g", 4).await;
    assert!(bobs.iter().all(|v| v.starts_with("bob-")), "{bobs:?}");

    // Every listing is the tenant's own.
    let mut as_alice = connect(&a).await;
    let metadata = as_alice
        .call(MetadataRequest::default().with_topics(None), 12)
        .await
        .unwrap();
    let topics: Vec<String> = metadata
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().to_string())
        .collect();
    assert_eq!(topics, vec!["orders"]);
    assert_eq!(
        metadata.cluster_id.as_deref(),
        Some(a["cluster_id"].as_str().unwrap()),
        "the Kafka cluster id is the tenant's cluster"
    );
    let alice_topic_id = metadata.topics[0].topic_id;
    let groups = as_alice
        .call(ListGroupsRequest::default(), 4)
        .await
        .unwrap();
    let groups: Vec<String> = groups
        .groups
        .iter()
        .map(|g| g.group_id.to_string())
        .collect();
    assert_eq!(groups, vec!["g"]);
    let offsets = committed(&mut as_alice, "g", "orders").await;
    assert_eq!(
        offsets.values().map(|o| (*o).max(0)).sum::<i64>(),
        6,
        "alice's offsets: {offsets:?}"
    );
    let mut as_bob = connect(&b).await;
    let offsets = committed(&mut as_bob, "g", "orders").await;
    assert_eq!(
        offsets.values().map(|o| (*o).max(0)).sum::<i64>(),
        4,
        "bob's offsets: {offsets:?}"
    );
    let bob_metadata = as_bob
        .call(MetadataRequest::default().with_topics(None), 12)
        .await
        .unwrap();
    let bob_topic_id = bob_metadata.topics[0].topic_id;
    assert_ne!(alice_topic_id, bob_topic_id);

    // Bob's topic id is refused to Alice, by Fetch, Metadata and DeleteTopics.
    let fetched = as_alice
        .call(
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(10)
                .with_max_bytes(1 << 20)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic_id(bob_topic_id)
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_partition_max_bytes(1 << 20),
                        ]),
                ]),
            13,
        )
        .await
        .unwrap();
    let partition = &fetched.responses[0].partitions[0];
    assert_eq!(partition.error_code, 29, "TOPIC_AUTHORIZATION_FAILED");
    assert!(partition.records.as_ref().is_none_or(|r| r.is_empty()));
    let by_id = as_alice
        .call(
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_topic_id(bob_topic_id),
            ])),
            12,
        )
        .await
        .unwrap();
    assert_eq!(by_id.topics.len(), 1);
    assert_eq!(by_id.topics[0].error_code, 29);
    let deleted = as_alice
        .call(
            DeleteTopicsRequest::default()
                .with_topics(vec![
                    DeleteTopicState::default().with_topic_id(bob_topic_id),
                ])
                .with_timeout_ms(10_000),
            6,
        )
        .await
        .unwrap();
    assert_eq!(deleted.responses[0].error_code, 29);

    // Bob's name under his (never shown) prefix is just an unknown name in Alice's namespace.
    let bob_prefix: (String,) = sqlx::query_as("SELECT prefix FROM clusters WHERE id = $1")
        .bind(b["cluster_id"].as_str().unwrap())
        .fetch_one(alice.platform_state.store.pool())
        .await
        .unwrap();
    let guessed = format!("{}orders", bob_prefix.0);
    let guess = as_alice
        .call(
            MetadataRequest::default().with_topics(Some(vec![
                MetadataRequestTopic::default().with_name(Some(name(&guessed))),
            ])),
            12,
        )
        .await
        .unwrap();
    assert_eq!(
        guess.topics[0].error_code, 29,
        "TOPIC_AUTHORIZATION_FAILED: {guess:?}"
    );
    assert!(guess.topics[0].partitions.is_empty());

    // Configs: the tenant's topic; the pool's brokers are not the tenant's business.
    let configs = as_alice
        .call(
            DescribeConfigsRequest::default().with_resources(vec![
                DescribeConfigsResource::default()
                    .with_resource_type(2)
                    .with_resource_name(StrBytes::from_static_str("orders")),
                DescribeConfigsResource::default()
                    .with_resource_type(4)
                    .with_resource_name(StrBytes::from_static_str("111")),
            ]),
            1,
        )
        .await
        .unwrap();
    let by_type: BTreeMap<i8, i16> = configs
        .results
        .iter()
        .map(|r| (r.resource_type, r.error_code))
        .collect();
    assert_eq!(by_type, BTreeMap::from([(2, 0), (4, 31)]));

    // REST sees the same separation.
    let fetched = alice
        .rest(
            &a,
            Method::POST,
            "/fetch",
            r#"{"topic":"orders","partition":0,"offset":0}"#,
            &[],
        )
        .await;
    assert!(
        fetched
            .as_array()
            .unwrap()
            .iter()
            .all(|m| m["value"].as_str().unwrap().starts_with("alice-"))
    );

    // Metering reads each tenant's prefixed names: neither bill holds the other's messages.
    // Alice consumed her 6 in the group and, over REST, what that fetch returned.
    let fetched_count = fetched.as_array().unwrap().len() as i64;
    assert!(fetched_count > 0);
    alice.sweep().await;
    assert_eq!(alice.totals(&a).await["orders"], (6, 6 + fetched_count));
    assert_eq!(bob.totals(&b).await["orders"], (4, 4));

    // Deleting Alice's cluster removes her names from the pool and nothing of Bob's.
    alice
        .api(
            Method::DELETE,
            &format!("/v2/kafka/cluster/{}", a["cluster_id"].as_str().unwrap()),
            None,
        )
        .await;
    let mut as_bob = connect(&b).await;
    let after = as_bob
        .call(MetadataRequest::default().with_topics(None), 12)
        .await
        .unwrap();
    assert_eq!(after.topics.len(), 1);
    assert_eq!(after.topics[0].topic_id, bob_topic_id);
    let offsets = committed(&mut as_bob, "g", "orders").await;
    assert_eq!(
        offsets.values().map(|o| (*o).max(0)).sum::<i64>(),
        4,
        "{offsets:?}"
    );
    let remaining = pool_names(&alice.data_dir.join("brokers/pool-local/broker.db")).await;
    let expected = vec![
        format!("{}orders", bob_prefix.0),
        format!("{}g", bob_prefix.0),
    ];
    assert_eq!(
        remaining, expected,
        "bob's topic and group, nothing of alice's"
    );
}

/// Every topic and group name on the local pool's broker.
async fn pool_names(db: &std::path::Path) -> Vec<String> {
    use sqlx::Connection as _;
    let mut connection =
        sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", db.display()))
            .await
            .unwrap();
    let names: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM topic UNION ALL SELECT name FROM consumer_group")
            .fetch_all(&mut connection)
            .await
            .unwrap();
    names.into_iter().map(|(n,)| n).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_offered_versions_are_what_the_local_engine_can_take() {
    let run = start(false).await;
    let cluster = run.cluster("versions", &[("t", 1)]).await;
    let mut connection = connect(&cluster).await;
    let versions = connection
        .call(ApiVersionsRequest::default(), 3)
        .await
        .unwrap();
    let offered: BTreeMap<i16, (i16, i16)> = versions
        .api_keys
        .iter()
        .map(|k| (k.api_key, (k.min_version, k.max_version)))
        .collect();
    for key in [
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::Metadata,
        ApiKey::JoinGroup,
        ApiKey::CreateTopics,
        ApiKey::CreatePartitions,
        ApiKey::IncrementalAlterConfigs,
    ] {
        assert!(offered.contains_key(&(key as i16)), "{key:?} is offered");
    }
    for key in [
        ApiKey::DeleteRecords,
        ApiKey::DescribeGroups,
        ApiKey::EndTxn,
        ApiKey::AlterUserScramCredentials,
    ] {
        assert!(
            !offered.contains_key(&(key as i16)),
            "{key:?} is not offered"
        );
    }
    // A version that is not offered gets Kafka's error, not a dropped connection.
    let beyond = offered[&(ApiKey::Metadata as i16)].1 + 1;
    let answer = connection
        .call(MetadataRequest::default().with_topics(None), beyond)
        .await
        .unwrap();
    assert_eq!(answer.error_code, 35, "UNSUPPORTED_VERSION");
    let still = connection
        .call(MetadataRequest::default().with_topics(None), 12)
        .await
        .unwrap();
    assert_eq!(still.topics.len(), 1, "the connection goes on");
}

/// Writes one frame and reads until an answer or the end; true when the gateway closed it.
async fn closes_after(stream: &mut tokio::net::TcpStream, frame: &[u8]) -> bool {
    if stream.write_all(frame).await.is_err() {
        return true;
    }
    let mut buffer = [0u8; 4096];
    loop {
        match tokio::time::timeout(Duration::from_secs(5), stream.read(&mut buffer)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return true,
            Ok(Ok(_)) => continue,
            // Answered (or waiting for more): the connection stays up.
            Err(_) => return false,
        }
    }
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut frame = (body.len() as i32).to_be_bytes().to_vec();
    frame.extend_from_slice(body);
    frame
}

/// Valid requests of several APIs, encoded (header and body) for mutation.
fn valid_requests() -> Vec<Vec<u8>> {
    use kafka_protocol::{
        messages::{RequestHeader, RequestKind},
        protocol::Encodable,
    };
    let requests: Vec<(ApiKey, i16, RequestKind)> = vec![
        (
            ApiKey::Metadata,
            12,
            MetadataRequest::default().with_topics(None).into(),
        ),
        (
            ApiKey::Fetch,
            12,
            FetchRequest::default()
                .with_replica_id(BrokerId(-1))
                .with_max_wait_ms(10)
                .with_topics(vec![
                    FetchTopic::default()
                        .with_topic(name("t"))
                        .with_partitions(vec![
                            FetchPartition::default()
                                .with_partition(0)
                                .with_partition_max_bytes(1024),
                        ]),
                ])
                .into(),
        ),
        (
            ApiKey::OffsetFetch,
            7,
            OffsetFetchRequest::default()
                .with_group_id(GroupId(StrBytes::from_static_str("g")))
                .with_topics(None)
                .into(),
        ),
        (ApiKey::ListGroups, 4, ListGroupsRequest::default().into()),
    ];
    requests
        .into_iter()
        .map(|(key, version, body)| {
            let mut out = bytes::BytesMut::new();
            RequestHeader::default()
                .with_request_api_key(key as i16)
                .with_request_api_version(version)
                .with_correlation_id(1)
                .encode(&mut out, key.request_header_version(version))
                .unwrap();
            body.encode(&mut out, version).unwrap();
            out.to_vec()
        })
        .collect()
}

fn rejected(metrics: &str, reason: &str) -> u64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with("capstan_kafka_gateway_rejected_total{")
                && l.contains(&format!("reason=\"{reason}\""))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_frames_close_only_their_own_connection() {
    use rand::{Rng, SeedableRng, rngs::StdRng};
    let run = start(false).await;
    let cluster = run.cluster("hostile", &[("t", 1)]).await;
    produce(
        &support::tcp(&cluster),
        "t",
        (0..5).map(|i| format!("before-{i}")),
    )
    .await;
    let address = run.kafka.clone();
    let plain = || tokio::net::TcpStream::connect(address.clone());

    // Before authentication: too large, negative, truncated, unknown API, a real request.
    assert!(closes_after(&mut plain().await.unwrap(), &i32::MAX.to_be_bytes()).await);
    assert!(closes_after(&mut plain().await.unwrap(), &(-7i32).to_be_bytes()).await);
    assert!(
        closes_after(
            &mut plain().await.unwrap(),
            &framed(&[0x7f, 0x00, 0, 0, 0, 0, 0, 1, 0, 0])
        )
        .await
    );
    let metadata = &valid_requests()[0];
    assert!(closes_after(&mut plain().await.unwrap(), &framed(metadata)).await);
    {
        let mut truncated = plain().await.unwrap();
        truncated.write_all(&100i32.to_be_bytes()).await.unwrap();
        truncated.write_all(&[0, 18, 0, 3]).await.unwrap();
        truncated.shutdown().await.unwrap();
        let mut rest = Vec::new();
        let _ =
            tokio::time::timeout(Duration::from_secs(5), truncated.read_to_end(&mut rest)).await;
    }

    // Random frames before authentication, and valid requests mutated after it (the gateway
    // decodes what reaches the pool: nothing malformed may get there).
    let mut rng = StdRng::seed_from_u64(20_261_201);
    for _ in 0..100 {
        let length = rng.gen_range(0..600);
        let body: Vec<u8> = (0..length).map(|_| rng.r#gen()).collect();
        let mut stream = plain().await.unwrap();
        let _ = closes_after(&mut stream, &framed(&body)).await;
    }
    let valid = valid_requests();
    for round in 0..150 {
        let mut body = valid[round % valid.len()].clone();
        match rng.gen_range(0..3) {
            0 => {
                for _ in 0..rng.gen_range(1..4) {
                    let at = rng.gen_range(0..body.len());
                    body[at] = rng.r#gen();
                }
            }
            1 => body.truncate(rng.gen_range(0..body.len())),
            _ => {
                let at = rng.gen_range(8..body.len());
                body[at..].iter_mut().for_each(|b| *b = rng.r#gen());
            }
        }
        let (mut stream, _) = connect(&cluster).await.into_stream().unwrap();
        let _ = closes_after(&mut stream, &framed(&body)).await;
    }

    // Everyone else was served all along, and still is: a real client produces and reads.
    let config = support::tcp(&cluster);
    produce(&config, "t", (0..5).map(|i| format!("after-{i}"))).await;
    let values = tokio::task::spawn_blocking(move || {
        let consumer = group_consumer(&config, "after", "t");
        let mut values = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while values.len() < 10 {
            assert!(Instant::now() < deadline, "{values:?}");
            if let Some(value) = poll_value(&consumer) {
                values.insert(value);
            }
        }
        values
    })
    .await
    .unwrap();
    assert_eq!(values.len(), 10);
    let metrics = run.metrics_text().await;
    for reason in [
        "frame_too_large",
        "unknown_api_key",
        "unauthenticated_request",
        "malformed",
    ] {
        assert!(rejected(&metrics, reason) > 0, "{reason} is counted");
    }
}

/// The pid of the local pool's broker.
fn pool_broker_pid(data_dir: &std::path::Path) -> nix::unistd::Pid {
    let pool = std::fs::canonicalize(data_dir.join("brokers/pool-local")).unwrap();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cwd = std::fs::read_link(entry.path().join("cwd")).ok();
        let cmdline = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        if cwd.as_deref() == Some(pool.as_path())
            && String::from_utf8_lossy(&cmdline).contains("broker")
        {
            return nix::unistd::Pid::from_raw(pid);
        }
    }
    panic!("no pool broker in {}", pool.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_carry_on_when_the_pool_broker_crashes_and_comes_back() {
    use nix::sys::signal::{Signal, kill};
    let run = start(false).await;
    let cluster = run.cluster("crash", &[("t", 1)]).await;
    let config = support::tcp(&cluster);
    produce(&config, "t", (0..5).map(|i| format!("before-{i}"))).await;
    kill(pool_broker_pid(&run.data_dir), Signal::SIGKILL).unwrap();
    // The producer retries through the gateway until the supervisor has the broker back.
    produce(&config, "t", (0..5).map(|i| format!("after-{i}"))).await;
    let mut connection = connect(&cluster).await;
    let metadata = connection
        .call(MetadataRequest::default().with_topics(None), 12)
        .await
        .unwrap();
    assert_eq!(metadata.topics.len(), 1);
    let values = tokio::task::spawn_blocking(move || {
        let consumer = group_consumer(&config, "g", "t");
        let mut values = BTreeSet::new();
        let deadline = Instant::now() + Duration::from_secs(60);
        while values.len() < 10 {
            assert!(Instant::now() < deadline, "{values:?}");
            if let Some(value) = poll_value(&consumer) {
                values.insert(value);
            }
        }
        values
    })
    .await
    .unwrap();
    assert_eq!(values.len(), 10, "nothing lost: {values:?}");
}

/// On the local engine deleting a topic restarts the pool's broker. A client that pipelines
/// Metadata, DeleteTopics and Metadata holds its broker connection across the restart; the
/// gateway replaces the connection the broker closed instead of failing the third request.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_carries_on_across_the_broker_restart_its_own_topic_delete_causes() {
    let run = start(false).await;
    let cluster = run.cluster("restarts", &[("t", 1), ("gone", 1)]).await;
    let pid = pool_broker_pid(&run.data_dir);
    let (mut stream, _) = connect(&cluster).await.into_stream().unwrap();
    let metadata = || MetadataRequest::default().with_topics(None).into();
    let delete = DeleteTopicsRequest::default()
        .with_topic_names(vec![name("gone")])
        .with_timeout_ms(30_000)
        .into();
    let mut frames = request_frame(ApiKey::Metadata, 12, 1, metadata());
    frames.extend(request_frame(ApiKey::DeleteTopics, 4, 2, delete));
    frames.extend(request_frame(ApiKey::Metadata, 12, 3, metadata()));
    stream.write_all(&frames).await.unwrap();
    let mut last = Vec::new();
    for expected in 1..=3 {
        let size = tokio::time::timeout(Duration::from_secs(30), stream.read_i32())
            .await
            .expect("answered in time")
            .unwrap();
        let mut body = vec![0u8; size as usize];
        stream.read_exact(&mut body).await.unwrap();
        assert_eq!(i32::from_be_bytes(body[0..4].try_into().unwrap()), expected);
        last = body;
    }
    assert_ne!(
        pool_broker_pid(&run.data_dir),
        pid,
        "the delete restarted the broker"
    );
    let answer = {
        use kafka_protocol::protocol::Decodable;
        let mut bytes = bytes::Bytes::from(last);
        kafka_protocol::messages::ResponseHeader::decode(&mut bytes, 1).unwrap();
        kafka_protocol::messages::MetadataResponse::decode(&mut bytes, 12).unwrap()
    };
    let names: Vec<&str> = answer
        .topics
        .iter()
        .map(|t| t.name.as_ref().unwrap().as_str())
        .collect();
    assert_eq!(names, vec!["t"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_default_credential_administers_topics_over_kafka() {
    let run = start(false).await;
    let cluster = run.cluster("admins", &[("orders", 1)]).await;
    let scoped = run
        .api(
            Method::POST,
            "/v2/kafka/credential",
            Some(serde_json::json!({ "credential_name": "reader", "cluster_id": cluster["cluster_id"],
                "topic": "*", "permissions": "CONSUME" })),
        )
        .await;
    let as_scoped = support::tcp(&serde_json::json!({
        "tcp_endpoint": cluster["tcp_endpoint"], "username": scoped["username"], "password": scoped["password"]
    }));
    let admin: AdminClient<DefaultClientContext> = as_scoped.create().unwrap();
    let options = AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)));
    let made = admin
        .create_topics(
            [&NewTopic::new("new", 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .unwrap();
    assert_eq!(
        made[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
    );
    let deleted = admin.delete_topics(&["orders"], &options).await.unwrap();
    assert_eq!(
        deleted[0].as_ref().unwrap_err().1,
        rdkafka::types::RDKafkaErrorCode::TopicAuthorizationFailed
    );
    let id = cluster["cluster_id"].as_str().unwrap();
    let topics = run
        .api(Method::GET, &format!("/v2/kafka/topics/{id}"), None)
        .await;
    assert_eq!(
        topics.as_array().unwrap().len(),
        1,
        "nothing made, nothing deleted"
    );
    // The default credential may.
    let admin: AdminClient<DefaultClientContext> = support::tcp(&cluster).create().unwrap();
    let made = admin
        .create_topics(
            [&NewTopic::new("new", 1, TopicReplication::Fixed(1))],
            &options,
        )
        .await
        .unwrap();
    assert!(made[0].is_ok(), "{made:?}");
}

/// A request frame (size prefix, header and body).
fn request_frame(
    key: ApiKey,
    version: i16,
    correlation: i32,
    body: kafka_protocol::messages::RequestKind,
) -> Vec<u8> {
    use kafka_protocol::{messages::RequestHeader, protocol::Encodable};
    let mut out = bytes::BytesMut::new();
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation)
        .encode(&mut out, key.request_header_version(version))
        .unwrap();
    body.encode(&mut out, version).unwrap();
    framed(&out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_pipelined_requests_is_answered_in_order() {
    let run = start(false).await;
    let cluster = run.cluster("burst", &[("t", 1)]).await;
    let (mut stream, _) = connect(&cluster).await.into_stream().unwrap();
    // Far more than the requests a connection keeps in flight, in one write.
    let mut burst = Vec::new();
    for correlation in 1..=300 {
        burst.extend(request_frame(
            ApiKey::Metadata,
            12,
            correlation,
            MetadataRequest::default().with_topics(None).into(),
        ));
    }
    stream.write_all(&burst).await.unwrap();
    for expected in 1..=300 {
        let size = tokio::time::timeout(Duration::from_secs(20), stream.read_i32())
            .await
            .expect("answered in time")
            .unwrap();
        let mut body = vec![0u8; size as usize];
        stream.read_exact(&mut body).await.unwrap();
        let correlation = i32::from_be_bytes(body[0..4].try_into().unwrap());
        assert_eq!(correlation, expected, "answers in request order");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_connection_closed_for_bad_input_is_closed_promptly_with_its_requests_answered_upstream()
{
    let run = start(false).await;
    let cluster = run.cluster("bad", &[("t", 1)]).await;
    let (mut stream, _) = connect(&cluster).await.into_stream().unwrap();
    // A real request and, in the same write, an API key Kafka does not have.
    let mut write = request_frame(
        ApiKey::Metadata,
        12,
        1,
        MetadataRequest::default().with_topics(None).into(),
    );
    write.extend(framed(&[0x7f, 0x00, 0, 1, 0, 0, 0, 2, 0, 0]));
    stream.write_all(&write).await.unwrap();
    let mut rest = Vec::new();
    tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut rest))
        .await
        .expect("the gateway closes the connection")
        .unwrap();
    // The broker connection it used is not left waiting: the pool still serves everyone.
    produce(
        &support::tcp(&cluster),
        "t",
        (0..3).map(|i| format!("after-{i}")),
    )
    .await;
}

/// A CA, and a certificate it signed for `localhost` and 127.0.0.1 with its key (PEM).
fn certificates() -> (String, String, String) {
    use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, KeyPair, SanType};
    let ca_key = KeyPair::generate().unwrap();
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca_params
        .distinguished_name
        .push(DnType::CommonName, "Capstan test CA");
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = ca_params.self_signed(&ca_key).unwrap();
    let key = KeyPair::generate().unwrap();
    let mut params = CertificateParams::new(vec!["localhost".to_owned()]).unwrap();
    // A subject of its own: one equal to the issuer's reads as self-signed to OpenSSL.
    params
        .distinguished_name
        .push(DnType::CommonName, "localhost");
    params
        .subject_alt_names
        .push(SanType::IpAddress("127.0.0.1".parse().unwrap()));
    let certificate = params.signed_by(&key, &ca, &ca_key).unwrap();
    (ca.pem(), certificate.pem(), key.serialize_pem())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_takes_sasl_ssl_with_plain_and_scram() {
    let files = tempfile::tempdir().unwrap();
    let (ca, certificate, key) = certificates();
    let path = |name: &str, text: &str| {
        let path = files.path().join(name);
        std::fs::write(&path, text).unwrap();
        path
    };
    let (ca, certificate, key) = (
        path("ca.pem", &ca),
        path("gateway.pem", &certificate),
        path("gateway.key", &key),
    );
    let run = support::start_with_kafka(capstan_api::app::KafkaListen {
        tls: Some((certificate, key)),
        ..capstan_api::app::KafkaListen::loopback()
    })
    .await;
    let cluster = run.cluster("tls", &[("t", 1)]).await;
    for mechanism in ["PLAIN", "SCRAM-SHA-512", "SCRAM-SHA-256"] {
        let mut config = support::tcp(&cluster);
        config
            .set("security.protocol", "SASL_SSL")
            .set("sasl.mechanism", mechanism)
            .set("ssl.ca.location", ca.to_str().unwrap());
        produce(&config, "t", [format!("over {mechanism}")]).await;
    }
    assert_eq!(
        run.rest(
            &cluster,
            Method::POST,
            "/fetch",
            r#"{"topic":"t","partition":0,"offset":0}"#,
            &[]
        )
        .await
        .as_array()
        .unwrap()
        .len(),
        3
    );
    // A client that does not speak TLS gets nowhere.
    let mut plain = tokio::net::TcpStream::connect(&run.kafka).await.unwrap();
    let handshake = request_frame(
        ApiKey::ApiVersions,
        3,
        1,
        ApiVersionsRequest::default().into(),
    );
    assert!(closes_after(&mut plain, &handshake).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_is_refused_without_tls() {
    use kafka_protocol::messages::SaslHandshakeRequest;
    let run = start(false).await;
    let mut stream = tokio::net::TcpStream::connect(&run.kafka).await.unwrap();
    let handshake = request_frame(
        ApiKey::SaslHandshake,
        1,
        7,
        SaslHandshakeRequest::default()
            .with_mechanism(StrBytes::from_static_str("PLAIN"))
            .into(),
    );
    stream.write_all(&handshake).await.unwrap();
    let size = stream.read_i32().await.unwrap();
    let mut body = vec![0u8; size as usize];
    stream.read_exact(&mut body).await.unwrap();
    let mut body = bytes::Bytes::from(body);
    let (_, answer) = (
        <kafka_protocol::messages::ResponseHeader as kafka_protocol::protocol::Decodable>::decode(&mut body, 0).unwrap(),
        <kafka_protocol::messages::SaslHandshakeResponse as kafka_protocol::protocol::Decodable>::decode(&mut body, 1).unwrap(),
    );
    assert_eq!(answer.error_code, 33, "UNSUPPORTED_SASL_MECHANISM");
    let offered: Vec<&str> = answer.mechanisms.iter().map(|m| m.as_str()).collect();
    assert_eq!(offered, vec!["SCRAM-SHA-512", "SCRAM-SHA-256"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_address_that_keeps_failing_to_authenticate_is_locked_out_of_every_way_in() {
    let run = start(false).await;
    let cluster = run.cluster("locked", &[("t", 1)]).await;
    let endpoint = cluster["tcp_endpoint"].as_str().unwrap();
    let username = cluster["username"].as_str().unwrap();
    let password = cluster["password"].as_str().unwrap();
    // 100 failures from this address, counted together: SASL, REST Basic and API keys.
    for _ in 0..50 {
        let wrong = Connection::open(endpoint, username, "not-the-password").await;
        assert!(wrong.is_err());
    }
    for _ in 0..30 {
        let wrong = run
            .http
            .get(format!("{}/topics", run.gateway))
            .basic_auth(username, Some("not-the-password"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
    }
    for _ in 0..20 {
        let wrong = run
            .http
            .get(format!("{}/v2/kafka/clusters", run.api))
            .basic_auth(&run.auth.0, Some("not-the-key"))
            .send()
            .await
            .unwrap();
        assert_eq!(wrong.status(), 401);
    }

    // Now even the right credentials are not looked at, on any way in, until the window moves.
    let refused = Connection::open(endpoint, username, password)
        .await
        .expect_err("the right password is refused while the address is locked out");
    assert!(
        refused
            .to_string()
            .contains("too many failed authentications from this address"),
        "{refused}"
    );
    let rest = run
        .http
        .get(format!("{}/topics", run.gateway))
        .basic_auth(username, Some(password))
        .send()
        .await
        .unwrap();
    assert_eq!(rest.status(), 429);
    let wait: u64 = rest.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((800..=900).contains(&wait), "about 15 minutes: {wait}");
    let body: Value = rest.json().await.unwrap();
    assert_eq!(body["status"], 429, "{body}");
    let api = run
        .http
        .get(format!("{}/v2/kafka/clusters", run.api))
        .basic_auth(&run.auth.0, Some(&run.auth.1))
        .send()
        .await
        .unwrap();
    assert_eq!(api.status(), 429);
    let metrics = run.metrics_text().await;
    assert!(rejected(&metrics, "authentication_locked_out") > 0);
    // People's log-ins have limits of their own: the console and `/v2/auth/login` still work.
    let session = run
        .http
        .post(format!("{}/v2/auth/login", run.api))
        .json(&serde_json::json!({ "email": run.auth.0, "password": "metering password" }))
        .send()
        .await
        .unwrap();
    assert_eq!(session.status(), 200);
}
