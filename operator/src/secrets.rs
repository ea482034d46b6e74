//! The cluster's Secret (KRaft cluster id, the admin and client SCRAM passwords): made once,
//! read back on every reconcile, and never made anew for a cluster whose brokers already hold
//! what it held.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Secret};
use kube::{Api, Client, ResourceExt};
use rand::RngCore;

use crate::{
    KafkaCluster, Result,
    reconciler::{Context, kube_error},
};

pub(crate) struct Secrets {
    /// False when the Secret holds no KRaft cluster id yet (so the values are new).
    pub(crate) kept: bool,
    pub(crate) kraft_cluster_id: String,
    pub(crate) admin_password: String,
    pub(crate) client_username: String,
    pub(crate) client_password: String,
}

pub(crate) fn random(bytes: usize) -> String {
    let mut buffer = vec![0u8; bytes];
    rand::rngs::OsRng.fill_bytes(&mut buffer);
    URL_SAFE_NO_PAD.encode(buffer)
}

/// The cluster's secrets: those of its Secret when it exists, else new ones (made once).
pub(crate) async fn secrets(client: &Client, namespace: &str, name: &str) -> Result<Secrets> {
    let api: Api<Secret> = Api::namespaced(client.clone(), namespace);
    let existing = api
        .get_opt(&format!("{name}-kafka-credentials"))
        .await
        .map_err(kube_error)?;
    let value = |key: &str| {
        existing
            .as_ref()
            .and_then(|s| s.data.as_ref())
            .and_then(|d| d.get(key))
            .and_then(|v| String::from_utf8(v.0.clone()).ok())
    };
    Ok(Secrets {
        kept: value("kraft-cluster-id").is_some(),
        kraft_cluster_id: value("kraft-cluster-id").unwrap_or_else(|| random(16)),
        admin_password: value("admin-password").unwrap_or_else(|| random(32)),
        client_username: value("client-username")
            .unwrap_or_else(|| URL_SAFE_NO_PAD.encode(format!("{name}${}", random(9)))),
        client_password: value("client-password").unwrap_or_else(|| random(32)),
    })
}

/// Why new credentials and a new KRaft cluster id would break the cluster, when they would: the
/// Secret is gone while the cluster has run (its brokers keep the old cluster id and SCRAM
/// users), or volumes remain from an earlier KafkaCluster of the same name (kept by
/// `deleteClaim: false`; formatted with another cluster id, on which Kafka refuses to start).
pub(crate) async fn lost_state(
    ctx: &Context,
    cluster: &KafkaCluster,
    sets: &[StatefulSet],
) -> Result<Option<(&'static str, String)>> {
    let name = cluster.name_any();
    let secret = format!("{name}-kafka-credentials");
    if let Some(id) = cluster.status.as_ref().and_then(|s| s.cluster_id.clone()) {
        return Ok(Some((
            "SecretDeleted",
            format!(
                "the Secret {secret} (KRaft cluster id {id}, the admin and client passwords) is gone, and the brokers keep what it held; restore it from a backup (its kraft-cluster-id is {id}) — the operator will not make new credentials the brokers would refuse"
            ),
        )));
    }
    if !sets.is_empty() {
        return Ok(Some((
            "SecretDeleted",
            format!(
                "the Secret {secret} is gone while the cluster's StatefulSets run, and the brokers keep what it held; restore it from a backup — the operator will not make new credentials the brokers would refuse"
            ),
        )));
    }
    let claims: Api<k8s_openapi::api::core::v1::PersistentVolumeClaim> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let left: Vec<String> = claims
        .list(&kube::api::ListParams::default().labels(&format!("capstan.dev/cluster={name}")))
        .await
        .map_err(kube_error)?
        .items
        .into_iter()
        .map(|claim| claim.name_any())
        .collect();
    if left.is_empty() {
        return Ok(None);
    }
    Ok(Some((
        "VolumesOfAnEarlierCluster",
        format!(
            "volume claims {} remain from an earlier KafkaCluster named {name} (storage.deleteClaim was false); they hold another KRaft cluster id, on which Kafka refuses to start: delete them to start empty (kubectl delete pvc -l capstan.dev/cluster={name}), or give this cluster another name",
            left.join(", ")
        ),
    )))
}
