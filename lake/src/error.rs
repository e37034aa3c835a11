use std::path::PathBuf;

/// What can go wrong in reaching the lake.
#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    #[error("lake {lake}: {source}")]
    Location {
        lake: String,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error(
        "lake.storage option `{option}` does not apply to a lake at {scheme}:// \
         (a bucket takes object_store's aws_* options)"
    )]
    StorageOption { option: String, scheme: String },
    #[error("cannot create the lake folder {path}: {source}")]
    Folder {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("lake table {table}: {source}")]
    Table {
        table: &'static str,
        #[source]
        source: Box<deltalake::DeltaTableError>,
    },
    #[error("code list {list}: {source}")]
    CodeList {
        list: &'static str,
        #[source]
        source: deltalake::arrow::error::ArrowError,
    },
    #[error("table version pin `{pin}` is not of the form table=version")]
    VersionPin { pin: String },
}

impl LakeError {
    pub(crate) fn table(table: &'static str, source: deltalake::DeltaTableError) -> Self {
        Self::Table {
            table,
            source: Box::new(source),
        }
    }

    /// Whether trying again later may succeed: the lake's storage did not answer, as
    /// opposed to a wrong configuration or request.
    pub fn is_retryable(&self) -> bool {
        matches!(self, Self::Table { .. } | Self::Folder { .. })
    }
}
