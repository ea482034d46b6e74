//! The Kafka gateway and the REST gateway against a Kafka client talking to the same broker
//! directly, measured side by side in one run.
//!
//! `cargo bench -p capstan --bench gateways` starts one control plane in-process (SQLite, the
//! local shared pool: one tansu broker), one shared cluster with a one-partition topic, and
//! measures, in `ROUNDS` interleaved rounds (direct, Kafka gateway, REST, then the next round
//! in another order):
//! - produce throughput: librdkafka (`linger.ms=5`, acks=all) straight to the broker with the
//!   pool's own user on the topic's pool name, the same client through the Kafka gateway with
//!   the cluster's credential, and REST batches of 100 with 8 requests in flight (or
//!   `GATEWAYS_BENCH_REST_IN_FLIGHT`) and with 32 (a loaded gateway);
//! - the same direct client held to as many unacknowledged messages as REST's in-flight
//!   requests carry, the fair baseline for the REST gateway's own cost;
//! - single-message latency (linger 0, acks=all), one send at a time, alternating the sides;
//! - the gateway's memory per idle authenticated connection, and `CONNECTIONS` connections held
//!   (each still answers after all are open);
//! - creating shared clusters through the API (`CREATIONS` of them), and that it starts no
//!   process; the pool broker's resident memory.
//!
//! It prints medians with min–max over the rounds. Bounded: fixed message counts, loopback only.

use std::time::{Duration, Instant};

use capstan_api::{
    app::{Application, KafkaListen, Settings},
    clusters,
    crypto::SecretKey,
    provisioner::find_broker_binary,
    state::PlatformConfig,
};
use capstan_kafka::Connection;
use kafka_protocol::messages::ApiVersionsRequest;
use rdkafka::{
    ClientConfig,
    producer::{FutureProducer, FutureRecord},
};
use serde_json::{Value, json};

const MESSAGE_BYTES: usize = 100;
const ROUNDS: usize = 5;
const THROUGHPUT_MESSAGES: usize = 100_000;
const BATCH: usize = 100;
/// REST requests in flight at once; `GATEWAYS_BENCH_REST_IN_FLIGHT` overrides it.
const CONCURRENT_REQUESTS: usize = 8;
/// REST requests in flight at once on the loaded side.
const LOADED_REQUESTS: usize = 32;
const LATENCY_SAMPLES: usize = 400;
const CONNECTIONS: usize = 1_000;
const CREATIONS: usize = 30;

#[tokio::main]
async fn main() {
    raise_file_limit();
    let dir = tempfile::tempdir().expect("temp dir");
    let settings = Settings {
        database_url: format!("sqlite://{}", dir.path().join("capstan.db").display()),
        listen: "127.0.0.1:0".parse().expect("address"),
        gateway_listen: "127.0.0.1:0".parse().expect("address"),
        kafka: KafkaListen::loopback(),
        key: SecretKey::generate(),
        data_dir: dir.path().to_owned(),
        broker_binary: find_broker_binary(None)
            .expect("tansu must be installed (scripts/test installs it)"),
        platform: PlatformConfig {
            max_clusters_per_account: 100,
            ..PlatformConfig::default()
        },
    };
    let app = Application::build(settings).await.expect("application");
    let api = format!("http://{}", app.local_addr().expect("address"));
    let rest = format!("http://{}", app.gateway_addr().expect("address"));
    let state = app.state().clone();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let (cluster, setup_key) = setup(&http, &api).await;
    let user = cluster["username"].as_str().expect("username").to_owned();
    let pass = cluster["password"].as_str().expect("password").to_owned();
    let row = clusters::find_live(&state.store, cluster["cluster_id"].as_str().expect("id"))
        .await
        .expect("cluster row");
    // The same broker and partition both ways: the pool's user on the pool's name of the topic.
    let direct = state.provisioner.client_config(&row.spec(), "");
    let direct_topic = row.spec().physical("bench");
    let through = capstan_api::kafka_admin::client_config(
        cluster["tcp_endpoint"].as_str().expect("endpoint"),
        &user,
        &pass,
    );
    let payload = "x".repeat(MESSAGE_BYTES);
    println!(
        "Kafka gateway and REST gateway vs a direct librdkafka client, one local tansu broker, one partition, {MESSAGE_BYTES}-byte messages, acks=all, {ROUNDS} interleaved rounds"
    );

    let producer = |config: &ClientConfig, linger: &str| -> FutureProducer {
        config
            .clone()
            .set("acks", "all")
            .set("linger.ms", linger)
            .create()
            .expect("producer")
    };
    let (direct_batching, through_batching) = (producer(&direct, "5"), producer(&through, "5"));
    let (direct_single, through_single) = (producer(&direct, "0"), producer(&through, "0"));
    // Warm-up: connections, metadata, the broker's first writes.
    for (p, topic) in [
        (&direct_batching, &direct_topic),
        (&through_batching, &"bench".to_owned()),
    ] {
        produce_many(p, topic, &payload, 2_000).await;
    }
    rest_many(
        &http,
        &rest,
        &user,
        &pass,
        &payload,
        2_000,
        rest_in_flight(),
    )
    .await;

    // REST can only ever have the messages of its in-flight requests outstanding; a direct
    // client held to the same window separates the gateway's own cost from that limit.
    let window = BATCH * rest_in_flight();
    let mut throughput: [Vec<f64>; 5] = Default::default();
    let mut p50: [Vec<f64>; 3] = Default::default();
    for round in 0..ROUNDS {
        for side in (0..5).map(|i| (i + round) % 5) {
            let started = Instant::now();
            match side {
                0 => {
                    produce_many(
                        &direct_batching,
                        &direct_topic,
                        &payload,
                        THROUGHPUT_MESSAGES,
                    )
                    .await
                }
                1 => produce_many(&through_batching, "bench", &payload, THROUGHPUT_MESSAGES).await,
                2 => {
                    let in_flight = rest_in_flight();
                    rest_many(
                        &http,
                        &rest,
                        &user,
                        &pass,
                        &payload,
                        THROUGHPUT_MESSAGES,
                        in_flight,
                    )
                    .await
                }
                4 => {
                    rest_many(
                        &http,
                        &rest,
                        &user,
                        &pass,
                        &payload,
                        THROUGHPUT_MESSAGES,
                        LOADED_REQUESTS,
                    )
                    .await
                }
                _ => {
                    produce_windowed(
                        &direct_batching,
                        &direct_topic,
                        &payload,
                        THROUGHPUT_MESSAGES,
                        window,
                    )
                    .await
                }
            }
            throughput[side].push(THROUGHPUT_MESSAGES as f64 / started.elapsed().as_secs_f64());
        }
        let mut samples: [Vec<Duration>; 3] = Default::default();
        let single = serde_json::to_string(&json!({ "value": payload })).expect("json");
        for _ in 0..LATENCY_SAMPLES {
            for (side, taken) in samples.iter_mut().enumerate() {
                let started = Instant::now();
                match side {
                    0 => produce_one(&direct_single, &direct_topic, &payload).await,
                    1 => produce_one(&through_single, "bench", &payload).await,
                    _ => {
                        let response = http
                            .post(format!("{rest}/produce/bench"))
                            .basic_auth(&user, Some(&pass))
                            .body(single.clone())
                            .send()
                            .await
                            .expect("sent");
                        assert!(response.status().is_success());
                        let _ = response.bytes().await;
                    }
                }
                taken.push(started.elapsed());
            }
        }
        for (taken, medians) in samples.iter_mut().zip(p50.iter_mut()) {
            taken.sort();
            medians.push(ms(taken[taken.len() / 2]));
        }
        eprintln!(
            "round {}: {:.0} / {:.0} / {:.0} / {:.0} / {:.0} msg/s; p50 {:.3} / {:.3} / {:.3} ms (direct / Kafka gateway / REST / direct windowed / REST loaded)",
            round + 1,
            throughput[0][round],
            throughput[1][round],
            throughput[2][round],
            throughput[3][round],
            throughput[4][round],
            p50[0][round],
            p50[1][round],
            p50[2][round]
        );
    }
    let ratio_to = |side: usize, base: usize| -> Vec<f64> {
        (0..ROUNDS)
            .map(|r| 100.0 * throughput[side][r] / throughput[base][r])
            .collect()
    };
    let ratio = |side: usize| ratio_to(side, 0);
    let added =
        |side: usize| -> Vec<f64> { (0..ROUNDS).map(|r| p50[side][r] - p50[0][r]).collect() };

    println!();
    println!("| measure | direct | Kafka gateway | REST gateway |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| produce throughput, msg/s ({THROUGHPUT_MESSAGES} a round; REST in batches of {BATCH}, {} in flight) | {} | {} | {} |",
        rest_in_flight(),
        spread(&throughput[0], 0),
        spread(&throughput[1], 0),
        spread(&throughput[2], 0)
    );
    println!(
        "| throughput, % of direct (same round) | 100% | {}% | {}% |",
        spread(&ratio(1), 1),
        spread(&ratio(2), 1)
    );
    println!(
        "| direct with at most {window} messages outstanding (what REST's requests in flight hold), msg/s | {} | | |",
        spread(&throughput[3], 0)
    );
    println!(
        "| REST throughput, % of that windowed direct client (same round) | | | {}% |",
        spread(&ratio_to(2, 3), 1)
    );
    println!(
        "| REST throughput with {LOADED_REQUESTS} requests in flight, msg/s | | | {} |",
        spread(&throughput[4], 0)
    );
    println!(
        "| REST with {LOADED_REQUESTS} in flight, % of direct (same round) | 100% | | {}% |",
        spread(&ratio(4), 1)
    );
    println!(
        "| single-message latency p50, ms ({LATENCY_SAMPLES} a round) | {} | {} | {} |",
        spread(&p50[0], 3),
        spread(&p50[1], 3),
        spread(&p50[2], 3)
    );
    println!(
        "| p50 added to direct, ms (same round) | | +{} | +{} |",
        spread(&added(1), 3),
        spread(&added(2), 3)
    );

    // Idle authenticated connections: the gateway's memory for each, and all of them held.
    let before = resident_kib();
    let mut held = Vec::with_capacity(CONNECTIONS);
    let endpoint = cluster["tcp_endpoint"].as_str().expect("endpoint");
    for _ in 0..CONNECTIONS {
        held.push(
            Connection::open(endpoint, &user, &pass)
                .await
                .expect("connection"),
        );
    }
    let after = resident_kib();
    let mut answering = 0;
    for connection in &mut held {
        if connection
            .call(ApiVersionsRequest::default(), 3)
            .await
            .is_ok()
        {
            answering += 1;
        }
    }
    println!(
        "| memory per idle authenticated connection (client and gateway in one process) | | {:.1} KiB | |",
        (after - before) as f64 / CONNECTIONS as f64
    );
    println!(
        "| authenticated connections held at once, answering afterwards | | {answering} of {CONNECTIONS} | |"
    );
    drop(held);

    // Creating shared clusters: a row each, no process.
    let brokers_before = broker_processes();
    let mut creations = Vec::with_capacity(CREATIONS);
    for i in 0..CREATIONS {
        let started = Instant::now();
        let created: Value = http
            .post(format!("{api}/v2/kafka/cluster"))
            .basic_auth("bench@example.com", Some(&setup_key))
            .json(&json!({ "name": format!("more-{i}"), "region": "eu-west-1" }))
            .send()
            .await
            .expect("cluster")
            .json()
            .await
            .expect("json");
        creations.push(ms(started.elapsed()));
        assert_eq!(created["placement"], "shared", "{created}");
    }
    println!(
        "| creating a shared cluster through the API (HTTP, {CREATIONS} in a row), ms | | {} (p50, min–max) | |",
        spread(&creations, 1)
    );
    println!(
        "| broker processes started by those {CREATIONS} creations | | {} | |",
        broker_processes() - brokers_before
    );
    println!(
        "| resident memory of the shared pool's broker (tansu) after the run | | {} MiB | |",
        pool_resident_kib(dir.path()) / 1024
    );

    let _ = stop.send(());
    let _ = server.await;
}

fn raise_file_limit() {
    use nix::sys::resource::{Resource, getrlimit, setrlimit};
    if let Ok((_, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        let _ = setrlimit(Resource::RLIMIT_NOFILE, hard.min(65_536), hard);
    }
}

/// This process's resident memory, KiB.
fn resident_kib() -> i64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// `values` as "median (min–max)".
fn spread(values: &[f64], decimals: usize) -> String {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let median = sorted[sorted.len() / 2];
    format!(
        "{median:.decimals$} ({:.decimals$}–{:.decimals$})",
        sorted[0],
        sorted[sorted.len() - 1]
    )
}

/// Produces `count` messages, all queued at once (librdkafka batches them as it likes).
async fn produce_many(producer: &FutureProducer, topic: &str, payload: &str, count: usize) {
    produce_windowed(producer, topic, payload, count, count).await;
}

/// Produces `count` messages, never more than `window` of them unacknowledged.
async fn produce_windowed(
    producer: &FutureProducer,
    topic: &str,
    payload: &str,
    count: usize,
    window: usize,
) {
    let mut outstanding = std::collections::VecDeque::with_capacity(window);
    for _ in 0..count {
        if outstanding.len() == window {
            // One partition: acknowledgements come in order, so the oldest is the next.
            let delivery: rdkafka::producer::DeliveryFuture =
                outstanding.pop_front().expect("a delivery");
            delivery
                .await
                .expect("delivery")
                .map_err(|(e, _)| e)
                .expect("delivered");
        }
        let record = FutureRecord::<(), str>::to(topic).payload(payload);
        outstanding.push_back(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued"),
        );
    }
    for delivery in outstanding {
        delivery
            .await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
}

async fn produce_one(producer: &FutureProducer, topic: &str, payload: &str) {
    producer
        .send(
            FutureRecord::<(), str>::to(topic).payload(payload),
            Duration::from_secs(10),
        )
        .await
        .map_err(|(e, _)| e)
        .expect("sent");
}

async fn rest_many(
    http: &reqwest::Client,
    rest: &str,
    user: &str,
    pass: &str,
    payload: &str,
    count: usize,
    in_flight: usize,
) {
    let body = serde_json::to_string(&vec![json!({ "value": payload }); BATCH]).expect("json");
    let requests = count / BATCH;
    let mut workers = Vec::new();
    for worker in 0..in_flight {
        let (http, url, body, user, pass) = (
            http.clone(),
            format!("{rest}/produce/bench"),
            body.clone(),
            user.to_owned(),
            pass.to_owned(),
        );
        workers.push(tokio::spawn(async move {
            for _ in (worker..requests).step_by(in_flight) {
                let response = http
                    .post(&url)
                    .basic_auth(&user, Some(&pass))
                    .body(body.clone())
                    .send()
                    .await
                    .expect("sent");
                let ok = response.status().is_success();
                // Read to the end, as a real client does: a response dropped unread takes its
                // connection with it, and the next request would pay for a new one.
                let body = response.bytes().await.expect("answer");
                assert!(ok, "{}", String::from_utf8_lossy(&body));
            }
        }));
    }
    for worker in workers {
        worker.await.expect("worker");
    }
}

fn rest_in_flight() -> usize {
    std::env::var("GATEWAYS_BENCH_REST_IN_FLIGHT")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(CONCURRENT_REQUESTS)
}

/// Signs up, makes an API key, a shared cluster and its topic; the cluster and the key.
async fn setup(http: &reqwest::Client, api: &str) -> (Value, String) {
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
    let key: Value = http
        .post(format!("{api}/v2/api-keys"))
        .bearer_auth(session["token"].as_str().expect("token"))
        .json(&json!({ "name": "bench" }))
        .send()
        .await
        .expect("key")
        .json()
        .await
        .expect("json");
    let auth = (
        "bench@example.com",
        key["key"].as_str().expect("key").to_owned(),
    );
    let cluster: Value = http
        .post(format!("{api}/v2/kafka/cluster"))
        .basic_auth(auth.0, Some(&auth.1))
        .json(&json!({ "name": "bench", "region": "eu-west-1" }))
        .send()
        .await
        .expect("cluster")
        .json()
        .await
        .expect("json");
    assert_eq!(cluster["placement"], "shared");
    let topic = json!({ "name": "bench", "partitions": 1, "retention_time": -1, "retention_size": -1,
        "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster["cluster_id"] });
    let created = http
        .post(format!("{api}/v2/kafka/topic"))
        .basic_auth(auth.0, Some(&auth.1))
        .json(&topic)
        .send()
        .await
        .expect("topic");
    assert!(created.status().is_success());
    (cluster, auth.1)
}

/// Broker processes (tansu) running on this machine.
fn broker_processes() -> i64 {
    std::fs::read_dir("/proc")
        .map(|entries| {
            entries
                .flatten()
                .filter(|e| {
                    std::fs::read(e.path().join("cmdline")).is_ok_and(|c| {
                        let c = String::from_utf8_lossy(&c);
                        c.contains("tansu") && c.contains("broker")
                    })
                })
                .count() as i64
        })
        .unwrap_or(0)
}

/// Resident memory of the local pool's broker process, KiB.
fn pool_resident_kib(data_dir: &std::path::Path) -> i64 {
    let pid =
        std::fs::read_to_string(data_dir.join("brokers/pool-local/broker.pid")).unwrap_or_default();
    std::fs::read_to_string(format!("/proc/{}/status", pid.trim()))
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
