//! Leader election on a `coordination.k8s.io/v1` Lease, as client-go's leaderelection does it:
//! a replica reconciles only while it holds the Lease, renews it well inside its duration, and
//! a standby takes it over only once it has gone unrenewed for a whole duration. Every write
//! carries the `resourceVersion` it read, so of two replicas racing for the Lease the API server
//! lets exactly one win (the other gets 409 and stays a standby).

use std::time::Duration;

use k8s_openapi::{
    api::coordination::v1::{Lease, LeaseSpec},
    apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta},
    jiff::{SignedDuration, Timestamp},
};
use kube::{
    Api, Client,
    api::{PostParams, entry::Entry},
};

use crate::{Error, Result};

/// Which Lease to hold, and as whom.
#[derive(Clone, Debug)]
pub struct LeaseConfig {
    /// The Lease's namespace (the operator's own).
    pub namespace: String,
    /// The Lease's name, one per operator deployment.
    pub name: String,
    /// This replica's name in `holderIdentity` (the pod's name), unique among replicas.
    pub identity: String,
    /// How long a holder that stopped renewing keeps the Lease.
    pub duration: Duration,
}

impl LeaseConfig {
    /// How often the holder renews and a standby tries: a third of the duration, as client-go
    /// renews a 15 s lease every 2 s with a 10 s deadline.
    pub fn retry_period(&self) -> Duration {
        self.duration / 3
    }

    /// How long renewals may fail before the holder stops reconciling: two thirds of the
    /// duration, so it has stopped before any standby may take over.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }
}

/// One replica's side of the election.
pub struct Elector {
    leases: Api<Lease>,
    config: LeaseConfig,
}

impl std::fmt::Debug for Elector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Elector")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Elector {
    /// An elector for `config`'s Lease.
    pub fn new(client: Client, config: LeaseConfig) -> Self {
        Elector {
            leases: Api::namespaced(client, &config.namespace),
            config,
        }
    }

    /// What it holds.
    pub fn config(&self) -> &LeaseConfig {
        &self.config
    }

    /// One attempt at `now`: takes the Lease if nobody holds it or its holder let it expire,
    /// renews it if this replica holds it. True when this replica holds it afterwards.
    pub async fn try_hold(&self, now: Timestamp) -> Result<bool> {
        let entry = self
            .leases
            .entry(&self.config.name)
            .await
            .map_err(|e| self.failed("read", e))?;
        let stamp = MicroTime(now);
        let seconds = i32::try_from(self.config.duration.as_secs().max(1)).unwrap_or(i32::MAX);
        let written = match entry {
            Entry::Vacant(vacant) => {
                let lease = Lease {
                    metadata: ObjectMeta {
                        name: Some(self.config.name.clone()),
                        namespace: Some(self.config.namespace.clone()),
                        ..ObjectMeta::default()
                    },
                    spec: Some(LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(stamp.clone()),
                        renew_time: Some(stamp),
                        lease_transitions: Some(0),
                        ..LeaseSpec::default()
                    }),
                };
                vacant.insert(lease).commit(&PostParams::default()).await
            }
            Entry::Occupied(mut occupied) => {
                let spec = occupied.get().spec.clone().unwrap_or_default();
                let holder = spec.holder_identity.clone().unwrap_or_default();
                if holder == self.config.identity {
                    occupied.get_mut().spec.get_or_insert_default().renew_time = Some(stamp);
                } else if holder.is_empty() || expired(&spec, now) {
                    let transitions = spec.lease_transitions.unwrap_or(0).saturating_add(1);
                    *occupied.get_mut().spec.get_or_insert_default() = LeaseSpec {
                        holder_identity: Some(self.config.identity.clone()),
                        lease_duration_seconds: Some(seconds),
                        acquire_time: Some(stamp.clone()),
                        renew_time: Some(stamp),
                        lease_transitions: Some(transitions),
                        ..spec
                    };
                } else {
                    return Ok(false);
                }
                occupied.commit(&PostParams::default()).await
            }
        };
        match written {
            Ok(()) => Ok(true),
            // Another replica wrote the Lease since it was read: it won this round.
            Err(kube::api::entry::CommitError::Save(kube::Error::Api(status)))
                if status.code == 409 =>
            {
                Ok(false)
            }
            Err(e) => Err(self.failed("write", e)),
        }
    }

    /// Gives the Lease up if this replica holds it (its holder cleared), so a standby takes it
    /// at its next try instead of after a whole duration.
    pub async fn release(&self) -> Result<()> {
        let entry = self
            .leases
            .entry(&self.config.name)
            .await
            .map_err(|e| self.failed("read", e))?;
        let Entry::Occupied(mut occupied) = entry else {
            return Ok(());
        };
        let held = occupied
            .get()
            .spec
            .as_ref()
            .and_then(|spec| spec.holder_identity.as_deref())
            == Some(self.config.identity.as_str());
        if !held {
            return Ok(());
        }
        occupied
            .get_mut()
            .spec
            .get_or_insert_default()
            .holder_identity = None;
        occupied
            .commit(&PostParams::default())
            .await
            .map_err(|e| self.failed("release", e))
    }

    fn failed(&self, what: &str, error: impl std::fmt::Display) -> Error {
        Error::Kube(format!(
            "could not {what} the leader Lease {}/{}: {error}",
            self.config.namespace, self.config.name
        ))
    }
}

/// Whether a Lease held by another went unrenewed for its whole duration by `now`.
fn expired(spec: &LeaseSpec, now: Timestamp) -> bool {
    let Some(renewed) = spec.renew_time.as_ref().or(spec.acquire_time.as_ref()) else {
        return true;
    };
    let duration = SignedDuration::from_secs(i64::from(spec.lease_duration_seconds.unwrap_or(0)));
    renewed
        .0
        .saturating_add(duration)
        .is_ok_and(|end| end < now)
}
