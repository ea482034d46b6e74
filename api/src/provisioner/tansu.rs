//! Everything specific to the local engine, the tansu broker (0.6, SQLite storage).
//!
//! tansu does most of Kafka well, but some admin calls are missing or broken (see
//! `shared/notes/local-brokers.md`): DeleteTopics deletes *every* topic of the broker,
//! CreatePartitions and AlterConfigs are not implemented, and SCRAM users can only be added
//! over the protocol while authentication is off. So these changes are written straight into
//! the broker's SQLite file, with the same statements tansu itself uses (minus its
//! delete-every-topic bug), and the broker is never run without authentication:
//! - SCRAM users: an upsert into `scram_credential`, read by tansu at each authentication, so
//!   it is done while the broker runs;
//! - topic deletion, partition growth and configuration changes: done while the broker is
//!   stopped (tansu keeps topic metadata in memory), then the broker is started again.

use std::{
    path::{Path, PathBuf},
    process::Stdio,
    str::FromStr,
    time::Duration,
};

use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::{Digest, Sha512};
use sqlx::{
    Connection, SqliteConnection,
    sqlite::{SqliteConnectOptions, SqliteJournalMode},
};
use tokio::process::{Child, Command};

use crate::{Error, Result};

/// The cluster id given to every tansu broker (its rows in the broker's tables carry it).
pub(super) const CLUSTER: &str = "capstan";
/// Name of the broker's SQLite file inside the cluster's directory.
pub(super) const DB_FILE: &str = "broker.db";
/// SCRAM-SHA-512 in Kafka's `ScramMechanism` numbering.
const SCRAM_SHA_512: i64 = 2;
/// PBKDF2 iterations of stored SCRAM credentials (Kafka's minimum for SHA-512 is 4096).
const SCRAM_ITERATIONS: u32 = 4096;

/// Name of the file, in a broker's directory, holding its process id.
const PID_FILE: &str = "broker.pid";

/// Stops a broker a previous control plane left running on `dir` (it was killed before it
/// could stop its brokers): two brokers must never share one data file.
pub(super) async fn stop_orphan(dir: &Path) {
    let Some(pid) = std::fs::read_to_string(dir.join(PID_FILE))
        .ok()
        .and_then(|text| text.trim().parse::<i32>().ok())
    else {
        return;
    };
    let proc = PathBuf::from(format!("/proc/{pid}"));
    let same_dir = std::fs::read_link(proc.join("cwd"))
        .ok()
        .zip(std::fs::canonicalize(dir).ok())
        .is_some_and(|(cwd, dir)| cwd == dir);
    let is_broker = std::fs::read(proc.join("cmdline"))
        .is_ok_and(|cmdline| String::from_utf8_lossy(&cmdline).contains("broker"));
    if !(same_dir && is_broker) {
        return;
    }
    tracing::warn!(pid, dir = %dir.display(), "stopping a broker left running by a control plane that did not stop cleanly");
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while proc.exists() && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Starts a broker for the cluster directory `dir`, listening on `port` with SASL/SCRAM on.
pub(super) fn spawn(binary: &Path, dir: &Path, port: u16) -> Result<Child> {
    let url = format!("tcp://127.0.0.1:{port}");
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("broker.log"))
        .map_err(|e| {
            Error::internal(
                format!("could not open the broker log in {}", dir.display()),
                e,
            )
        })?;
    let log_err = log
        .try_clone()
        .map_err(|e| Error::internal("could not open the broker log", e))?;
    let child = Command::new(binary)
        .arg("broker")
        .args(["--cluster-id", CLUSTER])
        .args(["--listener-url", &url, "--advertised-listener-url", &url])
        .args(["--storage-engine", &format!("sqlite://{DB_FILE}")])
        .arg("--authentication")
        // tansu resolves the SQLite path and reads `.env` from its working directory.
        .current_dir(dir)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(log_err)
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| {
            Error::Broker(format!(
                "could not start the broker {}: {e}",
                binary.display()
            ))
        })?;
    if let Some(pid) = child.id() {
        // Read back by `stop_orphan` if this control plane dies without stopping the broker.
        std::fs::write(dir.join(PID_FILE), pid.to_string())
            .map_err(|e| Error::internal("could not record the broker's process id", e))?;
    }
    Ok(child)
}

/// Waits until the broker accepts connections on `port`, or fails after `timeout`.
pub(super) async fn wait_listening(child: &mut Child, port: u16, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .is_ok()
        {
            return Ok(());
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(Error::Broker(format!(
                "the broker exited while starting ({status}); see its broker.log"
            )));
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Broker(format!(
                "the broker did not listen on port {port} within {timeout:?}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Stops a broker: SIGTERM, then SIGKILL if it has not exited after `grace`.
pub(super) async fn stop(child: &mut Child, grace: Duration) {
    if let Some(pid) = child.id() {
        let pid = nix::unistd::Pid::from_raw(pid as i32);
        let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGTERM);
        if tokio::time::timeout(grace, child.wait()).await.is_ok() {
            return;
        }
        tracing::warn!("broker did not stop within {grace:?}; killing it");
    }
    let _ = child.kill().await;
}

/// Opens the broker's SQLite file (which tansu created on its first start).
pub(super) async fn open(dir: &Path) -> Result<SqliteConnection> {
    let path: PathBuf = dir.join(DB_FILE);
    let options = SqliteConnectOptions::from_str("sqlite://")
        .map_err(|e| Error::internal("bad SQLite options", e))?
        .filename(&path)
        .create_if_missing(false)
        .journal_mode(SqliteJournalMode::Wal)
        .foreign_keys(true)
        .busy_timeout(Duration::from_secs(10));
    SqliteConnection::connect_with(&options).await.map_err(|e| {
        Error::internal(
            format!("could not open the broker database {}", path.display()),
            e,
        )
    })
}

/// Waits until the broker has registered its cluster row (it does so as it starts).
pub(super) async fn wait_registered(db: &mut SqliteConnection, timeout: Duration) -> Result<()> {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        let found: Result<Option<(i64,)>, _> =
            sqlx::query_as("SELECT id FROM cluster WHERE name = $1")
                .bind(CLUSTER)
                .fetch_optional(&mut *db)
                .await;
        if let Ok(Some(_)) = found {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(Error::Broker(
                "the broker did not initialise its storage in time".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Creates or replaces a SCRAM-SHA-512 user, computing the stored and server keys as
/// RFC 5802 (and tansu's AlterUserScramCredentials) does.
pub(super) async fn upsert_user(
    db: &mut SqliteConnection,
    username: &str,
    password: &str,
) -> Result<()> {
    let mut salt = [0u8; 32];
    rand::rngs::OsRng.fill_bytes(&mut salt);
    let mut salted = [0u8; 64];
    pbkdf2::pbkdf2_hmac::<Sha512>(password.as_bytes(), &salt, SCRAM_ITERATIONS, &mut salted);
    let client_key = hmac_sha512(&salted, b"Client Key")?;
    let server_key = hmac_sha512(&salted, b"Server Key")?;
    let stored_key = Sha512::digest(&client_key).to_vec();
    sqlx::query(
        "INSERT INTO scram_credential (cluster, username, mechanism, salt, iterations, stored_key, server_key) \
         SELECT c.id, $2, $3, $4, $5, $6, $7 FROM cluster c WHERE c.name = $1 \
         ON CONFLICT (cluster, username, mechanism) DO UPDATE SET salt = excluded.salt, \
         iterations = excluded.iterations, stored_key = excluded.stored_key, \
         server_key = excluded.server_key, last_updated = current_timestamp",
    )
    .bind(CLUSTER)
    .bind(username)
    .bind(SCRAM_SHA_512)
    .bind(salt.to_vec())
    .bind(i64::from(SCRAM_ITERATIONS))
    .bind(stored_key)
    .bind(server_key)
    .execute(&mut *db)
    .await
    .map_err(|e| Error::internal("could not store a SCRAM user in the broker", e))?;
    Ok(())
}

/// Removes every user but `keep` (every mechanism): a broker that only the platform reaches.
pub(super) async fn delete_users_except(db: &mut SqliteConnection, keep: &str) -> Result<()> {
    sqlx::query(
        "DELETE FROM scram_credential WHERE username <> $2 AND cluster IN (SELECT id FROM cluster WHERE name = $1)",
    )
    .bind(CLUSTER)
    .bind(keep)
    .execute(&mut *db)
    .await
    .map_err(|e| Error::internal("could not remove SCRAM users from the broker", e))?;
    Ok(())
}

fn hmac_sha512(key: &[u8], data: &[u8]) -> Result<Vec<u8>> {
    let mut mac = Hmac::<Sha512>::new_from_slice(key)
        .map_err(|e| Error::internal("HMAC key", e.to_string()))?;
    mac.update(data);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// Deletes exactly one topic with everything that hangs off it. Broker must be stopped.
///
/// The statements are tansu's own `*_delete_by_topic.sql`, restricted to this topic's id;
/// tansu's final `topic_delete_by.sql` would delete every topic of the cluster.
pub(super) async fn delete_topic(db: &mut SqliteConnection, name: &str) -> Result<()> {
    let failed = |e: sqlx::Error| {
        Error::internal(format!("could not delete topic {name} from the broker"), e)
    };
    let mut tx = db.begin().await.map_err(failed)?;
    let topic: Option<(i64,)> = sqlx::query_as(
        "SELECT t.id FROM topic t JOIN cluster c ON c.id = t.cluster WHERE c.name = $1 AND t.name = $2",
    )
    .bind(CLUSTER)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(failed)?;
    let Some((topic_id,)) = topic else {
        return Ok(());
    };
    const PARTITIONS: &str = "(SELECT id FROM topition WHERE topic = $1)";
    let statements = [
        format!("DELETE FROM consumer_offset WHERE topition IN {PARTITIONS}"),
        "DELETE FROM topic_configuration WHERE topic = $1".to_owned(),
        format!("DELETE FROM watermark WHERE topition IN {PARTITIONS}"),
        format!("DELETE FROM header WHERE topition IN {PARTITIONS}"),
        format!("DELETE FROM record WHERE topition IN {PARTITIONS}"),
        format!("DELETE FROM txn_offset_commit_tp WHERE topition IN {PARTITIONS}"),
        format!(
            "DELETE FROM txn_produce_offset WHERE txn_topition IN \
             (SELECT id FROM txn_topition WHERE topition IN {PARTITIONS})"
        ),
        format!("DELETE FROM txn_topition WHERE topition IN {PARTITIONS}"),
        format!("DELETE FROM producer_detail WHERE topition IN {PARTITIONS}"),
        "DELETE FROM topition WHERE topic = $1".to_owned(),
        "DELETE FROM topic WHERE id = $1".to_owned(),
    ];
    for statement in &statements {
        sqlx::query(statement)
            .bind(topic_id)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// True when a topic, consumer group or transactional id's name starts with `prefix`.
pub(super) async fn has_prefixed(db: &mut SqliteConnection, prefix: &str) -> Result<bool> {
    let (count,): (i64,) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM topic WHERE substr(name, 1, length($1)) = $1) \
         + (SELECT COUNT(*) FROM consumer_group WHERE substr(name, 1, length($1)) = $1) \
         + (SELECT COUNT(*) FROM txn WHERE substr(name, 1, length($1)) = $1)",
    )
    .bind(prefix)
    .fetch_one(&mut *db)
    .await
    .map_err(|e| Error::internal("could not read the pool's names", e))?;
    Ok(count > 0)
}

/// Every shared cluster's prefix that has a topic, consumer group or transactional id on this
/// broker.
pub(super) async fn prefixes(db: &mut SqliteConnection) -> Result<Vec<String>> {
    let heads: Vec<(String,)> = sqlx::query_as(
        "SELECT DISTINCT substr(name, 1, $1) FROM \
         (SELECT name FROM topic UNION ALL SELECT name FROM consumer_group UNION ALL SELECT name FROM txn)",
    )
    .bind(crate::clusters::PREFIX_LEN as i64)
    .fetch_all(&mut *db)
    .await
    .map_err(|e| Error::internal("could not read the pool's names", e))?;
    Ok(heads
        .into_iter()
        .map(|(head,)| head)
        .filter(|head| crate::clusters::is_prefix(head))
        .collect())
}

/// Deletes every topic, consumer group and transactional id whose name starts with `prefix`
/// (a shared cluster's), with their data, and nothing else. Broker must be stopped.
pub(super) async fn delete_prefixed(db: &mut SqliteConnection, prefix: &str) -> Result<()> {
    let failed =
        |e: sqlx::Error| Error::internal(format!("could not delete the names under {prefix}"), e);
    if prefix.is_empty() {
        return Err(Error::internal(
            "refusing to delete every name of a broker",
            "empty prefix",
        ));
    }
    let topics: Vec<(String,)> = sqlx::query_as(
        "SELECT t.name FROM topic t JOIN cluster c ON c.id = t.cluster \
         WHERE c.name = $1 AND substr(t.name, 1, length($2)) = $2",
    )
    .bind(CLUSTER)
    .bind(prefix)
    .fetch_all(&mut *db)
    .await
    .map_err(failed)?;
    for (topic,) in topics {
        delete_topic(db, &topic).await?;
    }
    // Groups and transactions: their offsets, details and staged commits go with them
    // (ON DELETE CASCADE, with foreign keys on), except a transaction's details, which tansu
    // does not cascade.
    sqlx::query(
        "DELETE FROM txn_detail WHERE \"transaction\" IN (SELECT t.id FROM txn t JOIN cluster c \
         ON c.id = t.cluster WHERE c.name = $1 AND substr(t.name, 1, length($2)) = $2)",
    )
    .bind(CLUSTER)
    .bind(prefix)
    .execute(&mut *db)
    .await
    .map_err(failed)?;
    for table in ["consumer_group", "txn"] {
        sqlx::query(&format!(
            "DELETE FROM {table} WHERE substr(name, 1, length($2)) = $2 \
             AND cluster IN (SELECT id FROM cluster WHERE name = $1)"
        ))
        .bind(CLUSTER)
        .bind(prefix)
        .execute(&mut *db)
        .await
        .map_err(failed)?;
    }
    Ok(())
}

/// Grows a topic to `partitions` partitions (new partitions start empty). Broker must be stopped.
pub(super) async fn grow_partitions(
    db: &mut SqliteConnection,
    name: &str,
    partitions: i32,
) -> Result<()> {
    let failed =
        |e: sqlx::Error| Error::internal(format!("could not add partitions to topic {name}"), e);
    let mut tx = db.begin().await.map_err(failed)?;
    let topic: Option<(i64, i64)> = sqlx::query_as(
        "SELECT t.id, t.partitions FROM topic t JOIN cluster c ON c.id = t.cluster WHERE c.name = $1 AND t.name = $2",
    )
    .bind(CLUSTER)
    .bind(name)
    .fetch_optional(&mut *tx)
    .await
    .map_err(failed)?;
    let Some((topic_id, current)) = topic else {
        return Err(Error::Broker(format!("the broker has no topic {name}")));
    };
    for partition in current..i64::from(partitions) {
        sqlx::query("INSERT INTO topition (topic, partition) VALUES ($1, $2)")
            .bind(topic_id)
            .bind(partition)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
        sqlx::query("INSERT INTO watermark (topition) SELECT id FROM topition WHERE topic = $1 AND partition = $2")
            .bind(topic_id)
            .bind(partition)
            .execute(&mut *tx)
            .await
            .map_err(failed)?;
    }
    sqlx::query("UPDATE topic SET partitions = $2 WHERE id = $1 AND partitions < $2")
        .bind(topic_id)
        .bind(i64::from(partitions))
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    tx.commit().await.map_err(failed)
}

/// Sets topic configuration entries. Broker must be stopped.
pub(super) async fn set_topic_configs(
    db: &mut SqliteConnection,
    name: &str,
    configs: &[(&str, String)],
) -> Result<()> {
    let failed = |e: sqlx::Error| Error::internal(format!("could not configure topic {name}"), e);
    let mut tx = db.begin().await.map_err(failed)?;
    for (key, value) in configs {
        sqlx::query(
            "INSERT INTO topic_configuration (topic, name, value) \
             SELECT t.id, $3, $4 FROM cluster c JOIN topic t ON t.cluster = c.id WHERE c.name = $1 AND t.name = $2 \
             ON CONFLICT (topic, name) DO UPDATE SET value = excluded.value, last_updated = current_timestamp",
        )
        .bind(CLUSTER)
        .bind(name)
        .bind(*key)
        .bind(value)
        .execute(&mut *tx)
        .await
        .map_err(failed)?;
    }
    tx.commit().await.map_err(failed)
}

/// Bytes stored per topic: the sizes of the stored keys, values and headers. The local engine
/// has no DescribeLogDirs, and one broker holds the only replica, so this is the total over
/// replicas. (Apache Kafka's log-dir sizes also count batch overhead and indexes.)
pub(super) async fn stored_bytes(
    db: &mut SqliteConnection,
) -> Result<std::collections::BTreeMap<String, i64>> {
    let failed = |e: sqlx::Error| Error::internal("could not measure the broker's stored bytes", e);
    let records: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.name, COALESCE(SUM(COALESCE(LENGTH(r.v), 0) + COALESCE(LENGTH(r.k), 0)), 0) \
         FROM topic t JOIN cluster c ON c.id = t.cluster JOIN topition tp ON tp.topic = t.id \
         LEFT JOIN record r ON r.topition = tp.id WHERE c.name = $1 GROUP BY t.name",
    )
    .bind(CLUSTER)
    .fetch_all(&mut *db)
    .await
    .map_err(failed)?;
    let headers: Vec<(String, i64)> = sqlx::query_as(
        "SELECT t.name, COALESCE(SUM(COALESCE(LENGTH(h.v), 0) + COALESCE(LENGTH(h.k), 0)), 0) \
         FROM topic t JOIN cluster c ON c.id = t.cluster JOIN topition tp ON tp.topic = t.id \
         JOIN header h ON h.topition = tp.id WHERE c.name = $1 GROUP BY t.name",
    )
    .bind(CLUSTER)
    .fetch_all(&mut *db)
    .await
    .map_err(failed)?;
    let mut sizes: std::collections::BTreeMap<String, i64> = records.into_iter().collect();
    for (topic, bytes) in headers {
        *sizes.entry(topic).or_default() += bytes;
    }
    Ok(sizes)
}
