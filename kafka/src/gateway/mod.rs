//! The Kafka gateway: stock Kafka clients connect here with SASL and the credentials the
//! control plane gave them, and see a private cluster. Their requests go to the backend
//! brokers (a shared pool, or their cluster's own) with every topic, group and transactional
//! id under the cluster's prefix; the answers come back with the prefix stripped, everything
//! of other tenants left out, and the gateway's addresses in place of the brokers'.
//!
//! The control plane decides who is who and owns topic administration through [`Policy`];
//! the gateway keeps no state of its own, so several can run behind a TCP load balancer.

mod admin;
mod authorize;
mod backend;
mod catalog;
mod codec;
mod delivery;
mod errors;
mod frame;
mod metrics;
mod names;
mod policy;
mod requests;
mod responses;
mod sasl;
mod scope;
mod session;
mod throttle;
mod upstream;
mod versions;

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
};

use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};

pub use backend::Target;
pub use metrics::Metrics;
pub use names::{INTERNAL_TOPIC_PREFIX, Names, is_reserved};
pub use policy::{
    AdminError, Backend, ConfigChange, CreatedTopic, Engine, NewTopic, Policy, PolicyError, Tenant,
};
pub use responses::Advertised;
pub use scope::{Scope, covers};
pub use versions::{Range, offered, table};

use backend::BackendPool;

use crate::{Error, Result};

/// Time a client has to complete the TLS handshake.
const TLS_HANDSHAKE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

/// How the gateway listens and what it allows.
#[derive(Clone, Debug)]
pub struct GatewayConfig {
    /// The bootstrap listener's address (port 0 picks a free port).
    pub listen: SocketAddr,
    /// What clients are told; a port of 0 means the bootstrap listener's own port.
    pub advertised: Advertised,
    /// Per-broker listeners: broker `n` of a pool on port `first + n`, for `count` brokers.
    pub node_listeners: Option<NodeListeners>,
    /// The engine of the platform's brokers (decides what ApiVersions offers).
    pub engine: Engine,
    /// Largest request accepted from an authenticated client.
    pub max_frame_bytes: usize,
    /// Client connections served at once; more are refused.
    pub max_connections: usize,
    /// Connections to each backend at once.
    pub max_backend_connections: usize,
    /// Key for the stable fake salts of unknown users (keep it secret, like the platform key).
    pub decoy_key: Vec<u8>,
    /// TLS on every listener when set (clients use SASL_SSL; PLAIN is only offered then).
    pub tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
}

/// The TLS settings of a certificate chain and its private key, both PEM files.
pub fn tls_config(
    certificate: &std::path::Path,
    key: &std::path::Path,
) -> Result<Arc<tokio_rustls::rustls::ServerConfig>> {
    use tokio_rustls::rustls::{
        self,
        pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    };
    let unreadable = |what: &str, path: &std::path::Path, e: &dyn std::fmt::Display| {
        Error::io(
            format!(
                "could not read the Kafka gateway's TLS {what} {}",
                path.display()
            ),
            std::io::Error::other(e.to_string()),
        )
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(certificate)
        .map_err(|e| unreadable("certificate", certificate, &e))?
        .collect::<std::result::Result<_, _>>()
        .map_err(|e| unreadable("certificate", certificate, &e))?;
    let key = PrivateKeyDer::from_pem_file(key).map_err(|e| unreadable("key", key, &e))?;
    let config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .and_then(|builder| builder.with_no_client_auth().with_single_cert(chain, key))
    .map_err(|e| {
        Error::io(
            "the Kafka gateway's TLS certificate and key do not fit",
            std::io::Error::other(e.to_string()),
        )
    })?;
    Ok(Arc::new(config))
}

/// Listeners of the brokers of multi-broker pools.
#[derive(Clone, Copy, Debug)]
pub struct NodeListeners {
    /// The port of broker 0; broker `n` listens on `first + n`.
    pub first: u16,
    /// How many brokers (node ids `0..count`).
    pub count: u16,
}

impl GatewayConfig {
    /// Defaults for a gateway on `listen` in front of `engine`, advertising `listen` itself.
    pub fn new(listen: SocketAddr, engine: Engine, decoy_key: Vec<u8>) -> Self {
        GatewayConfig {
            listen,
            advertised: Advertised {
                host: listen.ip().to_string(),
                port: 0,
                node_port_base: None,
            },
            node_listeners: None,
            engine,
            max_frame_bytes: 100 * 1024 * 1024,
            max_connections: 10_000,
            max_backend_connections: 2_000,
            decoy_key,
            tls: None,
        }
    }
}

/// What every connection of the gateway shares.
pub(crate) struct Shared {
    config: GatewayConfig,
    policy: Arc<dyn Policy>,
    metrics: Metrics,
    pools: Mutex<HashMap<String, Arc<BackendPool>>>,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Shared")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Shared {
    /// The pool of `backend`, made on first use (and made again when its address or
    /// credentials changed).
    fn pool(&self, backend: &Backend) -> Arc<BackendPool> {
        let mut pools = match self.pools.lock() {
            Ok(pools) => pools,
            Err(poisoned) => poisoned.into_inner(),
        };
        if let Some(pool) = pools.get(&backend.id)
            && pool.spec.bootstrap == backend.bootstrap
            && pool.spec.username == backend.username
            && pool.spec.password == backend.password
        {
            return pool.clone();
        }
        let pool = Arc::new(BackendPool::new(
            backend.clone(),
            self.config.max_backend_connections,
            self.metrics.clone(),
        ));
        pools.insert(backend.id.clone(), pool.clone());
        pool
    }
}

/// A bound gateway, ready to serve.
#[derive(Debug)]
pub struct Gateway {
    listeners: Vec<(TcpListener, Target)>,
    config: GatewayConfig,
    metrics: Metrics,
    local: SocketAddr,
}

impl Gateway {
    /// Binds the listeners.
    pub async fn bind(mut config: GatewayConfig, metrics: Metrics) -> Result<Self> {
        let bootstrap = TcpListener::bind(config.listen).await.map_err(|e| {
            Error::io(
                format!(
                    "could not listen on {} for the Kafka gateway (is another process using it?)",
                    config.listen
                ),
                e,
            )
        })?;
        let local = bootstrap
            .local_addr()
            .map_err(|e| Error::io("the Kafka gateway's listener has no address", e))?;
        if config.advertised.port == 0 {
            config.advertised.port = local.port();
        }
        let mut listeners = vec![(bootstrap, Target::Any)];
        if let Some(nodes) = config.node_listeners {
            for node in 0..nodes.count {
                let port = nodes.first.checked_add(node).ok_or_else(|| {
                    Error::io(
                        "the Kafka gateway's node ports",
                        std::io::Error::other("they must fit below 65536"),
                    )
                })?;
                let address = SocketAddr::new(config.listen.ip(), port);
                let listener = TcpListener::bind(address).await.map_err(|e| {
                    Error::io(
                        format!(
                            "could not listen on {address} for broker {node} of the Kafka gateway"
                        ),
                        e,
                    )
                })?;
                listeners.push((listener, Target::Node(i32::from(node))));
            }
        }
        Ok(Gateway {
            listeners,
            config,
            metrics,
            local,
        })
    }

    /// The bootstrap listener's address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// The address clients are told (`host:port`).
    pub fn advertised(&self) -> String {
        let advertised = &self.config.advertised;
        format!("{}:{}", advertised.host, advertised.port)
    }

    /// Serves with `policy` until `shutdown` completes, then closes every client connection.
    pub async fn serve(
        self,
        policy: Arc<dyn Policy>,
        shutdown: impl std::future::Future<Output = ()> + Send + 'static,
    ) {
        let max_connections = self.config.max_connections;
        let shared = Arc::new(Shared {
            config: self.config,
            policy,
            metrics: self.metrics,
            pools: Mutex::new(HashMap::new()),
        });
        let (stop_tx, stop) = watch::channel(false);
        let limit = Arc::new(Semaphore::new(max_connections));
        let mut accepting = Vec::new();
        for (listener, target) in self.listeners {
            accepting.push(tokio::spawn(accept(
                listener,
                target,
                shared.clone(),
                limit.clone(),
                stop.clone(),
            )));
        }
        shutdown.await;
        let _ = stop_tx.send(true);
        for task in accepting {
            let _ = task.await;
        }
        // Sessions end on the stop signal; wait until every one has released its place.
        let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
        let _ =
            tokio::time::timeout(std::time::Duration::from_secs(10), limit.acquire_many(all)).await;
    }
}

async fn accept(
    listener: TcpListener,
    target: Target,
    shared: Arc<Shared>,
    limit: Arc<Semaphore>,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            _ = stop.changed() => return,
        };
        let (stream, peer) = match accepted {
            Ok(accepted) => accepted,
            Err(error) => {
                // Out of file descriptors and the like: keep serving the others.
                tracing::warn!(%error, "the Kafka gateway could not accept a connection");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                continue;
            }
        };
        let Ok(permit) = limit.clone().try_acquire_owned() else {
            shared
                .metrics
                .connections_total
                .with_label_values(&["refused"])
                .inc();
            tracing::warn!(%peer, "refused a Kafka connection: the gateway is at its connection limit");
            continue;
        };
        shared
            .metrics
            .connections_total
            .with_label_values(&["accepted"])
            .inc();
        let _ = stream.set_nodelay(true);
        let shared = shared.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            shared.metrics.connections.inc();
            match shared.config.tls.clone() {
                None => session::serve(stream, peer, target, shared.clone(), stop).await,
                Some(tls) => {
                    let handshake = tokio::time::timeout(
                        TLS_HANDSHAKE_TIMEOUT,
                        tokio_rustls::TlsAcceptor::from(tls).accept(stream),
                    )
                    .await;
                    match handshake {
                        Ok(Ok(stream)) => {
                            session::serve(stream, peer, target, shared.clone(), stop).await;
                        }
                        Ok(Err(error)) => {
                            shared.metrics.rejected.with_label_values(&["tls"]).inc();
                            tracing::info!(%peer, %error, "a Kafka client's TLS handshake failed");
                        }
                        Err(_) => {
                            shared.metrics.rejected.with_label_values(&["tls"]).inc();
                            tracing::info!(%peer, "a Kafka client did not complete TLS in time");
                        }
                    }
                }
            }
            shared.metrics.connections.dec();
            drop(permit);
        });
    }
}
