//! Metering end to end: real brokers, real clients (librdkafka over TCP, the REST gateway), the
//! real collector, on SQLite and PostgreSQL. Sweeps are run on demand, so nothing waits on timers.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

mod support;

use std::{collections::BTreeMap, time::Duration};

use reqwest::Method;
use serde_json::{Value, json};
use support::{consume_tcp, produce_tcp, start};

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
    // Consumed: a TCP group reads orders' 65 and commits. (Consumption is what the gateway
    // delivers: a client that stopped reading after 30 would still have been handed all 65,
    // which librdkafka fetches at once.)
    consume_tcp(&cluster, "orders", "tcp-readers", 65).await;
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
        ("orders".to_owned(), (65, 65)),
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
async fn what_moved_since_the_last_sweep_is_counted_before_a_topic_or_cluster_is_deleted() {
    let run = start(false).await;
    let cluster = run.cluster("deleting", &[("t", 1), ("u", 1)]).await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap();
    produce_tcp(&cluster, "t", 20, 10).await;
    produce_tcp(&cluster, "u", 7, 10).await;
    // No sweep before the delete: the delete meters the cluster first.
    let topics = run
        .api(Method::GET, &format!("/v2/kafka/topics/{cluster_id}"), None)
        .await;
    let t = topics
        .as_array()
        .unwrap()
        .iter()
        .find(|topic| topic["topic_name"] == "t")
        .unwrap();
    run.api(
        Method::DELETE,
        &format!("/v2/kafka/topic/{}", t["topic_id"].as_str().unwrap()),
        None,
    )
    .await;
    assert_eq!(run.totals(&cluster).await["t"], (20, 0));
    // A topic created again with the name counts from its own start.
    run.topic(&cluster, "t", 1).await;
    produce_tcp(&cluster, "t", 3, 10).await;
    run.sweep().await;
    assert_eq!(run.totals(&cluster).await["t"], (23, 0));

    produce_tcp(&cluster, "u", 5, 10).await;
    run.api(
        Method::DELETE,
        &format!("/v2/kafka/cluster/{cluster_id}"),
        None,
    )
    .await;
    let produced = run
        .count(
            "SELECT CAST(SUM(produced) AS BIGINT) FROM usage_hourly WHERE cluster_id = $1 AND topic = 'u'",
            cluster_id,
        )
        .await;
    assert_eq!(
        produced, 12,
        "the deleted cluster's last messages are billed"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_collectors_on_one_postgres_under_traffic_count_every_message_once() {
    let run = start(true).await;
    let cluster = run.cluster("replicas", &[("t", 2)]).await;
    // A second control-plane replica's collector, on the same database.
    let second = std::sync::Arc::new(capstan_billing::Collector::new(
        run.platform_state.store.pool().clone(),
        std::sync::Arc::new(capstan::platform::ControlPlaneFleet::new(
            run.platform_state.clone(),
        )),
        4,
    ));
    let producing = {
        let cluster = cluster.clone();
        tokio::spawn(async move {
            for _ in 0..10 {
                produce_tcp(&cluster, "t", 100, 10).await;
            }
        })
    };
    for _ in 0..50 {
        let now = capstan_billing::metering::unix_now();
        let (first, other) = tokio::join!(run.collector.sweep(now), second.sweep(now));
        for report in [first.unwrap(), other.unwrap()] {
            assert!(report.failed.is_empty(), "{report:?}");
        }
    }
    producing.await.unwrap();
    let now = capstan_billing::metering::unix_now();
    let (first, other) = tokio::join!(run.collector.sweep(now), second.sweep(now));
    first.unwrap();
    other.unwrap();
    assert_eq!(run.totals(&cluster).await["t"], (1_000, 0));

    // The worst case, made likely: both replicas store the very same read at the same moment,
    // and a replica stores a read older than what the other stored.
    let target = fleet_target(&run, &cluster).await;
    for _ in 0..20 {
        produce_tcp(&cluster, "t", 10, 10).await;
        let read = capstan_kafka::read_offsets(&target.credentials, &target.prefix)
            .await
            .unwrap();
        let now = capstan_billing::metering::unix_now();
        let none = BTreeMap::new();
        let (first, other) = tokio::join!(
            run.collector.store(&target.cluster_id, &read, &none, now),
            second.store(&target.cluster_id, &read, &none, now)
        );
        first.unwrap();
        other.unwrap();
    }
    let stale = capstan_kafka::read_offsets(&target.credentials, &target.prefix)
        .await
        .unwrap();
    produce_tcp(&cluster, "t", 10, 10).await;
    run.collector
        .sweep(capstan_billing::metering::unix_now())
        .await
        .unwrap();
    second
        .store(
            &target.cluster_id,
            &stale,
            &BTreeMap::new(),
            capstan_billing::metering::unix_now(),
        )
        .await
        .unwrap();
    assert_eq!(run.totals(&cluster).await["t"], (1_210, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rest_delivery_that_cannot_be_counted_at_once_is_written_by_the_delivery_ledger() {
    use capstan_api::gateway::FetchObserver;
    let run = start(false).await;
    let cluster = run.cluster("retried", &[("t", 1)]).await;
    // A meter whose database is gone (closed), beside the platform's delivery ledger.
    let gone = sqlx::any::AnyPoolOptions::new()
        .connect("sqlite::memory:")
        .await
        .unwrap();
    gone.close().await;
    let counter =
        capstan::platform::FetchCounter(capstan_billing::Meter::new(gone), run.deliveries.clone());
    counter
        .fetched(cluster["cluster_id"].as_str().unwrap(), "t", 5)
        .await;
    run.sweep().await;
    assert_eq!(run.totals(&cluster).await["t"], (0, 5));
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
    let frozen = run.dedicated_cluster("frozen", &[("t", 1)]).await;
    produce_tcp(&healthy, "t", 5, 10).await;
    produce_tcp(&frozen, "t", 7, 10).await;
    // Its clients reach it through the gateway; the broker's own address is in the store.
    let frozen_target = fleet_target(&run, &frozen).await;
    let port = frozen_target
        .credentials
        .bootstrap
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
        .sweep_cluster(&frozen_target, capstan_billing::metering::unix_now())
        .await
        .unwrap();
    assert_eq!(run.totals(&frozen).await["t"], (10, 0));
}

/// The collector's own sweep target for `cluster` (the platform's user on its brokers).
async fn fleet_target(run: &support::Running, cluster: &Value) -> capstan_billing::ClusterTarget {
    use capstan_billing::Fleet;
    let id = cluster["cluster_id"].as_str().unwrap();
    capstan::platform::ControlPlaneFleet::new(run.platform_state.clone())
        .clusters()
        .await
        .unwrap()
        .into_iter()
        .find(|t| t.cluster_id == id)
        .unwrap()
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

/// A sweep stopped dead inside its transaction (after reading the cursors, after adding the
/// usage; a failpoint stands for the crash) stores nothing, is reported as failed, and the next
/// sweep counts every message exactly once.
async fn a_sweep_stopped_inside_its_transaction_stores_nothing(postgres: bool) {
    use capstan_api::failpoint;
    let run = start(postgres).await;
    let cluster = run.cluster("stopped", &[("t", 1)]).await;
    let id = cluster["cluster_id"].as_str().unwrap().to_owned();
    produce_tcp(&cluster, "t", 7, 10).await;

    failpoint::arm("sweep.store.cursors");
    let report = run.sweep().await;
    assert_eq!(report.swept, 0, "{report:?}");
    assert_eq!(report.failed.len(), 1, "{report:?}");
    assert_eq!(report.failed[0].0, id);
    let stored =
        |totals: BTreeMap<String, (i64, i64)>| totals.get("t").copied().unwrap_or_default();
    assert_eq!(
        stored(run.totals(&cluster).await),
        (0, 0),
        "nothing stored by the stopped sweep"
    );

    produce_tcp(&cluster, "t", 3, 10).await;
    // The collector backs the failed cluster off; a sweep of it alone (what a restarted
    // collector would run) is stopped after it added the usage, before the commit.
    failpoint::arm("sweep.store.usage");
    let target = fleet_target(&run, &cluster).await;
    let collector = run.collector.clone();
    let stopped = tokio::spawn(async move {
        collector
            .sweep_cluster(&target, capstan_billing::metering::unix_now())
            .await
    })
    .await;
    assert!(stopped.is_err_and(|e| e.is_panic()));
    assert_eq!(stored(run.totals(&cluster).await), (0, 0));

    let target = fleet_target(&run, &cluster).await;
    run.collector
        .sweep_cluster(&target, capstan_billing::metering::unix_now())
        .await
        .unwrap();
    assert_eq!(run.totals(&cluster).await["t"], (10, 0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_stopped_inside_its_transaction_stores_nothing_on_sqlite() {
    a_sweep_stopped_inside_its_transaction_stores_nothing(false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sweep_stopped_inside_its_transaction_stores_nothing_on_postgres() {
    a_sweep_stopped_inside_its_transaction_stores_nothing(true).await;
}

/// The metric names a PromQL expression reads (`capstan_…`, a histogram's `_bucket` series
/// named by its family).
fn metrics_in(expr: &str) -> Vec<String> {
    expr.match_indices("capstan_")
        .map(|(at, _)| {
            let name: String = expr[at..]
                .chars()
                .take_while(|c| c.is_ascii_lowercase() || *c == '_')
                .collect();
            name.strip_suffix("_bucket")
                .map(str::to_owned)
                .unwrap_or(name)
        })
        .collect()
}

/// Every query of the chart's Grafana dashboard (charts/capstan/dashboards/capstan.json) names
/// a metric the binary exports: the control plane's `/metrics` after a workload that reaches
/// each of them (REST, the Kafka gateway and a malformed frame to it, sweeps with one cluster
/// failing), and the operator's metrics.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_dashboard_queries_only_metrics_the_binary_exports() {
    use nix::sys::signal::{Signal, kill};
    use tokio::io::AsyncWriteExt;
    let run = start(false).await;
    let healthy = run.cluster("dashboard", &[("t", 1)]).await;
    let frozen = run.dedicated_cluster("frozen", &[("t", 1)]).await;
    let batch = serde_json::to_string(&vec![json!({ "value": "r" }); 3]).unwrap();
    run.rest(&healthy, Method::POST, "/produce/t", &batch, &[])
        .await;
    produce_tcp(&healthy, "t", 5, 10).await;
    // A frame claiming 2 GiB: the gateway refuses it and counts why.
    let mut raw = tokio::net::TcpStream::connect(&run.kafka).await.unwrap();
    raw.write_all(&0x7fff_ffffu32.to_be_bytes()).await.unwrap();
    let _ = raw.flush().await;
    let target = fleet_target(&run, &frozen).await;
    let port = target.credentials.bootstrap.rsplit(':').next().unwrap();
    let pid = broker_pid(port);
    kill(pid, Signal::SIGSTOP).unwrap();
    let report = run.sweep().await;
    kill(pid, Signal::SIGCONT).unwrap();
    assert_eq!(report.failed.len(), 1, "{report:?}");

    let scraped = reqwest::get(format!("{}/metrics", run.api))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let mut exported: std::collections::BTreeSet<String> = scraped
        .lines()
        .filter_map(|line| line.strip_prefix("# TYPE "))
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect();
    let operator = capstan_operator::metrics::Metrics::new().unwrap();
    operator.reconciles.inc();
    operator.errors.with_label_values(&["api"]).inc();
    operator.duration.observe(0.1);
    exported.extend(
        operator
            .registry
            .gather()
            .iter()
            .map(|family| family.name().to_owned()),
    );

    let dashboard: Value = serde_json::from_str(
        &std::fs::read_to_string("charts/capstan/dashboards/capstan.json").unwrap(),
    )
    .unwrap();
    let mut named = 0;
    for panel in dashboard["panels"].as_array().unwrap() {
        for target in panel["targets"].as_array().unwrap() {
            let expr = target["expr"].as_str().unwrap();
            let metrics = metrics_in(expr);
            assert!(!metrics.is_empty(), "{expr}");
            for metric in metrics {
                assert!(
                    exported.contains(&metric),
                    "panel {:?} reads {metric}, which the binary does not export (it exports {exported:?})",
                    panel["title"]
                );
                named += 1;
            }
        }
    }
    assert!(named >= 15, "the dashboard reads {named} metrics");
}
