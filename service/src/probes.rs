//! `GET /healthz` (the process answers), `GET /readyz` (what it needs answers) and
//! `GET /metrics` (Prometheus text), the same for every service.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::IntoResponse;
use futures::future::BoxFuture;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::ApiError;
use crate::api_error::ErrorAnswer;

/// Whether a service can do its work now; `Err` says what does not answer (a 503).
pub type Readiness = Arc<dyn Fn() -> BoxFuture<'static, Result<(), ApiError>> + Send + Sync>;

#[derive(Clone)]
struct Probes {
    ready: Readiness,
    registry: prometheus::Registry,
}

/// The probes of a service: `ready` answers `/readyz`, `registry` is what `/metrics`
/// shows.
pub fn probes(ready: Readiness, registry: prometheus::Registry) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(healthz))
        .routes(routes!(readyz))
        .routes(routes!(metrics))
        .with_state(Probes { ready, registry })
}

/// The process answers
#[utoipa::path(get, path = "/healthz", tag = "service",
    responses((status = 200, description = "`ok`", body = String, content_type = "text/plain")))]
async fn healthz() -> &'static str {
    "ok"
}

/// What the service needs answers (the event log, the lake)
#[utoipa::path(get, path = "/readyz", tag = "service",
    responses(
        (status = 200, description = "`ready`", body = String, content_type = "text/plain"),
        (status = 503, description = "Something the service needs does not answer; `Retry-After` says when to ask again", body = ErrorAnswer),
    ))]
async fn readyz(State(probes): State<Probes>) -> Result<&'static str, ApiError> {
    (probes.ready)().await.map(|()| "ready").inspect_err(|e| {
        tracing::warn!(code = e.code, message = %e.message, "not ready");
    })
}

/// The service's metrics
#[utoipa::path(get, path = "/metrics", tag = "service",
    responses((status = 200, description = "Prometheus text format 0.0.4", body = String, content_type = "text/plain")))]
async fn metrics(State(probes): State<Probes>) -> impl IntoResponse {
    let mut text = Vec::new();
    // Encoding into a Vec does not fail.
    let _ = prometheus::Encoder::encode(
        &prometheus::TextEncoder::new(),
        &probes.registry.gather(),
        &mut text,
    );
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text)
}
