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
    let admin = admin(config)?;
    let configs = topic.configs();
    let mut new_topic = NewTopic::new(
        &topic.name,
        topic.partitions,
        TopicReplication::Fixed(replication),
    );
    for (key, value) in &configs {
        new_topic = new_topic.set(key, value);
    }
    let results = admin
        .create_topics([&new_topic], &options())
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

fn admin(config: &ClientConfig) -> Result<AdminClient<DefaultClientContext>> {
    config
        .create()
        .map_err(|e| Error::Broker(format!("could not create a Kafka admin client: {e}")))
}

fn options() -> AdminOptions {
    AdminOptions::new()
        .request_timeout(Some(Duration::from_secs(15)))
        .operation_timeout(Some(Duration::from_secs(15)))
}

/// Deletes a topic; one that is already gone is not an error.
pub async fn delete_topic(config: &ClientConfig, name: &str) -> Result<()> {
    let results = admin(config)?
        .delete_topics(&[name], &options())
        .await
        .map_err(|e| Error::Broker(format!("the broker did not delete topic {name}: {e}")))?;
    for result in results {
        match result {
            Ok(_) | Err((_, RDKafkaErrorCode::UnknownTopicOrPartition)) => {}
            Err((name, code)) => {
                return Err(Error::Broker(format!(
                    "the broker refused to delete topic {name}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// Grows a topic to `topic.partitions` (when more than `old_partitions`) and sets its
/// configuration.
pub async fn update_topic(
    config: &ClientConfig,
    topic: &TopicSpec,
    old_partitions: i32,
) -> Result<()> {
    use rdkafka::admin::{AlterConfig, NewPartitions, ResourceSpecifier};
    let admin = admin(config)?;
    let refused = |what: &str, e: &dyn std::fmt::Display| {
        Error::Broker(format!(
            "the broker refused to {what} of topic {}: {e}",
            topic.name
        ))
    };
    if topic.partitions > old_partitions {
        let grow = NewPartitions::new(&topic.name, topic.partitions as usize);
        for result in admin
            .create_partitions([&grow], &options())
            .await
            .map_err(|e| refused("add partitions", &e))?
        {
            result.map_err(|(_, code)| refused("add partitions", &code))?;
        }
    }
    let configs = topic.configs();
    let mut change = AlterConfig::new(ResourceSpecifier::Topic(&topic.name));
    for (key, value) in &configs {
        change = change.set(key, value);
    }
    for result in admin
        .alter_configs([&change], &options())
        .await
        .map_err(|e| refused("change the configuration", &e))?
    {
        result.map_err(|(_, code)| refused("change the configuration", &code))?;
    }
    Ok(())
}
