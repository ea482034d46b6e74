//! `capstan operator`: the controller watching KafkaClusters and the objects they own, with
//! `/healthz` and `/metrics` on their own port. Replicas elect a leader on a Lease
//! ([`crate::leader`]); only the leader reconciles, the others wait to take over.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Secret, Service},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
use k8s_openapi::jiff::Timestamp;
use kube::{
    Api, Client,
    runtime::{Controller, watcher},
};
use prometheus::{Encoder, TextEncoder};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::TcpListener,
};

use crate::{
    Error, KafkaCluster, Result,
    leader::{Elector, LeaseConfig},
    metrics::Metrics,
    reconciler::{Context, error_policy, reconcile},
};

/// Runs the controller until `shutdown` completes, with the in-cluster service account or
/// `KUBECONFIG`, while this replica holds the leader Lease `lease` of `identity` (in the
/// client's namespace, the pod's own in a cluster).
pub async fn run(
    listen: SocketAddr,
    lease: String,
    identity: String,
    namespaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let client = Client::try_default().await.map_err(|e| {
        Error::Kube(format!(
            "no Kubernetes configuration (in-cluster or KUBECONFIG): {e}"
        ))
    })?;
    let lease = LeaseConfig {
        namespace: client.default_namespace().to_owned(),
        name: lease,
        identity,
        duration: LEASE_DURATION,
    };
    run_with_client(client, listen, lease, namespaces, shutdown).await
}

/// How long a replica that stopped renewing keeps the Lease (client-go's default).
pub const LEASE_DURATION: Duration = Duration::from_secs(15);

/// Runs the controller with `client` until `shutdown` completes, for the KafkaClusters of
/// `namespaces` (every namespace when empty), while holding `lease`: it waits for the Lease
/// first, and stops (with an error, so Kubernetes restarts the pod as a
/// standby) if it cannot renew it in time.
pub async fn run_with_client(
    client: Client,
    listen: SocketAddr,
    lease: LeaseConfig,
    namespaces: Vec<String>,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new().map_err(|e| Error::Kube(format!("metrics: {e}")))?);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Kube(format!("could not listen on {listen}: {e}")))?;
    tokio::spawn(serve_health(listener, metrics.clone()));
    // The controller wants a Sync future; the caller's may not be.
    let (stop, stopping) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(true);
    });
    let elector = Arc::new(Elector::new(client.clone(), lease));
    if !wait_to_lead(&elector, stopping.clone()).await {
        return Ok(());
    }
    let (lose, lost) = tokio::sync::watch::channel(false);
    let renewing = tokio::spawn(keep_leading(elector.clone(), lose));
    let ctx = Arc::new(Context::new(client.clone(), metrics));
    // One controller per watched namespace (or one for all): a Role per namespace is then
    // all the operator needs, with no cluster-wide access to Secrets.
    let scopes: Vec<Option<String>> = if namespaces.is_empty() {
        vec![None]
    } else {
        namespaces.into_iter().map(Some).collect()
    };
    let controllers = scopes.into_iter().map(|scope| {
        let mut until_stopped = stopping.clone();
        let mut until_lost = lost.clone();
        let client = client.clone();
        let ctx = ctx.clone();
        async move {
            let scope = scope.as_deref();
            let config =
                watcher::Config::default().labels("app.kubernetes.io/managed-by=capstan-operator");
            Controller::new(
                api::<KafkaCluster>(&client, scope),
                watcher::Config::default(),
            )
            .owns(api::<StatefulSet>(&client, scope), config.clone())
            .owns(api::<ConfigMap>(&client, scope), config.clone())
            .owns(api::<Secret>(&client, scope), config.clone())
            .owns(api::<Service>(&client, scope), config.clone())
            .owns(api::<PodDisruptionBudget>(&client, scope), config.clone())
            .owns(api::<NetworkPolicy>(&client, scope), config)
            .graceful_shutdown_on(async move {
                tokio::select! {
                    _ = until_stopped.wait_for(|stop| *stop) => {}
                    _ = until_lost.wait_for(|lost| *lost) => {}
                }
            })
            .run(reconcile, error_policy, ctx)
            .for_each(|result| async move {
                if let Err(error) = result {
                    tracing::debug!(%error, "reconcile event");
                }
            })
            .await;
        }
    });
    futures::future::join_all(controllers).await;
    renewing.abort();
    let lease = elector.config();
    if *lost.borrow() {
        return Err(Error::Kube(format!(
            "lost the leader Lease {}/{} (not renewed within {:?}); exiting so that Kubernetes restarts this replica as a standby",
            lease.namespace,
            lease.name,
            lease.renew_deadline()
        )));
    }
    if let Err(error) = elector.release().await {
        tracing::warn!(%error, "the next leader takes over once the Lease expires");
    }
    Ok(())
}

/// Tries for the Lease every retry period until this replica holds it (true) or `stopping`
/// says to stop (false).
async fn wait_to_lead(elector: &Elector, mut stopping: tokio::sync::watch::Receiver<bool>) -> bool {
    let lease = elector.config();
    let mut told = false;
    loop {
        match elector.try_hold(Timestamp::now()).await {
            Ok(true) => {
                tracing::info!(lease = %lease.name, identity = %lease.identity, "leading: reconciling KafkaClusters");
                return true;
            }
            Ok(false) if !told => {
                tracing::info!(lease = %lease.name, identity = %lease.identity, "another replica leads; standing by");
                told = true;
            }
            Ok(false) => {}
            Err(error) => tracing::warn!(%error, "trying again"),
        }
        tokio::select! {
            _ = tokio::time::sleep(lease.retry_period()) => {}
            _ = stopping.wait_for(|stop| *stop) => return false,
        }
    }
}

/// Renews the Lease every retry period; says `lose` once no renewal succeeded for the renew
/// deadline (or another replica holds it).
async fn keep_leading(elector: Arc<Elector>, lose: tokio::sync::watch::Sender<bool>) {
    let lease = elector.config().clone();
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(lease.retry_period()).await;
        // A renewal the API server does not answer must not outlast the deadline.
        let attempt =
            tokio::time::timeout(lease.retry_period(), elector.try_hold(Timestamp::now()));
        match attempt.await {
            Ok(Ok(true)) => renewed = tokio::time::Instant::now(),
            Ok(Ok(false)) => {
                tracing::error!(lease = %lease.name, "another replica holds the leader Lease");
                let _ = lose.send(true);
                return;
            }
            Ok(Err(error)) => tracing::warn!(%error, "renewing the leader Lease"),
            Err(_) => tracing::warn!("renewing the leader Lease: no answer in time"),
        }
        if renewed.elapsed() >= lease.renew_deadline() {
            let _ = lose.send(true);
            return;
        }
    }
}

/// An API over one namespace, or over all of them.
fn api<K>(client: &Client, namespace: Option<&str>) -> Api<K>
where
    K: kube::Resource<Scope = k8s_openapi::NamespaceResourceScope>,
    K::DynamicType: Default,
{
    match namespace {
        Some(namespace) => Api::namespaced(client.clone(), namespace),
        None => Api::all(client.clone()),
    }
}

/// A minimal HTTP responder for `/healthz` and `/metrics` (no framework needed for two routes).
async fn serve_health(listener: TcpListener, metrics: Arc<Metrics>) {
    loop {
        let Ok((mut stream, _)) = listener.accept().await else {
            continue;
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let mut buffer = [0u8; 1024];
            let Ok(read) = stream.read(&mut buffer).await else {
                return;
            };
            let request = String::from_utf8_lossy(&buffer[..read]);
            let (status, content_type, body) = if request.starts_with("GET /metrics") {
                let mut out = Vec::new();
                let _ = TextEncoder::new().encode(&metrics.registry.gather(), &mut out);
                ("200 OK", "text/plain; version=0.0.4", out)
            } else if request.starts_with("GET /healthz") {
                ("200 OK", "application/json", br#"{"status":"ok"}"#.to_vec())
            } else {
                (
                    "404 Not Found",
                    "application/json",
                    br#"{"error":"not found"}"#.to_vec(),
                )
            };
            let head = format!(
                "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\nconnection: close\r\n\r\n",
                body.len()
            );
            let _ = stream.write_all(head.as_bytes()).await;
            let _ = stream.write_all(&body).await;
        });
    }
}
