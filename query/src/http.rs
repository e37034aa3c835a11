//! The query service's HTTP API: `POST /v1/sql` and `GET /v1/tables`, with bearer
//! tokens per user and role.

use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection, StringRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use techmon_service::{ApiError, ServiceError, TokenMap};

use crate::QueryError;
use crate::disclosure::{Disclosure, Releases, Suppressed};
use crate::engine::{Engine, Limits, Scope};
use crate::formats::Format;
use techmon_lake::TableVersions;
use techmon_service::audit::{self, AuditAction, AuditEntry, AuditFilter, AuditLog};

/// The header that states (in answers) or pins (in requests) the table versions.
pub const VERSIONS_HEADER: &str = "techmon-table-versions";

/// The header that says what output control left out of an answer
/// (`k=10; rows=2; cells=1; views=reach`).
pub const SUPPRESSED_HEADER: &str = "techmon-suppressed";

/// Query configuration (`[query]` in techmon's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where `techmon query` listens on its own (`techmon serve` serves the query API
    /// on the ingest address).
    pub listen: SocketAddr,
    pub memory_limit_mib: usize,
    /// What all running queries may hold together.
    pub total_memory_mib: usize,
    pub timeout_seconds: u64,
    pub max_rows: usize,
    /// The largest value a function may make (`repeat`, `lpad`, …).
    pub max_value_bytes: u64,
    /// Where exports and their provenance records are kept.
    pub exports: std::path::PathBuf,
    /// The people who may query, each with a role and the SHA-256 of their token.
    pub users: Vec<QueryUser>,
    /// The audit trail's folder (see [`techmon_service::audit`]): keep it as private as the raw
    /// zone.
    pub audit: std::path::PathBuf,
    /// Days an audit file is kept.
    pub audit_retention_days: u32,
    /// Output control's folder: the secret the persons' keys come from, and what was
    /// released to each user (keep it as private as the audit trail).
    pub output_control: std::path::PathBuf,
    /// Researchers' answers aggregate at least this many distinct persons per group
    /// (see [`crate::disclosure`]).
    pub min_persons: u64,
    /// The roles whose aggregate answers (and exports) get Cell Key Method noise on
    /// their counts; none by default.
    #[serde(default)]
    pub cell_key_noise: Vec<Role>,
    /// Queries running at once in the service, and of one user (see
    /// [`crate::admission`]); the rest wait up to `queue_seconds`.
    pub max_concurrent: usize,
    pub max_concurrent_per_user: usize,
    pub queue_seconds: u64,
}

impl Config {
    pub fn limits(&self) -> Limits {
        Limits {
            memory_limit_mib: self.memory_limit_mib,
            timeout: Duration::from_secs(self.timeout_seconds),
            max_rows: self.max_rows,
            max_value_bytes: self.max_value_bytes,
            total_memory_mib: self.total_memory_mib,
        }
    }
}

/// What a user may do; each role may do what the ones before it may, but for a
/// hub's, whose SQL sees its own rows only.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// A hub, with the token it pushes with: SQL and KPIs over its own rows (every
    /// lake table seen through its `hub_id`), and its KPI report with the region's.
    Hub,
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
            Self::Hub => "hub",
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
    /// The hub a hub's token is for (never configured here: hubs are `ingest.hubs`).
    #[serde(skip)]
    pub hub: Option<String>,
    /// A researcher's grant of row-level access to pseudonymised data, through this
    /// day (UTC); every use is in the audit trail.
    #[serde(default)]
    pub microdata_until: Option<chrono::NaiveDate>,
}

impl QueryUser {
    /// Whose rows this user's queries read.
    pub fn scope(&self) -> Scope {
        self.hub.clone().map_or(Scope::AllHubs, Scope::Hub)
    }

    /// Whether a microdata grant holds `today`.
    pub fn microdata(&self, today: chrono::NaiveDate) -> bool {
        self.microdata_until.is_some_and(|until| today <= until)
    }

    /// How this user's answers are released: aggregates only for a researcher without
    /// a microdata grant; a hub reads its own rows, which it sent.
    pub fn disclosure(
        &self,
        min_persons: u64,
        today: chrono::NaiveDate,
        releases: &Releases,
        cell_key_noise: bool,
    ) -> Result<Disclosure, QueryError> {
        Ok(match self.role {
            Role::Researcher if !self.microdata(today) => Disclosure::Aggregates {
                min_persons,
                released: releases.of(&self.name)?,
                cell_key_noise,
            },
            _ => Disclosure::RowLevel,
        })
    }
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
    audit: Arc<AuditLog>,
    admission: Arc<crate::admission::Admission>,
    min_persons: u64,
    releases: Arc<Releases>,
    /// The roles whose counts get Cell Key Method noise.
    cell_key_noise: Vec<Role>,
}

/// An authorized request: who asked, and the audit entry its answer leaves
/// ([`QueryService::audited`]).
struct Asked<'a> {
    user: &'a QueryUser,
    entry: AuditEntry,
    started: Instant,
}

impl QueryService {
    /// The user of a request of `action`, if their role is at least `needed`; a
    /// refusal is in the audit trail.
    fn authorize(
        &self,
        headers: &HeaderMap,
        needed: Role,
        action: AuditAction,
    ) -> Result<Asked<'_>, ApiError> {
        let started = Instant::now();
        let refused = |refusal: AuditAction, user: Option<&QueryUser>, error: ApiError| {
            let mut entry = AuditEntry::new(refusal, started);
            entry.user = user.map(|u| u.name.clone());
            entry.role = user.map(|u| u.role.as_str().to_string());
            entry.outcome = error.code.to_string();
            entry.detail = Some(format!("{action:?}"));
            self.record(&entry)?;
            Err(error)
        };
        let user = match self.users.authenticate(headers) {
            Ok(user) => user,
            Err(error) => return refused(AuditAction::TokenRefused, None, error),
        };
        // A hub may ask what a researcher may, of its own rows.
        let hub_asks = user.role == Role::Hub && needed == Role::Researcher;
        if user.role < needed && !hub_asks {
            let error = ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                format!(
                    "this needs the {} role; yours is {}",
                    needed.as_str(),
                    user.role.as_str()
                ),
            );
            return refused(AuditAction::Forbidden, Some(user), error);
        }
        Ok(Asked {
            user,
            entry: AuditEntry::new(action, started),
            started,
        })
    }

    /// How the asker's answers are released; a microdata grant in use is noted in the
    /// request's audit entry.
    fn disclosure(&self, asked: &mut Asked) -> Result<Disclosure, QueryError> {
        let today = chrono::Utc::now().date_naive();
        if asked.user.role == Role::Researcher
            && let Some(until) = asked
                .user
                .microdata_until
                .filter(|_| asked.user.microdata(today))
        {
            asked.entry.detail = Some(format!("microdata grant until {until}"));
        }
        asked.user.disclosure(
            self.min_persons,
            today,
            &self.releases,
            self.cell_key_noise.contains(&asked.user.role),
        )
    }

    /// Writes an entry; a request whose entry cannot be written gets no answer.
    fn record(&self, entry: &AuditEntry) -> Result<(), ApiError> {
        self.audit.record(entry).map_err(|error| {
            tracing::error!(%error, path = ?error_path(&error), "the audit trail cannot be written");
            ApiError::from(QueryError::Audit(error))
        })
    }

    /// What an extractor made of the request, taken after the token was checked; a
    /// request it refused is recorded as answered with that refusal.
    fn parsed<'a, T, Refusal: Into<ApiError>>(
        &self,
        asked: Asked<'a>,
        extracted: Result<T, Refusal>,
    ) -> Result<(Asked<'a>, T), ApiError> {
        match extracted {
            Ok(value) => Ok((asked, value)),
            Err(refusal) => self.audited(asked, Err(refusal.into())),
        }
    }

    /// Records what was asked (its entry filled in) and how it ended, then gives the
    /// answer, or the error.
    fn audited<T>(&self, asked: Asked, result: Result<T, ApiError>) -> Result<T, ApiError> {
        let Asked {
            user,
            mut entry,
            started,
        } = asked;
        entry.user = Some(user.name.clone());
        entry.role = Some(user.role.as_str().to_string());
        entry.duration_ms = started.elapsed().as_millis() as u64;
        if let Err(error) = &result {
            entry.outcome = error.code.to_string();
        }
        self.record(&entry)?;
        result
    }
}

fn error_path(error: &ServiceError) -> Option<&std::path::Path> {
    match error {
        ServiceError::Audit { path, .. } => Some(path),
        _ => None,
    }
}

/// The query routes, for the users of `config`.
pub fn build(config: &Config, engine: Arc<Engine>) -> Result<Router, QueryError> {
    build_with_hubs(config, engine, &[], &prometheus::Registry::new())
}

/// The query routes, for the users of `config` and for `hubs` with the tokens they
/// push with (role `hub`); the service's metrics go into `registry`.
pub fn build_with_hubs(
    config: &Config,
    engine: Arc<Engine>,
    hubs: &[techmon_service::HubCredential],
    registry: &prometheus::Registry,
) -> Result<Router, QueryError> {
    if let Some(user) = config.users.iter().find(|u| u.role == Role::Hub) {
        return Err(QueryError::HubRoleConfigured {
            user: user.name.clone(),
        });
    }
    let hub_users = hubs.iter().map(|h| QueryUser {
        name: format!("hub:{}", h.hub_id),
        role: Role::Hub,
        token_sha256: h.token_sha256.clone(),
        hub: Some(h.hub_id.clone()),
        microdata_until: None,
    });
    let users: Vec<QueryUser> = config.users.iter().cloned().chain(hub_users).collect();
    let users = TokenMap::from_hashes(users.iter().map(|u| (u.token_sha256.as_str(), u.clone())))
        .map_err(|user| QueryError::BadTokenHash { user })?;
    let service = QueryService {
        engine,
        exports: Arc::from(config.exports.as_path()),
        users: Arc::new(users),
        audit: Arc::new(
            AuditLog::open(&config.audit, config.audit_retention_days)
                .map_err(QueryError::Audit)?,
        ),
        admission: Arc::new(crate::admission::Admission::new(
            config.max_concurrent,
            config.max_concurrent_per_user,
            Duration::from_secs(config.queue_seconds),
            crate::metrics::Metrics::new(registry).map_err(QueryError::Metrics)?,
        )),
        min_persons: config.min_persons,
        releases: Arc::new(Releases::open(&config.output_control).map_err(|e| {
            QueryError::Released {
                path: config.output_control.clone(),
                reason: e.to_string(),
            }
        })?),
        cell_key_noise: config.cell_key_noise.clone(),
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
        .route("/v1/audit", get(audit))
        .route("/v1/me", get(me))
        .merge(crate::dashboard::routes())
        // DUO files are some megabytes.
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
        .with_state(service))
}

/// Runs every request of `router` on `runtime`, so that queries, which can keep a
/// thread busy for a while between yields, take that runtime's threads and not those
/// of the services beside them (ingest and the transform under `techmon serve`).
pub fn on_runtime(router: Router, runtime: tokio::runtime::Handle) -> Router {
    router.layer(axum::middleware::from_fn(
        move |request: axum::extract::Request, next: axum::middleware::Next| {
            let answer = runtime.spawn(next.run(request));
            async move {
                answer.await.unwrap_or_else(|e| {
                    tracing::error!(error = %e, "a query request's task ended without an answer");
                    ApiError::new(
                        StatusCode::INTERNAL_SERVER_ERROR,
                        "internal",
                        "the request ended without an answer",
                    )
                    .into_response()
                })
            }
        },
    ))
}

/// `GET /healthz`, `GET /readyz` (the lake answers) and `GET /metrics` (of `registry`)
/// for the query service on its own; under `techmon serve` ingest's answer them.
pub fn probes(engine: Arc<Engine>, registry: prometheus::Registry) -> Router {
    let ready: techmon_service::Readiness = Arc::new(move || {
        let engine = Arc::clone(&engine);
        Box::pin(async move {
            // The latest versions of every table, as a query would open them (kept
            // while the lake is unchanged).
            let opened = engine.session(&TableVersions::default()).await;
            opened.map(|_| ()).map_err(|e| {
                tracing::warn!(error = %e, "the lake does not answer");
                ApiError {
                    retry_after: Some(5),
                    ..ApiError::new(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "lake_unavailable",
                        "the lake does not answer",
                    )
                }
            })
        })
    });
    techmon_service::probes(ready, registry)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

async fn sql(
    State(service): State<QueryService>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Response, ApiError> {
    let asked = service.authorize(&headers, Role::Researcher, AuditAction::Query)?;
    let (mut asked, body) = service.parsed(asked, body)?;
    let user = asked.user;
    let started = asked.started;
    asked.entry.sql = Some(body.clone());
    let disclosure = service.disclosure(&mut asked);
    let answered = async {
        let disclosure = disclosure?;
        let _admitted = service.admission.admit(&user.name).await?;
        let format = Format::from_accept(header_text(&headers, header::ACCEPT.as_str()))?;
        let pins: TableVersions = header_text(&headers, VERSIONS_HEADER)
            .unwrap_or("")
            .parse()
            .map_err(QueryError::from)?;
        let answer = service
            .engine
            .query_as(&body, &pins, &user.scope(), &disclosure)
            .await?;
        let suppressed = answer.suppressed.as_ref();
        let bytes = format.encode(
            &answer.schema,
            &answer.batches,
            &answer.versions,
            suppressed,
        )?;
        let rows = answer.row_count();
        Ok::<_, ApiError>((format, answer.versions, bytes, rows, answer.suppressed))
    }
    .await;
    if let Ok((_, versions, bytes, rows, suppressed)) = &answered {
        asked.entry.table_versions = Some(versions.to_string());
        asked.entry.rows = Some(*rows as u64);
        asked.entry.bytes = Some(bytes.len() as u64);
        if let Some(suppressed) = suppressed {
            asked.entry.detail = Some(format!("suppressed {}", suppressed.header()));
        }
    }
    let (format, versions, bytes, rows, suppressed) = service.audited(asked, answered)?;
    tracing::info!(
        user = %user.name,
        rows,
        format = format.name(),
        elapsed_ms = started.elapsed().as_millis() as u64,
        "query answered"
    );
    Ok(answer_response(
        format,
        &versions,
        suppressed.as_ref(),
        bytes,
    ))
}

/// An answer with its content type and the versions it was computed from.
pub(crate) fn answer_response(
    format: Format,
    versions: &TableVersions,
    suppressed: Option<&Suppressed>,
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
    if let Some(suppressed) = suppressed
        && let Ok(value) = HeaderValue::from_str(&suppressed.header())
    {
        headers.insert(SUPPRESSED_HEADER, value);
    }
    response
}

async fn tables(
    State(service): State<QueryService>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    service.authorize(&headers, Role::Researcher, AuditAction::Tables)?;
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
    parameters: Result<Query<ImportParameters>, QueryRejection>,
    body: Result<bytes::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let asked = service.authorize(&headers, Role::Admin, AuditAction::Import)?;
    let (asked, Query(parameters)) = service.parsed(asked, parameters)?;
    let (mut asked, body) = service.parsed(asked, body)?;
    let user = asked.user;
    asked.entry.detail = Some(format!("source {}", parameters.source));
    asked.entry.bytes = Some(body.len() as u64);
    let imported = async {
        let school_year = match parameters.school_year.as_deref() {
            None => None,
            Some(text) => Some(techmon_schemas::codes::SchoolYear::parse(text).ok_or_else(
                || {
                    ApiError::new(
                        StatusCode::BAD_REQUEST,
                        "bad_school_year",
                        "school_year must look like 2024/25",
                    )
                },
            )?),
        };
        Ok::<_, ApiError>(
            crate::reference::import(
                service.engine.catalogue().location(),
                &parameters.source,
                &body,
                school_year,
            )
            .await?,
        )
    }
    .await;
    if let Ok(report) = &imported {
        asked.entry.detail = Some(format!(
            "source {}, {} {}, imported {}",
            report.source, report.table, report.school_year, report.imported
        ));
        asked.entry.table_versions = Some(format!("{}={}", report.table, report.table_version));
        asked.entry.rows = Some(report.rows as u64);
    }
    let report = service.audited(asked, imported)?;
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
    parameters: Result<Query<KpiParameters>, QueryRejection>,
) -> Result<Response, ApiError> {
    let asked = service.authorize(&headers, Role::Researcher, AuditAction::Kpis)?;
    let (mut asked, Query(parameters)) = service.parsed(asked, parameters)?;
    let user = asked.user;
    asked.entry.detail = Some(format!(
        "year {:?}, hub {:?}",
        parameters.year, parameters.hub
    ));
    let disclosure = service.disclosure(&mut asked);
    let answered = match (service.admission.admit(&user.name).await, disclosure) {
        (Ok(_admitted), Ok(disclosure)) => {
            kpi_answer(
                &service,
                &headers,
                &parameters,
                user.hub.as_deref(),
                disclosure,
            )
            .await
        }
        (Err(refused), _) => Err(refused),
        (_, Err(error)) => Err(error.into()),
    };
    if let Ok((versions, bytes, rows, _)) = &answered {
        asked.entry.table_versions = Some(versions.to_string());
        asked.entry.rows = Some(*rows as u64);
        asked.entry.bytes = Some(bytes.len() as u64);
    }
    let (versions, bytes, _, suppressed) = service.audited(asked, answered)?;
    Ok(answer_response(
        Format::Json,
        &versions,
        suppressed.as_ref(),
        bytes,
    ))
}

/// The KPI report's rows asked for, as JSON: (versions, bytes, rows, what was
/// suppressed). A hub (`own`) gets its own rows and the region's, which its SQL cannot
/// compute.
async fn kpi_answer(
    service: &QueryService,
    headers: &HeaderMap,
    parameters: &KpiParameters,
    own: Option<&str>,
    disclosure: Disclosure,
) -> Result<(TableVersions, Vec<u8>, usize, Option<Suppressed>), ApiError> {
    if let (Some(own), Some(hub)) = (own, &parameters.hub)
        && hub != own
        && hub != "region"
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a hub sees its own KPIs and the region's, not {hub}'s"),
        ));
    }
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
    if let Some(own) = own {
        // A hub id as configured: lower-case words with dashes, checked at start.
        conditions.push(format!("hub_id IN ('{own}', 'region')"));
    }
    let sql = format!(
        "SELECT kpi, band, hub_id, year, school_year, unit, actual, target, met, description \
         FROM kpi_report WHERE {} ORDER BY year, hub_id, kpi, band",
        conditions.join(" AND ")
    );
    let pins: TableVersions = header_text(headers, VERSIONS_HEADER)
        .unwrap_or("")
        .parse()
        .map_err(QueryError::from)?;
    let answer = service
        .engine
        .query_as(&sql, &pins, &Scope::AllHubs, &disclosure)
        .await?;
    let bytes = Format::Json.encode(
        &answer.schema,
        &answer.batches,
        &answer.versions,
        answer.suppressed.as_ref(),
    )?;
    let rows = answer.row_count();
    Ok((answer.versions, bytes, rows, answer.suppressed))
}

/// Runs an export (analyst role); answers with its provenance record, 201 when made
/// now and 200 when the same export existed.
async fn create_export(
    State(service): State<QueryService>,
    headers: HeaderMap,
    request: Result<axum::Json<crate::exports::ExportRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let asked = service.authorize(&headers, Role::Analyst, AuditAction::Export)?;
    let (mut asked, axum::Json(request)) = service.parsed(asked, request)?;
    let user = asked.user;
    asked.entry.sql = Some(request.sql.clone());
    // An export is a publication: aggregates only, whatever the role.
    let disclosure = service
        .releases
        .of(&user.name)
        .map(|released| Disclosure::Aggregates {
            min_persons: service.min_persons,
            released,
            cell_key_noise: service.cell_key_noise.contains(&user.role),
        });
    let exported = match (service.admission.admit(&user.name).await, disclosure) {
        (Ok(_admitted), Ok(disclosure)) => crate::exports::export(
            &service.engine,
            &service.exports,
            &request,
            &user.name,
            &disclosure,
        )
        .await
        .map_err(ApiError::from),
        (Err(refused), _) => Err(refused),
        (_, Err(error)) => Err(error.into()),
    };
    if let Ok((provenance, made_now)) = &exported {
        asked.entry.detail = Some(format!(
            "export {}, made now {made_now}",
            provenance.export_id
        ));
        asked.entry.table_versions = Some(provenance.table_versions.to_string());
        asked.entry.rows = Some(provenance.rows as u64);
    }
    let (provenance, made_now) = service.audited(asked, exported)?;
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
    let mut asked = service.authorize(&headers, Role::Analyst, AuditAction::ExportDownload)?;
    asked.entry.detail = Some(format!("export {id}"));
    let read = (|| {
        let provenance = read_provenance(&service.exports, &id)?;
        let bytes = std::fs::read(
            service
                .exports
                .join(format!("{}.{}", provenance.export_id, provenance.format)),
        )
        .map_err(|_| QueryError::UnknownExport {
            export_id: id.clone(),
        })?;
        Ok::<_, QueryError>((provenance, bytes))
    })()
    .map_err(ApiError::from);
    if let Ok((provenance, bytes)) = &read {
        asked.entry.table_versions = Some(provenance.table_versions.to_string());
        asked.entry.rows = Some(provenance.rows as u64);
        asked.entry.bytes = Some(bytes.len() as u64);
    }
    let (provenance, bytes) = service.audited(asked, read)?;
    let format = Format::from_name(&provenance.format).unwrap_or(Format::Parquet);
    Ok(answer_response(
        format,
        &provenance.table_versions,
        None,
        bytes,
    ))
}

async fn export_provenance(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut asked = service.authorize(&headers, Role::Analyst, AuditAction::ExportDownload)?;
    asked.entry.detail = Some(format!("provenance of export {id}"));
    let read = read_provenance(&service.exports, &id).map_err(ApiError::from);
    let provenance = service.audited(asked, read)?;
    Ok(axum::Json(provenance).into_response())
}

/// Who the token is: name, role, and a hub token's hub (the dashboard opens on it).
async fn me(State(service): State<QueryService>, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = service
        .authorize(&headers, Role::Researcher, AuditAction::Me)?
        .user;
    Ok(axum::Json(serde_json::json!({
        "user": user.name, "role": user.role.as_str(), "hub": user.hub
    }))
    .into_response())
}

/// The audit trail (admin role): `since` (a UTC day), `user`, `limit` (the latest).
async fn audit(
    State(service): State<QueryService>,
    headers: HeaderMap,
    filter: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let asked = service.authorize(&headers, Role::Admin, AuditAction::AuditRead)?;
    let (mut asked, Query(filter)) = service.parsed(asked, filter)?;
    asked.entry.detail = Some(format!(
        "since {:?}, user {:?}, limit {:?}",
        filter.since, filter.user, filter.limit
    ));
    let read = audit::read(service.audit.folder(), &filter)
        .map_err(|e| ApiError::from(QueryError::Audit(e)));
    if let Ok(entries) = &read {
        asked.entry.rows = Some(entries.len() as u64);
    }
    let entries = service.audited(asked, read)?;
    Ok(axum::Json(serde_json::json!({ "entries": entries })).into_response())
}

/// The OpenAPI description of the whole HTTP API (ingest and query).
async fn openapi() -> Response {
    (
        [(header::CONTENT_TYPE, "application/json")],
        include_str!("../api/openapi.json"),
    )
        .into_response()
}
