use std::path::PathBuf;

use techmon_eventlog::LogError;

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
    /// Whether running again later may succeed (the log or the lake's storage was
    /// unavailable), as opposed to a configuration or data problem.
    pub fn is_retryable(&self) -> bool {
        match self {
            TransformError::Log(e) => e.is_retryable(),
            TransformError::LakeAccess(e) => e.is_retryable(),
            TransformError::Lake { .. } | TransformError::PositionsTaken { .. } => true,
            _ => false,
        }
    }
}
