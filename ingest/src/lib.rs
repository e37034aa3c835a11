//! The hub ingest API. Hubs push events (`POST /v1/events`: JSON array or NDJSON;
//! `POST /v1/feeds/{kind}`: CSV); every record is validated on its own and answered
//! on its own; valid records are acknowledged only once the event log holds them
//! durably. The event schemas are served read-only under `/v1/schemas`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::{Path, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use techmon_eventlog::{Appended, EventLog, LogRecord};
use techmon_schemas::{EventKind, FieldError, Problem};

mod metrics;
mod records;

pub use metrics::Metrics;
pub use records::{PushAnswer, RecordResult, RecordStatus};
use techmon_eventlog::person_keys::PersonKeys;
use techmon_service::{
    ApiError, ErrorAnswer, HubCredential, HubTokens, OpenApiRouter, ServiceError,
};
use utoipa_axum::routes;

use records::Candidate;

/// Ingest configuration (`[ingest]` in techmon's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where `techmon serve` listens.
    pub listen: SocketAddr,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// More records in one request are refused with 413.
    pub max_records_per_request: usize,
    /// `Retry-After` of 503 answers when the event log is unavailable.
    pub retry_after_seconds: u64,
    /// The hubs that may push, each with the SHA-256 of its token.
    pub hubs: Vec<HubCredential>,
}

#[derive(Clone)]
struct Ingest {
    log: Arc<dyn EventLog>,
    person_keys: Option<Arc<PersonKeys>>,
    tokens: Arc<HubTokens>,
    metrics: Metrics,
    max_body_bytes: usize,
    max_records: usize,
    retry_after: u64,
}

/// The ingest routes (push API, schemas, health, readiness, metrics).
pub fn build(config: &Config, log: Arc<dyn EventLog>) -> Result<OpenApiRouter, ServiceError> {
    build_with_metrics(config, log, prometheus::Registry::new(), None)
}

/// [`build`], registering ingest's metrics in `registry`; `GET /metrics` shows all of
/// that registry, so other services of the process can register theirs there too.
/// With `person_keys`, the personal fields of each event are sealed under its
/// person's key before the log stores it (see [`techmon_eventlog::person_keys`]).
/// Ready while the event log answers.
pub fn build_with_metrics(
    config: &Config,
    log: Arc<dyn EventLog>,
    registry: prometheus::Registry,
    person_keys: Option<PersonKeys>,
) -> Result<OpenApiRouter, ServiceError> {
    let ready: techmon_service::Readiness = {
        let (log, retry_after) = (Arc::clone(&log), config.retry_after_seconds);
        Arc::new(move || {
            let log = Arc::clone(&log);
            Box::pin(async move {
                log.check_ready().await.map_err(|e| {
                    tracing::warn!(error = %e, "the event log does not answer");
                    ApiError::unavailable(
                        retry_after,
                        "log_unavailable",
                        "the event log is unavailable",
                    )
                })
            })
        })
    };
    Ok(
        routes(config, log, &registry, person_keys)?
            .merge(techmon_service::probes(ready, registry)),
    )
}

/// The push API and the schemas, without the probes (a process serving more than
/// ingest answers those for all it runs); ingest's metrics go into `registry`.
pub fn routes(
    config: &Config,
    log: Arc<dyn EventLog>,
    registry: &prometheus::Registry,
    person_keys: Option<PersonKeys>,
) -> Result<OpenApiRouter, ServiceError> {
    let state = Ingest {
        log,
        person_keys: person_keys.map(Arc::new),
        tokens: Arc::new(HubTokens::new(&config.hubs)?),
        metrics: Metrics::new(registry),
        max_body_bytes: config.max_body_bytes,
        max_records: config.max_records_per_request,
        retry_after: config.retry_after_seconds,
    };
    Ok(OpenApiRouter::new()
        .routes(routes!(push_events))
        .routes(routes!(push_feed))
        .routes(routes!(schema_catalogue))
        .routes(routes!(one_schema))
        .with_state(state))
}

/// The bytes the log stores for an accepted record: as sent, but for its personal
/// fields, sealed under its person's key when there are keys. Keys that cannot be
/// written refuse the request (503): nothing is stored unsealed.
fn stored_payload(
    person_keys: Option<&PersonKeys>,
    record: records::Record,
    event: &techmon_schemas::Event,
) -> Result<Vec<u8>, ApiError> {
    let fields = event.personal_fields();
    let Some(keys) = person_keys.filter(|_| !fields.is_empty()) else {
        return Ok(record.into_payload());
    };
    let mut value = record.into_value();
    keys.seal(event.event_id, &mut value, &event.subject_key(), fields)
        .map_err(|error| {
            tracing::error!(%error, "cannot seal the personal fields of an event");
            ApiError::unavailable(
                5,
                "log_unavailable",
                "the keys of personal data cannot be written; nothing was stored",
            )
        })?;
    Ok(serde_json::to_vec(&value).unwrap_or_default())
}

/// Binds `config.listen` and serves the ingest API until `shutdown` completes.
pub async fn run(
    config: &Config,
    router: OpenApiRouter,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServiceError> {
    techmon_service::serve(
        techmon_service::bind(config.listen).await?,
        router,
        shutdown,
    )
    .await
}

async fn read_body(state: &Ingest, body: Body) -> Result<bytes::Bytes, ApiError> {
    to_bytes(body, state.max_body_bytes).await.map_err(|_| {
        ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the body is larger than {} bytes: split it into smaller batches",
                state.max_body_bytes
            ),
        )
    })
}

/// Push events: a JSON array, one JSON object, or NDJSON
///
/// Hub token. Every record is validated on its own; valid ones are acknowledged only
/// once the event log holds them durably. A repeated `event_id` is answered as a
/// duplicate and stored once.
#[utoipa::path(post, path = "/v1/events", tag = "ingest", security(("bearer" = [])),
    request_body(description = "Events as the schemas under `/v1/schemas` describe them",
        content(("application/json"), ("application/x-ndjson"))),
    responses(
        (status = 200, description = "Per record: accepted, duplicate, or rejected with the field and the reason", body = PushAnswer),
        (status = 400, description = "The body holds no records, or is no JSON array, object or NDJSON (`malformed_body`)", body = ErrorAnswer),
        (status = 401, description = "No token, or not a hub's (`unauthorized`)", body = ErrorAnswer),
        (status = 413, description = "The body or its number of records is over the limit (`body_too_large`, `too_many_records`)", body = ErrorAnswer),
        (status = 503, description = "The event log is unavailable; nothing was acknowledged (`log_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn push_events(
    State(state): State<Ingest>,
    request: Request,
) -> Result<axum::Json<PushAnswer>, ApiError> {
    push(&state, request, |body, _| records::parse_events(body)).await
}

/// Push a CSV feed of one event kind, with a header row
#[utoipa::path(post, path = "/v1/feeds/{kind}", tag = "ingest", security(("bearer" = [])),
    params(("kind" = String, Path, description = "An event kind of `/v1/schemas`")),
    request_body(content = String, content_type = "text/csv", description = "One record per line; the columns as the templates in docs/templates name them. A plain sheet may leave out the envelope: the hub is the token's, `sent_at` the time of receipt, `occurred_at` the `datum` column (or an activity's `starts_at`), and `event_id` derived from the kind's natural key, so the same rows sent again are duplicates. Dates as Dutch spreadsheets write them (`3-10-2024 9:00`, Excel serials) are read in Europe/Amsterdam."),
    responses(
        (status = 200, description = "Per line: accepted, duplicate, or rejected with the field and the reason", body = PushAnswer),
        (status = 400, description = "The body is no CSV with a header row (`malformed_body`)", body = ErrorAnswer),
        (status = 401, description = "No token, or not a hub's (`unauthorized`)", body = ErrorAnswer),
        (status = 404, description = "No such event kind (`unknown_event_kind`)", body = ErrorAnswer),
        (status = 413, description = "The body or its number of records is over the limit (`body_too_large`, `too_many_records`)", body = ErrorAnswer),
        (status = 503, description = "The event log is unavailable; nothing was acknowledged (`log_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn push_feed(
    State(state): State<Ingest>,
    Path(kind): Path<String>,
    request: Request,
) -> Result<axum::Json<PushAnswer>, ApiError> {
    // The kind after the token: a request without one gets 401 whatever it names.
    push(&state, request, |body, hub| {
        let unknown = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_event_kind",
                "no such event kind: see GET /v1/schemas",
            )
        };
        let kind = kind.parse::<EventKind>().map_err(|_| unknown())?;
        let version = techmon_schemas::latest_version(kind).ok_or_else(unknown)?;
        records::parse_feed(kind, version, body, hub)
    })
    .await
}

/// Authenticates, reads and parses the body, and stores its records.
async fn push(
    state: &Ingest,
    request: Request,
    parse: impl FnOnce(&bytes::Bytes, &str) -> Result<Vec<Candidate>, ApiError>,
) -> Result<axum::Json<PushAnswer>, ApiError> {
    let started = Instant::now();
    let hub = state.tokens.authenticate(request.headers())?.to_string();
    let body = read_body(state, request.into_body()).await?;
    let answer = store(state, &hub, parse(&body, &hub)?).await?;
    state
        .metrics
        .request_seconds
        .observe(started.elapsed().as_secs_f64());
    Ok(axum::Json(answer))
}

/// Why a record was refused, as a metric label from a fixed set.
fn rejection_reason(errors: &[FieldError]) -> &'static str {
    match errors.first().map(|e| e.problem) {
        Some(Problem::NotAnEvent) => "malformed",
        Some(Problem::UnknownKind) => "unknown_kind",
        Some(Problem::UnknownVersion) => "unknown_version",
        Some(Problem::Field) | None => "invalid_field",
    }
}

/// Validates the candidates, appends the valid ones and answers for each.
async fn store(
    state: &Ingest,
    hub: &str,
    candidates: Vec<Candidate>,
) -> Result<PushAnswer, ApiError> {
    if candidates.len() > state.max_records {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "too_many_records",
            format!(
                "{} records in one request; at most {} are taken",
                candidates.len(),
                state.max_records
            ),
        ));
    }
    let mut results = Vec::with_capacity(candidates.len());
    let mut to_append = Vec::new();
    for candidate in candidates {
        let checked = match candidate.record {
            Err(refused) => Err((refused.event_id, refused.errors)),
            Ok(record) => match record.read() {
                Ok(event) if event.hub_id != hub => Err((
                    Some(event.event_id),
                    vec![FieldError::new(
                        "/hub_id",
                        "the token used belongs to another hub: a hub may only send its own events",
                    )],
                )),
                Ok(event) => Ok((record, event)),
                Err(errors) => Err((record.event_id(), errors)),
            },
        };
        let (event_id, status, errors) = match checked {
            Ok((record, event)) => {
                let event_id = event.event_id;
                to_append.push((
                    results.len(),
                    LogRecord {
                        key: event.subject_key(),
                        event_id,
                        payload: stored_payload(state.person_keys.as_deref(), record, &event)?,
                    },
                ));
                (Some(event_id), RecordStatus::Accepted, vec![])
            }
            Err((event_id, errors)) => {
                state
                    .metrics
                    .rejected
                    .with_label_values(&[rejection_reason(&errors)])
                    .inc();
                (event_id, RecordStatus::Rejected, errors)
            }
        };
        results.push(RecordResult {
            index: candidate.index,
            line: candidate.line,
            event_id,
            status,
            partition: None,
            offset: None,
            errors,
        });
    }

    let (slots, batch): (Vec<usize>, Vec<LogRecord>) = to_append.into_iter().unzip();
    let append_started = Instant::now();
    let appended = if batch.is_empty() {
        vec![]
    } else {
        state
            .log
            .append(batch)
            .await
            .map_err(|e| log_failure(state, e))?
    };
    state
        .metrics
        .append_seconds
        .observe(append_started.elapsed().as_secs_f64());
    for (slot, outcome) in slots.into_iter().zip(appended) {
        let result = &mut results[slot];
        match outcome {
            Appended::Stored { partition, offset } => {
                result.partition = Some(partition);
                result.offset = Some(offset);
                state.metrics.accepted.inc();
            }
            Appended::Duplicate => {
                result.status = RecordStatus::Duplicate;
                state.metrics.duplicates.inc();
            }
        }
    }
    let count = |s: RecordStatus| results.iter().filter(|r| r.status == s).count();
    let answer = PushAnswer {
        accepted: count(RecordStatus::Accepted),
        duplicates: count(RecordStatus::Duplicate),
        rejected: count(RecordStatus::Rejected),
        results,
    };
    tracing::info!(
        hub,
        accepted = answer.accepted,
        duplicates = answer.duplicates,
        rejected = answer.rejected,
        "push"
    );
    Ok(answer)
}

fn log_failure(state: &Ingest, error: techmon_eventlog::LogError) -> ApiError {
    tracing::warn!(backend = state.log.backend(), error = %error, "event log append failed; nothing acknowledged");
    if error.is_retryable() {
        ApiError::unavailable(
            state.retry_after,
            "log_unavailable",
            "the event log is unavailable; nothing of this request was acknowledged: send it again later (records already stored will be reported as duplicates)",
        )
    } else {
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "log_error",
            "the event log failed; nothing of this request was acknowledged",
        )
    }
}

/// The event kinds and their schema versions
#[utoipa::path(get, path = "/v1/schemas", tag = "ingest",
    responses((status = 200, description = "Per kind its versions and the URL of each JSON Schema", body = Object)))]
async fn schema_catalogue() -> axum::Json<Value> {
    axum::Json(techmon_schemas::catalogue())
}

/// One event kind's JSON Schema
#[utoipa::path(get, path = "/v1/schemas/{kind}/{version}", tag = "ingest",
    params(
        ("kind" = String, Path, description = "An event kind"),
        ("version" = String, Path, description = "Its schema version: `1` or `v1`"),
    ),
    responses(
        (status = 200, description = "The JSON Schema (draft 2020-12)", body = Object, content_type = "application/schema+json"),
        (status = 404, description = "No such kind and version (`unknown_schema`)", body = ErrorAnswer),
    ))]
async fn one_schema(Path((kind, version)): Path<(String, String)>) -> Result<Response, ApiError> {
    let schema = version
        .trim_start_matches('v')
        .parse::<u32>()
        .ok()
        .and_then(|v| techmon_schemas::schema(&kind, v))
        .ok_or_else(|| {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_schema",
                "no such event kind and version: see GET /v1/schemas",
            )
        })?;
    Ok((
        [(header::CONTENT_TYPE, "application/schema+json")],
        axum::Json(schema),
    )
        .into_response())
}
