//! The price cap and the free plan on dedicated Apache Kafka clusters. Their TCP clients reach
//! the brokers directly, not through the Kafka gateway that throttles everyone else, so while
//! such a cluster is limited every one of its users gets a client quota on the brokers (see
//! [`Provisioner::set_client_quotas`](crate::provisioner::Provisioner::set_client_quotas)), and
//! the quota is removed when the limit lifts.
//!
//! Kafka's quotas count bytes per second per broker, not messages: the allowance of
//! `limited_messages_per_second` messages becomes that many times [`MESSAGE_BYTES`] bytes, on
//! each broker, for producing and again for fetching.

use std::collections::{BTreeMap, HashMap, HashSet};

use crate::{Result, clusters, state::AppState};

/// The bytes one message of the allowance stands for on the brokers.
pub const MESSAGE_BYTES: u64 = 1024;

/// What the brokers of each dedicated cluster were last given: the rate (none: no quota) and
/// the users it was given to.
#[derive(Debug, Default)]
pub struct BrokerQuotas {
    applied: HashMap<String, (Option<u64>, Vec<String>)>,
}

impl BrokerQuotas {
    /// Sets or lifts the quotas of every live dedicated cluster whose limit, or whose set of
    /// users, changed since the last call (all of them on the first call, so a restart repairs
    /// what changed meanwhile). `limited` are the clusters limited now; `bytes_per_second` the
    /// quota of each of their users. A failure is logged and retried at the next call.
    pub async fn apply(
        &mut self,
        state: &AppState,
        limited: &HashSet<String>,
        bytes_per_second: u64,
    ) -> Result<()> {
        // Clients that go through the gateways are throttled there.
        let direct: Vec<_> = clusters::all_live(&state.store)
            .await?
            .into_iter()
            .filter(|cluster| !cluster.through_gateway(state.provisioner.as_ref()))
            .collect();
        self.applied
            .retain(|id, _| direct.iter().any(|cluster| &cluster.id == id));
        if direct.is_empty() {
            return Ok(());
        }
        let mut users = usernames(state).await?;
        for cluster in direct {
            let wanted = (
                limited.contains(&cluster.id).then_some(bytes_per_second),
                users.remove(&cluster.id).unwrap_or_default(),
            );
            if self.applied.get(&cluster.id) == Some(&wanted) {
                continue;
            }
            match state
                .provisioner
                .set_client_quotas(&cluster.spec(), &wanted.1, wanted.0)
                .await
            {
                Ok(()) => {
                    tracing::info!(cluster = %cluster.id, bytes_per_second = ?wanted.0,
                        "set the client quotas of a dedicated cluster's users");
                    self.applied.insert(cluster.id, wanted);
                }
                Err(error) => tracing::warn!(cluster = %cluster.id,
                    error = %crate::error::cause_chain(&error),
                    "could not set the client quotas of a dedicated cluster; retrying at the next evaluation"),
            }
        }
        Ok(())
    }
}

/// The usernames of every cluster's credentials, in order.
async fn usernames(state: &AppState) -> Result<BTreeMap<String, Vec<String>>> {
    let rows: Vec<(String, String)> = sqlx::query_as(
        "SELECT cluster_id, username FROM credentials ORDER BY cluster_id, username",
    )
    .fetch_all(state.store.pool())
    .await?;
    let mut users: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for (cluster_id, username) in rows {
        users.entry(cluster_id).or_default().push(username);
    }
    Ok(users)
}
