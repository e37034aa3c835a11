//! techmon's reference data, a second way data enters the lake: DUO's open
//! onderwijsdata files read in every layout DUO has published ([`duo`], pure), and
//! imported as Delta tables through [`techmon_lake`] ([`import()`]), by a CLI or the
//! admin route `POST /v1/reference/duo` ([`routes`]).

pub mod duo;
mod http;
mod import;
pub mod registry;

pub use http::routes;
pub use import::{ImportReport, import};

/// What can go wrong in an import.
#[derive(Debug, thiserror::Error)]
pub enum ReferenceError {
    #[error("reference file {source_name}: {source}")]
    File {
        source_name: String,
        #[source]
        source: duo::DuoError,
    },
    #[error(transparent)]
    Lake(#[from] techmon_lake::LakeError),
    #[error("lake table {table}: {source}")]
    Table {
        table: &'static str,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    /// An administrator's change that cannot be made as asked.
    #[error("{0}")]
    Change(String),
    #[error("lake table {table}: {source}")]
    Query {
        table: &'static str,
        #[source]
        source: Box<deltalake::datafusion::error::DataFusionError>,
    },
}

impl ReferenceError {
    fn table(table: &'static str, source: deltalake::DeltaTableError) -> Self {
        Self::Table {
            table,
            source: Box::new(source),
        }
    }

    fn query(table: &'static str, source: deltalake::datafusion::error::DataFusionError) -> Self {
        Self::Query {
            table,
            source: Box::new(source),
        }
    }

    /// Whose fault: the file's, an outage of the lake's storage, or ours.
    pub fn fault(&self) -> techmon_service::Fault {
        use techmon_service::Fault;
        match self {
            Self::File { .. } | Self::Change(_) => Fault::User,
            Self::Lake(e) if e.is_retryable() => Fault::External,
            Self::Table { .. } => Fault::External,
            Self::Lake(_) | Self::Query { .. } => Fault::Internal,
        }
    }
}

impl From<ReferenceError> for techmon_service::ApiError {
    fn from(error: ReferenceError) -> Self {
        use axum::http::StatusCode;
        use techmon_service::{ApiError, Fault};
        match error.fault() {
            Fault::User => ApiError::new(
                StatusCode::BAD_REQUEST,
                match error {
                    ReferenceError::Change(_) => "bad_change",
                    _ => "bad_reference_file",
                },
                error.to_string(),
            ),
            Fault::External => ApiError::unavailable(5, "lake_unavailable", error.to_string()),
            Fault::Internal => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal",
                error.to_string(),
            ),
        }
    }
}
