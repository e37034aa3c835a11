//! The query service's HTTP API: `POST /v1/sql` and `GET /v1/tables`, with bearer
//! tokens per user and role.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use techmon_ingest::{ApiError, TokenMap};

use crate::QueryError;
use crate::catalogue::TableVersions;
use crate::engine::{Engine, Limits};
use crate::formats::Format;

/// The header that states (in answers) or pins (in requests) the table versions.
pub const VERSIONS_HEADER: &str = "techmon-table-versions";

/// Query configuration (`[query]` in techmon's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where `techmon query` listens on its own (`techmon serve` serves the query API
    /// on the ingest address).
    pub listen: SocketAddr,
    pub memory_limit_mib: usize,
    pub timeout_seconds: u64,
    pub max_rows: usize,
    /// Where exports and their provenance records are kept.
    pub exports: std::path::PathBuf,
    /// The people who may query, each with a role and the SHA-256 of their token.
    pub users: Vec<QueryUser>,
}

impl Config {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_limit_mib: self.memory_limit_mib,
            timeout: Duration::from_secs(self.timeout_seconds),
            max_rows: self.max_rows,
        }
    }
}

/// What a user may do; each role may do what the ones before it may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// SQL over the research lake and the reference tables.
    Researcher,
    /// And exports with disclosure control.
    Analyst,
    /// And reference data imports.
    Admin,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Researcher => "researcher",
            Self::Analyst => "analyst",
            Self::Admin => "admin",
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct QueryUser {
    pub name: String,
    pub role: Role,
    pub token_sha256: String,
}

impl fmt::Display for QueryUser {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.name)
    }
}

#[derive(Clone)]
struct QueryService {
    engine: Arc<Engine>,
    exports: Arc<std::path::Path>,
    users: Arc<TokenMap<QueryUser>>,
}

impl QueryService {
    fn authorize(&self, headers: &HeaderMap, needed: Role) -> Result<&QueryUser, ApiError> {
        let user = self.users.authenticate(headers)?;
        if user.role < needed {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the {} role; yours is {}",
                    needed.as_str(),
                    user.role.as_str()
                ),
            ));
        }
        Ok(user)
    }
}

/// The query routes.
pub fn build(config: &Config, engine: Arc<Engine>) -> Result<Router, QueryError> {
    let users = TokenMap::from_hashes(
        config
            .users
            .iter()
            .map(|u| (u.token_sha256.as_str(), u.clone())),
    )
    .map_err(|user| QueryError::BadTokenHash { user })?;
    let service = QueryService {
        engine,
        exports: Arc::from(config.exports.as_path()),
        users: Arc::new(users),
    };
    Ok(Router::new()
        .route("/v1/sql", post(sql))
        .route("/v1/tables", get(tables))
        .route("/v1/kpis", get(kpis))
        .route("/v1/openapi.json", get(openapi))
        .route("/v1/exports", post(create_export))
        .route("/v1/exports/{id}", get(export_data))
        .route("/v1/exports/{id}/provenance", get(export_provenance))
        .route("/v1/reference/duo", post(import_reference))
        .merge(crate::dashboard::routes())
        // DUO files are some megabytes.
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
        .with_state(service))
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn sql(
    State(service): State<QueryService>,
    headers: HeaderMap,
    body: String,
) -> Result<Response, ApiError> {
    let user = service.authorize(&headers, Role::Researcher)?;
    let format = Format::from_accept(header_text(&headers, header::ACCEPT.as_str()))?;
    let pins: TableVersions = header_text(&headers, VERSIONS_HEADER)
        .unwrap_or("")
        .parse()?;
    let started = std::time::Instant::now();
    let answer = service.engine.query(&body, &pins).await?;
    tracing::info!(
        user = %user.name,
        rows = answer.row_count(),
        format = format.name(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "query answered"
    );
    let bytes = format.encode(&answer.schema, &answer.batches, &answer.versions)?;
    Ok(answer_response(format, &answer.versions, bytes))
}

/// An answer with its content type and the versions it was computed from.
pub(crate) fn answer_response(
    format: Format,
    versions: &TableVersions,
    bytes: Vec<u8>,
) -> Response {
    let mut response = bytes.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    if let Ok(value) = HeaderValue::from_str(&versions.to_string()) {
        headers.insert(VERSIONS_HEADER, value);
    }
    response
}

async fn tables(
    State(service): State<QueryService>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    service.authorize(&headers, Role::Researcher)?;
    let tables = service.engine.describe().await?;
    Ok(axum::Json(serde_json::json!({ "tables": tables })).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ImportParameters {
    /// The file's name or URL, recorded with every row; imports are idempotent per
    /// source and school year.
    source: String,
    /// `2024/25`; else taken from the file name or its PEILDATUM column.
    school_year: Option<String>,
}

async fn import_reference(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Query(parameters): Query<ImportParameters>,
    body: bytes::Bytes,
) -> Result<Response, ApiError> {
    let user = service.authorize(&headers, Role::Admin)?;
    let school_year = match parameters.school_year.as_deref() {
        None => None,
        Some(text) => Some(
            techmon_schemas::codes::SchoolYear::parse(text).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_school_year",
                    "school_year must look like 2024/25",
                )
            })?,
        ),
    };
    let report = crate::reference::import(
        service.engine.catalogue().location(),
        &parameters.source,
        &body,
        school_year,
    )
    .await?;
    tracing::info!(user = %user.name, table = report.table, source = %report.source, school_year = %report.school_year, rows = report.rows, imported = report.imported, "reference import");
    Ok(axum::Json(report).into_response())
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiParameters {
    /// KPI year Y (school year Y/Y+1); all years when absent.
    year: Option<i32>,
    /// A hub id or `region`; all when absent.
    hub: Option<String>,
}

/// The KPI report (view `kpi_report`) as JSON, with the versions it was computed from.
async fn kpis(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Query(parameters): Query<KpiParameters>,
) -> Result<Response, ApiError> {
    service.authorize(&headers, Role::Researcher)?;
    let mut conditions = vec!["TRUE".to_string()];
    if let Some(year) = parameters.year {
        conditions.push(format!("year = {year}"));
    }
    if let Some(hub) = &parameters.hub {
        // Hub ids are lower-case words with dashes; anything else names no hub.
        if !hub
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                "unknown_hub",
                format!("no hub {hub}"),
            ));
        }
        conditions.push(format!("hub_id = '{hub}'"));
    }
    let sql = format!(
        "SELECT kpi, band, hub_id, year, school_year, unit, actual, target, met, description \
         FROM kpi_report WHERE {} ORDER BY year, hub_id, kpi, band",
        conditions.join(" AND ")
    );
    let pins: TableVersions = header_text(&headers, VERSIONS_HEADER)
        .unwrap_or("")
        .parse()?;
    let answer = service.engine.query(&sql, &pins).await?;
    let bytes = Format::Json.encode(&answer.schema, &answer.batches, &answer.versions)?;
    Ok(answer_response(Format::Json, &answer.versions, bytes))
}

/// Runs an export (analyst role); answers with its provenance record, 201 when made
/// now and 200 when the same export existed.
async fn create_export(
    State(service): State<QueryService>,
    headers: HeaderMap,
    axum::Json(request): axum::Json<crate::exports::ExportRequest>,
) -> Result<Response, ApiError> {
    let user = service.authorize(&headers, Role::Analyst)?;
    let (provenance, made_now) =
        crate::exports::export(&service.engine, &service.exports, &request, &user.name).await?;
    tracing::info!(user = %user.name, export_id = %provenance.export_id, rows = provenance.rows, made_now, "export");
    let status = if made_now {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    Ok((status, axum::Json(provenance)).into_response())
}

/// An export's id: hexadecimal, so it cannot name a path outside the folder.
fn export_id(id: &str) -> Result<&str, QueryError> {
    if id.is_empty() || !id.bytes().all(|b| b.is_ascii_hexdigit()) {
        return Err(QueryError::UnknownExport {
            export_id: id.into(),
        });
    }
    Ok(id)
}

fn read_provenance(
    folder: &std::path::Path,
    id: &str,
) -> Result<crate::exports::Provenance, QueryError> {
    let id = export_id(id)?;
    std::fs::read(crate::exports::provenance_path(folder, id))
        .ok()
        .and_then(|bytes| serde_json::from_slice(&bytes).ok())
        .ok_or_else(|| QueryError::UnknownExport {
            export_id: id.into(),
        })
}

async fn export_data(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    service.authorize(&headers, Role::Analyst)?;
    let provenance = read_provenance(&service.exports, &id)?;
    let format = Format::from_name(&provenance.format).unwrap_or(Format::Parquet);
    let bytes = std::fs::read(
        service
            .exports
            .join(format!("{}.{}", provenance.export_id, provenance.format)),
    )
    .map_err(|_| QueryError::UnknownExport {
        export_id: id.clone(),
    })?;
    Ok(answer_response(format, &provenance.table_versions, bytes))
}

async fn export_provenance(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    service.authorize(&headers, Role::Analyst)?;
    Ok(axum::Json(read_provenance(&service.exports, &id)?).into_response())
}

/// The OpenAPI description of the whole HTTP API (ingest and query).
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../api/openapi.json"),
    )
        .into_response()
}
