//! The hub ingest API. Hubs push events (`POST /v1/events`: JSON array or NDJSON;
//! `POST /v1/feeds/{kind}`: CSV); every record is validated on its own and answered
//! on its own; valid records are acknowledged only once the event log holds them
//! durably. The event schemas are served read-only under `/v1/schemas`.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::{Body, to_bytes};
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde_json::Value;
use techmon_eventlog::{Appended, EventLog, LogRecord, RowVersion};
use techmon_schemas::codes::SchoolYear;
use techmon_schemas::{Event, EventKind, FieldError, Problem, Subject, sheet};
use uuid::Uuid;

mod metrics;
mod page;
mod records;
pub mod workbook;

pub use metrics::Metrics;
pub use records::{PushAnswer, RecordResult, RecordStatus, decoded as csv_file_text};
use techmon_eventlog::person_keys::PersonKeys;
use techmon_service::audit::{AuditAction, AuditEntry, AuditFilter, AuditLog};
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
    audit: Option<Arc<AuditLog>>,
    tokens: Arc<HubTokens>,
    metrics: Metrics,
    max_body_bytes: usize,
    max_records: usize,
    retry_after: u64,
    registry: Option<Arc<dyn HubRegistry>>,
}

/// The hubs as the administrators keep them while techmon runs (the lake's registry
/// tables, read by whoever runs ingest).
pub trait HubRegistry: techmon_service::IssuedTokens {
    /// The last school year `hub` reports, once it is retired: its events of a later
    /// school year are refused.
    fn last_school_year(&self, hub: &str) -> Option<SchoolYear>;
}

impl Ingest {
    /// The hub whose token the request carries: a configured one, or one issued at
    /// run time.
    fn hub(&self, headers: &axum::http::HeaderMap) -> Result<String, ApiError> {
        match self.tokens.authenticate(headers) {
            Ok(hub) => Ok(hub.clone()),
            Err(unknown) => techmon_service::bearer(headers)
                .map(techmon_service::token_sha256)
                .and_then(|hash| self.registry.as_ref()?.hub_of_token(&hash))
                .ok_or(unknown),
        }
    }
}

/// What ingest keeps besides the event log.
#[derive(Debug, Default)]
pub struct Stores {
    /// With keys, the personal fields of each event are sealed under its person's key
    /// before the log stores it, and the ids of people's plain rows are keyed by it
    /// (see [`techmon_eventlog::person_keys`]).
    pub person_keys: Option<PersonKeys>,
    /// With a trail, every push is recorded in it (which hub, when, what became of its
    /// records), and `GET /v1/uploads` lists a hub's.
    pub audit: Option<Arc<AuditLog>>,
    /// With the hubs' registry, tokens issued at run time are taken, and a retired
    /// hub's events after its last school year are refused.
    pub registry: Option<Arc<dyn HubRegistry>>,
}

/// The ingest routes (push API, schemas, health, readiness, metrics).
pub fn build(config: &Config, log: Arc<dyn EventLog>) -> Result<OpenApiRouter, ServiceError> {
    build_with_metrics(config, log, prometheus::Registry::new(), Stores::default())
}

/// [`build`], registering ingest's metrics in `registry`; `GET /metrics` shows all of
/// that registry, so other services of the process can register theirs there too.
/// Ready while the event log answers.
pub fn build_with_metrics(
    config: &Config,
    log: Arc<dyn EventLog>,
    registry: prometheus::Registry,
    stores: Stores,
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
    Ok(routes(config, log, &registry, stores)?.merge(techmon_service::probes(ready, registry)))
}

/// The push API and the schemas, without the probes (a process serving more than
/// ingest answers those for all it runs); ingest's metrics go into `registry`.
pub fn routes(
    config: &Config,
    log: Arc<dyn EventLog>,
    registry: &prometheus::Registry,
    stores: Stores,
) -> Result<OpenApiRouter, ServiceError> {
    let state = Ingest {
        log,
        person_keys: stores.person_keys.map(Arc::new),
        audit: stores.audit,
        tokens: Arc::new(HubTokens::new(&config.hubs)?),
        metrics: Metrics::new(registry),
        max_body_bytes: config.max_body_bytes,
        max_records: config.max_records_per_request,
        retry_after: config.retry_after_seconds,
        registry: stores.registry,
    };
    Ok(OpenApiRouter::new()
        .routes(routes!(push_events))
        .routes(routes!(push_feed))
        .routes(routes!(templates_workbook))
        .routes(routes!(sheet_rows))
        .routes(routes!(uploads))
        .routes(routes!(schema_catalogue))
        .routes(routes!(one_schema))
        .with_state(state)
        .merge(page::routes()))
}

/// The bytes the log stores for an accepted record: as sent, but for its personal
/// fields, sealed under its person's key when there are keys. Keys that cannot be
/// written refuse the request (503): nothing is stored unsealed.
fn stored_payload(
    person_keys: Option<&PersonKeys>,
    record: records::Record,
    event: &Event,
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
    push(&state, request, "events".into(), |body, _| {
        records::parse_events(body)
    })
    .await
}

/// Which worksheet of a workbook a feed takes.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct FeedParameters {
    /// The worksheet to read (default: the one named after the kind, else the first).
    sheet: Option<String>,
}

/// Push a feed of one event kind: a CSV with a header row, or a worksheet of an XLSX workbook
#[utoipa::path(post, path = "/v1/feeds/{kind}", tag = "ingest", security(("bearer" = [])),
    params(("kind" = String, Path, description = "An event kind of `/v1/schemas`"), FeedParameters),
    request_body(content(("text/csv"), ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")), description = "One record per row under a header row; a CSV in the `charset` its content type names, else UTF-8 when it is, else Windows-1252; the columns as the templates in docs/templates (and `GET /v1/templates.xlsx`) name them. A workbook is recognised by its content; its worksheet is `sheet`, else the one named after the kind, else the first, and its dates are read as the workbook stores them. A plain sheet may leave out the envelope: the hub is the token's, `sent_at` the time of receipt, `occurred_at` the `datum` column (or an activity's `starts_at`), and `event_id` derived from the kind's natural key and what the row says, so the same rows sent again are duplicates and a row saying something else is a correction that replaces the row's earlier version. Dates as Dutch spreadsheets write them (`3-10-2024 9:00`, Excel serials) are read in Europe/Amsterdam."),
    responses(
        (status = 200, description = "Per row: accepted, corrected (a plain row saying something else than before, with the event it replaces), duplicate, or rejected with the field and the reason", body = PushAnswer),
        (status = 400, description = "The body is no CSV or workbook with a header row, or names no sheet it has (`malformed_body`); a parameter is unknown (`bad_request`)", body = ErrorAnswer),
        (status = 401, description = "No token, or not a hub's (`unauthorized`)", body = ErrorAnswer),
        (status = 404, description = "No such event kind (`unknown_event_kind`)", body = ErrorAnswer),
        (status = 413, description = "The body, what a workbook unpacks to, or its number of records is over the limit (`body_too_large`, `too_many_records`)", body = ErrorAnswer),
        (status = 415, description = "The content type names a charset that is not known (`unsupported_charset`)", body = ErrorAnswer),
        (status = 503, description = "The event log is unavailable; nothing was acknowledged (`log_unavailable`, with `Retry-After`); or other requests kept correcting the same rows (`rows_being_corrected`): send again", body = ErrorAnswer),
    ))]
async fn push_feed(
    State(state): State<Ingest>,
    Path(kind): Path<String>,
    parameters: Result<Query<FeedParameters>, QueryRejection>,
    request: Request,
) -> Result<axum::Json<PushAnswer>, ApiError> {
    let charset = charset(request.headers());
    // Only what techmon knows: the kind, if it is one, and the sheet's place.
    let what = match kind.parse::<EventKind>() {
        Ok(kind) if parameters.as_ref().is_ok_and(|p| p.sheet.is_some()) => {
            format!("{kind} (a named sheet)")
        }
        Ok(kind) => kind.as_str().to_string(),
        Err(_) => "an unknown kind".into(),
    };
    // The kind and the parameters after the token: a request without one gets 401
    // whatever it names.
    push(&state, request, what, |body, hub| {
        let unknown = || {
            ApiError::new(
                StatusCode::NOT_FOUND,
                "unknown_event_kind",
                "no such event kind: see GET /v1/schemas",
            )
        };
        let kind = kind.parse::<EventKind>().map_err(|_| unknown())?;
        let version = techmon_schemas::latest_version(kind).ok_or_else(unknown)?;
        let Query(parameters) = parameters.map_err(bad_parameters)?;
        let sheet = read_sheet(
            body,
            charset.as_deref(),
            Some(kind),
            parameters.sheet.as_deref(),
        )?;
        records::parse_feed(kind, version, sheet, hub)
    })
    .await
}

/// The `charset` of a request's content type.
fn charset(headers: &axum::http::HeaderMap) -> Option<String> {
    let content_type = headers.get(header::CONTENT_TYPE)?.to_str().ok()?;
    content_type.split(';').skip(1).find_map(|parameter| {
        let (name, value) = parameter.split_once('=')?;
        name.trim()
            .eq_ignore_ascii_case("charset")
            .then(|| value.trim().trim_matches('"').to_string())
    })
}

fn bad_parameters(rejection: QueryRejection) -> ApiError {
    ApiError::new(
        StatusCode::BAD_REQUEST,
        "bad_request",
        rejection.body_text(),
    )
}

/// A feed's body as a sheet: a worksheet of a workbook (a zip archive, which a CSV
/// never starts like), or a CSV.
fn read_sheet(
    body: &[u8],
    charset: Option<&str>,
    kind: Option<EventKind>,
    sheet: Option<&str>,
) -> Result<records::Sheet, ApiError> {
    if body.starts_with(b"PK\x03\x04") {
        workbook::worksheet(body, kind, sheet)
    } else {
        records::csv_sheet(body, charset)
    }
}

/// Which sheet to read, and for which kind.
#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[serde(deny_unknown_fields)]
struct SheetParameters {
    /// The worksheet of a workbook (default: the one named after `kind`, else the first).
    sheet: Option<String>,
    /// The event kind the sheet is for.
    kind: Option<String>,
}

/// A sheet's rows as techmon reads them
///
/// Hub token. The header and every row of a CSV or a worksheet of a workbook, cells
/// as text as a feed reads them (a workbook's dates as `3-10-2024 09:00`), with each
/// row's line or row number: what the upload page needs to hand back the refused rows
/// of a workbook; and the event kinds the header fits, so the page can tell the kind
/// of a sheet from its columns. Nothing is stored.
#[utoipa::path(post, path = "/v1/sheets/rows", tag = "ingest", security(("bearer" = [])),
    params(SheetParameters),
    request_body(content(("text/csv"), ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet")), description = "A sheet, as for `POST /v1/feeds/{kind}`"),
    responses(
        (status = 200, description = "The header and the rows", body = SheetAnswer),
        (status = 400, description = "The body is no CSV or workbook with a header row, or names no sheet it has (`malformed_body`); a parameter is wrong (`bad_request`, `unknown_event_kind`)", body = ErrorAnswer),
        (status = 401, description = "No token, or not a hub's (`unauthorized`)", body = ErrorAnswer),
        (status = 413, description = "The body, or what a workbook unpacks to, is over the limit (`body_too_large`)", body = ErrorAnswer),
        (status = 415, description = "The content type names a charset that is not known (`unsupported_charset`)", body = ErrorAnswer),
    ))]
async fn sheet_rows(
    State(state): State<Ingest>,
    parameters: Result<Query<SheetParameters>, QueryRejection>,
    request: Request,
) -> Result<axum::Json<SheetAnswer>, ApiError> {
    state.hub(request.headers())?;
    let charset = charset(request.headers());
    let Query(parameters) = parameters.map_err(bad_parameters)?;
    let kind = parameters
        .kind
        .map(|kind| {
            kind.parse::<EventKind>().map_err(|_| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "unknown_event_kind",
                    "no such event kind: see GET /v1/schemas",
                )
            })
        })
        .transpose()?;
    let body = read_body(&state, request.into_body()).await?;
    let sheet = read_sheet(&body, charset.as_deref(), kind, parameters.sheet.as_deref())?;
    let headers: Vec<&str> = sheet.headers.iter().map(String::as_str).collect();
    let kinds = techmon_schemas::kinds_of_header(&headers)
        .into_iter()
        .map(|k| k.as_str().to_string())
        .collect();
    Ok(axum::Json(SheetAnswer {
        kinds,
        headers: sheet.headers,
        rows: sheet
            .rows
            .into_iter()
            .map(|row| SheetAnswerRow {
                line: row.line,
                cells: row.cells,
            })
            .collect(),
    }))
}

/// A sheet as techmon reads it.
#[derive(Debug, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct SheetAnswer {
    /// The event kinds the header fits (see `GET /v1/schemas`): one recognises the
    /// sheet.
    pub kinds: Vec<String>,
    pub headers: Vec<String>,
    pub rows: Vec<SheetAnswerRow>,
}

#[derive(Debug, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct SheetAnswerRow {
    /// The row's line (CSV) or row number (worksheet), from 1.
    pub line: Option<usize>,
    pub cells: Vec<String>,
}

/// The templates as one XLSX workbook
///
/// A sheet per event kind with the Dutch headers of docs/templates and example rows,
/// validation lists from the code lists on the columns that have one, and a sheet of
/// the code lists. Fill in a sheet and send it to `POST /v1/feeds/{kind}`.
#[utoipa::path(get, path = "/v1/templates.xlsx", tag = "ingest",
    responses(
        (status = 200, description = "The workbook", content_type = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet", body = Vec<u8>),
    ))]
async fn templates_workbook() -> Result<Response, ApiError> {
    // Made from the templates built in: a failure is a bug, answered as any other.
    let bytes = workbook::templates().map_err(|error| {
        tracing::error!(%error, "the templates workbook could not be made");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "the templates workbook could not be made",
        )
    })?;
    Ok((
        [
            (header::CONTENT_TYPE, workbook::XLSX),
            (
                header::CONTENT_DISPOSITION,
                "attachment; filename=\"techmon-templates.xlsx\"",
            ),
        ],
        bytes,
    )
        .into_response())
}

/// Authenticates, reads and parses the body, and stores its records.
/// `what` is pushed (`events`, or a feed's kind and sheet), for the audit trail.
async fn push(
    state: &Ingest,
    request: Request,
    what: String,
    parse: impl FnOnce(&bytes::Bytes, &str) -> Result<Vec<Candidate>, ApiError>,
) -> Result<axum::Json<PushAnswer>, ApiError> {
    let started = Instant::now();
    let hub = state.hub(request.headers())?;
    let stored = async {
        let body = read_body(state, request.into_body()).await?;
        store(state, &hub, parse(&body, &hub)?).await
    }
    .await;
    state
        .metrics
        .request_seconds
        .observe(started.elapsed().as_secs_f64());
    record_push(state, &hub, &what, started, &stored);
    stored.map(axum::Json)
}

/// Writes a hub's push to the audit trail. The records it stored stay stored when the
/// trail cannot be written: that is logged, and the upload is missing from the list.
fn record_push(
    state: &Ingest,
    hub: &str,
    what: &str,
    started: Instant,
    stored: &Result<PushAnswer, ApiError>,
) {
    let Some(audit) = &state.audit else {
        return;
    };
    let mut entry = AuditEntry::new(AuditAction::Push, started);
    entry.user = Some(hub.to_string());
    entry.role = Some("hub".into());
    match stored {
        Ok(answer) => {
            entry.rows = Some(answer.results.len() as u64);
            entry.detail = Some(format!(
                "{what}: {} accepted, {} corrected, {} duplicates, {} refused",
                answer.accepted, answer.corrected, answer.duplicates, answer.rejected
            ));
        }
        Err(error) => {
            entry.outcome = error.code.to_string();
            entry.detail = Some(what.to_string());
        }
    }
    if let Err(error) = audit.record(&entry) {
        tracing::error!(%error, hub, "a push could not be written to the audit trail; what it stored stays stored");
    }
}

/// How many of a hub's uploads `GET /v1/uploads` lists, and from how many days back.
const UPLOADS_LISTED: usize = 50;
const UPLOADS_DAYS: i64 = 90;

/// One push of a hub, as the audit trail has it.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize, utoipa::ToSchema)]
pub struct Upload {
    /// When it was answered (RFC 3339, UTC).
    pub at: String,
    /// What was sent, and what became of its records.
    pub what: String,
    /// How many records it held.
    pub records: Option<u64>,
    /// `ok`, or the error code of the answer.
    pub outcome: String,
}

/// Your hub's recent uploads
///
/// Hub token. The hub's pushes of the last 90 days, the latest first (at most 50),
/// from the audit trail: when, what, and what became of the records.
#[utoipa::path(get, path = "/v1/uploads", tag = "ingest", security(("bearer" = [])),
    responses(
        (status = 200, description = "The uploads, the latest first", body = [Upload]),
        (status = 401, description = "No token, or not a hub's (`unauthorized`)", body = ErrorAnswer),
        (status = 503, description = "The audit trail cannot be read (`audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn uploads(
    State(state): State<Ingest>,
    headers: axum::http::HeaderMap,
) -> Result<axum::Json<Vec<Upload>>, ApiError> {
    let hub = state.hub(&headers)?;
    let Some(audit) = &state.audit else {
        return Ok(axum::Json(Vec::new()));
    };
    let filter = AuditFilter {
        since: Some(chrono::Utc::now().date_naive() - chrono::Duration::days(UPLOADS_DAYS)),
        user: Some(hub.to_string()),
        limit: None,
    };
    let entries = techmon_service::audit::read(audit.folder(), &filter).map_err(|error| {
        tracing::error!(%error, "the audit trail cannot be read");
        ApiError::unavailable(
            state.retry_after,
            "audit_unavailable",
            "the record of uploads cannot be read now",
        )
    })?;
    Ok(axum::Json(
        entries
            .into_iter()
            .rev()
            .filter(|entry| entry.action == AuditAction::Push)
            .take(UPLOADS_LISTED)
            .map(|entry| Upload {
                at: entry.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true),
                what: entry.detail.unwrap_or_default(),
                records: entry.rows,
                outcome: entry.outcome,
            })
            .collect(),
    ))
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

/// A valid record on its way into the log.
struct Valid {
    /// Its place among the answers.
    slot: usize,
    record: records::Record,
    event: Event,
    /// For a row of a plain sheet: its key and what it says.
    plain: Option<(Uuid, Uuid)>,
}

/// How often the rows of a request are made again over their latest versions when
/// other requests keep correcting the same rows.
const VERSION_ROUNDS: usize = 3;

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
    let mut valid = Vec::new();
    for candidate in candidates {
        let checked = match check(
            hub,
            candidate.record,
            candidate.row,
            state.registry.as_deref(),
        ) {
            Ok((record, event, Some((row, digest)))) => {
                let plain = private_version(state, &event, row, digest)?;
                Ok((record, event, Some(plain)))
            }
            other => other,
        };
        let (event_id, status, errors) = match checked {
            Ok((record, event, plain)) => {
                valid.push(Valid {
                    slot: results.len(),
                    record,
                    event,
                    plain,
                });
                (None, RecordStatus::Accepted, vec![])
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
            replaces: None,
            partition: None,
            offset: None,
            errors,
        });
    }
    for _ in 0..VERSION_ROUNDS {
        if valid.is_empty() {
            break;
        }
        valid = append(state, valid, &mut results).await?;
    }
    if !valid.is_empty() {
        return Err(ApiError::unavailable(
            state.retry_after,
            "rows_being_corrected",
            "other requests are correcting the same rows of this sheet right now: send it again (rows already stored will be reported as duplicates)",
        ));
    }
    let count = |s: RecordStatus| results.iter().filter(|r| r.status == s).count();
    let answer = PushAnswer {
        accepted: count(RecordStatus::Accepted),
        corrected: count(RecordStatus::Corrected),
        duplicates: count(RecordStatus::Duplicate),
        rejected: count(RecordStatus::Rejected),
        results,
    };
    tracing::info!(
        hub,
        accepted = answer.accepted,
        corrected = answer.corrected,
        duplicates = answer.duplicates,
        rejected = answer.rejected,
        "push"
    );
    Ok(answer)
}

/// Reads a candidate as an event of `hub`. A row of a plain sheet has no event id
/// yet: it is read with a stand-in, and comes with its key and what it says.
#[allow(clippy::type_complexity)]
fn check(
    hub: &str,
    record: Result<records::Record, records::Refused>,
    row: Option<Uuid>,
    registry: Option<&dyn HubRegistry>,
) -> Result<(records::Record, Event, Option<(Uuid, Uuid)>), (Option<Uuid>, Vec<FieldError>)> {
    let mut record = record.map_err(|refused| (refused.event_id, refused.errors))?;
    let plain = match (&mut record, row) {
        (records::Record::Value(value), Some(row)) => {
            let digest = sheet::content_digest(value);
            sheet::identify(value, Uuid::nil(), None);
            Some((row, digest))
        }
        _ => None,
    };
    let event = record
        .read()
        .map_err(|errors| (plain.is_none().then(|| record.event_id()).flatten(), errors))?;
    let known_id = plain.is_none().then_some(event.event_id);
    if event.hub_id != hub {
        return Err((
            known_id,
            vec![FieldError::new(
                "/hub_id",
                "the token used belongs to another hub: a hub may only send its own events",
            )],
        ));
    }
    if let Some(last) = registry.and_then(|r| r.last_school_year(hub))
        && event.school_year() > last
    {
        return Err((
            known_id,
            vec![FieldError::new(
                "/hub_id",
                format!(
                    "hub {hub} was retired after school year {last}: its events of {} are not taken",
                    event.school_year()
                ),
            )],
        ));
    }
    if event.replaces.is_some() {
        return Err((
            known_id,
            vec![FieldError::new(
                "/replaces",
                "techmon sets it on a corrected row of a plain sheet: a system that names its own event ids sends a new event instead",
            )],
        ));
    }
    Ok((record, event, plain))
}

/// An id for `name` keyed by the person's key when the row is about a person and
/// there are keys (see [`PersonKeys::keyed_id`]); else `plain`. A person's row's key,
/// digest and event id are all keyed: the event id reaches the lake, and the log's
/// index of versions keeps the others, and made from the reference and the row's
/// values alone they would tell whose row it is, also once the key is destroyed.
fn keyed_for_person(
    state: &Ingest,
    event: &Event,
    name: &[u8],
    plain: impl FnOnce() -> Uuid,
) -> Result<Uuid, ApiError> {
    let about_a_person = matches!(
        event.subject(),
        Subject::Participant { .. } | Subject::Ambassador { .. }
    );
    match state.person_keys.as_deref().filter(|_| about_a_person) {
        None => Ok(plain()),
        Some(keys) => keys.keyed_id(&event.subject_key(), name).map_err(|error| {
            tracing::error!(%error, "cannot derive the keyed id of a plain row");
            ApiError::unavailable(
                state.retry_after,
                "log_unavailable",
                "the keys of personal data cannot be read or written; nothing was stored",
            )
        }),
    }
}

/// A plain row's key and digest as the log's index of versions keeps them (see
/// [`keyed_for_person`]).
fn private_version(
    state: &Ingest,
    event: &Event,
    row: Uuid,
    digest: Uuid,
) -> Result<(Uuid, Uuid), ApiError> {
    let keyed = |id: Uuid, what: &[u8]| {
        keyed_for_person(state, event, &[what, id.as_bytes()].concat(), || id)
    };
    Ok((keyed(row, b"row")?, keyed(digest, b"digest")?))
}

/// Appends the valid records, each plain row as a new version over its latest (or,
/// when it says what its latest says, as a duplicate of it), and answers for them.
/// Returns the plain rows that were outdated: corrected meanwhile by another request,
/// or by a row earlier in this one.
async fn append(
    state: &Ingest,
    valid: Vec<Valid>,
    results: &mut [RecordResult],
) -> Result<Vec<Valid>, ApiError> {
    let keys = state.person_keys.as_deref();
    let rows: Vec<Uuid> = valid.iter().filter_map(|v| v.plain.map(|p| p.0)).collect();
    let mut latest = if rows.is_empty() {
        vec![]
    } else {
        state
            .log
            .latest_versions(&rows)
            .await
            .map_err(|e| log_failure(state, e))?
    }
    .into_iter();
    let mut batch = Vec::with_capacity(valid.len());
    // Per record of the batch: its answer's slot, and a plain row to make again if
    // it is outdated.
    let mut appended: Vec<(usize, Option<Valid>)> = Vec::with_capacity(valid.len());
    for mut valid in valid {
        let version = match valid.plain {
            None => None,
            Some((row, digest)) => {
                let latest = latest.next().flatten();
                if let Some(latest) = latest.filter(|l| l.digest == digest) {
                    let result = &mut results[valid.slot];
                    result.event_id = Some(latest.event_id);
                    result.replaces = None;
                    result.status = RecordStatus::Duplicate;
                    state.metrics.duplicates.inc();
                    continue;
                }
                let replaces = latest.map(|l| l.event_id);
                let name = sheet::version_name(row, digest, replaces);
                let id = keyed_for_person(state, &valid.event, &name, || {
                    sheet::version_event_id(&name)
                })?;
                valid.event.event_id = id;
                valid.event.replaces = replaces;
                if let records::Record::Value(value) = &mut valid.record {
                    sheet::identify(value, id, replaces);
                }
                Some(RowVersion {
                    row,
                    digest,
                    replaces,
                })
            }
        };
        let record = match version {
            Some(_) => valid.record.clone(),
            None => std::mem::replace(&mut valid.record, records::Record::Value(Value::Null)),
        };
        batch.push(LogRecord {
            key: valid.event.subject_key(),
            event_id: valid.event.event_id,
            payload: stored_payload(keys, record, &valid.event)?,
            version,
        });
        let result = &mut results[valid.slot];
        result.event_id = Some(valid.event.event_id);
        result.replaces = valid.event.replaces;
        appended.push((valid.slot, version.map(|_| valid)));
    }
    let append_started = Instant::now();
    let outcomes = if batch.is_empty() {
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
    let mut outdated = Vec::new();
    for ((slot, plain), outcome) in appended.into_iter().zip(outcomes) {
        let result = &mut results[slot];
        match outcome {
            Appended::Stored { partition, offset } => {
                result.partition = Some(partition);
                result.offset = Some(offset);
                state.metrics.accepted.inc();
                if result.replaces.is_some() {
                    result.status = RecordStatus::Corrected;
                    state.metrics.corrected.inc();
                }
            }
            Appended::Duplicate => {
                result.status = RecordStatus::Duplicate;
                result.replaces = None;
                state.metrics.duplicates.inc();
            }
            Appended::Outdated => outdated.extend(plain),
        }
    }
    Ok(outdated)
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
