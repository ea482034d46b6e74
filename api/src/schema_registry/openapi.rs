//! The registry's OpenAPI 3.1 document, served at `/schema-registry/openapi.json` (paths are
//! relative to `/schema-registry`). It describes Capstan's registry, Confluent's API as far as
//! docs/schema-registry.md says; schemathesis fuzzes the running registry against it.

use serde_json::{Map, Value, json};

use super::MEDIA_TYPE;

fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}

fn answer(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { MEDIA_TYPE: { "schema": schema } } })
}

/// What an operation reads and writes, for its parameters and the answers it can give.
#[derive(Clone, Copy)]
struct Shape {
    /// Needs an ALL credential (403 otherwise).
    writes: bool,
    /// Takes a body (413, 408 for one too large or too slow).
    request: bool,
    /// Can conflict with the subject's compatibility rule.
    conflicts: bool,
}

const READ: Shape = Shape {
    writes: false,
    request: false,
    conflicts: false,
};
const READ_WITH_BODY: Shape = Shape {
    writes: false,
    request: true,
    conflicts: false,
};
const WRITE: Shape = Shape {
    writes: true,
    request: false,
    conflicts: false,
};
const WRITE_WITH_BODY: Shape = Shape {
    writes: true,
    request: true,
    conflicts: false,
};
const REGISTER: Shape = Shape {
    writes: true,
    request: true,
    conflicts: true,
};

fn operation(
    summary: &str,
    shape: Shape,
    parameters: &[&str],
    request: Option<Value>,
    ok: Value,
) -> Value {
    let mut responses = Map::new();
    responses.insert("200".into(), ok);
    let mut errors = vec![
        ("401", "No or wrong credentials (40101)"),
        ("404", "Subject, version or schema not found (40401-40409)"),
        (
            "422",
            "Invalid schema, version, level, mode, path, query or body (422, 42201-42206)",
        ),
        ("429", "The cluster's requests in progress are all taken"),
        ("503", "The database is not answering; retry"),
    ];
    if shape.writes {
        errors.push((
            "403",
            "The credential may only read (40301); or the registry is full",
        ));
    }
    if shape.request {
        errors.push(("408", "The body did not arrive in time"));
        errors.push(("413", "The body is larger than 2 MiB"));
    }
    if shape.conflicts {
        errors.push(("409", "Incompatible with an earlier version"));
    }
    for (status, description) in errors {
        responses.insert(status.into(), answer(description, reference("Error")));
    }
    let mut op = json!({
        "summary": summary,
        "parameters": parameters.iter().map(|p| reference_parameter(p)).collect::<Vec<_>>(),
        "responses": responses,
    });
    if let Some(request) = request {
        op["requestBody"] =
            json!({ "required": true, "content": { MEDIA_TYPE: { "schema": request } } });
    }
    op
}

fn reference_parameter(name: &str) -> Value {
    json!({ "$ref": format!("#/components/parameters/{name}") })
}

fn path_parameter(name: &str, schema: Value) -> Value {
    json!({ "name": name, "in": "path", "required": true, "schema": schema })
}

fn flag(name: &str, description: &str) -> Value {
    json!({ "name": name, "in": "query", "required": false, "description": description, "schema": { "type": "boolean" } })
}

/// Every operation of the document, as (method, path under `/schema-registry`).
pub fn operations() -> Vec<(String, String)> {
    let document = document();
    let mut out = Vec::new();
    if let Some(paths) = document["paths"].as_object() {
        for (path, item) in paths {
            for method in item.as_object().into_iter().flat_map(|m| m.keys()) {
                out.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    out
}

/// The document.
pub fn document() -> Value {
    let string = json!({ "type": "string" });
    let integers = json!({ "type": "array", "items": { "type": "integer" } });
    let strings = json!({ "type": "array", "items": { "type": "string" } });
    let subject_version = json!({ "type": "array", "items": { "type": "object", "required": ["subject", "version"],
        "properties": { "subject": { "type": "string" }, "version": { "type": "integer" } } } });
    let level = json!({ "type": "object", "required": ["compatibilityLevel"], "properties": { "compatibilityLevel": reference("Compatibility") } });
    let level_set = json!({ "type": "object", "required": ["compatibility"], "properties": { "compatibility": reference("Compatibility") } });
    let mode = json!({ "type": "object", "required": ["mode"], "properties": { "mode": reference("Mode") } });
    let compatibility = json!({ "type": "object", "required": ["is_compatible"], "properties": {
        "is_compatible": { "type": "boolean" }, "messages": { "type": "array", "items": { "type": "string" } } } });
    let ok = |description: &str, schema: Value| answer(description, schema);
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Capstan schema registry",
            "version": "1",
            "description": "Confluent Schema Registry's API on each cluster's REST endpoint. See docs/schema-registry.md.",
        },
        "servers": [{ "url": "/schema-registry" }],
        "security": [{ "basic": [] }],
        "paths": {
            "/": { "get": operation("The registry answers", READ, &[], None, ok("Nothing to say", json!({ "type": "object" }))) },
            "/schemas/types": { "get": operation("Schema types", READ, &[], None, ok("The types", strings.clone())) },
            "/schemas/ids/{id}": { "get": operation("A schema by id", READ, &["id", "subjectQuery", "format"], None, ok("The schema", reference("Schema"))) },
            "/schemas/ids/{id}/schema": { "get": operation("A schema's text by id", READ, &["id"], None, ok("The schema text", json!({}))) },
            "/schemas/ids/{id}/versions": { "get": operation("Versions registering a schema", READ, &["id", "deleted"], None, ok("Subjects and versions", subject_version)) },
            "/schemas/ids/{id}/subjects": { "get": operation("Subjects registering a schema", READ, &["id", "deleted"], None, ok("Subjects", strings.clone())) },
            "/subjects": { "get": operation("Subjects", READ, &["deleted", "subjectPrefix"], None, ok("Subjects", strings)) },
            "/subjects/{subject}": {
                "post": operation("Look a schema up in a subject", READ_WITH_BODY, &["subject", "normalize", "deleted"], Some(reference("SchemaRequest")), ok("The version", reference("Version"))),
                "delete": operation("Delete a subject (soft, or permanent after a soft delete)", WRITE, &["subject", "permanent"], None, ok("Versions deleted", integers.clone())),
            },
            "/subjects/{subject}/versions": {
                "get": operation("A subject's versions", READ, &["subject", "deleted"], None, ok("Version numbers", integers.clone())),
                "post": operation("Register a schema", REGISTER, &["subject", "normalize"], Some(reference("SchemaRequest")),
                    ok("Its id", json!({ "type": "object", "required": ["id"], "properties": { "id": { "type": "integer" } } }))),
            },
            "/subjects/{subject}/versions/{version}": {
                "get": operation("A version", READ, &["subject", "version", "deleted", "format"], None, ok("The version", reference("Version"))),
                "delete": operation("Delete a version (soft, or permanent after a soft delete)", WRITE, &["subject", "version", "permanent"], None, ok("The version deleted", json!({ "type": "integer" }))),
            },
            "/subjects/{subject}/versions/{version}/schema": { "get": operation("A version's schema text", READ, &["subject", "version", "deleted"], None, ok("The schema text", json!({}))) },
            "/subjects/{subject}/versions/{version}/referencedby": { "get": operation("Schemas referring to a version", READ, &["subject", "version"], None, ok("Schema ids", integers)) },
            "/compatibility/subjects/{subject}/versions": { "post": operation("Check against what the subject's level checks", READ_WITH_BODY, &["subject", "normalize", "verbose"], Some(reference("SchemaRequest")), ok("The verdict", compatibility.clone())) },
            "/compatibility/subjects/{subject}/versions/{version}": { "post": operation("Check against a version", READ_WITH_BODY, &["subject", "version", "normalize", "verbose"], Some(reference("SchemaRequest")), ok("The verdict", compatibility)) },
            "/config": {
                "get": operation("The registry's compatibility level", READ, &[], None, ok("The level", level.clone())),
                "put": operation("Set the registry's compatibility level", WRITE_WITH_BODY, &[], Some(level_set.clone()), ok("The level", level_set.clone())),
                "delete": operation("Reset the registry's compatibility level", WRITE, &[], None, ok("The level before", level.clone())),
            },
            "/config/{subject}": {
                "get": operation("A subject's own compatibility level", READ, &["subject", "defaultToGlobal"], None, ok("The level", level.clone())),
                "put": operation("Set a subject's compatibility level", WRITE_WITH_BODY, &["subject"], Some(level_set.clone()), ok("The level", level_set)),
                "delete": operation("Remove a subject's own compatibility level", WRITE, &["subject"], None, ok("The level before", level)),
            },
            "/mode": {
                "get": operation("The registry's mode", READ, &[], None, ok("The mode", mode.clone())),
                "put": operation("Set the registry's mode", WRITE_WITH_BODY, &["force"], Some(mode.clone()), ok("The mode", mode.clone())),
            },
            "/mode/{subject}": {
                "get": operation("A subject's own mode", READ, &["subject", "defaultToGlobal"], None, ok("The mode", mode.clone())),
                "put": operation("Set a subject's mode", WRITE_WITH_BODY, &["subject"], Some(mode.clone()), ok("The mode", mode.clone())),
                "delete": operation("Remove a subject's own mode", WRITE, &["subject"], None, ok("The mode before", mode)),
            },
        },
        "components": {
            "securitySchemes": { "basic": { "type": "http", "scheme": "basic", "description": "A credential of the cluster (REST username and password)" } },
            "parameters": {
                "id": path_parameter("id", json!({ "type": "integer", "format": "int64" })),
                "subject": path_parameter("subject", json!({ "type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$" })),
                "version": path_parameter("version", json!({ "type": "string", "pattern": "^(latest|-1|[1-9][0-9]{0,8})$" })),
                "deleted": flag("deleted", "Include soft-deleted versions"),
                "permanent": flag("permanent", "Delete for good (after a soft delete)"),
                "normalize": flag("normalize", "Sort the schema's JSON keys before storing and comparing"),
                "verbose": flag("verbose", "Say why a schema is incompatible"),
                "defaultToGlobal": flag("defaultToGlobal", "Answer the registry's setting when the subject has none"),
                "force": flag("force", "Allow IMPORT on a registry that has subjects"),
                "subjectPrefix": { "name": "subjectPrefix", "in": "query", "required": false, "schema": string.clone() },
                "subjectQuery": { "name": "subject", "in": "query", "required": false, "description": "Accepted and ignored: ids are global per cluster", "schema": string.clone() },
                "format": { "name": "format", "in": "query", "required": false, "description": "resolved: an Avro schema with the named types of its references written out where first used; serialized: a Protobuf schema as the base64 of its FileDescriptorProto (what confluent-kafka's deserializers ask for); other values, and other schema types, answer the schema as stored", "schema": string },
            },
            "schemas": {
                "Error": { "type": "object", "required": ["error_code", "message"], "properties": {
                    "error_code": { "type": "integer" }, "message": { "type": "string" } } },
                "Compatibility": { "type": "string", "enum": ["NONE", "BACKWARD", "BACKWARD_TRANSITIVE", "FORWARD", "FORWARD_TRANSITIVE", "FULL", "FULL_TRANSITIVE"] },
                "Mode": { "type": "string", "enum": ["READWRITE", "READONLY", "IMPORT"] },
                "Reference": { "type": "object", "required": ["name", "subject", "version"], "properties": {
                    "name": { "type": "string" }, "subject": { "type": "string" }, "version": { "type": "integer" } } },
                "SchemaRequest": { "type": "object", "required": ["schema"], "properties": {
                    "schema": { "type": "string", "description": "The schema's text" },
                    "schemaType": { "type": "string", "enum": ["AVRO", "JSON", "PROTOBUF"] },
                    "references": { "type": "array", "items": reference("Reference") },
                    "id": { "type": "integer", "description": "IMPORT mode only" },
                    "version": { "type": "integer", "description": "IMPORT mode only" } } },
                "Schema": { "type": "object", "required": ["schema"], "properties": {
                    "schema": { "type": "string" }, "schemaType": { "type": "string" },
                    "references": { "type": "array", "items": reference("Reference") } } },
                "Version": { "type": "object", "required": ["subject", "version", "id", "schema"], "properties": {
                    "subject": { "type": "string" }, "version": { "type": "integer" }, "id": { "type": "integer" },
                    "schema": { "type": "string" }, "schemaType": { "type": "string" },
                    "references": { "type": "array", "items": reference("Reference") } } },
            },
        },
    })
}
