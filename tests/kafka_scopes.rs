//! Credential scopes over TCP with librdkafka through the Kafka gateway: every credential kind
//! against every kind of operation on the cluster's topics and on another tenant's, allowed or
//! refused with Kafka's own error code, and the refused ones change nothing.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use capstan_kafka::Connection;
use kafka_protocol::messages::ListGroupsRequest;
use rdkafka::{
    ClientConfig, Message,
    admin::{
        AdminClient, AdminOptions, AlterConfig, NewTopic, ResourceSpecifier, TopicReplication,
    },
    client::DefaultClientContext,
    consumer::{BaseConsumer, Consumer},
    error::KafkaError,
    producer::{FutureProducer, FutureRecord},
    types::RDKafkaErrorCode,
};
use reqwest::Method;
use serde_json::{Value, json};
use support::{Running, start};

/// What a cell of the matrix should give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Outcome {
    Allowed,
    Refused(RDKafkaErrorCode),
}
use Outcome::{Allowed, Refused};

const TOPIC: RDKafkaErrorCode = RDKafkaErrorCode::TopicAuthorizationFailed;
const GROUP: RDKafkaErrorCode = RDKafkaErrorCode::GroupAuthorizationFailed;
/// `retention.ms` set by the alter cells: row `r` asks for `ALTERED + r`.
const ALTERED: i64 = 3_600_000;

/// A credential of `cluster` as a librdkafka configuration through the gateway.
async fn credential(
    run: &Running,
    cluster: &Value,
    name: &str,
    topic: &str,
    permissions: &str,
) -> Value {
    let made = run
        .api(
            Method::POST,
            "/v2/kafka/credential",
            Some(
                json!({ "credential_name": name, "cluster_id": cluster["cluster_id"],
                "topic": topic, "permissions": permissions }),
            ),
        )
        .await;
    json!({
        "tcp_endpoint": cluster["tcp_endpoint"], "username": made["username"], "password": made["password"]
    })
}

fn code(error: &KafkaError) -> RDKafkaErrorCode {
    error
        .rdkafka_error_code()
        .unwrap_or_else(|| panic!("no error code in {error:?}"))
}

async fn produce(config: &ClientConfig, topic: &str) -> Outcome {
    let producer: FutureProducer = config
        .clone()
        .set("message.timeout.ms", "15000")
        .create()
        .unwrap();
    let sent = producer
        .send(
            FutureRecord::<(), str>::to(topic).payload("cell"),
            Duration::from_secs(15),
        )
        .await;
    match sent {
        Ok(_) => Allowed,
        Err((error, _)) => Refused(code(&error)),
    }
}

/// Joins group `group` on `topic` and reads until a message or an error comes.
fn consume(config: &ClientConfig, group: &str, topic: &str) -> Outcome {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", group)
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "10000")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        match consumer.poll(Duration::from_millis(200)) {
            Some(Ok(message)) => {
                assert!(message.payload().is_some());
                return Allowed;
            }
            Some(Err(error)) => return Refused(code(&error)),
            None => {}
        }
    }
    panic!("neither a message nor an error from {topic} in group {group}");
}

fn admin(config: &ClientConfig) -> AdminClient<DefaultClientContext> {
    config.create().unwrap()
}

fn options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(Duration::from_secs(20)))
}

async fn create_topic(config: &ClientConfig, name: &str) -> Outcome {
    let made = admin(config)
        .create_topics(
            [&NewTopic::new(name, 1, TopicReplication::Fixed(1))],
            &options(),
        )
        .await
        .unwrap();
    match &made[0] {
        Ok(_) => Allowed,
        Err((_, code)) => Refused(*code),
    }
}

async fn delete_topic(config: &ClientConfig, name: &str) -> Outcome {
    let deleted = admin(config)
        .delete_topics(&[name], &options())
        .await
        .unwrap();
    match &deleted[0] {
        Ok(_) => Allowed,
        Err((_, code)) => Refused(*code),
    }
}

/// Asks to set `retention.ms` of `name` to `value`. The `rdkafka` crate reports every
/// AlterConfigs answer as a success (it drops the per-resource error codes), so the effect is
/// checked in the store afterwards, not here.
async fn alter_config(config: &ClientConfig, name: &str, value: i64) {
    let value = value.to_string();
    admin(config)
        .alter_configs(
            [&AlterConfig::new(ResourceSpecifier::Topic(name)).set("retention.ms", &value)],
            &options(),
        )
        .await
        .unwrap();
}

fn list_topics(config: &ClientConfig) -> BTreeSet<String> {
    let consumer: BaseConsumer = config.create().unwrap();
    consumer
        .fetch_metadata(None, Duration::from_secs(15))
        .unwrap()
        .topics()
        .iter()
        .map(|t| t.name().to_owned())
        .collect()
}

/// The groups `credential` sees in ListGroups. (DescribeGroups is not offered on the local
/// engine, whose broker drops the connection for it: see docs/kafka-gateway.md.)
async fn list_groups(credential: &Value) -> BTreeSet<String> {
    let mut connection = Connection::open(
        credential["tcp_endpoint"].as_str().unwrap(),
        credential["username"].as_str().unwrap(),
        credential["password"].as_str().unwrap(),
    )
    .await
    .unwrap();
    let listed = connection
        .call(ListGroupsRequest::default(), 4)
        .await
        .unwrap();
    assert_eq!(listed.error_code, 0);
    listed
        .groups
        .iter()
        .map(|g| g.group_id.to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_credential_kind_gets_exactly_what_its_scope_allows_over_kafka() {
    let run = start(false).await;
    let other = run.as_account(run.account("other@example.com").await);
    let secret = other.cluster("theirs", &[("secret", 1)]).await;
    let theirs = format!("{}secret", prefix_of(&run, &secret).await);
    produce(&support::tcp(&secret), "secret").await;

    let cluster = run
        .cluster("scoped", &[("payments", 1), ("orders", 1)])
        .await;
    let default_credential = json!({ "tcp_endpoint": cluster["tcp_endpoint"],
        "username": cluster["username"], "password": cluster["password"] });
    let default = support::tcp(&cluster);
    for topic in ["payments", "orders"] {
        assert_eq!(produce(&default, topic).await, Allowed);
    }
    let producer_credential = credential(&run, &cluster, "producer", "pay*", "PRODUCE").await;
    let consumer_credential = credential(&run, &cluster, "consumer", "pay*", "CONSUME").await;
    let producer = support::tcp(&producer_credential);
    let consumer = support::tcp(&consumer_credential);
    let orders_only = support::tcp(&credential(&run, &cluster, "orders", "orders", "ALL").await);
    let kinds = [
        ("default", &default),
        ("PRODUCE pay*", &producer),
        ("CONSUME pay*", &consumer),
        ("ALL orders", &orders_only),
    ];
    let topics = ["payments", "orders", theirs.as_str()];

    // Produce and consume: the rule, cell by cell.
    let may_produce = [
        [Allowed, Allowed, Refused(TOPIC)],
        [Allowed, Refused(TOPIC), Refused(TOPIC)],
        [Refused(TOPIC), Refused(TOPIC), Refused(TOPIC)],
        [Refused(TOPIC), Allowed, Refused(TOPIC)],
    ];
    let may_consume = [
        [Allowed, Allowed, Refused(TOPIC)],
        [Refused(GROUP), Refused(GROUP), Refused(GROUP)],
        [Allowed, Refused(TOPIC), Refused(TOPIC)],
        [Refused(TOPIC), Allowed, Refused(TOPIC)],
    ];
    for (row, (kind, config)) in kinds.iter().enumerate() {
        for (column, topic) in topics.iter().enumerate() {
            let produced = produce(config, topic).await;
            assert_eq!(
                produced, may_produce[row][column],
                "{kind} produce to {topic}"
            );
            let group = format!("g-{row}-{column}");
            let (config, topic) = ((*config).clone(), topic.to_string());
            let consumed = tokio::task::spawn_blocking(move || consume(&config, &group, &topic))
                .await
                .unwrap();
            assert_eq!(
                consumed, may_consume[row][column],
                "{kind} consume {}",
                topics[column]
            );
        }
    }

    // Administration: only the default credential, and never under another cluster's name.
    for (row, (kind, config)) in kinds.iter().enumerate() {
        for (column, topic) in topics.iter().enumerate() {
            let expected = match (row, column) {
                (0, 2) => Refused(RDKafkaErrorCode::InvalidTopic),
                (0, _) => Allowed,
                _ => Refused(TOPIC),
            };
            let made = create_topic(config, &format!("{topic}-new")).await;
            assert_eq!(made, expected, "{kind} create {topic}-new");
            alter_config(config, topic, ALTERED + row as i64).await;
            if row > 0 {
                assert_eq!(
                    delete_topic(config, topic).await,
                    Refused(TOPIC),
                    "{kind} delete {topic}"
                );
            }
        }
    }
    assert_eq!(delete_topic(&default, &theirs).await, Refused(TOPIC));
    assert_eq!(delete_topic(&default, "payments-new").await, Allowed);

    // Listings: each credential sees the topics of its scope; groups only with CONSUME.
    let all: BTreeSet<String> = ["orders", "orders-new", "payments"]
        .map(String::from)
        .into();
    let seen: Vec<BTreeSet<String>> = kinds.iter().map(|(_, c)| list_topics(c)).collect();
    assert_eq!(seen[0], all);
    assert_eq!(seen[1], BTreeSet::from(["payments".to_owned()]));
    assert_eq!(seen[2], BTreeSet::from(["payments".to_owned()]));
    assert_eq!(seen[3], BTreeSet::from(["orders".to_owned()]));
    let groups = list_groups(&default_credential).await;
    assert!(
        groups.contains("g-0-0") && groups.contains("g-2-0"),
        "{groups:?}"
    );
    assert!(groups.iter().all(|g| g.starts_with("g-")), "{groups:?}");
    assert_eq!(list_groups(&consumer_credential).await, groups);
    assert_eq!(list_groups(&producer_credential).await, BTreeSet::new());

    // The refused cells changed nothing: messages, topics, configs, the other tenant.
    let id = cluster["cluster_id"].as_str().unwrap();
    let listed = run
        .api(Method::GET, &format!("/v2/kafka/topics/{id}"), None)
        .await;
    let names: BTreeSet<String> = listed
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(names, all);
    for topic in listed.as_array().unwrap() {
        if topic["topic_name"] != "orders-new" {
            assert_eq!(
                topic["retention_time"], ALTERED,
                "only the default's change: {topic}"
            );
        }
    }
    let secret_id = secret["cluster_id"].as_str().unwrap();
    let theirs_listed = other
        .api(Method::GET, &format!("/v2/kafka/topics/{secret_id}"), None)
        .await;
    assert_ne!(
        theirs_listed[0]["retention_time"], ALTERED,
        "{theirs_listed}"
    );
    let counts = run.rest(&cluster, Method::GET, "/topics", "", &[]).await;
    assert_eq!(counts["payments"], 1);
    let offsets = high_watermarks(&default, &["payments", "orders"]).await;
    // payments: the default's first message + default and PRODUCE pay* in the matrix; orders:
    // the default's first + default and ALL orders.
    assert_eq!(offsets, vec![3, 3]);
    let secret_offsets = high_watermarks(&support::tcp(&secret), &["secret"]).await;
    assert_eq!(
        secret_offsets,
        vec![1],
        "the other tenant's topic is untouched"
    );
}

/// The high watermark of partition 0 of each topic.
async fn high_watermarks(config: &ClientConfig, topics: &[&str]) -> Vec<i64> {
    let (config, topics): (ClientConfig, Vec<String>) = (
        config.clone(),
        topics.iter().map(|t| t.to_string()).collect(),
    );
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config.create().unwrap();
        topics
            .iter()
            .map(|t| {
                consumer
                    .fetch_watermarks(t, 0, Duration::from_secs(15))
                    .unwrap()
                    .1
            })
            .collect()
    })
    .await
    .unwrap()
}

async fn prefix_of(run: &Running, cluster: &Value) -> String {
    let row = capstan_api::clusters::find_live(
        &run.platform_state.store,
        cluster["cluster_id"].as_str().unwrap(),
    )
    .await
    .unwrap();
    row.prefix
}

/// The local engine has no ACLs, so a dedicated cluster's clients go through the gateway too
/// (its scopes hold for them), and its broker takes nobody's credentials but the platform's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dedicated_local_cluster_is_reached_through_the_gateway_only() {
    let run = start(false).await;
    let cluster = run
        .dedicated_cluster("own", &[("payments", 1), ("orders", 1)])
        .await;
    let shared = run.cluster("shared", &[]).await;
    assert_eq!(
        cluster["tcp_endpoint"], shared["tcp_endpoint"],
        "the gateway"
    );
    let consumer = support::tcp(&credential(&run, &cluster, "reader", "pay*", "CONSUME").await);
    assert_eq!(produce(&support::tcp(&cluster), "orders").await, Allowed);
    assert_eq!(produce(&consumer, "payments").await, Refused(TOPIC));
    assert_eq!(
        list_topics(&consumer),
        BTreeSet::from(["payments".to_owned()])
    );

    let row = capstan_api::clusters::find_live(
        &run.platform_state.store,
        cluster["cluster_id"].as_str().unwrap(),
    )
    .await
    .unwrap();
    assert_ne!(row.tcp_endpoint, cluster["tcp_endpoint"].as_str().unwrap());
    let direct = Connection::open(
        &row.tcp_endpoint,
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    )
    .await;
    assert!(
        direct.is_err(),
        "the broker itself refuses the cluster's own credential"
    );
}
