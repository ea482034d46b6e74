//! Shared harness of the end-to-end suites: the real platform (control plane, gateway,
//! metering, billing) on a fresh database, with typed helpers.

#![allow(dead_code, clippy::unwrap_used)]

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

pub struct Running {
    pub platform_state: capstan_api::state::AppState,
    pub enforcement: Arc<capstan::enforcement::Enforcement>,
    pub api: String,
    pub gateway: String,
    /// The Kafka gateway's bootstrap address.
    pub kafka: String,
    /// The platform's data directory (local brokers' data).
    pub data_dir: std::path::PathBuf,
    /// The store's URL (for the CLI's commands).
    pub database_url: String,
    pub collector: Arc<Collector>,
    /// Records the Kafka gateway delivered, written to the usage ledger by [`Running::sweep`].
    pub deliveries: Arc<capstan_billing::metering::DeliveryLedger>,
    pub http: reqwest::Client,
    pub auth: (String, String),
    stop: Option<tokio::sync::oneshot::Sender<()>>,
    _dir: Option<tempfile::TempDir>,
}

impl Drop for Running {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
    }
}

pub async fn database(postgres: bool, dir: &std::path::Path) -> String {
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

pub async fn start(postgres: bool) -> Running {
    start_with(postgres, PlatformConfig::default(), Default::default()).await
}

pub async fn start_with(
    postgres: bool,
    platform: PlatformConfig,
    prices: capstan_billing::pricing::PriceList,
) -> Running {
    start_configured(postgres, platform, prices, None, None).await
}

/// Starts the platform, with Stripe when `stripe` is given.
pub async fn start_configured(
    postgres: bool,
    platform: PlatformConfig,
    prices: capstan_billing::pricing::PriceList,
    stripe: Option<capstan_billing::stripe::StripeConfig>,
    notify_url: Option<String>,
) -> Running {
    start_on(postgres, platform, prices, stripe, notify_url, None).await
}

/// Starts the platform with clusters made by `provisioner` (local brokers when `None`).
pub async fn start_on(
    postgres: bool,
    platform: PlatformConfig,
    prices: capstan_billing::pricing::PriceList,
    stripe: Option<capstan_billing::stripe::StripeConfig>,
    notify_url: Option<String>,
    provisioner: Option<Arc<dyn capstan_api::provisioner::Provisioner>>,
) -> Running {
    let kafka = capstan_api::app::KafkaListen::loopback();
    start_everything(
        postgres,
        platform,
        prices,
        stripe,
        notify_url,
        provisioner,
        kafka,
    )
    .await
}

/// Starts the platform with its Kafka gateway listening as `kafka` says (TLS, say).
pub async fn start_with_kafka(kafka: capstan_api::app::KafkaListen) -> Running {
    let prices = Default::default();
    start_everything(
        false,
        PlatformConfig::default(),
        prices,
        None,
        None,
        None,
        kafka,
    )
    .await
}

async fn start_everything(
    postgres: bool,
    platform: PlatformConfig,
    prices: capstan_billing::pricing::PriceList,
    stripe: Option<capstan_billing::stripe::StripeConfig>,
    notify_url: Option<String>,
    provisioner: Option<Arc<dyn capstan_api::provisioner::Provisioner>>,
    kafka: capstan_api::app::KafkaListen,
) -> Running {
    let dir = tempfile::tempdir().unwrap();
    let database_url = database(postgres, dir.path()).await;
    let settings = Settings {
        database_url: database_url.clone(),
        listen: "127.0.0.1:0".parse().unwrap(),
        gateway_listen: "127.0.0.1:0".parse().unwrap(),
        kafka,
        key: SecretKey::generate(),
        data_dir: dir.path().to_owned(),
        broker_binary: find_broker_binary(None)
            .expect("tansu must be installed (scripts/test installs it)"),
        platform: PlatformConfig {
            max_clusters_per_account: 100,
            ..platform
        },
    };
    // A long interval: the tests sweep on demand.
    let metering = MeteringSettings {
        interval: Duration::from_secs(3600),
        concurrency: 4,
        prices,
        stripe,
        notify_url,
    };
    let platform = Platform::build_with(settings, metering, provisioner)
        .await
        .unwrap();
    let api = format!("http://{}", platform.application().local_addr().unwrap());
    let gateway = format!("http://{}", platform.application().gateway_addr().unwrap());
    let kafka = platform.application().kafka_addr().to_string();
    let collector = platform.collector();
    let deliveries = platform.deliveries();
    let enforcement = platform.enforcement();
    let platform_state = platform.application().state().clone();
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
        platform_state,
        enforcement,
        api,
        gateway,
        kafka,
        data_dir: dir.path().to_owned(),
        database_url,
        collector,
        deliveries,
        http,
        auth,
        stop: Some(tx),
        _dir: Some(dir),
    }
}

impl Running {
    /// The platform's `/metrics` page.
    pub async fn metrics_text(&self) -> String {
        self.http
            .get(format!("{}/metrics", self.api))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    /// Signs up another account and returns its API credentials (email, API key).
    pub async fn account(&self, email: &str) -> (String, String) {
        let credentials = json!({ "email": email, "password": "another password 123" });
        self.http
            .post(format!("{}/v2/auth/signup", self.api))
            .json(&credentials)
            .send()
            .await
            .unwrap();
        let session: Value = self
            .http
            .post(format!("{}/v2/auth/login", self.api))
            .json(&credentials)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let key: Value = self
            .http
            .post(format!("{}/v2/api-keys", self.api))
            .bearer_auth(session["token"].as_str().unwrap())
            .json(&json!({ "name": "t" }))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        (email.to_owned(), key["key"].as_str().unwrap().to_owned())
    }

    /// The same platform seen by another account.
    pub fn as_account(&self, auth: (String, String)) -> Running {
        Running {
            platform_state: self.platform_state.clone(),
            enforcement: self.enforcement.clone(),
            api: self.api.clone(),
            gateway: self.gateway.clone(),
            kafka: self.kafka.clone(),
            data_dir: self.data_dir.clone(),
            database_url: self.database_url.clone(),
            collector: self.collector.clone(),
            deliveries: self.deliveries.clone(),
            http: self.http.clone(),
            auth,
            stop: None,
            _dir: None,
        }
    }

    /// An authenticated GET of the provisioning API answered with text (CSV), not JSON.
    pub async fn api_text(&self, path: &str) -> String {
        let response = self
            .http
            .get(format!("{}{path}", self.api))
            .basic_auth(&self.auth.0, Some(&self.auth.1))
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "{path}: {}",
            response.status()
        );
        response.text().await.unwrap()
    }

    pub async fn api(&self, method: Method, path: &str, body: Option<Value>) -> Value {
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

    /// A cluster (the default placement: a virtual cluster on the shared pool) with topics.
    pub async fn cluster(&self, name: &str, topics: &[(&str, i64)]) -> Value {
        self.placed_cluster(name, "shared", topics).await
    }

    /// A cluster with brokers of its own, with topics.
    pub async fn dedicated_cluster(&self, name: &str, topics: &[(&str, i64)]) -> Value {
        self.placed_cluster(name, "dedicated", topics).await
    }

    async fn placed_cluster(&self, name: &str, placement: &str, topics: &[(&str, i64)]) -> Value {
        let cluster = self
            .api(
                Method::POST,
                "/v2/kafka/cluster",
                Some(json!({ "name": name, "region": "eu-west-1", "placement": placement })),
            )
            .await;
        for (topic, partitions) in topics {
            self.topic(&cluster, topic, *partitions).await;
        }
        cluster
    }

    pub async fn topic(&self, cluster: &Value, name: &str, partitions: i64) -> Value {
        let body = json!({ "name": name, "partitions": partitions, "retention_time": -1, "retention_size": -1,
            "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster["cluster_id"] });
        self.api(Method::POST, "/v2/kafka/topic", Some(body)).await
    }

    pub async fn rest(
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

    /// Writes what the Kafka gateway delivered, then sweeps every cluster once.
    pub async fn sweep(&self) -> capstan_billing::metering::SweepReport {
        self.deliveries.flush().await.unwrap();
        self.collector
            .sweep(capstan_billing::metering::unix_now())
            .await
            .unwrap()
    }

    /// Closes this month at `prices` as if it had just ended (a minute after its end), as the
    /// platform does after midnight UTC on the 1st.
    pub async fn close_this_month(&self, prices: &capstan_billing::pricing::PriceList) {
        use capstan_billing::{invoices, ledger::Month, metering::unix_now};
        let store = &self.platform_state.store;
        let month = Month::of(unix_now());
        let customers = capstan::platform::ControlPlaneCustomers::new(store.clone());
        invoices::close_month(store.pool(), prices, &customers, month, month.end() + 60)
            .await
            .unwrap();
    }

    /// `cluster`'s cost this month (`GET /v2/kafka/cost/{id}`).
    pub async fn cost(&self, cluster: &Value) -> Value {
        let id = cluster["cluster_id"].as_str().unwrap();
        self.api(Method::GET, &format!("/v2/kafka/cost/{id}"), None)
            .await
    }

    /// A number the store answers `sql` with, `$1` bound to `id`.
    pub async fn count(&self, sql: &str, id: &str) -> i64 {
        let (value,): (i64,) = sqlx::query_as(sql)
            .bind(id)
            .fetch_one(self.platform_state.store.pool())
            .await
            .unwrap();
        value
    }

    /// Sets `cluster`'s monthly budget, whole dollars.
    pub async fn set_budget(&self, cluster: &Value, dollars: i64) {
        let id = cluster["cluster_id"].as_str().unwrap();
        self.api(
            Method::PATCH,
            &format!("/v2/kafka/update-budget/{id}"),
            Some(json!({ "budget": dollars })),
        )
        .await;
    }

    /// Sweeps, then re-evaluates and enforces every cluster's cap and free-plan limit (what the
    /// platform does after each metering interval).
    pub async fn sweep_and_enforce(&self) {
        self.sweep().await;
        self.enforcement
            .run(capstan_billing::metering::unix_now())
            .await
            .unwrap();
    }

    /// Month-to-date totals per topic: (produced, consumed).
    pub async fn totals(&self, cluster: &Value) -> BTreeMap<String, (i64, i64)> {
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

pub fn tcp(cluster: &Value) -> ClientConfig {
    capstan_api::kafka_admin::client_config(
        cluster["tcp_endpoint"].as_str().unwrap(),
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    )
}

pub async fn produce_tcp(cluster: &Value, topic: &str, count: usize, bytes: usize) {
    let producer: FutureProducer = tcp(cluster)
        .set("acks", "all")
        .set("linger.ms", "2")
        // Room for the scenario suite's 170,000 messages in flight (the default is 100,000).
        .set("queue.buffering.max.messages", "1000000")
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
pub async fn consume_tcp(cluster: &Value, topic: &str, group: &str, count: usize) {
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

/// Produces `count` messages to topic `t` of `cluster` over REST in one request; a 429 must
/// say why (price cap, budget or free-plan limit).
pub async fn produce_rest(run: &Running, cluster: &Value, count: usize) -> reqwest::StatusCode {
    let body = serde_json::to_string(&vec![json!({ "value": "m" }); count]).unwrap();
    let response = run
        .http
        .post(format!("{}/produce/t", run.gateway))
        .basic_auth(
            cluster["username"].as_str().unwrap(),
            cluster["password"].as_str(),
        )
        .body(body)
        .send()
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get(reqwest::header::RETRY_AFTER)
        .map(|v| v.to_str().unwrap().parse::<u64>().unwrap());
    let answer: Value = response.json().await.unwrap();
    if status == reqwest::StatusCode::TOO_MANY_REQUESTS {
        assert_eq!(answer["status"], 429);
        assert!(
            retry_after.is_some_and(|seconds| seconds >= 1),
            "a 429 says when to retry: {retry_after:?}"
        );
        assert!(
            answer["error"].as_str().unwrap().contains("limit")
                || answer["error"].as_str().unwrap().contains("cap"),
            "{answer}"
        );
    }
    status
}

/// A `Stripe-Signature` header for `payload`, signed now with `secret` as Stripe signs its
/// webhooks (HMAC-SHA256 of `t.payload`).
pub fn stripe_signature(secret: &str, payload: &str) -> String {
    use hmac::{Hmac, Mac};
    let t = capstan_billing::metering::unix_now();
    let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.{payload}").as_bytes());
    let signature: String = mac
        .finalize()
        .into_bytes()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("t={t},v1={signature}")
}
