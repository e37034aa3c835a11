//! Every error answer of `techmon serve` (ingest and query on one address) is the one
//! JSON envelope with `code`, `message` and `retryable`, whoever refused the request:
//! a handler, axum's extractors, or the router. A request without a token gets 401
//! whatever its body. A 5xx answer names a request id and no server detail.

mod common;

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

struct Refusal {
    what: &'static str,
    method: Method,
    path: &'static str,
    token: Option<&'static str>,
    content_type: Option<&'static str>,
    body: Vec<u8>,
    status: StatusCode,
    code: &'static str,
}

fn refusal(
    what: &'static str,
    method: Method,
    path: &'static str,
    token: Option<&'static str>,
    body: &[u8],
    (status, code): (StatusCode, &'static str),
) -> Refusal {
    Refusal {
        what,
        method,
        path,
        token,
        content_type: None,
        body: body.to_vec(),
        status,
        code,
    }
}

/// The envelope of an error answer, checked whole; its request id.
async fn envelope(answer: reqwest::Response, what: &str) -> (Value, String) {
    let id = answer
        .headers()
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_else(|| panic!("{what}: no x-request-id"))
        .to_string();
    let content_type = answer
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{what}: {content_type}"
    );
    let body: Value = answer
        .json()
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"));
    let error = &body["error"];
    assert!(error["code"].is_string(), "{what}: {body}");
    assert!(
        error["message"].as_str().is_some_and(|m| !m.is_empty()),
        "{what}: {body}"
    );
    assert!(error["retryable"].is_boolean(), "{what}: {body}");
    (body, id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_is_the_json_envelope() {
    let (dir, _service, url) =
        common::serve_ready(&[("TECHMON__INGEST__MAX_BODY_BYTES", "4096")]).await;
    let hub = Some("dev-token-tec-deventer");
    let (researcher, analyst, admin) = (
        Some("dev-token-researcher"),
        Some("dev-token-analyst"),
        Some("dev-token-admin"),
    );
    let too_large = vec![b' '; 8192];
    let unauthorized = (StatusCode::UNAUTHORIZED, "unauthorized");
    let refusals = [
        // Ingest.
        refusal(
            "push without a token",
            Method::POST,
            "/v1/events",
            None,
            b"{not json",
            unauthorized,
        ),
        refusal(
            "feed of an unknown kind without a token",
            Method::POST,
            "/v1/feeds/no_such_kind",
            None,
            b"",
            unauthorized,
        ),
        refusal(
            "push over the body limit",
            Method::POST,
            "/v1/events",
            hub,
            &too_large,
            (StatusCode::PAYLOAD_TOO_LARGE, "body_too_large"),
        ),
        refusal(
            "oversize push without a token",
            Method::POST,
            "/v1/events",
            None,
            &too_large,
            unauthorized,
        ),
        // Query.
        refusal(
            "export of malformed JSON without a token",
            Method::POST,
            "/v1/exports",
            None,
            b"{not json",
            unauthorized,
        ),
        refusal(
            "export of malformed JSON",
            Method::POST,
            "/v1/exports",
            analyst,
            b"{not json",
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
        refusal(
            "export without its SQL",
            Method::POST,
            "/v1/exports",
            analyst,
            b"{\"name\": \"x\"}",
            (StatusCode::UNPROCESSABLE_ENTITY, "invalid_request"),
        ),
        refusal(
            "KPIs of a year that is no number",
            Method::GET,
            "/v1/kpis?year=soon",
            researcher,
            b"",
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
        refusal(
            "KPIs with a bad query string and no token",
            Method::GET,
            "/v1/kpis?year=soon",
            None,
            b"",
            unauthorized,
        ),
        refusal(
            "audit with a bad limit",
            Method::GET,
            "/v1/audit?limit=many",
            admin,
            b"",
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
        refusal(
            "SQL that is no UTF-8",
            Method::POST,
            "/v1/sql",
            researcher,
            &[0xff, 0xfe, b'S'],
            (StatusCode::BAD_REQUEST, "bad_request"),
        ),
        refusal(
            "SQL without a token",
            Method::POST,
            "/v1/sql",
            None,
            b"SELECT 1",
            unauthorized,
        ),
        // The router.
        refusal(
            "an unknown route",
            Method::GET,
            "/v1/nothing-here",
            None,
            b"",
            (StatusCode::NOT_FOUND, "not_found"),
        ),
        refusal(
            "a method a route does not take",
            Method::DELETE,
            "/v1/events",
            hub,
            b"",
            (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
        ),
    ];
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .expect("client");
    for mut refusal in refusals {
        if refusal.path == "/v1/exports" {
            refusal.content_type = Some("application/json");
        }
        let mut request = client
            .request(refusal.method.clone(), format!("{url}{}", refusal.path))
            .body(refusal.body.clone());
        if let Some(token) = refusal.token {
            request = request.bearer_auth(token);
        }
        if let Some(content_type) = refusal.content_type {
            request = request.header("content-type", content_type);
        }
        let answer = request.send().await.expect("an answer");
        assert_eq!(answer.status(), refusal.status, "{}", refusal.what);
        let (body, _) = envelope(answer, refusal.what).await;
        assert_eq!(
            body["error"]["code"], refusal.code,
            "{}: {body}",
            refusal.what
        );
    }

    // A 5xx: the audit trail cannot be written (today's file is a folder), so no
    // answer is given; the answer names a request id, and no path of the server.
    let audit = dir.path().join("techmon-data/audit");
    let today = audit.join(format!(
        "audit-{}.ndjson",
        chrono::Utc::now().date_naive().format("%Y-%m-%d")
    ));
    let _ = std::fs::remove_file(&today);
    std::fs::create_dir_all(&today).expect("a folder in the file's place");
    let answer = client
        .post(format!("{url}/v1/sql"))
        .bearer_auth("dev-token-researcher")
        .body("SELECT 1")
        .send()
        .await
        .expect("an answer");
    assert_eq!(answer.status(), StatusCode::SERVICE_UNAVAILABLE);
    let (body, id) = envelope(answer, "SQL without an audit trail").await;
    assert_eq!(body["error"]["code"], "audit_unavailable", "{body}");
    assert_eq!(body["error"]["request_id"], id.as_str(), "{body}");
    let message = body["error"]["message"].as_str().expect("message");
    assert!(message.contains(&id), "{message}");
    let dir_text = dir.path().to_string_lossy();
    assert!(
        !message.contains(dir_text.as_ref()) && !message.contains("audit-"),
        "{message}"
    );
    // The detail is in the operators' log, under the same id.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while !common::serve_log(dir.path()).contains(&id) {
        assert!(
            std::time::Instant::now() < deadline,
            "{}",
            common::serve_log(dir.path())
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}
