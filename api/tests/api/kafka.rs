//! A native Kafka client (librdkafka through the `rdkafka` crate) to look at the brokers
//! directly, independent of the API under test.

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    producer::{FutureProducer, FutureRecord},
};
use serde_json::Value;

const TIMEOUT: Duration = Duration::from_secs(10);

/// Connection settings from a Cluster object of the API (its default credential).
pub fn config(cluster: &Value) -> ClientConfig {
    config_for(
        cluster["tcp_endpoint"].as_str().expect("tcp_endpoint"),
        cluster["username"].as_str().expect("username"),
        cluster["password"].as_str().expect("password"),
    )
}

pub fn config_for(bootstrap: &str, username: &str, password: &str) -> ClientConfig {
    capstan_api::kafka_admin::client_config(bootstrap, username, password)
}

/// Produces `count` messages (acks=all) and waits for every delivery.
pub async fn produce(config: &ClientConfig, topic: &str, count: usize) {
    let producer: FutureProducer = config
        .clone()
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let mut deliveries = Vec::new();
    for i in 0..count {
        let payload = format!("message-{i}");
        let key = format!("key-{i}");
        let record = FutureRecord::to(topic).payload(&payload).key(&key);
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("enqueued"),
        );
    }
    for delivery in deliveries {
        delivery
            .await
            .expect("delivery reported")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

/// The sum of high watermarks of a topic's partitions (= messages written).
pub fn message_count(config: &ClientConfig, topic: &str) -> i64 {
    let consumer: BaseConsumer = config
        .clone()
        .set("group.id", "capstan-test-inspector")
        .create()
        .expect("consumer");
    let metadata = consumer
        .fetch_metadata(Some(topic), TIMEOUT)
        .expect("metadata");
    let partitions = metadata
        .topics()
        .first()
        .map(|t| t.partitions().len())
        .unwrap_or(0);
    (0..partitions as i32)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, TIMEOUT)
                .expect("watermarks")
                .1
        })
        .sum()
}

/// Topic names and partition counts the brokers report.
pub fn topics(config: &ClientConfig) -> Vec<(String, usize)> {
    let consumer: BaseConsumer = config.clone().create().expect("consumer");
    let metadata = consumer.fetch_metadata(None, TIMEOUT).expect("metadata");
    let mut topics: Vec<_> = metadata
        .topics()
        .iter()
        .filter(|t| !t.name().starts_with("__"))
        .map(|t| (t.name().to_owned(), t.partitions().len()))
        .collect();
    topics.sort();
    topics
}

/// True when the brokers accept these credentials (SASL/SCRAM handshake and a metadata call).
pub fn authenticates(config: &ClientConfig) -> bool {
    let consumer: BaseConsumer = match config.clone().set("socket.timeout.ms", "3000").create() {
        Ok(c) => c,
        Err(_) => return false,
    };
    consumer
        .fetch_metadata(None, Duration::from_secs(4))
        .is_ok()
}

/// The value of a topic's configuration entry as the brokers (or the gateway) describe it.
pub async fn topic_config(config: &ClientConfig, topic: &str, name: &str) -> String {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    let admin: AdminClient<rdkafka::client::DefaultClientContext> =
        config.create().expect("admin client");
    let described = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(topic)],
            &AdminOptions::new().request_timeout(Some(TIMEOUT)),
        )
        .await
        .expect("DescribeConfigs");
    let entries = described[0].as_ref().expect("the topic's configuration");
    entries
        .get(name)
        .and_then(|entry| entry.value.clone())
        .unwrap_or_else(|| panic!("{topic} has no {name}"))
}
