//! What every answer of every service goes through: a request id, and one JSON
//! envelope for every error, whoever made it (a handler's [`crate::ApiError`], axum's
//! extractors refusing a body or query string, an unknown route).

use axum::body::{Body, to_bytes};
use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::Response;

use crate::api_error::{ErrorAnswer, ErrorDetail};

/// The header that carries a request's id, both ways.
pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// The most of an error answer's body read to put it in the envelope.
const MAX_ERROR_BODY: usize = 64 * 1024;

/// The id a client sent, when it is a plain token of reasonable length, or a new one.
fn request_id(request: &Request) -> String {
    request
        .headers()
        .get(&REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .filter(|id| {
            (1..=64).contains(&id.len())
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
        })
        .map_or_else(|| format!("{:016x}", rand::random::<u64>()), str::to_string)
}

/// The stable code of an error answer that came without one (axum's own answers and
/// its extractors' refusals).
pub(crate) fn code_of(status: StatusCode) -> &'static str {
    match status {
        StatusCode::NOT_FOUND => "not_found",
        StatusCode::METHOD_NOT_ALLOWED => "method_not_allowed",
        StatusCode::PAYLOAD_TOO_LARGE => "body_too_large",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "unsupported_media_type",
        StatusCode::UNPROCESSABLE_ENTITY => "invalid_request",
        StatusCode::UNAUTHORIZED => "unauthorized",
        StatusCode::FORBIDDEN => "forbidden",
        StatusCode::TOO_MANY_REQUESTS => "too_many_requests",
        StatusCode::SERVICE_UNAVAILABLE => "unavailable",
        status if status.is_server_error() => "internal",
        _ => "bad_request",
    }
}

/// Gives every answer a request id (`x-request-id`), puts every error answer in the
/// JSON envelope, and keeps the detail of a 5xx answer for the log: the answer says
/// only what kind of failure it was and the id to quote.
pub async fn envelope(request: Request, next: Next) -> Response {
    let id = request_id(&request);
    let route = format!("{} {}", request.method(), request.uri().path());
    let response = next.run(request).await;
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    let mut response = if status.is_server_error() || (status.is_client_error() && !is_json) {
        let (mut parts, body) = response.into_parts();
        let bytes = to_bytes(body, MAX_ERROR_BODY).await.unwrap_or_default();
        let sent: Option<serde_json::Value> = is_json
            .then(|| serde_json::from_slice(&bytes).ok())
            .flatten();
        let field = |name: &str| {
            sent.as_ref()
                .and_then(|v| v["error"][name].as_str())
                .map(str::to_string)
        };
        let code = field("code").unwrap_or_else(|| code_of(status).to_string());
        let text = String::from_utf8_lossy(&bytes).trim().to_string();
        let message = field("message").unwrap_or(text);
        let message = if status.is_server_error() {
            tracing::error!(request_id = %id, %route, %status, %code, %message, "failed request");
            if status == StatusCode::SERVICE_UNAVAILABLE {
                format!(
                    "the service cannot answer now ({code}): try again later; the operators' log has the detail under request id {id}"
                )
            } else {
                format!(
                    "the service failed to answer ({code}); the operators' log has the detail under request id {id}"
                )
            }
        } else if message.is_empty() {
            match status {
                StatusCode::NOT_FOUND => format!("no route {route}"),
                StatusCode::METHOD_NOT_ALLOWED => format!("{route}: method not allowed"),
                _ => status.canonical_reason().unwrap_or("error").to_string(),
            }
        } else {
            message
        };
        let retryable = sent
            .as_ref()
            .and_then(|v| v["error"]["retryable"].as_bool())
            .unwrap_or(matches!(
                status,
                StatusCode::TOO_MANY_REQUESTS | StatusCode::SERVICE_UNAVAILABLE
            ));
        let body = serde_json::to_string(&ErrorAnswer {
            error: ErrorDetail {
                code: &code,
                message: &message,
                retryable,
                request_id: Some(&id),
            },
        })
        .unwrap_or_default();
        parts.headers.remove(header::CONTENT_LENGTH);
        parts.headers.insert(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        );
        Response::from_parts(parts, Body::from(body))
    } else {
        response
    };
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert(REQUEST_ID, value);
    }
    response
}
