//! Metering end to end: real brokers, real clients (librdkafka over TCP, the REST gateway), the
//! real collector, on SQLite and PostgreSQL. Sweeps are run on demand, so nothing waits on timers.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use capstan::platform::{MeteringSettings, Platform};
use capstan_api::{
    app::Settings, crypto::SecretKey, provisioner::find_broker_binary, state::PlatformConfig,
};
use capstan_billing::Collector;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, CommitMode, Consumer},
    producer::{FutureProducer, FutureRecord},
};
use reqwest::Method;
use serde_json::{Value, json};
use sqlx::Connection;

struct Running {
    api: String,
    gateway: String,
    collector: Arc<Collector>,
    http: reqwest::Client,
    auth: (String, String),
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

async fn database(postgres: bool, dir: &std::path::Path) -> String {
    if !postgres {
        return format!("sqlite://{}", dir.join("capstan.db").display());
    }
    let admin = std::env::var("CAPSTAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into());
    let mut conn = sqlx::PgConnection::connect(&admin).await.unwrap();
    let name = format!("capstan_test_{}", uuid::Uuid::new_v4().simple());
    sqlx::query(&format!("CREATE DATABASE {name}"))
        .execute(&mut conn)
        .await
        .unwrap();
    format!("{}/{name}", admin.rsplit_once('/').unwrap().0)
}

async fn start(postgres: bool) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings {
        database_url: database(postgres, dir.path()).await,
        listen: "127.0.0.1:0".parse().unwrap(),
        gateway_listen: "127.0.0.1:0".parse().unwrap(),
        key: SecretKey::generate(),
        data_dir: dir.path().to_owned(),
        broker_binary: find_broker_binary(None)
            .expect("tansu must be installed (scripts/test installs it)"),
        platform: PlatformConfig::default(),
    };
    // A long interval: the tests sweep on demand.
    let metering = MeteringSettings {
        interval: Duration::from_secs(3600),
        concurrency: 4,
    };
    let platform = Platform::build(settings, metering).await.unwrap();
    let api = format!("http://{}", platform.application().local_addr().unwrap());
    let gateway = format!("http://{}", platform.application().gateway_addr().unwrap());
    let collector = platform.collector();
    let (tx, rx) = tokio::sync::oneshot::channel();
    tokio::spawn(platform.run_until(async {
        let _ = rx.await;
    }));
    let http = reqwest::Client::new();
    let credentials = json!({ "email": "meter@example.com", "password": "metering password" });
    http.post(format!("{api}/v2/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .unwrap();
    let session: Value = http
        .post(format!("{api}/v2/auth/login"))
        .json(&credentials)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key: Value = http
        .post(format!("{api}/v2/api-keys"))
        .bearer_auth(session["token"].as_str().unwrap())
        .json(&json!({ "name": "t" }))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let auth = (
        "meter@example.com".to_owned(),
        key["key"].as_str().unwrap().to_owned(),
    );
    Running {
        api,
        gateway,
        collector,
        http,
        auth,
        stop: Some(tx),
        _dir: dir,
    }
}

impl Running {
    async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.api))
            .basic_auth(&self.auth.0, Some(&self.auth.1));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let body: Value = response.json().await.unwrap();
        assert!(status.is_success(), "{path}: {status} {body}");
        body
    }

    async fn cluster(&self, name: &str, topics: &[(&str, i64)]) -> Value {
        let cluster = self
            .api(
                Method::POST,
                "/v2/kafka/cluster",
                Some(json!({ "name": name, "region": "eu-west-1" })),
            )
            .await;
        for (topic, partitions) in topics {
            self.topic(&cluster, topic, *partitions).await;
        }
        cluster
    }

    async fn topic(&self, cluster: &Value, name: &str, partitions: i64) -> Value {
        let body = json!({ "name": name, "partitions": partitions, "retention_time": -1, "retention_size": -1,
            "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster["cluster_id"] });
        self.api(Method::POST, "/v2/kafka/topic", Some(body)).await
    }

    async fn rest(
        &self,
        cluster: &Value,
        method: Method,
        path: &str,
        body: &str,
        headers: &[(&str, &str)],
    ) -> Value {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.gateway))
            .basic_auth(
                cluster["username"].as_str().unwrap(),
                cluster["password"].as_str(),
            )
            .body(body.to_owned());
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        let response = request.send().await.unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.json().await.unwrap()
    }

    async fn sweep(&self) -> capstan_billing::metering::SweepReport {
        self.collector
            .sweep(capstan_billing::metering::unix_now())
            .await
            .unwrap()
    }

    /// Month-to-date totals per topic: (produced, consumed).
    async fn totals(&self, cluster: &Value) -> BTreeMap<String, (i64, i64)> {
        let id = cluster["cluster_id"].as_str().unwrap();
        let usage = self
            .api(Method::GET, &format!("/v2/kafka/usage/{id}"), None)
            .await;
        usage["topics"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                (
                    t["topic"].as_str().unwrap().to_owned(),
                    (
                        t["produced"].as_i64().unwrap(),
                        t["consumed"].as_i64().unwrap(),
                    ),
                )
            })
            .collect()
    }
}

fn tcp(cluster: &Value) -> ClientConfig {
    capstan_api::kafka_admin::client_config(
        cluster["tcp_endpoint"].as_str().unwrap(),
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    )
}

async fn produce_tcp(cluster: &Value, topic: &str, count: usize, bytes: usize) {
    let producer: FutureProducer = tcp(cluster)
        .set("acks", "all")
        .set("linger.ms", "2")
        .create()
        .unwrap();
    let payload = "p".repeat(bytes);
    let mut deliveries = Vec::new();
    for _ in 0..count {
        deliveries.push(
            producer
                .send_result(FutureRecord::<(), str>::to(topic).payload(&payload))
                .map_err(|(e, _)| e)
                .unwrap(),
        );
    }
    for d in deliveries {
        d.await.unwrap().map_err(|(e, _)| e).unwrap();
    }
}

/// Consumes exactly `count` messages with a committing group over TCP.
async fn consume_tcp(cluster: &Value, topic: &str, group: &str, count: usize) {
    let config = tcp(cluster);
    let (topic, group) = (topic.to_owned(), group.to_owned());
    tokio::task::spawn_blocking(move || {
        let consumer: BaseConsumer = config
            .clone()
            .set("group.id", &group)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .create()
            .unwrap();
        consumer.subscribe(&[&topic]).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(60);
        let mut seen = 0;
        while seen < count {
            assert!(
                std::time::Instant::now() < deadline,
                "consumed only {seen} of {count}"
            );
            if let Some(Ok(message)) = consumer.poll(Duration::from_millis(200)) {
                seen += 1;
                consumer.store_offset_from_message(&message).unwrap();
            }
        }
        consumer.commit_consumer_state(CommitMode::Sync).unwrap();
        consumer.unsubscribe();
    })
    .await
    .unwrap();
}

async fn counts_are_exact_for_every_client_and_a_replayed_sweep_changes_nothing(postgres: bool) {
    let run = start(postgres).await;
    let cluster = run.cluster("exact", &[("orders", 3), ("audit", 1)]).await;
    // Produced: 40 over TCP, 25 over REST (batch), 1 over REST (single).
    produce_tcp(&cluster, "orders", 40, 100).await;
    let batch = serde_json::to_string(&vec![json!({ "value": "r" }); 25]).unwrap();
    run.rest(&cluster, Method::POST, "/produce/orders", &batch, &[])
        .await;
    run.rest(&cluster, Method::GET, "/produce/audit/one", "", &[])
        .await;
    // Consumed: a TCP group reads 30 of orders' 65 and commits.
    consume_tcp(&cluster, "orders", "tcp-readers", 30).await;
    // A REST group reads all of audit (1) and commits; a REST group-less fetch returns 1 more.
    let settings = [
        ("Kafka-Auto-Offset-Reset", "earliest"),
        ("Kafka-Enable-Auto-Commit", "false"),
    ];
    let mut got = 0;
    while got < 1 {
        let batch = run
            .rest(
                &cluster,
                Method::GET,
                "/consume/rest-readers/one/audit?timeout=2000",
                "",
                &settings,
            )
            .await;
        got += batch.as_array().unwrap().len();
    }
    run.rest(&cluster, Method::POST, "/commit/rest-readers/one", "", &[])
        .await;
    let fetched = run
        .rest(
            &cluster,
            Method::POST,
            "/fetch",
            r#"{"topic":"audit","partition":0,"offset":0}"#,
            &[],
        )
        .await;
    assert_eq!(fetched.as_array().unwrap().len(), 1);

    let report = run.sweep().await;
    assert_eq!((report.swept, report.failed.len()), (1, 0), "{report:?}");
    let expected = BTreeMap::from([
        ("audit".to_owned(), (1, 1 + 1)),
        ("orders".to_owned(), (65, 30)),
    ]);
    assert_eq!(run.totals(&cluster).await, expected);
    run.sweep().await;
    run.sweep().await;
    assert_eq!(
        run.totals(&cluster).await,
        expected,
        "replayed sweeps count nothing twice"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_on_sqlite() {
    counts_are_exact_for_every_client_and_a_replayed_sweep_changes_nothing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_exact_on_postgres() {
    counts_are_exact_for_every_client_and_a_replayed_sweep_changes_nothing(true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sweeps_killed_at_any_point_neither_lose_nor_repeat_a_count() {
    let run = start(false).await;
    let cluster = run.cluster("crashy", &[("t", 2)]).await;
    let mut expected = 0;
    for round in 0..6u64 {
        produce_tcp(&cluster, "t", 10, 50).await;
        expected += 10;
        // Crash the sweep at a different point each round: the task is dropped mid-flight, as a
        // killed process would be, with its transaction open or not yet begun.
        let collector = run.collector.clone();
        let sweep =
            tokio::spawn(
                async move { collector.sweep(capstan_billing::metering::unix_now()).await },
            );
        tokio::time::sleep(Duration::from_millis(round * 7)).await;
        sweep.abort();
        let _ = sweep.await;
    }
    run.sweep().await;
    assert_eq!(run.totals(&cluster).await["t"], (expected, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_deleted_and_recreated_between_sweeps_never_counts_negative_or_twice() {
    let run = start(false).await;
    let cluster = run.cluster("recreate", &[]).await;
    let topic = run.topic(&cluster, "t", 1).await;
    produce_tcp(&cluster, "t", 20, 10).await;
    run.sweep().await;
    run.api(
        Method::DELETE,
        &format!("/v2/kafka/topic/{}", topic["topic_id"].as_str().unwrap()),
        None,
    )
    .await;
    run.topic(&cluster, "t", 1).await;
    produce_tcp(&cluster, "t", 5, 10).await;
    run.sweep().await;
    assert_eq!(run.totals(&cluster).await["t"], (25, 0));
    // And when the new topic outgrows the old cursor before a sweep sees it.
    let topic = run
        .api(
            Method::GET,
            &format!(
                "/v2/kafka/topics/{}",
                cluster["cluster_id"].as_str().unwrap()
            ),
            None,
        )
        .await;
    run.api(
        Method::DELETE,
        &format!("/v2/kafka/topic/{}", topic[0]["topic_id"].as_str().unwrap()),
        None,
    )
    .await;
    run.topic(&cluster, "t", 1).await;
    produce_tcp(&cluster, "t", 30, 10).await;
    run.sweep().await;
    assert_eq!(run.totals(&cluster).await["t"], (55, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storage_follows_the_bytes_the_broker_holds() {
    let run = start(false).await;
    let cluster = run.cluster("storage", &[("big", 1), ("small", 1)]).await;
    produce_tcp(&cluster, "big", 200, 1000).await;
    produce_tcp(&cluster, "small", 10, 100).await;
    run.sweep().await;
    let id = cluster["cluster_id"].as_str().unwrap();
    let usage = run
        .api(Method::GET, &format!("/v2/kafka/usage/{id}"), None)
        .await;
    let stored = usage["points"][0]["storage_bytes"].as_i64().unwrap();
    assert_eq!(
        stored,
        200 * 1000 + 10 * 100,
        "key, value and header bytes of what the broker stores"
    );
    let stats = run
        .api(Method::GET, &format!("/v2/kafka/stats/cluster/{id}"), None)
        .await;
    assert_eq!(
        stats["diskusage"].as_array().unwrap().last().unwrap()["y"],
        stored
    );
    produce_tcp(&cluster, "big", 100, 1000).await;
    run.sweep().await;
    let usage = run
        .api(Method::GET, &format!("/v2/kafka/usage/{id}"), None)
        .await;
    let average = usage["points"][0]["storage_bytes"].as_i64().unwrap();
    assert_eq!(
        average,
        (201_000 + 301_000) / 2,
        "the hour's average of the two samples"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cluster_whose_broker_is_down_does_not_stop_the_others_and_is_caught_up() {
    use nix::sys::signal::{Signal, kill};
    let run = start(false).await;
    let healthy = run.cluster("healthy", &[("t", 1)]).await;
    let frozen = run.cluster("frozen", &[("t", 1)]).await;
    produce_tcp(&healthy, "t", 5, 10).await;
    produce_tcp(&frozen, "t", 7, 10).await;
    let port = frozen["tcp_endpoint"]
        .as_str()
        .unwrap()
        .rsplit(':')
        .next()
        .unwrap()
        .to_owned();
    let pid = broker_pid(&port);
    kill(pid, Signal::SIGSTOP).unwrap();
    let report = run.sweep().await;
    kill(pid, Signal::SIGCONT).unwrap();
    assert_eq!(report.swept, 1, "{report:?}");
    assert_eq!(report.failed.len(), 1);
    assert_eq!(report.failed[0].0, frozen["cluster_id"].as_str().unwrap());
    assert_eq!(run.totals(&healthy).await["t"], (5, 0));
    // Sweeping the cluster again (a restarted collector has no back-off to wait out) catches up.
    produce_tcp(&frozen, "t", 3, 10).await;
    run.collector
        .sweep_cluster(&target(&frozen), capstan_billing::metering::unix_now())
        .await
        .unwrap();
    assert_eq!(run.totals(&frozen).await["t"], (10, 0));
}

/// A sweep target with the cluster's default credential (full access, like the internal one).
fn target(cluster: &Value) -> capstan_billing::ClusterTarget {
    capstan_billing::ClusterTarget {
        cluster_id: cluster["cluster_id"].as_str().unwrap().to_owned(),
        credentials: capstan_billing::kafka::Credentials {
            bootstrap: cluster["tcp_endpoint"].as_str().unwrap().to_owned(),
            username: cluster["username"].as_str().unwrap().to_owned(),
            password: cluster["password"].as_str().unwrap().to_owned(),
        },
    }
}

fn broker_pid(port: &str) -> nix::unistd::Pid {
    let needle = format!("tcp://127.0.0.1:{port}");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = String::from_utf8_lossy(
            &std::fs::read(entry.path().join("cmdline")).unwrap_or_default(),
        )
        .replace('\0', " ");
        if cmdline.contains("broker") && cmdline.contains(&needle) {
            return nix::unistd::Pid::from_raw(pid);
        }
    }
    panic!("no broker on port {port}");
}
