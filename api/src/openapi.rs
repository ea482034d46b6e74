//! The OpenAPI 3.1 document of the control plane, served at `/openapi.json`.
//!
//! Built in code next to the routes; a test checks that every route of the router is
//! described here and nothing else.

use serde_json::{Value, json};

fn string() -> Value {
    json!({ "type": "string" })
}
fn integer() -> Value {
    json!({ "type": "integer", "format": "int64" })
}
fn boolean() -> Value {
    json!({ "type": "boolean" })
}
fn reference(name: &str) -> Value {
    json!({ "$ref": format!("#/components/schemas/{name}") })
}
fn array_of(name: &str) -> Value {
    json!({ "type": "array", "items": reference(name) })
}
fn object(required: &[&str], properties: &[(&str, Value)], closed: bool) -> Value {
    let props: serde_json::Map<String, Value> = properties
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect();
    let mut schema = json!({ "type": "object", "required": required, "properties": props });
    if closed {
        schema["additionalProperties"] = json!(false);
    }
    schema
}

fn error_response(description: &str) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": reference("Error") } } })
}

fn json_response(description: &str, schema: Value) -> Value {
    json!({ "description": description, "content": { "application/json": { "schema": schema } } })
}

/// An operation: `public` ones need no authentication.
fn operation(
    summary: &str,
    public: bool,
    body: Option<Value>,
    ok_status: &str,
    ok: Value,
    path_param: Option<&str>,
) -> Value {
    let mut responses = serde_json::Map::new();
    responses.insert(ok_status.to_owned(), ok);
    responses.insert("400".into(), error_response("Invalid input"));
    if !public {
        responses.insert(
            "403".into(),
            error_response("Beyond the plan's limits or the account's quota"),
        );
        responses.insert("401".into(), error_response("Missing or wrong credentials"));
        responses.insert("404".into(), error_response("Not found (or not yours)"));
        responses.insert(
            "409".into(),
            error_response("Conflicts with an existing resource"),
        );
        responses.insert(
            "429".into(),
            error_response(
                "Too many requests in progress for the account, or too many wrong passwords; see Retry-After",
            ),
        );
        responses.insert(
            "503".into(),
            error_response(
                "The cluster's brokers or the database are unavailable; see Retry-After",
            ),
        );
    } else {
        responses.insert("401".into(), error_response("Wrong credentials"));
        responses.insert("409".into(), error_response("Already exists"));
        responses.insert(
            "429".into(),
            error_response("Too many failed log-ins or sign-ups; see Retry-After"),
        );
        responses.insert(
            "503".into(),
            error_response("Too many log-ins and sign-ups at once; see Retry-After"),
        );
    }
    let mut op = json!({ "summary": summary, "responses": responses });
    if public {
        op["security"] = json!([]);
    }
    if let Some(schema) = body {
        op["requestBody"] =
            json!({ "required": true, "content": { "application/json": { "schema": schema } } });
    }
    if let Some(name) = path_param {
        op["parameters"] =
            json!([{ "name": name, "in": "path", "required": true, "schema": string() }]);
    }
    op
}

const CLUSTER_NAME: &str = "^[A-Za-z0-9._-][A-Za-z0-9 ._-]{0,63}$";
const TOPIC_NAME: &str = "^[A-Za-z0-9_-][A-Za-z0-9._-]{0,248}$";
const CREDENTIAL_NAME: &str = "^[A-Za-z0-9._-]{1,64}$";
const TOPIC_SCOPE: &str = "^(\\*|[A-Za-z0-9_-][A-Za-z0-9._-]{0,248}\\*?)$";

fn pattern(regex: &str) -> Value {
    json!({ "type": "string", "pattern": regex })
}

/// `-1` (the plan maximum) or a positive value.
fn plan_bounded() -> Value {
    json!({ "type": "integer", "format": "int64", "minimum": -1, "maximum": i64::MAX, "not": { "const": 0 } })
}

fn text_operation(summary: &str, media_type: &str) -> Value {
    let mut op = operation(
        summary,
        false,
        None,
        "200",
        json!({ "description": summary, "content": { media_type: { "schema": string() } } }),
        Some("id"),
    );
    op["responses"].as_object_mut().map(|r| r.remove("400"));
    op
}

fn usage_operation() -> Value {
    let mut op = operation(
        "Usage by hour or day, with per-topic totals",
        false,
        None,
        "200",
        json_response("Usage", reference("Usage")),
        Some("id"),
    );
    let query = |name: &str, schema: Value| json!({ "name": name, "in": "query", "required": false, "schema": schema });
    if let Some(parameters) = op["parameters"].as_array_mut() {
        parameters.push(query(
            "from",
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX }),
        ));
        parameters.push(query(
            "to",
            json!({ "type": "integer", "format": "int64", "minimum": 0, "maximum": i64::MAX }),
        ));
        parameters.push(query("granularity", json!({ "enum": ["hour", "day"] })));
    }
    op
}

/// `POST /v2/kafka/cluster`, with `?wait=true` (answer once the cluster is ready) and its bound.
fn create_cluster_operation(cluster: Value) -> Value {
    let mut op = operation(
        "Create a cluster (with wait=true: answer once it is no longer provisioning, or after timeout seconds)",
        false,
        Some(reference("CreateCluster")),
        "200",
        cluster,
        None,
    );
    op["parameters"] = json!([
        { "name": "wait", "in": "query", "required": false, "schema": { "type": "boolean" } },
        { "name": "timeout", "in": "query", "required": false,
          "schema": { "type": "integer", "minimum": 0, "maximum": crate::clusters::MAX_CREATE_WAIT.as_secs() } }
    ]);
    op
}

/// The document; `regions` are the platform's.
pub fn document(regions: &[String]) -> Value {
    let ok_string = json_response("Done", json!({ "type": "string", "const": "OK" }));
    let mut signup = operation(
        "Create an account: at once (201), or, when sign-ups are confirmed by mail, once the mailed link is used (202, the same answer whether or not the address has an account)",
        true,
        Some(reference("Credentials")),
        "201",
        json_response("The account", reference("Account")),
        None,
    );
    signup["responses"]["202"] = json_response(
        "A mail is on its way to the address",
        object(&["result"], &[("result", string())], false),
    );
    let cluster = json_response("The cluster", reference("Cluster"));
    let topic = json_response("The topic", reference("Topic"));
    json!({
        "openapi": "3.1.0",
        "info": {
            "title": "Capstan control plane",
            "version": env!("CARGO_PKG_VERSION"),
            "description": "Accounts, API keys and the provisioning API, shaped like Upstash's Developer API (/v2/kafka/...)."
        },
        "security": [{ "basic": [] }, { "bearer": [] }],
        "paths": {
            "/v2/auth/signup": { "post": signup },
            "/v2/auth/signup/confirm": { "post": operation("Create the account of a mailed sign-up confirmation link", true,
                Some(object(&["token"], &[("token", string())], true)),
                "201", json_response("The account", reference("Account")), None) },
            "/v2/auth/login": { "post": operation("Log in and get a session token", true, Some(reference("Credentials")), "200", json_response("A session", reference("Session")), None) },
            "/v2/auth/logout": { "post": operation("End the caller's session (Bearer token)", false, None, "200", ok_string.clone(), None) },
            "/v2/auth/password": { "post": operation("Change the password: every session ends, a new one is answered", false,
                Some(object(&["current_password", "new_password"], &[("current_password", string()), ("new_password", json!({ "type": "string", "minLength": 10, "maxLength": 128 }))], true)),
                "200", json_response("A new session", reference("Session")), None) },
            "/v2/auth/password-reset": { "post": operation("Mail a one-time password reset link to the address, when it has an account (the same answer either way)", true,
                Some(object(&["email"], &[("email", json!({ "type": "string", "format": "email", "maxLength": 254 }))], true)),
                "202", json_response("Asked", object(&["result"], &[("result", string())], false)), None) },
            "/v2/auth/password-reset/confirm": { "post": operation("Set a new password with a reset link's token: every session ends, a new one is answered", true,
                Some(object(&["token", "new_password"], &[("token", string()), ("new_password", json!({ "type": "string", "minLength": 10, "maxLength": 128 }))], true)),
                "200", json_response("A new session", reference("Session")), None) },
            "/v2/api-keys": {
                "get": operation("List API keys", false, None, "200", json_response("Keys", array_of("ApiKey")), None),
                "post": operation("Create an API key (its secret is shown once)", false, Some(object(&["name"], &[("name", pattern(CLUSTER_NAME))], true)), "201", json_response("The key with its secret", reference("NewApiKey")), None)
            },
            "/v2/api-keys/{id}": { "delete": operation("Revoke an API key", false, None, "200", ok_string.clone(), Some("id")) },
            "/v2/kafka/cluster": { "post": create_cluster_operation(cluster.clone()) },
            "/v2/kafka/clusters": { "get": operation("List clusters", false, None, "200", json_response("Clusters", array_of("Cluster")), None) },
            "/v2/kafka/cluster/{id}": {
                "get": operation("Get a cluster", false, None, "200", cluster.clone(), Some("id")),
                "delete": operation("Delete a cluster with its brokers and data", false, None, "200", ok_string.clone(), Some("id"))
            },
            "/v2/kafka/rename-cluster/{id}": { "post": operation("Rename a cluster", false, Some(object(&["name"], &[("name", pattern(CLUSTER_NAME))], true)), "200", cluster.clone(), Some("id")) },
            "/v2/kafka/reset-password/{id}": { "post": operation("Give the default credential a new password", false, None, "200", cluster, Some("id")) },
            "/v2/kafka/topic": { "post": operation("Create a topic", false, Some(reference("CreateTopic")), "200", topic.clone(), None) },
            "/v2/kafka/topics/{cluster_id}": { "get": operation("List a cluster's topics", false, None, "200", json_response("Topics", array_of("Topic")), Some("cluster_id")) },
            "/v2/kafka/topic/{id}": {
                "get": operation("Get a topic", false, None, "200", topic.clone(), Some("id")),
                "delete": operation("Delete a topic and its data", false, None, "200", ok_string.clone(), Some("id"))
            },
            "/v2/kafka/update-topic/{id}": { "post": operation("Grow partitions or change limits", false, Some(reference("UpdateTopic")), "200", topic, Some("id")) },
            "/v2/kafka/credential": { "post": operation("Create a scoped credential", false, Some(reference("CreateCredential")), "200", json_response("The credential", reference("Credential")), None) },
            "/v2/kafka/credentials": { "get": operation("List scoped credentials of every cluster", false, None, "200", json_response("Credentials", array_of("Credential")), None) },
            "/v2/kafka/credential/{id}": { "delete": operation("Delete a scoped credential", false, None, "200", ok_string.clone(), Some("id")) },
            "/v2/kafka/update-budget/{id}": { "patch": operation("Set the monthly budget (whole dollars, 0 = none)", false,
                Some(object(&["budget"], &[("budget", json!({ "type": "integer", "minimum": 0, "maximum": 1_000_000_000 }))], true)), "200", ok_string.clone(), Some("id")) },
            "/v2/kafka/cost/{id}": { "get": operation("Month-to-date cost, forecast, cap and notifications", false, None, "200", json_response("Cost", reference("Cost")), Some("id")) },
            "/v2/cost": { "get": operation("The account's month so far: totals and each cluster", false, None, "200", json_response("Cost", json!({ "type": "object" })), None) },
            "/v2/invoices/{id}/usage.csv": { "get": text_operation("The hourly usage behind the invoice, as CSV", "text/csv") },
            "/v2/stripe/webhook": { "post": { "summary": "Stripe's webhook (authenticated by its Stripe-Signature header)", "security": [],
                "responses": { "200": json_response("Received", object(&["received"], &[("received", boolean())], false)),
                               "400": error_response("Bad or stale signature, or not JSON"),
                               "404": error_response("Stripe is not configured") } } },
            "/v2/invoices": { "get": operation("The account's invoices, newest first", false, None, "200", json_response("Invoices", array_of("Invoice")), None) },
            "/v2/invoices/{id}": { "get": operation("One invoice", false, None, "200", json_response("The invoice", reference("Invoice")), Some("id")) },
            "/v2/invoices/{id}/csv": { "get": text_operation("The invoice's lines as CSV", "text/csv") },
            "/v2/invoices/{id}/html": { "get": text_operation("The invoice as a printable page", "text/html") },
            "/v2/kafka/stats/cluster/{id}": { "get": operation("Cluster statistics (Upstash's ClusterStats shape)", false, None, "200", json_response("Statistics", reference("ClusterStats")), Some("id")) },
            "/v2/kafka/stats/topic/{id}": { "get": operation("Topic statistics (Upstash's TopicStats shape)", false, None, "200", json_response("Statistics", reference("TopicStats")), Some("id")) },
            "/v2/kafka/usage/{id}": { "get": usage_operation() },
            "/healthz": { "get": { "summary": "Liveness", "security": [], "responses": { "200": json_response("Alive", object(&["status"], &[("status", string())], false)) } } },
            "/readyz": { "get": { "summary": "Readiness (database reachable)", "security": [], "responses": {
                "200": json_response("Ready", object(&["status"], &[("status", string())], false)),
                "503": json_response("Not ready", object(&["status"], &[("status", string())], false)) } } },
            "/metrics": { "get": { "summary": "Prometheus metrics (clients on the same host, or Bearer --metrics-token)", "security": [], "responses": {
                "200": { "description": "Text exposition format", "content": { "text/plain": { "schema": string() } } },
                "401": error_response("The metrics token is missing or wrong"),
                "403": error_response("Not on this host and no metrics token is set") } } },
            "/openapi.json": { "get": { "summary": "This document", "security": [], "responses": { "200": json_response("OpenAPI 3.1", json!({ "type": "object" })) } } }
        },
        "components": {
            "securitySchemes": {
                "basic": { "type": "http", "scheme": "basic", "description": "EMAIL:API_KEY" },
                "bearer": { "type": "http", "scheme": "bearer", "bearerFormat": "JWT", "description": "Token from /v2/auth/login" }
            },
            "schemas": {
                "Line": object(&["kind", "quantity", "micros", "cents"], &[("kind", string()), ("quantity", integer()), ("micros", integer()), ("cents", integer())], false),
                "Cost": object(&["month", "month_to_date_cents", "forecast_cents", "cap_cents", "budget_dollars", "notifications", "lines"],
                    &[("month", string()), ("month_to_date_cents", integer()), ("forecast_cents", integer()), ("cap_cents", integer()),
                      ("budget_dollars", integer()), ("notifications", json!({ "type": "array", "items": integer() })), ("lines", array_of("Line"))], false),
                "InvoiceLine": object(&["line_no", "cluster_id", "cluster_name", "kind", "quantity", "micros", "cents"],
                    &[("line_no", integer()), ("cluster_id", string()), ("cluster_name", string()), ("kind", string()), ("quantity", integer()),
                      ("micros", integer()), ("cents", integer())], false),
                "Invoice": object(&["id", "account_id", "month", "number", "state", "total_cents", "created_at", "finalized_at", "payment_problem", "lines"],
                    &[("id", string()), ("account_id", string()), ("month", string()), ("number", json!({ "type": ["integer", "null"] })),
                      ("payment_problem", json!({ "type": ["string", "null"] })),
                      ("state", json!({ "enum": ["open", "paid", "void"] })), ("total_cents", integer()), ("created_at", integer()),
                      ("finalized_at", json!({ "type": ["integer", "null"] })), ("lines", array_of("InvoiceLine"))], false),
                "Point": object(&["x", "y"], &[("x", string()), ("y", integer())], false),
                "ClusterStats": object(
                    &["throughput", "produce_throughput", "consume_throughput", "diskusage", "days", "dailyproduce", "dailyconsume",
                      "total_monthly_storage", "total_monthly_billing", "total_monthly_produce", "total_monthly_consume"],
                    &[("throughput", array_of("Point")), ("produce_throughput", array_of("Point")), ("consume_throughput", array_of("Point")),
                      ("diskusage", array_of("Point")), ("days", json!({ "type": "array", "items": string() })), ("dailyproduce", array_of("Point")),
                      ("dailyconsume", array_of("Point")), ("total_monthly_storage", integer()), ("total_monthly_billing", json!({ "type": ["number", "null"] })),
                      ("total_monthly_produce", integer()), ("total_monthly_consume", integer())],
                    false),
                "TopicStats": object(
                    &["throughput", "produce_throughput", "consume_throughput", "diskusage", "total_monthly_storage", "total_monthly_produce", "total_monthly_consume"],
                    &[("throughput", array_of("Point")), ("produce_throughput", array_of("Point")), ("consume_throughput", array_of("Point")),
                      ("diskusage", array_of("Point")), ("total_monthly_storage", integer()), ("total_monthly_produce", integer()), ("total_monthly_consume", integer())],
                    false),
                "UsagePoint": object(&["time", "produced", "consumed", "storage_bytes"], &[("time", integer()), ("produced", integer()), ("consumed", integer()), ("storage_bytes", integer())], false),
                "TopicUsage": object(&["topic", "produced", "consumed"], &[("topic", string()), ("produced", integer()), ("consumed", integer())], false),
                "Usage": object(&["cluster_id", "from", "to", "granularity", "points", "topics"],
                    &[("cluster_id", string()), ("from", integer()), ("to", integer()), ("granularity", json!({ "enum": ["hour", "day"] })),
                      ("points", array_of("UsagePoint")), ("topics", array_of("TopicUsage"))], false),
                "Error": object(&["error", "message", "status"], &[("error", string()), ("message", string()), ("status", integer())], false),
                "Credentials": object(&["email", "password"], &[("email", json!({ "type": "string", "format": "email", "maxLength": 254 })), ("password", json!({ "type": "string", "minLength": 10, "maxLength": 128 }))], true),
                "Account": object(&["id", "email", "created_at"], &[("id", string()), ("email", string()), ("created_at", integer())], false),
                "Session": object(&["token", "expires_at"], &[("token", string()), ("expires_at", integer())], false),
                "ApiKey": object(&["id", "name", "created_at", "last_used_at"], &[("id", string()), ("name", string()), ("created_at", integer()), ("last_used_at", json!({ "type": ["integer", "null"] }))], false),
                "NewApiKey": object(&["id", "name", "key", "created_at"], &[("id", string()), ("name", string()), ("key", string()), ("created_at", integer())], false),
                "CreateCluster": object(&["name", "region"], &[("name", pattern(CLUSTER_NAME)), ("region", json!({ "enum": regions })), ("multizone", boolean()), ("placement", json!({ "enum": ["shared", "dedicated", null], "description": "shared (a virtual cluster on the shared brokers) or dedicated; absent or null: the platform's default" }))], true),
                "Cluster": object(
                    &["cluster_id", "name", "region", "type", "multizone", "tcp_endpoint", "rest_endpoint", "state", "username", "password",
                      "max_retention_size", "max_retention_time", "max_messages_per_second", "creation_time", "max_message_size", "max_partitions", "budget", "placement"],
                    &[("cluster_id", string()), ("name", string()), ("region", string()), ("type", json!({ "enum": ["free", "paid", "pro"] })),
                      ("multizone", boolean()), ("tcp_endpoint", string()), ("rest_endpoint", string()), ("state", string()),
                      ("username", string()), ("password", string()), ("max_retention_size", integer()), ("max_retention_time", integer()),
                      ("max_messages_per_second", integer()), ("creation_time", integer()), ("max_message_size", integer()), ("max_partitions", integer()),
                      ("budget", integer()), ("placement", json!({ "enum": ["shared", "dedicated"] }))],
                    false),
                "CreateTopic": object(
                    &["name", "partitions", "retention_time", "retention_size", "max_message_size", "cleanup_policy", "cluster_id"],
                    &[("name", pattern(TOPIC_NAME)), ("partitions", json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX })), ("retention_time", plan_bounded()), ("retention_size", plan_bounded()),
                      ("max_message_size", plan_bounded()), ("cleanup_policy", json!({ "enum": ["delete", "compact"] })), ("cluster_id", string())],
                    true),
                "UpdateTopic": object(&[], &[("partitions", json!({ "type": "integer", "format": "int64", "minimum": 1, "maximum": i64::MAX })), ("retention_time", plan_bounded()), ("retention_size", plan_bounded()), ("max_message_size", plan_bounded())], true),
                "Topic": object(
                    &["topic_id", "topic_name", "cluster_id", "region", "creation_time", "state", "partitions", "multizone", "tcp_endpoint",
                      "rest_endpoint", "username", "password", "cleanup_policy", "retention_size", "retention_time", "max_message_size"],
                    &[("topic_id", string()), ("topic_name", string()), ("cluster_id", string()), ("region", string()), ("creation_time", integer()),
                      ("state", string()), ("partitions", integer()), ("multizone", boolean()), ("tcp_endpoint", string()), ("rest_endpoint", string()),
                      ("username", string()), ("password", string()), ("cleanup_policy", string()), ("retention_size", integer()),
                      ("retention_time", integer()), ("max_message_size", integer())],
                    false),
                "CreateCredential": object(
                    &["credential_name", "cluster_id", "topic", "permissions"],
                    &[("credential_name", pattern(CREDENTIAL_NAME)), ("cluster_id", string()), ("topic", pattern(TOPIC_SCOPE)), ("permissions", json!({ "enum": ["ALL", "PRODUCE", "CONSUME"] }))],
                    true),
                "Credential": object(
                    &["credential_id", "credential_name", "topic", "permissions", "cluster_id", "cluster_slug", "username", "password", "creation_time", "state"],
                    &[("credential_id", string()), ("credential_name", string()), ("topic", string()), ("permissions", string()), ("cluster_id", string()),
                      ("cluster_slug", string()), ("username", string()), ("password", string()), ("creation_time", integer()), ("state", string())],
                    false)
            }
        }
    })
}

/// Every `(method, path)` the document describes, for the drift test.
pub fn operations() -> Vec<(String, String)> {
    let doc = document(&[]);
    let mut ops = Vec::new();
    if let Some(paths) = doc["paths"].as_object() {
        for (path, item) in paths {
            if let Some(methods) = item.as_object() {
                for method in methods.keys() {
                    ops.push((method.to_uppercase(), path.clone()));
                }
            }
        }
    }
    ops.sort();
    ops
}
