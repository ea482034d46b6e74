use reqwest::{Method, StatusCode};

use crate::helpers::{Backend, spawn_app, start};
use crate::{kafka, on_both_backends};

async fn a_restart_keeps_accounts_clusters_topics_and_messages(backend: Backend) {
    let app = spawn_app(backend).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "durable").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap().to_owned();
    app.new_topic(&user, &cluster_id, "events", 2).await;
    kafka::produce(&kafka::config(&cluster), "events", 25).await;

    let (persisted, dir) = app.stop().await;
    assert!(
        !kafka::authenticates(&kafka::config(&cluster)),
        "brokers stop with the control plane"
    );

    let app = start(persisted, Default::default()).await;
    let (status, again) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/cluster/{cluster_id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{again}");
    assert_eq!(again["password"], cluster["password"]);
    let config = kafka::config(&again);
    assert_eq!(kafka::topics(&config), vec![("events".to_owned(), 2)]);
    assert_eq!(kafka::message_count(&config, "events"), 25);
    drop(app);
    drop(dir);
}
on_both_backends!(a_restart_keeps_accounts_clusters_topics_and_messages);
