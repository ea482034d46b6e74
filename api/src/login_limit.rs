//! Rate limits on the ways in: failed log-ins per account and per client address, and
//! sign-ups per client address, shared by the API and the console, so passwords cannot be
//! guessed at speed and accounts cannot be made by the thousand; and failed machine
//! credentials (API keys, cluster credentials over HTTP Basic and SASL) per client address.
//! Checking and counting a log-in is one step under one lock, so parallel attempts cannot slip
//! past the limit. Kept in memory: each control-plane process limits on its own.

use std::{
    collections::HashMap,
    sync::{Mutex, RwLock},
    time::{Duration, Instant},
};

use crate::{Error, Result};

/// Attempts in a sliding window, per key.
#[derive(Debug, Default)]
pub struct LoginLimiter {
    attempts: Mutex<HashMap<String, Vec<Instant>>>,
    /// Failed machine credentials per client address: read on every authenticated request, so
    /// kept apart under a lock those readers share.
    credential_failures: RwLock<HashMap<String, Vec<Instant>>>,
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
    /// Sign-up mails per e-mail address in the window (with sign-ups confirmed by mail), so
    /// nobody can fill an inbox through the sign-up form. Counted whether or not the address
    /// has an account, so the limit says nothing about that either.
    pub const SIGN_UP_MAILS_PER_EMAIL: usize = 3;
    /// Password-reset requests and confirmations per client address in the window.
    pub const RESETS_PER_ADDRESS: usize = 10;
    /// Failed machine-credential checks allowed per client address in the window: API keys
    /// (HTTP Basic on the API), cluster credentials (HTTP Basic on the REST gateway and the
    /// schema registry, SASL on the Kafka gateway), counted together. Not limited per
    /// credential: those secrets are 256-bit random, so guessing one is hopeless anyway, and a
    /// per-credential lock would let anyone who knows a username lock its tenant out.
    pub const CREDENTIAL_FAILURES_PER_ADDRESS: usize = 100;
    /// Keys kept before expired ones are swept out.
    const SWEEP_ABOVE: usize = 10_000;

    fn account_key(email: &str) -> String {
        format!("account:{}", email.trim().to_lowercase())
    }

    /// Counts one attempt under each key when none is at its limit (all or nothing); otherwise
    /// how long until the fullest key has room again.
    fn take(&self, keys: &[(String, usize)], now: Instant) -> Result<(), Duration> {
        let mut attempts = self.attempts.lock().unwrap_or_else(|p| p.into_inner());
        sweep(&mut attempts, now);
        let mut wait = None::<Duration>;
        for (key, limit) in keys {
            if let Some(times) = attempts.get_mut(key)
                && let Err(until) = room(times, *limit, now)
            {
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

    /// Whether a machine credential from `address` may be checked now: `Err(wait)` once the
    /// address has failed [`Self::CREDENTIAL_FAILURES_PER_ADDRESS`] times in the window, with how
    /// long until it may try again. Asked on every authenticated request, so it counts
    /// nothing and allocates nothing for an address without failures.
    pub fn may_check_credential(&self, address: &str, now: Instant) -> Result<(), Duration> {
        let failures = self
            .credential_failures
            .read()
            .unwrap_or_else(|p| p.into_inner());
        match failures.get(address) {
            Some(times) => wait_for(times, Self::CREDENTIAL_FAILURES_PER_ADDRESS, now),
            None => Ok(()),
        }
    }

    /// Runs `check` of a machine credential from `address` within the failed checks allowed
    /// per address: past them nothing is checked (429 with the wait), and a credential that
    /// does not match (`Unauthenticated`) counts against the address.
    pub async fn check_credential<T>(
        &self,
        address: &str,
        check: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        self.may_check_credential(address, Instant::now())
            .map_err(|wait| Error::RateLimited {
                reason: "too many failed authentications from this address".into(),
                retry_after: wait,
            })?;
        let outcome = check.await;
        if let Err(Error::Unauthenticated(_)) = &outcome {
            self.credential_failed(address, Instant::now());
        }
        outcome
    }

    /// Counts a machine credential from `address` that did not match. Checked and counted in
    /// two steps (a credential is only known to be wrong once it was checked), so failures
    /// racing in parallel may pass the limit by as many as are in flight at once.
    pub fn credential_failed(&self, address: &str, now: Instant) {
        let mut failures = self
            .credential_failures
            .write()
            .unwrap_or_else(|p| p.into_inner());
        // Failures from ever new addresses would otherwise grow the map without bound.
        sweep(&mut failures, now);
        failures.entry(address.to_owned()).or_default().push(now);
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

    /// Lets a sign-up of `email` from `address` that will be answered by mail go ahead and
    /// counts it against both; `Err(wait)` when either is at its limit.
    pub fn begin_mailed_sign_up(
        &self,
        address: &str,
        email: &str,
        now: Instant,
    ) -> Result<(), Duration> {
        self.take(
            &[
                (format!("sign-up:{address}"), Self::SIGN_UPS_PER_ADDRESS),
                (
                    format!("sign-up-mail:{}", email.trim().to_lowercase()),
                    Self::SIGN_UP_MAILS_PER_EMAIL,
                ),
            ],
            now,
        )
    }

    /// Lets a password-reset request or confirmation from `address` go ahead and counts it;
    /// `Err(wait)` when the address has asked too often.
    pub fn begin_password_reset(&self, address: &str, now: Instant) -> Result<(), Duration> {
        self.take(
            &[(format!("reset:{address}"), Self::RESETS_PER_ADDRESS)],
            now,
        )
    }
}

/// Forgets the keys whose attempts have all left the window, once there are many.
fn sweep(attempts: &mut HashMap<String, Vec<Instant>>, now: Instant) {
    if attempts.len() > LoginLimiter::SWEEP_ABOVE {
        attempts.retain(|_, times| {
            times.retain(|t| now.saturating_duration_since(*t) < LoginLimiter::WINDOW);
            !times.is_empty()
        });
    }
}

/// Drops the attempts that left the window; `Err(wait)` when `limit` remain, with how long
/// until the oldest that must expire for the count to drop under it does.
fn room(times: &mut Vec<Instant>, limit: usize, now: Instant) -> Result<(), Duration> {
    times.retain(|t| now.saturating_duration_since(*t) < LoginLimiter::WINDOW);
    wait_for(times, limit, now)
}

/// `Err(wait)` when `limit` of `times` (oldest first) are still in the window, with how long
/// until the oldest that must expire for the count to drop under it does; the expired ones are
/// left where they are.
fn wait_for(times: &[Instant], limit: usize, now: Instant) -> Result<(), Duration> {
    let recent = times
        .iter()
        .filter(|t| now.saturating_duration_since(**t) < LoginLimiter::WINDOW)
        .count();
    if recent < limit {
        return Ok(());
    }
    let oldest = times[times.len() - limit];
    Err(LoginLimiter::WINDOW.saturating_sub(now.saturating_duration_since(oldest)))
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
    fn an_address_whose_credentials_fail_too_often_is_refused_until_the_window_moves() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        assert!(limiter.may_check_credential("7.7.7.7", start).is_ok());
        for i in 0..LoginLimiter::CREDENTIAL_FAILURES_PER_ADDRESS {
            assert!(limiter.may_check_credential("7.7.7.7", start).is_ok());
            limiter.credential_failed("7.7.7.7", start + Duration::from_millis(i as u64));
        }
        let now = start + Duration::from_secs(10);
        let wait = limiter
            .may_check_credential("7.7.7.7", now)
            .expect_err("the limit is reached");
        assert_eq!(wait, LoginLimiter::WINDOW - Duration::from_secs(10));
        assert!(
            limiter.may_check_credential("7.7.7.8", now).is_ok(),
            "another address is not concerned"
        );
        assert!(
            limiter
                .begin_log_in("a@example.com", "7.7.7.7", now)
                .is_ok(),
            "people's log-ins have their own limits"
        );
        let later = start + LoginLimiter::WINDOW + Duration::from_secs(1);
        assert!(limiter.may_check_credential("7.7.7.7", later).is_ok());
    }

    #[test]
    fn failures_from_ever_new_addresses_do_not_grow_the_counts_without_bound() {
        let limiter = LoginLimiter::default();
        let start = Instant::now();
        for i in 0..=LoginLimiter::SWEEP_ABOVE {
            limiter.credential_failed(&format!("10.0.{}.{}", i / 256, i % 256), start);
        }
        let later = start + LoginLimiter::WINDOW + Duration::from_secs(1);
        limiter.credential_failed("192.0.2.1", later);
        assert_eq!(
            limiter.credential_failures.read().unwrap().len(),
            1,
            "expired addresses are forgotten"
        );
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

    #[test]
    fn mailed_sign_ups_are_limited_per_recipient_from_any_address() {
        let limiter = LoginLimiter::default();
        let now = Instant::now();
        for i in 0..LoginLimiter::SIGN_UP_MAILS_PER_EMAIL {
            let from = format!("10.0.0.{i}");
            assert!(
                limiter
                    .begin_mailed_sign_up(&from, "Ada@Example.com", now)
                    .is_ok()
            );
        }
        let refused = limiter.begin_mailed_sign_up("10.0.1.1", "ada@example.com", now);
        assert!(refused.is_err(), "a fourth mail to one inbox is refused");
        // The limit is the recipient's: another address is still mailed.
        assert!(
            limiter
                .begin_mailed_sign_up("10.0.1.1", "grace@example.com", now)
                .is_ok()
        );
        assert!(
            limiter
                .begin_mailed_sign_up("10.0.0.0", "ada@example.com", now + LoginLimiter::WINDOW)
                .is_ok(),
            "room again once the window moved on"
        );
    }
}
