use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;

/// An HTTP error answer: a stable machine-readable `code`, a message for people,
/// and whether sending the same request again later may succeed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    /// Seconds, for 503 answers.
    pub retry_after: Option<u64>,
}

/// The body of every error answer.
#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorAnswer<'a> {
    pub error: ErrorDetail<'a>,
}

#[derive(Serialize, utoipa::ToSchema)]
pub struct ErrorDetail<'a> {
    /// Stable and machine-readable: `unauthorized`, `forbidden`, `bad_request`,
    /// `invalid_request`, `body_too_large`, `not_found`, `lake_unavailable`, …
    pub code: &'a str,
    /// For people; a 5xx answer's names the request id and no server detail.
    pub message: &'a str,
    /// Whether the same request may succeed later (429, 503).
    pub retryable: bool,
    /// A 5xx answer's request id, under which the operators' log has the detail.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub request_id: Option<&'a str>,
}

impl ApiError {
    pub fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    pub fn unauthorized() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "send your token as `Authorization: Bearer <token>`",
        )
    }

    /// A 503 with `Retry-After`: something the service needs does not answer now.
    pub fn unavailable(retry_after: u64, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            retry_after: Some(retry_after),
            ..Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorAnswer {
            error: ErrorDetail {
                code: self.code,
                message: &self.message,
                retryable: self.retry_after.is_some()
                    || self.status == StatusCode::TOO_MANY_REQUESTS,
                request_id: None,
            },
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        if self.status == StatusCode::UNAUTHORIZED {
            response
                .headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        response
    }
}

/// An extractor's refusal, for handlers that take it as a `Result` so that they check
/// the token first: a request without a token gets 401 whatever its body.
macro_rules! from_rejection {
    ($($rejection:ty),*) => {$(
        impl From<$rejection> for ApiError {
            fn from(rejection: $rejection) -> Self {
                let status = rejection.status();
                Self::new(status, crate::shell::code_of(status), rejection.body_text())
            }
        }
    )*};
}

from_rejection!(
    axum::extract::rejection::JsonRejection,
    axum::extract::rejection::QueryRejection,
    axum::extract::rejection::BytesRejection,
    axum::extract::rejection::StringRejection
);
