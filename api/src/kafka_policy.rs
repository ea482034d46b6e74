//! What the Kafka gateway asks of the control plane: who a client is (its cluster credential,
//! checked with SCRAM keys derived from the password kept encrypted in the store), where its
//! cluster lives, and its topic administration, done by the same domain functions, limits and
//! validation as the provisioning API, so a topic made with a Kafka admin client is in the
//! store, the console, the REST gateway and metering at once.

use std::{collections::HashMap, sync::Mutex};

use async_trait::async_trait;
use capstan_kafka::{
    gateway::{
        AdminError, ConfigChange, CreatedTopic, NewTopic, Policy, PolicyError, Tenant, is_reserved,
    },
    scram::{Mechanism, ServerKeys},
};

use crate::{
    Error, Result,
    clusters::{self, ClusterRow},
    credentials::Permissions,
    crypto,
    state::AppState,
    topics::{self, CreateTopic, TopicRow, UpdateTopic},
};

/// PBKDF2 iterations of the derived SCRAM keys (Kafka's minimum for SCRAM-SHA-512 is 4096).
const SCRAM_ITERATIONS: u32 = 4096;
/// Derived keys kept in memory; past this the cache starts over.
const MAX_CACHED_KEYS: usize = 100_000;
/// The configuration entries a client may set on a topic.
const SETTABLE: &str =
    "retention.ms, retention.bytes, max.message.bytes and cleanup.policy (at creation)";

/// The control plane as the Kafka gateway's policy.
#[derive(Debug)]
pub struct GatewayPolicy {
    state: AppState,
    /// SCRAM keys per (username, mechanism), with the password hash they were made from.
    keys: Mutex<HashMap<(String, Mechanism), (String, ServerKeys)>>,
}

/// A live credential with its cluster.
struct Found {
    password_encrypted: String,
    password_hash: String,
    is_default: bool,
    topics: String,
    permissions: Permissions,
    cluster: ClusterRow,
}

fn policy_error(error: Error) -> PolicyError {
    PolicyError(crate::error::cause_chain(&error))
}

impl GatewayPolicy {
    /// A policy over the control plane's state.
    pub fn new(state: AppState) -> Self {
        GatewayPolicy {
            state,
            keys: Mutex::new(HashMap::new()),
        }
    }

    async fn find(&self, username: &str) -> Result<Option<Found>> {
        let row: Option<(String, String, String, i64, String, String)> = sqlx::query_as(
            "SELECT cr.cluster_id, cr.password_encrypted, cr.password_hash, cr.is_default, cr.topic, cr.permissions FROM credentials cr \
             JOIN clusters c ON c.id = cr.cluster_id WHERE cr.username = $1 AND c.state <> 'deleted'",
        )
        .bind(username)
        .fetch_optional(self.state.store.pool())
        .await?;
        let Some((cluster_id, password_encrypted, password_hash, is_default, topics, permissions)) =
            row
        else {
            return Ok(None);
        };
        let cluster = match clusters::find_live(&self.state.store, &cluster_id).await {
            Ok(cluster) => cluster,
            Err(Error::NotFound(_)) => return Ok(None),
            Err(e) => return Err(e),
        };
        Ok(Some(Found {
            password_encrypted,
            password_hash,
            is_default: is_default != 0,
            topics,
            permissions: Permissions::parse(&permissions)?,
            cluster,
        }))
    }

    async fn tenant(&self, username: &str, found: &Found) -> Result<Tenant> {
        Ok(Tenant {
            cluster_id: found.cluster.id.clone(),
            principal: username.to_owned(),
            prefix: found.cluster.prefix.clone(),
            backend: self
                .state
                .provisioner
                .gateway_backend(&found.cluster.spec())
                .await?,
            credential_token: found.password_hash.clone(),
            scope: found.permissions.scope(&found.topics, found.is_default),
        })
    }

    /// The SCRAM keys of a password: the salt is derived from the platform key and the user
    /// name, so nothing SCRAM needs is stored, and the keys are the same on every replica.
    async fn derive_keys(
        &self,
        mechanism: Mechanism,
        username: &str,
        found: &Found,
    ) -> Result<ServerKeys> {
        let cache_key = (username.to_owned(), mechanism);
        if let Ok(cache) = self.keys.lock()
            && let Some((hash, keys)) = cache.get(&cache_key)
            && crypto::constant_time_eq(hash, &found.password_hash)
        {
            return Ok(keys.clone());
        }
        let password = self.state.key.decrypt(&found.password_encrypted)?;
        // The salt: a keyed hash of the user name (64 hexadecimal characters, the shape of the
        // gateway's decoy salts for unknown names), the same on every replica.
        let salt = self.state.key.keyed_hash("scram-salt", username.as_bytes());
        let keys = tokio::task::spawn_blocking(move || {
            mechanism.server_keys(&password, salt.as_bytes(), SCRAM_ITERATIONS)
        })
        .await
        .map_err(|e| Error::internal("SCRAM key derivation failed", e))?
        .map_err(|e| Error::internal("SCRAM key derivation failed", e))?;
        if let Ok(mut cache) = self.keys.lock() {
            if cache.len() >= MAX_CACHED_KEYS {
                cache.clear();
            }
            cache.insert(cache_key, (found.password_hash.clone(), keys.clone()));
        }
        Ok(keys)
    }

    async fn cluster(&self, tenant: &Tenant) -> std::result::Result<ClusterRow, AdminError> {
        clusters::find_live(&self.state.store, &tenant.cluster_id)
            .await
            .map_err(|e| admin_error(e, AdminError::InvalidConfig))
    }

    async fn topic(
        &self,
        cluster: &ClusterRow,
        name: &str,
    ) -> std::result::Result<TopicRow, AdminError> {
        if is_reserved(&cluster.prefix, name) {
            // Another cluster's pool name, guessed: refused, whether or not it exists.
            return Err(AdminError::NotAuthorized(format!(
                "this credential may not use topic {name}"
            )));
        }
        topics::find_by_name(&self.state, &cluster.id, name)
            .await
            .map_err(|e| admin_error(e, AdminError::InvalidConfig))?
            .ok_or_else(|| AdminError::UnknownTopic(format!("topic {name} does not exist")))
    }
}

/// The Kafka error for a domain error; `invalid` says which kind a validation failure is.
fn admin_error(error: Error, invalid: fn(String) -> AdminError) -> AdminError {
    match error {
        Error::Invalid(message) => invalid(message),
        Error::LimitExceeded(message) => AdminError::PolicyViolation(message),
        Error::Conflict(message) => AdminError::TopicExists(message),
        Error::NotFound(what) => AdminError::UnknownTopic(format!("{what} not found")),
        Error::Missing(message) => AdminError::UnknownTopic(message),
        Error::Forbidden(message) => AdminError::NotAuthorized(message),
        other => {
            tracing::error!(error = %crate::error::cause_chain(&other), "topic administration over Kafka failed");
            AdminError::Internal("the platform could not do this now; try again".into())
        }
    }
}

/// A millisecond or byte count for a config entry; Kafka's `-1` (no limit) means the plan's
/// maximum, as `-1` does in the API.
fn number(name: &str, value: &str) -> std::result::Result<i64, AdminError> {
    value.trim().parse().map_err(|_| {
        AdminError::InvalidConfig(format!("{name} must be a whole number (got {value:?})"))
    })
}

/// Applies one config entry to a topic update; no value means back to the default (the
/// plan's maximum).
fn apply(
    update: &mut UpdateTopic,
    name: &str,
    value: Option<&str>,
) -> std::result::Result<(), AdminError> {
    let amount = || value.map_or(Ok(-1), |v| number(name, v));
    match name {
        "retention.ms" => update.retention_time = Some(amount()?),
        "retention.bytes" => update.retention_size = Some(amount()?),
        "max.message.bytes" => update.max_message_size = Some(amount()?),
        "cleanup.policy" => {
            return Err(AdminError::InvalidConfig(
                "cleanup.policy is chosen when the topic is created and cannot change".into(),
            ));
        }
        other => {
            return Err(AdminError::InvalidConfig(format!(
                "{other} cannot be set on a Capstan topic; these can: {SETTABLE}"
            )));
        }
    }
    Ok(())
}

#[async_trait]
impl Policy for GatewayPolicy {
    async fn scram_keys(
        &self,
        mechanism: Mechanism,
        username: &str,
    ) -> std::result::Result<Option<(ServerKeys, Tenant)>, PolicyError> {
        let Some(found) = self.find(username).await.map_err(policy_error)? else {
            return Ok(None);
        };
        let keys = self
            .derive_keys(mechanism, username, &found)
            .await
            .map_err(policy_error)?;
        let tenant = self.tenant(username, &found).await.map_err(policy_error)?;
        Ok(Some((keys, tenant)))
    }

    async fn check_password(
        &self,
        username: &str,
        password: &str,
    ) -> std::result::Result<Option<Tenant>, PolicyError> {
        let Some(found) = self.find(username).await.map_err(policy_error)? else {
            return Ok(None);
        };
        let hash = self
            .state
            .key
            .keyed_hash(crate::credentials::PASSWORD_PURPOSE, password.as_bytes());
        if !crypto::constant_time_eq(&hash, &found.password_hash) {
            return Ok(None);
        }
        Ok(Some(
            self.tenant(username, &found).await.map_err(policy_error)?,
        ))
    }

    fn may_authenticate(&self, address: std::net::IpAddr) -> Result<(), std::time::Duration> {
        self.state
            .login_limit
            .may_check_credential(&address.to_string(), std::time::Instant::now())
    }

    fn authentication_failed(&self, address: std::net::IpAddr) {
        self.state
            .login_limit
            .credential_failed(&address.to_string(), std::time::Instant::now());
    }

    fn delivered(&self, tenant: &Tenant, topic: &str, messages: u64) {
        self.state
            .deliveries
            .delivered(&tenant.cluster_id, topic, messages);
    }

    async fn limited(&self, tenant: &Tenant) -> Option<std::time::Duration> {
        let limiter = self.state.limiter.as_ref()?;
        Some(limiter.limit(&tenant.cluster_id).await?.wait)
    }

    fn charge(&self, tenant: &Tenant, messages: u64) -> std::time::Duration {
        self.state
            .limiter
            .as_ref()
            .map_or(std::time::Duration::ZERO, |limiter| {
                limiter.charge(&tenant.cluster_id, messages)
            })
    }

    async fn still_valid(&self, tenant: &Tenant) -> bool {
        match self.find(&tenant.principal).await {
            Ok(Some(found)) => {
                found.cluster.id == tenant.cluster_id
                    && crypto::constant_time_eq(&found.password_hash, &tenant.credential_token)
            }
            Ok(None) => false,
            // The store is unreachable: keep serving what was authenticated.
            Err(_) => true,
        }
    }

    async fn create_topics(
        &self,
        tenant: &Tenant,
        wanted: Vec<NewTopic>,
        validate_only: bool,
    ) -> Vec<std::result::Result<CreatedTopic, AdminError>> {
        let cluster = match self.cluster(tenant).await {
            Ok(cluster) => cluster,
            Err(e) => return wanted.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut results = Vec::with_capacity(wanted.len());
        for topic in wanted {
            results.push(self.create_topic(&cluster, topic, validate_only).await);
        }
        results
    }

    async fn delete_topics(
        &self,
        tenant: &Tenant,
        wanted: Vec<String>,
    ) -> Vec<std::result::Result<(), AdminError>> {
        let cluster = match self.cluster(tenant).await {
            Ok(cluster) => cluster,
            Err(e) => return wanted.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut results = Vec::with_capacity(wanted.len());
        for name in wanted {
            let deleted = match self.topic(&cluster, &name).await {
                Ok(row) => topics::delete_in(&self.state, &cluster, &row)
                    .await
                    .map_err(|e| admin_error(e, AdminError::InvalidConfig)),
                Err(e) => Err(e),
            };
            results.push(deleted);
        }
        results
    }

    async fn create_partitions(
        &self,
        tenant: &Tenant,
        counts: Vec<(String, i32)>,
        validate_only: bool,
    ) -> Vec<std::result::Result<(), AdminError>> {
        let cluster = match self.cluster(tenant).await {
            Ok(cluster) => cluster,
            Err(e) => return counts.iter().map(|_| Err(e.clone())).collect(),
        };
        let mut results = Vec::with_capacity(counts.len());
        for (name, count) in counts {
            let result = async {
                let current = self.topic(&cluster, &name).await?;
                if i64::from(count) <= current.partitions {
                    return Err(AdminError::InvalidPartitions(format!(
                        "topic {name} has {} partitions; it can only grow beyond that (got {count})",
                        current.partitions
                    )));
                }
                let update = UpdateTopic {
                    partitions: Some(i64::from(count)),
                    ..UpdateTopic::default()
                };
                topics::update_in(&self.state, &cluster, &current, update, validate_only)
                    .await
                    .map(|_| ())
                    .map_err(|e| admin_error(e, AdminError::InvalidPartitions))
            }
            .await;
            results.push(result);
        }
        results
    }

    async fn alter_topic_configs(
        &self,
        tenant: &Tenant,
        topic: String,
        changes: Vec<ConfigChange>,
        replace: bool,
        validate_only: bool,
    ) -> std::result::Result<(), AdminError> {
        let cluster = self.cluster(tenant).await?;
        let current = self.topic(&cluster, &topic).await?;
        let mut update = UpdateTopic::default();
        if replace {
            // AlterConfigs: what is not named goes back to its default.
            update.retention_time = Some(-1);
            update.retention_size = Some(-1);
            update.max_message_size = Some(-1);
        }
        for change in &changes {
            match change {
                ConfigChange::Set(name, value)
                    if name == "cleanup.policy" && *value == current.cleanup_policy => {}
                ConfigChange::Set(name, value) => apply(&mut update, name, Some(value))?,
                ConfigChange::Delete(name) => apply(&mut update, name, None)?,
            }
        }
        topics::update_in(&self.state, &cluster, &current, update, validate_only)
            .await
            .map(|_| ())
            .map_err(|e| admin_error(e, AdminError::InvalidConfig))
    }
}

impl GatewayPolicy {
    async fn create_topic(
        &self,
        cluster: &ClusterRow,
        topic: NewTopic,
        validate_only: bool,
    ) -> std::result::Result<CreatedTopic, AdminError> {
        topics::check_name(cluster, &topic.name)
            .map_err(|e| admin_error(e, AdminError::InvalidTopic))?;
        let mut request = CreateTopic {
            name: topic.name,
            partitions: i64::from(topic.partitions.unwrap_or(1)),
            retention_time: -1,
            retention_size: -1,
            max_message_size: -1,
            cleanup_policy: "delete".into(),
            cluster_id: cluster.id.clone(),
        };
        for (name, value) in &topic.configs {
            let Some(value) = value.as_deref() else {
                continue;
            };
            match name.as_str() {
                "retention.ms" => request.retention_time = number(name, value)?,
                "retention.bytes" => request.retention_size = number(name, value)?,
                "max.message.bytes" => request.max_message_size = number(name, value)?,
                "cleanup.policy" => request.cleanup_policy = value.to_owned(),
                other => {
                    return Err(AdminError::InvalidConfig(format!(
                        "{other} cannot be set on a Capstan topic; these can: {SETTABLE}"
                    )));
                }
            }
        }
        let row = topics::create_in(&self.state, cluster, request, validate_only)
            .await
            .map_err(|e| admin_error(e, AdminError::InvalidConfig))?;
        Ok(CreatedTopic {
            partitions: row.partitions as i32,
            configs: row
                .spec()
                .configs()
                .into_iter()
                .map(|(name, value)| (name.to_owned(), value))
                .collect(),
        })
    }
}
