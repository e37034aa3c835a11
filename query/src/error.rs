//! [`QueryError`]: what went wrong, whose fault it is, and the HTTP answer for it.

use axum::http::StatusCode;
use deltalake::datafusion::error::DataFusionError;
use techmon_lake::LakeError;
use techmon_service::{ApiError, Fault, ServiceError};

#[derive(Debug, thiserror::Error)]
pub enum QueryError {
    #[error("the SQL does not parse or plan: {}", .0.strip_backtrace())]
    Sql(#[source] Box<DataFusionError>),
    #[error(
        "{statement} is not allowed: the query service only answers SELECT, WITH, EXPLAIN, DESCRIBE and SHOW"
    )]
    StatementRefused { statement: String },
    /// Output control: the answer would disclose single persons.
    #[error("{reason}")]
    Disclosure { reason: String },
    #[error("send exactly one SQL statement per request (got {count})")]
    NotOneStatement { count: usize },
    #[error("the answer has more than {max_rows} rows; aggregate, filter or add a LIMIT")]
    TooManyRows { max_rows: usize },
    #[error(
        "the query ran out of its memory limit of {limit_mib} MiB (after spilling what could spill)"
    )]
    MemoryLimit { limit_mib: usize },
    #[error("the query did not finish within its time limit of {seconds} s")]
    Timeout { seconds: u64 },
    #[error("no table {table} in the catalogue")]
    UnknownTable { table: String },
    #[error("table {table} has no version {version}: {source}")]
    VersionUnavailable {
        table: String,
        version: u64,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error(
        "cannot answer in {accept}: ask for application/json, text/csv, application/vnd.apache.arrow.stream or application/vnd.apache.parquet"
    )]
    UnsupportedFormat { accept: String },
    #[error("export: {reason}")]
    BadExport { reason: String },
    #[error("no export {export_id}")]
    UnknownExport { export_id: String },
    #[error("cannot store the export at {path}: {source}")]
    ExportStore {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lake table {table}: {source}")]
    Lake {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error(transparent)]
    LakeAccess(#[from] LakeError),
    #[error("{context}: {source}")]
    Engine {
        context: String,
        #[source]
        source: Box<DataFusionError>,
    },
    #[error("cannot write the answer as {format}: {source}")]
    Encode {
        format: &'static str,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
    #[error(transparent)]
    Access(ServiceError),
    #[error(
        "query user {user}: role hub is for the hubs' own tokens (ingest.hubs), not query.users"
    )]
    HubRoleConfigured { user: String },
    /// Output control's record of what was released must hold every answer: without
    /// it, none is given.
    #[error("no answer is given when what was released cannot be kept in {path}: {source}")]
    Released {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("registering the query metrics: {0}")]
    Metrics(#[source] prometheus::Error),
    #[error("{0}")]
    ValueTooLarge(crate::bounded::ValueTooLarge),
    #[error("{}: try again when others have ended, or ask for less", .0.strip_backtrace())]
    ServiceMemory(#[source] Box<DataFusionError>),
    /// The trail must hold every answer: without it, none is given.
    #[error("no answer is given when {0}")]
    Audit(#[source] ServiceError),
}

impl QueryError {
    pub(crate) fn lake(table: &str, source: deltalake::DeltaTableError) -> Self {
        Self::Lake {
            table: table.to_string(),
            source: Box::new(source),
        }
    }

    pub(crate) fn engine(context: &str, source: DataFusionError) -> Self {
        Self::Engine {
            context: context.to_string(),
            source: Box::new(source),
        }
    }

    /// An error of the engine while running a researcher's query: the researcher's
    /// fault when the SQL does not plan, a limit when memory ran out, else ours.
    pub(crate) fn from_query(source: DataFusionError, memory_limit_mib: usize) -> Self {
        match source.find_root() {
            DataFusionError::ResourcesExhausted(message)
                if message.contains(crate::memory::SERVICE_MEMORY_FULL) =>
            {
                Self::ServiceMemory(Box::new(source))
            }
            DataFusionError::ResourcesExhausted(_) => Self::MemoryLimit {
                limit_mib: memory_limit_mib,
            },
            DataFusionError::External(e) if e.is::<crate::bounded::ValueTooLarge>() => {
                match e.downcast_ref::<crate::bounded::ValueTooLarge>() {
                    Some(too_large) => Self::ValueTooLarge(too_large.clone()),
                    None => Self::engine("query", source),
                }
            }
            DataFusionError::SQL(..)
            | DataFusionError::Plan(_)
            | DataFusionError::SchemaError(..)
            | DataFusionError::NotImplemented(_) => Self::Sql(Box::new(source)),
            _ => Self::engine("query", source),
        }
    }

    /// Whose fault: the request's, an outage of what the service needs (the lake's
    /// storage, the audit trail's disk, memory taken by other queries: asking again
    /// later helps), or the service's own.
    pub fn fault(&self) -> Fault {
        match self {
            Self::Lake { .. }
            | Self::ExportStore { .. }
            | Self::ServiceMemory(_)
            | Self::Audit(_)
            | Self::Released { .. } => Fault::External,
            Self::LakeAccess(e) if e.is_retryable() => Fault::External,
            Self::LakeAccess(LakeError::VersionPin { .. }) => Fault::User,
            Self::LakeAccess(_)
            | Self::Engine { .. }
            | Self::Encode { .. }
            | Self::Access(_)
            | Self::HubRoleConfigured { .. }
            | Self::Metrics(_) => Fault::Internal,
            Self::Sql(_)
            | Self::StatementRefused { .. }
            | Self::Disclosure { .. }
            | Self::NotOneStatement { .. }
            | Self::TooManyRows { .. }
            | Self::MemoryLimit { .. }
            | Self::Timeout { .. }
            | Self::UnknownTable { .. }
            | Self::VersionUnavailable { .. }
            | Self::UnsupportedFormat { .. }
            | Self::BadExport { .. }
            | Self::UnknownExport { .. }
            | Self::ValueTooLarge(_) => Fault::User,
        }
    }

    /// The HTTP status: 4xx for the request's faults, 503 for an outage, 500 for the
    /// service's own.
    pub fn status(&self) -> StatusCode {
        match self.fault() {
            Fault::External => return StatusCode::SERVICE_UNAVAILABLE,
            Fault::Internal => return StatusCode::INTERNAL_SERVER_ERROR,
            Fault::User => {}
        }
        match self {
            Self::Sql(_)
            | Self::NotOneStatement { .. }
            | Self::UnknownTable { .. }
            | Self::LakeAccess(LakeError::VersionPin { .. })
            | Self::BadExport { .. } => StatusCode::BAD_REQUEST,
            Self::UnknownExport { .. } => StatusCode::NOT_FOUND,
            Self::StatementRefused { .. } | Self::Disclosure { .. } => StatusCode::FORBIDDEN,
            Self::VersionUnavailable { .. } => StatusCode::NOT_FOUND,
            Self::UnsupportedFormat { .. } => StatusCode::NOT_ACCEPTABLE,
            Self::TooManyRows { .. }
            | Self::MemoryLimit { .. }
            | Self::Timeout { .. }
            | Self::ValueTooLarge(_) => StatusCode::UNPROCESSABLE_ENTITY,
            // Outages and the service's own faults are answered above.
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The stable machine-readable code of the HTTP answer.
    pub fn code(&self) -> &'static str {
        match self {
            Self::Sql(_) => "bad_sql",
            Self::StatementRefused { .. } => "statement_not_allowed",
            Self::Disclosure { .. } => "disclosure_refused",
            Self::NotOneStatement { .. } => "not_one_statement",
            Self::TooManyRows { .. } => "row_limit",
            Self::MemoryLimit { .. } => "memory_limit",
            Self::Timeout { .. } => "timeout",
            Self::ValueTooLarge(_) => "value_too_large",
            Self::ServiceMemory(_) => "memory_busy",
            Self::UnknownTable { .. } => "unknown_table",
            Self::LakeAccess(LakeError::VersionPin { .. }) => "bad_version_pin",
            Self::VersionUnavailable { .. } => "version_unavailable",
            Self::UnsupportedFormat { .. } => "unsupported_format",
            Self::BadExport { .. } => "bad_export",
            Self::UnknownExport { .. } => "unknown_export",
            Self::ExportStore { .. } => "export_store",
            Self::Lake { .. } | Self::LakeAccess(_) => "lake_unavailable",
            Self::Engine { .. }
            | Self::Encode { .. }
            | Self::Access(_)
            | Self::HubRoleConfigured { .. }
            | Self::Metrics(_) => "internal",
            Self::Audit(_) => "audit_unavailable",
            Self::Released { .. } => "releases_unavailable",
        }
    }
}

impl From<QueryError> for ApiError {
    fn from(error: QueryError) -> Self {
        if error.status().is_server_error() {
            tracing::error!(%error, "query failed");
        }
        let answer = ApiError::new(error.status(), error.code(), error.to_string());
        match error.fault() {
            // An outage: ask again after a pause.
            Fault::External => ApiError {
                retry_after: Some(5),
                ..answer
            },
            Fault::User | Fault::Internal => answer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_outage_is_a_503_to_try_again_and_our_own_fault_a_500() {
        let outage = QueryError::lake(
            "participants",
            deltalake::DeltaTableError::Generic("the object store did not answer".into()),
        );
        let answer = ApiError::from(outage);
        assert_eq!(answer.status, StatusCode::SERVICE_UNAVAILABLE);
        assert_eq!(answer.code, "lake_unavailable");
        assert!(answer.retry_after.is_some());

        let pin = QueryError::from(LakeError::VersionPin { pin: "x".into() });
        let answer = ApiError::from(pin);
        assert_eq!(
            (answer.status, answer.code),
            (StatusCode::BAD_REQUEST, "bad_version_pin")
        );
        assert_eq!(answer.retry_after, None);

        let ours = QueryError::engine("query", DataFusionError::Internal("a bug".into()));
        let answer = ApiError::from(ours);
        assert_eq!(
            (answer.status, answer.code),
            (StatusCode::INTERNAL_SERVER_ERROR, "internal")
        );
        assert_eq!(answer.retry_after, None);
    }
}
