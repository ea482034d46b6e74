//! Bad input of every kind gets the documented JSON error, never a panic or a 5xx.

use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Auth, Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_body_route_answers_malformed_and_mistyped_bodies_with_a_400() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let c = cluster["cluster_id"].as_str().unwrap();
    let topic = app.new_topic(&user, c, "t", 1).await;
    let t = topic["topic_id"].as_str().unwrap();
    let body_routes = [
        ("/v2/auth/signup".to_owned(), Auth::None),
        ("/v2/auth/login".to_owned(), Auth::None),
        ("/v2/api-keys".to_owned(), user.auth()),
        ("/v2/kafka/cluster".to_owned(), user.auth()),
        (format!("/v2/kafka/rename-cluster/{c}"), user.auth()),
        ("/v2/kafka/topic".to_owned(), user.auth()),
        (format!("/v2/kafka/update-topic/{t}"), user.auth()),
        ("/v2/kafka/credential".to_owned(), user.auth()),
    ];
    let bad_bodies: [&'static str; 6] = [
        "{\"name\":",   // truncated JSON
        "[1, 2, 3]",    // an array
        "\"a string\"", // a string
        "{\"name\": 5, \"partitions\": \"many\", \"email\": [], \"password\": {}}", // wrong types
        "{\"unexpected_field\": true}", // unknown field
        "\u{0}\u{1}binary", // not JSON at all
    ];
    for (path, auth) in &body_routes {
        for body in bad_bodies {
            let (status, answer) = app
                .call_raw(Method::POST, path, auth, body, "application/json")
                .await;
            assert_eq!(
                status,
                StatusCode::BAD_REQUEST,
                "POST {path} with {body:?}: {answer}"
            );
            assert_eq!(answer["status"], 400);
            assert!(
                answer["error"].as_str().is_some_and(|e| !e.is_empty()),
                "{answer}"
            );
        }
    }
}

#[tokio::test]
async fn bodies_are_json_whatever_the_content_type_and_empty_or_null_bodies_are_accepted() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, body) = app
        .call_raw(
            Method::POST,
            "/v2/auth/signup",
            &Auth::None,
            "{\"email\":\"form@example.com\",\"password\":\"correct horse battery\"}",
            "application/x-www-form-urlencoded",
        )
        .await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let c = cluster["cluster_id"].as_str().unwrap();
    let (status, body) = app
        .call_raw(
            Method::POST,
            &format!("/v2/kafka/reset-password/{c}"),
            &user.auth(),
            "",
            "text/plain",
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call_raw(
            Method::DELETE,
            &format!("/v2/kafka/cluster/{c}"),
            &user.auth(),
            "null",
            "application/json",
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!("OK")));
}

#[tokio::test]
async fn unknown_routes_methods_and_oversized_bodies_get_json_errors() {
    let app = spawn_app(Backend::Sqlite).await;
    let (status, body) = app
        .call(Method::GET, "/v2/kafka/nothing-here", &Auth::None, None)
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::NOT_FOUND, &json!(404))
    );
    let (status, body) = app
        .call(Method::PUT, "/v2/kafka/clusters", &Auth::None, None)
        .await;
    assert_eq!(
        (status, &body["status"]),
        (StatusCode::METHOD_NOT_ALLOWED, &json!(405))
    );
    let huge: &'static str =
        Box::leak(format!("{{\"name\":\"{}\"}}", "x".repeat(3 * 1024 * 1024)).into_boxed_str());
    let (status, body) = app
        .call_raw(
            Method::POST,
            "/v2/auth/signup",
            &Auth::None,
            huge,
            "application/json",
        )
        .await;
    assert!(status.is_client_error(), "{status} {body}");
}

#[tokio::test]
async fn ids_that_are_not_uuids_are_simply_not_found() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    for path in [
        "/v2/kafka/cluster/not-a-uuid",
        "/v2/kafka/topic/%27%20OR%201=1",
        "/v2/kafka/topics/..%2F..",
    ] {
        let (status, body) = app.call(Method::GET, path, &user.auth(), None).await;
        assert_eq!(status, StatusCode::NOT_FOUND, "{path}: {body}");
    }
}
