//! Leader election against a mocked API server that keeps Leases as a real one does: a create
//! of an existing name and a replace with a stale `resourceVersion` are refused with 409, so
//! the tests see which replica wins each race. Time is passed in, never waited for.

#![allow(clippy::unwrap_used)] // tests fail loudly on purpose

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use capstan_operator::leader::{Elector, LeaseConfig};
use http::{Method, Response, StatusCode};
use k8s_openapi::jiff::{SignedDuration, Timestamp};
use kube::{Client, client::Body};
use serde_json::{Value, json};
use support::{mock_client, respond};

mod support;

const LEASES: &str = "/apis/coordination.k8s.io/v1/namespaces/capstan/leases";

#[derive(Default)]
struct FakeApi {
    leases: HashMap<String, Value>,
    version: u64,
    /// Written right after the next GET answers: another replica's write that lands between
    /// this replica's read and its own write.
    behind_the_back: Option<Value>,
}

type Shared = Arc<Mutex<FakeApi>>;

fn refuse(code: u16, reason: &str) -> Response<Body> {
    respond(
        StatusCode::from_u16(code).unwrap(),
        json!({ "kind": "Status", "apiVersion": "v1", "status": "Failure", "reason": reason, "code": code, "message": reason }),
    )
}

impl FakeApi {
    fn store(&mut self, mut lease: Value) -> Value {
        self.version += 1;
        lease["metadata"]["resourceVersion"] = json!(self.version.to_string());
        let name = lease["metadata"]["name"].as_str().unwrap().to_owned();
        self.leases.insert(name, lease.clone());
        lease
    }

    fn handle(&mut self, method: &Method, path: &str, body: &[u8]) -> Response<Body> {
        if method == Method::POST && path == LEASES {
            let lease: Value = serde_json::from_slice(body).unwrap();
            if self
                .leases
                .contains_key(lease["metadata"]["name"].as_str().unwrap())
            {
                return refuse(409, "AlreadyExists");
            }
            return respond(StatusCode::CREATED, self.store(lease));
        }
        let name = path.strip_prefix(&format!("{LEASES}/")).unwrap().to_owned();
        if method == Method::GET {
            let answer = match self.leases.get(&name) {
                Some(lease) => respond(StatusCode::OK, lease.clone()),
                None => refuse(404, "NotFound"),
            };
            if let Some(other) = self.behind_the_back.take() {
                self.store(other);
            }
            return answer;
        }
        assert_eq!(method, Method::PUT, "{method} {path}");
        let lease: Value = serde_json::from_slice(body).unwrap();
        let current = self
            .leases
            .get(&name)
            .map(|l| &l["metadata"]["resourceVersion"]);
        if current != Some(&lease["metadata"]["resourceVersion"]) {
            return refuse(409, "Conflict");
        }
        respond(StatusCode::OK, self.store(lease))
    }
}

fn client(api: Shared) -> Client {
    mock_client("capstan", move |method, path, _, body| {
        api.lock().unwrap().handle(method, path, body)
    })
}

fn replica(api: &Shared, identity: &str) -> Elector {
    Elector::new(
        client(api.clone()),
        LeaseConfig {
            namespace: "capstan".into(),
            name: "capstan-operator".into(),
            identity: identity.into(),
            duration: Duration::from_secs(15),
        },
    )
}

fn at(seconds: i64) -> Timestamp {
    Timestamp::from_second(1_800_000_000).unwrap() + SignedDuration::from_secs(seconds)
}

fn lease(api: &Shared) -> Value {
    api.lock().unwrap().leases["capstan-operator"]["spec"].clone()
}

fn held_by(holder: &str, renewed: Timestamp) -> Value {
    json!({
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": { "name": "capstan-operator", "namespace": "capstan" },
        "spec": { "holderIdentity": holder, "leaseDurationSeconds": 15, "renewTime": renewed.to_string(), "acquireTime": renewed.to_string(), "leaseTransitions": 0 }
    })
}

#[tokio::test]
async fn a_standby_takes_the_lease_only_once_its_holder_let_it_expire() {
    let api = Shared::default();
    let (a, b) = (replica(&api, "operator-a"), replica(&api, "operator-b"));
    assert!(
        a.try_hold(at(0)).await.unwrap(),
        "the first replica creates the Lease"
    );
    assert_eq!(
        (
            lease(&api)["holderIdentity"].clone(),
            lease(&api)["leaseDurationSeconds"].clone()
        ),
        (json!("operator-a"), json!(15))
    );
    assert!(!b.try_hold(at(1)).await.unwrap(), "held and fresh");
    assert!(a.try_hold(at(5)).await.unwrap(), "the holder renews");
    assert!(
        !b.try_hold(at(19)).await.unwrap(),
        "renewed at 5 s: held until 20 s"
    );
    assert_eq!(lease(&api)["holderIdentity"], json!("operator-a"));
    assert!(b.try_hold(at(21)).await.unwrap(), "expired: taken over");
    let taken = lease(&api);
    assert_eq!(
        (
            taken["holderIdentity"].clone(),
            taken["leaseTransitions"].clone()
        ),
        (json!("operator-b"), json!(1))
    );
    assert_eq!(
        taken["acquireTime"]
            .as_str()
            .map(|t| t.parse::<Timestamp>().unwrap()),
        Some(at(21))
    );
    assert!(
        !a.try_hold(at(22)).await.unwrap(),
        "the old holder is a standby now"
    );
}

#[tokio::test]
async fn of_two_replicas_racing_for_the_lease_exactly_one_wins() {
    // Both find no Lease; the other's create lands first.
    let api = Shared::default();
    api.lock().unwrap().behind_the_back = Some(held_by("operator-c", at(0)));
    assert!(!replica(&api, "operator-b").try_hold(at(0)).await.unwrap());
    assert_eq!(lease(&api)["holderIdentity"], json!("operator-c"));

    // Both find it expired; the other's takeover lands between this one's read and write.
    let api = Shared::default();
    api.lock().unwrap().store(held_by("operator-a", at(0)));
    api.lock().unwrap().behind_the_back = Some(held_by("operator-c", at(30)));
    assert!(!replica(&api, "operator-b").try_hold(at(30)).await.unwrap());
    assert_eq!(lease(&api)["holderIdentity"], json!("operator-c"));
    // With nobody in the way, the expired Lease is taken.
    assert!(replica(&api, "operator-b").try_hold(at(60)).await.unwrap());
}

#[tokio::test]
async fn a_released_lease_is_taken_at_the_next_try() {
    let api = Shared::default();
    let (a, b) = (replica(&api, "operator-a"), replica(&api, "operator-b"));
    assert!(a.try_hold(at(0)).await.unwrap());
    b.release().await.unwrap();
    assert_eq!(
        lease(&api)["holderIdentity"],
        json!("operator-a"),
        "only the holder releases"
    );
    a.release().await.unwrap();
    assert_eq!(lease(&api).get("holderIdentity"), None);
    assert!(
        b.try_hold(at(1)).await.unwrap(),
        "no need to wait out the duration"
    );
    assert_eq!(lease(&api)["leaseTransitions"], json!(1));
}
