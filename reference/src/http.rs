//! `POST /v1/reference/duo` (admin role): a DUO file in the body, its name or URL and
//! school year in the query string; answers with the [`crate::ImportReport`].

use axum::Router;
use axum::extract::rejection::{BytesRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde::Deserialize;
use techmon_lake::LakeLocation;
use techmon_service::audit::AuditAction;
use techmon_service::{Access, ApiError, Role};

#[derive(Clone)]
struct Imports {
    access: Access,
    lake: LakeLocation,
}

/// The reference import's route, for the users of `access`, into `lake`.
pub fn routes(access: Access, lake: LakeLocation) -> Router {
    Router::new()
        .route("/v1/reference/duo", post(import_reference))
        // DUO files are some megabytes.
        .layer(DefaultBodyLimit::max(256 * 1024 * 1024))
        .with_state(Imports { access, lake })
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
    State(imports): State<Imports>,
    headers: HeaderMap,
    parameters: Result<Query<ImportParameters>, QueryRejection>,
    body: Result<bytes::Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let access = &imports.access;
    let asked = access.authorize(&headers, Role::Admin, AuditAction::Import)?;
    let (asked, Query(parameters)) = access.parsed(asked, parameters)?;
    let (mut asked, body) = access.parsed(asked, body)?;
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
