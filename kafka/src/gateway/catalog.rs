//! What the gateway knows of a backend's topics: ids and partition counts, learnt from the
//! Metadata answers that pass through and refreshed on a miss. It resolves topic ids to names
//! (so an id is checked against the tenant like a name) and, in front of the local engine,
//! keeps requests for topics or partitions that do not exist away from it (tansu 0.6 panics
//! its storage on them).

use std::{
    collections::{HashMap, HashSet},
    sync::RwLock,
    time::{Duration, Instant},
};

use kafka_protocol::messages::{MetadataRequest, MetadataResponse};
use uuid::Uuid;

use super::policy::Backend;
use crate::{Connection, Result};

/// Refreshes closer together than this share the first one's answer.
const MIN_REFRESH_INTERVAL: Duration = Duration::from_millis(250);
const METADATA_VERSION: i16 = 12;
/// Producer ids remembered per backend.
const MAX_PRODUCERS: usize = 100_000;

#[derive(Debug, Default)]
struct Known {
    /// Partitions and id per topic name.
    topics: HashMap<String, (Uuid, i32)>,
    /// Topic name per id.
    ids: HashMap<Uuid, String>,
    /// Producer ids and epochs the backend issued (InitProducerId answers).
    producers: HashSet<(i64, i16)>,
    /// Broker addresses per node id.
    brokers: HashMap<i32, String>,
    refreshed: Option<Instant>,
}

/// A backend's topics as far as the gateway knows them.
#[derive(Debug, Default)]
pub struct Catalog {
    known: RwLock<Known>,
    refresher: tokio::sync::Mutex<Option<Connection>>,
}

impl Catalog {
    fn read<T>(&self, f: impl FnOnce(&Known) -> T) -> T {
        match self.known.read() {
            Ok(known) => f(&known),
            Err(poisoned) => f(&poisoned.into_inner()),
        }
    }

    fn write<T>(&self, f: impl FnOnce(&mut Known) -> T) -> T {
        match self.known.write() {
            Ok(mut known) => f(&mut known),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Learns the topics of a Metadata answer; `complete` when it listed every topic (then
    /// topics it does not list are forgotten); `with_ids` when its version carries topic ids
    /// (an older answer leaves the ids known as they are).
    pub fn observe(&self, response: &MetadataResponse, complete: bool, with_ids: bool) {
        self.write(|known| {
            if !response.brokers.is_empty() {
                known.brokers = response
                    .brokers
                    .iter()
                    .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
                    .collect();
            }
            if complete {
                known.topics.clear();
                if with_ids {
                    known.ids.clear();
                }
            }
            for topic in &response.topics {
                let Some(name) = &topic.name else { continue };
                if topic.error_code != 0 {
                    known.topics.remove(name.as_str());
                    continue;
                }
                known.topics.insert(
                    name.to_string(),
                    (topic.topic_id, topic.partitions.len() as i32),
                );
                if with_ids && !topic.topic_id.is_nil() {
                    known.ids.insert(topic.topic_id, name.to_string());
                }
            }
        });
    }

    /// Forgets every topic (after the backend restarted: topics may have been changed meanwhile).
    pub fn forget_topics(&self) {
        self.write(|known| {
            known.topics.clear();
            known.ids.clear();
            known.refreshed = None;
        });
    }

    /// Records a producer id and epoch the backend issued (the most recent ones: a producer
    /// that outlives `MAX_PRODUCERS` newer ones must start again).
    pub fn issued_producer(&self, id: i64, epoch: i16) {
        self.write(|known| {
            if known.producers.len() >= MAX_PRODUCERS {
                known.producers.clear();
            }
            known.producers.insert((id, epoch))
        });
    }

    /// True when the backend issued this producer id and epoch (through this gateway).
    pub fn knows_producer(&self, id: i64, epoch: i16) -> bool {
        self.read(|known| known.producers.contains(&(id, epoch)))
    }

    /// The partition count of a pool topic, asking the backend when it is not known.
    pub async fn partitions(&self, backend: &Backend, topic: &str) -> Result<Option<i32>> {
        if let Some(count) = self.read(|k| k.topics.get(topic).map(|(_, p)| *p)) {
            return Ok(Some(count));
        }
        self.refresh(backend).await?;
        Ok(self.read(|k| k.topics.get(topic).map(|(_, p)| *p)))
    }

    /// The address of a broker, asking the backend when it is not known.
    pub async fn broker(&self, backend: &Backend, node: i32) -> Result<Option<String>> {
        if let Some(address) = self.read(|k| k.brokers.get(&node).cloned()) {
            return Ok(Some(address));
        }
        self.refresh(backend).await?;
        Ok(self.read(|k| k.brokers.get(&node).cloned()))
    }

    /// The pool name of a topic id, asking the backend when it is not known.
    pub async fn name_of(&self, backend: &Backend, id: Uuid) -> Result<Option<String>> {
        if let Some(name) = self.read(|k| k.ids.get(&id).cloned()) {
            return Ok(Some(name));
        }
        self.refresh(backend).await?;
        Ok(self.read(|k| k.ids.get(&id).cloned()))
    }

    /// Reads every topic of the backend (one at a time; a refresh that just happened counts).
    async fn refresh(&self, backend: &Backend) -> Result<()> {
        let mut connection = self.refresher.lock().await;
        let fresh = self.read(|k| {
            k.refreshed
                .is_some_and(|at| at.elapsed() < MIN_REFRESH_INTERVAL)
        });
        if fresh {
            return Ok(());
        }
        if connection.is_none() {
            *connection = Some(
                Connection::open(&backend.bootstrap, &backend.username, &backend.password).await?,
            );
        }
        let Some(open) = connection.as_mut() else {
            return Ok(());
        };
        let answer = open
            .call(
                MetadataRequest::default().with_topics(None),
                METADATA_VERSION,
            )
            .await;
        match answer {
            Ok(response) => {
                self.observe(&response, true, true);
                self.write(|k| k.refreshed = Some(Instant::now()));
                Ok(())
            }
            Err(error) => {
                *connection = None;
                Err(error)
            }
        }
    }
}
