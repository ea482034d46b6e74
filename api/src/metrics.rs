//! Prometheus metrics of the control plane.

use std::time::Instant;

use axum::{
    extract::{MatchedPath, Request, State},
    middleware::Next,
    response::Response,
};
use prometheus::{
    HistogramOpts, HistogramVec, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry,
};

use crate::state::AppState;

/// Every metric, registered in one registry.
#[derive(Debug)]
pub struct Metrics {
    /// The registry `/metrics` renders.
    pub registry: Registry,
    /// HTTP requests by route template, method and status.
    pub http_requests: IntCounterVec,
    /// HTTP latency by route template.
    pub http_latency: HistogramVec,
    /// Clusters by state (set at each scrape).
    pub clusters: IntGaugeVec,
    /// Clusters created since start.
    pub clusters_created: IntCounter,
    /// Messages through the REST gateway by cluster and kind (produced, fetched, consumed).
    pub gateway_messages: IntCounterVec,
    /// Passes of the provisioning journal's recovery since start.
    pub journal_passes: IntCounter,
    /// Interrupted changes the last recovery pass could not settle (the brokers were not
    /// reachable): worth an alert when it stays above zero.
    pub journal_unsettled: IntGauge,
    /// Resources (brokers, pool prefixes) that the last sweep found owned by no cluster the
    /// store knows and left in place (see [`crate::orphans`]).
    pub unowned_resources: IntGauge,
    /// 1 for each cluster rate-limited at the last evaluation (at its cap or budget, or past
    /// the free plan's day), by cluster; a cluster's series goes away when the limit lifts.
    pub cluster_rate_limited: IntGaugeVec,
    /// How many clusters were rate-limited at the last evaluation.
    pub rate_limited_clusters: IntGauge,
}

impl Metrics {
    /// Creates and registers the metrics.
    pub fn new() -> Result<Self, prometheus::Error> {
        let registry = Registry::new_custom(Some("capstan".into()), None)?;
        let http_requests = IntCounterVec::new(
            Opts::new(
                "http_requests_total",
                "HTTP requests by route, method and status",
            ),
            &["route", "method", "status"],
        )?;
        let http_latency = HistogramVec::new(
            HistogramOpts::new(
                "http_request_duration_seconds",
                "HTTP request latency by route",
            ),
            &["route"],
        )?;
        let clusters = IntGaugeVec::new(Opts::new("clusters", "Clusters by state"), &["state"])?;
        let clusters_created =
            IntCounter::new("clusters_created_total", "Clusters created since start")?;
        registry.register(Box::new(http_requests.clone()))?;
        registry.register(Box::new(http_latency.clone()))?;
        registry.register(Box::new(clusters.clone()))?;
        let gateway_messages = IntCounterVec::new(
            Opts::new(
                "gateway_messages_total",
                "Messages through the REST gateway by cluster and kind",
            ),
            &["cluster", "kind"],
        )?;
        registry.register(Box::new(clusters_created.clone()))?;
        registry.register(Box::new(gateway_messages.clone()))?;
        let journal_passes = IntCounter::new(
            "provisioning_journal_passes_total",
            "Passes of the provisioning journal's recovery since start",
        )?;
        let journal_unsettled = IntGauge::new(
            "provisioning_journal_unsettled",
            "Interrupted provisioning changes the last recovery pass could not settle",
        )?;
        let unowned_resources = IntGauge::new(
            "unowned_resources",
            "Brokers and pool prefixes of no cluster the store knows, left in place by the last sweep",
        )?;
        registry.register(Box::new(journal_passes.clone()))?;
        registry.register(Box::new(journal_unsettled.clone()))?;
        registry.register(Box::new(unowned_resources.clone()))?;
        let cluster_rate_limited = IntGaugeVec::new(
            Opts::new(
                "cluster_rate_limited",
                "1 while a cluster is rate-limited (its cap or budget, or the free plan's day), by cluster",
            ),
            &["cluster"],
        )?;
        let rate_limited_clusters = IntGauge::new(
            "rate_limited_clusters",
            "Clusters rate-limited at the last evaluation",
        )?;
        registry.register(Box::new(cluster_rate_limited.clone()))?;
        registry.register(Box::new(rate_limited_clusters.clone()))?;
        Ok(Metrics {
            registry,
            http_requests,
            http_latency,
            clusters,
            clusters_created,
            gateway_messages,
            journal_passes,
            journal_unsettled,
            unowned_resources,
            cluster_rate_limited,
            rate_limited_clusters,
        })
    }
}

/// Middleware recording every request by its route template (never the raw path, whose ids
/// would make unbounded label values).
pub async fn track(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map(|p| p.as_str().to_owned())
        .unwrap_or_else(|| "unmatched".to_owned());
    let method = request.method().as_str().to_owned();
    let start = Instant::now();
    let response = next.run(request).await;
    state
        .metrics
        .http_latency
        .with_label_values(&[route.as_str()])
        .observe(start.elapsed().as_secs_f64());
    state
        .metrics
        .http_requests
        .with_label_values(&[route.as_str(), method.as_str(), response.status().as_str()])
        .inc();
    response
}
