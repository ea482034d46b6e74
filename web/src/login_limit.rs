//! Rate limits on failed log-ins, per account and per client address, so passwords cannot be
//! guessed at speed. Kept in memory: each console process limits on its own.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Failed log-ins in a sliding window, per key.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Vec<Instant>>>,
}

impl LoginLimiter {
    /// How far back failures count.
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// Failures allowed per account (e-mail address) in the window.
    pub const PER_ACCOUNT: usize = 5;
    /// Failures allowed per client address in the window (several people may share one).
    pub const PER_ADDRESS: usize = 20;
    /// Keys kept before expired ones are swept out.
    const SWEEP_ABOVE: usize = 10_000;

    fn keys(email: &str, address: &str) -> [(String, usize); 2] {
        [
            (
                format!("account:{}", email.trim().to_lowercase()),
                Self::PER_ACCOUNT,
            ),
            (format!("address:{address}"), Self::PER_ADDRESS),
        ]
    }

    /// `Err(wait)` when this account or address has failed too often; `wait` is how long until
    /// one more attempt is allowed.
    pub fn check(&self, email: &str, address: &str, now: Instant) -> Result<(), Duration> {
        let failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let mut wait = None::<Duration>;
        for (key, limit) in Self::keys(email, address) {
            let recent: Vec<&Instant> = failures
                .get(&key)
                .into_iter()
                .flatten()
                .filter(|t| now.duration_since(**t) < Self::WINDOW)
                .collect();
            if recent.len() >= limit {
                // The oldest failure that must expire before the count drops under the limit.
                let oldest = recent[recent.len() - limit];
                let until = Self::WINDOW.saturating_sub(now.duration_since(*oldest));
                wait = Some(wait.map_or(until, |w| w.max(until)));
            }
        }
        wait.map_or(Ok(()), Err)
    }

    /// Counts a failed attempt against the account and the address.
    pub fn record_failure(&self, email: &str, address: &str, now: Instant) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        if failures.len() > Self::SWEEP_ABOVE {
            failures.retain(|_, times| {
                times.retain(|t| now.duration_since(*t) < Self::WINDOW);
                !times.is_empty()
            });
        }
        for (key, limit) in Self::keys(email, address) {
            let times = failures.entry(key).or_default();
            times.retain(|t| now.duration_since(*t) < Self::WINDOW);
            times.push(now);
            // Only the last `limit` failures can matter.
            if times.len() > limit {
                let excess = times.len() - limit;
                times.drain(..excess);
            }
        }
    }

    /// A successful log-in clears the account's failures (not the address's).
    pub fn record_success(&self, email: &str) {
        let mut failures = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        failures.remove(&format!("account:{}", email.trim().to_lowercase()));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_account_is_locked_after_five_failures_until_the_oldest_expires() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for i in 0..5 {
            assert!(limiter.check("A@example.com", "1.1.1.1", start).is_ok());
            limiter.record_failure("a@example.com", "1.1.1.1", start + Duration::from_secs(i));
        }
        let now = start + Duration::from_secs(60);
        let wait = limiter
            .check("a@example.com", "2.2.2.2", now)
            .expect_err("the sixth attempt on the account is refused from any address");
        assert_eq!(wait, LoginLimiter::WINDOW - Duration::from_secs(60));
        assert!(limiter.check("b@example.com", "1.1.1.1", now).is_ok());
        let later = start + LoginLimiter::WINDOW + Duration::from_secs(1);
        assert!(limiter.check("a@example.com", "1.1.1.1", later).is_ok());
    }

    #[test]
    fn an_address_is_locked_after_twenty_failures_on_any_accounts() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for i in 0..LoginLimiter::PER_ADDRESS {
            limiter.record_failure(&format!("user{i}@example.com"), "9.9.9.9", now);
        }
        assert!(limiter.check("new@example.com", "9.9.9.9", now).is_err());
        assert!(limiter.check("new@example.com", "8.8.8.8", now).is_ok());
    }

    #[test]
    fn success_clears_the_account_but_not_the_address() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for _ in 0..LoginLimiter::PER_ACCOUNT {
            limiter.record_failure("a@example.com", "1.1.1.1", now);
        }
        limiter.record_success("a@example.com");
        assert!(limiter.check("a@example.com", "1.1.1.1", now).is_ok());
    }
}
