//! The registry's routes: parse, authorize, call [`Registry`], answer in Confluent's shapes.

use axum::{
    Router,
    extract::{FromRequestParts, Path},
    http::request::Parts,
    response::{IntoResponse, Response},
    routing::{get, post},
};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{
    Body, Caller, RegistryError, RegistryResult, Reply,
    catalog::{self, SchemaRecord, VersionRecord},
    evolution::{Registry, SchemaRequest},
    formats::SchemaType,
    settings::VersionSpec,
};
use crate::gateway::GatewayState;

mod settings;

/// The registry's routes, nested under `/schema-registry` on the REST endpoint.
pub fn router() -> Router<GatewayState> {
    Router::new()
        .route("/", get(|_: Caller| async { Reply(json!({})) }))
        .route(
            "/openapi.json",
            get(|| async { Reply(super::openapi::document()) }),
        )
        .route("/schemas/types", get(types))
        .route("/schemas/ids/{id}", get(schema_by_id))
        .route("/schemas/ids/{id}/schema", get(raw_schema_by_id))
        .route("/schemas/ids/{id}/versions", get(versions_of_schema))
        .route("/schemas/ids/{id}/subjects", get(subjects_of_schema))
        .route("/subjects", get(subjects))
        .route("/subjects/{subject}", post(lookup).delete(delete_subject))
        .route("/subjects/{subject}/versions", get(versions).post(register))
        .route(
            "/subjects/{subject}/versions/{version}",
            get(version).delete(delete_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/schema",
            get(raw_version),
        )
        .route(
            "/subjects/{subject}/versions/{version}/referencedby",
            get(referenced_by),
        )
        .route(
            "/compatibility/subjects/{subject}/versions",
            post(check_against_level),
        )
        .route(
            "/compatibility/subjects/{subject}/versions/{version}",
            post(check_against_version),
        )
        .route(
            "/config",
            get(settings::config)
                .put(settings::set_config)
                .delete(settings::delete_config),
        )
        .route(
            "/config/{subject}",
            get(settings::subject_config)
                .put(settings::set_subject_config)
                .delete(settings::delete_subject_config),
        )
        .route("/mode", get(settings::mode).put(settings::set_mode))
        .route(
            "/mode/{subject}",
            get(settings::subject_mode)
                .put(settings::set_subject_mode)
                .delete(settings::delete_subject_mode),
        )
        .fallback(|| async { RegistryError::no_route() })
        .method_not_allowed_fallback(|| async { RegistryError::method_not_allowed() })
}

/// The query parameters the registry's routes take, each where Confluent's does.
#[derive(Debug, Default, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Options {
    #[serde(default, deserialize_with = "flag")]
    deleted: bool,
    #[serde(default, deserialize_with = "flag")]
    permanent: bool,
    #[serde(default, deserialize_with = "flag")]
    normalize: bool,
    #[serde(default, deserialize_with = "flag")]
    verbose: bool,
    #[serde(default, deserialize_with = "flag")]
    default_to_global: bool,
    #[serde(default, deserialize_with = "flag")]
    force: bool,
    subject_prefix: Option<String>,
    /// How to answer a schema: Avro's `resolved` (references inlined), Protobuf's
    /// `serialized` (base64 descriptor); anything else (or nothing) is the schema as stored, as
    /// Confluent answers formats a type does not have.
    format: Option<String>,
}

impl Options {
    /// `record` in the format asked for.
    async fn formatted(
        &self,
        registry: &Registry<'_>,
        mut record: SchemaRecord,
    ) -> RegistryResult<SchemaRecord> {
        match self.format.as_deref() {
            Some("serialized") if record.kind == SchemaType::Protobuf.as_str() => {
                record.text = super::protobuf::serialized(&record.text)
                    .map_err(RegistryError::unprocessable)?;
            }
            Some("resolved")
                if record.kind == SchemaType::Avro.as_str() && !record.references.is_empty() =>
            {
                let resolved = registry.resolve(&record).await?;
                record.text =
                    super::avro_resolved::resolved(&resolved.text, &resolved.dependencies)
                        .map_err(RegistryError::unprocessable)?;
            }
            _ => {}
        }
        Ok(record)
    }
}

/// A boolean query parameter in any case: confluent-kafka's Python client sends `False`.
fn flag<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<bool, D::Error> {
    let raw = String::deserialize(deserializer)?;
    match raw.to_ascii_lowercase().as_str() {
        "true" | "1" => Ok(true),
        "false" | "0" => Ok(false),
        _ => Err(serde::de::Error::custom(format!(
            "{raw:?} is not true or false"
        ))),
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Options {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> RegistryResult<Self> {
        let axum::extract::Query(options) = axum::extract::Query::try_from_uri(&parts.uri)
            .map_err(|e| {
                RegistryError::unprocessable(format!("invalid query string: {}", e.body_text()))
            })?;
        Ok(options)
    }
}

/// Path parameters, refused in the registry's shape.
struct Params<T>(T);

impl<S: Send + Sync, T: serde::de::DeserializeOwned + Send> FromRequestParts<S> for Params<T> {
    type Rejection = RegistryError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> RegistryResult<Self> {
        let Path(value) = Path::<T>::from_request_parts(parts, state)
            .await
            .map_err(|e| {
                RegistryError::unprocessable(format!("invalid path: {}", e.body_text()))
            })?;
        Ok(Params(value))
    }
}

fn registry<'a>(state: &'a GatewayState, caller: &'a Caller) -> Registry<'a> {
    Registry::new(state.app.store.pool(), caller.cluster())
}

/// A schema as `GET /schemas/ids/{id}` shows it; `schemaType` only when not Avro, as Confluent.
fn schema_view(record: &SchemaRecord) -> Value {
    let mut view = json!({ "schema": record.text });
    if record.kind != SchemaType::Avro.as_str() {
        view["schemaType"] = json!(record.kind);
    }
    if !record.references.is_empty() {
        view["references"] = json!(record.references);
    }
    view
}

fn version_view(version: &VersionRecord, record: &SchemaRecord) -> Value {
    let mut view = schema_view(record);
    view["subject"] = json!(version.subject);
    view["version"] = json!(version.version);
    view["id"] = json!(record.id);
    view
}

/// A raw schema text, in the registry's media type (it is JSON).
fn raw(text: String) -> Response {
    let mut response = text.into_response();
    response.headers_mut().insert(
        axum::http::header::CONTENT_TYPE,
        axum::http::HeaderValue::from_static(super::MEDIA_TYPE),
    );
    response
}

async fn types(_: Caller) -> Reply<Vec<&'static str>> {
    Reply(SchemaType::ALL.iter().map(|t| t.as_str()).collect())
}

async fn schema_by_id(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(id): Params<i64>,
    options: Options,
) -> RegistryResult<Reply<Value>> {
    let registry = registry(&state, &caller);
    let record = options
        .formatted(&registry, registry.schema(id).await?)
        .await?;
    Ok(Reply(schema_view(&record)))
}

async fn raw_schema_by_id(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(id): Params<i64>,
) -> RegistryResult<Response> {
    Ok(raw(registry(&state, &caller).schema(id).await?.text))
}

async fn versions_of_schema(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(id): Params<i64>,
    options: Options,
) -> RegistryResult<Reply<Value>> {
    let versions = registry(&state, &caller)
        .versions_of_schema(id, options.deleted)
        .await?;
    let shown: Vec<Value> = versions
        .iter()
        .map(|v| json!({ "subject": v.subject, "version": v.version }))
        .collect();
    Ok(Reply(json!(shown)))
}

async fn subjects_of_schema(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(id): Params<i64>,
    options: Options,
) -> RegistryResult<Reply<Vec<String>>> {
    let mut subjects: Vec<String> = registry(&state, &caller)
        .versions_of_schema(id, options.deleted)
        .await?
        .into_iter()
        .map(|v| v.subject)
        .collect();
    subjects.dedup();
    Ok(Reply(subjects))
}

async fn subjects(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    options: Options,
) -> RegistryResult<Reply<Vec<String>>> {
    let prefix = options.subject_prefix.unwrap_or_default();
    let subjects = catalog::subjects(state.app.store.pool(), caller.cluster())
        .await?
        .into_iter()
        .filter(|(name, live)| (options.deleted || *live) && name.starts_with(&prefix))
        .map(|(name, _)| name)
        .collect();
    Ok(Reply(subjects))
}

async fn versions(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
) -> RegistryResult<Reply<Vec<i64>>> {
    let versions = registry(&state, &caller)
        .versions(&subject, options.deleted)
        .await?;
    Ok(Reply(versions.iter().map(|v| v.version).collect()))
}

async fn register(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
    Body(request): Body<SchemaRequest>,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    let id = registry(&state, &caller)
        .register(&subject, request, options.normalize)
        .await?;
    Ok(Reply(json!({ "id": id })))
}

async fn lookup(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
    Body(request): Body<SchemaRequest>,
) -> RegistryResult<Reply<Value>> {
    let registry = registry(&state, &caller);
    let version = registry
        .lookup(&subject, &request, options.normalize, options.deleted)
        .await?;
    let record = registry.schema_of(version.schema_id).await?;
    Ok(Reply(version_view(&version, &record)))
}

async fn delete_subject(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
) -> RegistryResult<Reply<Vec<i64>>> {
    caller.require_write()?;
    Ok(Reply(
        registry(&state, &caller)
            .delete_subject(&subject, options.permanent)
            .await?,
    ))
}

async fn found_version(
    state: &GatewayState,
    caller: &Caller,
    subject: &str,
    version: &str,
    deleted: bool,
) -> RegistryResult<(VersionRecord, SchemaRecord)> {
    let spec = VersionSpec::parse(version)?;
    let registry = registry(state, caller);
    let found = registry.version(subject, spec, deleted).await?;
    let record = registry.schema_of(found.schema_id).await?;
    Ok((found, record))
}

async fn version(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params((subject, version)): Params<(String, String)>,
    options: Options,
) -> RegistryResult<Reply<Value>> {
    let (found, record) =
        found_version(&state, &caller, &subject, &version, options.deleted).await?;
    let record = options
        .formatted(&registry(&state, &caller), record)
        .await?;
    Ok(Reply(version_view(&found, &record)))
}

async fn raw_version(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params((subject, version)): Params<(String, String)>,
    options: Options,
) -> RegistryResult<Response> {
    let (_, record) = found_version(&state, &caller, &subject, &version, options.deleted).await?;
    Ok(raw(record.text))
}

async fn referenced_by(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params((subject, version)): Params<(String, String)>,
) -> RegistryResult<Reply<Vec<i64>>> {
    let (found, _) = found_version(&state, &caller, &subject, &version, false).await?;
    let ids = catalog::referenced_by(
        state.app.store.pool(),
        caller.cluster(),
        &subject,
        found.version,
    )
    .await?;
    Ok(Reply(ids))
}

async fn delete_version(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params((subject, version)): Params<(String, String)>,
    options: Options,
) -> RegistryResult<Reply<i64>> {
    caller.require_write()?;
    let spec = VersionSpec::parse(&version)?;
    Ok(Reply(
        registry(&state, &caller)
            .delete_version(&subject, spec, options.permanent)
            .await?,
    ))
}

fn compatibility_answer(problems: Vec<String>, verbose: bool) -> Reply<Value> {
    let mut answer = json!({ "is_compatible": problems.is_empty() });
    if verbose {
        answer["messages"] = json!(problems);
    }
    Reply(answer)
}

async fn check_against_version(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params((subject, version)): Params<(String, String)>,
    options: Options,
    Body(request): Body<SchemaRequest>,
) -> RegistryResult<Reply<Value>> {
    let spec = VersionSpec::parse(&version)?;
    let problems = registry(&state, &caller)
        .compatibility_problems(&subject, Some(spec), &request, options.normalize)
        .await?;
    Ok(compatibility_answer(problems, options.verbose))
}

async fn check_against_level(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
    Body(request): Body<SchemaRequest>,
) -> RegistryResult<Reply<Value>> {
    let problems = registry(&state, &caller)
        .compatibility_problems(&subject, None, &request, options.normalize)
        .await?;
    Ok(compatibility_answer(problems, options.verbose))
}
