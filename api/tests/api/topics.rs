use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::helpers::{Backend, spawn_app, spawn_app_with};
use crate::{kafka, on_both_backends};

async fn topics_are_created_listed_grown_and_deleted(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    let topic = app.new_topic(&user, cluster_id, "orders", 2).await;
    assert_eq!(topic["topic_name"], "orders");
    assert_eq!(topic["partitions"], 2);
    assert_eq!(
        (&topic["retention_time"], &topic["retention_size"]),
        (&json!(-1), &json!(-1)),
        "-1 (the plan maximum) reads back as asked"
    );
    assert_eq!(topic["username"], cluster["username"]);
    assert_eq!(
        kafka::topics(&kafka::config(&cluster)),
        vec![("orders".to_owned(), 2)]
    );

    let id = topic["topic_id"].as_str().unwrap();
    let (status, list) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/topics/{cluster_id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(list, json!([topic]));

    let path = format!("/v2/kafka/update-topic/{id}");
    let (status, body) = app
        .call(
            Method::POST,
            &path,
            &user.auth(),
            Some(json!({ "partitions": 1 })),
        )
        .await;
    assert_eq!(
        status,
        StatusCode::BAD_REQUEST,
        "partitions never shrink: {body}"
    );
    let (status, same) = app
        .call(
            Method::POST,
            &path,
            &user.auth(),
            Some(json!({ "partitions": 2 })),
        )
        .await;
    assert_eq!((status, &same["partitions"]), (StatusCode::OK, &json!(2)));
    let (status, grown) = app
        .call(
            Method::POST,
            &path,
            &user.auth(),
            Some(json!({ "partitions": 5, "retention_time": 3_600_000 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{grown}");
    assert_eq!(grown["partitions"], 5);
    assert_eq!(grown["retention_time"], 3_600_000);
    assert_eq!(
        kafka::topics(&kafka::config(&cluster)),
        vec![("orders".to_owned(), 5)]
    );

    let (status, got) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/topic/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!((status, got), (StatusCode::OK, grown));

    let (status, body) = app
        .call(
            Method::DELETE,
            &format!("/v2/kafka/topic/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!((status, body), (StatusCode::OK, json!("OK")));
    assert!(kafka::topics(&kafka::config(&cluster)).is_empty());
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/topic/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
}
on_both_backends!(topics_are_created_listed_grown_and_deleted);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_one_topic_keeps_every_other_topic_and_its_data() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    let doomed = app.new_topic(&user, cluster_id, "doomed", 2).await;
    app.new_topic(&user, cluster_id, "kept", 3).await;
    app.new_topic(&user, cluster_id, "also-kept", 1).await;
    let config = kafka::config(&cluster);
    kafka::produce(&config, "doomed", 20).await;
    kafka::produce(&config, "kept", 30).await;
    kafka::produce(&config, "also-kept", 7).await;

    let id = doomed["topic_id"].as_str().unwrap();
    let (status, _) = app
        .call(
            Method::DELETE,
            &format!("/v2/kafka/topic/{id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK);

    assert_eq!(
        kafka::topics(&config),
        vec![("also-kept".to_owned(), 1), ("kept".to_owned(), 3)]
    );
    assert_eq!(kafka::message_count(&config, "kept"), 30);
    assert_eq!(kafka::message_count(&config, "also-kept"), 7);

    // A topic of the same name starts empty.
    app.new_topic(&user, cluster_id, "doomed", 1).await;
    assert_eq!(kafka::message_count(&config, "doomed"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topic_values_are_checked_against_the_plan() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    let base = json!({ "name": "t", "partitions": 1, "retention_time": -1, "retention_size": -1,
                       "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster_id });
    // 400: an invalid value; 403: a valid value beyond the plan's limits.
    for (field, value, expected, needle) in [
        (
            "partitions",
            json!(101),
            StatusCode::FORBIDDEN,
            "at most 100 partitions",
        ),
        (
            "partitions",
            json!(0),
            StatusCode::BAD_REQUEST,
            "at least 1",
        ),
        (
            "partitions",
            json!(i64::MAX),
            StatusCode::FORBIDDEN,
            "at most 100 partitions",
        ),
        (
            "retention_time",
            json!(2_592_000_001_i64),
            StatusCode::FORBIDDEN,
            "between 1 and 2592000000",
        ),
        (
            "retention_size",
            json!(0),
            StatusCode::BAD_REQUEST,
            "retention_size must be positive",
        ),
        (
            "max_message_size",
            json!(1_048_577),
            StatusCode::FORBIDDEN,
            "max_message_size",
        ),
        (
            "cleanup_policy",
            json!("shred"),
            StatusCode::BAD_REQUEST,
            "delete or compact",
        ),
        (
            "name",
            json!("no spaces"),
            StatusCode::BAD_REQUEST,
            "topic name",
        ),
        (
            "name",
            json!("__consumer_offsets"),
            StatusCode::BAD_REQUEST,
            "Kafka's internal topics",
        ),
    ] {
        let mut body = base.clone();
        body[field] = value;
        let (status, answer) = app
            .call(Method::POST, "/v2/kafka/topic", &user.auth(), Some(body))
            .await;
        assert_eq!(status, expected, "{field}: {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(needle),
            "{field}: {answer}"
        );
    }
    app.new_topic(&user, cluster_id, "t", 60).await;
    let (status, answer) = app
        .call(
            Method::POST,
            "/v2/kafka/topic",
            &user.auth(),
            Some(base.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::CONFLICT, "{answer}");
    let mut second = base.clone();
    second["name"] = json!("u");
    second["partitions"] = json!(41);
    let (status, answer) = app
        .call(Method::POST, "/v2/kafka/topic", &user.auth(), Some(second))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert!(
        answer["error"]
            .as_str()
            .unwrap()
            .contains("at most 40 are left"),
        "{answer}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_free_plan_has_its_own_limits() {
    let platform = capstan_api::state::PlatformConfig {
        default_plan: capstan_api::plans::Plan::Free,
        ..Default::default()
    };
    let app = spawn_app_with(Backend::Sqlite, platform).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    assert_eq!(cluster["type"], "free");
    assert_eq!(cluster["max_partitions"], 10);
    let topic = app
        .new_topic(&user, cluster["cluster_id"].as_str().unwrap(), "t", 10)
        .await;
    assert_eq!(
        (&topic["retention_size"], &topic["retention_time"]),
        (&json!(-1), &json!(-1)),
        "asked as the plan's maximum, read back as asked: {topic}"
    );
    let config = kafka::config(&cluster);
    assert_eq!(
        kafka::topic_config(&config, "t", "retention.bytes").await,
        "268435456"
    );
    assert_eq!(
        kafka::topic_config(&config, "t", "retention.ms").await,
        "604800000"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn minus_one_is_the_plans_maximum_on_the_brokers_and_reads_back_as_minus_one() {
    let platform = capstan_api::state::PlatformConfig {
        default_plan: capstan_api::plans::Plan::Pro,
        plan_limits: capstan_api::plans::PlanLimits::with_overrides(
            r#"{"pro": {"max_partitions": 1200}}"#,
        )
        .unwrap(),
        ..Default::default()
    };
    let app = spawn_app_with(Backend::Sqlite, platform).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "c").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    assert_eq!(cluster["type"], "pro");
    assert_eq!(cluster["max_partitions"], 1200, "the operator's override");
    assert_eq!(
        cluster["max_message_size"], 10_485_760,
        "Pro's 10 MB messages"
    );
    let topic = app.new_topic(&user, cluster_id, "t", 1).await;
    let topic_id = topic["topic_id"].as_str().unwrap();
    let as_asked = |topic: &serde_json::Value| {
        (
            topic["retention_time"].as_i64().unwrap(),
            topic["retention_size"].as_i64().unwrap(),
            topic["max_message_size"].as_i64().unwrap(),
        )
    };
    assert_eq!(as_asked(&topic), (-1, -1, -1));
    let config = kafka::config(&cluster);
    assert_eq!(
        kafka::topic_config(&config, "t", "max.message.bytes").await,
        "10485760",
        "the brokers have the plan's maximum"
    );

    // A value replaces -1, and -1 comes back; what is not named keeps what was asked.
    let (status, updated) = app
        .call(
            Method::POST,
            &format!("/v2/kafka/update-topic/{topic_id}"),
            &user.auth(),
            Some(json!({ "max_message_size": 2_000_000 })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{updated}");
    assert_eq!(as_asked(&updated), (-1, -1, 2_000_000));
    assert_eq!(
        kafka::topic_config(&config, "t", "max.message.bytes").await,
        "2000000"
    );
    let (_, updated) = app
        .call(
            Method::POST,
            &format!("/v2/kafka/update-topic/{topic_id}"),
            &user.auth(),
            Some(json!({ "max_message_size": -1 })),
        )
        .await;
    assert_eq!(as_asked(&updated), (-1, -1, -1));
    let (_, read) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/topic/{topic_id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(as_asked(&read), (-1, -1, -1), "{read}");
    assert_eq!(
        kafka::topic_config(&config, "t", "max.message.bytes").await,
        "10485760"
    );
}
