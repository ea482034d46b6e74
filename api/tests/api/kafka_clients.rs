//! Real clients nobody here wrote, with the credentials the API returned.

use tokio::process::Command;

use serde_json::Value;

use crate::helpers::{Backend, spawn_app};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kafkajs_produces_and_consumes_over_scram_with_the_returned_credentials() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "js").await;
    app.new_topic(
        &user,
        cluster["cluster_id"].as_str().unwrap(),
        "greetings",
        3,
    )
    .await;

    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../tests/node/kafkajs-roundtrip.mjs"
    );
    let args = [
        script,
        cluster["tcp_endpoint"].as_str().unwrap(),
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
        "greetings",
        "50",
    ];
    let output = Command::new("node")
        .args(args)
        .output()
        .await
        .expect("node must be installed, with `npm ci` run in tests/node (see README)");
    assert!(
        output.status.success(),
        "kafkajs failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let result: Value = serde_json::from_slice(&output.stdout).expect("JSON line");
    assert_eq!(result["produced"], 50);
    assert_eq!(result["consumed"].as_array().unwrap().len(), 50, "{result}");
}
