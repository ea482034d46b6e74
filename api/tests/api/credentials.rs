use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, spawn_app};
use crate::{kafka, on_both_backends};

async fn scoped_credentials_work_on_the_brokers_until_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    let (status, credential) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &user.auth(),
            Some(json!({ "credential_name": "reader", "cluster_id": cluster_id, "topic": "orders.*", "permissions": "CONSUME" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{credential}");
    assert_eq!(credential["topic"], "orders.*");
    assert_eq!(credential["permissions"], "CONSUME");
    assert_eq!(
        credential["cluster_slug"].as_str().map(|s| !s.is_empty()),
        Some(true)
    );
    assert_ne!(credential["username"], cluster["username"]);
    let bootstrap = cluster["tcp_endpoint"].as_str().unwrap();
    let scoped = kafka::config_for(
        bootstrap,
        credential["username"].as_str().unwrap(),
        credential["password"].as_str().unwrap(),
    );
    assert!(kafka::authenticates(&scoped));

    let (status, list) = app
        .call(Method::GET, "/v2/kafka/credentials", &user.auth(), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        list,
        json!([credential]),
        "the default credential is left out"
    );

    // Another credential may take the same name (as on Upstash): a credential of its own.
    let (status, twin) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &user.auth(),
            Some(json!({ "credential_name": "reader", "cluster_id": cluster_id, "topic": "*", "permissions": "ALL" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{twin}");
    assert_ne!(twin["username"], credential["username"]);
    let twin_id = twin["credential_id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v2/kafka/credential/{twin_id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert!(
        kafka::authenticates(&scoped),
        "deleting its namesake leaves a credential working"
    );

    let id = credential["credential_id"].as_str().unwrap();
    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v2/kafka/credential/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!("OK")));
    assert!(
        !kafka::authenticates(&scoped),
        "a deleted credential stops working"
    );
    assert!(
        kafka::authenticates(&kafka::config(&cluster)),
        "the default credential still works"
    );
    let (_, list) = app
        .call(Method::GET, "/v2/kafka/credentials", &user.auth(), None)
        .await;
    assert_eq!(list, json!([]));
}
on_both_backends!(scoped_credentials_work_on_the_brokers_until_deleted);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn credential_values_and_limits_are_checked() {
    let platform = capstan_api::state::PlatformConfig {
        max_credentials_per_cluster: 2,
        ..Default::default()
    };
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, platform).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    let make = |name: &str, topic: &str, permissions: &str| json!({ "credential_name": name, "cluster_id": cluster_id, "topic": topic, "permissions": permissions });
    for (body, needle) in [
        (make("x", "a*b", "ALL"), "last character"),
        (make("x", "*", "READ"), "ALL, PRODUCE or CONSUME"),
        (make("bad name", "*", "ALL"), "credential name"),
        (make("default", "*", "ALL"), "already has a credential"),
    ] {
        let (status, answer) = app
            .call(
                Method::POST,
                "/v2/kafka/credential",
                &user.auth(),
                Some(body),
            )
            .await;
        assert!(status.is_client_error(), "{answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{answer}"
        );
    }
    // Names may repeat, as on Upstash (its terraform provider's example makes two alike).
    let mut usernames = Vec::new();
    for _ in 0..2 {
        let (status, made) = app
            .call(
                Method::POST,
                "/v2/kafka/credential",
                &user.auth(),
                Some(make("twin", "*", "ALL")),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{made}");
        usernames.push(made["username"].clone());
    }
    assert_ne!(usernames[0], usernames[1]);
    let (_, listed) = app
        .call(Method::GET, "/v2/kafka/credentials", &user.auth(), None)
        .await;
    let twins = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|c| c["credential_name"] == "twin")
        .count();
    assert_eq!(twins, 2, "{listed}");
    let (status, answer) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &user.auth(),
            Some(make("three", "*", "ALL")),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("at most 2 credentials"),
        "{answer}"
    );
}
