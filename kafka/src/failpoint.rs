//! Named steps where a test can make an operation stop dead, as a crash would there: nothing
//! after the step runs, no error handling, no rollback; or hold it there while the test does
//! something else (a recovery pass, say) and then let it go on. The steps are the windows a
//! crash must not corrupt: between a change on the brokers and its record in the store (the
//! control plane's provisioning journal closes those), inside a metering sweep's transaction,
//! between the Stripe steps and inside a month's close. Disarmed (one relaxed atomic load per
//! step) unless a test arms one; a process arms for itself, so tests that arm must run one per
//! process (nextest does). Lives in the lowest crate so every crate can name its steps.

use std::sync::{
    Arc, Mutex, MutexGuard, PoisonError,
    atomic::{AtomicBool, Ordering},
};

use tokio::sync::{Notify, oneshot};

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Vec<(String, Action)>> = Mutex::new(Vec::new());

/// What an armed step does when reached.
enum Action {
    Stop,
    Hold {
        reached: Arc<Notify>,
        release: oneshot::Receiver<()>,
    },
}

fn armed() -> MutexGuard<'static, Vec<(String, Action)>> {
    ARMED.lock().unwrap_or_else(PoisonError::into_inner)
}

fn arm_with(name: &str, action: Action) {
    armed().push((name.to_owned(), action));
    ANY_ARMED.store(true, Ordering::SeqCst);
}

/// Makes the next pass through step `name` stop the operation (once).
pub fn arm(name: &str) {
    arm_with(name, Action::Stop);
}

/// Makes the next pass through step `name` wait there until the returned [`Held`] is released
/// (or dropped).
pub fn hold(name: &str) -> Held {
    let reached = Arc::new(Notify::new());
    let (release, receiver) = oneshot::channel();
    arm_with(
        name,
        Action::Hold {
            reached: reached.clone(),
            release: receiver,
        },
    );
    Held { reached, release }
}

/// An operation held at a step by [`hold`].
#[derive(Debug)]
pub struct Held {
    reached: Arc<Notify>,
    release: oneshot::Sender<()>,
}

impl Held {
    /// Waits until an operation reaches the step.
    pub async fn reached(&self) {
        self.reached.notified().await;
    }

    /// Lets the held operation go on.
    pub fn release(self) {
        let _ = self.release.send(());
    }
}

/// Step `name` of an operation: stops it here (a panic, which the API answers 500 while the
/// process goes on) or holds it, when a test armed it.
pub async fn hit(name: &str) {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return;
    }
    let action = {
        let mut armed = armed();
        match armed.iter().position(|(armed, _)| armed == name) {
            Some(index) => armed.remove(index).1,
            None => return,
        }
    };
    match action {
        // A deliberate stop, standing for a crash at this step (tests only).
        Action::Stop => std::panic::panic_any(format!("failpoint {name}")),
        Action::Hold { reached, release } => {
            // `notify_one` keeps the wake-up for a `reached` that has not started waiting yet.
            reached.notify_one();
            let _ = release.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn an_armed_step_stops_once_and_others_never() {
        hit("nothing.armed").await;
        arm("unit.step");
        hit("another.step").await;
        let stopped = tokio::spawn(hit("unit.step")).await;
        assert!(stopped.is_err_and(|e| e.is_panic()));
        hit("unit.step").await;
    }

    #[tokio::test]
    async fn a_held_step_waits_for_its_release() {
        let held = hold("unit.held");
        let operation = tokio::spawn(async { hit("unit.held").await });
        held.reached().await;
        assert!(!operation.is_finished());
        held.release();
        operation
            .await
            .expect("the operation goes on once released");
        hit("unit.held").await;
    }
}
