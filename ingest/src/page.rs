//! The upload page: a hub coordinator sends a CSV or a workbook with the hub's
//! token, sees what became of each row, and downloads the refused rows with their
//! reasons to fix and send again. Served by ingest itself, on the API's origin.

use axum::response::IntoResponse;
use techmon_service::pages::asset;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const INDEX: &str = include_str!("../assets/upload/index.html");
const SCRIPT: &str = include_str!("../assets/upload/upload.js");
const STYLE: &str = include_str!("../assets/upload/upload.css");

/// `GET /upload`, `GET /assets/upload.js`, `GET /assets/upload.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(script))
        .routes(routes!(style))
}

/// The upload page
#[utoipa::path(get, path = "/upload", tag = "ingest",
    responses((status = 200, description = "The page (the hub's token as `#token=`, or asked for)", body = String, content_type = "text/html")))]
async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// The upload page's script
#[utoipa::path(get, path = "/assets/upload.js", tag = "ingest",
    responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The upload page's style
#[utoipa::path(get, path = "/assets/upload.css", tag = "ingest",
    responses((status = 200, description = "CSS", body = String, content_type = "text/css")))]
async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
