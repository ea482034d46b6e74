//! The control plane as one runnable application: store, provisioner, the API listener and the
//! REST gateway listener.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::{net::TcpListener, sync::watch};

use crate::{
    Error, Result,
    billing::{BillingSource, NoBilling, RequestLimiter},
    clusters,
    crypto::SecretKey,
    gateway::{self, FetchObserver, GatewayState},
    metrics::Metrics,
    provisioner::{LocalProvisioner, Provisioner},
    routes,
    state::{AppState, PlatformConfig},
    store::Store,
    usage::{NoUsage, UsageSource},
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
    /// Platform settings; an empty `rest_endpoint` is filled with the gateway's address.
    pub platform: PlatformConfig,
}

/// A built control plane, bound to its ports but not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    gateway_listener: TcpListener,
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
        let metrics =
            Metrics::new().map_err(|e| Error::internal("could not register metrics", e))?;
        let listener = bind(settings.listen, "the API").await?;
        let gateway_listener = bind(settings.gateway_listen, "the REST gateway").await?;
        let mut platform = settings.platform;
        if platform.rest_endpoint.is_empty() {
            platform.rest_endpoint = address(&gateway_listener)?.to_string();
        }
        let state = AppState {
            store,
            key: settings.key,
            provisioner,
            config: Arc::new(platform),
            metrics: Arc::new(metrics),
            usage: Arc::new(NoUsage),
            billing: Arc::new(NoBilling),
            limiter: None,
        };
        let resumed = clusters::resume_all(&state).await?;
        let gateway = GatewayState::new(state.clone(), None);
        Ok(Application {
            listener,
            gateway_listener,
            state,
            gateway,
            resumed,
            console: None,
        })
    }

    /// Reads usage from `source` and reports group-less REST fetches to `observer` (the
    /// metering pipeline, wired in by the binary).
    pub fn with_metering(
        mut self,
        source: Arc<dyn UsageSource>,
        observer: Arc<dyn FetchObserver>,
    ) -> Self {
        self.state.usage = source;
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
        self.state.limiter = Some(limiter);
        self.gateway.app = self.state.clone();
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
        // The peer address is kept for the console's per-address log-in limits.
        let app = routes::router(self.state.clone(), self.console)
            .into_make_service_with_connect_info::<SocketAddr>();
        let api = axum::serve(self.listener, app).with_graceful_shutdown(stopped(stop_rx.clone()));
        let gateway = gateway::serve(
            self.gateway_listener,
            self.gateway.clone(),
            stopped(stop_rx),
        );
        let (api, gateway) = tokio::join!(api, gateway);
        let _ = expiry.await;
        let _ = supervision.await;
        tracing::info!("closing consumer instances and stopping brokers");
        self.gateway.shutdown().await;
        self.state.provisioner.shutdown().await;
        self.state.store.close().await;
        api.map_err(|e| Error::internal("the HTTP server failed", e))?;
        gateway
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

/// Every two seconds: restarts brokers that died, so a crashed broker recovers by itself, and
/// stores the cluster states the provisioner reports.
async fn supervise_brokers(state: AppState, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_secs(2));
    loop {
        tokio::select! {
            _ = tick.tick() => {
                state.provisioner.supervise().await;
                for (id, observed) in state.provisioner.observed_states().await {
                    match clusters::set_state(&state.store, &id, &observed).await {
                        Ok(true) => tracing::info!(cluster = %id, state = %observed, "cluster state changed"),
                        Ok(false) => {}
                        Err(error) => tracing::warn!(cluster = %id, error = %crate::error::cause_chain(&error), "could not store a cluster state"),
                    }
                }
            }
            _ = stop.changed() => break,
        }
    }
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
