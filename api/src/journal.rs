//! The provisioning journal. A change that touches the brokers (or Kubernetes objects) and the
//! store is written down before it starts ([`begin`]) and crossed out in the transaction that
//! records its end ([`Entry::done`]), so whatever a crash interrupts is left as an entry.
//! [`recover`] then finishes what the user asked to remove (a cluster, a topic, a credential)
//! and rolls back what was being made (brokers, a topic or a user the store never recorded),
//! so that no resource outlives its row and no row outlives its resource.
//!
//! Entries this process is still working on are never touched (an entry is in flight from
//! [`begin`] until its [`Entry`] is dropped). Entries younger than the platform's recovery
//! grace are left alone too: on a PostgreSQL store several control planes may share, they can
//! be another process's changes still under way.

use std::{
    sync::{Mutex, PoisonError},
    time::Duration,
};

use crate::{
    Error, Result, clusters,
    credentials::{self, broker_users},
    provisioner::{ClusterSpec, Placement},
    state::AppState,
    store, topics,
};

/// What was under way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Intent {
    /// Making a cluster's brokers (rolled back: the brokers are removed).
    CreateCluster,
    /// Deleting a cluster (finished).
    DeleteCluster,
    /// Making a topic on the brokers (rolled back: the topic is deleted).
    CreateTopic,
    /// Deleting a topic (finished).
    DeleteTopic,
    /// Creating a user or setting its password on the brokers (the brokers get what the store
    /// has: the user with its stored password, or no user).
    PutUser,
    /// Deleting a credential (finished).
    DeleteUser,
}

impl Intent {
    const ALL: [Intent; 6] = [
        Intent::CreateCluster,
        Intent::DeleteCluster,
        Intent::CreateTopic,
        Intent::DeleteTopic,
        Intent::PutUser,
        Intent::DeleteUser,
    ];

    fn as_str(self) -> &'static str {
        match self {
            Intent::CreateCluster => "create_cluster",
            Intent::DeleteCluster => "delete_cluster",
            Intent::CreateTopic => "create_topic",
            Intent::DeleteTopic => "delete_topic",
            Intent::PutUser => "put_user",
            Intent::DeleteUser => "delete_user",
        }
    }

    fn parse(text: &str) -> Option<Intent> {
        Intent::ALL.into_iter().find(|i| i.as_str() == text)
    }
}

/// Ids of the entries whose changes this process is carrying out: [`recover`] leaves them
/// alone whatever their age, or a recovery pass could roll back a creation under way.
static IN_FLIGHT: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn in_flight() -> std::sync::MutexGuard<'static, Vec<String>> {
    IN_FLIGHT.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A change written down before it started; cross it out with [`Entry::done`] in the
/// transaction that records its end, or with [`Entry::roll_back`] when it failed on the spot.
/// Dropped without either (the operation stopped half-way), it stays for [`recover`].
#[derive(Debug)]
#[must_use = "an entry is crossed out when its change is recorded or undone"]
pub struct Entry {
    id: String,
    intent: Intent,
    cluster_id: String,
}

/// Writes down that `intent` on `cluster` (and `subject`: a topic name or a username) starts.
pub async fn begin(
    state: &AppState,
    intent: Intent,
    cluster: &ClusterSpec,
    subject: &str,
) -> Result<Entry> {
    let id = uuid::Uuid::new_v4().to_string();
    // In flight before the row exists, so no recovery pass ever sees it unclaimed.
    in_flight().push(id.clone());
    let entry = Entry {
        id,
        intent,
        cluster_id: cluster.id.clone(),
    };
    let (pool, prefix) = match &cluster.placement {
        Placement::Dedicated => ("", ""),
        Placement::Shared { pool, prefix } => (pool.as_str(), prefix.as_str()),
    };
    sqlx::query(
        "INSERT INTO provisioning_journal (id, intent, cluster_id, multizone, pool, prefix, subject, started_at) \
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
    )
    .bind(&entry.id)
    .bind(intent.as_str())
    .bind(&cluster.id)
    .bind(i64::from(cluster.multizone))
    .bind(pool)
    .bind(prefix)
    .bind(subject)
    .bind(store::now())
    .execute(state.store.pool())
    .await?;
    Ok(entry)
}

impl Drop for Entry {
    fn drop(&mut self) {
        let mut in_flight = in_flight();
        if let Some(index) = in_flight.iter().position(|id| *id == self.id) {
            in_flight.swap_remove(index);
        }
    }
}

/// Removes entry `id` from the journal.
async fn cross_out<'e>(id: &str, db: impl sqlx::Executor<'e, Database = sqlx::Any>) -> Result<()> {
    sqlx::query("DELETE FROM provisioning_journal WHERE id = $1")
        .bind(id)
        .execute(db)
        .await?;
    Ok(())
}

impl Entry {
    /// Crosses the entry out inside `tx`, the transaction that records the change's end.
    pub async fn done(&self, tx: &mut sqlx::AnyConnection) -> Result<()> {
        cross_out(&self.id, tx).await
    }

    /// Crosses the entry out of a change that made nothing to undo.
    pub async fn undone(self, state: &AppState) -> Result<()> {
        cross_out(&self.id, state.store.pool()).await
    }

    /// Undoes, with `undo`, a change that failed on the spot, then crosses the entry out; when
    /// `undo` fails too, the entry stays and [`recover`] undoes the change later.
    pub async fn roll_back(
        self,
        state: &AppState,
        undo: impl std::future::Future<Output = Result<()>>,
    ) {
        let outcome = async {
            undo.await?;
            cross_out(&self.id, state.store.pool()).await
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(intent = self.intent.as_str(), cluster = %self.cluster_id,
                error = %crate::error::cause_chain(&error),
                "could not undo a failed change on the spot; recovery will");
        }
    }
}

type Row = (String, String, String, i64, String, String, String);

/// Finishes or rolls back every change of the journal that started at least `grace` ago (see
/// the module's documentation); answers how many were settled and how many are left because
/// the brokers could not be reached (they are tried again next time).
pub async fn recover(state: &AppState, grace: Duration) -> Result<(usize, usize)> {
    let cutoff = store::now() - i64::try_from(grace.as_secs()).unwrap_or(i64::MAX);
    let rows: Vec<Row> = sqlx::query_as(
        "SELECT id, intent, cluster_id, multizone, pool, prefix, subject FROM provisioning_journal \
         WHERE started_at <= $1 ORDER BY started_at, id",
    )
    .bind(cutoff)
    .fetch_all(state.store.pool())
    .await?;
    let (mut settled, mut left) = (0, 0);
    for (id, intent, cluster_id, multizone, pool, prefix, subject) in rows {
        if in_flight().contains(&id) {
            continue;
        }
        let cluster = ClusterSpec {
            id: cluster_id,
            multizone: multizone != 0,
            placement: if pool.is_empty() {
                Placement::Dedicated
            } else {
                Placement::Shared { pool, prefix }
            },
        };
        let Some(intent) = Intent::parse(&intent) else {
            tracing::error!(entry = %id, %intent, "unknown provisioning journal entry; left as it is");
            left += 1;
            continue;
        };
        match settle(state, intent, &cluster, &subject).await {
            Ok(()) => {
                cross_out(&id, state.store.pool()).await?;
                settled += 1;
                tracing::info!(intent = intent.as_str(), cluster = %cluster.id, %subject,
                    "settled a change a crash had interrupted");
            }
            Err(error) => {
                left += 1;
                tracing::warn!(intent = intent.as_str(), cluster = %cluster.id, %subject,
                    error = %crate::error::cause_chain(&error),
                    "could not settle a change a crash had interrupted; trying again later");
            }
        }
    }
    state.metrics.journal_passes.inc();
    state.metrics.journal_unsettled.set(left as i64);
    Ok((settled, left))
}

/// Brings the brokers and the store back in agreement after `intent` was interrupted.
async fn settle(
    state: &AppState,
    intent: Intent,
    cluster: &ClusterSpec,
    subject: &str,
) -> Result<()> {
    let live = match clusters::find_live(&state.store, &cluster.id).await {
        Ok(row) => Some(row),
        Err(Error::NotFound(_)) => None,
        Err(other) => return Err(other),
    };
    match intent {
        Intent::CreateCluster => {
            if clusters::any_by_id(&state.store, &cluster.id)
                .await?
                .is_none()
            {
                state.provisioner.delete_cluster(cluster).await?;
            }
        }
        Intent::DeleteCluster => {
            if let Some(row) = live {
                clusters::delete_row(state, &row).await?;
            }
        }
        Intent::CreateTopic => {
            // A cluster deleted since took its topics with it.
            if live.is_some()
                && topics::find_by_name(state, &cluster.id, subject)
                    .await?
                    .is_none()
            {
                state.provisioner.delete_topic(cluster, subject).await?;
            }
        }
        Intent::DeleteTopic => {
            if let Some(row) = live
                && let Some(topic) = topics::find_by_name(state, &row.id, subject).await?
            {
                topics::delete_in(state, &row, &topic).await?;
            }
        }
        Intent::PutUser => {
            if live.is_some() {
                let stored = broker_users(state, &cluster.id)
                    .await?
                    .into_iter()
                    .find(|user| user.username == subject);
                match stored {
                    Some(user) => state.provisioner.put_user(cluster, &user).await?,
                    None => state.provisioner.delete_user(cluster, subject).await?,
                }
            }
        }
        Intent::DeleteUser => {
            if live.is_some() {
                state.provisioner.delete_user(cluster, subject).await?;
                credentials::forget_user(state, &cluster.id, subject).await?;
            }
        }
    }
    Ok(())
}
