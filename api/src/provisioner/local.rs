//! The local provisioner: one tansu broker process per cluster on a loopback port, its data
//! in `<data dir>/brokers/<cluster id>/`.

use std::{
    collections::HashMap,
    path::{Path, PathBuf},
    sync::Arc,
    time::Duration,
};

use async_trait::async_trait;
use tokio::{process::Child, sync::Mutex};

use super::{BrokerUser, ClusterSpec, Provisioner, TopicSpec, tansu};
use crate::{Error, Result, crypto::SecretKey, kafka_admin};

/// The SCRAM user the control plane itself uses for admin calls to each cluster.
const ADMIN_USER: &str = "capstan-admin";
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
        })
    }

    fn admin_password(&self, cluster_id: &str) -> String {
        self.key.keyed_hash("broker-admin", cluster_id.as_bytes())
    }

    /// Runs `f` on a running broker's metadata store while holding the broker's lock (so it
    /// is not restarted meanwhile), then closes the store.
    async fn on_store<T>(
        &self,
        cluster_id: &str,
        f: impl AsyncFnOnce(&mut sqlx::SqliteConnection) -> Result<T>,
    ) -> Result<T> {
        let broker = self.broker(cluster_id).await?;
        let broker = broker.lock().await;
        let mut db = tansu::open(&broker.dir).await?;
        let result = f(&mut db).await;
        let _ = sqlx::Connection::close(db).await;
        result
    }

    async fn broker(&self, cluster_id: &str) -> Result<Arc<Mutex<Broker>>> {
        self.brokers
            .lock()
            .await
            .get(cluster_id)
            .cloned()
            .ok_or_else(|| {
                Error::Broker(format!(
                    "the brokers of cluster {cluster_id} are not running"
                ))
            })
    }

    /// Runs `change` on the broker's database while the broker is stopped, then starts it again
    /// (also when the change failed, so a failed change never leaves the cluster down).
    async fn while_stopped(&self, cluster_id: &str, change: OfflineChange<'_>) -> Result<()> {
        let broker = self.broker(cluster_id).await?;
        let mut broker = broker.lock().await;
        broker.stop().await;
        let result = async {
            let mut db = tansu::open(&broker.dir).await?;
            let result = match change {
                OfflineChange::DeleteTopic(name) => tansu::delete_topic(&mut db, name).await,
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
    UpdateTopic(&'a TopicSpec, i32),
}

#[async_trait]
impl Provisioner for LocalProvisioner {
    async fn create_cluster(&self, cluster: &ClusterSpec, users: &[BrokerUser]) -> Result<String> {
        let dir = self.root.join(&cluster.id);
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
            tansu::upsert_user(&mut db, ADMIN_USER, &self.admin_password(&cluster.id)).await?;
            for user in users {
                tansu::upsert_user(&mut db, &user.username, &user.password).await?;
            }
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
            .insert(cluster.id.clone(), Arc::new(Mutex::new(broker)));
        tracing::info!(cluster = %cluster.id, %bootstrap, "broker started for a new cluster");
        Ok(bootstrap)
    }

    async fn resume_cluster(&self, cluster: &ClusterSpec, bootstrap: &str) -> Result<String> {
        let dir = self.root.join(&cluster.id);
        if !dir.join(tansu::DB_FILE).exists() {
            return Err(Error::Broker(format!(
                "no broker data for cluster {} in {}",
                cluster.id,
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
        let bootstrap = broker.bootstrap();
        self.brokers
            .lock()
            .await
            .insert(cluster.id.clone(), Arc::new(Mutex::new(broker)));
        Ok(bootstrap)
    }

    async fn delete_cluster(&self, cluster: &ClusterSpec) -> Result<()> {
        let broker = self.brokers.lock().await.remove(&cluster.id);
        if let Some(broker) = broker {
            broker.lock().await.stop().await;
        }
        let dir = self.root.join(&cluster.id);
        if dir.exists() {
            std::fs::remove_dir_all(&dir)
                .map_err(|e| Error::internal(format!("could not remove {}", dir.display()), e))?;
        }
        Ok(())
    }

    async fn create_topic(&self, cluster: &ClusterSpec, topic: &TopicSpec) -> Result<()> {
        let broker = self.broker(&cluster.id).await?;
        let bootstrap = broker.lock().await.bootstrap();
        let config = self.client_config(cluster, &bootstrap);
        // One broker holds every replica locally, so the replication factor is 1 whatever the zone mode.
        kafka_admin::create_topic(&config, topic, 1).await
    }

    async fn update_topic(
        &self,
        cluster: &ClusterSpec,
        topic: &TopicSpec,
        old_partitions: i32,
    ) -> Result<()> {
        self.while_stopped(
            &cluster.id,
            OfflineChange::UpdateTopic(topic, old_partitions),
        )
        .await
    }

    async fn delete_topic(&self, cluster: &ClusterSpec, name: &str) -> Result<()> {
        self.while_stopped(&cluster.id, OfflineChange::DeleteTopic(name))
            .await
    }

    async fn put_user(&self, cluster: &ClusterSpec, user: &BrokerUser) -> Result<()> {
        self.on_store(&cluster.id, async |db| {
            tansu::upsert_user(db, &user.username, &user.password).await
        })
        .await
    }

    async fn delete_user(&self, cluster: &ClusterSpec, username: &str) -> Result<()> {
        self.on_store(&cluster.id, async |db| {
            tansu::delete_user(db, username).await
        })
        .await
    }

    fn client_config(&self, cluster: &ClusterSpec, bootstrap: &str) -> rdkafka::ClientConfig {
        kafka_admin::client_config(bootstrap, ADMIN_USER, &self.admin_password(&cluster.id))
    }

    async fn stored_bytes(
        &self,
        cluster: &ClusterSpec,
    ) -> Result<std::collections::BTreeMap<String, i64>> {
        self.on_store(&cluster.id, async |db| tansu::stored_bytes(db).await)
            .await
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
