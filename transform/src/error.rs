use std::path::PathBuf;

use techmon_eventlog::LogError;
use techmon_service::Fault;

#[derive(Debug, thiserror::Error)]
pub enum TransformError {
    #[error(transparent)]
    Log(#[from] LogError),
    #[error("lake table {table}: {source}")]
    Lake {
        table: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error(
        "lake table {table}: another transform worker committed log partitions {partitions:?} first; resume from the lake"
    )]
    PositionsTaken {
        table: &'static str,
        partitions: Vec<u32>,
    },
    #[error(transparent)]
    LakeAccess(#[from] techmon_lake::LakeError),
    #[error("rows for lake table {table}: {source}")]
    Rows {
        table: &'static str,
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },
    #[error("querying lake table {table}: {source}")]
    Query {
        table: &'static str,
        #[source]
        source: deltalake::datafusion::error::DataFusionError,
    },
    #[error("no lake table {0}")]
    UnknownTable(&'static str),
    #[error("a {0} event adds no row (it erases)")]
    NoRow(techmon_schemas::EventKind),
    #[error("transform state at {path}: {source}")]
    State {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    #[error("pseudonym key file {path}: {source}")]
    PseudonymKeyFile {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("the new key's id must differ from the current one ({key_id})")]
    SameKeyId { key_id: String },
    #[error(
        "TECHMON_PSEUDONYM_KEY is set, and would replace the new key: unset it for the rotation"
    )]
    KeyFromEnvironment,
    #[error("pseudonym key {key_id} is shorter than {min_bytes} bytes")]
    WeakPseudonymKey { key_id: String, min_bytes: usize },
}

impl TransformError {
    /// Whose fault: an outage of the log or the lake's storage (running again later
    /// resumes from the lake), the configuration, or the transform itself.
    pub fn fault(&self) -> Fault {
        match self {
            TransformError::Log(e) if e.is_retryable() => Fault::External,
            TransformError::LakeAccess(e) if e.is_retryable() => Fault::External,
            TransformError::Lake { .. }
            | TransformError::PositionsTaken { .. }
            | TransformError::State { .. } => Fault::External,
            TransformError::LakeAccess(_)
            | TransformError::PseudonymKeyFile { .. }
            | TransformError::SameKeyId { .. }
            | TransformError::KeyFromEnvironment
            | TransformError::WeakPseudonymKey { .. } => Fault::User,
            TransformError::Log(_)
            | TransformError::Rows { .. }
            | TransformError::Query { .. }
            | TransformError::UnknownTable(_)
            | TransformError::NoRow(_) => Fault::Internal,
        }
    }
}
