//! Crash safety of provisioning: every change between the brokers and the store is stopped dead
//! at its named step (a failpoint: nothing after it runs, no rollback, as if the process had
//! died there), then the control plane restarts. The provisioning journal must finish what was
//! being removed and roll back what was being made: no broker directory, pool topic or broker
//! user outlives its row, and no row outlives its resource.

use std::time::Duration;

use capstan_api::{failpoint, state::PlatformConfig};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::helpers::{Auth, Backend, TestApp, User, spawn_app_with, start};
use crate::{kafka, on_both_backends};

/// Alone on its store, so the journal is settled at start whatever the entries' age.
fn alone() -> PlatformConfig {
    PlatformConfig {
        recovery_grace: Duration::ZERO,
        ..Default::default()
    }
}

/// The data directories of dedicated clusters' brokers (named by cluster id).
fn broker_dirs(app: &TestApp) -> Vec<String> {
    let root = app.persisted.data_dir.join("brokers");
    std::fs::read_dir(root)
        .map(|entries| {
            entries
                .filter_map(|entry| entry.ok())
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .filter(|name| uuid::Uuid::parse_str(name).is_ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn topic_names(app: &TestApp, user: &User, cluster_id: &str) -> Vec<String> {
    let (status, topics) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/topics/{cluster_id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{topics}");
    let mut names: Vec<String> = topics
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["topic_name"].as_str().unwrap().to_owned())
        .collect();
    names.sort();
    names
}

async fn credential_ids(app: &TestApp, user: &User) -> Vec<Value> {
    let (_, listed) = app
        .call(Method::GET, "/v2/kafka/credentials", &user.auth(), None)
        .await;
    listed
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["credential_id"].clone())
        .collect()
}

/// Sends a request that must stop dead at its armed step (the API answers 500).
async fn stops(app: &TestApp, user: &User, method: Method, path: &str, body: Option<Value>) {
    let (status, answer) = app.call(method, path, &user.auth(), body).await;
    assert_eq!(
        status,
        StatusCode::INTERNAL_SERVER_ERROR,
        "{path}: {answer}"
    );
}

async fn create_topic(app: &TestApp, user: &User, cluster_id: &str, name: &str) -> StatusCode {
    let (status, _) = app
        .call(
            Method::POST,
            "/v2/kafka/topic",
            &user.auth(),
            Some(json!({ "name": name, "partitions": 1, "retention_time": -1, "retention_size": -1,
                         "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster_id })),
        )
        .await;
    status
}

async fn every_change_stopped_between_brokers_and_store_is_settled_at_restart(backend: Backend) {
    let app = spawn_app_with(backend, alone()).await;
    let user = app.new_user().await;
    let auth = user.auth();
    let kept = app.new_cluster(&user, "kept").await;
    let kept_id = kept["cluster_id"].as_str().unwrap().to_owned();
    app.new_topic(&user, &kept_id, "gone", 1).await;
    app.new_topic(&user, &kept_id, "stays", 1).await;
    let victim = app.new_cluster(&user, "victim").await;
    let victim_id = victim["cluster_id"].as_str().unwrap().to_owned();
    let credential = json!({ "credential_name": "reader", "cluster_id": kept_id, "topic": "*", "permissions": "CONSUME" });
    let (status, scoped) = app
        .call(
            Method::POST,
            "/v2/kafka/credential",
            &auth,
            Some(credential.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{scoped}");
    let scoped_id = scoped["credential_id"].as_str().unwrap().to_owned();
    assert!(broker_dirs(&app).is_empty());

    for step in [
        "cluster.create.after_brokers",
        "topic.create.after_brokers",
        "topic.delete.after_brokers",
        "cluster.delete.after_brokers",
        "credential.create.after_brokers",
        "credential.delete.after_brokers",
        "credential.rotate.after_brokers",
    ] {
        failpoint::arm(step);
    }
    // Each change stops right after the brokers did their part.
    stops(
        &app,
        &user,
        Method::POST,
        "/v2/kafka/cluster",
        Some(json!({ "name": "orphan", "region": "eu-west-1", "placement": "dedicated" })),
    )
    .await;
    assert_eq!(
        broker_dirs(&app).len(),
        1,
        "the stop came after the broker was made"
    );
    assert_eq!(
        create_topic(&app, &user, &kept_id, "half").await,
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_ne!(
        create_topic(&app, &user, &kept_id, "half").await,
        StatusCode::OK,
        "the half-made topic holds its name on the pool"
    );
    let gone_id = {
        let (_, topics) = app
            .call(
                Method::GET,
                &format!("/v2/kafka/topics/{kept_id}"),
                &auth,
                None,
            )
            .await;
        topics
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["topic_name"] == "gone")
            .unwrap()["topic_id"]
            .as_str()
            .unwrap()
            .to_owned()
    };
    for (method, path, body) in [
        (Method::DELETE, format!("/v2/kafka/topic/{gone_id}"), None),
        (
            Method::DELETE,
            format!("/v2/kafka/cluster/{victim_id}"),
            None,
        ),
        (
            Method::POST,
            "/v2/kafka/credential".to_owned(),
            Some(credential),
        ),
        (
            Method::DELETE,
            format!("/v2/kafka/credential/{scoped_id}"),
            None,
        ),
        (
            Method::POST,
            format!("/v2/kafka/reset-password/{kept_id}"),
            None,
        ),
    ] {
        stops(&app, &user, method, &path, body).await;
    }
    // What the store says before the restart: the removals it never recorded.
    assert_eq!(topic_names(&app, &user, &kept_id).await, ["gone", "stays"]);
    assert_eq!(credential_ids(&app, &user).await, [json!(scoped_id)]);

    let (persisted, dir) = app.stop().await;
    let app = start(persisted, alone()).await;

    assert!(
        broker_dirs(&app).is_empty(),
        "the half-made dedicated cluster's broker is gone"
    );
    let (_, clusters) = app
        .call(Method::GET, "/v2/kafka/clusters", &auth, None)
        .await;
    let names: Vec<&str> = clusters
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        ["kept"],
        "the deleted cluster is deleted: {clusters}"
    );
    let (status, _) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/cluster/{victim_id}"),
            &auth,
            None,
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(topic_names(&app, &user, &kept_id).await, ["stays"]);
    for name in ["half", "gone"] {
        assert_eq!(
            create_topic(&app, &user, &kept_id, name).await,
            StatusCode::OK,
            "nothing of {name} is left on the pool"
        );
    }
    assert!(
        credential_ids(&app, &user).await.is_empty(),
        "the deleted credential is deleted, the half-made one never appears"
    );
    let (_, now) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/cluster/{kept_id}"),
            &auth,
            None,
        )
        .await;
    assert_eq!(
        now["password"], kept["password"],
        "the store's password stands"
    );
    assert!(kafka::authenticates(&kafka::config(&now)));
    drop(app);
    drop(dir);
}

on_both_backends!(every_change_stopped_between_brokers_and_store_is_settled_at_restart);

/// The value of the unlabelled metric `name`, from `/metrics`.
async fn metric(app: &TestApp, name: &str) -> i64 {
    let text = app
        .client
        .get(app.url("/metrics"))
        .send()
        .await
        .expect("metrics answered")
        .text()
        .await
        .expect("metrics read");
    text.lines()
        .find_map(|line| line.strip_prefix(name)?.strip_prefix(' '))
        .unwrap_or_else(|| panic!("{name} in /metrics"))
        .trim()
        .parse()
        .expect("a count")
}

/// Passes of the journal's recovery so far.
async fn recovery_passes(app: &TestApp) -> i64 {
    metric(app, "capstan_provisioning_journal_passes_total").await
}

/// Waits until the journal's recovery (each pass followed by a sweep) has run twice more:
/// at least one whole pass from its start.
async fn two_more_recovery_passes(app: &TestApp) {
    let before = recovery_passes(app).await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while recovery_passes(app).await < before + 2 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no recovery pass within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// Recovery passes run while a change is under way (here: a topic made on the brokers, not yet
/// recorded) leave it alone however young the grace, and the change completes whole.
async fn recovery_never_rolls_back_a_change_under_way(backend: Backend) {
    let app = spawn_app_with(
        backend,
        PlatformConfig {
            journal_check_every: Duration::ZERO,
            ..alone()
        },
    )
    .await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "busy").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap().to_owned();

    let held = failpoint::hold("topic.create.after_brokers");
    let creation = {
        let (client, url, auth) = (app.client.clone(), app.url("/v2/kafka/topic"), user.auth());
        let Auth::Basic(email, key) = auth else {
            unreachable!()
        };
        tokio::spawn(async move {
            client
                .post(url)
                .basic_auth(email, Some(key))
                .json(&json!({ "name": "slow", "partitions": 1, "retention_time": -1, "retention_size": -1,
                               "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster_id }))
                .send()
                .await
                .expect("request sent")
                .status()
        })
    };
    held.reached().await;
    // Two whole passes while the topic exists on the brokers and not in the store.
    two_more_recovery_passes(&app).await;
    held.release();
    assert_eq!(creation.await.unwrap(), StatusCode::OK);

    let (user_name, password) = (
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    );
    let (status, produced) = app
        .rest(
            Method::GET,
            "/produce/slow/kept",
            Some((user_name, password)),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{produced}");
    assert!(
        produced["offset"].is_number(),
        "the topic is on the brokers: {produced}"
    );
}

on_both_backends!(recovery_never_rolls_back_a_change_under_way);

/// How many topics, groups and transactional ids live under `prefix` on the local shared pool,
/// read from the pool broker's own store.
async fn pool_names_under(app: &TestApp, prefix: &str) -> i64 {
    use sqlx::Connection;
    let file = app
        .persisted
        .data_dir
        .join("brokers")
        .join("pool-local")
        .join("broker.db");
    let mut db = sqlx::SqliteConnection::connect(&format!("sqlite://{}?mode=ro", file.display()))
        .await
        .expect("the pool's store");
    let (count,): (i64,) = sqlx::query_as(
        "SELECT (SELECT COUNT(*) FROM topic WHERE substr(name, 1, 13) = $1) \
         + (SELECT COUNT(*) FROM consumer_group WHERE substr(name, 1, 13) = $1) \
         + (SELECT COUNT(*) FROM txn WHERE substr(name, 1, 13) = $1)",
    )
    .bind(prefix)
    .fetch_one(&mut db)
    .await
    .expect("names counted");
    count
}

/// The `capstan_unowned_resources` gauge.
async fn unowned_resources(app: &TestApp) -> i64 {
    metric(app, "capstan_unowned_resources").await
}

/// Resources of deleted clusters — here the brokers of a dedicated cluster and the topic of a
/// shared one whose rows say deleted, as a deletion by a version before the journal or a
/// hand-edited store would leave them — are removed at the next start, and nothing of a live
/// cluster is touched. Brokers of a cluster the store has never known are only reported,
/// unless the sweep is told it may remove them.
async fn resources_of_deleted_clusters_are_removed_at_start(backend: Backend) {
    let app = spawn_app_with(backend, alone()).await;
    let user = app.new_user().await;
    let kept = app.new_cluster(&user, "kept").await;
    let kept_id = kept["cluster_id"].as_str().unwrap().to_owned();
    app.new_topic(&user, &kept_id, "stays", 1).await;
    let lost = app.new_cluster(&user, "lost-shared").await;
    let lost_id = lost["cluster_id"].as_str().unwrap().to_owned();
    app.new_topic(&user, &lost_id, "orders", 1).await;
    let dedicated = app.new_dedicated_cluster(&user, "lost-dedicated").await;
    let dedicated_id = dedicated["cluster_id"].as_str().unwrap().to_owned();

    let store = capstan_api::store::Store::connect(&app.persisted.database_url)
        .await
        .unwrap();
    let prefix_of = async |id: &str| -> String {
        sqlx::query_as::<_, (String,)>("SELECT prefix FROM clusters WHERE id = $1")
            .bind(id)
            .fetch_one(store.pool())
            .await
            .unwrap()
            .0
    };
    let (kept_prefix, lost_prefix) = (prefix_of(&kept_id).await, prefix_of(&lost_id).await);
    assert_eq!(pool_names_under(&app, &kept_prefix).await, 1);
    assert_eq!(pool_names_under(&app, &lost_prefix).await, 1);
    assert_eq!(broker_dirs(&app), std::slice::from_ref(&dedicated_id));
    for id in [&lost_id, &dedicated_id] {
        sqlx::query("UPDATE clusters SET state = 'deleted' WHERE id = $1")
            .bind(id)
            .execute(store.pool())
            .await
            .unwrap();
    }
    store.close().await;
    // And a broker directory of no cluster the store has ever known.
    let stranger = uuid::Uuid::new_v4().to_string();
    let stranger_dir = app.persisted.data_dir.join("brokers").join(&stranger);
    std::fs::create_dir_all(&stranger_dir).unwrap();
    std::fs::write(stranger_dir.join("broker.db"), b"someone's data").unwrap();

    let (persisted, dir) = app.stop().await;
    let app = start(persisted, alone()).await;
    assert_eq!(
        broker_dirs(&app),
        std::slice::from_ref(&stranger),
        "the deleted cluster's brokers are gone, the unknown ones stay"
    );
    assert_eq!(unowned_resources(&app).await, 1);
    assert_eq!(
        pool_names_under(&app, &lost_prefix).await,
        0,
        "the pool holds nothing under a prefix nobody owns"
    );
    assert_eq!(pool_names_under(&app, &kept_prefix).await, 1);
    assert_eq!(topic_names(&app, &user, &kept_id).await, ["stays"]);
    let (status, produced) = app
        .rest(
            Method::GET,
            "/produce/stays/still-here",
            Some((
                kept["username"].as_str().unwrap(),
                kept["password"].as_str().unwrap(),
            )),
            None,
            &[],
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{produced}");

    // The first stop kept the data directory (`dir`); a restarted app holds none of its own.
    let (persisted, _) = app.stop().await;
    let app = start(
        persisted,
        PlatformConfig {
            sweep_unknown_resources: true,
            ..alone()
        },
    )
    .await;
    assert!(
        broker_dirs(&app).is_empty(),
        "told it may, the sweep removes the unknown brokers too"
    );
    assert_eq!(unowned_resources(&app).await, 0);
    assert_eq!(topic_names(&app, &user, &kept_id).await, ["stays"]);
    drop(app);
    drop(dir);
}

on_both_backends!(resources_of_deleted_clusters_are_removed_at_start);

/// Sweeps run while a dedicated cluster's brokers exist and its row does not yet (the
/// creation held right after the brokers) leave them alone, even when the sweep may remove
/// what the store does not know, and the creation completes whole.
async fn a_cluster_being_made_is_never_swept(backend: Backend) {
    let app = spawn_app_with(
        backend,
        PlatformConfig {
            journal_check_every: Duration::ZERO,
            sweep_unknown_resources: true,
            ..alone()
        },
    )
    .await;
    let user = app.new_user().await;
    let held = failpoint::hold("cluster.create.after_brokers");
    let creation = {
        let (client, url, auth) = (
            app.client.clone(),
            app.url("/v2/kafka/cluster"),
            user.auth(),
        );
        let Auth::Basic(email, key) = auth else {
            unreachable!()
        };
        tokio::spawn(async move {
            client
                .post(url)
                .basic_auth(email, Some(key))
                .json(&json!({ "name": "slow", "region": "eu-west-1", "placement": "dedicated" }))
                .send()
                .await
                .expect("request sent")
                .json::<Value>()
                .await
                .expect("an answer")
        })
    };
    held.reached().await;
    assert_eq!(broker_dirs(&app).len(), 1, "its brokers exist, its row not");
    // Two whole passes of the journal check, each followed by a sweep.
    two_more_recovery_passes(&app).await;
    assert_eq!(broker_dirs(&app).len(), 1, "the sweeps left it alone");
    held.release();
    let cluster = creation.await.unwrap();
    assert_eq!(cluster["name"], "slow", "{cluster}");
    assert_eq!(
        broker_dirs(&app),
        [cluster["cluster_id"].as_str().unwrap().to_owned()]
    );
    assert!(kafka::authenticates(&kafka::config(&cluster)));
}

on_both_backends!(a_cluster_being_made_is_never_swept);
