//! The `kubernetes` provisioner: each cluster is a `KafkaCluster` resource that the operator
//! turns into Apache Kafka brokers. This adapts the operator crate's [`KubernetesClusters`] to
//! the control plane's [`Provisioner`] trait. Topics are administered over the Kafka protocol
//! with the admin user from the cluster's Secret; the cluster's state follows the resource's
//! status.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Mutex,
};

use async_trait::async_trait;
use capstan_api::{
    Error, Result, kafka_admin,
    provisioner::{BrokerUser, ClusterSpec, Provisioner, TopicSpec},
};
use capstan_operator::provisioner::{ClusterCredentials, KubernetesClusters};

/// Clusters on Kubernetes, through the operator.
#[derive(Debug)]
pub struct KubernetesProvisioner {
    clusters: KubernetesClusters,
    /// Admin credentials of each cluster, once the operator has made them (`client_config` is
    /// synchronous, so they are kept here).
    credentials: Mutex<HashMap<String, ClusterCredentials>>,
    /// The state last reported for each cluster, so only changes are reported.
    reported: Mutex<HashMap<String, String>>,
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
    /// A provisioner writing `KafkaCluster` resources through `clusters`.
    pub fn new(clusters: KubernetesClusters) -> Self {
        KubernetesProvisioner {
            clusters,
            credentials: Mutex::default(),
            reported: Mutex::default(),
        }
    }

    fn cached(&self, cluster_id: &str) -> Option<ClusterCredentials> {
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(cluster_id)
            .cloned()
    }

    /// The admin credentials, read from the Secret when not known yet.
    async fn admin(&self, cluster_id: &str) -> Result<ClusterCredentials> {
        if let Some(credentials) = self.cached(cluster_id) {
            return Ok(credentials);
        }
        let credentials = self
            .clusters
            .credentials(cluster_id)
            .await
            .map_err(kube_error)?
            .ok_or_else(|| {
                Error::Broker(
                    "the cluster's brokers are still being provisioned; try again in a minute"
                        .into(),
                )
            })?;
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(cluster_id.to_owned(), credentials.clone());
        Ok(credentials)
    }

    async fn admin_config(&self, cluster: &ClusterSpec) -> Result<rdkafka::ClientConfig> {
        let credentials = self.admin(&cluster.id).await?;
        Ok(kafka_admin::client_config(
            &self.clusters.bootstrap(&cluster.id),
            &credentials.admin_username,
            &credentials.admin_password,
        ))
    }

    fn unsupported(what: &str) -> Error {
        Error::Forbidden(format!(
            "{what} is not available on Kubernetes clusters yet: their SCRAM users are set when the brokers are first formatted (see docs/operator.md)"
        ))
    }
}

#[async_trait]
impl Provisioner for KubernetesProvisioner {
    async fn create_cluster(&self, cluster: &ClusterSpec, users: &[BrokerUser]) -> Result<String> {
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

    async fn delete_cluster(&self, cluster: &ClusterSpec) -> Result<()> {
        self.clusters
            .delete(&cluster.id)
            .await
            .map_err(kube_error)?;
        self.credentials
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(&cluster.id);
        Ok(())
    }

    async fn create_topic(&self, cluster: &ClusterSpec, topic: &TopicSpec) -> Result<()> {
        // The operator's contract: RF 3 over the zones of a multi-zone cluster; a single-zone
        // cluster has one broker per zone by default, so RF 1.
        let replication = if cluster.multizone { 3 } else { 1 };
        kafka_admin::create_topic(&self.admin_config(cluster).await?, topic, replication).await
    }

    async fn update_topic(
        &self,
        cluster: &ClusterSpec,
        topic: &TopicSpec,
        old_partitions: i32,
    ) -> Result<()> {
        kafka_admin::update_topic(&self.admin_config(cluster).await?, topic, old_partitions).await
    }

    async fn delete_topic(&self, cluster: &ClusterSpec, name: &str) -> Result<()> {
        kafka_admin::delete_topic(&self.admin_config(cluster).await?, name).await
    }

    async fn put_user(&self, _: &ClusterSpec, _: &BrokerUser) -> Result<()> {
        Err(Self::unsupported("changing a credential"))
    }

    async fn delete_user(&self, _: &ClusterSpec, _: &str) -> Result<()> {
        Err(Self::unsupported("deleting a credential"))
    }

    fn client_config(&self, cluster: &ClusterSpec, bootstrap: &str) -> rdkafka::ClientConfig {
        // Until the operator has made the Secret, connections fail authentication and the
        // gateway answers 503: the cluster is still provisioning.
        let (username, password) = self
            .cached(&cluster.id)
            .map(|c| (c.admin_username, c.admin_password))
            .unwrap_or_else(|| ("capstan-admin".into(), String::new()));
        kafka_admin::client_config(bootstrap, &username, &password)
    }

    async fn stored_bytes(&self, cluster: &ClusterSpec) -> Result<BTreeMap<String, i64>> {
        let admin = self.admin(&cluster.id).await?;
        let credentials = capstan_billing::kafka::Credentials {
            bootstrap: self.clusters.bootstrap(&cluster.id),
            username: admin.admin_username,
            password: admin.admin_password,
        };
        capstan_billing::kafka::stored_bytes(&credentials)
            .await
            .map_err(|e| Error::Broker(format!("could not read the stored bytes: {e}")))
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

    fn initial_state(&self) -> &'static str {
        "provisioning"
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
                changes.push((id, state.to_owned()));
            }
        }
        changes
    }
}

#[cfg(test)]
mod tests {
    use super::state_of;

    #[test]
    fn operator_phases_map_to_cluster_states() {
        assert_eq!(state_of(Some("Ready")), Some("active"));
        assert_eq!(state_of(Some("Provisioning")), Some("provisioning"));
        assert_eq!(state_of(None), Some("provisioning"));
        assert_eq!(state_of(Some("Degraded")), Some("degraded"));
        assert_eq!(state_of(Some("Failed")), Some("failed"));
        assert_eq!(state_of(Some("Deleting")), None);
    }
}
