//! REST gateway vs a native Kafka client on the same local broker, in the same run.
//!
//! `cargo bench -p capstan-api --bench rest_vs_native` prints:
//! (a) native produce throughput (librdkafka, acks=all), (b) gateway throughput with batches of
//! 100 messages, and (c) single-message latency p50/p99 through the gateway vs a native produce,
//! with the ratios. Bounded: a fixed number of messages, loopback only.

use std::time::{Duration, Instant};

use capstan_api::{
    app::{Application, Settings},
    crypto::SecretKey,
    kafka_admin,
    provisioner::find_broker_binary,
    state::PlatformConfig,
};
use rdkafka::producer::{FutureProducer, FutureRecord};
use serde_json::{Value, json};

const MESSAGE_BYTES: usize = 100;
const THROUGHPUT_MESSAGES: usize = 20_000;
const BATCH: usize = 100;
const CONCURRENT_REQUESTS: usize = 8;
const LATENCY_SAMPLES: usize = 300;

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
        platform: PlatformConfig::default(),
    };
    let app = Application::build(settings).await.expect("application");
    let api = format!("http://{}", app.local_addr().expect("address"));
    let gateway = format!("http://{}", app.gateway_addr().expect("address"));
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(app.run_until(async {
        let _ = stopped.await;
    }));

    let http = reqwest::Client::new();
    let cluster = setup(&http, &api).await;
    let user = cluster["username"].as_str().expect("username").to_owned();
    let pass = cluster["password"].as_str().expect("password").to_owned();
    let bootstrap = cluster["tcp_endpoint"]
        .as_str()
        .expect("endpoint")
        .to_owned();
    let payload = "x".repeat(MESSAGE_BYTES);
    println!(
        "REST gateway vs native Kafka client, one local tansu broker, {MESSAGE_BYTES}-byte messages, acks=all"
    );

    // (a) native throughput
    let producer: FutureProducer = kafka_admin::client_config(&bootstrap, &user, &pass)
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer");
    let started = Instant::now();
    let mut deliveries = Vec::with_capacity(THROUGHPUT_MESSAGES);
    for _ in 0..THROUGHPUT_MESSAGES {
        let record = FutureRecord::<(), str>::to("bench").payload(payload.as_str());
        deliveries.push(
            producer
                .send_result(record)
                .map_err(|(e, _)| e)
                .expect("queued"),
        );
    }
    for d in deliveries {
        d.await
            .expect("delivery")
            .map_err(|(e, _)| e)
            .expect("delivered");
    }
    let native_rate = THROUGHPUT_MESSAGES as f64 / started.elapsed().as_secs_f64();

    // (b) gateway throughput, batches of BATCH, CONCURRENT_REQUESTS in flight
    let batch_body =
        serde_json::to_string(&vec![json!({ "value": payload }); BATCH]).expect("json");
    let started = Instant::now();
    let requests = THROUGHPUT_MESSAGES / BATCH;
    let mut tasks = Vec::new();
    for worker in 0..CONCURRENT_REQUESTS {
        let (http, url, body, user, pass) = (
            http.clone(),
            format!("{gateway}/produce/bench"),
            batch_body.clone(),
            user.clone(),
            pass.clone(),
        );
        tasks.push(tokio::spawn(async move {
            for _ in (worker..requests).step_by(CONCURRENT_REQUESTS) {
                let response = http
                    .post(&url)
                    .basic_auth(&user, Some(&pass))
                    .body(body.clone())
                    .send()
                    .await
                    .expect("sent");
                assert!(
                    response.status().is_success(),
                    "{}",
                    response.text().await.unwrap_or_default()
                );
            }
        }));
    }
    for t in tasks {
        t.await.expect("worker");
    }
    let rest_rate = (requests * BATCH) as f64 / started.elapsed().as_secs_f64();

    // (c) single-message latency
    let latency_producer: FutureProducer = kafka_admin::client_config(&bootstrap, &user, &pass)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    let mut native = Vec::with_capacity(LATENCY_SAMPLES);
    let mut rest = Vec::with_capacity(LATENCY_SAMPLES);
    let single = serde_json::to_string(&json!({ "value": payload })).expect("json");
    for i in 0..LATENCY_SAMPLES + 20 {
        let t = Instant::now();
        latency_producer
            .send(
                FutureRecord::<(), str>::to("bench").payload(payload.as_str()),
                Duration::from_secs(10),
            )
            .await
            .map_err(|(e, _)| e)
            .expect("native send");
        let native_time = t.elapsed();
        let t = Instant::now();
        let response = http
            .post(format!("{gateway}/produce/bench"))
            .basic_auth(&user, Some(&pass))
            .body(single.clone())
            .send()
            .await
            .expect("sent");
        let _ = response.bytes().await;
        let rest_time = t.elapsed();
        if i >= 20 {
            native.push(native_time);
            rest.push(rest_time);
        }
    }
    let (n50, n99) = percentiles(&mut native);
    let (r50, r99) = percentiles(&mut rest);

    println!();
    println!("| measure | native client | REST gateway | ratio / difference |");
    println!("| --- | --- | --- | --- |");
    println!(
        "| (a)/(b) produce throughput, msg/s ({THROUGHPUT_MESSAGES} messages; REST in batches of {BATCH}, {CONCURRENT_REQUESTS} requests in flight) | {native_rate:.0} | {rest_rate:.0} | REST = {:.0}% of native |",
        100.0 * rest_rate / native_rate
    );
    println!(
        "| (c) single message latency p50 ({LATENCY_SAMPLES} sequential) | {:.2} ms | {:.2} ms | +{:.2} ms |",
        ms(n50),
        ms(r50),
        ms(r50) - ms(n50)
    );
    println!(
        "| (c) single message latency p99 | {:.2} ms | {:.2} ms | +{:.2} ms |",
        ms(n99),
        ms(r99),
        ms(r99) - ms(n99)
    );

    let _ = stop.send(());
    let _ = server.await;
}

async fn setup(http: &reqwest::Client, api: &str) -> Value {
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
    cluster
}

fn percentiles(samples: &mut [Duration]) -> (Duration, Duration) {
    samples.sort();
    let at = |p: f64| samples[((samples.len() as f64 * p) as usize).min(samples.len() - 1)];
    (at(0.50), at(0.99))
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}
