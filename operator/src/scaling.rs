//! Where the KRaft voters live, which cannot change on a running cluster, and a new broker
//! count. Without dedicated controllers every broker is a KRaft voter and Kafka
//! cannot change a static quorum, so the running count stays. With them, brokers are added
//! freely; a scale-down goes ahead only once the brokers it removes hold no partition replica
//! (asked over the Kafka protocol, as Strimzi does), and each removed broker is unregistered
//! from the controllers once its pod is gone, so the metadata forgets it.

use k8s_openapi::api::{apps::v1::StatefulSet, core::v1::Pod};
use kube::{Api, Client, ResourceExt, api::ListParams};

use crate::{KafkaCluster, Result, reconciler::kube_error, render};

/// What to do about the brokers per zone the spec asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Scaling {
    /// Apply the spec's count (the same as running, or more).
    AsSpecified,
    /// Keep `keep` brokers per zone for now: a condition reason and why.
    Refused {
        /// The count that stays.
        keep: i32,
        /// `VotersAreFixed`, `BrokersHoldReplicas` or `AvailabilityUnknown`.
        reason: &'static str,
        /// What holds it and what to do.
        message: String,
    },
    /// Remove brokers: their node ids, to unregister once they are gone.
    Down {
        /// Node ids of the removed brokers.
        removed: Vec<i32>,
    },
}

impl Scaling {
    /// Refused until Kafka says otherwise (not until the spec changes): worth asking again soon.
    pub(crate) fn waits_for_kafka(&self) -> bool {
        matches!(self, Scaling::Refused { reason, .. } if *reason != "VotersAreFixed")
    }
}

/// Decides on the spec's brokers per zone when `live` run now; the brokers are asked with
/// the admin user's `credentials`.
pub(crate) async fn decide(
    cluster: &KafkaCluster,
    live: Option<i32>,
    credentials: &capstan_kafka::Credentials,
) -> Result<Scaling> {
    let wanted = cluster.spec.brokers_per_zone;
    let Some(live) = live.filter(|&live| live != wanted) else {
        return Ok(Scaling::AsSpecified);
    };
    if cluster.spec.controllers.is_none() {
        return Ok(Scaling::Refused {
            keep: live,
            reason: "VotersAreFixed",
            message: format!(
                "brokersPerZone stays {live}: every broker is a KRaft voter and Kafka cannot change a static quorum; set it back to {live} (for a cluster whose brokers can scale, create one with spec.controllers and move the topics)"
            ),
        });
    }
    if wanted > live {
        return Ok(Scaling::AsSpecified);
    }
    let removed = render::broker_ids(cluster, wanted..live)?;
    // Under way (recorded before the first StatefulSet shrank; zones shrink one at a time):
    // asking again could only undo the zones already shrunk.
    let retired = cluster
        .status
        .as_ref()
        .map(|s| s.retired_brokers.as_slice())
        .unwrap_or_default();
    if removed.iter().all(|id| retired.contains(id)) {
        return Ok(Scaling::Down { removed });
    }
    let shown = join(&removed);
    let availability = match capstan_kafka::Availability::read(credentials).await {
        Ok(availability) => availability,
        Err(error) => {
            return Ok(Scaling::Refused {
                keep: live,
                reason: "AvailabilityUnknown",
                message: format!(
                    "cannot ask the brokers whether brokers {shown} hold partition replicas ({error}); brokersPerZone stays {live} until they answer"
                ),
            });
        }
    };
    let held = availability.replicas_on(&removed);
    if held.is_empty() {
        return Ok(Scaling::Down { removed });
    }
    let more = held.len().saturating_sub(5);
    Ok(Scaling::Refused {
        keep: live,
        reason: "BrokersHoldReplicas",
        message: format!(
            "brokersPerZone stays {live}: brokers {shown} still hold replicas of {} partition(s) ({}{}); move them to the brokers that stay (kafka-reassign-partitions.sh) and the scale-down goes ahead",
            held.len(),
            held.iter().take(5).cloned().collect::<Vec<_>>().join(", "),
            if more > 0 {
                format!(" and {more} more")
            } else {
                String::new()
            }
        ),
    })
}

/// Unregisters each of the `retired` brokers of `cluster` that its StatefulSet (of `sets`, as
/// listed) no longer has and whose pod is gone (and which is not a wanted broker again); what
/// is still to unregister. A pod missing for a moment (evicted, restarting) of a StatefulSet
/// not yet shrunk is not taken for gone: Kafka would unregister a live broker.
pub(crate) async fn unregister_retired(
    client: &Client,
    cluster: &KafkaCluster,
    sets: &[StatefulSet],
    retired: &[i32],
    credentials: &capstan_kafka::Credentials,
) -> Result<Vec<i32>> {
    let wanted = render::broker_ids(cluster, 0..cluster.spec.brokers_per_zone)?;
    let retired: Vec<i32> = retired
        .iter()
        .copied()
        .filter(|id| !wanted.contains(id))
        .collect();
    if retired.is_empty() {
        return Ok(retired);
    }
    let namespace = cluster.namespace().unwrap_or_default();
    let name = cluster.name_any();
    let groups = render::node_groups(cluster)?;
    let running: Vec<i32> = Api::<Pod>::namespaced(client.clone(), &namespace)
        .list(&ListParams::default().labels(&format!("capstan.dev/cluster={name}")))
        .await
        .map_err(kube_error)?
        .items
        .iter()
        .filter_map(|pod| {
            let set = pod.labels().get("capstan.dev/statefulset")?;
            let (_, ids) = groups.iter().find(|(name, _)| name == set)?;
            Some(ids.of(crate::rolling::ordinal_of(&pod.name_any())))
        })
        .collect();
    // Ids the StatefulSets still ask for: ordinals below their replicas.
    let kept: Vec<i32> = groups
        .iter()
        .filter_map(|(set, ids)| {
            let replicas = sets
                .iter()
                .find(|s| s.name_any() == *set)?
                .spec
                .as_ref()?
                .replicas?;
            Some(
                (0..replicas)
                    .map(|ordinal| ids.of(ordinal))
                    .collect::<Vec<_>>(),
            )
        })
        .flatten()
        .collect();
    let mut pending = Vec::new();
    for id in retired {
        if running.contains(&id) || kept.contains(&id) {
            pending.push(id);
            continue;
        }
        match capstan_kafka::unregister_broker(credentials, id).await {
            Ok(known) => tracing::info!(broker = id, known, "unregistered a removed broker"),
            Err(error) => {
                tracing::warn!(broker = id, %error, "could not unregister a removed broker; retrying");
                pending.push(id);
            }
        }
    }
    Ok(pending)
}

/// `1, 4, 7`.
pub(crate) fn join(ids: &[i32]) -> String {
    ids.iter()
        .map(i32::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// What changed on a running cluster that it cannot follow, if anything did: a condition type,
/// its reason and what to do. Where the KRaft voters live — the zones (zone mode, names, or
/// StatefulSets running that the spec no longer has) and dedicated controllers added or removed —
/// since a static quorum cannot move; and TLS switched on or off on the internal listener,
/// which brokers replicate over: restarted one at a time, half would speak TLS to the other half
/// that does not, and the operator's own checks could not reach them. Nothing is applied until
/// the spec says what runs again (the CRD's CEL rules refuse these at apply on API servers that
/// check them; this is for those that do not).
pub(crate) fn layout_changed(
    cluster: &KafkaCluster,
    sets: &[StatefulSet],
    zone_sets: &[String],
) -> Option<(&'static str, &'static str, String)> {
    let controllers = crate::render::controller_statefulset(&cluster.name_any());
    let brokers: Vec<&StatefulSet> = sets
        .iter()
        .filter(|s| s.name_any() != controllers)
        .collect();
    if brokers.is_empty() {
        return None;
    }
    let quorum = |reason, message: String| Some(("QuorumLayoutFixed", reason, message));
    let stray: Vec<String> = brokers
        .iter()
        .map(|s| s.name_any())
        .filter(|n| !zone_sets.contains(n))
        .collect();
    if !stray.is_empty() {
        return quorum(
            "ZonesChanged",
            format!(
                "zoneMode and zones cannot change on a running cluster: StatefulSets {} hold its KRaft voters' zones; set them back, or create a new cluster and move the topics",
                stray.join(", ")
            ),
        );
    }
    // A multi-zone StatefulSet is named by its place (z0..z2), not its zone: compare the zone
    // it is pinned to.
    if cluster.spec.zone_mode == crate::ZoneMode::Multi {
        for (set, zone) in zone_sets.iter().zip(&cluster.spec.zones) {
            let pinned = brokers
                .iter()
                .find(|s| s.name_any() == *set)
                .and_then(|s| pinned_zone(s));
            if let Some(pinned) = pinned.filter(|p| p != zone) {
                return quorum(
                    "ZonesChanged",
                    format!(
                        "zones cannot change on a running cluster: StatefulSet {set} runs in zone {pinned}, with its volumes, not {zone}; set it back, or create a new cluster and move the topics"
                    ),
                );
            }
        }
    }
    let labels_of = |s: &StatefulSet| {
        s.spec
            .as_ref()
            .and_then(|spec| spec.template.metadata.as_ref())
            .and_then(|m| m.labels.clone())
            .unwrap_or_default()
    };
    // Brokers of a cluster made with dedicated controllers carry the role label; a missing
    // controllers' StatefulSet is then one deleted by hand, made again by the rendering.
    let dedicated = brokers
        .iter()
        .all(|s| labels_of(s).get(render::ROLE_LABEL).map(String::as_str) == Some("broker"));
    match (cluster.spec.controllers.is_some(), dedicated) {
        (true, false) => return quorum("ControllersChanged",
            "spec.controllers cannot be added to a running cluster: its brokers are its KRaft voters; remove it, or create a new cluster with dedicated controllers and move the topics".into(),
        ),
        (false, true) => return quorum("ControllersChanged",
            "spec.controllers cannot be removed from a running cluster: its controllers are its KRaft voters; set it back".into(),
        ),
        _ => {}
    }
    let internal_tls_running = brokers.iter().all(|s| {
        s.spec
            .as_ref()
            .and_then(|spec| spec.template.spec.as_ref())
            .and_then(|pod| pod.volumes.as_ref())
            .is_some_and(|volumes| volumes.iter().any(|v| v.name == "internal-tls"))
    });
    if internal_tls_running != cluster.spec.listeners.internal_tls().is_some() {
        return Some((
            "ListenerChangeRefused",
            "InternalTlsChanged",
            format!(
                "listeners.internal.tls cannot be switched {} on a running cluster: its brokers replicate over that listener, and restarted one at a time half would not understand the other half; set it back, or create a new cluster and move the topics",
                if internal_tls_running { "off" } else { "on" }
            ),
        ));
    }
    None
}

/// The zone a multi-zone StatefulSet's pods are pinned to (its required node affinity).
fn pinned_zone(set: &StatefulSet) -> Option<String> {
    set.spec
        .as_ref()?
        .template
        .spec
        .as_ref()?
        .affinity
        .as_ref()?
        .node_affinity
        .as_ref()?
        .required_during_scheduling_ignored_during_execution
        .as_ref()?
        .node_selector_terms
        .first()?
        .match_expressions
        .as_ref()?
        .first()?
        .values
        .as_ref()?
        .first()
        .cloned()
}
