//! The REST data gateway, wire-compatible with Upstash Kafka's REST API (compat spec §1), so
//! `@upstash/kafka` code runs unchanged. It listens on its own address, authenticates every
//! request with a cluster credential, and talks to the cluster's brokers over the Kafka protocol.

mod auth;
mod clients;
mod consumers;
mod error;
mod fetch;
mod offsets;
mod poll;
mod produce;
pub mod types;
mod usage;

use std::sync::Arc;

use axum::{
    Json, Router,
    body::Bytes,
    extract::{DefaultBodyLimit, FromRequest, Request},
    http::StatusCode,
    middleware::{self, Next},
    response::{IntoResponse, Response},
    routing::{get, post},
};
use tower::Layer;
use tower_http::normalize_path::{NormalizePath, NormalizePathLayer};

pub(crate) use auth::Client;
pub use clients::Clients;
pub use consumers::Instances;
pub use error::{GatewayError, GatewayResult};
pub use usage::{FetchObserver, Usage};

use crate::{Error, Result, credentials::Access, state::AppState, topics::TopicRow};

/// Largest request body the gateway reads.
pub const MAX_BODY_BYTES: usize = 16 * 1024 * 1024;
/// Requests handled at once; more wait for a place. With [`MAX_BODY_BYTES`] this bounds
/// the memory requests can hold (the brokers' own limits bound what a fetch can return).
pub const MAX_CONCURRENT_REQUESTS: usize = 256;
/// Requests one cluster may have in progress at once; more are answered 429 at once, so one
/// tenant's slow or numerous requests never hold every place of [`MAX_CONCURRENT_REQUESTS`].
pub const MAX_REQUESTS_PER_CLUSTER: usize = 32;
/// The longest a request may take, body and long-poll included (`/consume` and `/fetch` wait
/// at most [`poll::MAX_TIMEOUT_MS`] for records); a slower one is answered 408.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(90);

/// What gateway handlers share.
#[derive(Clone, Debug)]
pub struct GatewayState {
    /// The control plane's state (store, key, provisioner, metrics).
    pub app: AppState,
    /// Kafka clients per cluster.
    pub clients: Arc<Clients>,
    /// Live consumer instances.
    pub instances: Arc<Instances>,
    /// Counters.
    pub usage: Usage,
    /// Requests in progress per cluster.
    pub per_cluster: Arc<crate::concurrency::PerTenant>,
}

/// A request body read within [`crate::extract::BODY_TIMEOUT`] and [`MAX_BODY_BYTES`],
/// refused in the REST data API's error shape.
#[derive(Debug)]
pub(crate) struct RawBody(pub Bytes);

impl FromRequest<GatewayState> for RawBody {
    type Rejection = GatewayError;

    async fn from_request(request: Request, state: &GatewayState) -> GatewayResult<Self> {
        Ok(RawBody(
            crate::extract::read_body(request, state, MAX_BODY_BYTES).await?,
        ))
    }
}

/// What a request wants to do with a topic.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Action {
    Produce,
    Consume,
}

impl GatewayState {
    /// Builds the state, counting into the control plane's metrics registry.
    pub fn new(app: AppState, observer: Option<Arc<dyn FetchObserver>>) -> Self {
        let usage = Usage::new(
            app.metrics.gateway_messages.clone(),
            observer,
            app.limiter.clone(),
        );
        GatewayState {
            app,
            clients: Arc::default(),
            instances: Arc::default(),
            usage,
            per_cluster: Arc::new(crate::concurrency::PerTenant::new(
                MAX_REQUESTS_PER_CLUSTER,
                "cluster",
            )),
        }
    }

    /// The topic, if it exists in the caller's cluster and the credential allows `action` on it.
    /// Topics are never created implicitly.
    pub(crate) async fn require_topic(
        &self,
        access: &Access,
        name: &str,
        action: Action,
    ) -> Result<TopicRow> {
        let allowed = match action {
            Action::Produce => access.can_produce(name),
            Action::Consume => access.can_consume(name),
        };
        if !allowed {
            let verb = match action {
                Action::Produce => "produce to",
                Action::Consume => "consume from",
            };
            return Err(Error::Forbidden(format!(
                "this credential may not {verb} topic {name}"
            )));
        }
        if let Some(limiter) = &self.app.limiter
            && let Some(limit) = limiter.limit(&access.cluster_id).await
            && !limit.wait.is_zero()
        {
            return Err(Error::RateLimited {
                reason: limit.reason,
                retry_after: limit.wait,
            });
        }
        crate::topics::find_by_name(&self.app, &access.cluster_id, name).await?.ok_or_else(|| {
            Error::Missing(format!("topic {name} does not exist; create it first (topics are never created implicitly)"))
        })
    }

    /// Checks a partition number against the topic.
    pub(crate) fn require_partition(&self, topic: &TopicRow, partition: i32) -> Result<()> {
        if partition < 0 || i64::from(partition) >= topic.partitions {
            return Err(Error::Invalid(format!(
                "partition {partition} is out of range: topic {} has partitions 0 to {}",
                topic.name,
                topic.partitions - 1
            )));
        }
        Ok(())
    }

    /// Parses a `{topic, partition}` body (one or an array) and checks that the caller may
    /// consume each named partition, which must exist.
    pub(crate) async fn require_consumable_partitions(
        &self,
        access: &Access,
        body: &[u8],
    ) -> Result<Vec<types::TopicPartition>> {
        let wanted = crate::extract::parse_json::<types::OneOrMany<types::TopicPartition>>(body)?
            .map(types::OneOrMany::into_vec)
            .ok_or_else(|| {
                Error::Invalid("the body must be a {topic, partition} or an array of them".into())
            })?;
        self.require_consumable(
            access,
            wanted.iter().map(|tp| (tp.topic.as_str(), tp.partition)),
        )
        .await?;
        Ok(wanted)
    }

    /// Checks that the caller may consume every named partition, which must exist: at most
    /// [`types::MAX_PARTITIONS_PER_REQUEST`] of them, each topic looked up once.
    pub(crate) async fn require_consumable<'a>(
        &self,
        access: &Access,
        wanted: impl ExactSizeIterator<Item = (&'a str, i32)>,
    ) -> Result<()> {
        if wanted.len() > types::MAX_PARTITIONS_PER_REQUEST {
            return Err(Error::Invalid(format!(
                "a request may name at most {} partitions; this one names {}",
                types::MAX_PARTITIONS_PER_REQUEST,
                wanted.len()
            )));
        }
        let mut topics: std::collections::HashMap<&str, TopicRow> = Default::default();
        for (name, partition) in wanted {
            let topic = match topics.entry(name) {
                std::collections::hash_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::hash_map::Entry::Vacant(new) => {
                    new.insert(self.require_topic(access, name, Action::Consume).await?)
                }
            };
            self.require_partition(topic, partition)?;
        }
        Ok(())
    }

    /// Closes every consumer instance and flushes producers (graceful shutdown).
    pub async fn shutdown(&self) {
        self.instances.close_all().await;
        self.clients.close().await;
    }
}

/// The gateway's routes, with trailing slashes accepted (`/fetch/` is `/fetch`).
pub fn service(state: GatewayState) -> NormalizePath<Router> {
    let router = Router::new()
        .route("/produce/{topic}/{message}", get(produce::from_path))
        .route("/produce/{topic}", get(produce::to_topic).post(produce::to_topic))
        .route("/produce", get(produce::with_topics).post(produce::with_topics))
        .route("/webhook", get(produce::webhook).post(produce::webhook))
        .route("/fetch", get(fetch::fetch).post(fetch::fetch))
        .route("/consume/{group}/{instance}/{topic}", get(consumers::consume_topic))
        .route("/consume/{group}/{instance}", get(consumers::consume_body).post(consumers::consume_body))
        .route("/commit/{group}/{instance}", get(consumers::commit).post(consumers::commit))
        .route("/committed/{group}/{instance}", get(consumers::committed).post(consumers::committed))
        .route("/offsets/{timestamp}", get(offsets::offsets).post(offsets::offsets))
        .route("/topics", get(offsets::list))
        .route("/consumers", get(consumers::list))
        .route("/delete-consumer/{group}/{instance}", post(consumers::delete).delete(consumers::delete))
        .nest("/schema-registry", crate::schema_registry::router())
        .route("/healthz", get(|| async { Json(serde_json::json!({ "status": "ok" })) }))
        .fallback(|| async { GatewayError(Error::Missing("no such REST endpoint".into())) })
        .method_not_allowed_fallback(|| async {
            let body = serde_json::json!({ "result": null, "error": "method not allowed on this endpoint", "status": 405 });
            (StatusCode::METHOD_NOT_ALLOWED, Json(body))
        })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(tower::limit::GlobalConcurrencyLimitLayer::new(MAX_CONCURRENT_REQUESTS))
        .layer(middleware::from_fn(deadline))
        .layer(middleware::from_fn_with_state(state.app.clone(), crate::metrics::track))
        .layer(tower_http::trace::TraceLayer::new_for_http())
        .with_state(state);
    NormalizePathLayer::trim_trailing_slash().layer(router)
}

/// Answers 408 for a request that takes longer than [`REQUEST_TIMEOUT`].
async fn deadline(request: Request, next: Next) -> Response {
    match tokio::time::timeout(REQUEST_TIMEOUT, next.run(request)).await {
        Ok(response) => response,
        Err(_) => GatewayError(Error::TimedOut(format!(
            "the request did not complete within {} seconds",
            REQUEST_TIMEOUT.as_secs()
        )))
        .into_response(),
    }
}

/// Serves the gateway on `listener` until `shutdown` completes, with the connection limits of
/// [`crate::listener`].
pub async fn serve(
    listener: tokio::net::TcpListener,
    state: GatewayState,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) {
    let limits = state.app.config.http_limits;
    crate::listener::serve(listener, service(state), limits, shutdown).await;
}
