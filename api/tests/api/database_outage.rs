//! The database stopped under REST and API traffic, then started again: every request during
//! the outage is answered 503 with `Retry-After` (never 500), `/readyz` says unavailable, and
//! everything works again once it is back. The outage is a TCP proxy between Capstan and the
//! suite's PostgreSQL server that drops every connection and refuses new ones, so only this
//! test's application loses its database.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
};

use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{net::TcpListener, sync::Mutex, task::JoinSet};

use crate::helpers::{Auth, Backend, Persisted, fresh_database, start};

/// A TCP proxy to PostgreSQL that can be taken down (every connection dropped, new ones
/// closed at once) and brought back.
struct Outage {
    address: SocketAddr,
    up: Arc<AtomicBool>,
    links: Arc<Mutex<JoinSet<()>>>,
}

impl Outage {
    async fn start(upstream: SocketAddr) -> Outage {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let up = Arc::new(AtomicBool::new(true));
        let links = Arc::new(Mutex::new(JoinSet::new()));
        let (accepting, open) = (up.clone(), links.clone());
        tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    return;
                };
                if !accepting.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                open.lock().await.spawn(async move {
                    if let Ok(mut server) = tokio::net::TcpStream::connect(upstream).await {
                        let _ = tokio::io::copy_bidirectional(&mut client, &mut server).await;
                    }
                });
            }
        });
        Outage { address, up, links }
    }

    async fn stop_database(&self) {
        self.up.store(false, Ordering::SeqCst);
        self.links.lock().await.abort_all();
    }

    fn start_database(&self) {
        self.up.store(true, Ordering::SeqCst);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_outage_is_answered_503_and_recovered_from() {
    let dir = tempfile::tempdir().unwrap();
    let url = fresh_database(Backend::Postgres, dir.path()).await;
    let (scheme_and_user, rest) = url.split_once('@').unwrap();
    let (host_port, database) = rest.split_once('/').unwrap();
    let upstream = tokio::net::lookup_host(host_port)
        .await
        .unwrap()
        .next()
        .unwrap();
    let outage = Outage::start(upstream).await;
    let persisted = Persisted {
        database_url: format!("{scheme_and_user}@{}/{database}", outage.address),
        data_dir: dir.path().to_owned(),
        key: capstan_api::crypto::SecretKey::generate(),
    };
    let app = start(persisted, Default::default()).await;
    let user = app.new_user().await;
    let cluster = app.new_cluster(&user, "outage").await;
    let cluster_id = cluster["cluster_id"].as_str().unwrap().to_owned();
    app.new_topic(&user, &cluster_id, "orders", 1).await;
    let rest = (
        cluster["username"].as_str().unwrap().to_owned(),
        cluster["password"].as_str().unwrap().to_owned(),
    );
    let produce = |i: usize| {
        let app = &app;
        let rest = &rest;
        async move {
            let body = json!({ "value": format!("order {i}") }).to_string();
            app.rest(
                Method::POST,
                "/produce/orders",
                Some((rest.0.as_str(), rest.1.as_str())),
                Some(&body),
                &[],
            )
            .await
        }
    };
    let (status, body) = produce(0).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    outage.stop_database().await;
    let (status, _) = app.call(Method::GET, "/readyz", &Auth::None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE);
    for i in 1..=3 {
        let (status, body) = produce(i).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
        assert!(
            body["error"]
                .as_str()
                .unwrap()
                .contains("database is not answering"),
            "{body}"
        );
        let (status, body) = app
            .call(
                Method::GET,
                &format!("/v2/kafka/cluster/{cluster_id}"),
                &user.auth(),
                None,
            )
            .await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    }
    let response = app
        .client
        .get(app.url("/v2/kafka/clusters"))
        .basic_auth(&user.email, Some(&user.key))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SERVICE_UNAVAILABLE);
    assert_eq!(response.headers()["retry-after"], "1");

    outage.start_database();
    let (status, _) = app.call(Method::GET, "/readyz", &Auth::None, None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, body) = produce(4).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (status, body) = app
        .call(
            Method::GET,
            &format!("/v2/kafka/cluster/{cluster_id}"),
            &user.auth(),
            None,
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    app.stop().await;
}
