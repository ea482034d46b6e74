//! The local provisioner: tansu broker processes on loopback ports. One is the shared pool,
//! where every shared cluster's topics live under its prefix (data in
//! `<data dir>/brokers/pool-local/`); each dedicated cluster has one of its own (data in
//! `<data dir>/brokers/<cluster id>/`).

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use tokio::{process::Child, sync::Mutex};

use super::{
    Backend, BrokerUser, ClusterSpec, Engine, Inventory, Placement, Provisioner, TopicSpec, tansu,
};
use crate::{Error, Result, crypto::SecretKey, kafka_admin};

/// The SCRAM user the control plane itself uses for admin calls to each cluster.
const ADMIN_USER: &str = "capstan-admin";
/// The one local pool's name.
const POOL: &str = "local";
/// Key (in the broker map) and directory name of the pool's broker.
const POOL_KEY: &str = "pool-local";
const START_TIMEOUT: Duration = Duration::from_secs(15);
const STOP_GRACE: Duration = Duration::from_secs(10);

/// The tansu version Capstan is tested with.
pub const TANSU_VERSION: &str = "0.6.0";

#[derive(Debug)]
struct Broker {
    dir: PathBuf,
    port: u16,
    child: Option<Child>,
}

impl Broker {
    fn bootstrap(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    async fn start(&mut self, binary: &Path) -> Result<()> {
        tansu::stop_orphan(&self.dir).await;
        let mut child = tansu::spawn(binary, &self.dir, self.port)?;
        if let Err(e) = tansu::wait_listening(&mut child, self.port, START_TIMEOUT).await {
            tansu::stop(&mut child, STOP_GRACE).await;
            return Err(e);
        }
        self.child = Some(child);
        Ok(())
    }

    async fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            tansu::stop(&mut child, STOP_GRACE).await;
        }
    }
}

/// Runs a real broker per cluster on loopback.
#[derive(Debug)]
pub struct LocalProvisioner {
    root: PathBuf,
    binary: PathBuf,
    key: SecretKey,
    brokers: Mutex<HashMap<String, Arc<Mutex<Broker>>>>,
    /// The pool broker's port, for the synchronous `client_config` (0 until it started).
    pool_port: std::sync::atomic::AtomicU16,
}

impl LocalProvisioner {
    /// Keeps broker data under `data_dir/brokers` and runs `binary` (a tansu executable).
    pub fn new(data_dir: &Path, binary: PathBuf, key: SecretKey) -> Result<Self> {
        let root = data_dir.join("brokers");
        std::fs::create_dir_all(&root)
            .map_err(|e| Error::internal(format!("could not create {}", root.display()), e))?;
        Ok(LocalProvisioner {
            root,
            binary,
            key,
            brokers: Mutex::new(HashMap::new()),
            pool_port: std::sync::atomic::AtomicU16::new(0),
        })
    }

    /// The admin password of a broker (by its key: a cluster id, or the pool's).
    fn admin_password(&self, broker_key: &str) -> String {
        self.key.keyed_hash("broker-admin", broker_key.as_bytes())
    }

    /// Starts the shared pool's broker (made on first use, with its data kept across restarts).
    pub async fn start_pool(&self) -> Result<String> {
        if let Ok(broker) = self.broker(POOL_KEY).await {
            return Ok(broker.lock().await.bootstrap());
        }
        let dir = self.root.join(POOL_KEY);
        let bootstrap = if dir.join(tansu::DB_FILE).exists() {
            self.resume_broker(POOL_KEY, "").await?
        } else {
            self.create_broker(POOL_KEY).await?
        };
        if let Some(port) = bootstrap.rsplit(':').next().and_then(|p| p.parse().ok()) {
            self.pool_port
                .store(port, std::sync::atomic::Ordering::Release);
        }
        tracing::info!(%bootstrap, "shared broker pool started");
        Ok(bootstrap)
    }

    fn pool_bootstrap(&self) -> String {
        let port = self.pool_port.load(std::sync::atomic::Ordering::Acquire);
        format!("127.0.0.1:{port}")
    }

    /// The broker a cluster's topics live on: the pool's, or its own.
    fn broker_key(cluster: &ClusterSpec) -> &str {
        match cluster.placement {
            Placement::Shared { .. } => POOL_KEY,
            Placement::Dedicated => &cluster.id,
        }
    }

    /// Starts a new broker with an admin user and `users`.
    /// Starts a new broker whose only user is the platform's admin: every client reaches a
    /// local cluster through the Kafka gateway, which authenticates them against the store
    /// and applies their credential's scope (tansu has no ACLs to do it).
    async fn create_broker(&self, key: &str) -> Result<String> {
        let dir = self.root.join(key);
        std::fs::create_dir_all(&dir)
            .map_err(|e| Error::internal(format!("could not create {}", dir.display()), e))?;
        let mut broker = Broker {
            dir: dir.clone(),
            port: free_port()?,
            child: None,
        };
        let started = async {
            broker.start(&self.binary).await?;
            let mut db = tansu::open(&dir).await?;
            tansu::wait_registered(&mut db, START_TIMEOUT).await?;
            tansu::upsert_user(&mut db, ADMIN_USER, &self.admin_password(key)).await?;
            let _ = sqlx::Connection::close(db).await;
            Ok::<_, Error>(())
        }
        .await;
        if let Err(e) = started {
            broker.stop().await;
            let _ = std::fs::remove_dir_all(&dir);
            return Err(e);
        }
        let bootstrap = broker.bootstrap();
        self.brokers
            .lock()
            .await
            .insert(key.to_owned(), Arc::new(Mutex::new(broker)));
        Ok(bootstrap)
    }

    /// Starts an existing broker again, on `bootstrap`'s port when it is still free.
    async fn resume_broker(&self, key: &str, bootstrap: &str) -> Result<String> {
        let dir = self.root.join(key);
        if !dir.join(tansu::DB_FILE).exists() {
            return Err(Error::Broker(format!(
                "no broker data for {key} in {}",
                dir.display()
            )));
        }
        let wanted = bootstrap
            .rsplit(':')
            .next()
            .and_then(|p| p.parse::<u16>().ok());
        let port = match wanted {
            Some(port) if port_is_free(port) => port,
            _ => free_port()?,
        };
        let mut broker = Broker {
            dir,
            port,
            child: None,
        };
        broker.start(&self.binary).await?;
        // Brokers made by earlier versions also held their clients' users: only the gateway
        // (with the admin user) may reach a broker now.
        let mut db = tansu::open(&broker.dir).await?;
        let cleared = tansu::delete_users_except(&mut db, ADMIN_USER).await;
        let _ = sqlx::Connection::close(db).await;
        cleared?;
        let bootstrap = broker.bootstrap();
        self.brokers
            .lock()
            .await
            .insert(key.to_owned(), Arc::new(Mutex::new(broker)));
        Ok(bootstrap)
    }

    /// The bootstrap address of a running broker.
    async fn bootstrap(&self, key: &str) -> Result<String> {
        Ok(self.broker(key).await?.lock().await.bootstrap())
    }

    /// Runs `f` on a running broker's metadata store while holding the broker's lock (so it
    /// is not restarted meanwhile), then closes the store.
    async fn on_store<T>(
        &self,
        key: &str,
        f: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> Result<T>,
    ) -> Result<T> {
        let broker = self.broker(key).await?;
        let broker = broker.lock().await;
        let mut db = tansu::open(&broker.dir).await?;
        let result = f(&mut db).await;
        let _ = sqlx::Connection::close(db).await;
        result
    }

    async fn broker(&self, key: &str) -> Result<Arc<Mutex<Broker>>> {
        self.brokers
            .lock()
            .await
            .get(key)
            .cloned()
            .ok_or_else(|| Error::Broker(format!("the brokers of {key} are not running")))
    }

    /// Runs `change` on the broker's database while the broker is stopped, then starts it again
    /// (also when the change failed, so a failed change never leaves the cluster down).
    async fn while_stopped(&self, key: &str, change: OfflineChange<'_>) -> Result<()> {
        let broker = self.broker(key).await?;
        let mut broker = broker.lock().await;
        broker.stop().await;
        let result = async {
            let mut db = tansu::open(&broker.dir).await?;
            let result = match change {
                OfflineChange::DeleteTopic(name) => tansu::delete_topic(&mut db, name).await,
                OfflineChange::DeletePrefixed(prefix) => {
                    tansu::delete_prefixed(&mut db, prefix).await
                }
                OfflineChange::UpdateTopic(topic, old_partitions) => {
                    if topic.partitions > old_partitions {
                        tansu::grow_partitions(&mut db, &topic.name, topic.partitions).await?;
                    }
                    tansu::set_topic_configs(&mut db, &topic.name, &topic.configs()).await
                }
            };
            let _ = sqlx::Connection::close(db).await;
            result
        }
        .await;
        broker.start(&self.binary).await?;
        result
    }
}

enum OfflineChange<'a> {
    DeleteTopic(&'a str),
    /// Every topic, group and transactional id under a prefix (a shared cluster deleted).
    DeletePrefixed(&'a str),
    UpdateTopic(&'a TopicSpec, i32),
}

/// A topic spec with the name the brokers use.
fn placed(cluster: &ClusterSpec, topic: &TopicSpec) -> TopicSpec {
    TopicSpec {
        name: cluster.physical(&topic.name),
        ..topic.clone()
    }
}

#[async_trait]
impl Provisioner for LocalProvisioner {
    fn pool_for(&self, _multizone: bool) -> String {
        // One local broker holds every replica, whatever the zone mode.
        POOL.to_owned()
    }

    fn engine(&self) -> Engine {
        Engine::Tansu
    }

    async fn start(&self) -> Result<()> {
        self.start_pool().await.map(|_| ())
    }

    async fn gateway_backend(&self, cluster: &ClusterSpec) -> Result<Backend> {
        let key = Self::broker_key(cluster);
        Ok(Backend {
            id: match cluster.placement {
                Placement::Shared { .. } => format!("pool:{POOL}"),
                Placement::Dedicated => format!("cluster:{}", cluster.id),
            },
            bootstrap: self.bootstrap(key).await?,
            username: ADMIN_USER.to_owned(),
            password: self.admin_password(key),
            engine: Engine::Tansu,
        })
    }

    async fn create_cluster(&self, cluster: &ClusterSpec, _users: &[BrokerUser]) -> Result<String> {
        if let Placement::Shared { .. } = cluster.placement {
            // A virtual cluster costs nothing on the brokers: its clients authenticate at the
            // gateway, and its topics are made when asked for.
            return self.start_pool().await;
        }
        let bootstrap = self.create_broker(&cluster.id).await?;
        tracing::info!(cluster = %cluster.id, %bootstrap, "broker started for a new cluster");
        Ok(bootstrap)
    }

    async fn resume_cluster(&self, cluster: &ClusterSpec, bootstrap: &str) -> Result<String> {
        match cluster.placement {
            Placement::Shared { .. } => self.start_pool().await,
            Placement::Dedicated => self.resume_broker(&cluster.id, bootstrap).await,
        }
    }

    async fn inventory(&self) -> Result<Inventory> {
        let entries = std::fs::read_dir(&self.root)
            .map_err(|e| Error::internal(format!("could not list {}", self.root.display()), e))?;
        let dedicated = entries
            .filter_map(|entry| entry.ok())
            .filter(|entry| entry.path().is_dir())
            .map(|entry| entry.file_name().to_string_lossy().into_owned())
            .filter(|name| uuid::Uuid::parse_str(name).is_ok())
            .collect();
        // A pool that is not running holds nothing anyone could be charged for or reach yet;
        // its names are looked at once it runs.
        let prefixes = match self.broker(POOL_KEY).await {
            Ok(_) => self
                .on_store(POOL_KEY, async |db| tansu::prefixes(db).await)
                .await?
                .into_iter()
                .map(|prefix| (POOL.to_owned(), prefix))
                .collect(),
            Err(_) => Vec::new(),
        };
        Ok(Inventory {
            dedicated,
            prefixes,
        })
    }

    async fn delete_cluster(&self, cluster: &ClusterSpec) -> Result<()> {
        if let Placement::Shared { .. } = cluster.placement {
            // Stopping the pool interrupts every tenant for a moment: only when there is
            // something to delete.
            let prefix = cluster.prefix();
            let used = self
                .on_store(POOL_KEY, async |db| tansu::has_prefixed(db, prefix).await)
                .await?;
            if !used {
                return Ok(());
            }
            return self
                .while_stopped(POOL_KEY, OfflineChange::DeletePrefixed(prefix))
                .await;
        }
        let broker = self.brokers.lock().await.remove(&cluster.id);
        if let Some(broker) = broker {
            broker.lock().await.stop().await;
        }
        let dir = self.root.join(&cluster.id);
        if dir.exists() {
            // A broker this process does not run (left by a process killed before) goes too.
            tansu::stop_orphan(&dir).await;
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::internal(format!("could not remove {}", dir.display()), e))?;
        }
        Ok(())
    }

    async fn create_topic(&self, cluster: &ClusterSpec, topic: &TopicSpec) -> Result<()> {
        let key = Self::broker_key(cluster);
        let bootstrap = self.bootstrap(key).await?;
        let config = kafka_admin::client_config(&bootstrap, ADMIN_USER, &self.admin_password(key));
        // One broker holds every replica locally, so the replication factor is 1 whatever the zone mode.
        kafka_admin::create_topic(&config, &placed(cluster, topic), 1).await
    }

    async fn update_topic(
        &self,
        cluster: &ClusterSpec,
        topic: &TopicSpec,
        old_partitions: i32,
    ) -> Result<()> {
        let topic = placed(cluster, topic);
        self.while_stopped(
            Self::broker_key(cluster),
            OfflineChange::UpdateTopic(&topic, old_partitions),
        )
        .await
    }

    async fn delete_topic(&self, cluster: &ClusterSpec, name: &str) -> Result<()> {
        let name = cluster.physical(name);
        self.while_stopped(Self::broker_key(cluster), OfflineChange::DeleteTopic(&name))
            .await
    }

    // Clients of every local cluster, dedicated ones too, authenticate at the Kafka gateway
    // against the store; the brokers know only the platform's admin user.
    async fn put_user(&self, _cluster: &ClusterSpec, _user: &BrokerUser) -> Result<()> {
        Ok(())
    }

    async fn delete_user(&self, _cluster: &ClusterSpec, _username: &str) -> Result<()> {
        Ok(())
    }

    fn client_config(&self, cluster: &ClusterSpec, bootstrap: &str) -> rdkafka::ClientConfig {
        let key = Self::broker_key(cluster);
        let bootstrap = match cluster.placement {
            Placement::Shared { .. } => self.pool_bootstrap(),
            Placement::Dedicated => bootstrap.to_owned(),
        };
        kafka_admin::client_config(&bootstrap, ADMIN_USER, &self.admin_password(key))
    }

    async fn stored_bytes(
        &self,
        cluster: &ClusterSpec,
    ) -> Result<std::collections::BTreeMap<String, i64>> {
        let prefix = cluster.prefix();
        let sizes = self
            .on_store(Self::broker_key(cluster), async |db| {
                tansu::stored_bytes(db).await
            })
            .await?;
        Ok(sizes
            .into_iter()
            .filter_map(|(topic, bytes)| topic.strip_prefix(prefix).map(|t| (t.to_owned(), bytes)))
            .collect())
    }

    async fn supervise(&self) -> usize {
        let brokers: Vec<(String, Arc<Mutex<Broker>>)> = self
            .brokers
            .lock()
            .await
            .iter()
            .map(|(id, b)| (id.clone(), b.clone()))
            .collect();
        let mut restarted = 0;
        for (cluster, broker) in brokers {
            let mut broker = broker.lock().await;
            let exited = match broker.child.as_mut() {
                Some(child) => child
                    .try_wait()
                    .ok()
                    .flatten()
                    .map(|status| status.to_string()),
                // A start that failed earlier: try again.
                None => Some("not running".to_owned()),
            };
            let Some(status) = exited else { continue };
            tracing::warn!(%cluster, %status, "a broker stopped unexpectedly; restarting it");
            broker.child = None;
            match broker.start(&self.binary).await {
                Ok(()) => {
                    restarted += 1;
                    tracing::info!(%cluster, bootstrap = %broker.bootstrap(), "broker restarted");
                }
                Err(error) => {
                    tracing::error!(%cluster, error = %crate::error::cause_chain(&error), "could not restart a broker; retrying")
                }
            }
        }
        restarted
    }

    async fn shutdown(&self) {
        let brokers: Vec<_> = self.brokers.lock().await.drain().collect();
        for (id, broker) in brokers {
            broker.lock().await.stop().await;
            tracing::info!(cluster = %id, "broker stopped");
        }
    }
}

fn free_port() -> Result<u16> {
    std::net::TcpListener::bind(("127.0.0.1", 0))
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .map_err(|e| Error::internal("could not find a free loopback port for a broker", e))
}

fn port_is_free(port: u16) -> bool {
    std::net::TcpListener::bind(("127.0.0.1", port)).is_ok()
}

/// Finds the tansu executable: `explicit` when given, else Capstan's cache
/// (`~/.cache/capstan/tansu-<version>/bin/tansu`, where `capstan dev` and `.ci/run` install
/// it), else `tansu` on the `PATH`.
pub fn find_broker_binary(explicit: Option<&Path>) -> Result<PathBuf> {
    if let Some(path) = explicit {
        return if path.is_file() {
            Ok(path.to_owned())
        } else {
            Err(Error::Invalid(format!(
                "the broker binary {} does not exist",
                path.display()
            )))
        };
    }
    if let Some(cached) = cached_broker_binary().filter(|p| p.is_file()) {
        return Ok(cached);
    }
    let on_path = std::env::var_os("PATH").and_then(|paths| {
        std::env::split_paths(&paths)
            .map(|dir| dir.join("tansu"))
            .find(|p| p.is_file())
    });
    on_path.ok_or_else(|| {
        Error::Invalid(format!(
            "the local broker (tansu {TANSU_VERSION}) is not installed; `capstan dev` installs it, or run: \
             cargo install --root ~/.cache/capstan/tansu-{TANSU_VERSION} tansu --version {TANSU_VERSION} \
             --locked --no-default-features --features libsql"
        ))
    })
}

/// Where Capstan installs tansu: `~/.cache/capstan/tansu-<version>/bin/tansu`.
pub fn cached_broker_binary() -> Option<PathBuf> {
    let home = std::env::var_os("HOME")?;
    Some(PathBuf::from(home).join(format!(".cache/capstan/tansu-{TANSU_VERSION}/bin/tansu")))
}
