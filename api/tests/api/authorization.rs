//! Every route × {no credentials, wrong credentials, another account, the owner}.

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Auth, Backend, spawn_app};
use crate::on_both_backends;

struct Route {
    method: Method,
    path: String,
    body: Option<Value>,
    /// Bound to one of the owner's resources: another account gets 404.
    owned: bool,
}

fn route(method: Method, path: String, body: Option<Value>, owned: bool) -> Route {
    Route {
        method,
        path,
        body,
        owned,
    }
}

async fn every_route_checks_who_is_asking(backend: Backend) {
    let app = spawn_app(backend).await;
    let owner = app.new_user().await;
    let other = app.new_user().await;
    let cluster = app.new_cluster(&owner, "owned").await;
    let c = cluster["cluster_id"].as_str().unwrap().to_owned();
    let topic = app.new_topic(&owner, &c, "owned-topic", 1).await;
    let t = topic["topic_id"].as_str().unwrap().to_owned();
    let (_, credential) = app
        .call(Method::POST, "/v2/kafka/credential", &owner.auth(),
              Some(json!({ "credential_name": "k", "cluster_id": c, "topic": "*", "permissions": "ALL" })))
        .await;
    let k = credential["credential_id"].as_str().unwrap().to_owned();
    let (_, key) = app
        .call(
            Method::POST,
            "/v2/api-keys",
            &owner.auth(),
            Some(json!({ "name": "spare" })),
        )
        .await;
    let ak = key["id"].as_str().unwrap().to_owned();

    // Destructive routes last, so each owner call still finds its resource.
    let routes = vec![
        route(Method::GET, "/v2/api-keys".into(), None, false),
        route(
            Method::POST,
            "/v2/api-keys".into(),
            Some(json!({ "name": "n" })),
            false,
        ),
        route(
            Method::POST,
            "/v2/kafka/cluster".into(),
            Some(json!({ "name": "new", "region": "us-east-1" })),
            false,
        ),
        route(Method::GET, "/v2/kafka/clusters".into(), None, false),
        route(Method::GET, format!("/v2/kafka/cluster/{c}"), None, true),
        route(
            Method::POST,
            format!("/v2/kafka/rename-cluster/{c}"),
            Some(json!({ "name": "renamed" })),
            true,
        ),
        route(
            Method::POST,
            format!("/v2/kafka/reset-password/{c}"),
            None,
            true,
        ),
        route(
            Method::POST,
            "/v2/kafka/topic".into(),
            Some(
                json!({ "name": "new-topic", "partitions": 1, "retention_time": -1,
            "retention_size": -1, "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": c }),
            ),
            true,
        ),
        route(Method::GET, format!("/v2/kafka/topics/{c}"), None, true),
        route(Method::GET, format!("/v2/kafka/topic/{t}"), None, true),
        route(
            Method::POST,
            format!("/v2/kafka/update-topic/{t}"),
            Some(json!({ "retention_time": 3_600_000 })),
            true,
        ),
        route(
            Method::POST,
            "/v2/kafka/credential".into(),
            Some(
                json!({ "credential_name": "k2", "cluster_id": c, "topic": "*", "permissions": "ALL" }),
            ),
            true,
        ),
        route(Method::GET, "/v2/kafka/credentials".into(), None, false),
        route(
            Method::DELETE,
            format!("/v2/kafka/credential/{k}"),
            None,
            true,
        ),
        route(Method::DELETE, format!("/v2/api-keys/{ak}"), None, true),
        route(Method::DELETE, format!("/v2/kafka/topic/{t}"), None, true),
        route(Method::DELETE, format!("/v2/kafka/cluster/{c}"), None, true),
    ];
    let wrong = Auth::Basic(owner.email.clone(), "cap_not-a-real-key".into());
    let garbage = Auth::Bearer("not.a.jwt".into());
    for r in &routes {
        for auth in [&Auth::None, &wrong, &garbage] {
            let (status, body) = app
                .call(r.method.clone(), &r.path, auth, r.body.clone())
                .await;
            assert_eq!(
                status,
                StatusCode::UNAUTHORIZED,
                "{} {} with {auth:?}: {body}",
                r.method,
                r.path
            );
            assert_eq!(body["status"], 401);
        }
        let (status, body) = app
            .call(r.method.clone(), &r.path, &other.auth(), r.body.clone())
            .await;
        if r.owned {
            assert_eq!(
                status,
                StatusCode::NOT_FOUND,
                "{} {} by another account: {body}",
                r.method,
                r.path
            );
        } else {
            assert!(
                status.is_success(),
                "{} {} by another account: {body}",
                r.method,
                r.path
            );
            for id in [&c, &t, &k, &ak] {
                assert!(
                    !body.to_string().contains(id.as_str()),
                    "{} {} leaked {id} to another account",
                    r.method,
                    r.path
                );
            }
        }
    }
    for r in &routes {
        let (status, body) = app
            .call(r.method.clone(), &r.path, &owner.auth(), r.body.clone())
            .await;
        assert!(
            status.is_success(),
            "{} {} by the owner: {status} {body}",
            r.method,
            r.path
        );
    }
}
on_both_backends!(every_route_checks_who_is_asking);
