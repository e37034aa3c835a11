//! techmon's service shell, shared by ingest, the transform and the query service:
//! the one HTTP error answer ([`ApiError`]), bearer tokens ([`TokenMap`]), the audit
//! trail ([`audit`]), the probes ([`probes`]), and binding and serving an address.

mod access;
mod api_error;
pub mod audit;
mod auth;
mod fault;
mod openapi;
pub mod pages;
mod probes;
mod shell;

use std::net::SocketAddr;
use std::path::PathBuf;

pub use access::{Access, Asked, Role, User};
pub use api_error::{ApiError, ErrorAnswer};
pub use auth::{HubCredential, HubTokens, IssuedTokens, TokenMap, bearer, new_token, token_sha256};
pub use fault::{Backoff, Fault};
pub use probes::{Readiness, probes};
pub use shell::REQUEST_ID;
pub use utoipa_axum::router::OpenApiRouter;

#[derive(Debug, thiserror::Error)]
pub enum ServiceError {
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("HTTP server failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error(
        "hub {hub_id}: token_sha256 must be 64 hexadecimal characters (the SHA-256 of the token)"
    )]
    BadTokenHash { hub_id: String },
    #[error(
        "query user {user}: token_sha256 must be 64 hexadecimal characters (the SHA-256 of the token)"
    )]
    BadUserTokenHash { user: String },
    #[error("hub {hub_id} is configured twice")]
    DuplicateHub { hub_id: String },
    /// Answered to users: the path is for the log only.
    #[error("the audit trail: {source}")]
    Audit {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Binds a service's address.
pub async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener, ServiceError> {
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ServiceError::Bind { addr, source })?;
    tracing::info!(%addr, "listening");
    Ok(listener)
}

/// Serves `router` on `listener` until `shutdown` completes, with `GET
/// /v1/openapi.json` describing it. Every answer gets a request id, and every error
/// answer, an unknown route's too, the JSON envelope.
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: OpenApiRouter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    axum::serve(
        listener,
        openapi::described(router).layer(axum::middleware::from_fn(shell::envelope)),
    )
    .with_graceful_shutdown(shutdown)
    .await
    .map_err(ServiceError::Serve)
}
