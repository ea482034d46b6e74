//! Accounts: sign-up and log-in with an e-mail address and a password (argon2id), rate-limited
//! per account and client address ([`LoginLimiter`]) with the password work bounded.

use std::time::{Duration, Instant};

use argon2::{
    Argon2,
    password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString, rand_core::OsRng},
};
use serde::Serialize;

use crate::{
    Error, Result,
    login_limit::LoginLimiter,
    store::{self, Store},
};

/// A syntactically valid, lower-cased e-mail address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Email(String);

impl Email {
    /// Parses an address: one `@`, a non-empty local part, a dotted domain, at most 254 bytes.
    pub fn parse(raw: &str) -> Result<Self> {
        let email = raw.trim().to_lowercase();
        let invalid = || Error::Invalid(format!("{raw:?} is not a valid e-mail address"));
        if email.len() > 254 || email.chars().any(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid());
        }
        let (local, domain) = email.split_once('@').ok_or_else(invalid)?;
        let domain_ok = !domain.contains('@')
            && domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && !domain.contains("..");
        if local.is_empty() || !domain_ok {
            return Err(invalid());
        }
        Ok(Email(email))
    }

    /// The address as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A password that meets the rules: 10 to 128 characters.
#[derive(Clone)]
pub struct Password(String);

impl std::fmt::Debug for Password {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Password(<redacted>)")
    }
}

impl Password {
    /// Minimum length in characters.
    pub const MIN_CHARS: usize = 10;
    /// Maximum length in characters (bounds the hashing work an attacker can ask for).
    pub const MAX_CHARS: usize = 128;

    /// Checks the rules; the password must also differ from the e-mail address.
    pub fn parse(raw: &str, email: &Email) -> Result<Self> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(Error::Invalid(format!(
                "the password must have at least {} characters",
                Self::MIN_CHARS
            )));
        }
        if chars > Self::MAX_CHARS {
            return Err(Error::Invalid(format!(
                "the password must have at most {} characters",
                Self::MAX_CHARS
            )));
        }
        if raw.trim().to_lowercase() == email.as_str() {
            return Err(Error::Invalid(
                "the password must not be the e-mail address".into(),
            ));
        }
        Ok(Password(raw.to_owned()))
    }
}

/// A user account.
#[derive(Clone, Debug, Serialize, sqlx::FromRow)]
pub struct Account {
    /// UUID of the account.
    pub id: String,
    /// Its e-mail address (lower case).
    pub email: String,
    /// Creation time, unix seconds.
    pub created_at: i64,
}

/// Creates an account. A second account with the same address is a conflict.
pub async fn sign_up(store: &Store, email: Email, password: Password) -> Result<Account> {
    let hash = hash_password(password).await?;
    let mut connection = store.pool().acquire().await?;
    insert(&mut connection, email.as_str(), &hash).await
}

/// Stores a new account with the address `email` and the argon2id `password_hash`; a second
/// account with the same address is a conflict.
pub(crate) async fn insert(
    connection: &mut sqlx::AnyConnection,
    email: &str,
    password_hash: &str,
) -> Result<Account> {
    let account = Account {
        id: uuid::Uuid::new_v4().to_string(),
        email: email.to_owned(),
        created_at: store::now(),
    };
    sqlx::query(
        "INSERT INTO accounts (id, email, password_hash, created_at) VALUES ($1, $2, $3, $4)",
    )
    .bind(&account.id)
    .bind(&account.email)
    .bind(password_hash)
    .bind(account.created_at)
    .execute(&mut *connection)
    .await
    .map_err(|e| {
        if store::is_unique_violation(&e) {
            Error::Conflict(format!(
                "an account with the e-mail address {} already exists; log in instead",
                account.email
            ))
        } else {
            e.into()
        }
    })?;
    Ok(account)
}

/// Signs up from the client `address`, within `limiter`'s sign-ups per address.
pub async fn sign_up_from(
    store: &Store,
    limiter: &LoginLimiter,
    address: &str,
    email: Email,
    password: Password,
) -> Result<Account> {
    limiter
        .begin_sign_up(address, Instant::now())
        .map_err(|wait| Error::RateLimited {
            reason: "too many sign-ups from this address".into(),
            retry_after: wait,
        })?;
    sign_up(store, email, password).await
}

/// Logs in from the client `address`, within `limiter`'s failed log-ins per account and per
/// address: past them, no password is checked at all (429) until the window has room again.
pub async fn log_in_from(
    store: &Store,
    limiter: &LoginLimiter,
    address: &str,
    email: &str,
    password: &str,
) -> Result<Account> {
    let attempt = limiter
        .begin_log_in(email, address, Instant::now())
        .map_err(|wait| Error::RateLimited {
            reason: "too many failed log-ins for this account or from this address".into(),
            retry_after: wait,
        })?;
    match log_in(store, email, password).await {
        Ok(account) => {
            limiter.succeeded(attempt);
            Ok(account)
        }
        Err(wrong @ Error::Unauthenticated(_)) => Err(wrong),
        Err(other) => {
            limiter.cancel(attempt);
            Err(other)
        }
    }
}

/// Checks an e-mail address and password; the same error for an unknown address and a wrong
/// password, and the same work in both cases, so neither reveals which addresses exist.
pub async fn log_in(store: &Store, email: &str, password: &str) -> Result<Account> {
    let row: Option<(String, String, i64, String)> = sqlx::query_as(
        "SELECT id, email, created_at, password_hash FROM accounts WHERE email = $1",
    )
    .bind(email.trim().to_lowercase())
    .fetch_optional(store.pool())
    .await?;
    let stored_hash = row.as_ref().map(|r| r.3.clone());
    let verified = verify_password(password.to_owned(), stored_hash).await?;
    match row {
        Some((id, email, created_at, _)) if verified => Ok(Account {
            id,
            email,
            created_at,
        }),
        _ => Err(Error::Unauthenticated(
            "wrong e-mail address or password".into(),
        )),
    }
}

/// Changes an account's password and ends every session of the account (the caller gets a
/// new one). The current password is checked within the log-in limits, so a stolen session
/// cannot guess it quickly; a wrong one is refused with 403.
pub async fn change_password(
    store: &Store,
    limiter: &LoginLimiter,
    address: &str,
    account_id: &str,
    current: &str,
    new: &str,
) -> Result<()> {
    let account = find(store, account_id)
        .await?
        .ok_or(Error::NotFound("account"))?;
    let new = Password::parse(new, &Email(account.email.clone()))?;
    log_in_from(store, limiter, address, &account.email, current)
        .await
        .map_err(|e| match e {
            Error::Unauthenticated(_) => {
                Error::Forbidden("the current password is not right".into())
            }
            other => other,
        })?;
    let hash = hash_password(new).await?;
    let mut tx = store.pool().begin().await?;
    set_password_hash(&mut tx, account_id, &hash).await?;
    tx.commit().await?;
    tracing::info!(account = %account_id, "password changed; every session ended");
    Ok(())
}

/// Stores a new password hash inside `tx`, ending every session of the account and every
/// password reset link it has open.
pub(crate) async fn set_password_hash(
    tx: &mut sqlx::AnyConnection,
    account_id: &str,
    hash: &str,
) -> Result<()> {
    sqlx::query("UPDATE accounts SET password_hash = $1 WHERE id = $2")
        .bind(hash)
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    sqlx::query("DELETE FROM password_resets WHERE account_id = $1")
        .bind(account_id)
        .execute(&mut *tx)
        .await?;
    crate::sessions::revoke_all(tx, account_id).await
}

/// Looks an account up by its address.
pub async fn find_by_email(store: &Store, email: &Email) -> Result<Option<Account>> {
    Ok(
        sqlx::query_as("SELECT id, email, created_at FROM accounts WHERE email = $1")
            .bind(email.as_str())
            .fetch_optional(store.pool())
            .await?,
    )
}

/// Looks an account up by id.
pub async fn find(store: &Store, id: &str) -> Result<Option<Account>> {
    Ok(
        sqlx::query_as("SELECT id, email, created_at FROM accounts WHERE id = $1")
            .bind(id)
            .fetch_optional(store.pool())
            .await?,
    )
}

/// Every account's e-mail address, by account id.
pub async fn emails(store: &Store) -> Result<std::collections::HashMap<String, String>> {
    let rows: Vec<(String, String)> = sqlx::query_as("SELECT id, email FROM accounts")
        .fetch_all(store.pool())
        .await?;
    Ok(rows.into_iter().collect())
}

/// Password hashes computed at once: each argon2id run takes ~19 MiB and a core for tens of
/// milliseconds, so a burst of sign-ups or log-ins waits here instead of filling the blocking
/// thread pool; past `PASSWORD_WORK_WAIT` it is answered 503 at once.
static PASSWORD_WORK: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);
/// The longest a sign-up or log-in waits for a password hash to be computed.
const PASSWORD_WORK_WAIT: Duration = Duration::from_secs(2);

/// A permit to run argon2, or 503 when too many are running for too long.
async fn password_work() -> Result<tokio::sync::SemaphorePermit<'static>> {
    match tokio::time::timeout(PASSWORD_WORK_WAIT, PASSWORD_WORK.acquire()).await {
        Ok(Ok(permit)) => Ok(permit),
        _ => Err(Error::Overloaded(
            "too many log-ins and sign-ups at once; try again in a moment".into(),
        )),
    }
}

/// An argon2id hash of `password`, computed within the bound on password work.
pub(crate) async fn hash_password(password: Password) -> Result<String> {
    let _permit = password_work().await?;
    tokio::task::spawn_blocking(move || {
        let salt = SaltString::generate(&mut OsRng);
        Argon2::default()
            .hash_password(password.0.as_bytes(), &salt)
            .map(|h| h.to_string())
            .map_err(|e| Error::internal("could not hash a password", e.to_string()))
    })
    .await
    .map_err(|e| Error::internal("password hashing task failed", e))?
}

/// A valid argon2id hash of a random password, checked when the account does not exist so
/// that log-in takes as long either way.
const DUMMY_HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c29tZXNhbHRzb21lc2FsdA$JrFQ8fCxWs6BVmn3L/6rZc+1vlRc2CEUBCdu2Rv3ZMs";

async fn verify_password(password: String, stored: Option<String>) -> Result<bool> {
    let _permit = password_work().await?;
    tokio::task::spawn_blocking(move || {
        let known = stored.is_some();
        let hash_text = stored.unwrap_or_else(|| DUMMY_HASH.to_owned());
        let Ok(hash) = PasswordHash::new(&hash_text) else {
            return false;
        };
        let ok = Argon2::default()
            .verify_password(password.as_bytes(), &hash)
            .is_ok();
        known && ok
    })
    .await
    .map_err(|e| Error::internal("password verification task failed", e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn e_mail_addresses_are_normalised_and_checked() {
        assert_eq!(
            Email::parse(" Ada@Example.COM ").unwrap().as_str(),
            "ada@example.com"
        );
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@example",
            "a b@example.com",
            "ada@@x.io",
            "ada@.x.io",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad:?} should be rejected");
        }
    }

    #[test]
    fn passwords_must_be_long_enough_and_not_the_address() {
        let email = Email::parse("ada@example.com").unwrap();
        assert!(Password::parse("short", &email).is_err());
        assert!(Password::parse(&"x".repeat(129), &email).is_err());
        assert!(Password::parse("ada@example.com", &email).is_err());
        assert!(Password::parse("correct horse battery", &email).is_ok());
    }

    #[test]
    fn the_dummy_hash_is_a_valid_argon2_hash() {
        assert!(PasswordHash::new(DUMMY_HASH).is_ok());
    }
}
