//! Provisioners turn clusters and topics of the store into running brokers.
//!
//! A cluster is placed on a shared broker pool (the default: its names live there under its
//! prefix, and creating it starts nothing) or on brokers of its own (`dedicated`).
//! [`LocalProvisioner`] runs real broker processes on loopback (`capstan dev`, tests): one
//! shared pool, plus one per dedicated cluster; the Kubernetes provisioner (wired by the binary,
//! on the operator crate) sits beside it behind the same trait. Names handed to a provisioner
//! are the tenant's; the provisioner places them ([`ClusterSpec::physical`]).

mod local;
mod tansu;

pub use local::{LocalProvisioner, TANSU_VERSION, cached_broker_binary, find_broker_binary};

use async_trait::async_trait;

use crate::Result;

pub use capstan_kafka::gateway::{Backend, Engine, Scope};

/// What a provisioner holds for clusters, so that what no cluster of the store owns can be
/// found (see [`crate::orphans`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Inventory {
    /// Ids of the clusters that have brokers of their own.
    pub dedicated: Vec<String>,
    /// Every prefix with names (topics, groups, transactional ids) on a shared pool, with
    /// the pool's name.
    pub prefixes: Vec<(String, String)>,
}

/// What a provisioner needs to know of a cluster.
#[derive(Clone, Debug)]
pub struct ClusterSpec {
    /// The cluster's UUID.
    pub id: String,
    /// Three replicas over three zones, or one.
    pub multizone: bool,
    /// Where its topics live.
    pub placement: Placement,
}

/// Where a cluster's topics live.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Placement {
    /// On brokers of its own.
    Dedicated,
    /// On a shared broker pool, under a prefix.
    Shared {
        /// The pool's name.
        pool: String,
        /// The cluster's prefix on it (immutable, never shown to clients).
        prefix: String,
    },
}

impl ClusterSpec {
    /// The prefix of its names on the brokers ("" for brokers of its own).
    pub fn prefix(&self) -> &str {
        match &self.placement {
            Placement::Dedicated => "",
            Placement::Shared { prefix, .. } => prefix,
        }
    }

    /// A topic, group or transactional id as the brokers name it.
    pub fn physical(&self, name: &str) -> String {
        format!("{}{name}", self.prefix())
    }

    /// The shared pool it lives on, if any.
    pub fn pool(&self) -> Option<&str> {
        match &self.placement {
            Placement::Dedicated => None,
            Placement::Shared { pool, .. } => Some(pool),
        }
    }
}

/// A topic as the brokers should have it.
#[derive(Clone, Debug)]
pub struct TopicSpec {
    /// Topic name.
    pub name: String,
    /// Number of partitions.
    pub partitions: i32,
    /// `retention.ms`.
    pub retention_ms: i64,
    /// `retention.bytes`.
    pub retention_bytes: i64,
    /// `max.message.bytes`.
    pub max_message_bytes: i64,
    /// `cleanup.policy`: `delete` or `compact`.
    pub cleanup_policy: String,
}

impl TopicSpec {
    /// The topic-level Kafka configuration entries.
    pub fn configs(&self) -> Vec<(&'static str, String)> {
        vec![
            ("retention.ms", self.retention_ms.to_string()),
            ("retention.bytes", self.retention_bytes.to_string()),
            ("max.message.bytes", self.max_message_bytes.to_string()),
            ("cleanup.policy", self.cleanup_policy.clone()),
        ]
    }
}

/// A SASL/SCRAM user on the brokers, with what its credential may do (the ACLs of a dedicated
/// Apache Kafka cluster).
#[derive(Clone)]
pub struct BrokerUser {
    /// User name.
    pub username: String,
    /// Password.
    pub password: String,
    /// The credential's rights.
    pub scope: Scope,
}

impl std::fmt::Debug for BrokerUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BrokerUser")
            .field("username", &self.username)
            .field("scope", &self.scope)
            .finish_non_exhaustive()
    }
}

/// Makes and changes the brokers of clusters.
#[async_trait]
pub trait Provisioner: Send + Sync + std::fmt::Debug {
    /// Starts what the provisioner runs for every cluster (the local shared pool), once, when
    /// the control plane starts.
    async fn start(&self) -> Result<()> {
        Ok(())
    }
    /// The shared pool new clusters of a zone mode are placed on.
    fn pool_for(&self, multizone: bool) -> String;
    /// The engine of the brokers this provisioner makes (what the Kafka gateway offers).
    fn engine(&self) -> Engine;
    /// True when the clients of dedicated clusters connect through Capstan's Kafka gateway,
    /// like those of shared clusters (the gateway then applies their scopes, plan limits and
    /// cap, and counts what it delivers); false when they reach their brokers directly, which
    /// then apply the scopes as ACLs and the cap as client quotas. The local engine has no
    /// ACLs, so its dedicated clusters are always reached through the gateway.
    fn dedicated_through_gateway(&self) -> bool {
        true
    }
    /// Where the Kafka gateway forwards a cluster's clients, and as whom.
    async fn gateway_backend(&self, cluster: &ClusterSpec) -> Result<Backend>;
    /// Makes a new cluster: brokers with its first users for a dedicated cluster (returns the
    /// bootstrap address); for a shared one, makes sure its pool exists (returns the pool's).
    async fn create_cluster(&self, cluster: &ClusterSpec, users: &[BrokerUser]) -> Result<String>;
    /// Brings an existing cluster's brokers back after the control plane restarted; returns
    /// the bootstrap address (the same one when it is still free).
    async fn resume_cluster(&self, cluster: &ClusterSpec, bootstrap: &str) -> Result<String>;
    /// What it holds for clusters. The default knows of nothing, so nothing of its is swept.
    async fn inventory(&self) -> Result<Inventory> {
        Ok(Inventory::default())
    }
    /// Stops a cluster's brokers and removes their data; on a pool, removes its topics and
    /// groups and nothing else.
    async fn delete_cluster(&self, cluster: &ClusterSpec) -> Result<()>;
    /// Creates a topic.
    async fn create_topic(&self, cluster: &ClusterSpec, topic: &TopicSpec) -> Result<()>;
    /// Applies a changed topic: more partitions and new configuration values.
    async fn update_topic(
        &self,
        cluster: &ClusterSpec,
        topic: &TopicSpec,
        old_partitions: i32,
    ) -> Result<()>;
    /// Deletes exactly one topic and its data.
    async fn delete_topic(&self, cluster: &ClusterSpec, name: &str) -> Result<()>;
    /// Creates a user or sets its password, and gives it its scope's ACLs where the brokers
    /// authorize (clients of a pool authenticate at the gateway: nothing to do there). Safe to
    /// repeat.
    async fn put_user(&self, cluster: &ClusterSpec, user: &BrokerUser) -> Result<()>;
    /// Removes a user and its ACLs.
    async fn delete_user(&self, cluster: &ClusterSpec, username: &str) -> Result<()>;
    /// Holds `usernames` of a cluster whose clients reach its brokers directly (a dedicated
    /// Apache Kafka cluster) to `bytes_per_second` per broker with the brokers' client quotas,
    /// or lifts that with `None`. Elsewhere clients go through the gateways, which throttle them
    /// already: nothing to do.
    async fn set_client_quotas(
        &self,
        _cluster: &ClusterSpec,
        _usernames: &[String],
        _bytes_per_second: Option<u64>,
    ) -> Result<()> {
        Ok(())
    }
    /// Settings of a Kafka client with full access to the cluster's brokers at `bootstrap` (a
    /// dedicated cluster's) or to its pool, for the control plane's own use (REST gateway,
    /// metering); names there are physical.
    fn client_config(&self, cluster: &ClusterSpec, bootstrap: &str) -> rdkafka::ClientConfig;
    /// Bytes stored per topic (the tenant's names), summed over replicas, measured the engine's way.
    async fn stored_bytes(
        &self,
        cluster: &ClusterSpec,
    ) -> Result<std::collections::BTreeMap<String, i64>>;
    /// Restarts brokers that exited without being asked to; returns how many were restarted.
    /// Called periodically by the application.
    async fn supervise(&self) -> usize;
    /// Stops every broker cleanly (graceful shutdown).
    async fn shutdown(&self);
    /// The state of a cluster right after `create_cluster`: `active` when its brokers are
    /// ready then (local brokers, a running pool), `provisioning` when they come up later.
    fn initial_state(&self, _cluster: &ClusterSpec) -> &'static str {
        "active"
    }
    /// Clusters whose state the brokers' manager reports differently than before, as
    /// `(cluster id, state)` with state `provisioning`, `active`, `degraded` or `failed`; the
    /// id `pool:<name>` stands for every cluster on that shared pool.
    /// Called periodically by the application, which stores what it hears.
    async fn observed_states(&self) -> Vec<(String, String)> {
        Vec::new()
    }
}
