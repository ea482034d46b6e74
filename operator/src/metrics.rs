//! Prometheus metrics of the operator.

use std::time::Instant;

use prometheus::{Histogram, HistogramOpts, IntCounter, IntCounterVec, Opts, Registry};

/// The operator's metrics.
#[derive(Debug)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// Reconciles started.
    pub reconciles: IntCounter,
    /// Failed reconciles by reason.
    pub errors: IntCounterVec,
    /// Reconcile duration.
    pub duration: Histogram,
    /// Reconciles whose next broker restart Kafka could not spare (or could not be asked).
    pub rolls_held: IntCounter,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("capstan_operator".into()), None)?;
        let reconciles = IntCounter::new("reconciles_total", "Reconciles started")?;
        let errors = IntCounterVec::new(
            Opts::new("reconcile_errors_total", "Failed reconciles by reason"),
            &["reason"],
        )?;
        let duration = Histogram::with_opts(HistogramOpts::new(
            "reconcile_duration_seconds",
            "Reconcile duration",
        ))?;
        registry.register(Box::new(reconciles.clone()))?;
        registry.register(Box::new(errors.clone()))?;
        let rolls_held = IntCounter::new(
            "rolls_held_total",
            "Broker restarts held because Kafka could not spare the broker or could not be asked",
        )?;
        registry.register(Box::new(duration.clone()))?;
        registry.register(Box::new(rolls_held.clone()))?;
        Ok(Metrics {
            registry,
            reconciles,
            errors,
            duration,
            rolls_held,
        })
    }

    /// A timer that records the duration when dropped, so early returns are measured too.
    pub fn reconcile_timer(&self) -> Timer<'_> {
        Timer {
            started: Instant::now(),
            histogram: &self.duration,
        }
    }
}

/// Records into its histogram on drop.
#[derive(Debug)]
pub struct Timer<'a> {
    started: Instant,
    histogram: &'a Histogram,
}

impl Drop for Timer<'_> {
    fn drop(&mut self) {
        self.histogram.observe(self.started.elapsed().as_secs_f64());
    }
}
