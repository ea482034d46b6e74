//! What the registry stores, per cluster: schemas by id, subjects' versions, and settings.
//! SQL only; the rules are in [`super::evolution`].

use serde::{Deserialize, Serialize};
use sqlx::AnyPool;

use super::settings::Setting;
use crate::{Result, store};

/// A reference from a schema to another, by the name the referring schema uses for it.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    /// The name the referring schema uses (an Avro full name, a JSON `$ref`).
    pub name: String,
    /// The subject holding the referenced schema.
    pub subject: String,
    /// Its version in that subject (`-1` in a request means the latest).
    pub version: i64,
}

/// A stored schema.
#[derive(Clone, Debug)]
pub struct SchemaRecord {
    /// Its id, global in the cluster.
    pub id: i64,
    /// `AVRO` or `JSON`.
    pub kind: String,
    /// Its text as stored.
    pub text: String,
    /// What it refers to.
    pub references: Vec<Reference>,
}

/// One version of a subject.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct VersionRecord {
    /// The subject.
    pub subject: String,
    /// Its number, from 1.
    pub version: i64,
    /// The schema it registers.
    pub schema_id: i64,
    /// Soft-deleted.
    pub deleted: bool,
}

/// A version to insert.
#[derive(Debug)]
pub struct NewVersion<'a> {
    /// The subject.
    pub subject: &'a str,
    /// `AVRO` or `JSON`.
    pub kind: &'a str,
    /// The schema text as stored.
    pub text: &'a str,
    /// What identifies the schema (see the migration).
    pub fingerprint: &'a str,
    /// Its references, versions resolved.
    pub references: &'a [Reference],
    /// An id chosen by the caller (IMPORT mode); otherwise the schema's existing id or the next.
    pub id: Option<i64>,
    /// A version chosen by the caller (IMPORT mode); otherwise the subject's next.
    pub version: Option<i64>,
}

/// What [`insert`] did.
#[derive(Debug, PartialEq, Eq)]
pub enum Inserted {
    /// Registered with this id and version.
    Registered { id: i64, version: i64 },
    /// The id asked for holds another schema.
    IdTaken,
    /// The version asked for exists.
    VersionTaken,
    /// The schema exists with another id than the one asked for.
    SchemaHasId(i64),
}

/// A schema by id, whether or not a version still uses it.
pub async fn schema(pool: &AnyPool, cluster: &str, id: i64) -> Result<Option<SchemaRecord>> {
    let row: Option<(String, String)> = sqlx::query_as(
        "SELECT schema_type, schema_text FROM registry_schemas WHERE cluster_id = $1 AND id = $2",
    )
    .bind(cluster)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    let Some((kind, text)) = row else {
        return Ok(None);
    };
    let references = sqlx::query_as::<_, (String, String, i64)>(
        "SELECT name, subject, version FROM registry_references WHERE cluster_id = $1 AND schema_id = $2 ORDER BY position",
    )
    .bind(cluster)
    .bind(id)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|(name, subject, version)| Reference { name, subject, version })
    .collect();
    Ok(Some(SchemaRecord {
        id,
        kind,
        text,
        references,
    }))
}

fn version_records(rows: Vec<(String, i64, i64, i64)>) -> Vec<VersionRecord> {
    rows.into_iter()
        .map(|(subject, version, schema_id, deleted)| VersionRecord {
            subject,
            version,
            schema_id,
            deleted: deleted != 0,
        })
        .collect()
}

/// True when some version (soft-deleted or not) registers the schema.
pub async fn schema_in_use(pool: &AnyPool, cluster: &str, id: i64) -> Result<bool> {
    let row: Option<(i64,)> = sqlx::query_as(
        "SELECT schema_id FROM registry_versions WHERE cluster_id = $1 AND schema_id = $2 LIMIT 1",
    )
    .bind(cluster)
    .bind(id)
    .fetch_optional(pool)
    .await?;
    Ok(row.is_some())
}

/// Every version of a subject, soft-deleted ones included, oldest first.
pub async fn versions(pool: &AnyPool, cluster: &str, subject: &str) -> Result<Vec<VersionRecord>> {
    let rows = sqlx::query_as(
        "SELECT subject, version, schema_id, deleted FROM registry_versions \
         WHERE cluster_id = $1 AND subject = $2 ORDER BY version",
    )
    .bind(cluster)
    .bind(subject)
    .fetch_all(pool)
    .await?;
    Ok(version_records(rows))
}

/// Every version that registers a schema, soft-deleted ones included.
pub async fn versions_of_schema(
    pool: &AnyPool,
    cluster: &str,
    id: i64,
) -> Result<Vec<VersionRecord>> {
    let rows = sqlx::query_as(
        "SELECT subject, version, schema_id, deleted FROM registry_versions \
         WHERE cluster_id = $1 AND schema_id = $2 ORDER BY subject, version",
    )
    .bind(cluster)
    .bind(id)
    .fetch_all(pool)
    .await?;
    Ok(version_records(rows))
}

/// The subject's version registering the schema with this fingerprint, if any.
pub async fn version_with_fingerprint(
    pool: &AnyPool,
    cluster: &str,
    subject: &str,
    fingerprint: &str,
) -> Result<Option<VersionRecord>> {
    let rows = sqlx::query_as(
        "SELECT v.subject, v.version, v.schema_id, v.deleted FROM registry_versions v \
         JOIN registry_schemas s ON s.cluster_id = v.cluster_id AND s.id = v.schema_id \
         WHERE v.cluster_id = $1 AND v.subject = $2 AND s.fingerprint = $3 ORDER BY v.deleted, v.version DESC",
    )
    .bind(cluster)
    .bind(subject)
    .bind(fingerprint)
    .fetch_all(pool)
    .await?;
    Ok(version_records(rows).into_iter().next())
}

/// Subjects and whether each has a version not soft-deleted, by name.
pub async fn subjects(pool: &AnyPool, cluster: &str) -> Result<Vec<(String, bool)>> {
    let rows: Vec<(String, i64)> = sqlx::query_as(
        "SELECT subject, MIN(deleted) FROM registry_versions WHERE cluster_id = $1 GROUP BY subject ORDER BY subject",
    )
    .bind(cluster)
    .fetch_all(pool)
    .await?;
    Ok(rows
        .into_iter()
        .map(|(subject, deleted)| (subject, deleted == 0))
        .collect())
}

/// Ids of the schemas with a version not soft-deleted that refer to `subject` `version`.
pub async fn referenced_by(
    pool: &AnyPool,
    cluster: &str,
    subject: &str,
    version: i64,
) -> Result<Vec<i64>> {
    let rows: Vec<(i64,)> = sqlx::query_as(
        "SELECT DISTINCT r.schema_id FROM registry_references r \
         WHERE r.cluster_id = $1 AND r.subject = $2 AND r.version = $3 AND EXISTS ( \
           SELECT 1 FROM registry_versions v WHERE v.cluster_id = r.cluster_id AND v.schema_id = r.schema_id AND v.deleted = 0) \
         ORDER BY r.schema_id",
    )
    .bind(cluster)
    .bind(subject)
    .bind(version)
    .fetch_all(pool)
    .await?;
    Ok(rows.into_iter().map(|(id,)| id).collect())
}

/// How many versions (soft-deleted ones included) the cluster holds.
pub async fn version_count(pool: &AnyPool, cluster: &str) -> Result<i64> {
    let (count,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM registry_versions WHERE cluster_id = $1")
            .bind(cluster)
            .fetch_one(pool)
            .await?;
    Ok(count)
}

/// Registers a version, reusing the schema's id when the same schema exists, or answers the
/// subject's live version of it.
pub async fn insert(pool: &AnyPool, cluster: &str, new: &NewVersion<'_>) -> Result<Inserted> {
    let mut tx = pool.begin().await?;
    // Registrations in one cluster's registry take turns: producers that start together and
    // all register the same new schema get one version and one id, not one each.
    store::lock_owner(&mut tx, store::Owner::Cluster(cluster)).await?;
    let registered: Option<(i64, i64)> = sqlx::query_as(
        "SELECT v.schema_id, v.version FROM registry_versions v \
         JOIN registry_schemas s ON s.cluster_id = v.cluster_id AND s.id = v.schema_id \
         WHERE v.cluster_id = $1 AND v.subject = $2 AND s.fingerprint = $3 AND v.deleted = 0",
    )
    .bind(cluster)
    .bind(new.subject)
    .bind(new.fingerprint)
    .fetch_optional(&mut *tx)
    .await?;
    if let Some((id, version)) = registered
        && new.id.is_none_or(|wanted| wanted == id)
    {
        return Ok(Inserted::Registered { id, version });
    }
    let existing: Option<(i64,)> = sqlx::query_as(
        "SELECT id FROM registry_schemas WHERE cluster_id = $1 AND fingerprint = $2",
    )
    .bind(cluster)
    .bind(new.fingerprint)
    .fetch_optional(&mut *tx)
    .await?;
    let id = match (existing, new.id) {
        (Some((id,)), Some(wanted)) if id != wanted => return Ok(Inserted::SchemaHasId(id)),
        (Some((id,)), _) => id,
        (None, wanted) => {
            let id = match wanted {
                Some(wanted) => {
                    let taken: Option<(i64,)> = sqlx::query_as(
                        "SELECT id FROM registry_schemas WHERE cluster_id = $1 AND id = $2",
                    )
                    .bind(cluster)
                    .bind(wanted)
                    .fetch_optional(&mut *tx)
                    .await?;
                    if taken.is_some() {
                        return Ok(Inserted::IdTaken);
                    }
                    wanted
                }
                None => {
                    let (next,): (i64,) = sqlx::query_as(
                        "SELECT COALESCE(MAX(id), 0) + 1 FROM registry_schemas WHERE cluster_id = $1",
                    )
                    .bind(cluster)
                    .fetch_one(&mut *tx)
                    .await?;
                    next
                }
            };
            sqlx::query(
                "INSERT INTO registry_schemas (cluster_id, id, schema_type, schema_text, fingerprint, created_at) \
                 VALUES ($1, $2, $3, $4, $5, $6)",
            )
            .bind(cluster)
            .bind(id)
            .bind(new.kind)
            .bind(new.text)
            .bind(new.fingerprint)
            .bind(store::now())
            .execute(&mut *tx)
            .await?;
            for (position, reference) in new.references.iter().enumerate() {
                sqlx::query(
                    "INSERT INTO registry_references (cluster_id, schema_id, position, name, subject, version) \
                     VALUES ($1, $2, $3, $4, $5, $6)",
                )
                .bind(cluster)
                .bind(id)
                .bind(position as i64)
                .bind(&reference.name)
                .bind(&reference.subject)
                .bind(reference.version)
                .execute(&mut *tx)
                .await?;
            }
            id
        }
    };
    let version = match new.version {
        Some(wanted) => {
            let taken: Option<(i64,)> = sqlx::query_as(
                "SELECT version FROM registry_versions WHERE cluster_id = $1 AND subject = $2 AND version = $3",
            )
            .bind(cluster)
            .bind(new.subject)
            .bind(wanted)
            .fetch_optional(&mut *tx)
            .await?;
            if taken.is_some() {
                return Ok(Inserted::VersionTaken);
            }
            wanted
        }
        None => {
            let (next,): (i64,) = sqlx::query_as(
                "SELECT COALESCE(MAX(version), 0) + 1 FROM registry_versions WHERE cluster_id = $1 AND subject = $2",
            )
            .bind(cluster)
            .bind(new.subject)
            .fetch_one(&mut *tx)
            .await?;
            next
        }
    };
    sqlx::query(
        "INSERT INTO registry_versions (cluster_id, subject, version, schema_id, deleted, created_at) \
         VALUES ($1, $2, $3, $4, 0, $5)",
    )
    .bind(cluster)
    .bind(new.subject)
    .bind(version)
    .bind(id)
    .bind(store::now())
    .execute(&mut *tx)
    .await?;
    tx.commit().await?;
    Ok(Inserted::Registered { id, version })
}

/// Soft-deletes versions of a subject (`None`: all of them).
pub async fn soft_delete(
    pool: &AnyPool,
    cluster: &str,
    subject: &str,
    version: Option<i64>,
) -> Result<()> {
    sqlx::query(
        "UPDATE registry_versions SET deleted = 1 WHERE cluster_id = $1 AND subject = $2 AND ($3 < 0 OR version = $3)",
    )
    .bind(cluster)
    .bind(subject)
    .bind(version.unwrap_or(-1))
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes versions of a subject for good (`None`: all of them, and the subject's settings).
/// The schemas stay, so their ids are never given to another schema.
pub async fn remove(
    pool: &AnyPool,
    cluster: &str,
    subject: &str,
    version: Option<i64>,
) -> Result<()> {
    let mut tx = pool.begin().await?;
    sqlx::query("DELETE FROM registry_versions WHERE cluster_id = $1 AND subject = $2 AND ($3 < 0 OR version = $3)")
        .bind(cluster)
        .bind(subject)
        .bind(version.unwrap_or(-1))
        .execute(&mut *tx)
        .await?;
    if version.is_none() {
        sqlx::query("DELETE FROM registry_settings WHERE cluster_id = $1 AND subject = $2")
            .bind(cluster)
            .bind(subject)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The column holding a setting.
fn column(which: Setting) -> &'static str {
    match which {
        Setting::Compatibility => "compatibility",
        Setting::Mode => "mode",
    }
}

/// A setting of the registry (`subject` "") or of one subject, if set.
pub async fn setting(
    pool: &AnyPool,
    cluster: &str,
    subject: &str,
    which: Setting,
) -> Result<Option<String>> {
    let column = column(which);
    let row: Option<(Option<String>,)> = sqlx::query_as(&format!(
        "SELECT {column} FROM registry_settings WHERE cluster_id = $1 AND subject = $2"
    ))
    .bind(cluster)
    .bind(subject)
    .fetch_optional(pool)
    .await?;
    Ok(row.and_then(|(value,)| value))
}

/// Sets (or with `None` clears) a setting of the registry (`subject` "") or of one subject.
pub async fn set_setting(
    pool: &AnyPool,
    cluster: &str,
    subject: &str,
    which: Setting,
    value: Option<&str>,
) -> Result<()> {
    let column = column(which);
    sqlx::query(&format!(
        "INSERT INTO registry_settings (cluster_id, subject, {column}) VALUES ($1, $2, $3) \
         ON CONFLICT (cluster_id, subject) DO UPDATE SET {column} = excluded.{column}"
    ))
    .bind(cluster)
    .bind(subject)
    .bind(value)
    .execute(pool)
    .await?;
    Ok(())
}

/// Removes everything the cluster's registry holds (the cluster is being deleted).
pub async fn forget_cluster(tx: &mut sqlx::AnyConnection, cluster: &str) -> Result<()> {
    for table in [
        "registry_versions",
        "registry_references",
        "registry_schemas",
        "registry_settings",
    ] {
        sqlx::query(&format!("DELETE FROM {table} WHERE cluster_id = $1"))
            .bind(cluster)
            .execute(&mut *tx)
            .await?;
    }
    Ok(())
}
