//! `spawn_app`: the real application on a fresh database (SQLite file or a new PostgreSQL
//! database), a temporary data directory and port 0, with typed helpers for the API.

use std::{net::SocketAddr, path::PathBuf};

use capstan_api::{
    app::{Application, Settings},
    crypto::SecretKey,
    provisioner::find_broker_binary,
    state::PlatformConfig,
};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use sqlx::{Connection, PgConnection};
use tokio::{sync::oneshot, task::JoinHandle};

/// The database a test runs on.
#[derive(Clone, Copy, Debug)]
pub enum Backend {
    Sqlite,
    Postgres,
}

/// The PostgreSQL server used by the suite (`CAPSTAN_TEST_POSTGRES_URL`, default the local one).
pub fn postgres_admin_url() -> String {
    std::env::var("CAPSTAN_TEST_POSTGRES_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/test".into())
}

/// Creates a fresh, empty database for one test and returns its URL.
pub async fn fresh_database(backend: Backend, dir: &std::path::Path) -> String {
    match backend {
        Backend::Sqlite => format!("sqlite://{}", dir.join("capstan.db").display()),
        Backend::Postgres => {
            let admin = postgres_admin_url();
            let mut conn = PgConnection::connect(&admin)
                .await
                .unwrap_or_else(|e| panic!("PostgreSQL at {admin} is needed for this test: {e}"));
            let name = format!("capstan_test_{}", uuid::Uuid::new_v4().simple());
            sqlx::query(&format!("CREATE DATABASE {name}"))
                .execute(&mut conn)
                .await
                .expect("create database");
            let base = admin
                .rsplit_once('/')
                .map(|(b, _)| b.to_owned())
                .expect("database URL has a path");
            format!("{base}/{name}")
        }
    }
}

/// What a restart needs to find the same state again.
#[derive(Clone, Debug)]
pub struct Persisted {
    pub database_url: String,
    pub data_dir: PathBuf,
    pub key: SecretKey,
}

/// A running application.
pub struct TestApp {
    pub address: SocketAddr,
    pub gateway: SocketAddr,
    pub client: reqwest::Client,
    pub persisted: Persisted,
    shutdown: Option<oneshot::Sender<()>>,
    server: Option<JoinHandle<capstan_api::Result<()>>>,
    _dir: Option<tempfile::TempDir>,
}

impl TestApp {
    /// The pid of a dedicated cluster's broker process, from the pid file the local
    /// provisioner keeps beside its data (clients see the gateway's address, not the broker's).
    pub fn broker_pid(&self, cluster_id: &str) -> nix::unistd::Pid {
        let file = self
            .persisted
            .data_dir
            .join("brokers")
            .join(cluster_id)
            .join("broker.pid");
        let pid =
            std::fs::read_to_string(&file).unwrap_or_else(|e| panic!("{}: {e}", file.display()));
        nix::unistd::Pid::from_raw(pid.trim().parse().unwrap())
    }
}

/// Starts the application on a fresh database.
pub async fn spawn_app(backend: Backend) -> TestApp {
    spawn_app_with(backend, PlatformConfig::default()).await
}

/// Starts the application on a fresh database with the given platform settings.
pub async fn spawn_app_with(backend: Backend, platform: PlatformConfig) -> TestApp {
    let dir = tempfile::tempdir().expect("temp dir");
    let persisted = Persisted {
        database_url: fresh_database(backend, dir.path()).await,
        data_dir: dir.path().to_owned(),
        key: SecretKey::generate(),
    };
    let mut app = start(persisted, platform).await;
    app._dir = Some(dir);
    app
}

/// Starts the application on existing state (a restart).
pub async fn start(persisted: Persisted, platform: PlatformConfig) -> TestApp {
    let settings = Settings {
        database_url: persisted.database_url.clone(),
        listen: "127.0.0.1:0".parse().expect("address"),
        gateway_listen: "127.0.0.1:0".parse().expect("address"),
        kafka: capstan_api::app::KafkaListen::loopback(),
        key: persisted.key.clone(),
        data_dir: persisted.data_dir.clone(),
        broker_binary: find_broker_binary(None)
            .expect("the tansu broker must be installed (see README)"),
        platform,
    };
    let application = Application::build(settings)
        .await
        .expect("application builds");
    let address = application.local_addr().expect("address");
    let gateway = application.gateway_addr().expect("gateway address");
    let (tx, rx) = oneshot::channel();
    let server = tokio::spawn(application.run_until(async {
        let _ = rx.await;
    }));
    TestApp {
        address,
        gateway,
        client: reqwest::Client::new(),
        persisted,
        shutdown: Some(tx),
        server: Some(server),
        _dir: None,
    }
}

/// An account with an API key.
#[derive(Clone, Debug)]
pub struct User {
    pub email: String,
    pub key: String,
}

/// The password of every account [`TestApp::new_user`] makes.
pub const PASSWORD: &str = "correct horse battery staple";

/// How a request authenticates.
#[derive(Clone, Debug)]
pub enum Auth {
    None,
    Basic(String, String),
    Bearer(String),
}

impl User {
    pub fn auth(&self) -> Auth {
        Auth::Basic(self.email.clone(), self.key.clone())
    }
}

impl TestApp {
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.address, path)
    }

    /// Sends a request with an optional JSON body; returns the status and the parsed body.
    pub async fn call(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.client.request(method, self.url(path));
        request = match auth {
            Auth::None => request,
            Auth::Basic(user, password) => request.basic_auth(user, Some(password)),
            Auth::Bearer(token) => request.bearer_auth(token),
        };
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{path} answered non-JSON: {text:?}"));
        (status, value)
    }

    /// Sends a raw body with the given content type.
    pub async fn call_raw(
        &self,
        method: Method,
        path: &str,
        auth: &Auth,
        body: &'static str,
        content_type: &str,
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, self.url(path))
            .header("content-type", content_type)
            .body(body);
        if let Auth::Basic(user, password) = auth {
            request = request.basic_auth(user, Some(password));
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        (
            status,
            serde_json::from_str(&text)
                .unwrap_or_else(|_| panic!("{path} answered non-JSON: {text:?}")),
        )
    }

    /// Calls the REST data gateway with a raw body; returns the status and the parsed JSON
    /// (every gateway answer must be JSON).
    pub async fn rest(
        &self,
        method: Method,
        path: &str,
        credentials: Option<(&str, &str)>,
        body: Option<&str>,
        headers: &[(&str, &str)],
    ) -> (StatusCode, Value) {
        let mut request = self
            .client
            .request(method, format!("http://{}{}", self.gateway, path));
        if let Some((user, pass)) = credentials {
            request = request.basic_auth(user, Some(pass));
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body.to_owned());
        }
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let text = response.text().await.expect("body read");
        let value = serde_json::from_str(&text)
            .unwrap_or_else(|_| panic!("{path} answered non-JSON: {text:?}"));
        (status, value)
    }

    /// Signs up a new account and creates an API key for it.
    pub async fn new_user(&self) -> User {
        let email = format!("user-{}@example.com", uuid::Uuid::new_v4().simple());
        let password = PASSWORD;
        let (status, body) = self
            .call(
                Method::POST,
                "/v2/auth/signup",
                &Auth::None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        let (status, body) = self
            .call(
                Method::POST,
                "/v2/auth/login",
                &Auth::None,
                Some(json!({ "email": email, "password": password })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let token = body["token"].as_str().expect("token").to_owned();
        let (status, body) = self
            .call(
                Method::POST,
                "/v2/api-keys",
                &Auth::Bearer(token),
                Some(json!({ "name": "tests" })),
            )
            .await;
        assert_eq!(status, StatusCode::CREATED, "{body}");
        User {
            email,
            key: body["key"].as_str().expect("key").to_owned(),
        }
    }

    /// Creates a cluster (the default placement: a virtual cluster on the shared pool) and
    /// returns its JSON.
    pub async fn new_cluster(&self, user: &User, name: &str) -> Value {
        self.new_placed_cluster(user, name, "shared").await
    }

    /// Creates a cluster with brokers of its own and returns its JSON.
    pub async fn new_dedicated_cluster(&self, user: &User, name: &str) -> Value {
        self.new_placed_cluster(user, name, "dedicated").await
    }

    async fn new_placed_cluster(&self, user: &User, name: &str, placement: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/v2/kafka/cluster",
                &user.auth(),
                Some(json!({ "name": name, "region": "eu-west-1", "multizone": false, "placement": placement })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert_eq!(body["placement"], placement);
        body
    }

    /// Creates a topic with plan maxima and returns its JSON.
    pub async fn new_topic(
        &self,
        user: &User,
        cluster_id: &str,
        name: &str,
        partitions: i64,
    ) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/v2/kafka/topic",
                &user.auth(),
                Some(json!({
                    "name": name, "partitions": partitions, "retention_time": -1, "retention_size": -1,
                    "max_message_size": -1, "cleanup_policy": "delete", "cluster_id": cluster_id
                })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        body
    }

    /// Stops the application gracefully (brokers stopped cleanly) and returns what a restart needs.
    pub async fn stop(mut self) -> (Persisted, Option<tempfile::TempDir>) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        if let Some(server) = self.server.take() {
            server
                .await
                .expect("server task")
                .expect("server stopped cleanly");
        }
        (self.persisted.clone(), self._dir.take())
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// Declares a test that runs once on SQLite and once on PostgreSQL.
#[macro_export]
macro_rules! on_both_backends {
    ($name:ident) => {
        mod $name {
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_sqlite() {
                super::$name($crate::helpers::Backend::Sqlite).await
            }
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn on_postgres() {
                super::$name($crate::helpers::Backend::Postgres).await
            }
        }
    };
}
