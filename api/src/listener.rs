//! How the HTTP listeners (the API and console, the REST data gateway) accept and keep
//! connections: a bound on open connections, a deadline for the request headers, and a bounded
//! graceful shutdown. Per-request limits (bodies, deadlines, concurrency) are layers and
//! extractors of each router; `docs/security.md` lists every value.

use std::{convert::Infallible, future::Future, net::SocketAddr, sync::Arc, time::Duration};

use axum::{
    extract::{ConnectInfo, Request},
    response::Response,
};
use hyper::body::Incoming;
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::{conn::auto::Builder, graceful::GracefulShutdown},
    service::TowerToHyperService,
};
use tokio::{net::TcpListener, sync::Semaphore};
use tower::{Service, ServiceExt};

/// The connection-level limits of a listener.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionLimits {
    /// Open connections at once; the next one waits in the kernel's accept queue.
    pub max_connections: usize,
    /// Time a client has to send a request's headers (and to start the next request on a
    /// kept-alive connection); slower connections are closed.
    pub header_timeout: Duration,
    /// Time requests in progress get to finish after shutdown begins; connections still
    /// busy after it are closed.
    pub shutdown_grace: Duration,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            max_connections: 4096,
            header_timeout: Duration::from_secs(15),
            shutdown_grace: Duration::from_secs(10),
        }
    }
}

/// Pause after a failed accept (out of file descriptors, say) before the next, so a full
/// table does not spin the loop.
const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// Serves `service` on `listener` until `shutdown` completes, then lets requests in progress
/// finish for at most [`ConnectionLimits::shutdown_grace`]. Each request carries the peer's
/// address as [`ConnectInfo`].
pub async fn serve<S>(
    listener: TcpListener,
    service: S,
    limits: ConnectionLimits,
    shutdown: impl Future<Output = ()> + Send,
) where
    S: Service<Request, Response = Response, Error = Infallible> + Clone + Send + 'static,
    S::Future: Send + 'static,
{
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout);
    builder.http2().timer(TokioTimer::new());
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut connections = tokio::task::JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        while connections.try_join_next().is_some() {}
        let place = tokio::select! {
            place = open.clone().acquire_owned() => place,
            () = &mut shutdown => break,
        };
        let Ok(place) = place else { break };
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "could not accept a connection");
                    tokio::time::sleep(ACCEPT_RETRY).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let service = service
            .clone()
            .map_request(move |request: Request<Incoming>| with_peer(request, peer));
        let (builder, watcher) = (builder.clone(), graceful.watcher());
        connections.spawn(async move {
            let _place = place;
            // hyper's header timer starts with the first byte: a connection that never sends
            // one would hold its place forever, so it gets the header timeout to start.
            let mut first = [0u8; 1];
            match tokio::time::timeout(limits.header_timeout, stream.peek(&mut first)).await {
                Ok(Ok(read)) if read > 0 => {}
                Ok(_) => return,
                Err(_) => {
                    tracing::debug!(%peer, "connection closed: no request within the header timeout");
                    return;
                }
            }
            let connection = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(stream),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(limits.shutdown_grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = connections.len(),
            grace_secs = limits.shutdown_grace.as_secs(),
            "cutting off requests still in progress after the shutdown grace period"
        );
    }
    connections.shutdown().await;
}

fn with_peer(request: Request<Incoming>, peer: SocketAddr) -> Request {
    let mut request = request.map(axum::body::Body::new);
    request.extensions_mut().insert(ConnectInfo(peer));
    request
}
