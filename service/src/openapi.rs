//! The OpenAPI description of what a process serves, made from its handlers'
//! annotations: every route is added with `utoipa_axum::routes!`, so a route and its
//! description cannot part. Served at `GET /v1/openapi.json`.

use std::sync::Arc;

use axum::Extension;
use axum::http::header;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

use crate::api_error::ErrorAnswer;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "techmon HTTP API",
        version = "1",
        description = "Hubs push events (ingest); researchers ask SQL, analysts export datasets, admins import reference data (query). `techmon serve` serves all of it on one address; `techmon ingest` and `techmon query` each describe what they serve.\n\nErrors are `{\"error\": {\"code\", \"message\", \"retryable\"}}` with a stable `code`, for every refusal: a handler's, a body or query string that does not parse (`bad_request`, `invalid_request`, `body_too_large`, `unsupported_media_type`), an unknown route (`not_found`, `method_not_allowed`). A request without a token gets 401 whatever its body. Every answer has an `x-request-id` header (the client's own when it sends one); a 5xx answer's message is generic and carries `request_id`, under which the operators' log has the detail.",
        license(name = "Apache-2.0"),
    ),
    components(schemas(ErrorAnswer)),
    modifiers(&BearerTokens),
)]
struct Description;

struct BearerTokens;

impl utoipa::Modify for BearerTokens {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        openapi
            .components
            .get_or_insert_with(Default::default)
            .add_security_scheme(
                "bearer",
                SecurityScheme::Http(
                    HttpBuilder::new()
                        .scheme(HttpAuthScheme::Bearer)
                        .description(Some(
                            "A hub token (ingest) or a query user's token (researcher, analyst, admin).",
                        ))
                        .build(),
                ),
            );
    }
}

/// The description's JSON, made once per process.
#[derive(Clone)]
struct DescriptionJson(Arc<str>);

/// The OpenAPI description of this service
#[utoipa::path(
    get,
    path = "/v1/openapi.json",
    tag = "service",
    responses((status = 200, description = "The OpenAPI 3.1 description of every route this process serves", body = Object)),
)]
async fn openapi_json(Extension(json): Extension<DescriptionJson>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        json.0.to_string(),
    )
}

/// `router` with `GET /v1/openapi.json`, which describes all of it.
pub(crate) fn described(router: OpenApiRouter) -> axum::Router {
    let (router, description) = OpenApiRouter::with_openapi(Description::openapi())
        .routes(routes!(openapi_json))
        .merge(router)
        .split_for_parts();
    let json = description.to_json().unwrap_or_default();
    router.layer(Extension(DescriptionJson(Arc::from(json))))
}
