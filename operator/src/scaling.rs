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
    let removed = render::removed_brokers(cluster, live, wanted)?;
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

/// Unregisters each of the `retired` brokers of `cluster` whose pod is gone (and which is not a
/// wanted broker again); what is still to unregister.
pub(crate) async fn unregister_retired(
    client: &Client,
    cluster: &KafkaCluster,
    retired: &[i32],
    credentials: &capstan_kafka::Credentials,
) -> Result<Vec<i32>> {
    let wanted = render::removed_brokers(cluster, cluster.spec.brokers_per_zone, 0)?;
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
            let ordinal = pod.name_any().rsplit('-').next()?.parse().ok()?;
            Some(ids.of(ordinal))
        })
        .collect();
    let mut pending = Vec::new();
    for id in retired {
        if running.contains(&id) {
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

/// What changed in where the KRaft voters live, if anything did: the zones (zone mode or
/// names: StatefulSets running that the spec no longer has) or dedicated controllers added to
/// or removed from a running cluster. A static quorum cannot follow any of these, so nothing is
/// applied until the spec says what runs again (the CRD's CEL rules refuse them at apply on
/// API servers that check them; this is for those that do not).
pub(crate) fn quorum_layout_changed(
    cluster: &KafkaCluster,
    sets: &[StatefulSet],
    zone_sets: &[String],
) -> Option<(&'static str, String)> {
    let controllers = crate::render::controller_statefulset(&cluster.name_any());
    let running: Vec<String> = sets.iter().map(|s| s.name_any()).collect();
    let brokers_running: Vec<&String> = running.iter().filter(|n| **n != controllers).collect();
    if brokers_running.is_empty() {
        return None;
    }
    let stray: Vec<&str> = brokers_running
        .iter()
        .filter(|n| !zone_sets.contains(n))
        .map(|n| n.as_str())
        .collect();
    if !stray.is_empty() {
        return Some((
            "ZonesChanged",
            format!(
                "zoneMode and zones cannot change on a running cluster: StatefulSets {} hold its KRaft voters' zones; set them back, or create a new cluster and move the topics",
                stray.join(", ")
            ),
        ));
    }
    let has_controllers = running.contains(&controllers);
    match (cluster.spec.controllers.is_some(), has_controllers) {
        (true, false) => Some(("ControllersChanged",
            "spec.controllers cannot be added to a running cluster: its brokers are its KRaft voters; remove it, or create a new cluster with dedicated controllers and move the topics".into(),
        )),
        (false, true) => Some(("ControllersChanged",
            "spec.controllers cannot be removed from a running cluster: its controllers are its KRaft voters; set it back".into(),
        )),
        _ => None,
    }
}
