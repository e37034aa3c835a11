//! The dashboard: plain HTML, CSS and JavaScript compiled into the binary and
//! served by techmon itself (no CDN, nothing fetched at run time). The page asks
//! the query API with the researcher token given on the page or as `#token=`.

use axum::response::IntoResponse;
use techmon_service::pages::asset;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

const INDEX: &str = include_str!("../assets/dashboard/index.html");
const SCRIPT: &str = include_str!("../assets/dashboard/app.js");
const STYLE: &str = include_str!("../assets/dashboard/style.css");

/// `GET /`, `GET /assets/app.js`, `GET /assets/style.css`.
pub fn routes<S: Clone + Send + Sync + 'static>() -> OpenApiRouter<S> {
    OpenApiRouter::new()
        .routes(routes!(page))
        .routes(routes!(script))
        .routes(routes!(style))
}

/// The dashboard
#[utoipa::path(get, path = "/", tag = "dashboard",
    responses((status = 200, description = "The page", body = String, content_type = "text/html")))]
async fn page() -> impl IntoResponse {
    asset("text/html; charset=utf-8", INDEX)
}

/// The dashboard's script
#[utoipa::path(get, path = "/assets/app.js", tag = "dashboard",
    responses((status = 200, description = "JavaScript", body = String, content_type = "text/javascript")))]
async fn script() -> impl IntoResponse {
    asset("text/javascript; charset=utf-8", SCRIPT)
}

/// The dashboard's style
#[utoipa::path(get, path = "/assets/style.css", tag = "dashboard",
    responses((status = 200, description = "CSS", body = String, content_type = "text/css")))]
async fn style() -> impl IntoResponse {
    asset("text/css; charset=utf-8", STYLE)
}
