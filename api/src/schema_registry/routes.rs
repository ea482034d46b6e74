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
    catalog::{self, SchemaRecord, Setting, VersionRecord},
    evolution::{Registry, SchemaRequest, check_subject},
    formats::SchemaType,
    settings::{Compatibility, Mode, VersionSpec},
};
use crate::gateway::GatewayState;

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
        .route("/config", get(config).put(set_config).delete(delete_config))
        .route(
            "/config/{subject}",
            get(subject_config)
                .put(set_subject_config)
                .delete(delete_subject_config),
        )
        .route("/mode", get(mode).put(set_mode))
        .route(
            "/mode/{subject}",
            get(subject_mode)
                .put(set_subject_mode)
                .delete(delete_subject_mode),
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
) -> RegistryResult<Reply<Value>> {
    let record = registry(&state, &caller).schema(id).await?;
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
    registry(&state, &caller).schema(id).await?;
    let versions =
        catalog::versions_of_schema(state.app.store.pool(), caller.cluster(), id).await?;
    let shown: Vec<Value> = versions
        .iter()
        .filter(|v| options.deleted || !v.deleted)
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
    registry(&state, &caller).schema(id).await?;
    let mut subjects: Vec<String> =
        catalog::versions_of_schema(state.app.store.pool(), caller.cluster(), id)
            .await?
            .into_iter()
            .filter(|v| options.deleted || !v.deleted)
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
    let record = registry.schema(version.schema_id).await?;
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
    let record = registry.schema(found.schema_id).await?;
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

/// `PUT /config` bodies.
#[derive(Debug, Deserialize)]
struct ConfigRequest {
    compatibility: String,
}

/// `PUT /mode` bodies.
#[derive(Debug, Deserialize)]
struct ModeRequest {
    mode: String,
}

async fn config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
) -> RegistryResult<Reply<Value>> {
    let level = registry(&state, &caller).compatibility(None).await?;
    Ok(Reply(json!({ "compatibilityLevel": level.as_str() })))
}

async fn set_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Body(request): Body<ConfigRequest>,
) -> RegistryResult<Reply<Value>> {
    put_setting(
        &state,
        &caller,
        "",
        Setting::Compatibility,
        &request.compatibility,
    )
    .await
}

async fn delete_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    let before = registry(&state, &caller).compatibility(None).await?;
    catalog::set_setting(
        state.app.store.pool(),
        caller.cluster(),
        "",
        Setting::Compatibility,
        None,
    )
    .await?;
    Ok(Reply(json!({ "compatibilityLevel": before.as_str() })))
}

async fn subject_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
) -> RegistryResult<Reply<Value>> {
    check_subject(&subject)?;
    let own = catalog::setting(
        state.app.store.pool(),
        caller.cluster(),
        &subject,
        Setting::Compatibility,
    )
    .await?;
    let level = match own {
        Some(level) => Compatibility::parse(&level)?,
        None if options.default_to_global => registry(&state, &caller).compatibility(None).await?,
        None => {
            return Err(RegistryError::subject_compatibility_not_configured(
                &subject,
            ));
        }
    };
    Ok(Reply(json!({ "compatibilityLevel": level.as_str() })))
}

async fn set_subject_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    Body(request): Body<ConfigRequest>,
) -> RegistryResult<Reply<Value>> {
    put_setting(
        &state,
        &caller,
        &subject,
        Setting::Compatibility,
        &request.compatibility,
    )
    .await
}

async fn delete_subject_config(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    let pool = state.app.store.pool();
    let own = catalog::setting(pool, caller.cluster(), &subject, Setting::Compatibility).await?;
    let own = own.ok_or_else(|| RegistryError::subject_compatibility_not_configured(&subject))?;
    catalog::set_setting(
        pool,
        caller.cluster(),
        &subject,
        Setting::Compatibility,
        None,
    )
    .await?;
    Ok(Reply(json!({ "compatibilityLevel": own })))
}

async fn mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
) -> RegistryResult<Reply<Value>> {
    let mode = registry(&state, &caller).mode(None).await?;
    Ok(Reply(json!({ "mode": mode.as_str() })))
}

async fn set_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    options: Options,
    Body(request): Body<ModeRequest>,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    if Mode::parse(&request.mode)? == Mode::Import && !options.force {
        let any = catalog::subjects(state.app.store.pool(), caller.cluster()).await?;
        if !any.is_empty() {
            return Err(RegistryError::not_permitted(
                "Cannot import since found existing subjects; add ?force=true to import into a registry that has some",
            ));
        }
    }
    put_setting(&state, &caller, "", Setting::Mode, &request.mode).await
}

async fn subject_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    options: Options,
) -> RegistryResult<Reply<Value>> {
    check_subject(&subject)?;
    let own = catalog::setting(
        state.app.store.pool(),
        caller.cluster(),
        &subject,
        Setting::Mode,
    )
    .await?;
    let mode = match own {
        Some(mode) => Mode::parse(&mode)?,
        None if options.default_to_global => registry(&state, &caller).mode(None).await?,
        None => return Err(RegistryError::subject_mode_not_configured(&subject)),
    };
    Ok(Reply(json!({ "mode": mode.as_str() })))
}

async fn set_subject_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
    Body(request): Body<ModeRequest>,
) -> RegistryResult<Reply<Value>> {
    put_setting(&state, &caller, &subject, Setting::Mode, &request.mode).await
}

async fn delete_subject_mode(
    state: axum::extract::State<GatewayState>,
    caller: Caller,
    Params(subject): Params<String>,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    let pool = state.app.store.pool();
    let own = catalog::setting(pool, caller.cluster(), &subject, Setting::Mode).await?;
    let own = own.ok_or_else(|| RegistryError::subject_mode_not_configured(&subject))?;
    catalog::set_setting(pool, caller.cluster(), &subject, Setting::Mode, None).await?;
    Ok(Reply(json!({ "mode": own })))
}

/// Validates and stores a compatibility level or mode of the registry (`subject` "") or of a
/// subject; answers it the way `PUT` does.
async fn put_setting(
    state: &GatewayState,
    caller: &Caller,
    subject: &str,
    which: Setting,
    raw: &str,
) -> RegistryResult<Reply<Value>> {
    caller.require_write()?;
    if !subject.is_empty() {
        check_subject(subject)?;
    }
    let (key, value) = match which {
        Setting::Compatibility => ("compatibility", Compatibility::parse(raw)?.as_str()),
        Setting::Mode => ("mode", Mode::parse(raw)?.as_str()),
    };
    catalog::set_setting(
        state.app.store.pool(),
        caller.cluster(),
        subject,
        which,
        Some(value),
    )
    .await?;
    Ok(Reply(json!({ key: value })))
}
