use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, spawn_app};
use crate::{kafka, on_both_backends};

async fn a_cluster_lives_from_creation_to_deletion(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "orders").await;
    let id = cluster["cluster_id"].as_str().unwrap();
    assert_eq!(cluster["name"], "orders");
    assert_eq!(cluster["region"], "eu-west-1");
    assert_eq!(cluster["multizone"], false);
    assert_eq!(cluster["state"], "active");
    assert_eq!(cluster["type"], "paid");
    assert_eq!(cluster["max_partitions"], 100);
    assert_eq!(cluster["max_message_size"], 1_048_576);
    assert!(
        cluster["creation_time"].as_i64().unwrap() > 1_700_000_000,
        "creation_time is unix seconds"
    );
    assert!(
        kafka::authenticates(&kafka::config(&cluster)),
        "the default credential works on the brokers"
    );

    let (status, list) = app
        .call(Method::GET, "/v2/kafka/clusters", &user.auth(), None)
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list.as_array().unwrap().len(), 1);
    assert_eq!(list[0], cluster);

    let (status, renamed) = app
        .call(
            Method::POST,
            &format!("/v2/kafka/rename-cluster/{id}"),
            &user.auth(),
            Some(json!({ "name": "payments" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(renamed["name"], "payments");

    let (status, rotated) = app
        .call(
            Method::POST,
            &format!("/v2/kafka/reset-password/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(rotated["username"], cluster["username"]);
    assert_ne!(rotated["password"], cluster["password"]);
    assert!(
        kafka::authenticates(&kafka::config(&rotated)),
        "the new password works"
    );
    assert!(
        !kafka::authenticates(&kafka::config(&cluster)),
        "the old password no longer works"
    );

    let (status, got) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/cluster/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(got["password"], rotated["password"]);

    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v2/kafka/cluster/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!("OK")));
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/cluster/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (_, list) = app
        .call(Method::GET, "/v2/kafka/clusters", &user.auth(), None)
        .await;
    assert_eq!(list, json!([]));
    assert!(
        !kafka::authenticates(&kafka::config(&rotated)),
        "the brokers are gone"
    );
}
on_both_backends!(a_cluster_lives_from_creation_to_deletion);

#[tokio::test]
async fn cluster_names_are_unique_per_account_and_regions_are_checked() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    app.new_cluster(&user, "one").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v2/kafka/cluster",
            &user.auth(),
            Some(json!({ "name": "one", "region": "eu-west-1" })),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    let (status, body) = app
        .call(
            Method::POST,
            "/v2/kafka/cluster",
            &user.auth(),
            Some(json!({ "name": "two", "region": "mars-north-1" })),
        )
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        body["error"].as_str().unwrap().contains("eu-west-1"),
        "the error lists the regions: {body}"
    );

    let other = app.new_user().await;
    app.new_cluster(&other, "one").await; // another account may reuse the name
}

#[tokio::test]
async fn an_account_may_hold_only_the_configured_number_of_clusters() {
    let platform = capstan_api::state::PlatformConfig {
        max_clusters_per_account: 1,
        ..Default::default()
    };
    let app = crate::helpers::spawn_app_with(Backend::Sqlite, platform).await;
    let user = app.new_user().await;
    app.new_cluster(&user, "one").await;
    let (status, body) = app
        .call(
            Method::POST,
            "/v2/kafka/cluster",
            &user.auth(),
            Some(json!({ "name": "two", "region": "eu-west-1" })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        body["error"]
            .as_str()
            .unwrap()
            .contains("at most 1 clusters"),
        "{body}"
    );
}

/// Sends `count` POSTs of `body(i)` to `path` at once as `user`; the statuses, in no order.
async fn all_at_once(
    app: &crate::helpers::TestApp,
    user: &crate::helpers::User,
    path: &str,
    count: usize,
    body: impl Fn(usize) -> serde_json::Value,
) -> Vec<StatusCode> {
    let mut requests = tokio::task::JoinSet::new();
    for i in 0..count {
        let request = app
            .client
            .post(app.url(path))
            .basic_auth(&user.email, Some(&user.key))
            .json(&body(i));
        requests.spawn(async move { request.send().await.unwrap().status() });
    }
    requests.join_all().await
}

fn count_of(statuses: &[StatusCode], wanted: StatusCode) -> usize {
    statuses.iter().filter(|s| **s == wanted).count()
}

/// Quotas hold under concurrent requests: the count and the insert cannot interleave with
/// another request's, so exactly the limit is created and the rest get 403.
async fn concurrent_creations_stop_exactly_at_the_limits(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let statuses = all_at_once(
        &app,
        &user,
        "/v2/kafka/cluster",
        20,
        |i| json!({ "name": format!("c{i}"), "region": "eu-west-1" }),
    )
    .await;
    assert_eq!(count_of(&statuses, StatusCode::OK), 10, "{statuses:?}");
    assert_eq!(
        count_of(&statuses, StatusCode::FORBIDDEN),
        10,
        "{statuses:?}"
    );
    let (_, list) = app
        .call(Method::GET, "/v2/kafka/clusters", &user.auth(), None)
        .await;
    assert_eq!(list.as_array().unwrap().len(), 10);

    let cluster_id = list[0]["cluster_id"].as_str().unwrap().to_owned();
    let statuses = all_at_once(&app, &user, "/v2/kafka/credential", 20, |i| {
        // Names repeat (as Upstash allowed): only the quota of 10 stops them.
        json!({ "credential_name": format!("r{}", i / 2), "cluster_id": cluster_id, "topic": "*", "permissions": "CONSUME" })
    })
    .await;
    assert_eq!(count_of(&statuses, StatusCode::OK), 10, "{statuses:?}");
    assert_eq!(
        count_of(&statuses, StatusCode::FORBIDDEN),
        10,
        "{statuses:?}"
    );
    let (_, credentials) = app
        .call(Method::GET, "/v2/kafka/credentials", &user.auth(), None)
        .await;
    assert_eq!(credentials.as_array().unwrap().len(), 10, "{credentials}");

    let statuses = all_at_once(
        &app,
        &user,
        "/v2/api-keys",
        50,
        |i| json!({ "name": format!("k{i}") }),
    )
    .await;
    // The user has one key already (its own); 37 in all.
    assert_eq!(count_of(&statuses, StatusCode::CREATED), 36, "{statuses:?}");
    assert_eq!(
        count_of(&statuses, StatusCode::FORBIDDEN),
        14,
        "{statuses:?}"
    );
}
on_both_backends!(concurrent_creations_stop_exactly_at_the_limits);
