//! Named steps where a test can make an operation stop dead, as a crash would there: nothing
//! after the step runs, no error handling, no rollback. The steps are the windows between a
//! change on the brokers and its record in the store, which the provisioning journal must
//! close (see [`crate::journal`]). Disarmed (one relaxed atomic load per step) unless a test
//! arms one; a process arms for itself, so tests that arm must run one per process (nextest
//! does).

use std::sync::{
    Mutex,
    atomic::{AtomicBool, Ordering},
};

static ANY_ARMED: AtomicBool = AtomicBool::new(false);
static ARMED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// Makes the next pass through step `name` stop the operation (once).
pub fn arm(name: &str) {
    ARMED
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(name.to_owned());
    ANY_ARMED.store(true, Ordering::SeqCst);
}

/// Step `name` of an operation: stops it here (a panic, which the API answers 500 while the
/// process goes on) when a test armed it.
pub fn hit(name: &str) {
    if !ANY_ARMED.load(Ordering::Relaxed) {
        return;
    }
    let mut armed = ARMED.lock().unwrap_or_else(|p| p.into_inner());
    if let Some(index) = armed.iter().position(|a| a == name) {
        armed.remove(index);
        drop(armed);
        // A deliberate stop, standing for a crash at this step (tests only).
        std::panic::panic_any(format!("failpoint {name}"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_armed_step_stops_once_and_others_never() {
        hit("nothing.armed");
        arm("unit.step");
        hit("another.step");
        let stopped = std::panic::catch_unwind(|| hit("unit.step"));
        assert!(stopped.is_err());
        hit("unit.step");
    }
}
