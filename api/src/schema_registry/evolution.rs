//! The registry's rules: registering a version (same schema, same id; compatibility with the
//! subject's earlier versions; modes), looking one up, and deleting.

use serde::Deserialize;
use sha2::{Digest, Sha256};
use sqlx::AnyPool;

use super::{
    RegistryError, RegistryResult,
    catalog::{self, Inserted, NewVersion, Reference, SchemaRecord, VersionRecord},
    formats::{self, Resolved, SchemaType},
    settings::{Compatibility, Mode, Setting, VersionSpec},
};

/// The most versions (soft-deleted ones included) one cluster's registry holds.
pub const MAX_VERSIONS_PER_CLUSTER: i64 = 10_000;
/// The longest subject name, in characters.
pub const MAX_SUBJECT_CHARS: usize = 255;
/// How deep references may nest, and how many one schema may need in all.
const MAX_REFERENCE_DEPTH: usize = 16;
const MAX_REFERENCES: usize = 256;

/// A schema as a request sends it (`POST /subjects/{subject}/versions`, lookups and
/// compatibility checks). Fields Confluent added for data contracts (`metadata`, `ruleSet`)
/// are accepted and ignored.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SchemaRequest {
    /// The schema's text.
    pub schema: String,
    /// `AVRO` (when absent) or `JSON`.
    pub schema_type: Option<String>,
    /// The schemas it refers to.
    #[serde(default)]
    pub references: Vec<Reference>,
    /// The id to register it with (IMPORT mode only).
    pub id: Option<i64>,
    /// The version to register it as (IMPORT mode only).
    pub version: Option<i64>,
}

/// One cluster's registry.
#[derive(Clone, Copy, Debug)]
pub struct Registry<'a> {
    pool: &'a AnyPool,
    cluster: &'a str,
}

/// A schema request made ready: parsed, stored form, references resolved.
struct Prepared {
    resolved: Resolved,
    references: Vec<Reference>,
    fingerprint: String,
}

impl<'a> Registry<'a> {
    /// The registry of `cluster`.
    pub fn new(pool: &'a AnyPool, cluster: &'a str) -> Self {
        Registry { pool, cluster }
    }

    /// The compatibility level in force for `subject` (its own, else the registry's).
    pub async fn compatibility(&self, subject: Option<&str>) -> RegistryResult<Compatibility> {
        Compatibility::parse(
            self.setting_in_force(Setting::Compatibility, subject)
                .await?,
        )
    }

    /// The mode in force for `subject` (its own, else the registry's).
    pub async fn mode(&self, subject: Option<&str>) -> RegistryResult<Mode> {
        Mode::parse(self.setting_in_force(Setting::Mode, subject).await?)
    }

    /// A setting in force for `subject`: its own, else the registry's, else the default.
    pub async fn setting_in_force(
        &self,
        which: Setting,
        subject: Option<&str>,
    ) -> RegistryResult<&'static str> {
        for scope in subject.into_iter().chain([""]) {
            if let Some(value) = catalog::setting(self.pool, self.cluster, scope, which).await? {
                return which.validated(&value);
            }
        }
        Ok(which.default_value())
    }

    /// A subject's versions; `deleted` includes soft-deleted ones. 40401 when there are none.
    pub async fn versions(
        &self,
        subject: &str,
        deleted: bool,
    ) -> RegistryResult<Vec<VersionRecord>> {
        let versions: Vec<_> = catalog::versions(self.pool, self.cluster, subject)
            .await?
            .into_iter()
            .filter(|v| deleted || !v.deleted)
            .collect();
        if versions.is_empty() {
            return Err(RegistryError::subject_not_found(subject));
        }
        Ok(versions)
    }

    /// A subject's versions not soft-deleted, oldest first; none for an unknown subject.
    async fn live_versions(&self, subject: &str) -> RegistryResult<Vec<VersionRecord>> {
        let all = catalog::versions(self.pool, self.cluster, subject).await?;
        Ok(all.into_iter().filter(|v| !v.deleted).collect())
    }

    /// One version of a subject.
    pub async fn version(
        &self,
        subject: &str,
        spec: VersionSpec,
        deleted: bool,
    ) -> RegistryResult<VersionRecord> {
        let versions = self.versions(subject, deleted).await?;
        match spec {
            VersionSpec::Latest => versions.into_iter().last(),
            VersionSpec::Number(n) => versions.into_iter().find(|v| v.version == n),
        }
        .ok_or_else(|| match spec {
            VersionSpec::Number(n) => RegistryError::version_not_found(n),
            VersionSpec::Latest => RegistryError::version_not_found(-1),
        })
    }

    /// A schema by id, 40403 unless some version (soft-deleted or not) registers it.
    pub async fn schema(&self, id: i64) -> RegistryResult<SchemaRecord> {
        if !catalog::schema_in_use(self.pool, self.cluster, id).await? {
            return Err(RegistryError::schema_not_found());
        }
        self.schema_of(id).await
    }

    /// The versions registering a schema (`deleted` includes soft-deleted ones); 40403 unless
    /// some version, soft-deleted or not, registers it.
    pub async fn versions_of_schema(
        &self,
        id: i64,
        deleted: bool,
    ) -> RegistryResult<Vec<VersionRecord>> {
        let all = catalog::versions_of_schema(self.pool, self.cluster, id).await?;
        if all.is_empty() {
            return Err(RegistryError::schema_not_found());
        }
        Ok(all.into_iter().filter(|v| deleted || !v.deleted).collect())
    }

    /// The schema a version registers (which is in use by that version).
    pub async fn schema_of(&self, id: i64) -> RegistryResult<SchemaRecord> {
        catalog::schema(self.pool, self.cluster, id)
            .await?
            .ok_or_else(RegistryError::schema_not_found)
    }

    /// Registers `request` under `subject`, answering the schema's id: the existing version's
    /// when the subject already has this schema, the schema's id when another subject has it.
    pub async fn register(
        &self,
        subject: &str,
        request: SchemaRequest,
        normalize: bool,
    ) -> RegistryResult<i64> {
        check_subject(subject)?;
        let mode = self.mode(Some(subject)).await?;
        if mode == Mode::ReadOnly {
            return Err(RegistryError::not_permitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        let explicit = request.id.is_some() || request.version.is_some();
        if explicit && mode != Mode::Import {
            return Err(RegistryError::not_permitted(
                "an explicit id or version may only be given in IMPORT mode (PUT /mode {\"mode\":\"IMPORT\"})",
            ));
        }
        let prepared = self.prepare(&request, normalize, true).await?;
        if let Some(existing) = catalog::version_with_fingerprint(
            self.pool,
            self.cluster,
            subject,
            &prepared.fingerprint,
        )
        .await?
            && !existing.deleted
            && request.id.is_none_or(|id| id == existing.schema_id)
        {
            return Ok(existing.schema_id);
        }
        if mode != Mode::Import {
            let level = self.compatibility(Some(subject)).await?;
            let live = self.live_versions(subject).await?;
            let problems = self.problems(&prepared.resolved, &live, level).await?;
            if !problems.is_empty() {
                return Err(RegistryError::incompatible(
                    subject,
                    level.as_str(),
                    &problems,
                ));
            }
        }
        if catalog::version_count(self.pool, self.cluster).await? >= MAX_VERSIONS_PER_CLUSTER {
            return Err(crate::Error::LimitExceeded(format!(
                "this cluster's schema registry holds {MAX_VERSIONS_PER_CLUSTER} versions, its limit; delete subjects permanently to make room"
            ))
            .into());
        }
        let new = NewVersion {
            subject,
            kind: prepared.resolved.kind.as_str(),
            text: &prepared.resolved.text,
            fingerprint: &prepared.fingerprint,
            references: &prepared.references,
            id: request.id,
            version: request.version,
        };
        match catalog::insert(self.pool, self.cluster, &new).await? {
            Inserted::Registered { id, .. } => Ok(id),
            Inserted::IdTaken => Err(RegistryError::not_permitted(format!(
                "Overwrite new schema with id {} is not permitted: the id holds another schema",
                request.id.unwrap_or_default()
            ))),
            Inserted::VersionTaken => Err(RegistryError::not_permitted(format!(
                "Subject {subject} already has version {}",
                request.version.unwrap_or_default()
            ))),
            Inserted::SchemaHasId(id) => Err(RegistryError::not_permitted(format!(
                "this schema is registered already with id {id}; import it with that id"
            ))),
        }
    }

    /// The version of `subject` that registers the schema of `request`.
    pub async fn lookup(
        &self,
        subject: &str,
        request: &SchemaRequest,
        normalize: bool,
        deleted: bool,
    ) -> RegistryResult<VersionRecord> {
        self.versions(subject, deleted).await?;
        let prepared = self.prepare(request, normalize, false).await?;
        match catalog::version_with_fingerprint(
            self.pool,
            self.cluster,
            subject,
            &prepared.fingerprint,
        )
        .await?
        {
            Some(found) if deleted || !found.deleted => Ok(found),
            _ => Err(RegistryError::schema_not_found()),
        }
    }

    /// Why `request` would break the subject's rule against `version` (`None`: the versions the
    /// subject's level checks); empty when compatible.
    pub async fn compatibility_problems(
        &self,
        subject: &str,
        version: Option<VersionSpec>,
        request: &SchemaRequest,
        normalize: bool,
    ) -> RegistryResult<Vec<String>> {
        let level = self.compatibility(Some(subject)).await?;
        let against = match version {
            Some(spec) => vec![self.version(subject, spec, false).await?],
            // A subject without versions accepts anything.
            None => self.live_versions(subject).await?,
        };
        let prepared = self.prepare(request, normalize, true).await?;
        // A named version is checked alone, in the level's directions.
        self.problems(&prepared.resolved, &against, level).await
    }

    /// Soft- or permanently deletes a version; answers its number.
    pub async fn delete_version(
        &self,
        subject: &str,
        spec: VersionSpec,
        permanent: bool,
    ) -> RegistryResult<i64> {
        self.require_writable(subject).await?;
        let record = self.version(subject, spec, permanent).await?;
        let version = record.version;
        let by = catalog::referenced_by(self.pool, self.cluster, subject, version).await?;
        if !by.is_empty() {
            return Err(RegistryError::reference_exists(subject, version, &by));
        }
        match (permanent, record.deleted) {
            (false, true) => Err(RegistryError::version_soft_deleted(subject, version)),
            (true, false) => Err(RegistryError::version_not_soft_deleted(subject, version)),
            (false, false) => {
                catalog::soft_delete(self.pool, self.cluster, subject, Some(version)).await?;
                Ok(version)
            }
            (true, true) => {
                catalog::remove(self.pool, self.cluster, subject, Some(version)).await?;
                Ok(version)
            }
        }
    }

    /// Soft- or permanently deletes a subject; answers the versions deleted.
    pub async fn delete_subject(&self, subject: &str, permanent: bool) -> RegistryResult<Vec<i64>> {
        self.require_writable(subject).await?;
        let all = self.versions(subject, true).await?;
        let live: Vec<_> = all.iter().filter(|v| !v.deleted).collect();
        if !permanent && live.is_empty() {
            return Err(RegistryError::subject_soft_deleted(subject));
        }
        if permanent && !live.is_empty() {
            return Err(RegistryError::subject_not_soft_deleted(subject));
        }
        for record in &all {
            let by =
                catalog::referenced_by(self.pool, self.cluster, subject, record.version).await?;
            if !by.is_empty() {
                return Err(RegistryError::reference_exists(
                    subject,
                    record.version,
                    &by,
                ));
            }
        }
        if permanent {
            catalog::remove(self.pool, self.cluster, subject, None).await?;
            Ok(all.iter().map(|v| v.version).collect())
        } else {
            catalog::soft_delete(self.pool, self.cluster, subject, None).await?;
            Ok(live.iter().map(|v| v.version).collect())
        }
    }

    /// A stored schema with its references' texts, for comparing.
    pub async fn resolve(&self, record: &SchemaRecord) -> RegistryResult<Resolved> {
        let kind = SchemaType::parse(Some(&record.kind)).map_err(RegistryError::invalid_schema)?;
        let mut dependencies = Vec::new();
        let mut seen = Vec::new();
        self.collect_dependencies(&record.references, 0, &mut seen, &mut dependencies)
            .await?;
        Ok(Resolved {
            kind,
            text: record.text.clone(),
            dependencies,
        })
    }

    async fn require_writable(&self, subject: &str) -> RegistryResult<()> {
        if self.mode(Some(subject)).await? == Mode::ReadOnly {
            return Err(RegistryError::not_permitted(format!(
                "Subject {subject} is in read-only mode"
            )));
        }
        Ok(())
    }

    /// Why `candidate` breaks `level` against `earlier` (oldest first).
    async fn problems(
        &self,
        candidate: &Resolved,
        earlier: &[VersionRecord],
        level: Compatibility,
    ) -> RegistryResult<Vec<String>> {
        if level == Compatibility::None {
            return Ok(Vec::new());
        }
        let checked = if level.transitive() {
            earlier
        } else {
            &earlier[earlier.len().saturating_sub(1)..]
        };
        let mut problems = Vec::new();
        for old in checked.iter().rev() {
            let Some(record) = catalog::schema(self.pool, self.cluster, old.schema_id).await?
            else {
                continue;
            };
            let old_schema = self.resolve(&record).await?;
            let version = old.version;
            if level.backward() {
                problems.extend(
                    formats::reader_accepts(candidate, &old_schema)
                        .into_iter()
                        .map(|p| format!("{{oldVersion: {version}, backward: {p}}}")),
                );
            }
            if level.forward() {
                problems.extend(
                    formats::reader_accepts(&old_schema, candidate)
                        .into_iter()
                        .map(|p| format!("{{oldVersion: {version}, forward: {p}}}")),
                );
            }
        }
        Ok(problems)
    }

    /// Parses a request's schema into its stored form, with references resolved (and, with
    /// `validate`, checked to be a schema of its type).
    async fn prepare(
        &self,
        request: &SchemaRequest,
        normalize: bool,
        validate: bool,
    ) -> RegistryResult<Prepared> {
        let kind = SchemaType::parse(request.schema_type.as_deref())
            .map_err(RegistryError::invalid_schema)?;
        let text = formats::stored_text(kind, &request.schema, normalize)
            .map_err(RegistryError::invalid_schema)?;
        let mut references = Vec::with_capacity(request.references.len());
        for reference in &request.references {
            let spec = if reference.version == -1 {
                VersionSpec::Latest
            } else {
                VersionSpec::Number(reference.version)
            };
            let target = self.reference_target(reference, spec, false).await?;
            references.push(Reference {
                version: target.version,
                ..reference.clone()
            });
        }
        let mut dependencies = Vec::new();
        let mut seen = Vec::new();
        self.collect_dependencies(&references, 0, &mut seen, &mut dependencies)
            .await?;
        let resolved = Resolved {
            kind,
            text,
            dependencies,
        };
        if validate {
            formats::validate(&resolved).map_err(RegistryError::invalid_schema)?;
        }
        let fingerprint = fingerprint(&resolved, &references);
        Ok(Prepared {
            resolved,
            references,
            fingerprint,
        })
    }

    /// The version a reference names; 42201 when there is none.
    async fn reference_target(
        &self,
        reference: &Reference,
        spec: VersionSpec,
        deleted: bool,
    ) -> RegistryResult<VersionRecord> {
        self.version(&reference.subject, spec, deleted)
            .await
            .map_err(|_| {
                RegistryError::invalid_schema(format!(
                    "reference {} names subject {:?} version {}, which does not exist",
                    reference.name, reference.subject, reference.version
                ))
            })
    }

    /// Appends the texts `references` need, each after what it needs itself, once each.
    async fn collect_dependencies(
        &self,
        references: &[Reference],
        depth: usize,
        seen: &mut Vec<i64>,
        out: &mut Vec<String>,
    ) -> RegistryResult<()> {
        if depth > MAX_REFERENCE_DEPTH || seen.len() > MAX_REFERENCES {
            return Err(RegistryError::invalid_schema(format!(
                "references nest deeper than {MAX_REFERENCE_DEPTH} or number more than {MAX_REFERENCES}"
            )));
        }
        for reference in references {
            let target = self
                .reference_target(reference, VersionSpec::Number(reference.version), true)
                .await?;
            if seen.contains(&target.schema_id) {
                continue;
            }
            seen.push(target.schema_id);
            let Some(record) = catalog::schema(self.pool, self.cluster, target.schema_id).await?
            else {
                continue;
            };
            Box::pin(self.collect_dependencies(&record.references, depth + 1, seen, out)).await?;
            out.push(record.text);
        }
        Ok(())
    }
}

/// Refuses subject names the registry cannot store or show.
pub fn check_subject(subject: &str) -> RegistryResult<()> {
    let length = subject.chars().count();
    if length == 0 || length > MAX_SUBJECT_CHARS || subject.chars().any(char::is_control) {
        return Err(RegistryError::unprocessable(format!(
            "a subject name is 1 to {MAX_SUBJECT_CHARS} characters without control characters"
        )));
    }
    Ok(())
}

/// What identifies a schema: its type, its stored text and what it refers to.
fn fingerprint(schema: &Resolved, references: &[Reference]) -> String {
    let mut hash = Sha256::new();
    for part in [schema.kind.as_str(), schema.text.as_str()] {
        hash.update(part.as_bytes());
        hash.update([0]);
    }
    for reference in references {
        hash.update(reference.name.as_bytes());
        hash.update([0]);
        hash.update(reference.subject.as_bytes());
        hash.update([0]);
        hash.update(reference.version.to_be_bytes());
    }
    hash.finalize().iter().map(|b| format!("{b:02x}")).collect()
}
