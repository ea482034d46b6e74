//! Requests in progress per tenant (a cluster on the REST gateway, an account on the API), so
//! one tenant's slow or numerous requests cannot take every permit of a listener.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::sync::{OwnedSemaphorePermit, Semaphore};

use crate::{Error, Result};

/// Keys whose permits are all free are forgotten once this many are known.
const FORGET_IDLE_ABOVE: usize = 10_000;

/// At most `limit` requests in progress per key; more are refused at once (429), because
/// queueing them would let one tenant hold the listener's connections instead.
#[derive(Debug)]
pub struct PerTenant {
    limit: usize,
    what: &'static str,
    keys: Mutex<HashMap<String, Arc<Semaphore>>>,
}

/// One request's place among its tenant's; freed when dropped.
#[derive(Debug)]
pub struct Slot(#[allow(dead_code)] OwnedSemaphorePermit);

impl PerTenant {
    /// `limit` requests at once per key; `what` names the key in the refusal ("cluster").
    pub fn new(limit: usize, what: &'static str) -> Self {
        PerTenant {
            limit,
            what,
            keys: Mutex::new(HashMap::new()),
        }
    }

    /// A place for one more request of `key`, or the documented 429 when it has `limit`
    /// already.
    pub fn enter(&self, key: &str) -> Result<Slot> {
        let mut keys = self
            .keys
            .lock()
            .map_err(|_| Error::Overloaded("the request limiter failed; retry".into()))?;
        if keys.len() > FORGET_IDLE_ABOVE {
            let limit = self.limit;
            keys.retain(|_, s| s.available_permits() < limit);
        }
        // The permit is taken under the lock (it never waits), so a key is forgotten only when
        // nobody holds or is about to take one of its permits: two semaphores for one key
        // would let it have twice its limit.
        keys.entry(key.to_owned())
            .or_insert_with(|| Arc::new(Semaphore::new(self.limit)))
            .clone()
            .try_acquire_owned()
            .map(Slot)
            .map_err(|_| Error::RateLimited {
                reason: format!(
                    "this {} already has {} requests in progress (the most one may have at once)",
                    self.what, self.limit
                ),
                retry_after: Duration::from_secs(1),
            })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_tenant_at_its_limit_is_refused_and_others_are_not() {
        let limits = PerTenant::new(2, "cluster");
        let first = limits.enter("a").unwrap();
        let _second = limits.enter("a").unwrap();
        let refused = limits.enter("a").unwrap_err();
        assert!(matches!(refused, Error::RateLimited { .. }), "{refused:?}");
        assert!(refused.to_string().contains("2 requests in progress"));
        let _other = limits
            .enter("b")
            .expect("another tenant has its own places");
        drop(first);
        limits.enter("a").expect("a freed place can be taken again");
    }

    #[test]
    fn forgetting_idle_tenants_keeps_the_places_taken() {
        let limits = PerTenant::new(1, "cluster");
        let held = limits.enter("busy").unwrap();
        for i in 0..=FORGET_IDLE_ABOVE {
            drop(limits.enter(&format!("idle-{i}")).unwrap());
        }
        drop(limits.enter("one more").unwrap());
        assert!(
            limits.keys.lock().unwrap().len() < 10,
            "the idle tenants are forgotten"
        );
        assert!(
            limits.enter("busy").is_err(),
            "a tenant's place taken before the sweep still counts"
        );
        drop(held);
        limits.enter("busy").unwrap();
    }
}
