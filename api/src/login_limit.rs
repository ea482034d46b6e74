//! Rate limits on the ways in: failed log-ins per account and per client address, and
//! sign-ups per client address, shared by the API and the console, so passwords cannot be
//! guessed at speed and accounts cannot be made by the thousand. Checking and counting an
//! attempt is one step under one lock, so parallel attempts cannot slip past the limit.
//! Kept in memory: each control-plane process limits on its own.

use std::{
    collections::HashMap,
    sync::Mutex,
    time::{Duration, Instant},
};

/// Attempts in a sliding window, per key.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    attempts: Mutex<HashMap<String, Vec<Instant>>>,
}

/// A log-in attempt let through and counted as a failure until [`LoginLimiter::succeeded`]
/// says otherwise.
#[derive(Debug)]
#[must_use = "a successful log-in must be reported with LoginLimiter::succeeded"]
pub struct Attempt {
    account: String,
    address: String,
    at: Instant,
}

impl LoginLimiter {
    /// How far back attempts count.
    pub const WINDOW: Duration = Duration::from_secs(15 * 60);
    /// Failed log-ins allowed per account (e-mail address) in the window.
    pub const PER_ACCOUNT: usize = 5;
    /// Failed log-ins allowed per client address in the window (several people may share one).
    pub const PER_ADDRESS: usize = 20;
    /// Sign-ups allowed per client address in the window.
    pub const SIGN_UPS_PER_ADDRESS: usize = 20;
    /// Keys kept before expired ones are swept out.
    const SWEEP_ABOVE: usize = 10_000;

    fn account_key(email: &str) -> String {
        format!("account:{}", email.trim().to_lowercase())
    }

    /// Counts one attempt under each key when none is at its limit (all or nothing); otherwise
    /// how long until the fullest key has room again.
    fn take(&self, keys: &[(String, usize)], now: Instant) -> Result<(), Duration> {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        if attempts.len() > Self::SWEEP_ABOVE {
            attempts.retain(|_, times| {
                times.retain(|t| now.saturating_duration_since(*t) < Self::WINDOW);
                !times.is_empty()
            });
        }
        let mut wait = None::<Duration>;
        for (key, limit) in keys {
            let times = attempts.entry(key.clone()).or_default();
            times.retain(|t| now.saturating_duration_since(*t) < Self::WINDOW);
            if times.len() >= *limit {
                // The oldest attempt that must expire before the count drops under the limit.
                let oldest = times[times.len() - limit];
                let until = Self::WINDOW.saturating_sub(now.saturating_duration_since(oldest));
                wait = Some(wait.map_or(until, |w| w.max(until)));
            }
        }
        if let Some(wait) = wait {
            return Err(wait);
        }
        for (key, _) in keys {
            attempts.entry(key.clone()).or_default().push(now);
        }
        Ok(())
    }

    /// Lets a log-in to `email` from `address` be checked, counting it as a failure of both
    /// (see [`LoginLimiter::succeeded`]); `Err(wait)` when either has failed too often, with
    /// how long until one more attempt is allowed.
    pub fn begin_log_in(
        &self,
        email: &str,
        address: &str,
        now: Instant,
    ) -> Result<Attempt, Duration> {
        let account = Self::account_key(email);
        let address = format!("address:{address}");
        self.take(
            &[
                (account.clone(), Self::PER_ACCOUNT),
                (address.clone(), Self::PER_ADDRESS),
            ],
            now,
        )?;
        Ok(Attempt {
            account,
            address,
            at: now,
        })
    }

    /// The attempt's password was right: the account's failures are cleared, and the attempt
    /// no longer counts against its address.
    pub fn succeeded(&self, attempt: Attempt) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        attempts.remove(&attempt.account);
        take_back(&mut attempts, &attempt.address, attempt.at);
    }

    /// The attempt could not be checked (the platform failed, not the password): it no longer
    /// counts at all.
    pub fn cancel(&self, attempt: Attempt) {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        for key in [&attempt.account, &attempt.address] {
            take_back(&mut attempts, key, attempt.at);
        }
    }

    /// Lets a sign-up from `address` go ahead and counts it; `Err(wait)` when the address has
    /// signed up too often.
    pub fn begin_sign_up(&self, address: &str, now: Instant) -> Result<(), Duration> {
        self.take(
            &[(format!("sign-up:{address}"), Self::SIGN_UPS_PER_ADDRESS)],
            now,
        )
    }
}

/// Removes the attempt made at `at` from `key`'s count.
fn take_back(attempts: &mut HashMap<String, Vec<Instant>>, key: &str, at: Instant) {
    if let Some(times) = attempts.get_mut(key)
        && let Some(index) = times.iter().rposition(|t| *t == at)
    {
        times.remove(index);
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
            let _failed = limiter
                .begin_log_in("A@example.com", "1.1.1.1", start + Duration::from_secs(i))
                .unwrap();
        }
        let now = start + Duration::from_secs(60);
        let wait = limiter
            .begin_log_in("a@example.com", "2.2.2.2", now)
            .expect_err("the sixth attempt on the account is refused from any address");
        assert_eq!(wait, LoginLimiter::WINDOW - Duration::from_secs(60));
        assert!(
            limiter
                .begin_log_in("b@example.com", "1.1.1.1", now)
                .is_ok()
        );
        let later = start + LoginLimiter::WINDOW + Duration::from_secs(1);
        assert!(
            limiter
                .begin_log_in("a@example.com", "1.1.1.1", later)
                .is_ok()
        );
    }

    #[test]
    fn an_address_is_locked_after_twenty_failures_on_any_accounts() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for i in 0..LoginLimiter::PER_ADDRESS {
            let _failed = limiter
                .begin_log_in(&format!("user{i}@example.com"), "9.9.9.9", now)
                .unwrap();
        }
        assert!(
            limiter
                .begin_log_in("new@example.com", "9.9.9.9", now)
                .is_err()
        );
        assert!(
            limiter
                .begin_log_in("new@example.com", "8.8.8.8", now)
                .is_ok()
        );
    }

    #[test]
    fn success_clears_the_account_and_does_not_count_against_the_address() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for _ in 0..LoginLimiter::PER_ACCOUNT - 1 {
            let _failed = limiter
                .begin_log_in("a@example.com", "1.1.1.1", now)
                .unwrap();
        }
        let right = limiter
            .begin_log_in("a@example.com", "1.1.1.1", now)
            .unwrap();
        limiter.succeeded(right);
        for _ in 0..LoginLimiter::PER_ACCOUNT {
            let _failed = limiter
                .begin_log_in("a@example.com", "1.1.1.1", now)
                .unwrap();
        }
        // 4 + 5 failures from the address; the success was not one of them.
        let address = &limiter.attempts.lock().unwrap()["address:1.1.1.1"];
        assert_eq!(address.len(), 9);
    }

    #[test]
    fn parallel_attempts_never_pass_the_limit() {
        let limiter = std::sync::Arc::new(LoginLimiter::default());
        let now = Instant::now();
        let threads: Vec<_> = (0..30)
            .map(|_| {
                let limiter = limiter.clone();
                std::thread::spawn(move || {
                    limiter
                        .begin_log_in("a@example.com", "1.1.1.1", now)
                        .is_ok()
                })
            })
            .collect();
        let passed = threads
            .into_iter()
            .map(|t| t.join().unwrap())
            .filter(|ok| *ok)
            .count();
        assert_eq!(passed, LoginLimiter::PER_ACCOUNT);
    }

    #[test]
    fn sign_ups_are_limited_per_address() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for _ in 0..LoginLimiter::SIGN_UPS_PER_ADDRESS {
            assert!(limiter.begin_sign_up("1.1.1.1", now).is_ok());
        }
        assert!(limiter.begin_sign_up("1.1.1.1", now).is_err());
        assert!(limiter.begin_sign_up("2.2.2.2", now).is_ok());
    }
}
