//! A change of `spec.storage.size` on a running cluster. A StatefulSet's volume claim templates
//! are immutable (applying a new size is refused with 422, again at every reconcile), so the
//! volumes are grown in place instead, as Strimzi does: each PersistentVolumeClaim gets the new
//! request when its StorageClass allows expansion, and the template keeps the size it was made
//! with. A size Kubernetes cannot give (smaller, or a class without expansion) is refused with
//! a condition saying why.

use std::collections::BTreeMap;

use k8s_openapi::api::{
    apps::v1::StatefulSet, core::v1::PersistentVolumeClaim, storage::v1::StorageClass,
};
use kube::{
    Api, Client,
    api::{ListParams, Patch, PatchParams},
};
use serde_json::json;

use crate::{Result, reconciler::FIELD_MANAGER, reconciler::kube_error, render::quantity_bytes};

/// What became of a new volume size.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Resize {
    /// Every volume asks for the new size (the storage driver grows it).
    Grown,
    /// Not possible: a condition reason and what to do.
    Refused {
        /// The condition's reason.
        reason: &'static str,
        /// The condition's message.
        message: String,
    },
}

/// The volume size the cluster's StatefulSets were made with, if they exist.
pub(crate) fn live_size(sets: &[StatefulSet]) -> Option<String> {
    sets.iter().find_map(|set| {
        let template = set
            .spec
            .as_ref()?
            .volume_claim_templates
            .as_ref()?
            .first()?;
        let requests = template
            .spec
            .as_ref()?
            .resources
            .as_ref()?
            .requests
            .as_ref()?;
        requests.get("storage").map(|quantity| quantity.0.clone())
    })
}

/// Whether two quantities are the same size, however written.
pub(crate) fn same_size(a: &str, b: &str) -> bool {
    a == b || quantity_bytes(a).is_some_and(|bytes| Some(bytes) == quantity_bytes(b))
}

/// Grows every broker volume of `cluster` from `live` to `wanted`, or says why it cannot.
pub(crate) async fn resize(
    client: &Client,
    namespace: &str,
    cluster: &str,
    live: &str,
    wanted: &str,
) -> Result<Resize> {
    let (Some(live_bytes), Some(wanted_bytes)) = (quantity_bytes(live), quantity_bytes(wanted))
    else {
        return Ok(refused(
            "InvalidSize",
            format!("storage.size {wanted:?} is not a Kubernetes quantity such as 20Gi"),
        ));
    };
    if wanted_bytes < live_bytes {
        return Ok(refused(
            "ShrinkNotPossible",
            format!(
                "storage.size {wanted} is smaller than the volumes' {live}, and Kubernetes volumes cannot shrink; set it back to {live}"
            ),
        ));
    }
    let claims: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), namespace);
    let classes: Api<StorageClass> = Api::all(client.clone());
    let owned = claims
        // The brokers' volumes; dedicated controllers' keep their own size.
        .list(&ListParams::default().labels(&format!(
            "capstan.dev/cluster={cluster},{}!=controller",
            crate::render::ROLE_LABEL
        )))
        .await
        .map_err(kube_error)?
        .items;
    // Volumes already asking for the size need nothing (after an in-place expansion, every
    // later reconcile lands here: one LIST, no StorageClass lookups).
    let to_grow: Vec<PersistentVolumeClaim> = owned
        .into_iter()
        .filter(|claim| {
            claim
                .spec
                .as_ref()
                .and_then(|s| s.resources.as_ref())
                .and_then(|r| r.requests.as_ref())
                .and_then(|r| r.get("storage"))
                .and_then(|q| quantity_bytes(&q.0))
                .is_none_or(|bytes| bytes < wanted_bytes)
        })
        .collect();
    // Every class is checked before any volume changes, so a refusal leaves all as they were.
    let mut expandable: BTreeMap<String, bool> = BTreeMap::new();
    for claim in &to_grow {
        let Some(class) = claim
            .spec
            .as_ref()
            .and_then(|s| s.storage_class_name.clone())
        else {
            return Ok(refused(
                "NoStorageClass",
                format!(
                    "volume {} has no storage class, so it cannot be expanded; set storage.size back to {live}",
                    claim.metadata.name.clone().unwrap_or_default()
                ),
            ));
        };
        if !expandable.contains_key(&class) {
            let allows = classes
                .get_opt(&class)
                .await
                .map_err(kube_error)?
                .and_then(|c| c.allow_volume_expansion)
                .unwrap_or(false);
            expandable.insert(class.clone(), allows);
        }
        if expandable.get(&class) != Some(&true) {
            return Ok(refused(
                "ExpansionNotAllowed",
                format!(
                    "storage class {class} does not allow volume expansion (allowVolumeExpansion); set storage.size back to {live}, or use a class that does"
                ),
            ));
        }
    }
    for claim in to_grow {
        let name = claim.metadata.name.unwrap_or_default();
        let patch = json!({
            "apiVersion": "v1",
            "kind": "PersistentVolumeClaim",
            "metadata": { "name": name },
            "spec": { "resources": { "requests": { "storage": wanted } } }
        });
        claims
            .patch(
                &name,
                &PatchParams::apply(FIELD_MANAGER).force(),
                &Patch::Apply(&patch),
            )
            .await
            .map_err(kube_error)?;
        tracing::info!(volume = %name, %wanted, "volume grown in place");
    }
    Ok(Resize::Grown)
}

fn refused(reason: &'static str, message: String) -> Resize {
    Resize::Refused { reason, message }
}
