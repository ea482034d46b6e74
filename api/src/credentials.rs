//! Cluster credentials: the default one (full access) and scoped ones (topic, permissions).
//!
//! Passwords are machine-generated, kept encrypted at rest (they are shown again in the
//! console) and verified through a keyed hash, never a slow password hash.

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use serde::{Deserialize, Serialize};
use sqlx::AnyConnection;

use crate::{
    Error, Result,
    clusters::{self, ClusterRow},
    crypto::{self, SecretKey},
    failpoint,
    journal::{self, Intent},
    names,
    provisioner::{BrokerUser, Scope},
    state::AppState,
    store::{self, Owner},
};

/// The keyed-hash purpose of credential passwords.
pub(crate) const PASSWORD_PURPOSE: &str = "credential-password";

/// What a credential may do.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Permissions {
    /// Produce and consume.
    All,
    /// Produce only.
    Produce,
    /// Fetch, consume, commit and read offsets only.
    Consume,
}

impl Permissions {
    /// Parses `ALL`, `PRODUCE` or `CONSUME`.
    pub fn parse(raw: &str) -> Result<Self> {
        match raw {
            "ALL" => Ok(Permissions::All),
            "PRODUCE" => Ok(Permissions::Produce),
            "CONSUME" => Ok(Permissions::Consume),
            other => Err(Error::Invalid(format!(
                "unknown permissions {other:?}: use ALL, PRODUCE or CONSUME"
            ))),
        }
    }

    /// The rights of a credential with these permissions on `topics`; `administer` for the
    /// cluster's default credential.
    pub fn scope(self, topics: &str, administer: bool) -> Scope {
        Scope {
            administer,
            ..Scope::scoped(
                self != Permissions::Consume,
                self != Permissions::Produce,
                topics,
            )
        }
    }

    /// The stored and shown name.
    pub fn as_str(self) -> &'static str {
        match self {
            Permissions::All => "ALL",
            Permissions::Produce => "PRODUCE",
            Permissions::Consume => "CONSUME",
        }
    }
}

/// A username and password pair.
#[derive(Clone)]
pub struct Secret {
    /// Username: URL-safe base64 whose start decodes to `<cluster slug>$`, as Upstash's did.
    pub username: String,
    /// Password: 32 random bytes, URL-safe base64.
    pub password: String,
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Secret")
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// A fresh username and password for a cluster.
pub fn generate_secret(slug: &str) -> Secret {
    Secret {
        username: URL_SAFE_NO_PAD.encode(format!("{slug}${}", crypto::random_token(9))),
        password: crypto::random_token(32),
    }
}

/// A credential in the shape of Upstash's Developer API.
#[derive(Clone, Debug, Serialize)]
pub struct CredentialView {
    pub credential_id: String,
    pub credential_name: String,
    pub topic: String,
    pub permissions: String,
    pub cluster_id: String,
    pub cluster_slug: String,
    pub username: String,
    pub password: String,
    pub creation_time: i64,
    pub state: String,
}

/// Body of `POST /v2/kafka/credential`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateCredential {
    /// Name, unique in the cluster.
    pub credential_name: String,
    /// The cluster.
    pub cluster_id: String,
    /// A topic, a prefix ending in `*`, or `*`.
    pub topic: String,
    /// `ALL`, `PRODUCE` or `CONSUME`.
    pub permissions: String,
}

/// A scoped credential with its cluster's slug, as listed.
#[derive(Debug, sqlx::FromRow)]
struct ListedRow {
    id: String,
    cluster_id: String,
    slug: String,
    name: String,
    topic: String,
    permissions: String,
    username: String,
    password_encrypted: String,
    created_at: i64,
}

/// Stores a credential inside the caller's transaction; returns its id.
#[allow(clippy::too_many_arguments)]
pub async fn insert(
    db: &mut AnyConnection,
    key: &SecretKey,
    cluster_id: &str,
    name: &str,
    is_default: bool,
    topic: &str,
    permissions: Permissions,
    secret: &Secret,
) -> Result<String> {
    let id = uuid::Uuid::new_v4().to_string();
    sqlx::query(
        "INSERT INTO credentials (id, cluster_id, name, is_default, topic, permissions, username, \
         password_encrypted, password_hash, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)",
    )
    .bind(&id)
    .bind(cluster_id)
    .bind(name)
    .bind(i64::from(is_default))
    .bind(topic)
    .bind(permissions.as_str())
    .bind(&secret.username)
    .bind(key.encrypt(&secret.password)?)
    .bind(key.keyed_hash(PASSWORD_PURPOSE, secret.password.as_bytes()))
    .bind(store::now())
    .execute(&mut *db)
    .await?;
    Ok(id)
}

/// The default credential of a cluster, decrypted.
pub async fn default_of(store: &store::Store, key: &SecretKey, cluster_id: &str) -> Result<Secret> {
    let (username, encrypted): (String, String) = sqlx::query_as(
        "SELECT username, password_encrypted FROM credentials WHERE cluster_id = $1 AND is_default = 1",
    )
    .bind(cluster_id)
    .fetch_optional(store.pool())
    .await?
    .ok_or_else(|| Error::internal("a cluster has no default credential", cluster_id.to_owned()))?;
    Ok(Secret {
        username,
        password: key.decrypt(&encrypted)?,
    })
}

/// Gives the default credential a new password, on the brokers first, then in the store.
pub async fn rotate_default(state: &AppState, cluster: &ClusterRow) -> Result<()> {
    let current = default_of(&state.store, &state.key, &cluster.id).await?;
    let password = crypto::random_token(32);
    let user = BrokerUser {
        username: current.username.clone(),
        password: password.clone(),
        scope: Scope::full(),
    };
    // A crash between the brokers and the store leaves the journal's entry: recovery gives
    // the brokers back the password the store has.
    let entry = journal::begin(state, Intent::PutUser, &cluster.spec(), &user.username).await?;
    state.provisioner.put_user(&cluster.spec(), &user).await?;
    failpoint::hit("credential.rotate.after_brokers").await;
    let mut tx = state.store.pool().begin().await?;
    sqlx::query(
        "UPDATE credentials SET password_encrypted = $1, password_hash = $2 WHERE cluster_id = $3 AND is_default = 1",
    )
    .bind(state.key.encrypt(&password)?)
    .bind(state.key.keyed_hash(PASSWORD_PURPOSE, password.as_bytes()))
    .bind(&cluster.id)
    .execute(&mut *tx)
    .await?;
    entry.done(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// The names of a cluster's scoped credentials.
async fn scoped_names<'e>(
    db: impl sqlx::Executor<'e, Database = sqlx::Any>,
    cluster_id: &str,
) -> Result<Vec<String>> {
    let rows: Vec<(String,)> =
        sqlx::query_as("SELECT name FROM credentials WHERE cluster_id = $1 AND is_default = 0")
            .bind(cluster_id)
            .fetch_all(db)
            .await?;
    Ok(rows.into_iter().map(|(name,)| name).collect())
}

/// The cluster's quota of credentials, given its scoped credentials' names. Names may repeat,
/// as on Upstash; only `default`, the name of the cluster's own credential, is reserved.
fn check_quota(state: &AppState, existing: &[String], name: &str) -> Result<()> {
    if existing.len() >= state.config.max_credentials_per_cluster as usize {
        return Err(Error::LimitExceeded(format!(
            "a cluster may have at most {} credentials; delete one first",
            state.config.max_credentials_per_cluster
        )));
    }
    if name == "default" {
        return Err(Error::Conflict(
            "the cluster already has a credential named \"default\" (its own); choose another name"
                .into(),
        ));
    }
    Ok(())
}

/// Creates a scoped credential on a cluster of the account.
pub async fn create(
    state: &AppState,
    account_id: &str,
    request: CreateCredential,
) -> Result<CredentialView> {
    let name = names::credential_name(&request.credential_name)?;
    let topic = names::topic_scope(&request.topic)?;
    let permissions = Permissions::parse(&request.permissions)?;
    let cluster = clusters::find_owned(&state.store, account_id, &request.cluster_id).await?;
    check_quota(
        state,
        &scoped_names(state.store.pool(), &cluster.id).await?,
        &name,
    )?;
    let secret = generate_secret(&cluster.slug);
    let user = BrokerUser {
        username: secret.username.clone(),
        password: secret.password.clone(),
        scope: permissions.scope(&topic, false),
    };
    let spec = cluster.spec();
    let entry = journal::begin(state, Intent::PutUser, &spec, &user.username).await?;
    let made = async {
        state.provisioner.put_user(&spec, &user).await?;
        failpoint::hit("credential.create.after_brokers").await;
        let mut tx = state.store.pool().begin().await?;
        // Checked again where it cannot race with another creation on the cluster.
        store::lock_owner(&mut tx, Owner::Cluster(&cluster.id)).await?;
        check_quota(state, &scoped_names(&mut *tx, &cluster.id).await?, &name)?;
        let id = insert(
            &mut tx,
            &state.key,
            &cluster.id,
            &name,
            false,
            &topic,
            permissions,
            &secret,
        )
        .await?;
        entry.done(&mut tx).await?;
        tx.commit().await?;
        Ok::<_, Error>(id)
    }
    .await;
    let id = match made {
        Ok(id) => id,
        Err(e) => {
            entry
                .roll_back(
                    state,
                    state.provisioner.delete_user(&spec, &secret.username),
                )
                .await;
            return Err(e);
        }
    };
    Ok(CredentialView {
        credential_id: id,
        credential_name: name,
        topic,
        permissions: permissions.as_str().to_owned(),
        cluster_id: cluster.id,
        cluster_slug: cluster.slug,
        username: secret.username,
        password: secret.password,
        creation_time: store::now(),
        state: "active".into(),
    })
}

/// Every scoped credential of the account's clusters (default credentials left out, as Upstash did).
pub async fn list(state: &AppState, account_id: &str) -> Result<Vec<CredentialView>> {
    let rows: Vec<ListedRow> = sqlx::query_as(
        "SELECT cr.id, cr.cluster_id, c.slug, cr.name, cr.topic, cr.permissions, cr.username, \
         cr.password_encrypted, cr.created_at FROM credentials cr JOIN clusters c ON c.id = cr.cluster_id \
         WHERE c.account_id = $1 AND c.state <> 'deleted' AND cr.is_default = 0 \
         ORDER BY c.created_at, c.id, cr.created_at, cr.id",
    )
    .bind(account_id)
    .fetch_all(state.store.pool())
    .await?;
    rows.into_iter()
        .map(|row| {
            Ok(CredentialView {
                password: state.key.decrypt(&row.password_encrypted)?,
                credential_id: row.id,
                credential_name: row.name,
                topic: row.topic,
                permissions: row.permissions,
                cluster_id: row.cluster_id,
                cluster_slug: row.slug,
                username: row.username,
                creation_time: row.created_at,
                state: "active".into(),
            })
        })
        .collect()
}

/// Deletes a scoped credential of the account (the default one cannot be deleted).
pub async fn delete(state: &AppState, account_id: &str, id: &str) -> Result<()> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT cr.cluster_id, cr.username FROM credentials cr JOIN clusters c ON c.id = cr.cluster_id \
         WHERE cr.id = $1 AND cr.is_default = 0 AND c.account_id = $2 AND c.state <> 'deleted'",
    )
    .bind(id)
    .bind(account_id)
    .fetch_optional(state.store.pool())
    .await?;
    let (cluster_id, username) = row.ok_or(Error::NotFound("credential"))?;
    let cluster = clusters::find_owned(&state.store, account_id, &cluster_id).await?;
    let entry = journal::begin(state, Intent::DeleteUser, &cluster.spec(), &username).await?;
    state
        .provisioner
        .delete_user(&cluster.spec(), &username)
        .await?;
    failpoint::hit("credential.delete.after_brokers").await;
    let mut tx = state.store.pool().begin().await?;
    sqlx::query("DELETE FROM credentials WHERE id = $1")
        .bind(id)
        .execute(&mut *tx)
        .await?;
    entry.done(&mut tx).await?;
    tx.commit().await?;
    Ok(())
}

/// Removes a scoped credential from the store by its username (recovery finishing a delete).
pub(crate) async fn forget_user(state: &AppState, cluster_id: &str, username: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM credentials WHERE cluster_id = $1 AND username = $2 AND is_default = 0",
    )
    .bind(cluster_id)
    .bind(username)
    .execute(state.store.pool())
    .await?;
    Ok(())
}

/// Every credential of a cluster as a user of its brokers (passwords decrypted, scopes given).
pub async fn broker_users(state: &AppState, cluster_id: &str) -> Result<Vec<BrokerUser>> {
    let rows: Vec<(String, String, String, String, i64)> = sqlx::query_as(
        "SELECT username, password_encrypted, topic, permissions, is_default FROM credentials \
         WHERE cluster_id = $1 ORDER BY is_default DESC, username",
    )
    .bind(cluster_id)
    .fetch_all(state.store.pool())
    .await?;
    rows.into_iter()
        .map(|(username, encrypted, topic, permissions, is_default)| {
            Ok(BrokerUser {
                username,
                password: state.key.decrypt(&encrypted)?,
                scope: Permissions::parse(&permissions)?.scope(&topic, is_default != 0),
            })
        })
        .collect()
}

/// Writes every credential of a cluster to its brokers again (SCRAM users and ACLs): done when
/// a cluster's brokers become ready, since the brokers may have been made, or re-made, with
/// only the default user and without its ACLs. Safe to repeat.
pub async fn sync_to_brokers(state: &AppState, cluster: &ClusterRow) -> Result<()> {
    let spec = cluster.spec();
    for user in broker_users(state, &cluster.id).await? {
        state.provisioner.put_user(&spec, &user).await?;
    }
    Ok(())
}

/// What a REST or TCP credential may do, found from its username and password.
#[derive(Clone, Debug)]
pub struct Access {
    /// The credential's username (REST consumer instances belong to it).
    pub username: String,
    /// The cluster the credential belongs to.
    pub cluster_id: String,
    /// A topic name, a prefix ending in `*`, or `*`.
    pub scope: String,
    /// Produce, consume, or both.
    pub permissions: Permissions,
    /// The prefix of the cluster's names on its shared pool ("" for brokers of its own).
    pub prefix: String,
    /// The cluster's shared pool ("" for brokers of its own).
    pub pool: String,
}

impl Access {
    /// A topic or group as the brokers name it.
    pub fn physical(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// A broker's name as the cluster names it, `None` when it is not the cluster's.
    pub fn virtual_name<'a>(&self, physical: &'a str) -> Option<&'a str> {
        physical.strip_prefix(self.prefix.as_str())
    }

    /// True when the credential's topic scope covers `topic`.
    pub fn covers(&self, topic: &str) -> bool {
        capstan_kafka::gateway::covers(&self.scope, topic)
    }

    /// May produce to `topic`.
    pub fn can_produce(&self, topic: &str) -> bool {
        self.permissions != Permissions::Consume && self.covers(topic)
    }

    /// May fetch, consume, commit and read offsets of `topic`.
    pub fn can_consume(&self, topic: &str) -> bool {
        self.permissions != Permissions::Produce && self.covers(topic)
    }
}

/// Checks a cluster credential (REST Basic auth). The password is compared through its keyed
/// hash in constant time; no slow password hash is on this hot path.
pub async fn authenticate(
    store: &store::Store,
    key: &SecretKey,
    username: &str,
    password: &str,
) -> Result<Access> {
    let wrong = || Error::Unauthenticated("wrong username or password for this cluster".into());
    let row: Option<(String, String, String, String, String, String)> = sqlx::query_as(
        "SELECT cr.cluster_id, cr.topic, cr.permissions, cr.password_hash, c.prefix, c.pool FROM credentials cr \
         JOIN clusters c ON c.id = cr.cluster_id WHERE cr.username = $1 AND c.state <> 'deleted'",
    )
    .bind(username)
    .fetch_optional(store.pool())
    .await?;
    let hash = key.keyed_hash(PASSWORD_PURPOSE, password.as_bytes());
    let (cluster_id, scope, permissions, stored, prefix, pool) = row.ok_or_else(wrong)?;
    if !crypto::constant_time_eq(&stored, &hash) {
        return Err(wrong());
    }
    Ok(Access {
        username: username.to_owned(),
        cluster_id,
        scope,
        permissions: Permissions::parse(&permissions)?,
        prefix,
        pool,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn access(scope: &str, permissions: Permissions) -> Access {
        Access {
            username: "u".into(),
            cluster_id: "c".into(),
            scope: scope.into(),
            permissions,
            prefix: String::new(),
            pool: String::new(),
        }
    }

    #[test]
    fn scopes_cover_exact_names_prefixes_and_everything() {
        assert!(access("*", Permissions::All).covers("anything"));
        assert!(access("orders.*", Permissions::All).covers("orders.eu"));
        assert!(!access("orders.*", Permissions::All).covers("payments"));
        assert!(access("orders", Permissions::All).covers("orders"));
        assert!(!access("orders", Permissions::All).covers("orders2"));
    }

    #[test]
    fn permissions_split_produce_from_consume() {
        assert!(access("*", Permissions::Produce).can_produce("t"));
        assert!(!access("*", Permissions::Produce).can_consume("t"));
        assert!(access("*", Permissions::Consume).can_consume("t"));
        assert!(!access("*", Permissions::Consume).can_produce("t"));
        assert!(
            access("*", Permissions::All).can_produce("t")
                && access("*", Permissions::All).can_consume("t")
        );
    }
}
