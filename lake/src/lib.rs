//! techmon's research lake: where it is ([`LakeLocation`]), what its tables are
//! ([`tables`], [`code_lists`]), how their files are written ([`writer_properties`])
//! and which versions an answer read ([`TableVersions`]). The transform and the
//! reference import write through it; the query service reads through it, and needs
//! nothing of the write path.

pub mod code_lists;
mod error;
pub mod glossary;
pub mod location;
pub mod registry;
pub mod tables;
mod versions;
mod writer;

pub use error::LakeError;
pub use location::{LakeLocation, StorageOptions, session_over};
pub use versions::TableVersions;
pub use writer::{ROW_GROUP_ROWS, writer_properties};

/// Where the lake is (`[lake]` in techmon's configuration).
#[derive(Debug, Clone, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// A folder, or a bucket of S3 or an S3-compatible service (`s3://bucket/prefix`).
    pub url: String,
    /// Options for a lake in a bucket: endpoint, region, credentials.
    #[serde(default)]
    pub storage: StorageOptions,
    /// How often ingest and the query API read the hubs registry again: retired hubs,
    /// tokens issued at run time.
    #[serde(default = "registry_refresh_seconds")]
    pub registry_refresh_seconds: u64,
}

fn registry_refresh_seconds() -> u64 {
    10
}

impl Config {
    pub fn location(&self) -> Result<LakeLocation, LakeError> {
        LakeLocation::new(&self.url, self.storage.clone())
    }
}
