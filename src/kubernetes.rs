//! The `kubernetes` provisioner: each dedicated cluster is a `KafkaCluster` resource that the
//! operator turns into Apache Kafka brokers, and so is each shared pool (one single-zone, one
//! multi-zone, made when the first cluster needs it). This adapts the operator crate's
//! [`KubernetesClusters`] to the control plane's [`Provisioner`] trait. Topics, SCRAM users,
//! their ACLs and client quotas are administered over the Kafka protocol with the admin user
//! from the resource's Secret (the only super user of the brokers); a cluster's state follows
//! its resource's status (a shared cluster's, its pool's).

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use async_trait::async_trait;
use capstan_api::{
    Error, Result, kafka_admin,
    provisioner::{
        Backend, BrokerUser, ClusterSpec, Engine, Inventory, Placement, Provisioner, TopicSpec,
    },
};
use capstan_operator::provisioner::{ClusterCredentials, KubernetesClusters, POOL_ID_PREFIX};

/// The shared pools on Kubernetes.
#[derive(Clone, Debug)]
pub struct Pools {
    /// Name of the single-zone pool (a DNS label).
    pub single_zone: String,
    /// Name of the multi-zone pool.
    pub multi_zone: String,
    /// Brokers per zone of each pool.
    pub brokers_per_zone: u16,
}

impl Default for Pools {
    fn default() -> Self {
        Pools {
            single_zone: "shared-single-zone".into(),
            multi_zone: "shared-multi-zone".into(),
            brokers_per_zone: 3,
        }
    }
}

/// How the clients of dedicated clusters reach their brokers.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum DedicatedAccess {
    /// Through the Kafka gateway, like shared clusters: the gateway applies the credentials'
    /// scopes, the plan's limits and the cap, registers topics made over TCP, and counts what
    /// it delivers; the brokers know no user but the control plane's.
    #[default]
    Gateway,
    /// Straight to their brokers (`tcp_endpoint` is the brokers' bootstrap service): scopes are
    /// the brokers' ACLs, the cap is client quotas, topics are administered only through the
    /// API and console, and consumption is read from committed offsets.
    Direct,
}

/// The resource id of the brokers a cluster's topics live on: its own, or its pool's.
fn brokers_of(cluster: &ClusterSpec) -> String {
    match &cluster.placement {
        Placement::Dedicated => cluster.id.clone(),
        Placement::Shared { pool, .. } => format!("{POOL_ID_PREFIX}{pool}"),
    }
}

/// The shared clusters' prefixes that `names` (of a pool) start with, each once.
fn prefixes_of<'a>(names: impl Iterator<Item = &'a String>) -> Vec<String> {
    let mut prefixes: Vec<String> = names
        .filter_map(|name| name.get(..capstan_api::clusters::PREFIX_LEN))
        .filter(|head| capstan_api::clusters::is_prefix(head))
        .map(str::to_owned)
        .collect();
    prefixes.sort();
    prefixes.dedup();
    prefixes
}

/// The bytes of a cluster's own topics, by its names: those under its `prefix` on a pool, and
/// on brokers of its own every topic but Kafka's internal ones (`__consumer_offsets`,
/// `__transaction_state`), which are not the tenant's data and are not billed.
fn tenant_sizes(sizes: BTreeMap<String, i64>, prefix: &str) -> BTreeMap<String, i64> {
    sizes
        .into_iter()
        .filter_map(|(topic, bytes)| topic.strip_prefix(prefix).map(|t| (t.to_owned(), bytes)))
        .filter(|(topic, _)| !prefix.is_empty() || !topic.starts_with("__"))
        .collect()
}

/// Clusters on Kubernetes, through the operator.
#[derive(Debug)]
pub struct KubernetesProvisioner {
    clusters: KubernetesClusters,
    pools: Pools,
    dedicated_access: DedicatedAccess,
    /// How the control plane reaches each cluster's brokers, once the operator has made its
    /// Secret (`client_config` is synchronous, so this is kept here).
    access: Mutex<HashMap<String, Access>>,
    /// The state last reported for each cluster, so only changes are reported.
    reported: Mutex<HashMap<String, String>>,
}

/// The admin user of a cluster and where the operator says its brokers are.
#[derive(Clone, Debug)]
struct Access {
    credentials: ClusterCredentials,
    bootstrap: String,
}

fn kube_error(error: capstan_operator::Error) -> Error {
    Error::Broker(format!("the Kubernetes API failed: {error}"))
}

/// The control plane's state for an operator phase; `None` while the resource is deleted.
fn state_of(phase: Option<&str>) -> Option<&'static str> {
    match phase {
        Some("Ready") => Some("active"),
        Some("Degraded") => Some("degraded"),
        Some("Failed") => Some("failed"),
        Some("Deleting") => None,
        _ => Some("provisioning"),
    }
}

impl KubernetesProvisioner {
    /// A provisioner writing `KafkaCluster` resources through `clusters`, with shared `pools`,
    /// whose dedicated clusters' clients connect as `dedicated_access` says.
    pub fn new(
        clusters: KubernetesClusters,
        pools: Pools,
        dedicated_access: DedicatedAccess,
    ) -> Self {
        KubernetesProvisioner {
            clusters,
            pools,
            dedicated_access,
            access: Mutex::default(),
            reported: Mutex::default(),
        }
    }

    /// True when `cluster`'s clients sign in to its brokers themselves (so the brokers need
    /// their users, ACLs and quotas); clients of a pool, or of any cluster reached through the
    /// gateway, never meet the brokers' users.
    fn clients_meet_brokers(&self, cluster: &ClusterSpec) -> bool {
        cluster.pool().is_none() && self.dedicated_access == DedicatedAccess::Direct
    }

    fn cached(&self, cluster_id: &str) -> Option<Access> {
        self.access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cluster_id)
            .cloned()
    }

    /// The admin user and the bootstrap address the operator reports, read from the Kubernetes
    /// API when not known yet.
    async fn admin(&self, cluster_id: &str) -> Result<Access> {
        if let Some(access) = self.cached(cluster_id) {
            return Ok(access);
        }
        let provisioning = || {
            Error::Broker(
                "the cluster's brokers are still being provisioned; try again in a minute".into(),
            )
        };
        let credentials = self
            .clusters
            .credentials(cluster_id)
            .await
            .map_err(kube_error)?
            .ok_or_else(provisioning)?;
        let bootstrap = self
            .clusters
            .status(cluster_id)
            .await
            .map_err(kube_error)?
            .and_then(|status| status.bootstrap_servers)
            .ok_or_else(provisioning)?;
        let access = Access {
            credentials,
            bootstrap,
        };
        self.access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cluster_id.to_owned(), access.clone());
        Ok(access)
    }

    async fn admin_config(&self, cluster: &ClusterSpec) -> Result<rdkafka::ClientConfig> {
        let Access {
            credentials,
            bootstrap,
        } = self.admin(&brokers_of(cluster)).await?;
        Ok(kafka_admin::client_config(
            &bootstrap,
            &credentials.admin_username,
            &credentials.admin_password,
        ))
    }

    /// The admin user's connection settings for Capstan's own Kafka client.
    async fn protocol_credentials(
        &self,
        cluster: &ClusterSpec,
    ) -> Result<capstan_kafka::Credentials> {
        self.credentials_of(&brokers_of(cluster)).await
    }

    /// The same for the brokers of resource id `brokers` (a cluster's, or `pool-<name>`).
    async fn credentials_of(&self, brokers: &str) -> Result<capstan_kafka::Credentials> {
        let Access {
            credentials,
            bootstrap,
        } = self.admin(brokers).await?;
        Ok(capstan_kafka::Credentials {
            bootstrap,
            username: credentials.admin_username,
            password: credentials.admin_password,
            tls: None,
        })
    }
}

#[async_trait]
impl Provisioner for KubernetesProvisioner {
    fn pool_for(&self, multizone: bool) -> String {
        if multizone {
            self.pools.multi_zone.clone()
        } else {
            self.pools.single_zone.clone()
        }
    }

    fn engine(&self) -> Engine {
        Engine::ApacheKafka
    }

    fn dedicated_through_gateway(&self) -> bool {
        self.dedicated_access == DedicatedAccess::Gateway
    }

    async fn gateway_backend(&self, cluster: &ClusterSpec) -> Result<Backend> {
        let brokers = brokers_of(cluster);
        let Access {
            credentials,
            bootstrap,
        } = self.admin(&brokers).await?;
        Ok(Backend {
            id: brokers,
            bootstrap,
            username: credentials.admin_username,
            password: credentials.admin_password,
            engine: Engine::ApacheKafka,
        })
    }

    async fn create_cluster(&self, cluster: &ClusterSpec, users: &[BrokerUser]) -> Result<String> {
        if let Placement::Shared { pool, .. } = &cluster.placement {
            // The pool is made once, by the first cluster that needs it.
            let id = format!("{POOL_ID_PREFIX}{pool}");
            if self
                .clusters
                .status(&id)
                .await
                .map_err(kube_error)?
                .is_none()
            {
                let user = capstan_api::credentials::generate_secret(pool);
                self.clusters
                    .create_sized(
                        &id,
                        cluster.multizone,
                        self.pools.brokers_per_zone,
                        &user.username,
                        &user.password,
                    )
                    .await
                    .map_err(kube_error)?;
                tracing::info!(%pool, "created a shared broker pool");
            }
            return Ok(self.clusters.bootstrap(&id));
        }
        let default = users.first().ok_or_else(|| {
            Error::internal("a new cluster needs its default user", "no users given")
        })?;
        self.clusters
            .create(
                &cluster.id,
                cluster.multizone,
                &default.username,
                &default.password,
            )
            .await
            .map_err(kube_error)
    }

    async fn resume_cluster(&self, cluster: &ClusterSpec, _bootstrap: &str) -> Result<String> {
        let status = self
            .clusters
            .status(&cluster.id)
            .await
            .map_err(kube_error)?
            .ok_or_else(|| {
                Error::Broker(format!(
                    "the KafkaCluster {} of cluster {} is missing; delete the cluster or re-create the resource",
                    capstan_operator::provisioner::resource_name(&cluster.id),
                    cluster.id
                ))
            })?;
        Ok(status
            .bootstrap_servers
            .unwrap_or_else(|| self.clusters.bootstrap(&cluster.id)))
    }

    async fn inventory(&self) -> Result<Inventory> {
        // Dedicated clusters: their KafkaClusters, and Secrets left without one by a creation
        // stopped between the two (the pools are named `pool-…`).
        let resources = self.clusters.statuses().await.map_err(kube_error)?;
        let mut dedicated: Vec<String> = resources
            .iter()
            .map(|(id, _)| id.clone())
            .chain(self.clusters.secret_ids().await.map_err(kube_error)?)
            .filter(|id| !id.starts_with(POOL_ID_PREFIX))
            .collect();
        dedicated.sort();
        dedicated.dedup();
        // Shared clusters: the prefixes of the names on each pool that answers. A pool that
        // does not (still starting, down) is looked at again at the next pass.
        let mut prefixes = Vec::new();
        for (id, _) in &resources {
            let Some(pool) = id.strip_prefix(POOL_ID_PREFIX) else {
                continue;
            };
            let names = match self.credentials_of(id).await {
                Ok(credentials) => capstan_kafka::pool_names(&credentials)
                    .await
                    .map_err(|e| Error::Broker(e.to_string())),
                Err(error) => Err(error),
            };
            match names {
                Ok(names) => prefixes.extend(
                    prefixes_of(names.topics.iter().chain(&names.groups))
                        .into_iter()
                        .map(|prefix| (pool.to_owned(), prefix)),
                ),
                Err(error) => {
                    tracing::warn!(%pool, %error, "could not list a pool's names; it is swept at a later pass");
                }
            }
        }
        Ok(Inventory {
            dedicated,
            prefixes,
        })
    }

    async fn delete_cluster(&self, cluster: &ClusterSpec) -> Result<()> {
        if cluster.pool().is_some() {
            let credentials = self.protocol_credentials(cluster).await?;
            return capstan_kafka::delete_prefixed(&credentials, cluster.prefix())
                .await
                .map_err(|e| Error::Broker(format!("could not delete the cluster's names: {e}")));
        }
        self.clusters
            .delete(&cluster.id)
            .await
            .map_err(kube_error)?;
        self.access
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cluster.id);
        Ok(())
    }

    async fn create_topic(&self, cluster: &ClusterSpec, topic: &TopicSpec) -> Result<()> {
        // The operator's contract: RF 3 over the zones of a multi-zone cluster; a single-zone
        // cluster has one broker per zone by default, so RF 1.
        let replication = if cluster.multizone { 3 } else { 1 };
        let topic = TopicSpec {
            name: cluster.physical(&topic.name),
            ..topic.clone()
        };
        kafka_admin::create_topic(&self.admin_config(cluster).await?, &topic, replication).await
    }

    async fn update_topic(
        &self,
        cluster: &ClusterSpec,
        topic: &TopicSpec,
        old_partitions: i32,
    ) -> Result<()> {
        let topic = TopicSpec {
            name: cluster.physical(&topic.name),
            ..topic.clone()
        };
        kafka_admin::update_topic(&self.admin_config(cluster).await?, &topic, old_partitions).await
    }

    async fn delete_topic(&self, cluster: &ClusterSpec, name: &str) -> Result<()> {
        kafka_admin::delete_topic(&self.admin_config(cluster).await?, &cluster.physical(name)).await
    }

    async fn put_user(&self, cluster: &ClusterSpec, user: &BrokerUser) -> Result<()> {
        if !self.clients_meet_brokers(cluster) {
            // Its clients authenticate at the gateway.
            return Ok(());
        }
        let credentials = self.protocol_credentials(cluster).await?;
        capstan_kafka::upsert_scram_user(&credentials, &user.username, &user.password)
            .await
            .map_err(|e| Error::Broker(format!("could not set the SCRAM user: {e}")))?;
        // The brokers authorize (the operator's `authorization: simple`): the user can do
        // exactly what its credential's scope allows, the same rules as at the gateway.
        capstan_kafka::grant_acls(&credentials, &user.username, &user.scope)
            .await
            .map_err(|e| Error::Broker(format!("could not write the credential's ACLs: {e}")))
    }

    async fn delete_user(&self, cluster: &ClusterSpec, username: &str) -> Result<()> {
        if !self.clients_meet_brokers(cluster) {
            return Ok(());
        }
        let credentials = self.protocol_credentials(cluster).await?;
        // The password first: from here on the user cannot sign in, whatever its ACLs.
        capstan_kafka::delete_scram_user(&credentials, username)
            .await
            .map_err(|e| Error::Broker(format!("could not delete the SCRAM user: {e}")))?;
        capstan_kafka::revoke_acls(&credentials, username)
            .await
            .map_err(|e| Error::Broker(format!("could not delete the credential's ACLs: {e}")))
    }

    async fn set_client_quotas(
        &self,
        cluster: &ClusterSpec,
        usernames: &[String],
        bytes_per_second: Option<u64>,
    ) -> Result<()> {
        if !self.clients_meet_brokers(cluster) {
            // Its clients are throttled at the gateway.
            return Ok(());
        }
        let credentials = self.protocol_credentials(cluster).await?;
        capstan_kafka::set_user_quotas(&credentials, usernames, bytes_per_second)
            .await
            .map_err(|e| Error::Broker(format!("could not set client quotas: {e}")))
    }

    fn client_config(&self, cluster: &ClusterSpec, bootstrap: &str) -> rdkafka::ClientConfig {
        // Until the operator has made the Secret, connections fail authentication and the
        // gateway answers 503: the cluster is still provisioning.
        let access = self.cached(&brokers_of(cluster));
        let bootstrap = match (&cluster.placement, &access) {
            (Placement::Shared { .. }, Some(access)) => access.bootstrap.clone(),
            (Placement::Shared { .. }, None) => self.clusters.bootstrap(&brokers_of(cluster)),
            (Placement::Dedicated, _) => bootstrap.to_owned(),
        };
        let (username, password) = access
            .map(|a| (a.credentials.admin_username, a.credentials.admin_password))
            .unwrap_or_else(|| ("capstan-admin".into(), String::new()));
        kafka_admin::client_config(&bootstrap, &username, &password)
    }

    async fn stored_bytes(&self, cluster: &ClusterSpec) -> Result<BTreeMap<String, i64>> {
        let credentials = self.protocol_credentials(cluster).await?;
        let sizes = capstan_kafka::stored_bytes(&credentials)
            .await
            .map_err(|e| Error::Broker(format!("could not read the stored bytes: {e}")))?;
        Ok(tenant_sizes(sizes, cluster.prefix()))
    }

    /// Nothing to restart (Kubernetes does that); reads the admin credentials of clusters whose
    /// Secret was not complete yet.
    async fn supervise(&self) -> usize {
        let known: Vec<String> = self
            .reported
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        for id in known {
            if self.cached(&id).is_none() {
                let _ = self.admin(&id).await;
            }
        }
        0
    }

    async fn shutdown(&self) {}

    fn initial_state(&self, cluster: &ClusterSpec) -> &'static str {
        // A shared cluster is as ready as its pool.
        let reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        match reported.get(&brokers_of(cluster)).map(String::as_str) {
            Some("active") if cluster.pool().is_some() => "active",
            _ => "provisioning",
        }
    }

    async fn observed_states(&self) -> Vec<(String, String)> {
        let statuses = match self.clusters.statuses().await {
            Ok(statuses) => statuses,
            Err(error) => {
                tracing::warn!(%error, "could not list KafkaClusters");
                return Vec::new();
            }
        };
        let mut reported = self.reported.lock().unwrap_or_else(|p| p.into_inner());
        let mut changes = Vec::new();
        for (id, status) in statuses {
            let Some(state) = state_of(status.phase.as_deref()) else {
                continue;
            };
            if reported.get(&id).map(String::as_str) != Some(state) {
                reported.insert(id.clone(), state.to_owned());
                // A pool's state is its clusters' (`pool:<name>`, see `Provisioner::observed_states`).
                let reported_id = match id.strip_prefix(POOL_ID_PREFIX) {
                    Some(pool) => format!("pool:{pool}"),
                    None => id,
                };
                changes.push((reported_id, state.to_owned()));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::{state_of, tenant_sizes};

    #[test]
    fn stored_bytes_are_the_tenants_topics_only() {
        let sizes = |pairs: &[(&str, i64)]| {
            pairs
                .iter()
                .map(|(t, b)| (t.to_string(), *b))
                .collect::<std::collections::BTreeMap<_, _>>()
        };
        let on_brokers = sizes(&[
            ("__consumer_offsets", 50),
            ("__transaction_state", 7),
            ("orders", 10),
            ("abc.orders", 3),
        ]);
        assert_eq!(
            tenant_sizes(on_brokers.clone(), ""),
            sizes(&[("abc.orders", 3), ("orders", 10)])
        );
        assert_eq!(tenant_sizes(on_brokers, "abc."), sizes(&[("orders", 3)]));
    }

    #[test]
    fn operator_phases_map_to_cluster_states() {
        assert_eq!(state_of(Some("Ready")), Some("active"));
        assert_eq!(state_of(Some("Provisioning")), Some("provisioning"));
        assert_eq!(state_of(Some("Pending")), Some("provisioning"));
        assert_eq!(state_of(None), Some("provisioning"));
        assert_eq!(state_of(Some("Degraded")), Some("degraded"));
        assert_eq!(state_of(Some("Failed")), Some("failed"));
        assert_eq!(state_of(Some("Deleting")), None);
    }
}
