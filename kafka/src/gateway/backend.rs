//! The gateway's side of a backend: a bounded pool of authenticated broker connections, lent
//! to one client connection at a time (so that client's requests keep their order), kept open
//! for the next client when they come back clean, and what the gateway knows of its topics.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use super::{catalog::Catalog, metrics::Metrics, policy::Backend, upstream::Upstream};
use crate::{Error, Result};

/// Idle connections kept per broker for the next client.
const MAX_IDLE_PER_BROKER: usize = 32;
/// How long answers to a departed client are awaited before its connection is closed.
const SETTLE_TIMEOUT: Duration = Duration::from_secs(300);
/// How long a new connection is retried while the broker does not answer (a broker restart
/// takes well under this), and the pause between tries.
const REOPEN_FOR: Duration = Duration::from_secs(3);
const REOPEN_PAUSE: Duration = Duration::from_millis(100);

/// Which broker a client connection talks to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Target {
    /// Any broker (the bootstrap address).
    Any,
    /// The broker with this node id.
    Node(i32),
}

/// A backend as the gateway uses it.
#[derive(Debug)]
pub struct BackendPool {
    /// Where it is and how to log in.
    pub spec: Backend,
    /// What is known of its topics and brokers.
    pub catalog: Catalog,
    idle: Mutex<HashMap<String, Vec<Upstream>>>,
    permits: Arc<Semaphore>,
    metrics: Metrics,
}

impl BackendPool {
    /// A pool of at most `max_connections` broker connections.
    pub fn new(spec: Backend, max_connections: usize, metrics: Metrics) -> Self {
        BackendPool {
            spec,
            catalog: Catalog::default(),
            idle: Mutex::new(HashMap::new()),
            permits: Arc::new(Semaphore::new(max_connections)),
            metrics,
        }
    }

    /// A connection to `target`, waiting up to `wait` for one to be free.
    pub async fn lease(self: &Arc<Self>, target: Target, wait: Duration) -> Result<Lease> {
        let permit = tokio::time::timeout(wait, self.permits.clone().acquire_owned())
            .await
            .map_err(|_| {
                Error::Unreachable(format!(
                    "every connection to {} is in use; try again",
                    self.spec.id
                ))
            })?
            .map_err(|_| Error::Unreachable("the gateway is shutting down".into()))?;
        let address = match target {
            Target::Any => self.spec.bootstrap.clone(),
            Target::Node(node) => {
                self.catalog
                    .broker(&self.spec, node)
                    .await?
                    .ok_or_else(|| {
                        Error::Unreachable(format!("{} has no broker {node}", self.spec.id))
                    })?
            }
        };
        let reused = self.take_idle(&address);
        let upstream = match reused {
            Some(upstream) => upstream,
            None => {
                let opened = self.open(&address).await?;
                self.metrics.backend_connections.inc();
                opened
            }
        };
        Ok(Lease {
            upstream: Some(upstream),
            pool: self.clone(),
            permit: Some(permit),
        })
    }

    /// A new connection to `address`, retried for a moment: a broker that is restarting (the
    /// local engine restarts for some topic changes) answers again within it, and the client
    /// waits a little instead of losing its connection.
    async fn open(&self, address: &str) -> Result<Upstream> {
        let deadline = tokio::time::Instant::now() + REOPEN_FOR;
        loop {
            match Upstream::open(address, &self.spec.username, &self.spec.password).await {
                Ok(upstream) => return Ok(upstream),
                Err(error) => {
                    // The broker may have restarted with other topics: learn them again.
                    self.catalog.forget_topics();
                    if tokio::time::Instant::now() + REOPEN_PAUSE > deadline {
                        return Err(error);
                    }
                    tokio::time::sleep(REOPEN_PAUSE).await;
                }
            }
        }
    }

    fn take_idle(&self, address: &str) -> Option<Upstream> {
        let mut idle = self.idle.lock().ok()?;
        let list = idle.get_mut(address)?;
        while let Some(upstream) = list.pop() {
            if upstream.is_idle() {
                return Some(upstream);
            }
            self.metrics.backend_connections.dec();
        }
        None
    }

    /// Takes a connection back; `permit` (its place in the bound) is held until it is settled.
    fn give_back(self: &Arc<Self>, upstream: Upstream, permit: Option<OwnedSemaphorePermit>) {
        if upstream.is_dead() {
            // The broker may have restarted with other topics: learn them again.
            self.catalog.forget_topics();
            self.metrics.backend_connections.dec();
            return;
        }
        if !upstream.is_idle() {
            // The client left mid-request. Closing now would abandon requests the broker is
            // working on (tansu 0.6 loses its storage task when a requester vanishes), so the
            // answers are awaited first.
            let pool = self.clone();
            tokio::spawn(async move {
                let _place = permit;
                let settled = tokio::time::timeout(SETTLE_TIMEOUT, upstream.settle()).await;
                if settled.is_ok() && upstream.is_idle() {
                    pool.give_back(upstream, None);
                } else {
                    pool.metrics.backend_connections.dec();
                }
            });
            return;
        }
        if let Ok(mut idle) = self.idle.lock() {
            let list = idle.entry(upstream.address.clone()).or_default();
            if list.len() < MAX_IDLE_PER_BROKER {
                list.push(upstream);
                return;
            }
        }
        self.metrics.backend_connections.dec();
    }
}

/// A connection lent to one client connection; it goes back to the pool when dropped.
#[derive(Debug)]
pub struct Lease {
    upstream: Option<Upstream>,
    pool: Arc<BackendPool>,
    permit: Option<OwnedSemaphorePermit>,
}

impl Lease {
    /// The connection.
    pub fn upstream(&mut self) -> Result<&mut Upstream> {
        self.upstream
            .as_mut()
            .ok_or_else(|| Error::Unreachable("the backend connection was returned".into()))
    }

    /// The pool it came from.
    pub fn pool(&self) -> &Arc<BackendPool> {
        &self.pool
    }
}

impl Drop for Lease {
    fn drop(&mut self) {
        if let Some(upstream) = self.upstream.take() {
            self.pool.give_back(upstream, self.permit.take());
        }
    }
}
