//! Resources no live cluster owns: brokers of a dedicated cluster, or names under a prefix on a
//! shared pool, left behind by a deletion that the store recorded but the brokers never saw
//! through (a version before the provisioning journal, a hand-edited store), or belonging to a
//! cluster the store has never known. [`sweep`] runs after [`crate::journal::recover`] has
//! settled what a crash interrupted:
//!
//! - what belongs to a cluster the store knows as **deleted** is removed: nobody can reach or be
//!   billed for it, yet it holds data and disk;
//! - what belongs to a cluster the store has **never known** is only reported (a warning and
//!   the `capstan_unowned_resources` gauge), unless `--sweep-unknown-resources` is set: a
//!   control plane pointed at the wrong or a freshly restored database would otherwise delete
//!   every tenant's data it does not know of.
//!
//! What a change under way is making is never touched: every change journals itself before it
//! touches the brokers and crosses itself out in the transaction that writes its row. The
//! sweep reads what the provisioner holds first, then the journal, then the clusters, so a
//! resource it saw was either journaled when the journal was read or has its row when the rows
//! were read.

use std::collections::HashSet;

use crate::{
    Result,
    provisioner::{ClusterSpec, Placement},
    state::AppState,
};

/// What became of the resources a sweep looked at.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Swept {
    /// Removed: they belonged to deleted clusters (or to unknown ones, when that is allowed).
    pub removed: usize,
    /// Left in place: they belong to clusters the store has never known.
    pub unknown: usize,
}

/// Whose a resource is.
enum Owner {
    /// A live cluster or a change under way: keep.
    Someone,
    /// A cluster the store knows as deleted.
    Deleted,
    /// Nothing the store knows.
    Unknown,
}

/// Removes the resources of deleted clusters (and, with `--sweep-unknown-resources`, of
/// clusters the store has never known); reports the rest.
pub async fn sweep(state: &AppState) -> Result<Swept> {
    let held = state.provisioner.inventory().await?;
    let mut swept = Swept::default();
    if !held.dedicated.is_empty() || !held.prefixes.is_empty() {
        let journaled: Vec<(String, String)> =
            sqlx::query_as("SELECT cluster_id, prefix FROM provisioning_journal")
                .fetch_all(state.store.pool())
                .await?;
        let rows: Vec<(String, String, String)> =
            sqlx::query_as("SELECT id, prefix, state FROM clusters")
                .fetch_all(state.store.pool())
                .await?;
        let (live, deleted): (Vec<_>, Vec<_>) =
            rows.iter().partition(|(_, _, state)| state != "deleted");
        let owned: HashSet<&str> = journaled
            .iter()
            .map(|(id, prefix)| (id, prefix))
            .chain(live.iter().map(|(id, prefix, _)| (id, prefix)))
            .flat_map(|(id, prefix)| [id.as_str(), prefix.as_str()])
            .filter(|key| !key.is_empty())
            .collect();
        let gone: HashSet<&str> = deleted
            .iter()
            .flat_map(|(id, prefix, _)| [id.as_str(), prefix.as_str()])
            .filter(|key| !key.is_empty())
            .collect();
        let owner = |key: &str| {
            if owned.contains(key) {
                Owner::Someone
            } else if gone.contains(key) {
                Owner::Deleted
            } else {
                Owner::Unknown
            }
        };
        let dedicated = held.dedicated.iter().map(|id| ClusterSpec {
            id: id.clone(),
            multizone: false,
            placement: Placement::Dedicated,
        });
        let shared = held.prefixes.iter().map(|(pool, prefix)| ClusterSpec {
            id: format!("prefix {prefix}"),
            multizone: false,
            placement: Placement::Shared {
                pool: pool.clone(),
                prefix: prefix.clone(),
            },
        });
        for resource in dedicated.chain(shared) {
            let key = match resource.placement {
                Placement::Dedicated => resource.id.as_str(),
                Placement::Shared { .. } => resource.prefix(),
            };
            let what = resource.pool().map_or_else(
                || format!("the brokers of cluster {}", resource.id),
                |pool| format!("the names under {} on pool {pool}", resource.prefix()),
            );
            match owner(key) {
                Owner::Someone => {}
                Owner::Unknown if !state.config.sweep_unknown_resources => {
                    swept.unknown += 1;
                    tracing::warn!(
                        "{what} belong to no cluster this store has ever known; left in place (remove them by hand, or set --sweep-unknown-resources if this store is the only one for them)"
                    );
                }
                known => {
                    state.provisioner.delete_cluster(&resource).await?;
                    swept.removed += 1;
                    let whose = match known {
                        Owner::Deleted => "a deleted cluster",
                        _ => "no cluster the store knows",
                    };
                    tracing::warn!("removed {what}, which belonged to {whose}");
                }
            }
        }
    }
    state.metrics.unowned_resources.set(swept.unknown as i64);
    Ok(swept)
}
