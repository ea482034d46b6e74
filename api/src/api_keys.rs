//! Management API keys: created (shown once), listed, revoked; stored as keyed hashes.

use serde::Serialize;

use crate::{
    Error, Result,
    crypto::{self, SecretKey},
    store::{self, Owner, Store},
};

const PURPOSE: &str = "api-key";

/// An API key as listed (never with its secret).
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct ApiKey {
    /// UUID of the key.
    pub id: String,
    /// The name given at creation.
    pub name: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
    /// Last successful use, unix seconds, to within a minute.
    pub last_used_at: Option<i64>,
}

/// A key just created: the only time its secret is shown.
#[derive(Debug, Serialize)]
pub struct NewApiKey {
    /// UUID of the key.
    pub id: String,
    /// The name given at creation.
    pub name: String,
    /// The secret, to use as the password of HTTP Basic `EMAIL:KEY`.
    pub key: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

/// A key's name: the same rules as a cluster name.
pub fn parse_name(raw: &str) -> Result<String> {
    crate::names::cluster_name(raw).map_err(|_| {
        Error::Invalid(
            "the key name must have 1 to 64 characters: letters, digits, space, '.', '_' or '-'"
                .into(),
        )
    })
}

/// Creates a key for an account, refusing past `max_keys`.
pub async fn create(
    store: &Store,
    key: &SecretKey,
    account_id: &str,
    name: String,
    max_keys: u32,
) -> Result<NewApiKey> {
    let mut tx = store.pool().begin().await?;
    // The count and the insert in one transaction that no other creation for the account
    // interleaves with, so parallel requests stop exactly at the limit.
    store::lock_owner(&mut tx, Owner::Account(account_id)).await?;
    let (count,): (i64,) = sqlx::query_as("SELECT COUNT(*) FROM api_keys WHERE account_id = $1")
        .bind(account_id)
        .fetch_one(&mut *tx)
        .await?;
    if count >= i64::from(max_keys) {
        return Err(Error::LimitExceeded(format!(
            "an account may have at most {max_keys} API keys; revoke one first"
        )));
    }
    let secret = format!("cap_{}", crypto::random_token(32));
    let created = NewApiKey {
        id: uuid::Uuid::new_v4().to_string(),
        name,
        key: secret,
        created_at: store::now(),
    };
    sqlx::query("INSERT INTO api_keys (id, account_id, name, key_hash, created_at) VALUES ($1, $2, $3, $4, $5)")
        .bind(&created.id)
        .bind(account_id)
        .bind(&created.name)
        .bind(key.keyed_hash(PURPOSE, created.key.as_bytes()))
        .bind(created.created_at)
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(created)
}

/// The keys of an account, oldest first.
pub async fn list(store: &Store, account_id: &str) -> Result<Vec<ApiKey>> {
    Ok(sqlx::query_as(
        "SELECT id, name, created_at, last_used_at FROM api_keys WHERE account_id = $1 ORDER BY created_at, id",
    )
    .bind(account_id)
    .fetch_all(store.pool())
    .await?)
}

/// Revokes a key of the account; another account's key is "not found".
pub async fn revoke(store: &Store, account_id: &str, id: &str) -> Result<()> {
    let done = sqlx::query("DELETE FROM api_keys WHERE id = $1 AND account_id = $2")
        .bind(id)
        .bind(account_id)
        .execute(store.pool())
        .await?;
    if done.rows_affected() == 0 {
        return Err(Error::NotFound("API key"));
    }
    Ok(())
}

/// Checks `EMAIL:KEY` and returns the account id. The key is found by its keyed hash, and the
/// hash is compared again in constant time with the stored one.
pub async fn authenticate(
    store: &Store,
    key: &SecretKey,
    email: &str,
    secret: &str,
) -> Result<String> {
    let wrong = || Error::Unauthenticated("wrong e-mail address or API key".into());
    let hash = key.keyed_hash(PURPOSE, secret.as_bytes());
    let row: Option<(String, String, String, Option<i64>)> = sqlx::query_as(
        "SELECT k.id, k.key_hash, a.id, k.last_used_at FROM api_keys k \
         JOIN accounts a ON a.id = k.account_id WHERE k.key_hash = $1 AND a.email = $2",
    )
    .bind(&hash)
    .bind(email.trim().to_lowercase())
    .fetch_optional(store.pool())
    .await?;
    let (key_id, stored, account_id, last_used_at) = row.ok_or_else(wrong)?;
    if !crypto::constant_time_eq(&stored, &hash) {
        return Err(wrong());
    }
    // Every API request authenticates; refreshing the stamp at most once a minute keeps reads
    // from becoming writes.
    let now = store::now();
    if last_used_at.is_none_or(|used| now - used >= 60) {
        sqlx::query("UPDATE api_keys SET last_used_at = $1 WHERE id = $2")
            .bind(now)
            .bind(&key_id)
            .execute(store.pool())
            .await?;
    }
    Ok(account_id)
}
