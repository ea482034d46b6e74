//! Clusters: created, listed, renamed, re-keyed and deleted per account, with their brokers.

use serde::{Deserialize, Serialize};

use crate::{
    Error, Result,
    credentials::{self, Permissions},
    failpoint,
    journal::{self, Intent},
    names,
    plans::Plan,
    provisioner::{BrokerUser, ClusterSpec, Placement, Provisioner, Scope},
    state::AppState,
    store::{self, Owner, Store},
    topics,
};

/// A cluster as stored.
#[derive(Clone, Debug, sqlx::FromRow)]
pub struct ClusterRow {
    /// UUID.
    pub id: String,
    /// Owner.
    pub account_id: String,
    /// Display name.
    pub name: String,
    /// Unique slug, e.g. `brave-otter-4821`.
    pub slug: String,
    /// Region.
    pub region: String,
    /// 1 when multi-zone.
    pub multizone: i64,
    /// `free` or `payg`.
    pub plan: String,
    /// `active` or `deleted`.
    pub state: String,
    /// Bootstrap address of its brokers.
    pub tcp_endpoint: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Monthly budget in whole dollars (0 = none).
    pub budget_dollars: i64,
    /// Deletion time, unix seconds.
    pub deleted_at: Option<i64>,
    /// `shared` (a virtual cluster on a broker pool) or `dedicated` (brokers of its own).
    pub placement: String,
    /// The pool of a shared cluster ("" otherwise).
    pub pool: String,
    /// The prefix of a shared cluster's names on its pool ("" otherwise).
    pub prefix: String,
}

impl ClusterRow {
    /// What the provisioner needs.
    pub fn spec(&self) -> ClusterSpec {
        ClusterSpec {
            id: self.id.clone(),
            multizone: self.multizone != 0,
            placement: if self.placement == SHARED {
                Placement::Shared {
                    pool: self.pool.clone(),
                    prefix: self.prefix.clone(),
                }
            } else {
                Placement::Dedicated
            },
        }
    }

    /// True for a virtual cluster on a shared pool.
    pub fn is_shared(&self) -> bool {
        self.placement == SHARED
    }

    /// Where its clients connect: the Kafka gateway's address (as configured now, so it
    /// follows the gateway) for a shared cluster and for every cluster of the local engine
    /// (whose brokers have no ACLs: the gateway applies the credentials' scopes); a dedicated
    /// Apache Kafka cluster's own brokers otherwise.
    pub fn endpoint<'a>(&'a self, state: &'a crate::state::AppState) -> &'a str {
        if self.through_gateway(state.provisioner.as_ref()) {
            &state.config.kafka_endpoint
        } else {
            &self.tcp_endpoint
        }
    }

    /// True when every client of the cluster goes through Capstan's gateways: shared
    /// clusters, and dedicated ones unless the provisioner lets their clients reach their
    /// brokers directly ([`Provisioner::dedicated_through_gateway`]).
    pub fn through_gateway(&self, provisioner: &dyn Provisioner) -> bool {
        through_gateway(self.is_shared(), provisioner)
    }

    /// The cluster's plan.
    pub fn plan(&self) -> Plan {
        Plan::parse(&self.plan).unwrap_or(Plan::Payg)
    }

    /// The limits of the cluster's plan, as the platform is configured.
    pub fn limits(&self, state: &AppState) -> crate::plans::Limits {
        state.config.plan_limits.of(self.plan())
    }
}

/// True when every client of a cluster (shared or not) goes through Capstan's gateways: then
/// the gateways count what they deliver, and commits are not consumption.
pub fn through_gateway(shared: bool, provisioner: &dyn Provisioner) -> bool {
    shared || provisioner.dedicated_through_gateway()
}

/// The placement of virtual clusters on a shared pool.
pub const SHARED: &str = "shared";
/// The placement of clusters with brokers of their own.
pub const DEDICATED: &str = "dedicated";

const COLUMNS: &str = "id, account_id, name, slug, region, multizone, plan, state, tcp_endpoint, created_at, budget_dollars, deleted_at, placement, pool, prefix";
const INSERT_COLUMNS: &str = "id, account_id, name, slug, region, multizone, plan, state, tcp_endpoint, created_at, placement, pool, prefix";

/// Parses a placement: `shared` or `dedicated`.
pub fn parse_placement(raw: &str) -> Result<&'static str> {
    match raw {
        SHARED => Ok(SHARED),
        DEDICATED => Ok(DEDICATED),
        other => Err(Error::Invalid(format!(
            "unknown placement {other:?}: use shared (a virtual cluster on shared brokers) or dedicated (brokers of its own)"
        ))),
    }
}

/// A cluster in the shape of Upstash's Developer API.
#[derive(Clone, Debug, Serialize)]
pub struct ClusterView {
    pub cluster_id: String,
    pub name: String,
    pub region: String,
    #[serde(rename = "type")]
    pub plan_type: String,
    pub multizone: bool,
    pub tcp_endpoint: String,
    pub rest_endpoint: String,
    pub state: String,
    pub username: String,
    pub password: String,
    pub max_retention_size: i64,
    pub max_retention_time: i64,
    pub max_messages_per_second: i64,
    pub creation_time: i64,
    pub max_message_size: i64,
    pub max_partitions: i64,
    /// Monthly budget in whole dollars (0 = none); the effective cap is the lower of this and
    /// the platform's ceiling.
    pub budget: i64,
    /// `shared` or `dedicated` (Capstan's addition to Upstash's object).
    pub placement: String,
}

/// Body of `POST /v2/kafka/cluster`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCluster {
    /// Display name.
    pub name: String,
    /// Region, one of the platform's.
    pub region: String,
    /// Three zones instead of one.
    #[serde(default)]
    pub multizone: bool,
    /// `shared` (default: a virtual cluster on shared brokers) or `dedicated`.
    #[serde(default)]
    pub placement: Option<String>,
}

/// Body of `POST /v2/kafka/rename-cluster/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameCluster {
    /// The new display name.
    pub name: String,
}

/// Creates a cluster, its default credential and its brokers.
pub async fn create(
    state: &AppState,
    account_id: &str,
    request: CreateCluster,
) -> Result<ClusterView> {
    let name = names::cluster_name(&request.name)?;
    if !state.config.regions.iter().any(|r| r == &request.region) {
        return Err(Error::Invalid(format!(
            "unknown region {:?}; available: {}",
            request.region,
            state.config.regions.join(", ")
        )));
    }
    let live: Vec<(String,)> = live_clusters(&state.store, account_id)
        .await?
        .into_iter()
        .map(|c| (c.name,))
        .collect();
    check_cluster_quota(state, &live, &name)?;

    let placement = match &request.placement {
        Some(raw) => parse_placement(raw)?,
        None => state.config.default_placement,
    };

    let id = uuid::Uuid::new_v4().to_string();
    let slug = unique_slug(&state.store).await?;
    let default = credentials::generate_secret(&slug);
    let (pool, prefix) = if placement == SHARED {
        (state.provisioner.pool_for(request.multizone), new_prefix())
    } else {
        (String::new(), String::new())
    };
    let spec = ClusterSpec {
        id: id.clone(),
        multizone: request.multizone,
        placement: if placement == SHARED {
            Placement::Shared {
                pool: pool.clone(),
                prefix: prefix.clone(),
            }
        } else {
            Placement::Dedicated
        },
    };
    let user = BrokerUser {
        username: default.username.clone(),
        password: default.password.clone(),
        scope: Scope::full(),
    };
    let entry = journal::begin(state, Intent::CreateCluster, &spec, "").await?;
    let bootstrap = match state.provisioner.create_cluster(&spec, &[user]).await {
        Ok(bootstrap) => bootstrap,
        Err(e) => {
            entry
                .roll_back(state, state.provisioner.delete_cluster(&spec))
                .await;
            return Err(e);
        }
    };
    failpoint::hit("cluster.create.after_brokers").await;
    let tcp_endpoint = if placement == SHARED {
        state.config.kafka_endpoint.clone()
    } else {
        bootstrap
    };

    let row = ClusterRow {
        id,
        account_id: account_id.to_owned(),
        name,
        slug,
        region: request.region,
        multizone: i64::from(request.multizone),
        plan: state.config.default_plan.as_str().to_owned(),
        state: state.provisioner.initial_state(&spec).into(),
        tcp_endpoint,
        created_at: store::now(),
        budget_dollars: 0,
        deleted_at: None,
        placement: placement.to_owned(),
        pool,
        prefix,
    };
    if let Err(e) = insert(state, &row, &default, &entry).await {
        // Without a row nobody can reach these brokers: remove them.
        entry
            .roll_back(state, state.provisioner.delete_cluster(&spec))
            .await;
        return Err(e);
    }
    state.metrics.clusters_created.inc();
    view(state, &row).await
}

/// The account's quota and unique names, given the names of its live clusters.
fn check_cluster_quota(state: &AppState, live: &[(String,)], name: &str) -> Result<()> {
    if live.len() >= state.config.max_clusters_per_account as usize {
        return Err(Error::LimitExceeded(format!(
            "an account may have at most {} clusters; delete one first",
            state.config.max_clusters_per_account
        )));
    }
    if live.iter().any(|(n,)| n == name) {
        return Err(Error::Conflict(format!(
            "you already have a cluster named {name:?}"
        )));
    }
    Ok(())
}

async fn insert(
    state: &AppState,
    row: &ClusterRow,
    default: &credentials::Secret,
    entry: &journal::Entry,
) -> Result<()> {
    let mut tx = state.store.pool().begin().await?;
    // Checked again where it cannot race: a request that passed the early check may find the
    // account at its limit (or the name taken) once the others before it are in.
    store::lock_owner(&mut tx, Owner::Account(&row.account_id)).await?;
    let live: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM clusters WHERE account_id = $1 AND state <> 'deleted'")
            .bind(&row.account_id)
            .fetch_all(&mut *tx)
            .await?;
    check_cluster_quota(state, &live, &row.name)?;
    sqlx::query(&format!(
        "INSERT INTO clusters ({INSERT_COLUMNS}) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)"
    ))
    .bind(&row.id)
    .bind(&row.account_id)
    .bind(&row.name)
    .bind(&row.slug)
    .bind(&row.region)
    .bind(row.multizone)
    .bind(&row.plan)
    .bind(&row.state)
    .bind(&row.tcp_endpoint)
    .bind(row.created_at)
    .bind(&row.placement)
    .bind(&row.pool)
    .bind(&row.prefix)
    .execute(&mut *tx)
    .await?;
    credentials::insert(
        &mut tx,
        &state.key,
        &row.id,
        "default",
        true,
        "*",
        Permissions::All,
        default,
    )
    .await?;
    entry.done(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The account's live clusters, oldest first.
pub async fn live_clusters(store: &Store, account_id: &str) -> Result<Vec<ClusterRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clusters WHERE account_id = $1 AND state <> 'deleted' ORDER BY created_at, id"
    ))
    .bind(account_id)
    .fetch_all(store.pool())
    .await?)
}

/// Every live cluster of the platform (to bring brokers back at start).
pub async fn all_live(store: &Store) -> Result<Vec<ClusterRow>> {
    Ok(sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clusters WHERE state <> 'deleted' ORDER BY created_at, id"
    ))
    .fetch_all(store.pool())
    .await?)
}

/// A live cluster of the account; anything else (unknown, deleted, someone else's) is 404.
pub async fn find_owned(store: &Store, account_id: &str, id: &str) -> Result<ClusterRow> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clusters WHERE id = $1 AND account_id = $2 AND state <> 'deleted'"
    ))
    .bind(id)
    .bind(account_id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(Error::NotFound("cluster"))
}

/// The Upstash-shaped view of a cluster, with its default credential.
pub async fn view(state: &AppState, row: &ClusterRow) -> Result<ClusterView> {
    let default = credentials::default_of(&state.store, &state.key, &row.id).await?;
    let limits = row.limits(state);
    Ok(ClusterView {
        cluster_id: row.id.clone(),
        name: row.name.clone(),
        region: row.region.clone(),
        plan_type: row.plan().upstash_type().to_owned(),
        multizone: row.multizone != 0,
        tcp_endpoint: row.endpoint(state).to_owned(),
        rest_endpoint: state.config.rest_endpoint.clone(),
        state: row.state.clone(),
        username: default.username,
        password: default.password,
        max_retention_size: limits.max_retention_size,
        max_retention_time: limits.max_retention_time,
        max_messages_per_second: limits.max_messages_per_second,
        creation_time: row.created_at,
        max_message_size: limits.max_message_size,
        max_partitions: limits.max_partitions,
        budget: row.budget_dollars,
        placement: row.placement.clone(),
    })
}

/// Longest a creation may wait for its cluster to become ready (`?wait=true`).
pub const MAX_CREATE_WAIT: std::time::Duration = std::time::Duration::from_secs(600);

/// The account's cluster `id` once it is no longer `provisioning` (active, degraded or
/// failed), or as it is when `within` has passed: what a creation with `?wait=true` answers, so
/// that a script can create a topic right after. The store's state follows the brokers' manager
/// (see `Provisioner::observed_states`), so this reads it rather than asking the brokers.
pub async fn wait_until_ready(
    state: &AppState,
    account_id: &str,
    id: &str,
    within: std::time::Duration,
) -> Result<ClusterView> {
    let deadline = tokio::time::Instant::now() + within;
    loop {
        let row = find_owned(&state.store, account_id, id).await?;
        let now = tokio::time::Instant::now();
        if row.state != "provisioning" || now >= deadline {
            return view(state, &row).await;
        }
        tokio::time::sleep((deadline - now).min(std::time::Duration::from_millis(250))).await;
    }
}

/// Every live cluster of the account.
pub async fn list(state: &AppState, account_id: &str) -> Result<Vec<ClusterView>> {
    let mut views = Vec::new();
    for row in live_clusters(&state.store, account_id).await? {
        views.push(view(state, &row).await?);
    }
    Ok(views)
}

/// One cluster of the account.
pub async fn get(state: &AppState, account_id: &str, id: &str) -> Result<ClusterView> {
    let row = find_owned(&state.store, account_id, id).await?;
    view(state, &row).await
}

/// Renames a cluster.
pub async fn rename(
    state: &AppState,
    account_id: &str,
    id: &str,
    request: RenameCluster,
) -> Result<ClusterView> {
    let name = names::cluster_name(&request.name)?;
    let mut row = find_owned(&state.store, account_id, id).await?;
    let clash = live_clusters(&state.store, account_id)
        .await?
        .into_iter()
        .any(|c| c.name == name && c.id != id);
    if clash {
        return Err(Error::Conflict(format!(
            "you already have a cluster named {name:?}"
        )));
    }
    sqlx::query("UPDATE clusters SET name = $1 WHERE id = $2")
        .bind(&name)
        .bind(id)
        .execute(state.store.pool())
        .await?;
    row.name = name;
    view(state, &row).await
}

/// Gives the default credential a new password (the username stays).
pub async fn reset_password(state: &AppState, account_id: &str, id: &str) -> Result<ClusterView> {
    let row = find_owned(&state.store, account_id, id).await?;
    credentials::rotate_default(state, &row).await?;
    view(state, &row).await
}

/// Deletes a cluster: its brokers and their data, its topics and credentials.
pub async fn delete(state: &AppState, account_id: &str, id: &str) -> Result<()> {
    let row = find_owned(&state.store, account_id, id).await?;
    delete_row(state, &row).await
}

/// Deletes a live cluster, whoever owns it (an account's request, or recovery finishing one).
/// Once its brokers are being removed, the delete is finished even across a crash.
pub(crate) async fn delete_row(state: &AppState, row: &ClusterRow) -> Result<()> {
    let id = row.id.as_str();
    topics::meter_before_delete(state, id).await;
    let entry = journal::begin(state, Intent::DeleteCluster, &row.spec(), "").await?;
    state.provisioner.delete_cluster(&row.spec()).await?;
    failpoint::hit("cluster.delete.after_brokers").await;
    let mut tx = state.store.pool().begin().await?;
    for statement in [
        "DELETE FROM topics WHERE cluster_id = $1",
        "DELETE FROM credentials WHERE cluster_id = $1",
    ] {
        sqlx::query(statement).bind(id).execute(&mut *tx).await?;
    }
    crate::schema_registry::forget_cluster(&mut tx, id).await?;
    sqlx::query("UPDATE clusters SET state = 'deleted', deleted_at = $1 WHERE id = $2")
        .bind(store::now())
        .bind(id)
        .execute(&mut *tx)
        .await?;
    entry.done(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Starts the brokers of every live cluster (after a restart of the control plane). A cluster
/// whose brokers cannot start is logged and skipped, so one bad cluster never blocks the rest.
pub async fn resume_all(state: &AppState) -> Result<(usize, usize)> {
    let (mut resumed, mut failed) = (0, 0);
    // Shared clusters have no brokers of their own: the provisioner started their pool.
    for row in all_live(&state.store)
        .await?
        .into_iter()
        .filter(|row| !row.is_shared())
    {
        match state
            .provisioner
            .resume_cluster(&row.spec(), &row.tcp_endpoint)
            .await
        {
            Ok(bootstrap) => {
                resumed += 1;
                if bootstrap != row.tcp_endpoint {
                    tracing::warn!(cluster = %row.id, old = %row.tcp_endpoint, new = %bootstrap,
                        "the cluster's port was taken; its bootstrap address changed");
                    sqlx::query("UPDATE clusters SET tcp_endpoint = $1 WHERE id = $2")
                        .bind(&bootstrap)
                        .bind(&row.id)
                        .execute(state.store.pool())
                        .await?;
                }
            }
            Err(e) => {
                failed += 1;
                tracing::error!(cluster = %row.id, error = %crate::error::cause_chain(&e), "could not start the cluster's brokers");
            }
        }
    }
    Ok((resumed, failed))
}

/// Whether `text` has the shape of a shared cluster's prefix (see [`new_prefix`]).
pub fn is_prefix(text: &str) -> bool {
    text.len() == PREFIX_LEN
        && text.ends_with('.')
        && text[..PREFIX_LEN - 1]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The length of a shared cluster's prefix.
pub const PREFIX_LEN: usize = 13;

/// A fresh prefix for a shared cluster's names: 12 random hex digits and a dot (13
/// characters of Kafka's 249 for a topic name).
fn new_prefix() -> String {
    use rand::RngCore;
    let mut bytes = [0u8; 6];
    rand::rngs::OsRng.fill_bytes(&mut bytes);
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    format!("{hex}.")
}

const ADJECTIVES: &[&str] = &[
    "brave", "calm", "clever", "eager", "fancy", "gentle", "happy", "jolly", "keen", "lively",
    "merry", "noble", "proud", "quick", "quiet", "rapid", "sharp", "steady", "swift", "witty",
];
const ANIMALS: &[&str] = &[
    "otter", "heron", "lynx", "marten", "badger", "falcon", "gecko", "ibis", "koala", "lemur",
    "mantis", "newt", "orca", "panda", "quokka", "raven", "stingray", "tapir", "walrus", "yak",
];

async fn unique_slug(store: &Store) -> Result<String> {
    use rand::Rng;
    for _ in 0..20 {
        let slug = {
            let mut rng = rand::thread_rng();
            format!(
                "{}-{}-{}",
                ADJECTIVES[rng.gen_range(0..ADJECTIVES.len())],
                ANIMALS[rng.gen_range(0..ANIMALS.len())],
                rng.gen_range(1000..100_000)
            )
        };
        let taken: Option<(String,)> = sqlx::query_as("SELECT id FROM clusters WHERE slug = $1")
            .bind(&slug)
            .fetch_optional(store.pool())
            .await?;
        if taken.is_none() {
            return Ok(slug);
        }
    }
    Err(Error::internal(
        "could not find a free cluster slug",
        "20 random slugs were taken",
    ))
}

/// A live cluster by id, whoever owns it (for the data plane, which authenticates by credential).
pub async fn find_live(store: &Store, id: &str) -> Result<ClusterRow> {
    sqlx::query_as(&format!(
        "SELECT {COLUMNS} FROM clusters WHERE id = $1 AND state <> 'deleted'"
    ))
    .bind(id)
    .fetch_optional(store.pool())
    .await?
    .ok_or(Error::NotFound("cluster"))
}

/// Records the state the provisioner reports for a live cluster (`pool:<name>`: every live
/// cluster on that pool); `false` when nothing changed (deleted meanwhile, or already so).
pub async fn set_state(store: &Store, id: &str, state: &str) -> Result<bool> {
    let updated = match id.strip_prefix("pool:") {
        Some(pool) => {
            sqlx::query(
                "UPDATE clusters SET state = $1 WHERE pool = $2 AND placement = 'shared' \
                 AND state <> 'deleted' AND state <> $1",
            )
            .bind(state)
            .bind(pool)
            .execute(store.pool())
            .await?
        }
        None => sqlx::query(
            "UPDATE clusters SET state = $1 WHERE id = $2 AND state <> 'deleted' AND state <> $1",
        )
        .bind(state)
        .bind(id)
        .execute(store.pool())
        .await?,
    };
    Ok(updated.rows_affected() > 0)
}

/// Body of `PATCH /v2/kafka/update-budget/{id}`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UpdateBudget {
    /// Whole dollars per month; 0 removes the budget.
    pub budget: i64,
}

/// Largest budget accepted, in dollars (far above any ceiling; keeps micro-dollars in range).
pub const MAX_BUDGET_DOLLARS: i64 = 1_000_000_000;

/// Sets or clears a cluster's monthly budget.
pub async fn update_budget(
    state: &AppState,
    account_id: &str,
    id: &str,
    request: UpdateBudget,
) -> Result<()> {
    if !(0..=MAX_BUDGET_DOLLARS).contains(&request.budget) {
        return Err(Error::Invalid(format!(
            "budget must be whole dollars from 0 (no budget) to {MAX_BUDGET_DOLLARS} (got {})",
            request.budget
        )));
    }
    let cluster = find_owned(&state.store, account_id, id).await?;
    if request.budget > 0 && request.budget != cluster.budget_dollars {
        // A budget applies to the whole month: one below what the month already costs would
        // rewrite the past (spend $119, set $1, pay $1).
        let so_far = state.billing.month_so_far_cents(id).await?;
        if request.budget * 100 < so_far {
            return Err(Error::Conflict(format!(
                "this month has cost ${}.{:02} so far: set a budget of at least ${} now, or lower it on the 1st of next month",
                so_far / 100,
                so_far % 100,
                so_far.div_euclid(100) + i64::from(so_far % 100 > 0)
            )));
        }
    }
    let mut tx = state.store.pool().begin().await?;
    sqlx::query("UPDATE clusters SET budget_dollars = $1 WHERE id = $2")
        .bind(request.budget)
        .bind(id)
        .execute(&mut *tx)
        .await?;
    sqlx::query(
        "INSERT INTO budget_changes (cluster_id, budget_dollars, changed_at) VALUES ($1, $2, $3)",
    )
    .bind(id)
    .bind(request.budget)
    .bind(store::now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    if request.budget != cluster.budget_dollars {
        state.billing.budget_changed(id).await?;
    }
    Ok(())
}

/// Every cluster ever made, deleted ones included (billing needs their last month); only
/// those of `account_id` when given.
pub async fn all_for_billing(store: &Store, account_id: Option<&str>) -> Result<Vec<ClusterRow>> {
    let only_account = if account_id.is_some() {
        "WHERE account_id = $1"
    } else {
        ""
    };
    let sql = format!("SELECT {COLUMNS} FROM clusters {only_account} ORDER BY created_at, id");
    let mut query = sqlx::query_as(&sql);
    if let Some(account_id) = account_id {
        query = query.bind(account_id);
    }
    Ok(query.fetch_all(store.pool()).await?)
}

/// Every cluster ever made, each with the budget that was in force at `at` (unix seconds)
/// rather than its budget now: a month is invoiced at the budget in force at its end, however
/// late it is closed and whatever was set since. The budget in force is the last change
/// recorded before `at`; a cluster with no change recorded before `at` had none (clusters are
/// created without a budget), unless it has no recorded change at all, which is a budget set
/// before changes were recorded: its budget now.
pub async fn all_for_billing_as_of(store: &Store, at: i64) -> Result<Vec<ClusterRow>> {
    let budget_then = "CAST(COALESCE( \
           (SELECT b.budget_dollars FROM budget_changes b \
             WHERE b.cluster_id = clusters.id AND b.changed_at < $1 \
             ORDER BY b.changed_at DESC, b.budget_dollars DESC LIMIT 1), \
           CASE WHEN EXISTS (SELECT 1 FROM budget_changes b WHERE b.cluster_id = clusters.id) \
                THEN 0 ELSE clusters.budget_dollars END) AS BIGINT) AS budget_dollars";
    let columns = COLUMNS.replace("budget_dollars", budget_then);
    let sql = format!("SELECT {columns} FROM clusters ORDER BY created_at, id");
    Ok(sqlx::query_as(&sql)
        .bind(at)
        .fetch_all(store.pool())
        .await?)
}

/// One cluster by id, deleted or not.
pub async fn any_by_id(store: &Store, id: &str) -> Result<Option<ClusterRow>> {
    Ok(
        sqlx::query_as(&format!("SELECT {COLUMNS} FROM clusters WHERE id = $1"))
            .bind(id)
            .fetch_optional(store.pool())
            .await?,
    )
}
