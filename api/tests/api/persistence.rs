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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_that_crashes_is_restarted_with_its_data() {
    use nix::sys::signal::{Signal, kill};
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_dedicated_cluster(&user, "crashy").await;
    app.new_topic(&user, cluster["cluster_id"].as_str().unwrap(), "events", 1)
        .await;
    let config = kafka::config(&cluster);
    kafka::produce(&config, "events", 12).await;
    let pid = app.broker_pid(cluster["cluster_id"].as_str().unwrap());
    kill(pid, Signal::SIGKILL).unwrap();
    // The supervisor notices within seconds; wait for it with a deadline.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !kafka::authenticates(&config) {
        assert!(
            std::time::Instant::now() < deadline,
            "the broker was not restarted"
        );
    }
    assert_eq!(kafka::message_count(&config, "events"), 12, "no data lost");
}
