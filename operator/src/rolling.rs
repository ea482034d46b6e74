//! Rolling restarts that keep the data available: the brokers' StatefulSets use the `OnDelete`
//! update strategy, and the operator restarts their pods itself, Strimzi's KafkaRoller way:
//!
//! 1. pods of an old revision that are not ready are restarted first, all at once: they serve
//!    nothing, and waiting for them one by one could never end (a broker of a crash-looping
//!    cluster cannot become ready until enough of the others are fixed to form a quorum);
//! 2. otherwise nothing happens while any pod of the cluster is stopping or not ready;
//! 3. then one ready pod at a time: the dedicated controllers first, then the brokers zone by
//!    zone, the highest ordinal first and the KRaft quorum leader last; before each, the operator asks Kafka (as the admin user) whether the broker can
//!    go: no partition may drop below `min.insync.replicas` and a majority of the controller
//!    quorum must stay caught up ([`capstan_kafka::restart_check`]). When Kafka says no, or
//!    cannot be asked, the roll is held with a condition that says why and retried.

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{
    Api, Client, ResourceExt,
    api::{DeleteParams, ListParams},
};

use crate::{Result, reconciler::kube_error, render::NodeIds};

/// Where rolling a cluster stands after one step.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Rolling {
    /// Every broker runs its StatefulSet's current revision.
    Done,
    /// A restart is under way or was just made: what.
    InProgress(String),
    /// The next restart waits for the cluster: a condition reason and why.
    Held {
        /// `UnderMinIsr`, `QuorumNotCaughtUp` or `AvailabilityUnknown`.
        reason: &'static str,
        /// What holds it and what the user can do.
        message: String,
    },
}

/// A pod of an old revision and where it sits.
struct Stale {
    pod: Pod,
    /// Its StatefulSet's place in the rolling order.
    group: usize,
    ordinal: i32,
    node: i32,
}

/// Takes the next step of rolling the cluster `name` whose StatefulSets are `sets`; `groups`
/// names them in rolling order with how their pods' node ids go (see
/// [`render::node_groups`](crate::render::node_groups)); its brokers are asked with the admin
/// user's `credentials`.
pub(crate) async fn step(
    client: &Client,
    namespace: &str,
    name: &str,
    groups: &[(String, NodeIds)],
    sets: &[StatefulSet],
    credentials: &capstan_kafka::Credentials,
) -> Result<Rolling> {
    let api: Api<Pod> = Api::namespaced(client.clone(), namespace);
    let pods = api
        .list(&ListParams::default().labels(&format!("capstan.dev/cluster={name}")))
        .await
        .map_err(kube_error)?
        .items;
    let mut stale = Vec::new();
    for (group, (set_name, ids)) in groups.iter().enumerate() {
        let Some(set) = sets.iter().find(|s| s.name_any() == *set_name) else {
            continue;
        };
        let status = set.status.clone().unwrap_or_default();
        // Its revisions are not yet those of its template; the next reconcile sees them (the
        // generation is not counted as applied meanwhile, see the reconciler).
        if status.observed_generation.unwrap_or(0) < set.metadata.generation.unwrap_or(0) {
            continue;
        }
        let Some(revision) = status.update_revision else {
            continue;
        };
        for pod in pods.iter().filter(|p| {
            p.labels().get("capstan.dev/statefulset") == Some(set_name)
                && p.labels().get("controller-revision-hash") != Some(&revision)
        }) {
            let ordinal = ordinal_of(&pod.name_any());
            stale.push(Stale {
                pod: pod.clone(),
                group,
                ordinal,
                node: ids.of(ordinal),
            });
        }
    }
    if stale.is_empty() {
        return Ok(Rolling::Done);
    }
    if let Some(stopping) = pods
        .iter()
        .find(|p| p.metadata.deletion_timestamp.is_some())
    {
        return Ok(Rolling::InProgress(format!(
            "pod {} is restarting",
            stopping.name_any()
        )));
    }
    let unready: Vec<&Stale> = stale.iter().filter(|s| !ready(&s.pod)).collect();
    if !unready.is_empty() {
        let mut names = Vec::new();
        for s in unready {
            delete(&api, &s.pod).await?;
            names.push(s.pod.name_any());
        }
        return Ok(Rolling::InProgress(format!(
            "restarted {} (not ready, so serving nothing) with the new configuration",
            names.join(", ")
        )));
    }
    if let Some(waiting) = pods.iter().find(|p| !ready(p)) {
        return Ok(Rolling::InProgress(format!(
            "waiting for pod {} to be ready before the next restart",
            waiting.name_any()
        )));
    }
    // The first StatefulSet with stale pods, highest ordinal first.
    let group = stale.iter().map(|s| s.group).min().unwrap_or(0);
    let mut candidates: Vec<&Stale> = stale.iter().filter(|s| s.group == group).collect();
    candidates.sort_by_key(|s| std::cmp::Reverse(s.ordinal));
    let availability = match capstan_kafka::Availability::read(credentials).await {
        Ok(availability) => availability,
        Err(error) => return Ok(unknown(candidates[0].node, &error)),
    };
    // The quorum leader goes last: restarting it forces an election.
    let chosen = candidates
        .iter()
        .find(|s| Some(s.node) != availability.quorum_leader())
        .unwrap_or(&candidates[0]);
    let check = availability.restart_check(chosen.node);
    if !check.safe() {
        let reason = if check.under_min_isr.is_empty() {
            "QuorumNotCaughtUp"
        } else {
            "UnderMinIsr"
        };
        return Ok(Rolling::Held {
            reason,
            message: format!(
                "{}; the restart of pod {} waits until the cluster has caught up",
                check.explain(chosen.node),
                chosen.pod.name_any()
            ),
        });
    }
    delete(&api, &chosen.pod).await?;
    Ok(Rolling::InProgress(format!(
        "restarting node {} (pod {}) with the new configuration",
        chosen.node,
        chosen.pod.name_any()
    )))
}

fn unknown(node: i32, error: &capstan_kafka::Error) -> Rolling {
    Rolling::Held {
        reason: "AvailabilityUnknown",
        message: format!(
            "cannot ask the brokers whether broker {node} can restart ({error}); nothing is restarted until they answer (check the admin credential and that the operator reaches the client listener)"
        ),
    }
}

async fn delete(api: &Api<Pod>, pod: &Pod) -> Result<()> {
    tracing::info!(pod = %pod.name_any(), "restarting for the new configuration");
    api.delete(&pod.name_any(), &DeleteParams::default())
        .await
        .map_err(kube_error)?;
    Ok(())
}

/// The ordinal at the end of a StatefulSet pod's name.
pub(crate) fn ordinal_of(pod: &str) -> i32 {
    pod.rsplit('-')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn ready(pod: &Pod) -> bool {
    pod.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|conditions| {
            conditions
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True")
        })
}
