//! Operations endpoints: health, readiness, metrics, the OpenAPI document.

use axum::{
    Json,
    extract::State,
    http::{HeaderMap, StatusCode, header},
    response::IntoResponse,
};
use prometheus::{Encoder, TextEncoder};
use serde_json::{Value, json};

use crate::{Error, Result, extract::ClientAddress, state::AppState};

pub(super) async fn healthz() -> Json<Value> {
    Json(json!({ "status": "ok" }))
}

pub(super) async fn readyz(State(state): State<AppState>) -> (StatusCode, Json<Value>) {
    match state.store.ping().await {
        Ok(()) => (StatusCode::OK, Json(json!({ "status": "ready" }))),
        Err(e) => {
            tracing::warn!(error = %crate::error::cause_chain(&e), "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({ "status": "unavailable", "error": "database unreachable" })),
            )
        }
    }
}

/// Who may read `/metrics` (it lists cluster ids): the holder of `--metrics-token`, or,
/// without one, a client on the same host.
fn may_read_metrics(
    token: Option<&crate::state::MetricsToken>,
    headers: &HeaderMap,
    address: &str,
) -> Result<()> {
    match token {
        Some(token) => {
            let given = headers
                .get(header::AUTHORIZATION)
                .and_then(|value| value.to_str().ok())
                .and_then(|value| value.strip_prefix("Bearer "))
                .unwrap_or_default();
            if token.matches(given.trim()) {
                Ok(())
            } else {
                Err(Error::Unauthenticated(
                    "/metrics needs Authorization: Bearer <the --metrics-token>".into(),
                ))
            }
        }
        None if address
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback()) =>
        {
            Ok(())
        }
        None => Err(Error::Forbidden(
            "/metrics answers only clients on this host; set --metrics-token to let Prometheus scrape it from elsewhere"
                .into(),
        )),
    }
}

pub(super) async fn metrics(
    State(state): State<AppState>,
    ClientAddress(address): ClientAddress,
    headers: HeaderMap,
) -> Result<impl IntoResponse> {
    may_read_metrics(state.config.metrics_token.as_ref(), &headers, &address)?;
    let counts: Vec<(String, i64)> =
        sqlx::query_as("SELECT state, COUNT(*) FROM clusters GROUP BY state")
            .fetch_all(state.store.pool())
            .await?;
    state.metrics.clusters.reset();
    for (cluster_state, count) in counts {
        state
            .metrics
            .clusters
            .with_label_values(&[cluster_state.as_str()])
            .set(count);
    }
    let mut buffer = Vec::new();
    TextEncoder::new()
        .encode(&state.metrics.registry.gather(), &mut buffer)
        .map_err(|e| Error::internal("could not encode metrics", e))?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        buffer,
    ))
}

pub(super) async fn openapi(State(state): State<AppState>) -> Json<Value> {
    Json(crate::openapi::document(&state.config.regions))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::state::MetricsToken;

    fn bearer(token: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(
            header::AUTHORIZATION,
            format!("Bearer {token}").parse().unwrap(),
        );
        headers
    }

    #[test]
    fn metrics_answer_the_host_or_the_token_holder_only() {
        let none = HeaderMap::new();
        assert!(may_read_metrics(None, &none, "127.0.0.1").is_ok());
        assert!(may_read_metrics(None, &none, "::1").is_ok());
        let refused = may_read_metrics(None, &none, "10.1.2.3").unwrap_err();
        assert_eq!(refused.status(), StatusCode::FORBIDDEN);
        let token = MetricsToken::new("a-scraping-token-of-24ch").unwrap();
        assert!(
            may_read_metrics(
                Some(&token),
                &bearer("a-scraping-token-of-24ch"),
                "10.1.2.3"
            )
            .is_ok()
        );
        for (headers, address) in [
            (none.clone(), "127.0.0.1"),
            (bearer("wrong-token-wrong-token"), "10.1.2.3"),
        ] {
            let refused = may_read_metrics(Some(&token), &headers, address).unwrap_err();
            assert_eq!(refused.status(), StatusCode::UNAUTHORIZED);
        }
        assert!(MetricsToken::new("short").is_err());
        assert_eq!(format!("{token:?}"), "MetricsToken(<redacted>)");
    }
}
