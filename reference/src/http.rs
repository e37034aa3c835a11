//! `POST /v1/reference/duo` (admin role): a DUO file in the body, its name or URL and
//! school year in the query string; answers with the [`crate::ImportReport`].

use axum::extract::rejection::{BytesRejection, JsonRejection, QueryRejection, StringRejection};
use axum::extract::{DefaultBodyLimit, Json, Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use techmon_lake::LakeLocation;
use techmon_service::audit::AuditAction;
use techmon_service::{Access, ApiError, ErrorAnswer, OpenApiRouter, Role};
use utoipa_axum::routes;

use crate::ImportReport;
use crate::registry::{Change, ChangeReport, NewHub, NewRegion};

#[derive(Clone)]
struct Imports {
    access: Access,
    lake: LakeLocation,
}

/// The reference import's route, for the users of `access`, into `lake`.
pub fn routes(access: Access, lake: LakeLocation) -> OpenApiRouter {
    OpenApiRouter::new()
        .routes(routes!(import_reference))
        .routes(routes!(add_region))
        .routes(routes!(add_hub))
        .routes(routes!(retire_hub))
        .routes(routes!(set_targets))
        .routes(routes!(issue_token))
        // DUO files are some megabytes.
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
        .with_state(Imports { access, lake })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
struct ImportParameters {
    /// The file's name or URL, recorded with every row; imports are idempotent per
    /// source and school year.
    source: String,
    /// `2024/25`; else taken from the file name or its PEILDATUM column.
    school_year: Option<String>,
}

/// Import a DUO open onderwijsdata file (admin role)
///
/// A DUO file as DUO publishes it: VO pupils per vestiging, PO pupils by age, or
/// school addresses, in CSV (separator and encoding detected; columns matched by
/// meaning across DUO's older and newer layouts) or a CKAN `datastore_search` JSON
/// answer. Idempotent per source and school year.
#[utoipa::path(post, path = "/v1/reference/duo", tag = "reference", security(("bearer" = [])),
    params(ImportParameters),
    request_body(description = "The file as downloaded", content((String = "text/csv"), ("application/json"))),
    responses(
        (status = 200, description = "What was imported, into which table version", body = ImportReport),
        (status = 400, description = "The file is no DUO file techmon knows, or a parameter is wrong (`bad_reference_file`, `bad_request`, `bad_school_year`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not admin (`forbidden`)", body = ErrorAnswer),
        (status = 413, description = "The file is over 256 MiB (`body_too_large`)", body = ErrorAnswer),
        (status = 503, description = "The lake or the audit trail does not answer (`lake_unavailable`, `audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn import_reference(
    State(imports): State<Imports>,
    headers: HeaderMap,
    parameters: Result<Query<ImportParameters>, QueryRejection>,
    body: Result<bytes::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let access = &imports.access;
    let asked = access.authorize(&headers, Role::Admin, AuditAction::Import)?;
    let (asked, Query(parameters)) = access.parsed(asked, parameters)?;
    let (mut asked, body) = access.parsed(asked, body)?;
    let user = asked.user.clone();
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
            crate::import(&imports.lake, &parameters.source, &body, school_year).await?,
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
    let report = access.audited(asked, imported)?;
    tracing::info!(user = %user.name, table = report.table, source = %report.source, school_year = %report.school_year, rows = report.rows, imported = report.imported, "reference import");
    Ok(axum::Json(report).into_response())
}

/// Makes an administrator's change to the registry: authorized, applied in one commit,
/// audited. `asked` is the change, or why the request does not say one.
async fn registry_change(
    imports: &Imports,
    headers: &HeaderMap,
    asked: impl FnOnce() -> Result<Change, ApiError>,
) -> Result<ChangeReport, ApiError> {
    let access = &imports.access;
    let mut entry = access.authorize(headers, Role::Admin, AuditAction::RegistryChange)?;
    let user = entry.user.clone();
    let changed = async {
        let change = asked()?;
        Ok::<_, ApiError>(crate::registry::change(&imports.lake, change, &user.name).await?)
    }
    .await;
    if let Ok(report) = &changed {
        entry.entry.detail = Some(report.changed.clone());
        entry.entry.table_versions = Some(format!("{}={}", report.table, report.table_version));
        entry.entry.rows = Some(report.rows as u64);
    }
    let report = access.audited(entry, changed)?;
    tracing::info!(user = %user.name, table = report.table, version = report.table_version, changed = %report.changed, "registry change");
    Ok(report)
}

/// Add a region (admin role)
///
/// The region is in `regions` from the table version the answer names; its hubs are
/// added after it, and its KPI set and targets with `/v1/reference/kpi_targets`.
#[utoipa::path(post, path = "/v1/reference/regions", tag = "reference", security(("bearer" = [])),
    request_body = NewRegion,
    responses(
        (status = 200, description = "The regions' new table version", body = ChangeReport),
        (status = 400, description = "The region is known already, or a field is wrong (`bad_change`, `bad_request`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not admin (`forbidden`)", body = ErrorAnswer),
        (status = 503, description = "The lake or the audit trail does not answer (`lake_unavailable`, `audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn add_region(
    State(imports): State<Imports>,
    headers: HeaderMap,
    body: Result<Json<NewRegion>, JsonRejection>,
) -> Result<Response, ApiError> {
    let report = registry_change(&imports, &headers, || Ok(Change::AddRegion(body?.0))).await?;
    Ok(axum::Json(report).into_response())
}

/// Add a hub (admin role)
///
/// The hub is in `hubs` from the table version the answer names: views, KPI reports
/// and the dashboard take it up at the next query, without a restart.
#[utoipa::path(post, path = "/v1/reference/hubs", tag = "reference", security(("bearer" = [])),
    request_body = NewHub,
    responses(
        (status = 200, description = "The hubs' new table version", body = ChangeReport),
        (status = 400, description = "The hub is known already, or a field is wrong (`bad_change`, `bad_request`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not admin (`forbidden`)", body = ErrorAnswer),
        (status = 503, description = "The lake or the audit trail does not answer (`lake_unavailable`, `audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn add_hub(
    State(imports): State<Imports>,
    headers: HeaderMap,
    body: Result<Json<NewHub>, JsonRejection>,
) -> Result<Response, ApiError> {
    let report = registry_change(&imports, &headers, || Ok(Change::AddHub(body?.0))).await?;
    Ok(axum::Json(report).into_response())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
struct Retirement {
    /// The last school year the hub reports (`2026/27`).
    last_school_year: String,
}

/// Retire a hub (admin role)
///
/// The hub stays in `hubs`, with the last school year it reports.
#[utoipa::path(post, path = "/v1/reference/hubs/{hub_id}/retire", tag = "reference", security(("bearer" = [])),
    params(("hub_id" = String, Path, description = "The hub")),
    request_body = Retirement,
    responses(
        (status = 200, description = "The hubs' new table version", body = ChangeReport),
        (status = 400, description = "No such hub, or the school year is wrong (`bad_change`, `bad_request`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not admin (`forbidden`)", body = ErrorAnswer),
        (status = 503, description = "The lake or the audit trail does not answer (`lake_unavailable`, `audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn retire_hub(
    State(imports): State<Imports>,
    headers: HeaderMap,
    Path(hub_id): Path<String>,
    body: Result<Json<Retirement>, JsonRejection>,
) -> Result<Response, ApiError> {
    let report = registry_change(&imports, &headers, || {
        Ok(Change::RetireHub {
            hub_id,
            last_school_year: body?.0.last_school_year,
        })
    })
    .await?;
    Ok(axum::Json(report).into_response())
}

/// Set KPI targets (admin role)
///
/// CSV (`,` or `;`) with the columns `kpi`, `band`, `year` and `target` (an empty
/// target: none that year), and `region_id` (needed when there are several regions)
/// and `hub_id` (a hub's own target; empty: the region's and its hubs'). Each row
/// replaces the target of its region, hub, KPI, band and year; the others stay. A KPI
/// a region had no row of joins its KPI set. An answer pinned to the table's earlier
/// version still reads the earlier targets.
#[utoipa::path(post, path = "/v1/reference/kpi_targets", tag = "reference", security(("bearer" = [])),
    request_body(description = "The targets", content((String = "text/csv"))),
    responses(
        (status = 200, description = "The targets' new table version", body = ChangeReport),
        (status = 400, description = "A row names no known KPI, or a field is wrong (`bad_change`, `bad_request`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not admin (`forbidden`)", body = ErrorAnswer),
        (status = 503, description = "The lake or the audit trail does not answer (`lake_unavailable`, `audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn set_targets(
    State(imports): State<Imports>,
    headers: HeaderMap,
    body: Result<String, StringRejection>,
) -> Result<Response, ApiError> {
    let report = registry_change(&imports, &headers, || {
        Ok(Change::Targets(crate::registry::parse_targets(&body?)?))
    })
    .await?;
    Ok(axum::Json(report).into_response())
}

/// Issue a token to a hub (admin role)
///
/// A new random token for a known hub, answered this once (only its SHA-256 is kept,
/// in `hub_tokens`). Ingest takes the hub's events with it from its next reading of
/// the registry (`lake.registry_refresh_seconds`), without a restart.
#[utoipa::path(post, path = "/v1/reference/hubs/{hub_id}/tokens", tag = "reference", security(("bearer" = [])),
    params(("hub_id" = String, Path, description = "The hub")),
    responses(
        (status = 200, description = "The token, and the new table version", body = ChangeReport),
        (status = 400, description = "No such hub (`bad_change`)", body = ErrorAnswer),
        (status = 401, description = "No token, or an unknown one (`unauthorized`)", body = ErrorAnswer),
        (status = 403, description = "The token's role is not admin (`forbidden`)", body = ErrorAnswer),
        (status = 503, description = "The lake or the audit trail does not answer (`lake_unavailable`, `audit_unavailable`, with `Retry-After`)", body = ErrorAnswer),
    ))]
async fn issue_token(
    State(imports): State<Imports>,
    headers: HeaderMap,
    Path(hub_id): Path<String>,
) -> Result<Response, ApiError> {
    let (token, token_sha256) = techmon_service::new_token();
    let mut answer = registry_change(&imports, &headers, || {
        Ok(Change::IssueToken {
            hub_id,
            token_sha256,
        })
    })
    .await?;
    answer.token = Some(token);
    Ok(axum::Json(answer).into_response())
}
