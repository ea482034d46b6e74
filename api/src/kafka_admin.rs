//! Admin calls to a cluster's brokers over the Kafka protocol (librdkafka, SASL/SCRAM-SHA-512).

use std::time::Duration;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::RDKafkaErrorCode,
};

use crate::{Error, Result, provisioner::TopicSpec};

/// Connection settings of a SCRAM-SHA-512 client for `bootstrap`.
pub fn client_config(bootstrap: &str, username: &str, password: &str) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", bootstrap)
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", username)
        .set("sasl.password", password)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("log_level", "3");
    config
}

/// Creates a topic with its configuration; an existing topic of that name is a conflict.
pub async fn create_topic(
    config: &ClientConfig,
    topic: &TopicSpec,
    replication: i32,
) -> Result<()> {
    let admin: AdminClient<DefaultClientContext> = config
        .create()
        .map_err(|e| Error::Broker(format!("could not create a Kafka admin client: {e}")))?;
    let configs = topic.configs();
    let mut new_topic = NewTopic::new(
        &topic.name,
        topic.partitions,
        TopicReplication::Fixed(replication),
    );
    for (key, value) in &configs {
        new_topic = new_topic.set(key, value);
    }
    let options = AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(15)))
        .operation_timeout(Some(Duration::from_secs(15)));
    let results = admin
        .create_topics([&new_topic], &options)
        .await
        .map_err(|e| {
            Error::Broker(format!(
                "the broker did not create topic {}: {e}",
                topic.name
            ))
        })?;
    for result in results {
        match result {
            Ok(_) => {}
            Err((name, RDKafkaErrorCode::TopicAlreadyExists)) => {
                return Err(Error::Conflict(format!(
                    "topic {name} already exists on the brokers"
                )));
            }
            Err((name, code)) => {
                return Err(Error::Broker(format!(
                    "the broker refused to create topic {name}: {code}"
                )));
            }
        }
    }
    Ok(())
}
