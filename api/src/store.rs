//! The database: one pool over SQLite (embedded default) or PostgreSQL, chosen by URL scheme.
//!
//! All SQL of the crate is written once, with `$1` placeholders and only TEXT/BIGINT columns,
//! so it runs unchanged on both backends through sqlx's `Any` driver.

use std::str::FromStr;

use sqlx::{
    AnyPool,
    any::{AnyPoolOptions, install_default_drivers},
    migrate::Migrator,
    sqlite::SqliteConnectOptions,
};

use crate::{Error, Result};

static MIGRATOR: Migrator = sqlx::migrate!("../migrations");

/// A handle on the database; cheap to clone.
#[derive(Clone, Debug)]
pub struct Store {
    pool: AnyPool,
}

/// Which database engine a URL names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Backend {
    /// An SQLite file (the embedded default).
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

impl Store {
    /// Connects to `url` (`sqlite://path` or `postgres://…`), creating an SQLite file if needed.
    /// Migrations are not applied; call [`Store::migrate`].
    pub async fn connect(url: &str) -> Result<Self> {
        install_default_drivers();
        let backend = if url.starts_with("sqlite:") {
            Backend::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Backend::Postgres
        } else {
            return Err(Error::Invalid(format!(
                "unsupported database URL {url:?}: use sqlite://PATH or postgres://USER@HOST/DB"
            )));
        };
        let url = match backend {
            Backend::Sqlite => sqlite_url(url)?,
            Backend::Postgres => url.to_owned(),
        };
        let max_connections = match backend {
            // SQLite has one writer; a small pool avoids needless lock contention.
            Backend::Sqlite => 4,
            Backend::Postgres => 16,
        };
        let pool = AnyPoolOptions::new()
            .max_connections(max_connections)
            .acquire_timeout(ACQUIRE_TIMEOUT)
            .connect(&url)
            .await
            .map_err(|e| {
                Error::internal(
                    format!("could not connect to the database at {}", redact(&url)),
                    e,
                )
            })?;
        Ok(Store { pool })
    }

    /// Applies every pending migration.
    pub async fn migrate(&self) -> Result<()> {
        MIGRATOR.run(&self.pool).await?;
        Ok(())
    }

    /// The connection pool, for the SQL of the domain modules.
    pub fn pool(&self) -> &AnyPool {
        &self.pool
    }

    /// Checks that the database answers (used by `/readyz`).
    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    /// Closes every connection.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// How long a request waits for a database connection before it is answered 503: long enough
/// for a burst to be served, short enough that an outage is reported instead of hanging.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

/// Normalises an SQLite URL so the file is created when missing, with WAL and foreign keys on.
fn sqlite_url(url: &str) -> Result<String> {
    // Validate it the way the SQLite driver will parse it, for an early, clear error.
    SqliteConnectOptions::from_str(url)
        .map_err(|e| Error::Invalid(format!("invalid SQLite URL {url:?}: {e}")))?;
    let separator = if url.contains('?') { '&' } else { '?' };
    if url.contains("mode=") {
        Ok(url.to_owned())
    } else {
        Ok(format!("{url}{separator}mode=rwc"))
    }
}

/// Hides a password in a database URL before it is shown or logged.
pub fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.find(':') {
                Some(colon) => format!(
                    "{}{}:***{}",
                    &url[..scheme_end + 3],
                    &credentials[..colon],
                    &url[at..]
                ),
                None => url.to_owned(),
            }
        }
        _ => url.to_owned(),
    }
}

/// The owner whose quota a transaction checks: an account (for its clusters and API keys) or
/// a cluster (for its credentials).
#[derive(Clone, Copy, Debug)]
pub enum Owner<'a> {
    /// An account, by id.
    Account(&'a str),
    /// A cluster, by id.
    Cluster(&'a str),
}

/// Makes `tx` the only transaction working on `owner`'s quota until it ends: a write to the
/// owner's row takes its row lock on PostgreSQL and the database's write lock on SQLite, so a
/// count read after it and the insert that follows cannot interleave with another request's
/// (20 concurrent creations then stop exactly at the limit).
pub async fn lock_owner(tx: &mut sqlx::AnyConnection, owner: Owner<'_>) -> Result<()> {
    let (statement, id) = match owner {
        Owner::Account(id) => ("UPDATE accounts SET id = id WHERE id = $1", id),
        Owner::Cluster(id) => ("UPDATE clusters SET id = id WHERE id = $1", id),
    };
    sqlx::query(statement).bind(id).execute(&mut *tx).await?;
    Ok(())
}

/// True when a database error is a violated UNIQUE constraint (on either backend).
pub fn is_unique_violation(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Database(db) => {
            db.is_unique_violation()
                || db
                    .code()
                    .is_some_and(|c| c == "23505" || c == "2067" || c == "1555")
        }
        _ => false,
    }
}

/// The current time as unix seconds (UTC).
pub fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_secs() as i64)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::redact;

    #[test]
    fn a_password_in_a_database_url_is_hidden() {
        assert_eq!(redact("postgres://u:secret@h/db"), "postgres://u:***@h/db");
        assert_eq!(redact("postgres://u@h/db"), "postgres://u@h/db");
        assert_eq!(redact("sqlite://x.db"), "sqlite://x.db");
    }
}
