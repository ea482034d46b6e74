//! One metering sweep over 1,000 clusters × 100 partitions.
//!
//! `cargo bench -p capstan --bench metering_sweep`: 10 real local brokers, each with 10 topics of
//! 10 partitions, are each presented to the collector as 100 distinct clusters — 1,000 clusters,
//! 100,000 partitions, 1,000 Kafka-protocol reads and 1,000 store transactions per sweep. It
//! reports wall time, the process's CPU time and its peak memory for the first sweep (every cursor
//! new), a steady sweep (nothing changed) and a sweep after traffic, with the per-cluster read
//! time of a single sweep as the baseline.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use capstan::platform::{ControlPlaneFleet, MeteringSettings, Platform};
use capstan_api::{
    app::Settings, crypto::SecretKey, provisioner::find_broker_binary, state::PlatformConfig,
};
use capstan_billing::{ClusterTarget, Collector, Fleet};
use serde_json::{Value, json};

const BROKERS: usize = 10;
const COPIES: usize = 100;
const TOPICS: usize = 10;
const PARTITIONS: i64 = 10;
const CONCURRENCY: usize = 8;

/// The real fleet, each cluster repeated under `COPIES` ids.
#[derive(Debug)]
struct Repeated(ControlPlaneFleet);

#[async_trait]
impl Fleet for Repeated {
    async fn clusters(&self) -> capstan_billing::Result<Vec<ClusterTarget>> {
        let real = self.0.clusters().await?;
        Ok(real
            .iter()
            .flat_map(|t| {
                (0..COPIES).map(move |i| ClusterTarget {
                    cluster_id: format!("{}#{i}", t.cluster_id),
                    ..t.clone()
                })
            })
            .collect())
    }

    async fn stored_bytes(
        &self,
        cluster: &ClusterTarget,
    ) -> capstan_billing::Result<BTreeMap<String, i64>> {
        let real = cluster
            .cluster_id
            .split('#')
            .next()
            .unwrap_or_default()
            .to_owned();
        self.0
            .stored_bytes(&ClusterTarget {
                cluster_id: real,
                ..cluster.clone()
            })
            .await
    }
}

fn cpu_and_peak_memory() -> (Duration, i64) {
    use nix::sys::resource::{UsageWho, getrusage};
    let usage = getrusage(UsageWho::RUSAGE_SELF).expect("getrusage");
    let cpu = Duration::from_micros(
        (usage.user_time().tv_sec() * 1_000_000 + usage.user_time().tv_usec()) as u64,
    ) + Duration::from_micros(
        (usage.system_time().tv_sec() * 1_000_000 + usage.system_time().tv_usec()) as u64,
    );
    (cpu, usage.max_rss() / 1024)
}

async fn timed(collector: &Arc<Collector>, label: &str) {
    let (cpu_before, _) = cpu_and_peak_memory();
    let started = Instant::now();
    let report = collector
        .sweep(capstan_billing::metering::unix_now())
        .await
        .expect("sweep");
    let wall = started.elapsed();
    let (cpu_after, peak_mb) = cpu_and_peak_memory();
    assert!(
        report.failed.is_empty(),
        "{} clusters failed, the first: {:?}",
        report.failed.len(),
        report.failed.first()
    );
    println!(
        "| {label} | {} | {:.2} s | {:.2} s | {peak_mb} MiB | {:.1} ms |",
        report.swept,
        wall.as_secs_f64(),
        (cpu_after - cpu_before).as_secs_f64(),
        wall.as_secs_f64() * 1000.0 * CONCURRENCY as f64 / report.swept.max(1) as f64
    );
}

#[tokio::main]
async fn main() {
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        database_url: format!("sqlite://{}", dir.path().join("capstan.db").display()),
        listen: "127.0.0.1:0".parse().expect("address"),
        gateway_listen: "127.0.0.1:0".parse().expect("address"),
        kafka: capstan_api::app::KafkaListen::loopback(),
        key: SecretKey::generate(),
        data_dir: dir.path().to_owned(),
        broker_binary: find_broker_binary(None)
            .expect("tansu must be installed (scripts/test installs it)"),
        platform: PlatformConfig {
            max_clusters_per_account: 100,
            ..Default::default()
        },
    };
    let platform = Platform::build(
        settings,
        MeteringSettings {
            interval: Duration::from_secs(3600),
            concurrency: CONCURRENCY,
            prices: Default::default(),
            stripe: None,
            notify_url: None,
        },
    )
    .await
    .expect("platform");
    let state = platform.application().state().clone();
    let api = format!(
        "http://{}",
        platform.application().local_addr().expect("address")
    );
    let gateway = format!(
        "http://{}",
        platform.application().gateway_addr().expect("address")
    );
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(platform.run_until(async {
        let _ = stopped.await;
    }));

    eprintln!("setting up {BROKERS} brokers with {TOPICS} topics × {PARTITIONS} partitions each…");
    let http = reqwest::Client::new();
    let credentials = json!({ "email": "bench@example.com", "password": "benchmark password" });
    http.post(format!("{api}/v2/auth/signup"))
        .json(&credentials)
        .send()
        .await
        .expect("signup");
    let session: Value = http
        .post(format!("{api}/v2/auth/login"))
        .json(&credentials)
        .send()
        .await
        .expect("login")
        .json()
        .await
        .expect("json");
    let token = session["token"].as_str().expect("token").to_owned();
    let mut clusters = Vec::new();
    for b in 0..BROKERS {
        let cluster: Value = http
            .post(format!("{api}/v2/kafka/cluster"))
            .bearer_auth(&token)
            .json(&json!({ "name": format!("bench-{b}"), "region": "eu-west-1" }))
            .send()
            .await
            .expect("cluster")
            .json()
            .await
            .expect("json");
        for t in 0..TOPICS {
            let topic = json!({ "name": format!("topic-{t}"), "partitions": PARTITIONS, "retention_time": -1, "retention_size": -1,
                "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster["cluster_id"] });
            let created = http
                .post(format!("{api}/v2/kafka/topic"))
                .bearer_auth(&token)
                .json(&topic)
                .send()
                .await
                .expect("topic");
            assert!(created.status().is_success());
        }
        clusters.push(cluster);
        eprintln!("  broker {}/{BROKERS} ready", b + 1);
    }

    let collector = Arc::new(Collector::new(
        state.store.pool().clone(),
        Arc::new(Repeated(ControlPlaneFleet::new(state.clone()))),
        CONCURRENCY,
    ));
    println!(
        "Metering sweep: {} clusters × {} partitions ({BROKERS} real brokers, each presented as {COPIES} clusters), {CONCURRENCY} clusters at once, SQLite store",
        BROKERS * COPIES,
        TOPICS as i64 * PARTITIONS
    );
    println!();
    println!(
        "| sweep | clusters | wall time | CPU time (whole process) | peak memory | wall time per cluster read (× concurrency) |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    timed(&collector, "first (100,000 new cursors)").await;
    timed(&collector, "steady (nothing changed)").await;
    for cluster in &clusters {
        let body = serde_json::to_string(&vec![json!({ "value": "v" }); 100]).expect("json");
        for t in 0..TOPICS {
            http.post(format!("{gateway}/produce/topic-{t}"))
                .basic_auth(
                    cluster["username"].as_str().expect("user"),
                    cluster["password"].as_str(),
                )
                .body(body.clone())
                .send()
                .await
                .expect("produce");
        }
    }
    timed(&collector, "after 10,000 messages on every broker").await;
    let _ = stop.send(());
    let _ = server.await;
}
