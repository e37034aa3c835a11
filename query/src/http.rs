//! The query service's HTTP API: `POST /v1/sql` and `GET /v1/tables`, with bearer
//! tokens per user and role.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::{JsonRejection, QueryRejection, StringRejection};
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use serde::Deserialize;
use techmon_lake::TableVersions;
use techmon_service::audit::{self, AuditAction, AuditFilter, AuditLog};
use techmon_service::{
    Access, ApiError, Asked, ErrorAnswer, HubCredential, OpenApiRouter, Role, User,
};
use utoipa_axum::routes;

use crate::QueryError;
use crate::disclosure::{Disclosure, Releases, Suppressed};
use crate::effects::Track;
use crate::engine::{Engine, Limits, Scope};
use crate::exports::{CodebookFormat, ExportRequest, Provenance};
use crate::formats::{Format, JsonAnswer};

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
    /// Where the PostgreSQL endpoint listens (see [`crate::postgres`]); none when
    /// absent.
    #[serde(default)]
    pub postgres_listen: Option<SocketAddr>,
    /// Where the Arrow Flight SQL endpoint listens (see [`crate::flight`]); none when
    /// absent.
    #[serde(default)]
    pub flight_listen: Option<SocketAddr>,
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
    pub users: Vec<User>,
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

/// Whose rows `user`'s queries read.
pub fn scope(user: &User) -> Scope {
    user.hub.clone().map_or(Scope::AllHubs, Scope::Hub)
}

/// How `user`'s answers are released: aggregates only for a researcher without a
/// microdata grant; a hub reads its own rows, which it sent.
pub fn disclosure(
    user: &User,
    min_persons: u64,
    today: chrono::NaiveDate,
    releases: &Releases,
    cell_key_noise: bool,
) -> Result<Disclosure, QueryError> {
    Ok(match user.role {
        Role::Researcher if !user.microdata(today) => Disclosure::Aggregates {
            min_persons,
            released: releases.of(&user.name)?,
            cell_key_noise,
        },
        _ => Disclosure::RowLevel,
    })
}

/// What answers users: the engine, who may ask, the queue of queries and what was
/// released; shared by the HTTP API and the PostgreSQL endpoint.
#[derive(Clone)]
pub struct QueryService {
    pub(crate) engine: Arc<Engine>,
    exports: Arc<std::path::Path>,
    pub(crate) access: Access,
    admission: Arc<crate::admission::Admission>,
    min_persons: u64,
    releases: Arc<Releases>,
    /// The roles whose counts get Cell Key Method noise.
    cell_key_noise: Vec<Role>,
}

impl QueryService {
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
        disclosure(
            &asked.user,
            self.min_persons,
            today,
            &self.releases,
            self.cell_key_noise.contains(&asked.user.role),
        )
    }

    /// The user holding `token`, for an endpoint (`PostgreSQL`, `Flight SQL`) where
    /// researchers, analysts and admins ask but hubs do not; a refusal is in the
    /// audit trail.
    pub(crate) fn sql_endpoint_user(&self, token: &str, endpoint: &str) -> Result<User, ApiError> {
        let user = self
            .access
            .authorize_token(token, Role::Researcher, AuditAction::Query)?
            .user
            .into_owned();
        if user.role != Role::Hub {
            return Ok(user);
        }
        let refusal = ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!(
                "a hub's token pushes events and asks over HTTP; {endpoint} is for researchers, analysts and admins"
            ),
        );
        let mut entry = audit::AuditEntry::new(AuditAction::Forbidden, std::time::Instant::now());
        entry.user = Some(user.name.clone());
        entry.role = Some(user.role.as_str().into());
        entry.outcome = refusal.code.to_string();
        entry.detail = Some(endpoint.to_string());
        self.access.record(&entry)?;
        Err(refusal)
    }

    /// The answer to `sql` as the asker may have it: in their scope, released as
    /// their role says, once a query slot is theirs.
    pub(crate) async fn answer(
        &self,
        asked: &mut Asked<'_>,
        sql: &str,
        pins: &TableVersions,
    ) -> Result<crate::Answer, ApiError> {
        let disclosure = self.disclosure(asked)?;
        let user = asked.user.clone();
        let _admitted = self.admission.admit(&user.name).await?;
        let answer = self
            .engine
            .query_as(sql, pins, &scope(&user), &disclosure)
            .await?;
        asked.entry.table_versions = Some(answer.versions.to_string());
        asked.entry.rows = Some(answer.row_count() as u64);
        if let Some(suppressed) = &answer.suppressed {
            asked.entry.detail = Some(format!("suppressed {}", suppressed.header()));
        }
        Ok(answer)
    }

    /// The columns the answer to `sql` would have for `user`, and the types of its
    /// parameters (`$1`, …), without running it.
    pub(crate) async fn answer_schema(
        &self,
        user: &User,
        sql: &str,
        pins: &TableVersions,
    ) -> Result<(SchemaRef, Vec<Option<DataType>>), QueryError> {
        let disclosure = disclosure(
            user,
            self.min_persons,
            chrono::Utc::now().date_naive(),
            &self.releases,
            self.cell_key_noise.contains(&user.role),
        )?;
        self.engine
            .answer_schema(sql, pins, &scope(user), &disclosure)
            .await
    }
}

/// The query routes, for the users of `config`.
pub fn build(config: &Config, engine: Arc<Engine>) -> Result<OpenApiRouter, QueryError> {
    routes(
        config,
        engine,
        access(config, &[])?,
        &prometheus::Registry::new(),
    )
}

/// Who may ask: the users of `config`, and `hubs` with the tokens they push with
/// (role `hub`), with the audit trail of `config`.
pub fn access(config: &Config, hubs: &[HubCredential]) -> Result<Access, QueryError> {
    if let Some(user) = config.users.iter().find(|u| u.role == Role::Hub) {
        return Err(QueryError::HubRoleConfigured {
            user: user.name.clone(),
        });
    }
    let hub_users = hubs.iter().map(|h| User::hub(&h.hub_id, &h.token_sha256));
    let users: Vec<User> = config.users.iter().cloned().chain(hub_users).collect();
    let audit =
        AuditLog::open(&config.audit, config.audit_retention_days).map_err(QueryError::Audit)?;
    Access::new(&users, audit).map_err(QueryError::Access)
}

/// The query routes for the users of `access`; the service's metrics go into
/// `registry`.
pub fn routes(
    config: &Config,
    engine: Arc<Engine>,
    access: Access,
    registry: &prometheus::Registry,
) -> Result<OpenApiRouter, QueryError> {
    Ok(routes_of(service(config, engine, access, registry)?))
}

/// The service answering the users of `access`, for the HTTP routes and the
/// PostgreSQL endpoint; its metrics go into `registry`.
pub fn service(
    config: &Config,
    engine: Arc<Engine>,
    access: Access,
    registry: &prometheus::Registry,
) -> Result<QueryService, QueryError> {
    Ok(QueryService {
        engine,
        exports: Arc::from(config.exports.as_path()),
        access,
        admission: Arc::new(crate::admission::Admission::new(
            config.max_concurrent,
            config.max_concurrent_per_user,
            Duration::from_secs(config.queue_seconds),
            crate::metrics::Metrics::new(registry).map_err(QueryError::Metrics)?,
        )),
        min_persons: config.min_persons,
        releases: Arc::new(Releases::open(&config.output_control).map_err(|source| {
            QueryError::Released {
                path: config.output_control.clone(),
                source,
            }
        })?),
        cell_key_noise: config.cell_key_noise.clone(),
    })
}

/// The query routes of `service`.
pub fn routes_of(service: QueryService) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(sql))
        .routes(routes!(tables))
        .routes(routes!(kpis))
        .routes(routes!(effects))
        .routes(routes!(create_export))
        .routes(routes!(export_data))
        .routes(routes!(export_provenance))
        .routes(routes!(export_codebook))
        .routes(routes!(audit))
        .routes(routes!(me))
        .merge(crate::dashboard::routes())
        .with_state(service)
}

/// Runs every request of `router` on `runtime`, so that queries, which can keep a
/// thread busy for a while between yields, take that runtime's threads and not those
/// of the services beside them (ingest and the transform under `techmon serve`).
pub fn on_runtime(router: OpenApiRouter, runtime: tokio::runtime::Handle) -> OpenApiRouter {
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
pub fn probes(engine: Arc<Engine>, registry: prometheus::Registry) -> OpenApiRouter {
    let ready: techmon_service::Readiness = Arc::new(move || {
        let engine = Arc::clone(&engine);
        Box::pin(async move {
            // The latest versions of every table, as a query would open them (kept
            // while the lake is unchanged).
            let opened = engine.session(&TableVersions::default()).await;
            opened.map(|_| ()).map_err(|e| {
                tracing::warn!(error = %e, "the lake does not answer");
                ApiError::unavailable(5, "lake_unavailable", "the lake does not answer")
            })
        })
    });
    techmon_service::probes(ready, registry)
}

fn header_text<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

/// Answer one read-only SQL statement (researcher role)
///
/// SELECT, WITH, EXPLAIN, DESCRIBE or SHOW only; the format follows `Accept`. Limits
/// on memory, time and rows end a query with a clear error.
#[utoipa::path(post, path = "/v1/sql", tag = "query", security(("bearer" = [])),
    params(
        ("techmon-table-versions" = Option<String>, Header, description = "Pin table versions (`activities=3,participants=7`), as stated by an earlier answer, to reproduce it"),
        ("Accept" = Option<String>, Header, description = "`application/json` (default), `text/csv`, `application/vnd.apache.arrow.stream` or `application/vnd.apache.parquet`"),
    ),
    request_body(content = String, content_type = "text/plain", example = "SELECT hub_id, count(*) FROM activities GROUP BY hub_id"),
    responses(
        (status = 200, description = "The rows", headers(
            ("techmon-table-versions" = String, description = "The lake table versions the answer was computed from"),
            ("techmon-suppressed" = String, description = "What output control left out of a researcher's answer: `k=10; rows=2; cells=0; differencing=1`, and `; noise=cell_key`, `; views=…` when they apply (docs/researchers.md, section 8); absent for row-level answers"),
        ),
            content(
                (JsonAnswer = "application/json"),
                (String = "text/csv"),
                ("application/vnd.apache.arrow.stream"),
                ("application/vnd.apache.parquet"),
                ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
            )),
        (status = 400, description = "The SQL does not parse or names what is not there, is more than one statement, the body is no UTF-8, or a version pin is malformed (`bad_sql`, `not_one_statement`, `unknown_table`, `bad_request`, `bad_version_pin`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "Not a read-only statement, or an answer output control does not release (`statement_not_allowed`, `disclosure_refused`)", body = ErrorAnswer),
        (status = 404, description = "A pinned table version is no longer kept (`version_unavailable`)", body = ErrorAnswer),
        (status = 406, description = "No format of `Accept` is served (`unsupported_format`)", body = ErrorAnswer),
        (status = 413, description = "The SQL is over 2 MiB (`body_too_large`)", body = ErrorAnswer),
        (status = 422, description = "The query went over a limit: rows, memory, time or the size of a value (`row_limit`, `memory_limit`, `timeout`, `value_too_large`)", body = ErrorAnswer),
        (status = 429, description = "This user already runs as many queries as one may (`too_many_queries`)", body = ErrorAnswer),
        (status = 503, description = "Not available now: the lake, the audit trail, the record of releases, the export store, a query slot or memory (`lake_unavailable`, `audit_unavailable`, `releases_unavailable`, `export_store`, `busy`, `memory_busy`; with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn sql(
    State(service): State<QueryService>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Response, ApiError> {
    let asked = service
        .access
        .authorize(&headers, Role::Researcher, AuditAction::Query)?;
    let (mut asked, body) = service.access.parsed(asked, body)?;
    let user = asked.user.clone();
    let started = asked.started;
    asked.entry.sql = Some(body.clone());
    let answered = async {
        let format = Format::from_accept(header_text(&headers, header::ACCEPT.as_str()))?;
        let pins = pins_of(&headers)?;
        let answer = service.answer(&mut asked, &body, &pins).await?;
        let bytes = format.encode(
            &answer.schema,
            &answer.batches,
            &answer.versions,
            answer.suppressed.as_ref(),
        )?;
        asked.entry.bytes = Some(bytes.len() as u64);
        let rows = answer.row_count();
        Ok::<_, ApiError>((format, answer.versions, bytes, rows, answer.suppressed))
    }
    .await;
    let (format, versions, bytes, rows, suppressed) = service.access.audited(asked, answered)?;
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

/// Tables and views with their columns and descriptions (researcher role)
#[utoipa::path(get, path = "/v1/tables", tag = "query", security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"tables\": [{\"name\", \"kind\", \"description\", \"columns\"}]}`", body = Object),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 503, description = "Not available now: the lake, the audit trail, the record of releases, the export store, a query slot or memory (`lake_unavailable`, `audit_unavailable`, `releases_unavailable`, `export_store`, `busy`, `memory_busy`; with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn tables(
    State(service): State<QueryService>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    service
        .access
        .authorize(&headers, Role::Researcher, AuditAction::Tables)?;
    let tables = service.engine.describe().await?;
    Ok(axum::Json(serde_json::json!({ "tables": tables })).into_response())
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct KpiParameters {
    /// KPI year Y (school year Y/Y+1); all years when absent.
    year: Option<i32>,
    /// A hub id, `region` (a region's hubs together) or `regions` (every region's);
    /// all when absent.
    hub: Option<String>,
    /// A region id: its hubs' rows and its own; all regions when absent.
    region: Option<String>,
}

/// The KPI report of seed 003: actual, target, met (researcher role)
///
/// The view `kpi_report` as JSON, with the versions it was computed from.
#[utoipa::path(get, path = "/v1/kpis", tag = "query", security(("bearer" = [])),
    params(KpiParameters, ("techmon-table-versions" = Option<String>, Header, description = "Pin table versions (`activities=3,participants=7`), as stated by an earlier answer, to reproduce it")),
    responses(
        (status = 200, description = "The KPI rows", headers(
            ("techmon-table-versions" = String, description = "The lake table versions the answer was computed from"),
            ("techmon-suppressed" = String, description = "What output control left out of a researcher's answer: `k=10; rows=2; cells=0; differencing=1`, and `; noise=cell_key`, `; views=…` when they apply (docs/researchers.md, section 8); absent for row-level answers"),
        ), body = JsonAnswer),
        (status = 400, description = "A parameter is wrong, or a version pin is malformed (`bad_request`, `unknown_hub`, `bad_version_pin`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "A hub asked for another hub's KPIs, or output control does not release the answer (`forbidden`, `disclosure_refused`)", body = ErrorAnswer),
        (status = 404, description = "A pinned table version is no longer kept (`version_unavailable`)", body = ErrorAnswer),
        (status = 422, description = "The report went over a limit of the service (`row_limit`, `memory_limit`, `timeout`)", body = ErrorAnswer),
        (status = 429, description = "This user already runs as many queries as one may (`too_many_queries`)", body = ErrorAnswer),
        (status = 503, description = "Not available now: the lake, the audit trail, the record of releases, the export store, a query slot or memory (`lake_unavailable`, `audit_unavailable`, `releases_unavailable`, `export_store`, `busy`, `memory_busy`; with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn kpis(
    State(service): State<QueryService>,
    headers: HeaderMap,
    parameters: Result<Query<KpiParameters>, QueryRejection>,
) -> Result<Response, ApiError> {
    report(&service, &headers, parameters).await
}

/// A report's answer as JSON: (versions, bytes, rows, what was suppressed).
type ReportAnswer = (TableVersions, Vec<u8>, usize, Option<Suppressed>);

/// The parameters of one of the research reports (`GET /v1/kpis`, `GET /v1/effects`),
/// which say how it is answered.
trait Report {
    const ACTION: AuditAction;

    /// What the audit entry says was asked.
    fn detail(&self) -> String;

    /// The rows asked for; `own` is the hub asking, if a hub asks.
    async fn answer(
        &self,
        service: &QueryService,
        headers: &HeaderMap,
        own: Option<&str>,
        disclosure: Disclosure,
    ) -> Result<ReportAnswer, ApiError>;
}

/// A report request: authorized (researchers and hubs), admitted, answered, audited,
/// and sent as JSON with the versions it was computed from.
async fn report<P: Report>(
    service: &QueryService,
    headers: &HeaderMap,
    parameters: Result<Query<P>, QueryRejection>,
) -> Result<Response, ApiError> {
    let asked = service
        .access
        .authorize(headers, Role::Researcher, P::ACTION)?;
    let (mut asked, Query(parameters)) = service.access.parsed(asked, parameters)?;
    let user = asked.user.clone();
    asked.entry.detail = Some(parameters.detail());
    let disclosure = service.disclosure(&mut asked);
    let answered = match (service.admission.admit(&user.name).await, disclosure) {
        (Ok(_admitted), Ok(disclosure)) => {
            parameters
                .answer(service, headers, user.hub.as_deref(), disclosure)
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
    let (versions, bytes, _, suppressed) = service.access.audited(asked, answered)?;
    Ok(answer_response(
        Format::Json,
        &versions,
        suppressed.as_ref(),
        bytes,
    ))
}

/// The KPI report's rows asked for. A hub (`own`) gets its own rows and the region's,
/// which its SQL cannot compute.
impl Report for KpiParameters {
    const ACTION: AuditAction = AuditAction::Kpis;

    fn detail(&self) -> String {
        format!(
            "year {:?}, hub {:?}, region {:?}",
            self.year, self.hub, self.region
        )
    }

    async fn answer(
        &self,
        service: &QueryService,
        headers: &HeaderMap,
        own: Option<&str>,
        disclosure: Disclosure,
    ) -> Result<ReportAnswer, ApiError> {
        let mut conditions = hub_conditions(
            "hub_id",
            self.hub.as_deref(),
            self.region.as_deref(),
            own,
            "KPIs",
        )?;
        if let Some(year) = self.year {
            conditions.push(format!("year = {year}"));
        }
        let sql = format!(
            "SELECT kpi, band, hub_id, region_id, year, school_year, unit, actual, target, met, description \
             FROM kpi_report WHERE {} ORDER BY year, region_id, hub_id, kpi, band",
            conditions.join(" AND ")
        );
        let pins = pins_of(headers)?;
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
}

/// Whether `id` can name a hub or a region: lower-case words with dashes.
fn is_id(id: &str) -> bool {
    id.bytes()
        .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// The SQL conditions on `column` (a hub, `region` or `regions`) and `region_id` for
/// the hub and region asked for (`asked`, `region`) and the hub asking (`own`, whose
/// token sees its own rows, its region's and all regions', of `what`).
fn hub_conditions(
    column: &str,
    asked: Option<&str>,
    region: Option<&str>,
    own: Option<&str>,
    what: &str,
) -> Result<Vec<String>, ApiError> {
    if let (Some(own), Some(hub)) = (own, asked)
        && hub != own
        && hub != "region"
        && hub != "regions"
    {
        return Err(ApiError::new(
            StatusCode::FORBIDDEN,
            "forbidden",
            format!("a hub sees its own {what} and its region's, not {hub}'s"),
        ));
    }
    let mut conditions = vec!["TRUE".to_string()];
    // Anything but a lower-case word with dashes names no hub and no region.
    for (value, column, code, what) in [
        (asked, column, "unknown_hub", "hub"),
        (region, "region_id", "bad_request", "region"),
    ] {
        let Some(value) = value else { continue };
        if !is_id(value) {
            return Err(ApiError::new(
                StatusCode::BAD_REQUEST,
                code,
                format!("no {what} {value}"),
            ));
        }
        conditions.push(format!("{column} = '{value}'"));
    }
    if let Some(own) = own {
        // A hub id as configured or registered: lower-case words with dashes.
        conditions.push(format!(
            "({column} IN ('{own}', 'regions') OR ({column} = 'region' AND region_id = \
             (SELECT region_id FROM hubs WHERE hub_id = '{own}')))"
        ));
    }
    Ok(conditions)
}

/// The table versions pinned by the request's header (none: the latest).
fn pins_of(headers: &HeaderMap) -> Result<TableVersions, ApiError> {
    Ok(header_text(headers, VERSIONS_HEADER)
        .unwrap_or("")
        .parse()
        .map_err(QueryError::from)?)
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct EffectParameters {
    /// A hub id, `region` (a region's reached schools) or `regions` (every
    /// region's); all when absent.
    hub: Option<String>,
    /// A region id: its hubs' estimates and its own; all regions when absent.
    region: Option<String>,
    /// `vmbo`, `havo_vwo` or `all` (the default).
    track: Option<String>,
}

/// The effect measurement's answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
pub struct EffectsAnswer {
    /// The lake table versions the estimates were computed from.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    table_versions: TableVersions,
    /// The design, in plain words.
    method: &'static str,
    /// What the estimates rest on.
    assumptions: &'static [&'static str],
    /// Rows of `effect_estimates`: per scope, the overall effect and its checks.
    #[schema(value_type = Vec<Object>)]
    estimates: serde_json::Value,
    /// Rows of `effect_event_study`: per scope and school years since treatment.
    #[schema(value_type = Vec<Object>)]
    event_study: serde_json::Value,
}

/// The effect of reaching schools on technical profile choice (researcher role)
///
/// `effect_estimates` and `effect_event_study` (docs/researchers.md, section 9) with
/// the method and its assumptions in plain words, computed from one set of table
/// versions.
#[utoipa::path(get, path = "/v1/effects", tag = "query", security(("bearer" = [])),
    params(EffectParameters, ("techmon-table-versions" = Option<String>, Header, description = "Pin table versions (`activities=3,participants=7`), as stated by an earlier answer, to reproduce it")),
    responses(
        (status = 200, description = "The estimates", headers(
            ("techmon-table-versions" = String, description = "The lake table versions the answer was computed from"),
        ), body = EffectsAnswer),
        (status = 400, description = "A parameter is wrong, or a version pin is malformed (`bad_request`, `unknown_hub`, `bad_version_pin`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "A hub asked for another hub's estimates (`forbidden`)", body = ErrorAnswer),
        (status = 404, description = "A pinned table version is no longer kept (`version_unavailable`)", body = ErrorAnswer),
        (status = 422, description = "The estimates went over a limit of the service (`row_limit`, `memory_limit`, `timeout`)", body = ErrorAnswer),
        (status = 429, description = "This user already runs as many queries as one may (`too_many_queries`)", body = ErrorAnswer),
        (status = 503, description = "Not available now: the lake, the audit trail, a query slot or memory (`lake_unavailable`, `audit_unavailable`, `busy`, `memory_busy`; with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn effects(
    State(service): State<QueryService>,
    headers: HeaderMap,
    parameters: Result<Query<EffectParameters>, QueryRejection>,
) -> Result<Response, ApiError> {
    report(&service, &headers, parameters).await
}

/// The effect rows asked for. A hub (`own`) gets its own estimates and the region's.
impl Report for EffectParameters {
    const ACTION: AuditAction = AuditAction::Effects;

    fn detail(&self) -> String {
        format!(
            "hub {:?}, region {:?}, track {:?}",
            self.hub, self.region, self.track
        )
    }

    async fn answer(
        &self,
        service: &QueryService,
        headers: &HeaderMap,
        own: Option<&str>,
        disclosure: Disclosure,
    ) -> Result<ReportAnswer, ApiError> {
        let track = match self.track.as_deref() {
            None => Track::All,
            Some(name) => Track::parse(name).ok_or_else(|| {
                ApiError::new(
                    StatusCode::BAD_REQUEST,
                    "bad_request",
                    format!("no track {name}: vmbo, havo_vwo or all"),
                )
            })?,
        };
        let mut conditions = hub_conditions(
            "scope",
            self.hub.as_deref(),
            self.region.as_deref(),
            own,
            "effects",
        )?;
        conditions.push(format!("track = '{}'", track.as_str()));
        let conditions = conditions.join(" AND ");
        let estimates = service
            .engine
            .query_as(
                &format!(
                    "SELECT * FROM effect_estimates WHERE {conditions} ORDER BY region_id, scope"
                ),
                &pins_of(headers)?,
                &Scope::AllHubs,
                &disclosure,
            )
            .await?;
        // The event study at the estimates' versions, whatever was committed since.
        let event_study = service
            .engine
            .query_as(
                &format!(
                    "SELECT * FROM effect_event_study WHERE {conditions} ORDER BY region_id, scope, years_since"
                ),
                &estimates.versions,
                &Scope::AllHubs,
                &disclosure,
            )
            .await?;
        let rows_of = |answer: &crate::engine::Answer| -> Result<serde_json::Value, ApiError> {
            let json =
                Format::Json.encode(&answer.schema, &answer.batches, &answer.versions, None)?;
            let mut json: serde_json::Value =
                serde_json::from_slice(&json).map_err(|e| QueryError::Encode {
                    format: Format::Json.name(),
                    source: e.into(),
                })?;
            Ok(json["rows"].take())
        };
        let answer = EffectsAnswer {
            table_versions: estimates.versions.clone(),
            method: crate::effects::METHOD,
            assumptions: crate::effects::ASSUMPTIONS,
            estimates: rows_of(&estimates)?,
            event_study: rows_of(&event_study)?,
        };
        let bytes = serde_json::to_vec(&answer).map_err(|e| QueryError::Encode {
            format: Format::Json.name(),
            source: e.into(),
        })?;
        let rows = estimates.row_count() + event_study.row_count();
        Ok((estimates.versions, bytes, rows, estimates.suppressed))
    }
}

/// Export a query's answer with small-cell suppression (analyst role)
///
/// Answers with the export's provenance record: 201 when made now, 200 when the same
/// export existed.
#[utoipa::path(post, path = "/v1/exports", tag = "query", security(("bearer" = [])),
    request_body = ExportRequest,
    responses(
        (status = 201, description = "Made now: its provenance record", body = Provenance),
        (status = 200, description = "The same export existed (same request, same table versions): its provenance record", body = Provenance),
        (status = 400, description = "The body is no JSON, the SQL is wrong, or the export cannot be made as asked (`bad_request`, `bad_export`, `bad_sql`, `not_one_statement`, `unknown_table`, `bad_version_pin`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not analyst or admin, or the statement is refused (`forbidden`, `statement_not_allowed`)", body = ErrorAnswer),
        (status = 415, description = "The body is not sent as `application/json` (`unsupported_media_type`)", body = ErrorAnswer),
        (status = 422, description = "The body lacks a field, or the query went over a limit (`invalid_request`, `row_limit`, `memory_limit`, `timeout`, `value_too_large`)", body = ErrorAnswer),
        (status = 429, description = "This user already runs as many queries as one may (`too_many_queries`)", body = ErrorAnswer),
        (status = 503, description = "Not available now: the lake, the audit trail, the record of releases, the export store, a query slot or memory (`lake_unavailable`, `audit_unavailable`, `releases_unavailable`, `export_store`, `busy`, `memory_busy`; with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn create_export(
    State(service): State<QueryService>,
    headers: HeaderMap,
    request: Result<axum::Json<crate::exports::ExportRequest>, JsonRejection>,
) -> Result<Response, ApiError> {
    let asked = service
        .access
        .authorize(&headers, Role::Analyst, AuditAction::Export)?;
    let (mut asked, axum::Json(request)) = service.access.parsed(asked, request)?;
    let user = asked.user.clone();
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
    let (provenance, made_now) = service.access.audited(asked, exported)?;
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

/// An analyst's request for what `detail` names of an export, once authorized.
fn export_request<'a>(
    service: &'a QueryService,
    headers: &HeaderMap,
    detail: String,
) -> Result<Asked<'a>, ApiError> {
    let mut asked =
        service
            .access
            .authorize(headers, Role::Analyst, AuditAction::ExportDownload)?;
    asked.entry.detail = Some(detail);
    Ok(asked)
}

/// A file of export `id`; a missing one is no such export.
fn export_file(path: &std::path::Path, id: &str) -> Result<Vec<u8>, QueryError> {
    std::fs::read(path).map_err(|_| QueryError::UnknownExport {
        export_id: id.into(),
    })
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

/// Download an export's file (analyst role)
#[utoipa::path(get, path = "/v1/exports/{id}", tag = "query", security(("bearer" = [])),
    params(("id" = String, Path, description = "The export's id, from its provenance record")),
    responses(
        (status = 200, description = "The file, Parquet, CSV or XLSX",
            headers(("techmon-table-versions" = String, description = "The lake table versions the export was computed from")),
            content(("application/vnd.apache.parquet"), (String = "text/csv"),
                ("application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not analyst or admin (`forbidden`)", body = ErrorAnswer),
        (status = 404, description = "No such export (`unknown_export`)", body = ErrorAnswer),
        (status = 503, description = "The audit trail cannot be written (`audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn export_data(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let mut asked = export_request(&service, &headers, format!("export {id}"))?;
    let read = (|| {
        let provenance = read_provenance(&service.exports, &id)?;
        let bytes = export_file(
            &service
                .exports
                .join(format!("{}.{}", provenance.export_id, provenance.format)),
            &id,
        )?;
        Ok::<_, QueryError>((provenance, bytes))
    })()
    .map_err(ApiError::from);
    if let Ok((provenance, bytes)) = &read {
        asked.entry.table_versions = Some(provenance.table_versions.to_string());
        asked.entry.rows = Some(provenance.rows as u64);
        asked.entry.bytes = Some(bytes.len() as u64);
    }
    let (provenance, bytes) = service.access.audited(asked, read)?;
    let format = Format::from_name(&provenance.format).unwrap_or(Format::Parquet);
    Ok(answer_response(
        format,
        &provenance.table_versions,
        None,
        bytes,
    ))
}

/// An export's provenance record (analyst role)
#[utoipa::path(get, path = "/v1/exports/{id}/provenance", tag = "query", security(("bearer" = [])),
    params(("id" = String, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The provenance record", body = Provenance),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not analyst or admin (`forbidden`)", body = ErrorAnswer),
        (status = 404, description = "No such export (`unknown_export`)", body = ErrorAnswer),
        (status = 503, description = "The audit trail cannot be written (`audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn export_provenance(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let asked = export_request(&service, &headers, format!("provenance of export {id}"))?;
    let read = read_provenance(&service.exports, &id).map_err(ApiError::from);
    let provenance = service.access.audited(asked, read)?;
    Ok(axum::Json(provenance).into_response())
}

/// An export's codebook (analyst role)
///
/// Every variable of the file with its type, description, unit or codes, derivation
/// and suppression, the export's provenance, and the tables and views it read at their
/// versions. JSON, or Markdown for people (`Accept: text/markdown`).
#[utoipa::path(get, path = "/v1/exports/{id}/codebook", tag = "query", security(("bearer" = [])),
    params(("id" = String, Path, description = "The export's id")),
    responses(
        (status = 200, description = "The codebook", content(
            (crate::codebook::Codebook = "application/json"), (String = "text/markdown"))),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not analyst or admin (`forbidden`)", body = ErrorAnswer),
        (status = 404, description = "No such export (`unknown_export`)", body = ErrorAnswer),
        (status = 503, description = "The audit trail cannot be written (`audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn export_codebook(
    State(service): State<QueryService>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let asked = export_request(&service, &headers, format!("codebook of export {id}"))?;
    let format = CodebookFormat::from_accept(header_text(&headers, header::ACCEPT.as_str()));
    let read = export_id(&id)
        .and_then(|id| {
            export_file(
                &crate::exports::codebook_path(&service.exports, id, format),
                id,
            )
        })
        .map_err(ApiError::from);
    let bytes = service.access.audited(asked, read)?;
    let mut response = bytes.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static(format.content_type()),
    );
    Ok(response)
}

/// Who the token is: name, role, and a hub token's hub (the dashboard opens on it)
#[utoipa::path(get, path = "/v1/me", tag = "query", security(("bearer" = [])),
    responses(
        (status = 200, description = "`{\"user\", \"role\", \"hub\"}`; role is hub, researcher, analyst or admin", body = Object),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 503, description = "The audit trail cannot be written (`audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn me(State(service): State<QueryService>, headers: HeaderMap) -> Result<Response, ApiError> {
    let user = service
        .access
        .authorize(&headers, Role::Researcher, AuditAction::Me)?
        .user;
    Ok(axum::Json(serde_json::json!({
        "user": user.name, "role": user.role.as_str(), "hub": user.hub
    }))
    .into_response())
}

/// The audit trail (admin role)
///
/// Every query, KPI request, export, export download, import, refused token and
/// reading of the trail, with user, SQL, table versions, rows, bytes, duration and
/// outcome; oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "query", security(("bearer" = [])),
    params(AuditFilter),
    responses(
        (status = 200, description = "`{\"entries\": [...]}`", body = Object),
        (status = 400, description = "A parameter is wrong (`bad_request`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not admin (`forbidden`)", body = ErrorAnswer),
        (status = 503, description = "The audit trail cannot be written (`audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn audit(
    State(service): State<QueryService>,
    headers: HeaderMap,
    filter: Result<Query<AuditFilter>, QueryRejection>,
) -> Result<Response, ApiError> {
    let asked = service
        .access
        .authorize(&headers, Role::Admin, AuditAction::AuditRead)?;
    let (mut asked, Query(filter)) = service.access.parsed(asked, filter)?;
    asked.entry.detail = Some(format!(
        "since {:?}, user {:?}, limit {:?}",
        filter.since, filter.user, filter.limit
    ));
    let read = audit::read(service.access.audit().folder(), &filter)
        .map_err(|e| ApiError::from(QueryError::Audit(e)));
    if let Ok(entries) = &read {
        asked.entry.rows = Some(entries.len() as u64);
    }
    let entries = service.access.audited(asked, read)?;
    Ok(axum::Json(serde_json::json!({ "entries": entries })).into_response())
}
