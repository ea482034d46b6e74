//! The reconciler: applies what a `KafkaCluster` owns, keeps its status, and cleans up behind a
//! finalizer. One field manager; a child is written only when the live object no longer holds
//! what was rendered, so reconciling an unchanged resource writes nothing and drift (an edited
//! or deleted child) is repaired.

use std::{
    collections::{BTreeMap, HashMap},
    sync::Arc,
    time::Duration,
};

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Service};
use kube::{
    Api, Client, Resource, ResourceExt,
    api::{ApiResource, DynamicObject, GroupVersionKind, Patch, PatchParams},
    runtime::{
        controller::Action,
        events::{Event as KubeEvent, EventType, Recorder, Reporter},
        finalizer::{Error as FinalizerError, Event, finalizer},
    },
};
use serde_json::{Value, json};

use crate::{
    CONTROLLERS, Error, KafkaCluster, KafkaClusterStatus, RenderInput, Result,
    certificates::certificates,
    render,
    rolling::{self, Rolling},
    scaling::{self, Scaling},
    secrets::{lost_state, secrets},
    storage,
};

/// The one field manager of every write.
pub const FIELD_MANAGER: &str = "capstan-operator";
/// Held on every KafkaCluster until its cleanup is done.
pub const FINALIZER: &str = "capstan.dev/cleanup";

/// What the reconciler needs.
pub struct Context {
    /// The Kubernetes client.
    pub client: Client,
    /// Metrics.
    pub metrics: Arc<crate::metrics::Metrics>,
    /// Failed reconciles in a row, per cluster (`namespace/name`), which space its retries.
    failures: std::sync::Mutex<HashMap<String, u32>>,
    /// Where every cluster's brokers are reached for the rolling checks instead of its
    /// bootstrap Service (tests, where the brokers are a mock on loopback).
    kafka_bootstrap: Option<String>,
}

impl Context {
    /// A context with no failures yet.
    pub fn new(client: Client, metrics: Arc<crate::metrics::Metrics>) -> Self {
        Context {
            client,
            metrics,
            failures: std::sync::Mutex::default(),
            kafka_bootstrap: None,
        }
    }

    /// The same context, reaching every cluster's brokers at `address` (for tests, where the
    /// brokers are a mock on loopback).
    pub fn with_kafka_bootstrap(mut self, address: String) -> Self {
        self.kafka_bootstrap = Some(address);
        self
    }

    /// Counts one more failure of `cluster` in a row; the count so far.
    fn failed(&self, cluster: &str) -> u32 {
        let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        let count = failures.entry(cluster.to_owned()).or_insert(0);
        *count = count.saturating_add(1);
        *count
    }

    fn succeeded(&self, cluster: &str) {
        self.failures
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(cluster);
    }
}

/// The first retry after a failure; each failure in a row doubles it, up to [`MAX_RETRY`].
pub const FIRST_RETRY: Duration = Duration::from_secs(15);
/// The longest wait between retries of a failing cluster.
pub const MAX_RETRY: Duration = Duration::from_secs(300);

fn key_of(cluster: &KafkaCluster) -> String {
    format!(
        "{}/{}",
        cluster.namespace().unwrap_or_default(),
        cluster.name_any()
    )
}

impl std::fmt::Debug for Context {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Context").finish_non_exhaustive()
    }
}

/// Reconciles one KafkaCluster (called by the controller for every change and periodically).
pub async fn reconcile(cluster: Arc<KafkaCluster>, ctx: Arc<Context>) -> Result<Action> {
    let _timer = ctx.metrics.reconcile_timer();
    ctx.metrics.reconciles.inc();
    let namespace = cluster
        .namespace()
        .ok_or_else(|| Error::Invalid("a KafkaCluster must be namespaced".into()))?;
    let api: Api<KafkaCluster> = Api::namespaced(ctx.client.clone(), &namespace);
    let key = key_of(&cluster);
    let outcome = finalizer(&api, FINALIZER, cluster, |event| async {
        match event {
            Event::Apply(cluster) => apply(&cluster, &ctx).await,
            Event::Cleanup(cluster) => cleanup(&cluster, &ctx).await,
        }
    })
    .await
    // The reconciler's own error keeps its reason (for metrics); the rest is the API's.
    .map_err(|e| match e {
        FinalizerError::ApplyFailed(inner) | FinalizerError::CleanupFailed(inner) => inner,
        other => Error::Kube(other.to_string()),
    });
    if outcome.is_ok() {
        ctx.succeeded(&key);
    }
    outcome
}

/// After a failure: count it and retry after [`FIRST_RETRY`], doubled for every failure of the
/// same cluster in a row up to [`MAX_RETRY`] (a success starts it over).
pub fn error_policy(cluster: Arc<KafkaCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    ctx.metrics
        .errors
        .with_label_values(&[error.reason()])
        .inc();
    let failures = ctx.failed(&key_of(&cluster));
    let retry = FIRST_RETRY
        .saturating_mul(1 << failures.saturating_sub(1).min(16))
        .min(MAX_RETRY);
    tracing::warn!(%error, failures, ?retry, "reconcile failed; retrying");
    Action::requeue(retry)
}

/// Applies the cluster; a spec the operator cannot render is recorded as phase `Failed` with
/// its reason, and waits for a new spec (retrying could not help).
async fn apply(cluster: &KafkaCluster, ctx: &Context) -> Result<Action> {
    match apply_spec(cluster, ctx).await {
        Err(Error::Invalid(why)) => {
            ctx.metrics.errors.with_label_values(&["invalid"]).inc();
            tracing::warn!(cluster = %cluster.name_any(), %why, "invalid spec");
            if cluster.status.as_ref().and_then(|s| s.phase.as_deref()) != Some("Failed") {
                publish(
                    ctx,
                    cluster,
                    EventType::Warning,
                    "Failed",
                    &why,
                    "Reconcile",
                )
                .await;
            }
            let status = KafkaClusterStatus {
                phase: Some("Failed".into()),
                observed_generation: cluster.metadata.generation,
                conditions: vec![ready_condition(cluster, false, "InvalidSpec", &why)],
                ..cluster.status.clone().unwrap_or_default()
            };
            write_status(cluster, ctx, status).await?;
            Ok(Action::await_change())
        }
        other => other,
    }
}

async fn apply_spec(cluster: &KafkaCluster, ctx: &Context) -> Result<Action> {
    if cluster.spec.paused {
        tracing::info!(cluster = %cluster.name_any(), "paused: not reconciling");
        return Ok(Action::await_change());
    }
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let sets = statefulsets_of(&ctx.client, &namespace, &name).await?;
    let zone_sets = crate::render::zone_statefulsets(cluster)?;
    let broker_sets: Vec<StatefulSet> = sets
        .iter()
        .filter(|set| zone_sets.contains(&set.name_any()))
        .cloned()
        .collect();
    let secrets = secrets(&ctx.client, &namespace, &name).await?;
    let refusal = match scaling::layout_changed(cluster, &sets, &zone_sets) {
        Some(refused) => Some(refused),
        None if !secrets.kept => lost_state(ctx, cluster, &sets)
            .await?
            .map(|(reason, message)| ("CredentialsLost", reason, message)),
        None => None,
    };
    if let Some((kind, reason, message)) = refusal {
        ctx.metrics.errors.with_label_values(&["refused"]).inc();
        let mut status = KafkaClusterStatus {
            phase: Some("Failed".into()),
            conditions: vec![ready_condition(cluster, false, reason, &message)],
            ..cluster.status.clone().unwrap_or_default()
        };
        note(
            ctx,
            cluster,
            &mut status,
            kind,
            reason,
            &message,
            EventType::Warning,
        )
        .await;
        write_status(cluster, ctx, status).await?;
        return Ok(Action::requeue(Duration::from_secs(60)));
    }
    let certificates = certificates(&ctx.client, &namespace, cluster).await?;
    let admin = capstan_kafka::Credentials {
        bootstrap: ctx
            .kafka_bootstrap
            .clone()
            .unwrap_or_else(|| crate::render::bootstrap_address(&namespace, &name)),
        username: crate::render::ADMIN_USERNAME.into(),
        password: secrets.admin_password.clone(),
        tls: certificates.internal.clone(),
    };
    let scaling = scaling::decide(cluster, live_brokers_per_zone(&broker_sets), &admin).await?;
    let mut effective = cluster.clone();
    let mut retired = cluster
        .status
        .as_ref()
        .map(|s| s.retired_brokers.clone())
        .unwrap_or_default();
    match &scaling {
        Scaling::Refused { keep, .. } => effective.spec.brokers_per_zone = *keep,
        Scaling::Down { removed } => {
            // Recorded before the StatefulSets shrink, so that an operator stopped in between
            // still unregisters them.
            retired.extend(removed);
            retired.sort_unstable();
            retired.dedup();
            let status = KafkaClusterStatus {
                retired_brokers: retired.clone(),
                ..cluster.status.clone().unwrap_or_default()
            };
            write_status(cluster, ctx, status).await?;
        }
        Scaling::AsSpecified => {}
    }
    // The volume claim templates keep the size they were made with; a new one goes to the
    // volumes themselves.
    let wanted_size = cluster.spec.storage.size.clone();
    let resized = match storage::live_size(&broker_sets) {
        // The same size written otherwise (`10Gi`, `10240Mi`) is no change.
        Some(live) if storage::same_size(&live, &cluster.spec.storage.size) => {
            effective.spec.storage.size = live;
            None
        }
        Some(live) => {
            let outcome = storage::resize(
                &ctx.client,
                &namespace,
                &name,
                &live,
                &cluster.spec.storage.size,
            )
            .await?;
            effective.spec.storage.size = live.clone();
            Some((live, outcome))
        }
        _ => None,
    };
    // The controllers' volumes keep the size they were made with (it cannot change, the CRD
    // says so; an API server that does not check would answer the template with 422).
    if let (Some(controllers), Some(live)) = (
        effective.spec.controllers.as_mut(),
        sets.iter()
            .find(|set| set.name_any() == crate::render::controller_statefulset(&name))
            .and_then(|set| storage::live_size(std::slice::from_ref(set))),
    ) {
        controllers.storage_size = live;
    }
    let cluster = &effective;
    let input = RenderInput {
        cluster,
        kraft_cluster_id: secrets.kraft_cluster_id,
        admin_password: secrets.admin_password,
        client_username: secrets.client_username,
        client_password: secrets.client_password,
        certificates_digest: certificates.digest.clone(),
    };
    // Zone by zone: a changed StatefulSet is applied only while every other one is settled, and
    // one per reconcile, so a rolling change never takes brokers of two zones down at once.
    let mut rolling = unsettled(&sets);
    let mut deferred = false;
    let objects = render(&input)?;
    prune_services(ctx, cluster, &objects).await?;
    for object in objects {
        let statefulset = object["kind"] == "StatefulSet";
        let set_name = object["metadata"]["name"]
            .as_str()
            .unwrap_or_default()
            .to_owned();
        let Some(exists) = needs_apply(&ctx.client, &namespace, &object).await? else {
            continue;
        };
        if statefulset && exists && rolling.iter().any(|other| other != &set_name) {
            tracing::info!(statefulset = %set_name, "waiting for another zone to finish rolling");
            deferred = true;
            continue;
        }
        // A running broker restarted onto a TLS Secret that is not there (or incomplete) would
        // not start: its StatefulSet waits for the Secret. (A new cluster's pods just wait.)
        if statefulset && exists && !certificates.unusable.is_empty() {
            tracing::info!(statefulset = %set_name, "waiting for a listener's TLS Secret");
            deferred = true;
            continue;
        }
        apply_object(&ctx.client, &namespace, &object).await?;
        if statefulset && exists {
            rolling.push(set_name);
        }
    }
    let groups = crate::render::node_groups(cluster)?;
    let roll = rolling::step(&ctx.client, &namespace, &name, &groups, &sets, &admin).await?;
    let retired = if retired.is_empty() {
        retired
    } else {
        scaling::unregister_retired(&ctx.client, cluster, &sets, &retired, &admin).await?
    };
    // The generation counts as applied only once nothing of it waits or rolls.
    let storage_refused = matches!(resized, Some((_, storage::Resize::Refused { .. })));
    let scaling_refused = matches!(scaling, Scaling::Refused { .. });
    let applied = !deferred
        && certificates.unusable.is_empty()
        && rolling.is_empty()
        && !scaling_refused
        && retired.is_empty()
        && !storage_refused
        && roll == Rolling::Done;
    let mut status = observe(cluster, &sets, &namespace, applied)?;
    status.cluster_id = Some(input.kraft_cluster_id.clone());
    if !retired.is_empty() {
        status.conditions.push(condition(
            cluster,
            "BrokersUnregistering",
            true,
            "RemovedBrokersPending",
            &format!(
                "brokers {} are removed; each is unregistered from the controllers once its pod is gone",
                scaling::join(&retired)
            ),
        ));
    }
    status.retired_brokers = retired.clone();
    match &roll {
        Rolling::Done => {}
        Rolling::InProgress(what) => {
            tracing::info!(cluster = %name, %what, "rolling");
            status.conditions.push(condition(
                cluster,
                "Rolling",
                true,
                "RestartingBrokers",
                what,
            ));
        }
        Rolling::Held { reason, message } => {
            ctx.metrics.rolls_held.inc();
            note(
                ctx,
                cluster,
                &mut status,
                "RollingHeld",
                reason,
                message,
                EventType::Warning,
            )
            .await;
        }
    }
    for (kind, reason, message) in &certificates.unusable {
        note(
            ctx,
            cluster,
            &mut status,
            kind,
            reason,
            message,
            EventType::Warning,
        )
        .await;
    }
    if let Scaling::Refused {
        reason, message, ..
    } = &scaling
    {
        note(
            ctx,
            cluster,
            &mut status,
            SCALING_REFUSED,
            reason,
            message,
            EventType::Warning,
        )
        .await;
    }
    match resized {
        Some((_, storage::Resize::Refused { reason, message })) => {
            note(
                ctx,
                cluster,
                &mut status,
                "StorageResizeRefused",
                reason,
                &message,
                EventType::Warning,
            )
            .await;
        }
        Some((live, storage::Resize::Grown)) => {
            let message = format!(
                "volumes grown in place to {wanted_size}; the StatefulSet's volume claim template keeps {live} (immutable), so a volume made anew starts at {live}"
            );
            note(
                ctx,
                cluster,
                &mut status,
                "VolumesResized",
                "ExpandedInPlace",
                &message,
                EventType::Normal,
            )
            .await;
        }
        None => {}
    }
    let old_phase = cluster.status.as_ref().and_then(|s| s.phase.clone());
    if old_phase != status.phase {
        let phase = status.phase.clone().unwrap_or_default();
        let kind = if phase == "Degraded" {
            EventType::Warning
        } else {
            EventType::Normal
        };
        let note = status
            .conditions
            .first()
            .and_then(|c| c.get("message").cloned())
            .unwrap_or_default();
        publish(ctx, cluster, kind, &phase, &note, "Reconcile").await;
    }
    write_status(cluster, ctx, status).await?;
    Ok(Action::requeue(Duration::from_secs(match roll {
        Rolling::InProgress(_) => 10,
        Rolling::Held { .. } => 30,
        Rolling::Done if !retired.is_empty() => 10,
        Rolling::Done if deferred => 15,
        Rolling::Done if scaling.waits_for_kafka() => 30,
        Rolling::Done => 300,
    })))
}

/// Writes `status` unless the stored one already says the same (timestamps aside).
async fn write_status(
    cluster: &KafkaCluster,
    ctx: &Context,
    status: KafkaClusterStatus,
) -> Result<()> {
    if cluster.status.as_ref().map(essentials) == Some(essentials(&status)) {
        return Ok(());
    }
    let api: Api<KafkaCluster> =
        Api::namespaced(ctx.client.clone(), &cluster.namespace().unwrap_or_default());
    let body =
        json!({ "apiVersion": "capstan.dev/v1alpha1", "kind": "KafkaCluster", "status": status });
    api.patch_status(
        &cluster.name_any(),
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(&body),
    )
    .await
    .map_err(kube_error)?;
    Ok(())
}

/// Owned objects go away with their owner (owner references); volumes follow the storage
/// class's retention policy. Nothing else to do before the finalizer is removed.
async fn cleanup(cluster: &KafkaCluster, ctx: &Context) -> Result<Action> {
    tracing::info!(cluster = %cluster.name_any(), "deleted; owned objects are garbage-collected");
    let status = KafkaClusterStatus {
        phase: Some("Deleting".into()),
        ..cluster.status.clone().unwrap_or_default()
    };
    write_status(cluster, ctx, status).await?;
    publish(
        ctx,
        cluster,
        EventType::Normal,
        "Deleting",
        "owned objects are garbage-collected",
        "Cleanup",
    )
    .await;
    Ok(Action::await_change())
}

/// Publishes a Kubernetes Event about the cluster; a failure is logged, never fatal.
async fn publish(
    ctx: &Context,
    cluster: &KafkaCluster,
    kind: EventType,
    reason: &str,
    note: &str,
    action: &str,
) {
    let recorder = Recorder::new(
        ctx.client.clone(),
        Reporter {
            controller: FIELD_MANAGER.into(),
            instance: None,
        },
    );
    let event = KubeEvent {
        type_: kind,
        reason: reason.to_owned(),
        note: Some(note.to_owned()),
        action: action.to_owned(),
        secondary: None,
    };
    if let Err(error) = recorder.publish(&event, &cluster.object_ref(&())).await {
        tracing::warn!(%error, "could not publish an event");
    }
}

/// True when every field of `desired` is in `live` with the same value (the server adds more).
pub fn contains(live: &Value, desired: &Value) -> bool {
    match (live, desired) {
        (Value::Object(live), Value::Object(desired)) => desired
            .iter()
            .all(|(k, v)| live.get(k).is_some_and(|l| contains(l, v))),
        (Value::Array(live), Value::Array(desired)) => {
            live.len() == desired.len() && live.iter().zip(desired).all(|(l, d)| contains(l, d))
        }
        (live, desired) => live == desired,
    }
}

fn dynamic_api(client: &Client, namespace: &str, object: &Value) -> (Api<DynamicObject>, String) {
    let api_version = object["apiVersion"].as_str().unwrap_or_default();
    let kind = object["kind"].as_str().unwrap_or_default();
    let name = object["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let resource = ApiResource::from_gvk(&GroupVersionKind::gvk(group, version, kind));
    (
        Api::namespaced_with(client.clone(), namespace, &resource),
        name,
    )
}

/// `None` when the live object already holds what was rendered; else whether it exists.
async fn needs_apply(client: &Client, namespace: &str, object: &Value) -> Result<Option<bool>> {
    let (api, name) = dynamic_api(client, namespace, object);
    let Some(live) = api.get_opt(&name).await.map_err(kube_error)? else {
        return Ok(Some(false));
    };
    let live = serde_json::to_value(&live).map_err(|e| Error::Serialize(e.to_string()))?;
    let desired = json!({ "metadata": object["metadata"], "spec": object.get("spec"), "data": object.get("data") });
    Ok((!contains(&live, &strip_nulls(desired))).then_some(true))
}

/// Applies one child by server-side apply with the one field manager.
async fn apply_object(client: &Client, namespace: &str, object: &Value) -> Result<()> {
    let (api, name) = dynamic_api(client, namespace, object);
    tracing::info!(kind = %object["kind"], %name, "applying");
    api.patch(
        &name,
        &PatchParams::apply(FIELD_MANAGER).force(),
        &Patch::Apply(object),
    )
    .await
    .map_err(kube_error)?;
    Ok(())
}

/// Deletes the cluster's Services that are no longer rendered — the external listener's, once
/// it is switched off: a LoadBalancer left behind keeps costing money and an open port.
/// Only Services this cluster owns (its uid in their owner references) are touched.
async fn prune_services(ctx: &Context, cluster: &KafkaCluster, rendered: &[Value]) -> Result<()> {
    let namespace = cluster.namespace().unwrap_or_default();
    let uid = cluster.metadata.uid.clone().unwrap_or_default();
    let wanted: Vec<&str> = rendered
        .iter()
        .filter(|o| o["kind"] == "Service")
        .filter_map(|o| o["metadata"]["name"].as_str())
        .collect();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &namespace);
    let existing = api
        .list(&kube::api::ListParams::default().labels(&format!(
            "capstan.dev/cluster={},app.kubernetes.io/managed-by={FIELD_MANAGER}",
            cluster.name_any()
        )))
        .await
        .map_err(kube_error)?
        .items;
    for service in existing {
        let name = service.name_any();
        let owned = service
            .owner_references()
            .iter()
            .any(|owner| !uid.is_empty() && owner.uid == uid);
        if owned && !wanted.contains(&name.as_str()) {
            api.delete(&name, &kube::api::DeleteParams::default())
                .await
                .map_err(kube_error)?;
            tracing::info!(service = %name, "deleted: no longer part of the cluster");
        }
    }
    Ok(())
}

/// The cluster's StatefulSets as they run.
async fn statefulsets_of(
    client: &Client,
    namespace: &str,
    cluster: &str,
) -> Result<Vec<StatefulSet>> {
    let api: Api<StatefulSet> = Api::namespaced(client.clone(), namespace);
    Ok(api
        .list(&kube::api::ListParams::default().labels(&format!("capstan.dev/cluster={cluster}")))
        .await
        .map_err(kube_error)?
        .items)
}

/// Names of the StatefulSets not yet settled: some replica not updated or not ready, or the
/// StatefulSet controller not caught up with its spec.
fn unsettled(sets: &[StatefulSet]) -> Vec<String> {
    sets.iter()
        .filter(|set| {
            let wanted = set.spec.as_ref().and_then(|s| s.replicas).unwrap_or(1);
            let status = set.status.clone().unwrap_or_default();
            let observed =
                status.observed_generation.unwrap_or(0) >= set.metadata.generation.unwrap_or(0);
            !(observed
                && status.updated_replicas.unwrap_or(0) >= wanted
                && status.ready_replicas.unwrap_or(0) >= wanted)
        })
        .filter_map(|set| set.metadata.name.clone())
        .collect()
}

/// Brokers per zone of the running StatefulSets, if there are any.
fn live_brokers_per_zone(sets: &[StatefulSet]) -> Option<i32> {
    sets.iter()
        .filter_map(|set| set.spec.as_ref().and_then(|spec| spec.replicas))
        .max()
}

fn strip_nulls(value: Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.into_iter()
                .filter(|(_, v)| !v.is_null())
                .map(|(k, v)| (k, strip_nulls(v)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.into_iter().map(strip_nulls).collect()),
        other => other,
    }
}

/// Says what the cluster is from its StatefulSets as listed at the start of the reconcile (their
/// statuses change only as the StatefulSet controller reports): a broker counts as ready once it is
/// both ready and of the current revision; the observed generation moves to the resource's
/// only when `applied`.
fn observe(
    cluster: &KafkaCluster,
    sets: &[StatefulSet],
    namespace: &str,
    applied: bool,
) -> Result<KafkaClusterStatus> {
    let name = cluster.name_any();
    let zones = cluster.spec.zones()?;
    // Ready and of the current revision.
    let up_to_date = |set: &str| {
        sets.iter()
            .find(|s| s.metadata.name.as_deref() == Some(set))
            .and_then(|s| s.status.as_ref())
            .map(|status| {
                status
                    .ready_replicas
                    .unwrap_or(0)
                    .min(status.updated_replicas.unwrap_or(0))
            })
            .unwrap_or(0)
    };
    let ready: i32 = crate::render::zone_statefulsets(cluster)?
        .iter()
        .map(|set| up_to_date(set))
        .sum();
    let controllers = cluster
        .spec
        .controllers
        .as_ref()
        .map(|_| up_to_date(&crate::render::controller_statefulset(&name)).min(CONTROLLERS));
    let wanted = cluster.spec.brokers_per_zone * zones.len() as i32;
    let controllers_ready = controllers.is_none_or(|n| n >= CONTROLLERS);
    let (phase, reason) = if ready >= wanted && controllers_ready {
        ("Ready", "AllBrokersReady")
    } else if ready == 0 {
        ("Pending", "BrokersStarting")
    } else if ready >= wanted {
        ("Degraded", "SomeControllersNotReady")
    } else {
        ("Degraded", "SomeBrokersNotReady")
    };
    let message = match controllers {
        Some(up) => format!(
            "{ready} of {wanted} brokers and {up} of {CONTROLLERS} controllers ready and up to date"
        ),
        None => format!("{ready} of {wanted} brokers ready and up to date"),
    };
    let previous = cluster.status.clone().unwrap_or_default();
    Ok(KafkaClusterStatus {
        phase: Some(phase.into()),
        observed_generation: if applied {
            cluster.metadata.generation
        } else {
            previous.observed_generation
        },
        bootstrap_servers: Some(crate::render::bootstrap_address(namespace, &name)),
        ready_brokers: Some(ready),
        ready_controllers: controllers,
        retired_brokers: previous.retired_brokers.clone(),
        cluster_id: previous.cluster_id.clone(),
        conditions: vec![ready_condition(cluster, phase == "Ready", reason, &message)],
    })
}

/// Adds the condition `kind` (true) to `status`, with an event the first time it appears.
async fn note(
    ctx: &Context,
    cluster: &KafkaCluster,
    status: &mut KafkaClusterStatus,
    kind: &str,
    reason: &str,
    message: &str,
    event: EventType,
) {
    let noted_before = cluster.status.as_ref().is_some_and(|s| {
        s.conditions
            .iter()
            .any(|c| c.get("type").map(String::as_str) == Some(kind))
    });
    if !noted_before {
        publish(ctx, cluster, event, kind, message, "Reconcile").await;
    }
    status
        .conditions
        .push(condition(cluster, kind, true, reason, message));
}

/// The condition a change of the broker count was refused with.
const SCALING_REFUSED: &str = "ScalingRefused";

/// The `Ready` condition.
fn ready_condition(
    cluster: &KafkaCluster,
    ready: bool,
    reason: &str,
    message: &str,
) -> BTreeMap<String, String> {
    condition(cluster, "Ready", ready, reason, message)
}

/// A condition of type `kind`; its `lastTransitionTime` is kept while its status does not
/// change.
fn condition(
    cluster: &KafkaCluster,
    kind: &str,
    holds: bool,
    reason: &str,
    message: &str,
) -> BTreeMap<String, String> {
    let status = if holds { "True" } else { "False" };
    let since = cluster
        .status
        .as_ref()
        .and_then(|s| {
            s.conditions
                .iter()
                .find(|c| c.get("type").map(String::as_str) == Some(kind))
        })
        .filter(|c| c.get("status").map(String::as_str) == Some(status))
        .and_then(|c| c.get("lastTransitionTime").cloned())
        .unwrap_or_else(now_rfc3339);
    [
        ("type", kind.to_owned()),
        ("status", status.to_owned()),
        ("reason", reason.to_owned()),
        ("message", message.to_owned()),
        ("lastTransitionTime", since),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

/// Phase, observed generation, bootstrap address and cluster id, ready brokers and
/// controllers, brokers to unregister and condition reasons.
type Essentials = (
    Option<String>,
    Option<i64>,
    (Option<String>, Option<String>),
    (Option<i32>, Option<i32>),
    Vec<i32>,
    Vec<String>,
);

/// The status without timestamps: what decides whether a status write is needed.
fn essentials(status: &KafkaClusterStatus) -> Essentials {
    let reasons = status
        .conditions
        .iter()
        .filter_map(|c| c.get("reason").cloned())
        .collect();
    (
        status.phase.clone(),
        status.observed_generation,
        (status.bootstrap_servers.clone(), status.cluster_id.clone()),
        (status.ready_brokers, status.ready_controllers),
        status.retired_brokers.clone(),
        reasons,
    )
}

fn now_rfc3339() -> String {
    let t = time::OffsetDateTime::now_utc();
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

pub(crate) fn kube_error(error: kube::Error) -> Error {
    Error::Kube(error.to_string())
}
