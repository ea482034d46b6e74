//! The Kubernetes side of the control plane's `kubernetes` provisioner: one `KafkaCluster` per
//! cluster of the store, the credentials Secret it starts from, and what the operator reports
//! back. The control plane adapts this to its `Provisioner` trait (this crate knows nothing of
//! the control plane).

use std::collections::BTreeMap;

use k8s_openapi::{ByteString, api::core::v1::Secret};
use kube::{
    Api, Client,
    api::{DeleteParams, ObjectMeta, Patch, PatchParams},
};

use crate::{
    Authorization, Controllers, Error, KafkaCluster, KafkaClusterSpec, KafkaClusterStatus, Result,
    Storage, ZoneMode, reconciler::kube_error, render::bootstrap_address,
};

/// The field manager of the control plane's writes (the operator has its own).
pub const FIELD_MANAGER: &str = "capstan-control-plane";
/// Label carrying the control plane's cluster id on the resources it creates.
pub const CLUSTER_ID_LABEL: &str = "capstan.dev/cluster-id";

/// How the control plane's clusters are shaped on Kubernetes.
#[derive(Clone, Debug)]
pub struct ClusterTemplate {
    /// Namespace of every `KafkaCluster` the control plane creates.
    pub namespace: String,
    /// The three zones of multi-zone clusters.
    pub zones: Vec<String>,
    /// Apache Kafka version.
    pub version: String,
    /// Volume of each broker.
    pub storage: Storage,
}

/// The SCRAM users the operator's Secret holds for a cluster.
#[derive(Clone)]
pub struct ClusterCredentials {
    /// The admin user (`capstan-admin`): topic administration, metering.
    pub admin_username: String,
    /// Its password.
    pub admin_password: String,
    /// The default client user.
    pub client_username: String,
    /// Its password.
    pub client_password: String,
}

impl std::fmt::Debug for ClusterCredentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ClusterCredentials")
            .field("admin_username", &self.admin_username)
            .field("client_username", &self.client_username)
            .finish_non_exhaustive()
    }
}

/// The control plane's `KafkaCluster` resources in one namespace.
#[derive(Clone)]
pub struct KubernetesClusters {
    client: Client,
    template: ClusterTemplate,
}

impl std::fmt::Debug for KubernetesClusters {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubernetesClusters")
            .field("template", &self.template)
            .finish_non_exhaustive()
    }
}

/// The id of a shared broker pool's `KafkaCluster`: this prefix and the pool's name.
pub const POOL_ID_PREFIX: &str = "pool-";

/// The resource name of a control-plane cluster: `c` and 20 hex digits of its id, short enough
/// for every name the operator derives from it (StatefulSets, pods, revision hashes) to stay
/// within Kubernetes' 63 characters. A shared pool's resource is named by its id
/// (`pool-<name>`; pool names are short DNS labels).
pub fn resource_name(cluster_id: &str) -> String {
    if cluster_id.starts_with(POOL_ID_PREFIX) {
        return cluster_id.to_owned();
    }
    let hex: String = cluster_id
        .chars()
        .filter(char::is_ascii_hexdigit)
        .map(|c| c.to_ascii_lowercase())
        .take(20)
        .collect();
    format!("c{hex}")
}

fn text(secret: &Secret, key: &str) -> Option<String> {
    secret
        .data
        .as_ref()?
        .get(key)
        .and_then(|v| String::from_utf8(v.0.clone()).ok())
}

impl KubernetesClusters {
    /// Clusters made through `client` as `template` says.
    pub fn new(client: Client, template: ClusterTemplate) -> Result<Self> {
        if template.zones.len() != 3 {
            return Err(Error::Invalid(format!(
                "multi-zone clusters need exactly 3 zones; {} are configured",
                template.zones.len()
            )));
        }
        Ok(KubernetesClusters { client, template })
    }

    /// Clusters made through the Kubernetes API of this environment (in-cluster service account,
    /// or `KUBECONFIG`).
    pub async fn connect(template: ClusterTemplate) -> Result<Self> {
        let client = Client::try_default().await.map_err(|e| {
            Error::Kube(format!(
                "{e}; run the control plane in the cluster with its service account, or set KUBECONFIG"
            ))
        })?;
        Self::new(client, template)
    }

    /// Where clients inside the Kubernetes cluster connect: the bootstrap Service.
    pub fn bootstrap(&self, cluster_id: &str) -> String {
        bootstrap_address(&self.template.namespace, &resource_name(cluster_id))
    }

    fn params() -> PatchParams {
        PatchParams::apply(FIELD_MANAGER).force()
    }

    fn metadata(&self, name: String, cluster_id: &str) -> ObjectMeta {
        ObjectMeta {
            name: Some(name),
            namespace: Some(self.template.namespace.clone()),
            labels: Some(BTreeMap::from([(
                CLUSTER_ID_LABEL.to_owned(),
                cluster_id.to_owned(),
            )])),
            ..Default::default()
        }
    }

    /// Writes the cluster's default client credential into the Secret the operator will
    /// complete (it keeps existing values and adds the admin password and KRaft id), then
    /// applies the `KafkaCluster`. Returns the bootstrap address. Idempotent.
    pub async fn create(
        &self,
        cluster_id: &str,
        multizone: bool,
        client_username: &str,
        client_password: &str,
    ) -> Result<String> {
        self.create_sized(cluster_id, multizone, 1, client_username, client_password)
            .await
    }

    /// As [`KubernetesClusters::create`], with `brokers_per_zone` brokers in each zone (shared
    /// pools are larger than one cluster's brokers).
    pub async fn create_sized(
        &self,
        cluster_id: &str,
        multizone: bool,
        brokers_per_zone: u16,
        client_username: &str,
        client_password: &str,
    ) -> Result<String> {
        let name = resource_name(cluster_id);
        let secret = Secret {
            metadata: self.metadata(format!("{name}-kafka-credentials"), cluster_id),
            data: Some(BTreeMap::from([
                (
                    "client-username".to_owned(),
                    ByteString(client_username.as_bytes().to_vec()),
                ),
                (
                    "client-password".to_owned(),
                    ByteString(client_password.as_bytes().to_vec()),
                ),
            ])),
            ..Default::default()
        };
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.template.namespace);
        secrets
            .patch(
                &format!("{name}-kafka-credentials"),
                &Self::params(),
                &Patch::Apply(&with_kind(&secret, "v1", "Secret")?),
            )
            .await
            .map_err(kube_error)?;
        let mut cluster = KafkaCluster::new(
            &name,
            KafkaClusterSpec {
                zone_mode: if multizone {
                    ZoneMode::Multi
                } else {
                    ZoneMode::Single
                },
                zones: if multizone {
                    self.template.zones.clone()
                } else {
                    Vec::new()
                },
                brokers_per_zone: brokers_per_zone.into(),
                version: self.template.version.clone(),
                image: None,
                storage: self.template.storage.clone(),
                resources: None,
                listeners: Default::default(),
                // Scoped credentials are ACLs; only the control plane's admin is a super user.
                authorization: Some(Authorization {
                    kind: "simple".into(),
                    super_users: Vec::new(),
                }),
                // New clusters get a quorum of their own, so their brokers can scale.
                controllers: Some(Controllers::default()),
                paused: false,
            },
        );
        cluster.metadata = self.metadata(name.clone(), cluster_id);
        self.api()
            .patch(&name, &Self::params(), &Patch::Apply(&cluster))
            .await
            .map_err(kube_error)?;
        Ok(self.bootstrap(cluster_id))
    }

    fn api(&self) -> Api<KafkaCluster> {
        Api::namespaced(self.client.clone(), &self.template.namespace)
    }

    /// What the operator last reported; `None` when the resource does not exist.
    pub async fn status(&self, cluster_id: &str) -> Result<Option<KafkaClusterStatus>> {
        Ok(self
            .api()
            .get_opt(&resource_name(cluster_id))
            .await
            .map_err(kube_error)?
            .map(|c| c.status.unwrap_or_default()))
    }

    /// Every `KafkaCluster` of the control plane in the namespace with what the operator last
    /// reported, as `(cluster id, status)`: one LIST request.
    pub async fn statuses(&self) -> Result<Vec<(String, KafkaClusterStatus)>> {
        let list = self
            .api()
            .list(&kube::api::ListParams::default().labels(CLUSTER_ID_LABEL))
            .await
            .map_err(kube_error)?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|cluster| {
                let id = cluster
                    .metadata
                    .labels
                    .as_ref()?
                    .get(CLUSTER_ID_LABEL)?
                    .clone();
                Some((id, cluster.status.unwrap_or_default()))
            })
            .collect())
    }

    /// The SCRAM users of the cluster's Secret, once the operator has completed it.
    pub async fn credentials(&self, cluster_id: &str) -> Result<Option<ClusterCredentials>> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.template.namespace);
        let Some(secret) = secrets
            .get_opt(&format!("{}-kafka-credentials", resource_name(cluster_id)))
            .await
            .map_err(kube_error)?
        else {
            return Ok(None);
        };
        Ok((|| {
            Some(ClusterCredentials {
                admin_username: text(&secret, "admin-username")?,
                admin_password: text(&secret, "admin-password")?,
                client_username: text(&secret, "client-username")?,
                client_password: text(&secret, "client-password")?,
            })
        })())
    }

    /// The cluster ids of every credentials Secret the control plane made in the namespace
    /// (labelled like its `KafkaCluster`s): one LIST request. A Secret whose `KafkaCluster` is
    /// missing was left by a creation stopped between the two.
    pub async fn secret_ids(&self) -> Result<Vec<String>> {
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.template.namespace);
        let list = secrets
            .list(&kube::api::ListParams::default().labels(CLUSTER_ID_LABEL))
            .await
            .map_err(kube_error)?;
        Ok(list
            .items
            .into_iter()
            .filter_map(|secret| secret.metadata.labels?.get(CLUSTER_ID_LABEL).cloned())
            .collect())
    }

    /// Deletes the `KafkaCluster`; the operator's finalizer tears down what it owns, the
    /// credentials Secret among them once the operator has adopted it. A Secret it never
    /// adopted (no owner: the `KafkaCluster` was never reconciled, or never made) is deleted
    /// here. What is already gone is not an error.
    pub async fn delete(&self, cluster_id: &str) -> Result<()> {
        let name = resource_name(cluster_id);
        gone_is_fine(self.api().delete(&name, &DeleteParams::foreground()).await)?;
        let secrets: Api<Secret> = Api::namespaced(self.client.clone(), &self.template.namespace);
        let secret_name = format!("{name}-kafka-credentials");
        let adopted = secrets
            .get_opt(&secret_name)
            .await
            .map_err(kube_error)?
            .map(|secret| {
                secret
                    .metadata
                    .owner_references
                    .is_some_and(|o| !o.is_empty())
            });
        if adopted == Some(false) {
            gone_is_fine(secrets.delete(&secret_name, &DeleteParams::default()).await)?;
        }
        Ok(())
    }
}

/// A deletion's answer, with 404 (already gone) as success.
fn gone_is_fine<T>(answer: std::result::Result<T, kube::Error>) -> Result<()> {
    match answer {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(kube_error(error)),
    }
}

/// Server-side apply needs `apiVersion` and `kind` in the body; typed core objects leave them out.
fn with_kind<T: serde::Serialize>(
    object: &T,
    api_version: &str,
    kind: &str,
) -> Result<serde_json::Value> {
    let mut value = serde_json::to_value(object).map_err(|e| Error::Serialize(e.to_string()))?;
    value["apiVersion"] = api_version.into();
    value["kind"] = kind.into();
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::resource_name;

    #[test]
    fn resource_names_are_short_dns_labels() {
        let name = resource_name("0F8E2A4C-1B3D-4E5F-8A9B-0C1D2E3F4A5B");
        assert_eq!(name, "c0f8e2a4c1b3d4e5f8a9b");
        assert_eq!(name.len(), 21);
        assert_eq!(resource_name("pool-shared"), "pool-shared");
    }
}
