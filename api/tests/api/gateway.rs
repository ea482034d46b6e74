//! The REST data gateway at the HTTP level: every endpoint, the quirks real clients depend on,
//! and every kind of bad input.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Backend, TestApp, spawn_app};
use crate::kafka;

struct Fixture {
    app: TestApp,
    cluster: Value,
}

impl Fixture {
    fn creds(&self) -> (&str, &str) {
        (
            self.cluster["username"].as_str().unwrap(),
            self.cluster["password"].as_str().unwrap(),
        )
    }
}

/// The `value` of each message of a fetch answer.
fn values_of(fetched: &Value) -> Vec<&str> {
    fetched
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["value"].as_str().unwrap())
        .collect()
}

async fn fixture(topics: &[(&str, i64)]) -> Fixture {
    placed_fixture(topics, false).await
}

/// A cluster with brokers of its own when `dedicated`, else on the shared pool.
async fn placed_fixture(topics: &[(&str, i64)], dedicated: bool) -> Fixture {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = if dedicated {
        app.new_dedicated_cluster(&user, "rest").await
    } else {
        app.new_cluster(&user, "rest").await
    };
    for (name, partitions) in topics {
        app.new_topic(
            &user,
            cluster["cluster_id"].as_str().unwrap(),
            name,
            *partitions,
        )
        .await;
    }
    Fixture { app, cluster }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_accepts_every_documented_form() {
    let f = fixture(&[("cities", 3), ("greetings", 1)]).await;
    let c = Some(f.creds());
    // P1: the message in the path, percent-decoded; one Metadata object.
    let (status, one) = f
        .app
        .rest(
            Method::GET,
            "/produce/cities/Istanbul%20%C3%BCber?key=city",
            c,
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{one}");
    assert_eq!(one["topic"], "cities");
    assert!(one["offset"].is_i64() && one["timestamp"].is_i64());
    // P2 with GET and a JSON body, P2 with POST form-encoded, P3 with no content type.
    let (status, many) = f
        .app
        .rest(
            Method::GET,
            "/produce/greetings",
            c,
            Some(r#"[{"value":"a"},{"value":"b","key":"k"}]"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{many}");
    assert_eq!(many.as_array().unwrap().len(), 2);
    assert_eq!(
        many[1]["offset"].as_i64().unwrap(),
        many[0]["offset"].as_i64().unwrap() + 1
    );
    let form = [("content-type", "application/x-www-form-urlencoded")];
    let (status, single) = f
        .app
        .rest(
            Method::POST,
            "/produce/greetings",
            c,
            Some(r#"{"value":"form"}"#),
            &form,
        )
        .await;
    assert_eq!(
        (status, single.as_array().map(Vec::len)),
        (StatusCode::OK, Some(1))
    );
    let (status, mixed) = f.app.rest(Method::POST, "/produce/", c,
        Some(r#"[{"topic":"cities","value":{"json":true},"partition":2,"timestamp":1637743323016},{"topic":"greetings","value":"x"}]"#), &[]).await;
    assert_eq!(status, StatusCode::OK, "{mixed}");
    assert_eq!(mixed[0]["partition"], 2);
    assert_eq!(mixed[0]["timestamp"], 1637743323016_i64);
    assert_eq!(mixed[1]["topic"], "greetings");

    let (_, fetched) = f
        .app
        .rest(
            Method::POST,
            "/fetch",
            c,
            Some(r#"{"topic":"cities","partition":2,"offset":0}"#),
            &[],
        )
        .await;
    let values = values_of(&fetched);
    assert!(
        values.contains(&r#"{"json":true}"#),
        "non-string values are sent as their JSON text: {fetched}"
    );
    assert_eq!(
        kafka::message_count(&kafka::config(&f.cluster), "greetings"),
        4
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn produce_refuses_what_it_cannot_deliver_with_json_errors() {
    let f = fixture(&[("t", 2)]).await;
    let c = Some(f.creds());
    let too_big = format!(r#"{{"value":"{}"}}"#, "x".repeat(1_048_577));
    let too_many = format!("[{}]", vec![r#"{"value":"v"}"#; 1001].join(","));
    for (path, body, expected, needle) in [
        (
            "/produce/nope",
            r#"{"value":"v"}"#.to_owned(),
            StatusCode::NOT_FOUND,
            "does not exist",
        ),
        (
            "/produce/t",
            r#"{"value":"v","partition":2}"#.to_owned(),
            StatusCode::BAD_REQUEST,
            "out of range",
        ),
        (
            "/produce/t",
            r#"{"value":"v","partition":-1}"#.to_owned(),
            StatusCode::BAD_REQUEST,
            "out of range",
        ),
        (
            "/produce/t",
            too_big,
            StatusCode::BAD_REQUEST,
            "max_message_size",
        ),
        (
            "/produce/t",
            too_many,
            StatusCode::BAD_REQUEST,
            "at most 1000",
        ),
        (
            "/produce/t",
            r#"{"key":"no value"}"#.to_owned(),
            StatusCode::BAD_REQUEST,
            "value",
        ),
        (
            "/produce/t",
            "[]".to_owned(),
            StatusCode::BAD_REQUEST,
            "no messages",
        ),
        (
            "/produce/t",
            "{not json".to_owned(),
            StatusCode::BAD_REQUEST,
            "invalid request body",
        ),
        (
            "/produce/t",
            "".to_owned(),
            StatusCode::BAD_REQUEST,
            "body must be",
        ),
        (
            "/produce",
            r#"{"value":"no topic"}"#.to_owned(),
            StatusCode::BAD_REQUEST,
            "topic",
        ),
    ] {
        let (status, answer) = f.app.rest(Method::POST, path, c, Some(&body), &[]).await;
        assert_eq!(
            status,
            expected,
            "{path} {}: {answer}",
            &body[..body.len().min(60)]
        );
        assert_eq!(answer["status"], expected.as_u16());
        assert_eq!(answer["result"], Value::Null);
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    assert_eq!(
        kafka::message_count(&kafka::config(&f.cluster), "t"),
        0,
        "nothing of a refused request is written"
    );
    assert!(
        kafka::topics(&kafka::config(&f.cluster))
            .iter()
            .all(|(name, _)| name != "nope"),
        "topics are never auto-created"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn authentication_is_required_and_checked() {
    let f = fixture(&[("t", 1)]).await;
    let user = f.creds().0.to_owned();
    for credentials in [None, Some((user.as_str(), "wrong")), Some(("nobody", "x"))] {
        for (method, path) in [
            (Method::GET, "/topics"),
            (Method::POST, "/produce/t"),
            (Method::POST, "/fetch"),
            (Method::GET, "/consumers"),
        ] {
            let (status, answer) = f
                .app
                .rest(
                    method.clone(),
                    path,
                    credentials,
                    Some(r#"{"value":"v"}"#),
                    &[],
                )
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{method} {path}: {answer}"
            );
            assert_eq!(answer["status"], 401);
        }
    }
    let (status, _) = f
        .app
        .rest(
            Method::GET,
            "/topics",
            None,
            None,
            &[("authorization", "Bearer abc")],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scoped_credentials_are_enforced_per_topic_and_action() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "scoped").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    for topic in ["orders.eu", "orders.us", "payments"] {
        app.new_topic(&user, cluster_id, topic, 1).await;
    }
    let make = |name: &str, topic: &str, permissions: &str| json!({ "credential_name": name, "cluster_id": cluster_id, "topic": topic, "permissions": permissions });
    let (_, producer) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &user.auth(),
            Some(make("producer", "orders.*", "PRODUCE")),
        )
        .await;
    let (_, reader) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &user.auth(),
            Some(make("reader", "payments", "CONSUME")),
        )
        .await;
    let p = Some((
        producer["username"].as_str().unwrap(),
        producer["password"].as_str().unwrap(),
    ));
    let r = Some((
        reader["username"].as_str().unwrap(),
        reader["password"].as_str().unwrap(),
    ));

    let (status, _) = app
        .rest(
            Method::POST,
            "/produce/orders.eu",
            p,
            Some(r#"{"value":"ok"}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, answer) = app
        .rest(
            Method::POST,
            "/produce/payments",
            p,
            Some(r#"{"value":"no"}"#),
            &[],
        )
        .await;
    assert_eq!(
        status,
        StatusCode::FORBIDDEN,
        "outside the prefix: {answer}"
    );
    let (status, _) = app
        .rest(
            Method::POST,
            "/fetch",
            p,
            Some(r#"{"topic":"orders.eu","partition":0,"offset":0}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "PRODUCE may not fetch");
    let (status, _) = app
        .rest(
            Method::POST,
            "/produce/payments",
            r,
            Some(r#"{"value":"no"}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "CONSUME may not produce");
    let (status, _) = app
        .rest(
            Method::POST,
            "/fetch",
            r,
            Some(r#"{"topic":"payments","partition":0,"offset":0,"timeout":10}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (status, _) = app
        .rest(
            Method::POST,
            "/consume/g/i",
            r,
            Some(r#"{"topic":"orders.us","timeout":10}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    let (_, visible) = app.rest(Method::GET, "/topics", p, None, &[]).await;
    assert_eq!(
        visible,
        json!({ "orders.eu": 1, "orders.us": 1 }),
        "/topics shows only what the credential covers"
    );
    let (_, visible) = app.rest(Method::GET, "/topics", r, None, &[]).await;
    assert_eq!(visible, json!({ "payments": 1 }));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fetch_honours_offsets_timeouts_and_trailing_slashes() {
    let f = fixture(&[("t", 2)]).await;
    let c = Some(f.creds());
    f.app.rest(Method::POST, "/produce/t", c, Some(r#"[{"value":"0","partition":1},{"value":"1","partition":1},{"value":"2","partition":1}]"#), &[]).await;
    let (status, from_one) = f
        .app
        .rest(
            Method::GET,
            "/fetch/",
            c,
            Some(r#"{"topic":"t","partition":1,"offset":1}"#),
            &[("content-type", "text/plain")],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{from_one}");
    let offsets: Vec<i64> = from_one
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["offset"].as_i64().unwrap())
        .collect();
    assert_eq!(offsets, vec![1, 2], "from the offset, inclusive, each once");
    assert_eq!(from_one[0]["key"], "", "a null key is an empty string");
    assert_eq!(from_one[0]["headers"], json!([]));
    let started = std::time::Instant::now();
    let (status, empty) = f
        .app
        .rest(
            Method::POST,
            "/fetch",
            c,
            Some(r#"{"topic":"t","partition":0,"offset":0,"timeout":300}"#),
            &[],
        )
        .await;
    assert_eq!((status, empty), (StatusCode::OK, json!([])));
    assert!(
        started.elapsed() >= std::time::Duration::from_millis(300),
        "an empty fetch waits for its timeout"
    );
    let (status, both) = f.app.rest(Method::POST, "/fetch", c,
        Some(r#"{"topicPartitionOffsets":[{"topic":"t","partition":1,"offset":2}],"topic":"t","partition":0,"offset":0,"timeout":100}"#), &[]).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(both.as_array().unwrap().len(), 1);
    for (body, needle) in [
        (r#"{"topic":"t","partition":5,"offset":0}"#, "out of range"),
        (r#"{"topic":"t","partition":0,"offset":-3}"#, "offset"),
        (r#"{}"#, "name a topic"),
        (
            r#"{"topic":"missing","partition":0,"offset":0}"#,
            "does not exist",
        ),
    ] {
        let (status, answer) = f.app.rest(Method::POST, "/fetch", c, Some(body), &[]).await;
        assert!(status.is_client_error(), "{body}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_instances_commit_as_told_and_leave_when_deleted() {
    let f = fixture(&[("t", 2)]).await;
    let c = Some(f.creds());
    f.app.rest(Method::POST, "/produce/t", c, Some(r#"[{"value":"a","partition":0},{"value":"b","partition":0},{"value":"c","partition":1}]"#), &[]).await;
    let settings = [
        ("kafka-auto-offset-reset", "earliest"),
        ("Kafka-Enable-Auto-Commit", "false"),
    ];
    let mut seen = Vec::new();
    for _ in 0..20 {
        let (status, batch) = f
            .app
            .rest(
                Method::GET,
                "/consume/group/one/t?timeout=1000",
                c,
                None,
                &settings,
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{batch}");
        seen.extend(values_of(&batch).into_iter().map(str::to_owned));
        if seen.len() >= 3 {
            break;
        }
    }
    seen.sort();
    assert_eq!(seen, vec!["a", "b", "c"], "each message once");

    let tps = r#"[{"topic":"t","partition":0},{"topic":"t","partition":1}]"#;
    let (_, before) = f
        .app
        .rest(Method::POST, "/committed/group/one", c, Some(tps), &[])
        .await;
    assert_eq!(
        before,
        json!([{"topic":"t","partition":0,"offset":-1},{"topic":"t","partition":1,"offset":-1}])
    );
    let (status, ok) = f
        .app
        .rest(Method::POST, "/commit/group/one", c, None, &[])
        .await;
    assert_eq!(
        (status, ok),
        (StatusCode::OK, json!({"result":"Success","status":200}))
    );
    let (_, after) = f
        .app
        .rest(Method::GET, "/committed/group/one", c, Some(tps), &[])
        .await;
    assert_eq!(
        after,
        json!([{"topic":"t","partition":0,"offset":2},{"topic":"t","partition":1,"offset":1}])
    );
    let (status, _) = f
        .app
        .rest(
            Method::POST,
            "/commit/group/one",
            c,
            Some(r#"[{"topic":"t","partition":0,"offset":1}]"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, exact) = f
        .app
        .rest(
            Method::POST,
            "/committed/group/one",
            c,
            Some(r#"{"topic":"t","partition":0}"#),
            &[],
        )
        .await;
    assert_eq!(
        exact,
        json!([{"topic":"t","partition":0,"offset":1}]),
        "stored exactly as given"
    );

    let (_, listed) = f.app.rest(Method::GET, "/consumers", c, None, &[]).await;
    assert_eq!(listed[0]["name"], "group");
    assert_eq!(listed[0]["instances"][0]["name"], "one");
    let (status, _) = f
        .app
        .rest(Method::DELETE, "/delete-consumer/group/one", c, None, &[])
        .await;
    assert_eq!(status, StatusCode::OK);
    let (_, listed) = f.app.rest(Method::GET, "/consumers", c, None, &[]).await;
    assert_eq!(listed, json!([]));
    // The group's commits outlive the instance: /committed reads them from the brokers for any
    // instance name (a restarted gateway, or commits made by a Kafka client).
    for path in ["/committed/group/one", "/committed/group/never-made"] {
        let (status, kept) = f.app.rest(Method::POST, path, c, Some(tps), &[]).await;
        assert_eq!(status, StatusCode::OK, "{path}: {kept}");
        assert_eq!(
            kept,
            json!([{"topic":"t","partition":0,"offset":1},{"topic":"t","partition":1,"offset":1}]),
            "{path}"
        );
    }
    let (_, unknown_group) = f
        .app
        .rest(Method::POST, "/committed/nobody/x", c, Some(tps), &[])
        .await;
    assert_eq!(
        unknown_group,
        json!([{"topic":"t","partition":0,"offset":-1},{"topic":"t","partition":1,"offset":-1}])
    );
    for (method, path) in [
        (Method::POST, "/delete-consumer/group/one"),
        (Method::POST, "/commit/group/one"),
    ] {
        let (status, answer) = f
            .app
            .rest(
                method,
                path,
                c,
                Some(if path.starts_with("/commit/") {
                    r#"[{"topic":"t","partition":0,"offset":1}]"#
                } else {
                    r#"[{"topic":"t","partition":0}]"#
                }),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {answer}");
    }
    let (status, answer) = f
        .app
        .rest(
            Method::GET,
            "/consume/g/bad/t",
            c,
            None,
            &[("Kafka-Auto-Offset-Reset", "sideways")],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_has_at_most_as_many_consumer_instances_as_partitions() {
    let f = fixture(&[("t", 2)]).await;
    let c = Some(f.creds());
    for instance in ["a", "b"] {
        let (status, _) = f
            .app
            .rest(
                Method::GET,
                &format!("/consume/g/{instance}/t?timeout=10"),
                c,
                None,
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK);
    }
    let (status, answer) = f
        .app
        .rest(Method::GET, "/consume/g/c/t?timeout=10", c, None, &[])
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("at most as many consumer instances as partitions (2)")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn webhook_turns_the_body_into_a_message_and_custom_headers_into_kafka_headers() {
    let f = fixture(&[("hooks", 1)]).await;
    let (user, pass) = f.creds();
    let path = format!("/webhook?topic=hooks&user={user}&pass={pass}");
    let headers = [
        ("event-origin", "github"),
        ("Event-Timestamp", "123"),
        ("content-type", "text/plain"),
        ("user-agent", "curl"),
    ];
    let (status, meta) = f
        .app
        .rest(
            Method::POST,
            &path,
            None,
            Some("raw body, not JSON"),
            &headers,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{meta}");
    assert_eq!(meta["topic"], "hooks");
    let (_, fetched) = f
        .app
        .rest(
            Method::POST,
            "/fetch",
            Some((user, pass)),
            Some(r#"{"topic":"hooks","partition":0,"offset":0}"#),
            &[],
        )
        .await;
    assert_eq!(fetched[0]["value"], "raw body, not JSON");
    assert_eq!(
        fetched[0]["headers"],
        json!([{"key":"event-origin","value":"github"},{"key":"event-timestamp","value":"123"}])
    );
    let (status, _) = f
        .app
        .rest(
            Method::POST,
            "/webhook?topic=hooks&user=x&pass=y",
            None,
            Some("b"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = f
        .app
        .rest(
            Method::POST,
            &format!("/webhook?user={user}&pass={pass}"),
            None,
            Some("b"),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "topic is required");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offsets_and_unknown_endpoints() {
    let f = fixture(&[("t", 1)]).await;
    let c = Some(f.creds());
    f.app
        .rest(
            Method::POST,
            "/produce/t",
            c,
            Some(r#"[{"value":"a","timestamp":1000},{"value":"b","timestamp":2000}]"#),
            &[],
        )
        .await;
    let tp = r#"{"topic":"t","partition":0}"#;
    let (_, earliest) = f
        .app
        .rest(Method::POST, "/offsets/earliest", c, Some(tp), &[])
        .await;
    let (_, latest) = f
        .app
        .rest(Method::POST, "/offsets/latest", c, Some(tp), &[])
        .await;
    assert_eq!(earliest, json!([{"topic":"t","partition":0,"offset":0}]));
    assert_eq!(latest, json!([{"topic":"t","partition":0,"offset":2}]));
    let (status, answer) = f
        .app
        .rest(Method::POST, "/offsets/yesterday", c, Some(tp), &[])
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
    let (status, answer) = f.app.rest(Method::GET, "/topics/t", c, None, &[]).await;
    assert_eq!(
        (status, &answer["status"]),
        (StatusCode::NOT_FOUND, &json!(404))
    );
    let (status, answer) = f.app.rest(Method::DELETE, "/produce", c, None, &[]).await;
    assert_eq!(
        (status, &answer["status"]),
        (StatusCode::METHOD_NOT_ALLOWED, &json!(405))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_broker_gives_a_503_and_the_gateway_recovers_by_itself() {
    use nix::sys::signal::{Signal, kill};
    let f = placed_fixture(&[("t", 1)], true).await;
    let c = Some(f.creds());
    let (status, _) = f
        .app
        .rest(
            Method::POST,
            "/produce/t",
            c,
            Some(r#"{"value":"before"}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    let broker = f.app.broker_pid(f.cluster["cluster_id"].as_str().unwrap());
    kill(broker, Signal::SIGSTOP).unwrap();
    let (status, answer) = f
        .app
        .rest(
            Method::POST,
            "/produce/t",
            c,
            Some(r#"{"value":"while down"}"#),
            &[],
        )
        .await;
    kill(broker, Signal::SIGCONT).unwrap();
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{answer}");
    assert_eq!(answer["status"], 503);
    assert!(
        answer["error"].as_str().unwrap().contains("brokers"),
        "{answer}"
    );
    // Nothing to restart by hand: the next request goes through.
    let (status, answer) = f
        .app
        .rest(
            Method::POST,
            "/produce/t",
            c,
            Some(r#"{"value":"after"}"#),
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (_, fetched) = f
        .app
        .rest(
            Method::POST,
            "/fetch",
            c,
            Some(r#"{"topic":"t","partition":0,"offset":0}"#),
            &[],
        )
        .await;
    let values = values_of(&fetched);
    assert!(
        values.contains(&"before") && values.contains(&"after"),
        "{fetched}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consumer_instances_belong_to_the_credential_that_made_them() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "owned").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    app.new_topic(&user, cluster_id, "t", 1).await;
    let owner = Some((
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    ));
    let (status, other) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &user.auth(),
            Some(json!({ "credential_name": "other", "cluster_id": cluster_id, "topic": "*", "permissions": "ALL" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{other}");
    let other = Some((
        other["username"].as_str().unwrap(),
        other["password"].as_str().unwrap(),
    ));
    let earliest = [("kafka-auto-offset-reset", "earliest")];
    app.rest(
        Method::POST,
        "/produce/t",
        owner,
        Some(r#"{"value":"a"}"#),
        &[],
    )
    .await;
    let (status, batch) = app
        .rest(
            Method::GET,
            "/consume/g/mine/t?timeout=2000",
            owner,
            None,
            &earliest,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{batch}");

    // Another credential of the same cluster cannot use, read, commit or delete it.
    let tp = r#"[{"topic":"t","partition":0}]"#;
    for (method, path, body) in [
        (Method::GET, "/consume/g/mine/t?timeout=10", None),
        (Method::POST, "/committed/g/mine", Some(tp)),
        (Method::POST, "/commit/g/mine", None),
        (Method::POST, "/delete-consumer/g/mine", None),
    ] {
        let (status, answer) = app.rest(method, path, other, body, &earliest).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{path}: {answer}");
        assert!(
            answer["error"]
                .as_str()
                .unwrap()
                .contains("belongs to another credential"),
            "{answer}"
        );
    }
    // Its owner still can.
    let (status, answer) = app
        .rest(Method::POST, "/commit/g/mine", owner, None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let (status, answer) = app
        .rest(Method::POST, "/delete-consumer/g/mine", owner, None, &[])
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn changing_what_an_instance_consumes_never_commits_records_it_did_not_deliver() {
    let f = fixture(&[("a", 1), ("b", 1)]).await;
    let c = Some(f.creds());
    let settings = [("kafka-auto-offset-reset", "earliest")];
    let produce = |topic: &'static str, count: usize| {
        let body = Value::Array(
            (0..count)
                .map(|i| json!({ "value": format!("{topic}{i}") }))
                .collect(),
        )
        .to_string();
        let app = &f.app;
        async move {
            let (status, answer) = app
                .rest(
                    Method::POST,
                    &format!("/produce/{topic}"),
                    c,
                    Some(&body),
                    &[],
                )
                .await;
            assert_eq!(status, StatusCode::OK, "{answer}");
        }
    };
    // Consumes `topic` until `count` records came (a subscription change rebalances the group
    // first, which takes the local broker a few seconds), for at most a minute.
    let consume = |topic: &'static str, count: usize| {
        let app = &f.app;
        async move {
            let mut seen = Vec::new();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
            while seen.len() < count && std::time::Instant::now() < deadline {
                let (status, batch) = app
                    .rest(
                        Method::GET,
                        &format!("/consume/g/i/{topic}?timeout=1000"),
                        c,
                        None,
                        &settings,
                    )
                    .await;
                assert_eq!(status, StatusCode::OK, "{batch}");
                seen.extend(values_of(&batch).into_iter().map(str::to_owned));
            }
            seen
        }
    };
    produce("a", 1).await;
    assert_eq!(consume("a", 1).await, vec!["a0"]);
    // Records of `a` fetched ahead are dropped when the instance switches to `b`.
    produce("a", 50).await;
    produce("b", 1).await;
    assert_eq!(consume("b", 1).await, vec!["b0"]);
    // Whatever the instance holds as its position is committed now.
    let (status, answer) = f.app.rest(Method::POST, "/commit/g/i", c, None, &[]).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Back on `a`: every record not delivered yet comes, none was committed unseen.
    let expected: Vec<String> = (0..50).map(|i| format!("a{i}")).collect();
    assert_eq!(
        consume("a", 50).await,
        expected,
        "no record of a was skipped"
    );
}
