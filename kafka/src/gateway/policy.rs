//! What the gateway asks of the control plane: who a client is, where its cluster lives, and
//! what its topic administration does. The control plane implements [`Policy`].

use async_trait::async_trait;

use super::scope::Scope;
use crate::scram::{Mechanism, ServerKeys};

/// The broker engine behind a backend, which decides what the gateway may forward to it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Engine {
    /// Apache Kafka (the operator's clusters and pools).
    ApacheKafka,
    /// tansu 0.6 on SQLite (`capstan dev`'s local brokers), with its defects kept away.
    Tansu,
}

/// A set of brokers the gateway forwards to: a shared pool, or a dedicated cluster's brokers.
#[derive(Clone)]
pub struct Backend {
    /// Stable identity (for example `pool:shared` or `cluster:<id>`).
    pub id: String,
    /// `host:port` of any of its brokers.
    pub bootstrap: String,
    /// The gateway's own SCRAM-SHA-512 user on these brokers (full access).
    pub username: String,
    /// Its password.
    pub password: String,
    /// The engine.
    pub engine: Engine,
}

impl std::fmt::Debug for Backend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Backend")
            .field("id", &self.id)
            .field("bootstrap", &self.bootstrap)
            .field("username", &self.username)
            .field("engine", &self.engine)
            .finish_non_exhaustive()
    }
}

/// An authenticated client: which cluster it reaches, under which prefix, on which brokers.
#[derive(Clone, Debug)]
pub struct Tenant {
    /// The cluster's id, shown to the client as the Kafka cluster id.
    pub cluster_id: String,
    /// The credential's username.
    pub principal: String,
    /// The cluster's prefix on the pool ("" for brokers of its own).
    pub prefix: String,
    /// Where the cluster lives.
    pub backend: Backend,
    /// The state of the credential when it authenticated (the policy's own token, for example
    /// a hash of the password), handed back to [`Policy::still_valid`].
    pub credential_token: String,
    /// What the credential may do: its topics, produce and consume, and whether it may
    /// administer (the cluster's full-access default credential may, scoped ones may not).
    pub scope: Scope,
}

/// Why the policy could not answer (the store is down, say); the client's connection closes.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// A topic to create, in the tenant's names.
#[derive(Clone, Debug)]
pub struct NewTopic {
    /// Name.
    pub name: String,
    /// Partitions, `None` for the platform's default.
    pub partitions: Option<i32>,
    /// Topic configuration given with it.
    pub configs: Vec<(String, Option<String>)>,
}

/// A change to one topic configuration entry.
#[derive(Clone, Debug)]
pub enum ConfigChange {
    /// Set the entry.
    Set(String, String),
    /// Back to the default.
    Delete(String),
}

/// The outcome of an administrative change, in Kafka's terms.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AdminError {
    /// The topic exists already.
    TopicExists(String),
    /// No such topic.
    UnknownTopic(String),
    /// A name Kafka would refuse.
    InvalidTopic(String),
    /// A partition count that is not allowed.
    InvalidPartitions(String),
    /// A configuration entry or value that is not allowed.
    InvalidConfig(String),
    /// Over a limit of the cluster's plan.
    PolicyViolation(String),
    /// The credential may not do this.
    NotAuthorized(String),
    /// Something failed on the platform's side.
    Internal(String),
}

impl AdminError {
    /// Kafka's error code.
    pub fn code(&self) -> i16 {
        match self {
            AdminError::TopicExists(_) => 36,
            AdminError::UnknownTopic(_) => 3,
            AdminError::InvalidTopic(_) => 17,
            AdminError::InvalidPartitions(_) => 37,
            AdminError::InvalidConfig(_) => 40,
            AdminError::PolicyViolation(_) => 44,
            AdminError::NotAuthorized(_) => 29,
            AdminError::Internal(_) => -1,
        }
    }

    /// The message shown to the client.
    pub fn message(&self) -> &str {
        match self {
            AdminError::TopicExists(m)
            | AdminError::UnknownTopic(m)
            | AdminError::InvalidTopic(m)
            | AdminError::InvalidPartitions(m)
            | AdminError::InvalidConfig(m)
            | AdminError::PolicyViolation(m)
            | AdminError::NotAuthorized(m)
            | AdminError::Internal(m) => m,
        }
    }
}

/// A created topic as the tenant sees it.
#[derive(Clone, Debug)]
pub struct CreatedTopic {
    /// Partitions.
    pub partitions: i32,
    /// Its configuration as stored.
    pub configs: Vec<(String, String)>,
}

/// What the gateway asks of the control plane.
#[async_trait]
pub trait Policy: Send + Sync + std::fmt::Debug {
    /// The SCRAM keys of `username` for `mechanism`, and the tenant it authenticates as;
    /// `None` when no live credential has that name.
    async fn scram_keys(
        &self,
        mechanism: Mechanism,
        username: &str,
    ) -> Result<Option<(ServerKeys, Tenant)>, PolicyError>;

    /// Checks a username and password (SASL PLAIN); `None` when they do not match.
    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> Result<Option<Tenant>, PolicyError>;

    /// Whether a client at `address` may try to authenticate now: `Err(wait)` once that
    /// address has failed too often (on any of the platform's ways in), with how long until
    /// it may try again. Asked before every SASL step: keep it cheap.
    fn may_authenticate(&self, address: std::net::IpAddr) -> Result<(), std::time::Duration>;

    /// A client at `address` presented a credential that does not match (a wrong password or
    /// an unknown user).
    fn authentication_failed(&self, address: std::net::IpAddr);

    /// Whether an authenticated connection may go on: false once its credential was deleted,
    /// its password changed or its cluster deleted.
    async fn still_valid(&self, tenant: &Tenant) -> bool;

    /// `messages` records of `topic` (the tenant's name) were delivered to a client of
    /// `tenant` in a Fetch answer (consumption is metered where it happens). Called for every
    /// such answer, before it is sent: keep it cheap (count in memory, store in the
    /// background).
    fn delivered(&self, tenant: &Tenant, topic: &str, messages: u64);

    /// `None` when `tenant`'s cluster is not rate-limited (price cap, budget, free plan's day);
    /// otherwise how long it must wait before moving more (zero: it may now). Asked once per
    /// Produce, Fetch and Fetch answer.
    async fn limited(&self, tenant: &Tenant) -> Option<std::time::Duration>;

    /// Takes `messages` a limited cluster just moved from its allowance; returns how long it
    /// must now wait — the throttle time Kafka's quotas answer with. Cheap and synchronous.
    fn charge(&self, tenant: &Tenant, messages: u64) -> std::time::Duration;

    /// Creates topics (or only validates them), in the tenant's names.
    async fn create_topics(
        &self,
        tenant: &Tenant,
        topics: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<Result<CreatedTopic, AdminError>>;

    /// Deletes topics, in the tenant's names.
    async fn delete_topics(
        &self,
        tenant: &Tenant,
        names: Vec<String>,
    ) -> Vec<Result<(), AdminError>>;

    /// Grows topics to the given partition counts (or only validates that).
    async fn create_partitions(
        &self,
        tenant: &Tenant,
        counts: Vec<(String, i32)>,
        validate_only: bool,
    ) -> Vec<Result<(), AdminError>>;

    /// Changes a topic's configuration (or only validates it). `replace` is AlterConfigs'
    /// meaning: entries not named go back to their defaults.
    async fn alter_topic_configs(
        &self,
        tenant: &Tenant,
        topic: String,
        changes: Vec<ConfigChange>,
        replace: bool,
        validate_only: bool,
    ) -> Result<(), AdminError>;
}
