//! `GET /healthz` (the process answers), `GET /readyz` (what it needs answers) and
//! `GET /metrics` (Prometheus text), the same for every service.

use std::sync::Arc;

use axum::Router;
use axum::http::header;
use axum::routing::get;
use futures::future::BoxFuture;

use crate::ApiError;

/// Whether a service can do its work now; `Err` says what does not answer (a 503).
pub type Readiness = Arc<dyn Fn() -> BoxFuture<'static, Result<(), ApiError>> + Send + Sync>;

/// The probes of a service: `ready` answers `/readyz`, `registry` is what `/metrics`
/// shows.
pub fn probes(ready: Readiness, registry: prometheus::Registry) -> Router {
    Router::new()
        .route("/healthz", get(|| async { "ok" }))
        .route(
            "/readyz",
            get(move || {
                let ready = Arc::clone(&ready);
                async move {
                    ready().await.map(|()| "ready").inspect_err(|e| {
                        tracing::warn!(code = e.code, message = %e.message, "not ready");
                    })
                }
            }),
        )
        .route(
            "/metrics",
            get(move || {
                let mut text = Vec::new();
                // Encoding into a Vec does not fail.
                let _ = prometheus::Encoder::encode(
                    &prometheus::TextEncoder::new(),
                    &registry.gather(),
                    &mut text,
                );
                async move { ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], text) }
            }),
        )
}
