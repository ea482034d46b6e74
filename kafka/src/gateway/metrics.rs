//! The gateway's Prometheus metrics.

use prometheus::{IntCounterVec, IntGauge, Opts, Registry};

/// Counters and gauges of the Kafka gateway.
#[derive(Clone, Debug)]
pub struct Metrics {
    /// Client connections open now.
    pub connections: IntGauge,
    /// Client connections accepted or refused, by `outcome`.
    pub connections_total: IntCounterVec,
    /// SASL authentications by `mechanism` and `result`.
    pub authentications: IntCounterVec,
    /// Requests by `api`.
    pub requests: IntCounterVec,
    /// Connections closed for bad input, by `reason` (frame too large, malformed, unknown API
    /// key, request before authentication, …).
    pub rejected: IntCounterVec,
    /// Connections to backend brokers open now.
    pub backend_connections: IntGauge,
}

impl Metrics {
    /// Creates the metrics and registers them in `registry`.
    pub fn register(registry: &Registry) -> prometheus::Result<Self> {
        let metrics = Metrics {
            connections: IntGauge::new(
                "kafka_gateway_connections",
                "Kafka client connections open now",
            )?,
            connections_total: IntCounterVec::new(
                Opts::new(
                    "kafka_gateway_connections_total",
                    "Kafka client connections by outcome",
                ),
                &["outcome"],
            )?,
            authentications: IntCounterVec::new(
                Opts::new(
                    "kafka_gateway_authentications_total",
                    "SASL authentications by mechanism and result",
                ),
                &["mechanism", "result"],
            )?,
            requests: IntCounterVec::new(
                Opts::new("kafka_gateway_requests_total", "Kafka requests by API"),
                &["api"],
            )?,
            rejected: IntCounterVec::new(
                Opts::new(
                    "kafka_gateway_rejected_total",
                    "Connections closed or requests refused for bad input, by reason",
                ),
                &["reason"],
            )?,
            backend_connections: IntGauge::new(
                "kafka_gateway_backend_connections",
                "Connections from the gateway to backend brokers open now",
            )?,
        };
        registry.register(Box::new(metrics.connections.clone()))?;
        registry.register(Box::new(metrics.connections_total.clone()))?;
        registry.register(Box::new(metrics.authentications.clone()))?;
        registry.register(Box::new(metrics.requests.clone()))?;
        registry.register(Box::new(metrics.rejected.clone()))?;
        registry.register(Box::new(metrics.backend_connections.clone()))?;
        Ok(metrics)
    }
}
