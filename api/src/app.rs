//! The control plane as one runnable application: store, provisioner, the API listener, the
//! REST gateway listener and the Kafka gateway's listeners.

use std::{
    collections::HashMap,
    future::Future,
    net::SocketAddr,
    path::PathBuf,
    sync::Arc,
    time::{Duration, Instant},
};

use capstan_kafka::gateway::{Advertised, Gateway, GatewayConfig, NodeListeners};
use tokio::{net::TcpListener, sync::watch};

use crate::{
    Error, Result,
    billing::{BillingSource, NoBilling, RequestLimiter},
    clusters, credentials,
    crypto::SecretKey,
    gateway::{self, FetchObserver, GatewayState},
    kafka_policy::GatewayPolicy,
    metrics::Metrics,
    provisioner::{LocalProvisioner, Provisioner},
    routes,
    state::{AppState, PlatformConfig},
    store::Store,
    usage::{DeliveryCounter, FinalMeter, NoDeliveries, NoFinalMeter, NoUsage, UsageSource},
};

/// Everything needed to start the control plane.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Address of the console and provisioning API (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Address of the REST data gateway (port 0 picks a free port).
    pub gateway_listen: SocketAddr,
    /// The platform secret key.
    pub key: SecretKey,
    /// Where local brokers keep their data.
    pub data_dir: PathBuf,
    /// The tansu executable for local brokers.
    pub broker_binary: PathBuf,
    /// Platform settings; an empty `rest_endpoint` (`kafka_endpoint`) is filled with the REST
    /// (Kafka) gateway's address.
    pub platform: PlatformConfig,
    /// The Kafka gateway's listeners.
    pub kafka: KafkaListen,
}

/// Where the Kafka gateway listens and what it tells clients.
#[derive(Clone, Debug)]
pub struct KafkaListen {
    /// The bootstrap listener (port 0 picks a free port).
    pub listen: SocketAddr,
    /// Try the next ports when this one is taken (`capstan dev`).
    pub next_free_port: bool,
    /// `host:port` clients are told; `None` for the listen address.
    pub advertise: Option<String>,
    /// Per-broker listeners, for pools of several brokers.
    pub node_ports: Option<NodeListeners>,
    /// TLS on every listener: a PEM certificate chain and its PEM private key.
    pub tls: Option<(PathBuf, PathBuf)>,
}

impl KafkaListen {
    /// A listener on a free loopback port (tests).
    pub fn loopback() -> Self {
        KafkaListen {
            listen: SocketAddr::from(([127, 0, 0, 1], 0)),
            next_free_port: false,
            advertise: None,
            node_ports: None,
            tls: None,
        }
    }
}

/// A built control plane, bound to its ports but not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    gateway_listener: TcpListener,
    kafka: Gateway,
    state: AppState,
    gateway: GatewayState,
    resumed: (usize, usize),
    console: Option<axum::Router>,
}

impl Application {
    /// Connects to the database, applies migrations, binds both listeners and brings back the
    /// brokers of existing clusters, run by local broker processes.
    pub async fn build(settings: Settings) -> Result<Self> {
        Self::build_with(settings, None).await
    }

    /// As [`Application::build`], with clusters made by `provisioner` instead of local brokers
    /// when one is given (the Kubernetes provisioner).
    pub async fn build_with(
        settings: Settings,
        provisioner: Option<Arc<dyn Provisioner>>,
    ) -> Result<Self> {
        let store = Store::connect(&settings.database_url).await?;
        store.migrate().await?;
        let provisioner: Arc<dyn Provisioner> = match provisioner {
            Some(provisioner) => provisioner,
            None => Arc::new(LocalProvisioner::new(
                &settings.data_dir,
                settings.broker_binary.clone(),
                settings.key.clone(),
            )?),
        };
        provisioner.start().await?;
        let metrics =
            Metrics::new().map_err(|e| Error::internal("could not register metrics", e))?;
        let listener = bind(settings.listen, "the API").await?;
        let gateway_listener = bind(settings.gateway_listen, "the REST gateway").await?;
        let kafka = bind_kafka(
            &settings.kafka,
            &settings.key,
            provisioner.engine(),
            &metrics,
        )
        .await?;
        let mut platform = settings.platform;
        if platform.rest_endpoint.is_empty() {
            platform.rest_endpoint = address(&gateway_listener)?.to_string();
        }
        if platform.kafka_endpoint.is_empty() {
            platform.kafka_endpoint = kafka.advertised();
        }
        if platform.public_url.is_empty() {
            platform.public_url = format!("http://{}", address(&listener)?);
        }
        let mailer = platform.mail.mailer()?;
        let state = AppState {
            store,
            key: settings.key,
            provisioner,
            config: Arc::new(platform),
            metrics: Arc::new(metrics),
            usage: Arc::new(NoUsage),
            deliveries: Arc::new(NoDeliveries),
            final_meter: Arc::new(NoFinalMeter),
            login_limit: Arc::default(),
            per_account: Arc::new(crate::concurrency::PerTenant::new(
                routes::MAX_REQUESTS_PER_ACCOUNT,
                "account",
            )),
            billing: Arc::new(NoBilling),
            limiter: None,
            mailer,
        };
        let resumed = clusters::resume_all(&state).await?;
        let (settled, left) = crate::journal::recover(&state, state.config.recovery_grace).await?;
        if settled + left > 0 {
            tracing::info!(
                settled,
                left,
                "provisioning journal: changes a crash had interrupted"
            );
        }
        if left == 0
            && let Err(error) = crate::orphans::sweep(&state).await
        {
            tracing::warn!(error = %crate::error::cause_chain(&error), "could not sweep resources no cluster owns; trying again later");
        }
        let gateway = GatewayState::new(state.clone(), None);
        Ok(Application {
            listener,
            gateway_listener,
            kafka,
            state,
            gateway,
            resumed,
            console: None,
        })
    }

    /// Reads usage from `source`, reports what the REST gateway delivers to `observer` and
    /// what the Kafka gateway delivers to `deliveries`, and meters with `final_meter` before
    /// deleting (the metering pipeline, wired in by the binary).
    pub fn with_metering(
        mut self,
        source: Arc<dyn UsageSource>,
        observer: Arc<dyn FetchObserver>,
        deliveries: Arc<dyn DeliveryCounter>,
        final_meter: Arc<dyn FinalMeter>,
    ) -> Self {
        self.state.usage = source;
        self.state.deliveries = deliveries;
        self.state.final_meter = final_meter;
        self.gateway = GatewayState::new(self.state.clone(), Some(observer));
        self
    }

    /// Reads cost and invoices from `billing` and refuses data requests `limiter` refuses.
    pub fn with_billing(
        mut self,
        billing: Arc<dyn BillingSource>,
        limiter: Arc<dyn RequestLimiter>,
    ) -> Self {
        self.state.billing = billing;
        self.state.limiter = Some(limiter.clone());
        self.gateway.app = self.state.clone();
        self.gateway.usage.limit_with(limiter);
        self
    }

    /// Serves the web console's `routes` on the API's listener too; they also answer unknown
    /// paths (see [`routes::router`]).
    pub fn with_console(mut self, routes: axum::Router) -> Self {
        self.console = Some(routes);
        self
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        address(&self.listener)
    }

    /// The address the REST data gateway listens on.
    pub fn gateway_addr(&self) -> Result<SocketAddr> {
        address(&self.gateway_listener)
    }

    /// The address the Kafka gateway's bootstrap listener is bound to.
    pub fn kafka_addr(&self) -> SocketAddr {
        self.kafka.local_addr()
    }

    /// The shared state (for wiring further tasks).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Clusters whose brokers were brought back at start, and those that failed.
    pub fn resumed_clusters(&self) -> (usize, usize) {
        self.resumed
    }

    /// Serves the API and the gateway until `shutdown` completes, then closes consumer
    /// instances (they leave their groups), stops every broker cleanly and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let (stop_tx, stop_rx) = watch::channel(false);
        tokio::spawn(async move {
            shutdown.await;
            let _ = stop_tx.send(true);
        });
        let expiry = tokio::spawn(expire_idle_instances(self.gateway.clone(), stop_rx.clone()));
        let supervision = tokio::spawn(supervise_brokers(self.state.clone(), stop_rx.clone()));
        let api = crate::listener::serve(
            self.listener,
            routes::router(self.state.clone(), self.console),
            self.state.config.http_limits,
            stopped(stop_rx.clone()),
        );
        let gateway = gateway::serve(
            self.gateway_listener,
            self.gateway.clone(),
            stopped(stop_rx.clone()),
        );
        let kafka = self.kafka.serve(
            Arc::new(GatewayPolicy::new(self.state.clone())),
            stopped(stop_rx),
        );
        tokio::join!(api, gateway, kafka);
        let _ = expiry.await;
        let _ = supervision.await;
        tracing::info!("closing consumer instances and stopping brokers");
        self.gateway.shutdown().await;
        self.state.provisioner.shutdown().await;
        self.state.store.close().await;
        Ok(())
    }
}

async fn stopped(mut stop: watch::Receiver<bool>) {
    let _ = stop.wait_for(|stop| *stop).await;
}

/// Closes consumer instances that idled past their session timeout, every second; every 30
/// seconds also drops the gateway's clients and instances of deleted clusters.
async fn expire_idle_instances(gateway: GatewayState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut ticks: u64 = 0;
    loop {
        tokio::select! {
            _ = tick.tick() => {
                gateway.instances.expire_idle().await;
                ticks += 1;
                if ticks.is_multiple_of(30) {
                    match clusters::all_live(&gateway.app.store).await {
                        Ok(rows) => {
                            let live = rows.into_iter().map(|r| r.id).collect();
                            gateway.clients.retain(&live).await;
                            gateway.instances.retain(&live).await;
                        }
                        Err(error) => tracing::warn!(error = %crate::error::cause_chain(&error), "could not list live clusters"),
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
}

/// Every two seconds: restarts brokers that died, so a crashed broker recovers by itself,
/// stores the cluster states the provisioner reports, and writes the credentials of a
/// dedicated cluster whose brokers became ready to them (retried until it succeeds); every
/// minute, settles what the provisioning journal shows a crash interrupted and removes what no
/// cluster owns ([`crate::orphans`]).
async fn supervise_brokers(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    let mut unsynced: HashMap<String, Instant> = HashMap::new();
    let mut last_recovery = Instant::now();
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.provisioner.supervise().await;
                if last_recovery.elapsed() >= state.config.journal_check_every {
                    last_recovery = Instant::now();
                    match crate::journal::recover(&state, state.config.recovery_grace).await {
                        Ok((_, 0)) => {
                            if let Err(error) = crate::orphans::sweep(&state).await {
                                tracing::warn!(error = %crate::error::cause_chain(&error), "could not sweep resources no cluster owns; trying again later");
                            }
                        }
                        Ok(_) => {}
                        Err(error) => tracing::warn!(error = %crate::error::cause_chain(&error), "could not read the provisioning journal"),
                    }
                }
                for (id, observed) in state.provisioner.observed_states().await {
                    match clusters::set_state(&state.store, &id, &observed).await {
                        Ok(true) => tracing::info!(cluster = %id, state = %observed, "cluster state changed"),
                        Ok(false) => {}
                        Err(error) => tracing::warn!(cluster = %id, error = %crate::error::cause_chain(&error), "could not store a cluster state"),
                    }
                    if observed == "active" && !id.starts_with("pool:") {
                        unsynced.insert(id, Instant::now());
                    }
                }
                sync_credentials(&state, &mut unsynced).await;
            }
            _ = stop.changed() => break,
        }
    }
}

/// How long a cluster whose credentials could not be written waits before the next try.
const CREDENTIAL_SYNC_RETRY: Duration = Duration::from_secs(5);

/// Writes the credentials of each ready dedicated cluster in `unsynced` that is due (see
/// [`credentials::sync_to_brokers`]); a failure is retried later.
async fn sync_credentials(state: &AppState, unsynced: &mut HashMap<String, Instant>) {
    let now = Instant::now();
    let due: Vec<String> = unsynced
        .iter()
        .filter(|(_, at)| **at <= now)
        .map(|(id, _)| id.clone())
        .collect();
    for id in due {
        let synced = match clusters::find_live(&state.store, &id).await {
            // Clients that go through the gateways never meet the brokers' users.
            Ok(cluster) if cluster.through_gateway(state.provisioner.as_ref()) => Ok(()),
            Ok(cluster) => credentials::sync_to_brokers(state, &cluster).await,
            Err(Error::NotFound(_)) => Ok(()),
            Err(error) => Err(error),
        };
        match synced {
            Ok(()) => {
                unsynced.remove(&id);
            }
            Err(error) => {
                tracing::warn!(cluster = %id, error = %crate::error::cause_chain(&error),
                    "could not write the cluster's credentials to its brokers; retrying");
                unsynced.insert(id, now + CREDENTIAL_SYNC_RETRY);
            }
        }
    }
}

/// Binds the Kafka gateway, on the next free port when asked and the first is taken.
async fn bind_kafka(
    settings: &KafkaListen,
    key: &SecretKey,
    engine: capstan_kafka::gateway::Engine,
    metrics: &Metrics,
) -> Result<Gateway> {
    let gateway_metrics = capstan_kafka::gateway::Metrics::register(&metrics.registry)
        .map_err(|e| Error::internal("could not register the Kafka gateway's metrics", e))?;
    let tls = match &settings.tls {
        Some((certificate, key)) => Some(
            capstan_kafka::gateway::tls_config(certificate, key)
                .map_err(|e| Error::internal("could not start the Kafka gateway", e))?,
        ),
        None => None,
    };
    let tries = if settings.next_free_port { 100 } else { 1 };
    let mut last_error = None;
    for offset in 0..tries {
        let mut listen = settings.listen;
        listen.set_port(settings.listen.port().saturating_add(offset));
        let mut config =
            GatewayConfig::new(listen, engine, key.derive("kafka-gateway-decoy").to_vec());
        config.node_listeners = settings.node_ports;
        config.tls = tls.clone();
        config.advertised = advertised(settings.advertise.as_deref(), listen, settings.node_ports)?;
        match Gateway::bind(config, gateway_metrics.clone()).await {
            Ok(gateway) => return Ok(gateway),
            Err(e) => last_error = Some(e),
        }
    }
    Err(Error::internal(
        "could not start the Kafka gateway",
        last_error.map_or_else(|| "no port tried".to_owned(), |e| e.to_string()),
    ))
}

/// What the Kafka gateway tells clients: `advertise` (`host[:port]`), else its listen address
/// (`localhost` for a wildcard one).
fn advertised(
    advertise: Option<&str>,
    listen: SocketAddr,
    node_ports: Option<NodeListeners>,
) -> Result<Advertised> {
    let (host, port) = match advertise {
        Some(text) => match text.rsplit_once(':') {
            Some((host, port)) => (
                host.to_owned(),
                port.parse::<u16>().map_err(|_| {
                    Error::Invalid(format!(
                        "--kafka-advertise {text:?}: the port is not a number"
                    ))
                })?,
            ),
            None => (text.to_owned(), 0),
        },
        None if listen.ip().is_unspecified() => ("localhost".to_owned(), 0),
        None => (listen.ip().to_string(), 0),
    };
    Ok(Advertised {
        host,
        // 0: the bound port.
        port,
        node_port_base: node_ports.map(|n| n.first),
    })
}

async fn bind(address: SocketAddr, what: &str) -> Result<TcpListener> {
    TcpListener::bind(address).await.map_err(|e| {
        Error::internal(
            format!("could not listen on {address} for {what} (is another process using it?)"),
            e,
        )
    })
}

fn address(listener: &TcpListener) -> Result<SocketAddr> {
    listener
        .local_addr()
        .map_err(|e| Error::internal("listener has no address", e))
}
