//! The control plane as one runnable application: store, provisioner, HTTP listener.

use std::{future::Future, net::SocketAddr, path::PathBuf, sync::Arc};

use tokio::net::TcpListener;

use crate::{
    Error, Result, clusters,
    crypto::SecretKey,
    metrics::Metrics,
    provisioner::LocalProvisioner,
    routes,
    state::{AppState, PlatformConfig},
    store::Store,
};

/// Everything needed to start the control plane.
#[derive(Clone, Debug)]
pub struct Settings {
    /// `sqlite://…` or `postgres://…`.
    pub database_url: String,
    /// Address of the console and provisioning API (port 0 picks a free port).
    pub listen: SocketAddr,
    /// The platform secret key.
    pub key: SecretKey,
    /// Where local brokers keep their data.
    pub data_dir: PathBuf,
    /// The tansu executable for local brokers.
    pub broker_binary: PathBuf,
    /// Platform settings.
    pub platform: PlatformConfig,
}

/// A built control plane, bound to its port but not yet serving.
#[derive(Debug)]
pub struct Application {
    listener: TcpListener,
    state: AppState,
    resumed: (usize, usize),
}

impl Application {
    /// Connects to the database, applies migrations, brings back the brokers of existing
    /// clusters and binds the listener.
    pub async fn build(settings: Settings) -> Result<Self> {
        let store = Store::connect(&settings.database_url).await?;
        store.migrate().await?;
        let provisioner = LocalProvisioner::new(
            &settings.data_dir,
            settings.broker_binary.clone(),
            settings.key.clone(),
        )?;
        let metrics =
            Metrics::new().map_err(|e| Error::internal("could not register metrics", e))?;
        let state = AppState {
            store,
            key: settings.key,
            provisioner: Arc::new(provisioner),
            config: Arc::new(settings.platform),
            metrics: Arc::new(metrics),
        };
        let listener = TcpListener::bind(settings.listen).await.map_err(|e| {
            Error::internal(
                format!(
                    "could not listen on {} (is another process using it?)",
                    settings.listen
                ),
                e,
            )
        })?;
        let resumed = clusters::resume_all(&state).await?;
        Ok(Application {
            listener,
            state,
            resumed,
        })
    }

    /// The address the API listens on.
    pub fn local_addr(&self) -> Result<SocketAddr> {
        self.listener
            .local_addr()
            .map_err(|e| Error::internal("listener has no address", e))
    }

    /// The shared state (for wiring further tasks).
    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Clusters whose brokers were brought back at start, and those that failed.
    pub fn resumed_clusters(&self) -> (usize, usize) {
        self.resumed
    }

    /// Serves until `shutdown` completes, then stops every broker cleanly and closes the store.
    pub async fn run_until(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> Result<()> {
        let app = routes::router(self.state.clone());
        let served = axum::serve(self.listener, app)
            .with_graceful_shutdown(shutdown)
            .await
            .map_err(|e| Error::internal("the HTTP server failed", e));
        tracing::info!("stopping brokers");
        self.state.provisioner.shutdown().await;
        self.state.store.close().await;
        served
    }
}
