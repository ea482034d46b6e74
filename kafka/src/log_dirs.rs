//! Bytes stored per topic on Apache Kafka: DescribeLogDirs on every broker, summed over every
//! replica. (The local engine has no DescribeLogDirs; the control plane measures it its own way.)

use std::collections::BTreeMap;

use kafka_protocol::messages::{DescribeLogDirsRequest, MetadataRequest};

use crate::connection::Credentials;
use crate::{Error, Result};

const METADATA_VERSION: i16 = 12;
const DESCRIBE_LOG_DIRS_VERSION: i16 = 1;

/// Bytes stored per topic, summed over the replicas on every broker. Replicas being moved
/// ("future" replicas) are left out, so a reassignment does not count a partition twice.
pub async fn stored_bytes(credentials: &Credentials) -> Result<BTreeMap<String, i64>> {
    let mut bootstrap = credentials.connect().await?;
    let metadata = bootstrap
        .call(
            MetadataRequest::default().with_topics(Some(Vec::new())),
            METADATA_VERSION,
        )
        .await?;
    let mut sizes: BTreeMap<String, i64> = BTreeMap::new();
    for broker in &metadata.brokers {
        let address = format!("{}:{}", broker.host, broker.port);
        let mut connection = credentials.connect_to(&address).await?;
        let response = connection
            .call(
                DescribeLogDirsRequest::default().with_topics(None),
                DESCRIBE_LOG_DIRS_VERSION,
            )
            .await?;
        for dir in response.results {
            if dir.error_code != 0 {
                return Err(Error::Protocol(format!(
                    "broker {} could not describe log dir {} (error {})",
                    broker.node_id.0, dir.log_dir, dir.error_code
                )));
            }
            for topic in dir.topics {
                let bytes: i64 = topic
                    .partitions
                    .iter()
                    .filter(|p| !p.is_future_key)
                    .map(|p| p.partition_size.max(0))
                    .sum();
                *sizes.entry(topic.name.to_string()).or_default() += bytes;
            }
        }
    }
    Ok(sizes)
}
