//! One tenant's slow uploads cannot stall the listeners for the others, and shutdown is
//! bounded even while they are held open (issue "Abuse resistance", item 2).

use std::time::{Duration, Instant};

use base64::{Engine, engine::general_purpose::STANDARD};
use capstan_api::{gateway::MAX_REQUESTS_PER_CLUSTER, routes::MAX_REQUESTS_PER_ACCOUNT};
use reqwest::{Method, StatusCode};
use serde_json::json;
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpStream,
};

use crate::helpers::{Auth, Backend, spawn_app, spawn_app_with};

/// Slow uploads held open at once.
const SLOW_UPLOADS: usize = 300;
/// Longest a request of the other tenant may take while they are held (they hold their
/// places for the 30-second body timeout, so a stalled listener would answer far later).
const NORMAL_LATENCY_BOUND: Duration = Duration::from_secs(5);

/// Opens a connection to `address` and sends `head` (a request whose body promises more than
/// it sends) and the first bytes of the body, then keeps the connection open.
async fn start_slow_upload(address: std::net::SocketAddr, head: String) -> TcpStream {
    let mut stream = TcpStream::connect(address).await.unwrap();
    stream.write_all(head.as_bytes()).await.unwrap();
    stream.write_all(b"[{\"value\":\"").await.unwrap();
    stream
}

/// What each held connection was answered within `wait`: its status code, `None` when it is
/// still waiting (its body is being read). The connections are kept open.
async fn statuses(streams: Vec<TcpStream>, wait: Duration) -> (Vec<Option<u16>>, Vec<TcpStream>) {
    let mut reads = tokio::task::JoinSet::new();
    for mut stream in streams {
        reads.spawn(async move {
            let mut answer = [0u8; 12];
            let status = match tokio::time::timeout(wait, stream.read_exact(&mut answer)).await {
                Ok(Ok(_)) => std::str::from_utf8(&answer[9..12])
                    .ok()
                    .and_then(|code| code.parse().ok()),
                _ => None,
            };
            (status, stream)
        });
    }
    let mut statuses = Vec::new();
    let mut streams = Vec::new();
    while let Some(read) = reads.join_next().await {
        let (status, stream) = read.unwrap();
        statuses.push(status);
        streams.push(stream);
    }
    (statuses, streams)
}

fn count(statuses: &[Option<u16>], wanted: Option<u16>) -> usize {
    statuses.iter().filter(|s| **s == wanted).count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_clusters_slow_uploads_leave_the_rest_gateway_to_the_others_and_shutdown_is_bounded() {
    let app = spawn_app(Backend::Sqlite).await;
    let attacker = app.new_user().await;
    let attacked = app.new_cluster(&attacker, "slow").await;
    app.new_topic(
        &attacker,
        attacked["cluster_id"].as_str().unwrap(),
        "uploads",
        1,
    )
    .await;
    let other = app.new_user().await;
    let cluster = app.new_cluster(&other, "busy").await;
    app.new_topic(&other, cluster["cluster_id"].as_str().unwrap(), "orders", 1)
        .await;
    let basic = STANDARD.encode(format!(
        "{}:{}",
        attacked["username"].as_str().unwrap(),
        attacked["password"].as_str().unwrap()
    ));
    let head = format!(
        "POST /produce/uploads HTTP/1.1\r\nHost: gateway\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/json\r\nContent-Length: 1000000\r\n\r\n"
    );
    let mut uploads = Vec::with_capacity(SLOW_UPLOADS);
    for _ in 0..SLOW_UPLOADS {
        uploads.push(start_slow_upload(app.gateway, head.clone()).await);
    }
    // Those past the cluster's places are refused at once; the others are being read.
    let (answered, uploads) = statuses(uploads, Duration::from_secs(3)).await;
    assert_eq!(
        count(&answered, Some(429)),
        SLOW_UPLOADS - MAX_REQUESTS_PER_CLUSTER,
        "{answered:?}"
    );
    assert_eq!(count(&answered, None), MAX_REQUESTS_PER_CLUSTER);

    let credentials = (
        cluster["username"].as_str().unwrap(),
        cluster["password"].as_str().unwrap(),
    );
    for i in 0..20 {
        let started = Instant::now();
        let body = json!({ "value": format!("order {i}") }).to_string();
        let (status, answer) = app
            .rest(
                Method::POST,
                "/produce/orders",
                Some(credentials),
                Some(&body),
                &[],
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{answer}");
        assert!(
            started.elapsed() < NORMAL_LATENCY_BOUND,
            "request {i} took {:?} while another cluster's uploads were held",
            started.elapsed()
        );
    }

    // Shutdown: the held uploads get the grace period (10 s), not their body timeout (30 s).
    let started = Instant::now();
    app.stop().await;
    assert!(
        started.elapsed() < Duration::from_secs(20),
        "shutdown took {:?} with uploads held open",
        started.elapsed()
    );
    drop(uploads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_accounts_slow_uploads_leave_the_api_to_the_others() {
    let app = spawn_app(Backend::Sqlite).await;
    let attacker = app.new_user().await;
    let basic = STANDARD.encode(format!("{}:{}", attacker.email, attacker.key));
    let head = format!(
        "POST /v2/kafka/cluster HTTP/1.1\r\nHost: api\r\nAuthorization: Basic {basic}\r\n\
         Content-Type: application/json\r\nContent-Length: 100000\r\n\r\n"
    );
    let mut uploads = Vec::with_capacity(SLOW_UPLOADS);
    for _ in 0..SLOW_UPLOADS {
        uploads.push(start_slow_upload(app.address, head.clone()).await);
    }
    let (answered, uploads) = statuses(uploads, Duration::from_secs(3)).await;
    assert_eq!(
        count(&answered, Some(429)),
        SLOW_UPLOADS - MAX_REQUESTS_PER_ACCOUNT,
        "{answered:?}"
    );
    assert_eq!(count(&answered, None), MAX_REQUESTS_PER_ACCOUNT);

    let other = app.new_user().await;
    for i in 0..10 {
        let started = Instant::now();
        let (status, body) = app
            .call(
                Method::POST,
                "/v2/kafka/cluster",
                &other.auth(),
                Some(json!({ "name": format!("c{i}"), "region": "eu-west-1", "multizone": false })),
            )
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let (status, body) = app
            .call(Method::GET, "/v2/kafka/clusters", &other.auth(), None)
            .await;
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(
            started.elapsed() < NORMAL_LATENCY_BOUND,
            "requests took {:?} while another account's uploads were held",
            started.elapsed()
        );
    }
    let (status, _) = app.call(Method::GET, "/healthz", &Auth::None, None).await;
    assert_eq!(status, StatusCode::OK);
    drop(uploads);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_body_declared_larger_than_the_limit_is_refused_before_it_is_read() {
    let app = spawn_app(Backend::Sqlite).await;
    let user = app.new_user().await;
    let basic = STANDARD.encode(format!("{}:{}", user.email, user.key));
    let mut stream = TcpStream::connect(app.address).await.unwrap();
    stream
        .write_all(
            format!(
                "POST /v2/kafka/cluster HTTP/1.1\r\nHost: api\r\nAuthorization: Basic {basic}\r\n\
                 Connection: close\r\nContent-Length: 2000000\r\n\r\n"
            )
            .as_bytes(),
        )
        .await
        .unwrap();
    let mut answer = vec![0u8; 4096];
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut answer))
        .await
        .expect("answered without waiting for the body")
        .unwrap();
    let answer = String::from_utf8_lossy(&answer[..read]);
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer}");
    assert!(answer.contains("accepts at most 1048576"), "{answer}");
}

/// `--http-max-connections` and `--http-header-timeout` hold on both HTTP listeners: with room
/// for two connections, two that never send a request are closed at the header timeout, and a
/// third connection's request, waiting meanwhile, is then answered.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_configured_connection_limits_hold_on_both_listeners() {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let app = spawn_app_with(
        Backend::Sqlite,
        capstan_api::state::PlatformConfig {
            http_limits: capstan_api::listener::ConnectionLimits {
                max_connections: 2,
                header_timeout: Duration::from_secs(1),
                shutdown_grace: Duration::from_secs(1),
            },
            ..Default::default()
        },
    )
    .await;
    for address in [app.address, app.gateway] {
        let mut idle = Vec::new();
        for _ in 0..2 {
            idle.push(tokio::net::TcpStream::connect(address).await.unwrap());
        }
        let mut waiting = tokio::net::TcpStream::connect(address).await.unwrap();
        waiting
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: capstan\r\nConnection: close\r\n\r\n")
            .await
            .unwrap();
        for mut connection in idle {
            let mut byte = [0u8; 1];
            let closed = tokio::time::timeout(Duration::from_secs(10), connection.read(&mut byte))
                .await
                .expect("an idle connection is closed at the header timeout");
            assert!(matches!(closed, Ok(0) | Err(_)), "{closed:?}");
        }
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(10), waiting.read_to_string(&mut answer))
            .await
            .expect("the waiting request is answered once there is room")
            .unwrap();
        assert!(answer.starts_with("HTTP/1.1 200"), "{address}: {answer}");
    }
}
