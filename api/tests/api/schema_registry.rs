//! The schema registry over HTTP: Confluent's routes, error codes and rules, one registry per
//! cluster, scoped credentials, and IMPORT mode, on SQLite and PostgreSQL.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::on_both_backends;

const USER_V1: &str =
    r#"{"type":"record","name":"User","namespace":"shop","fields":[{"name":"id","type":"long"}]}"#;
/// v1 plus a field with a default: BACKWARD compatible.
const USER_V2: &str = r#"{"type":"record","name":"User","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"email","type":"string","default":""}]}"#;
/// v1 plus a field without a default: not BACKWARD compatible.
const USER_BAD: &str = r#"{"type":"record","name":"User","namespace":"shop","fields":[{"name":"id","type":"long"},{"name":"age","type":"int"}]}"#;

struct Registry<'a> {
    app: &'a TestApp,
    user: String,
    pass: String,
}

impl Registry<'_> {
    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> (StatusCode, Value) {
        let body = body.map(|b| b.to_string());
        self.app
            .rest(
                method,
                &format!("/schema-registry{path}"),
                Some((&self.user, &self.pass)),
                body.as_deref(),
                &[("content-type", "application/vnd.schemaregistry.v1+json")],
            )
            .await
    }

    async fn register(&self, subject: &str, schema: &str) -> (StatusCode, Value) {
        self.call(
            Method::POST,
            &format!("/subjects/{subject}/versions"),
            Some(json!({ "schema": schema })),
        )
        .await
    }
}

fn registry<'a>(app: &'a TestApp, credential: &Value) -> Registry<'a> {
    Registry {
        app,
        user: credential["username"].as_str().unwrap().to_owned(),
        pass: credential["password"].as_str().unwrap().to_owned(),
    }
}

async fn avro_schemas_evolve_under_the_subjects_rules(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "registry").await;
    let r = registry(&app, &cluster);

    let (status, types) = r.call(Method::GET, "/schemas/types", None).await;
    assert_eq!(
        (status, types),
        (StatusCode::OK, json!(["JSON", "PROTOBUF", "AVRO"]))
    );
    let (status, empty) = r.call(Method::GET, "/subjects", None).await;
    assert_eq!((status, empty), (StatusCode::OK, json!([])));

    // Registering is idempotent, and whitespace does not make another schema.
    let (status, first) = r.register("users-value", USER_V1).await;
    assert_eq!(status, StatusCode::OK, "{first}");
    let id1 = first["id"].as_i64().unwrap();
    let spaced = USER_V1.replace(',', " ,\n  ");
    let (_, again) = r.register("users-value", &spaced).await;
    assert_eq!(again["id"], id1);
    let (_, versions) = r
        .call(Method::GET, "/subjects/users-value/versions", None)
        .await;
    assert_eq!(versions, json!([1]));

    // The same schema under another subject keeps its id.
    let (_, other) = r.register("audit-value", USER_V1).await;
    assert_eq!(other["id"], id1);
    let (_, subjects) = r
        .call(Method::GET, &format!("/schemas/ids/{id1}/subjects"), None)
        .await;
    assert_eq!(subjects, json!(["audit-value", "users-value"]));

    // BACKWARD (the default): a field with a default is fine, one without is a 409.
    let (status, second) = r.register("users-value", USER_V2).await;
    assert_eq!(status, StatusCode::OK, "{second}");
    let id2 = second["id"].as_i64().unwrap();
    assert_ne!(id2, id1);
    let (status, refused) = r.register("users-value", USER_BAD).await;
    assert_eq!(status, StatusCode::CONFLICT, "{refused}");
    assert_eq!(refused["error_code"], 409);
    let (status, verdict) = r
        .call(
            Method::POST,
            "/compatibility/subjects/users-value/versions/latest?verbose=true",
            Some(json!({ "schema": USER_BAD })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{verdict}");
    assert_eq!(verdict["is_compatible"], false);
    assert!(
        !verdict["messages"].as_array().unwrap().is_empty(),
        "{verdict}"
    );
    let (_, verdict) = r
        .call(
            Method::POST,
            "/compatibility/subjects/users-value/versions/1",
            Some(json!({ "schema": USER_V2 })),
        )
        .await;
    assert_eq!(verdict, json!({ "is_compatible": true }));

    // Reads: by id, by version, latest, raw, lookup.
    let (_, by_id) = r
        .call(Method::GET, &format!("/schemas/ids/{id2}"), None)
        .await;
    assert_eq!(by_id, json!({ "schema": USER_V2 }));
    let (_, latest) = r
        .call(Method::GET, "/subjects/users-value/versions/latest", None)
        .await;
    assert_eq!(
        latest,
        json!({ "subject": "users-value", "version": 2, "id": id2, "schema": USER_V2 })
    );
    let (_, raw) = r
        .call(Method::GET, "/subjects/users-value/versions/1/schema", None)
        .await;
    assert_eq!(raw, serde_json::from_str::<Value>(USER_V1).unwrap());
    let (status, found) = r
        .call(
            Method::POST,
            "/subjects/users-value",
            Some(json!({ "schema": USER_V1 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{found}");
    assert_eq!(
        (found["version"].clone(), found["id"].clone()),
        (json!(1), json!(id1))
    );

    // NONE lets anything through; the subject's own level wins over the registry's.
    let (status, set) = r
        .call(
            Method::PUT,
            "/config/users-value",
            Some(json!({ "compatibility": "NONE" })),
        )
        .await;
    assert_eq!(
        (status, set),
        (StatusCode::OK, json!({ "compatibility": "NONE" }))
    );
    let (_, global) = r.call(Method::GET, "/config", None).await;
    assert_eq!(global, json!({ "compatibilityLevel": "BACKWARD" }));
    let (status, _) = r.call(Method::GET, "/config/audit-value", None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, fallback) = r
        .call(
            Method::GET,
            "/config/audit-value?defaultToGlobal=true",
            None,
        )
        .await;
    assert_eq!(fallback, json!({ "compatibilityLevel": "BACKWARD" }));
    let (status, third) = r.register("users-value", USER_BAD).await;
    assert_eq!(status, StatusCode::OK, "{third}");

    // Deleting: soft first, then permanent; the ids stay the schemas'.
    let (status, _) = r
        .call(Method::DELETE, "/subjects/audit-value?permanent=true", None)
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, deleted) = r.call(Method::DELETE, "/subjects/audit-value", None).await;
    assert_eq!(deleted, json!([1]));
    let (_, subjects) = r.call(Method::GET, "/subjects", None).await;
    assert_eq!(subjects, json!(["users-value"]));
    let (_, subjects) = r.call(Method::GET, "/subjects?deleted=true", None).await;
    assert_eq!(subjects, json!(["audit-value", "users-value"]));
    let (_, gone) = r
        .call(Method::DELETE, "/subjects/audit-value?permanent=true", None)
        .await;
    assert_eq!(gone, json!([1]));
    let (_, again) = r.register("audit-value", USER_V1).await;
    assert_eq!(
        again["id"], id1,
        "a schema keeps its id after a permanent delete elsewhere"
    );

    // Every kind of bad input gets Confluent's code.
    for (method, path, body, status, code) in [
        (
            Method::GET,
            "/subjects/nobody/versions",
            None,
            StatusCode::NOT_FOUND,
            40401,
        ),
        (
            Method::GET,
            "/subjects/users-value/versions/9",
            None,
            StatusCode::NOT_FOUND,
            40402,
        ),
        (
            Method::GET,
            "/schemas/ids/999",
            None,
            StatusCode::NOT_FOUND,
            40403,
        ),
        (
            Method::GET,
            "/subjects/users-value/versions/zero",
            None,
            StatusCode::UNPROCESSABLE_ENTITY,
            42202,
        ),
        (
            Method::POST,
            "/subjects/x/versions",
            Some(json!({ "schema": "{\"type\":\"nope\"}" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            Method::POST,
            "/subjects/x/versions",
            Some(json!({ "schema": "not json" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            Method::POST,
            "/subjects/x/versions",
            Some(json!({ "schema": "{}", "schemaType": "PROTOBUF" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            42201,
        ),
        (
            Method::POST,
            "/subjects/x/versions",
            Some(json!({ "schema": USER_V1, "id": 7 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            42205,
        ),
        (
            Method::POST,
            "/subjects/x/versions",
            Some(json!({ "nothing": 1 })),
            StatusCode::UNPROCESSABLE_ENTITY,
            422,
        ),
        (
            Method::PUT,
            "/config",
            Some(json!({ "compatibility": "SIDEWAYS" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            42203,
        ),
        (
            Method::PUT,
            "/mode",
            Some(json!({ "mode": "WRITEONLY" })),
            StatusCode::UNPROCESSABLE_ENTITY,
            42204,
        ),
        (
            Method::POST,
            "/subjects/users-value",
            Some(json!({ "schema": USER_BAD.replace("age", "height") })),
            StatusCode::NOT_FOUND,
            40403,
        ),
        (
            Method::GET,
            "/no/such/route",
            None,
            StatusCode::NOT_FOUND,
            404,
        ),
    ] {
        let (got, body) = r.call(method.clone(), path, body).await;
        assert_eq!(
            (got, body["error_code"].clone()),
            (status, json!(code)),
            "{method} {path}: {body}"
        );
    }

    // ?normalize=true (in any case, as Python's client writes it): reordered attributes are the
    // same schema.
    let reordered = r#"{"namespace":"shop","name":"User","type":"record","fields":[{"type":"long","name":"id"}]}"#;
    let mut ids = Vec::new();
    for (schema, flag) in [(USER_V1, "true"), (reordered, "True")] {
        let (status, body) = r
            .call(
                Method::POST,
                &format!("/subjects/normalized/versions?normalize={flag}"),
                Some(json!({ "schema": schema })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        ids.push(body["id"].clone());
    }
    assert_eq!(ids[0], ids[1]);
    let (_, versions) = r
        .call(
            Method::GET,
            "/subjects/normalized/versions?deleted=False",
            None,
        )
        .await;
    assert_eq!(versions, json!([1]));
}
on_both_backends!(avro_schemas_evolve_under_the_subjects_rules);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_cluster_has_its_own_registry_and_only_all_credentials_write() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "one").await;
    let r = registry(&app, &cluster);
    let (_, registered) = r.register("orders-value", USER_V1).await;
    let id = registered["id"].as_i64().unwrap();

    // Another tenant's cluster sees nothing of it, not even by id.
    let stranger = app.new_user().await;
    let theirs = app.new_cluster(&stranger, "two").await;
    let them = registry(&app, &theirs);
    let (_, subjects) = them.call(Method::GET, "/subjects", None).await;
    assert_eq!(subjects, json!([]));
    let (status, body) = them
        .call(Method::GET, &format!("/schemas/ids/{id}"), None)
        .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::NOT_FOUND, json!(40403))
    );

    // A CONSUME credential reads (its deserializer needs to) but does not write.
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    let (status, reader) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &user.auth(),
            Some(json!({ "credential_name": "reader", "cluster_id": cluster_id, "topic": "orders", "permissions": "CONSUME" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{reader}");
    let read_only = registry(&app, &reader);
    let (status, _) = read_only
        .call(Method::GET, &format!("/schemas/ids/{id}"), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    for (method, path, body) in [
        (
            Method::POST,
            "/subjects/orders-value/versions",
            Some(json!({ "schema": USER_V2 })),
        ),
        (Method::DELETE, "/subjects/orders-value", None),
        (
            Method::PUT,
            "/config",
            Some(json!({ "compatibility": "NONE" })),
        ),
        (Method::PUT, "/mode", Some(json!({ "mode": "READONLY" }))),
    ] {
        let (status, body) = read_only.call(method.clone(), path, body).await;
        assert_eq!(
            (status, body["error_code"].clone()),
            (StatusCode::FORBIDDEN, json!(40301)),
            "{method} {path}"
        );
    }

    // No credential, or a wrong one: 401 in the registry's shape.
    let (status, body) = app
        .rest(
            Method::GET,
            "/schema-registry/subjects",
            Some((r.user.as_str(), "wrong")),
            None,
            &[],
        )
        .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNAUTHORIZED, json!(40101))
    );

    // Deleting the cluster deletes its registry (and only its registry).
    them.register("theirs-value", USER_V1).await;
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v2/kafka/cluster/{cluster_id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let store = capstan_api::store::Store::connect(&app.persisted.database_url)
        .await
        .unwrap();
    let (left,): (i64,) =
        sqlx::query_as("SELECT COUNT(*) FROM registry_versions WHERE cluster_id = $1")
            .bind(cluster_id)
            .fetch_one(store.pool())
            .await
            .unwrap();
    assert_eq!(left, 0);
    let (_, subjects) = them.call(Method::GET, "/subjects", None).await;
    assert_eq!(subjects, json!(["theirs-value"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn import_mode_keeps_the_ids_of_another_registry() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "import").await;
    let r = registry(&app, &cluster);
    let (status, mode) = r
        .call(Method::PUT, "/mode", Some(json!({ "mode": "IMPORT" })))
        .await;
    assert_eq!(
        (status, mode),
        (StatusCode::OK, json!({ "mode": "IMPORT" }))
    );
    // Ids and versions as the old registry had them; no compatibility check while importing.
    for (subject, schema, id, version) in [
        ("users-value", USER_V1, 100_042, 1),
        ("users-value", USER_BAD, 100_077, 2),
        ("audit-value", USER_V1, 100_042, 4),
    ] {
        let (status, body) = r
            .call(
                Method::POST,
                &format!("/subjects/{subject}/versions"),
                Some(json!({ "schema": schema, "id": id, "version": version })),
            )
            .await;
        assert_eq!(
            (status, body),
            (StatusCode::OK, json!({ "id": id })),
            "{subject} v{version}"
        );
    }
    // An id that holds another schema is refused.
    let (status, body) = r
        .call(
            Method::POST,
            "/subjects/x/versions",
            Some(json!({ "schema": USER_V2, "id": 100_042 })),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(42205))
    );
    r.call(Method::PUT, "/mode", Some(json!({ "mode": "READWRITE" })))
        .await;
    let (_, by_id) = r.call(Method::GET, "/schemas/ids/100077", None).await;
    assert_eq!(by_id, json!({ "schema": USER_BAD }));
    let (_, audit) = r
        .call(Method::GET, "/subjects/audit-value/versions", None)
        .await;
    assert_eq!(audit, json!([4]));
    // New registrations continue after the imported ids.
    let (_, next) = r.register("fresh-value", USER_V2).await;
    assert_eq!(next["id"], 100_078);
    // READONLY refuses writes.
    r.call(Method::PUT, "/mode", Some(json!({ "mode": "READONLY" })))
        .await;
    let (status, body) = r.register("fresh-value", USER_V1).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(42205))
    );
    // IMPORT on a registry with subjects needs force.
    let (status, _) = r
        .call(Method::PUT, "/mode", Some(json!({ "mode": "IMPORT" })))
        .await;
    assert_eq!(status, StatusCode::UNPROCESSABLE_ENTITY);
    let (status, _) = r
        .call(
            Method::PUT,
            "/mode?force=true",
            Some(json!({ "mode": "IMPORT" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn references_and_json_schemas() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "refs").await;
    let r = registry(&app, &cluster);
    let address = r#"{"type":"record","name":"Address","namespace":"shop","fields":[{"name":"city","type":"string"}]}"#;
    let order = r#"{"type":"record","name":"Order","namespace":"shop","fields":[{"name":"to","type":"shop.Address"}]}"#;
    let (_, address_id) = r.register("address", address).await;
    let reference = json!([{ "name": "shop.Address", "subject": "address", "version": 1 }]);
    let (status, body) = r.register("orders-value", order).await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(42201)),
        "an unknown name without its reference"
    );
    let (status, order_id) = r
        .call(
            Method::POST,
            "/subjects/orders-value/versions",
            Some(json!({ "schema": order, "references": reference })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{order_id}");
    let (_, by_id) = r
        .call(
            Method::GET,
            &format!("/schemas/ids/{}", order_id["id"]),
            None,
        )
        .await;
    assert_eq!(by_id["references"], reference);
    // ?format=resolved writes the referenced type out where it is used; as stored otherwise.
    let inlined = json!({"type": "record", "name": "Order", "namespace": "shop", "fields": [
        {"name": "to", "type": serde_json::from_str::<Value>(address).unwrap()}]});
    for path in [
        format!("/schemas/ids/{}?format=resolved", order_id["id"]),
        "/subjects/orders-value/versions/1?format=resolved".to_owned(),
    ] {
        let (status, resolved) = r.call(Method::GET, &path, None).await;
        assert_eq!(status, StatusCode::OK, "{path}: {resolved}");
        let schema: Value = serde_json::from_str(resolved["schema"].as_str().unwrap()).unwrap();
        assert_eq!(
            (schema, &resolved["references"]),
            (inlined.clone(), &reference),
            "{path}"
        );
    }
    let (_, unresolved) = r
        .call(
            Method::GET,
            &format!("/schemas/ids/{}?format=ignore_extensions", order_id["id"]),
            None,
        )
        .await;
    assert_eq!(
        unresolved["schema"],
        json!(order),
        "other formats answer as stored"
    );
    let (_, referencing) = r
        .call(
            Method::GET,
            "/subjects/address/versions/1/referencedby",
            None,
        )
        .await;
    assert_eq!(referencing, json!([order_id["id"]]));
    let (status, body) = r
        .call(Method::DELETE, "/subjects/address/versions/1", None)
        .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(42206))
    );
    assert_ne!(address_id["id"], order_id["id"]);

    // JSON Schema: closed content model, an optional property added is BACKWARD compatible,
    // a new required one is not.
    let v1 = json!({"type": "object", "properties": {"id": {"type": "integer"}}, "additionalProperties": false});
    let v2 = json!({"type": "object", "properties": {"id": {"type": "integer"}, "note": {"type": "string"}}, "additionalProperties": false});
    let v3 = json!({"type": "object", "properties": {"id": {"type": "integer"}, "note": {"type": "string"}, "tag": {"type": "string"}}, "required": ["tag"], "additionalProperties": false});
    for (schema, status) in [
        (v1, StatusCode::OK),
        (v2, StatusCode::OK),
        (v3, StatusCode::CONFLICT),
    ] {
        let (got, body) = r
            .call(
                Method::POST,
                "/subjects/events-value/versions",
                Some(json!({ "schema": schema.to_string(), "schemaType": "JSON" })),
            )
            .await;
        assert_eq!(got, status, "{body}");
    }
    let (_, latest) = r
        .call(Method::GET, "/subjects/events-value/versions/latest", None)
        .await;
    assert_eq!(
        (latest["version"].clone(), latest["schemaType"].clone()),
        (json!(2), json!("JSON"))
    );
}

/// Producers that start together all register the same new schema: one id, one version.
async fn concurrent_registrations_of_one_schema_make_one_version(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "race").await;
    let (user, pass) = (
        cluster["username"].as_str().unwrap().to_owned(),
        cluster["password"].as_str().unwrap().to_owned(),
    );
    let mut registrations = tokio::task::JoinSet::new();
    for _ in 0..16 {
        let request = app
            .client
            .post(format!(
                "http://{}/schema-registry/subjects/race-value/versions",
                app.gateway
            ))
            .basic_auth(&user, Some(&pass))
            .json(&json!({ "schema": USER_V1 }));
        registrations.spawn(async move {
            let response = request.send().await.unwrap();
            (response.status(), response.json::<Value>().await.unwrap())
        });
    }
    let answers = registrations.join_all().await;
    let first = answers[0].1.clone();
    for (status, body) in &answers {
        assert_eq!((*status, body), (StatusCode::OK, &first));
    }
    let (_, versions) = registry(&app, &cluster)
        .call(Method::GET, "/subjects/race-value/versions", None)
        .await;
    assert_eq!(versions, json!([1]));
}
on_both_backends!(concurrent_registrations_of_one_schema_make_one_version);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_registry_openapi_document_describes_routes_that_exist() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "documented").await;
    let (status, document) = app
        .rest(
            Method::GET,
            "/schema-registry/openapi.json",
            None,
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(document["openapi"], "3.1.0");
    let operations = capstan_api::schema_registry::openapi::operations();
    assert!(operations.len() >= 25, "{operations:?}");
    let r = registry(&app, &cluster);
    for (method, path) in operations {
        let concrete = path
            .replace("{id}", "1")
            .replace("{subject}", "s")
            .replace("{version}", "1");
        let method = Method::from_bytes(method.as_bytes()).unwrap();
        let (status, body) = r
            .call(
                method.clone(),
                &concrete,
                Some(json!({ "schema": USER_V1, "compatibility": "FULL", "mode": "READWRITE" })),
            )
            .await;
        assert_ne!(
            status,
            StatusCode::METHOD_NOT_ALLOWED,
            "{method} {path} is documented but not routed"
        );
        assert_ne!(
            body["error_code"], 404,
            "{method} {path} is documented but not routed: {body}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protobuf_schemas_evolve_by_field_number() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "proto").await;
    let r = registry(&app, &cluster);
    let v1 = "syntax = \"proto3\";\npackage shop;\n\nmessage Order {\n  int64 id = 1;\n  string item = 2;\n}\n";
    let v2 = "syntax = \"proto3\";\npackage shop;\n\nmessage Order {\n  int64 id = 1;\n  string item = 2;\n  int32 quantity = 3;\n}\n";
    let retyped = "syntax = \"proto3\";\npackage shop;\n\nmessage Order {\n  string id = 1;\n  string item = 2;\n}\n";
    let mut ids = Vec::new();
    for (schema, status) in [
        (v1, StatusCode::OK),
        (v2, StatusCode::OK),
        (retyped, StatusCode::CONFLICT),
    ] {
        let (got, body) = r
            .call(
                Method::POST,
                "/subjects/orders-value/versions",
                Some(json!({ "schema": schema, "schemaType": "PROTOBUF" })),
            )
            .await;
        assert_eq!(got, status, "{body}");
        ids.push(body["id"].clone());
    }
    let (_, stored) = r
        .call(Method::GET, &format!("/schemas/ids/{}", ids[1]), None)
        .await;
    assert_eq!(
        stored,
        json!({ "schema": v2, "schemaType": "PROTOBUF" }),
        "stored as sent"
    );
    let (status, body) = r
        .call(
            Method::POST,
            "/subjects/broken/versions",
            Some(json!({ "schema": "message { int32 = 1 }", "schemaType": "PROTOBUF" })),
        )
        .await;
    assert_eq!(
        (status, body["error_code"].clone()),
        (StatusCode::UNPROCESSABLE_ENTITY, json!(42201))
    );
}
