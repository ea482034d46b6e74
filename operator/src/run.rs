//! `capstan operator`: the controller watching KafkaClusters and the objects they own, with
//! `/healthz` and `/metrics` on their own port. Run one replica (no leader election yet).

use std::{net::SocketAddr, sync::Arc};

use futures::StreamExt;
use k8s_openapi::api::{
    apps::v1::StatefulSet,
    core::v1::{ConfigMap, Secret, Service},
    networking::v1::NetworkPolicy,
    policy::v1::PodDisruptionBudget,
};
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
    metrics::Metrics,
    reconciler::{Context, error_policy, reconcile},
};

/// Runs the controller until `shutdown` completes, with the in-cluster service account or
/// `KUBECONFIG`.
pub async fn run(
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let client = Client::try_default().await.map_err(|e| {
        Error::Kube(format!(
            "no Kubernetes configuration (in-cluster or KUBECONFIG): {e}"
        ))
    })?;
    run_with_client(client, listen, shutdown).await
}

/// Runs the controller with `client` until `shutdown` completes.
pub async fn run_with_client(
    client: Client,
    listen: SocketAddr,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<()> {
    let metrics = Arc::new(Metrics::new().map_err(|e| Error::Kube(format!("metrics: {e}")))?);
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|e| Error::Kube(format!("could not listen on {listen}: {e}")))?;
    tokio::spawn(serve_health(listener, metrics.clone()));
    let ctx = Arc::new(Context {
        client: client.clone(),
        metrics,
    });
    // The controller wants a Sync future; the caller's may not be.
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop.send(());
    });
    let config = watcher::Config::default().labels("app.kubernetes.io/managed-by=capstan-operator");
    Controller::new(
        Api::<KafkaCluster>::all(client.clone()),
        watcher::Config::default(),
    )
    .owns(Api::<StatefulSet>::all(client.clone()), config.clone())
    .owns(Api::<ConfigMap>::all(client.clone()), config.clone())
    .owns(Api::<Secret>::all(client.clone()), config.clone())
    .owns(Api::<Service>::all(client.clone()), config.clone())
    .owns(
        Api::<PodDisruptionBudget>::all(client.clone()),
        config.clone(),
    )
    .owns(Api::<NetworkPolicy>::all(client), config)
    .graceful_shutdown_on(async move {
        let _ = stopped.await;
    })
    .run(reconcile, error_policy, ctx)
    .for_each(|result| async move {
        if let Err(error) = result {
            tracing::debug!(%error, "reconcile event");
        }
    })
    .await;
    Ok(())
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
