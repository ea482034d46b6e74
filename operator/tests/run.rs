//! `capstan operator` as a whole against a mocked API server: it takes the leader Lease, then
//! watches KafkaClusters and their children only in the namespaces it was given, and on
//! shutdown gives the Lease up.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use capstan_operator::leader::LeaseConfig;
use http::{Method, Request, Response, StatusCode};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use support::respond;
use tokio::sync::Notify;

mod support;

const LEASE: &str = "/apis/coordination.k8s.io/v1/namespaces/capstan/leases/capstan-operator";

#[derive(Default)]
struct Seen {
    /// `METHOD path` of every request.
    requests: Vec<String>,
    lease: Option<Value>,
}

/// The Lease `operator-0` holds, lasting 15 s.
fn lease() -> LeaseConfig {
    LeaseConfig {
        namespace: "capstan".into(),
        name: "capstan-operator".into(),
        identity: "operator-0".into(),
        duration: Duration::from_secs(15),
    }
}

fn client(seen: Arc<Mutex<Seen>>, changed: Arc<Notify>) -> Client {
    let (service, mut handle) = tower_test::mock::pair::<Request<Body>, Response<Body>>();
    tokio::spawn(async move {
        // Watches are held open, as a real API server holds them until something changes.
        let mut watching = Vec::new();
        while let Some((request, send)) = handle.next_request().await {
            let method = request.method().clone();
            let path = request.uri().path().to_owned();
            let query = request.uri().query().unwrap_or_default().to_owned();
            let body = request.into_body().collect_bytes().await.unwrap();
            let mut seen = seen.lock().unwrap();
            seen.requests.push(format!("{method} {path}"));
            changed.notify_one();
            if query.contains("watch=true") {
                watching.push(send);
                continue;
            }
            let answer = if path == LEASE && method == Method::GET {
                match &seen.lease {
                    Some(lease) => respond(StatusCode::OK, lease.clone()),
                    None => respond(
                        StatusCode::NOT_FOUND,
                        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": "NotFound", "code": 404 }),
                    ),
                }
            } else if path.starts_with("/apis/coordination.k8s.io/") {
                let mut lease: Value = serde_json::from_slice(&body).unwrap();
                lease["metadata"]["resourceVersion"] = json!(format!("{}", seen.requests.len()));
                seen.lease = Some(lease.clone());
                respond(StatusCode::OK, lease)
            } else {
                // A LIST of any collection: empty.
                respond(
                    StatusCode::OK,
                    json!({ "apiVersion": "v1", "kind": "List", "metadata": { "resourceVersion": "1" }, "items": [] }),
                )
            };
            send.send_response(answer);
        }
    });
    Client::new(service, "capstan")
}

#[tokio::test]
async fn the_leader_watches_only_its_namespaces_and_gives_the_lease_up_on_shutdown() {
    let seen = Arc::new(Mutex::new(Seen::default()));
    let changed = Arc::new(Notify::new());
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let operator = tokio::spawn(capstan_operator::run_with_client(
        client(seen.clone(), changed.clone()),
        "127.0.0.1:0".parse().unwrap(),
        lease(),
        vec!["tenants".into(), "pools".into()],
        async move {
            let _ = stopped.await;
        },
    ));

    let watched = |namespace: &str| {
        format!("GET /apis/capstan.dev/v1alpha1/namespaces/{namespace}/kafkaclusters")
    };
    tokio::time::timeout(Duration::from_secs(60), async {
        loop {
            {
                let seen = seen.lock().unwrap();
                let secrets_watched = |namespace: &str| {
                    seen.requests
                        .contains(&format!("GET /api/v1/namespaces/{namespace}/secrets"))
                };
                if seen.requests.contains(&watched("tenants"))
                    && seen.requests.contains(&watched("pools"))
                    && secrets_watched("tenants")
                    && secrets_watched("pools")
                {
                    break;
                }
            }
            changed.notified().await;
        }
    })
    .await
    .expect("the operator should watch both namespaces");
    {
        let seen = seen.lock().unwrap();
        assert_eq!(
            seen.requests[0],
            format!("GET {LEASE}"),
            "nothing before the Lease"
        );
        assert_eq!(
            seen.lease.as_ref().unwrap()["spec"]["holderIdentity"],
            json!("operator-0")
        );
        let outside: Vec<&String> = seen
            .requests
            .iter()
            .filter(|r| !r.contains("/namespaces/tenants/") && !r.contains("/namespaces/pools/"))
            .filter(|r| !r.contains("/namespaces/capstan/leases"))
            .collect();
        assert_eq!(outside, Vec::<&String>::new(), "nothing cluster-wide");
    }

    stop.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(60), operator)
        .await
        .expect("the operator should stop")
        .unwrap()
        .unwrap();
    let seen = seen.lock().unwrap();
    assert_eq!(
        seen.lease.as_ref().unwrap()["spec"].get("holderIdentity"),
        None,
        "released on shutdown"
    );
}

#[tokio::test(start_paused = true)]
async fn a_leader_that_loses_its_lease_stops_and_says_so() {
    // Time is tokio's paused clock: it moves only when every task waits, so the renewals
    // happen in order without the test sleeping.
    let seen = Arc::new(Mutex::new(Seen::default()));
    let changed = Arc::new(Notify::new());
    let operator = tokio::spawn(capstan_operator::run_with_client(
        client(seen.clone(), changed.clone()),
        "127.0.0.1:0".parse().unwrap(),
        lease(),
        vec!["tenants".into()],
        std::future::pending(),
    ));
    loop {
        if seen.lock().unwrap().lease.is_some() {
            break;
        }
        changed.notified().await;
    }
    // Another replica took the Lease (a partition, say): the next renewal finds it held.
    {
        let mut seen = seen.lock().unwrap();
        let lease = seen.lease.as_mut().unwrap();
        lease["spec"]["holderIdentity"] = json!("operator-1");
        lease["spec"]["renewTime"] = json!("2100-01-01T00:00:00.000000Z");
    }
    let stopped = tokio::time::timeout(Duration::from_secs(60), operator)
        .await
        .expect("the operator should stop within a renewal or two")
        .unwrap();
    let error = stopped.unwrap_err().to_string();
    assert!(
        error.contains("lost the leader Lease capstan/capstan-operator"),
        "{error}"
    );
}
