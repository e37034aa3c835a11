//! Where the lake lives: a local folder, or a bucket of S3 or an S3-compatible
//! service (`s3://bucket/prefix`), with the object-store options to reach it.
//!
//! deltalake's own S3 support (`deltalake-aws`) brings the AWS SDK for a DynamoDB
//! lock that S3 has not needed since it learnt conditional writes. Here the lake's
//! commits go through deltalake's default log store, which writes each commit file
//! with put-if-absent (`If-None-Match: *` on S3), so two writers can never both
//! commit the same table version.

use std::collections::{BTreeMap, HashMap};
use std::str::FromStr as _;
use std::sync::{Arc, Once};

use deltalake::arrow::datatypes::{Field, Schema};
use deltalake::datafusion::error::DataFusionError;
use deltalake::kernel::StructType;
use deltalake::kernel::engine::arrow_conversion::TryIntoKernel as _;
use deltalake::logstore::{
    LogStore, LogStoreFactory, ObjectStoreFactory, ObjectStoreRef, StorageConfig, default_logstore,
    logstore_factories, object_store_factories,
};
use deltalake::protocol::SaveMode;
use deltalake::{DeltaResult, DeltaTable, DeltaTableBuilder, DeltaTableError, Path};
use futures::StreamExt as _;
use object_store::aws::{AmazonS3Builder, AmazonS3ConfigKey};
use serde::Deserialize;
use url::Url;

use crate::LakeError;
use crate::tables::Table;

/// URL schemes of the S3 store (`s3a` as Spark and Hadoop write it).
const S3_SCHEMES: [&str; 2] = ["s3", "s3a"];

/// Object-store options for a lake in a bucket (`[lake.storage]`), named
/// as `object_store` names them: `aws_endpoint`, `aws_region`, `aws_allow_http`,
/// `aws_access_key_id`, …. They override the `AWS_*` environment variables.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct StorageOptions(pub BTreeMap<String, String>);

/// By key only: the values hold credentials.
impl std::fmt::Debug for StorageOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.keys()).finish()
    }
}

/// The lake's root and the options every table under it is opened with.
#[derive(Debug, Clone)]
pub struct LakeLocation {
    root: Url,
    storage: StorageOptions,
}

impl LakeLocation {
    /// `lake` is a folder or a URL. For a bucket, an option the S3 store does not
    /// know is refused, so a misspelt one is an error rather than silently ignored.
    /// Other lakes do not use the options: a replay or compaction into a folder
    /// keeps the configuration of a service whose lake is in a bucket.
    pub fn new(lake: &str, storage: StorageOptions) -> Result<Self, LakeError> {
        register_s3();
        let root = deltalake::ensure_table_uri(lake).map_err(|source| LakeError::Location {
            lake: lake.to_string(),
            source: Box::new(source),
        })?;
        let unknown = storage
            .0
            .keys()
            .find(|key| AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase()).is_err());
        if let Some(option) = unknown.filter(|_| S3_SCHEMES.contains(&root.scheme())) {
            return Err(LakeError::StorageOption {
                option: option.clone(),
                scheme: root.scheme().to_string(),
            });
        }
        Ok(Self { root, storage })
    }

    pub fn root(&self) -> &Url {
        &self.root
    }

    /// The local folder of table `name`, for a lake on the local disk.
    pub fn local_folder(&self, name: &str) -> Option<std::path::PathBuf> {
        self.table_url(name).ok()?.to_file_path().ok()
    }

    /// The folder of table `name` under the lake's root.
    pub fn table_url(&self, name: &str) -> Result<Url, DeltaTableError> {
        let invalid = |e: url::ParseError| {
            DeltaTableError::InvalidTableLocation(format!("{} + {name}: {e}", self.root))
        };
        let base = if self.root.as_str().ends_with('/') {
            self.root.clone()
        } else {
            Url::parse(&format!("{}/", self.root)).map_err(invalid)?
        };
        base.join(&format!("{name}/")).map_err(invalid)
    }

    fn options(&self) -> HashMap<String, String> {
        self.storage.0.clone().into_iter().collect()
    }

    /// Table `name` at its latest version, or not yet initialised when it has no
    /// commit. A table is loaded only once its log has a file: the Delta kernel logs
    /// an error for every attempt to load one without, and a new lake is no error.
    pub async fn open(&self, name: &str) -> Result<DeltaTable, DeltaTableError> {
        let mut table = DeltaTableBuilder::from_url(self.table_url(name)?)?
            .with_storage_options(self.options())
            .build()?;
        let log = Path::from("_delta_log");
        let first_log_file = table
            .log_store()
            .object_store(None)
            .list(Some(&log))
            .next()
            .await
            .transpose()?;
        if first_log_file.is_some() {
            table.load().await?;
        }
        Ok(table)
    }

    /// `table` at its latest version, created (its columns and partitioning, no rows)
    /// when it has no commit yet, or given the added columns ([`Table::added_columns`]) it lacks when it was
    /// written by an older release; a local lake's folder is made when missing. Every
    /// commit that adds rows then builds on a version it read, and Delta's conflict
    /// check refuses it when a commit since then changed what it read (a first commit
    /// that races another is rebased onto the winner unchecked).
    pub async fn create(&self, table: &'static Table) -> Result<DeltaTable, LakeError> {
        if let Some(path) = self.local_folder(table.name) {
            std::fs::create_dir_all(&path).map_err(|source| LakeError::Folder { path, source })?;
        }
        let delta = self
            .open(table.name)
            .await
            .map_err(|e| LakeError::table(table.name, e))?;
        if delta.version().is_some() {
            return add_columns(table, delta).await;
        }
        let columns: StructType = table
            .arrow_schema()
            .as_ref()
            .try_into_kernel()
            .map_err(|e| LakeError::table(table.name, e.into()))?;
        delta
            .create()
            .with_save_mode(SaveMode::Ignore)
            .with_table_name(table.name)
            .with_comment(table.description)
            .with_columns(columns.fields().cloned())
            .with_partition_columns(table.partition_column())
            .with_configuration([(FILLED_COLUMNS, Some(all_filled(table)))])
            // A property of techmon's own, not one of Delta's.
            .with_raise_if_key_not_exists(false)
            .await
            .map_err(|e| LakeError::table(table.name, e))
    }

    /// Table `name` as it was at `version`.
    pub async fn open_version(
        &self,
        name: &str,
        version: u64,
    ) -> Result<DeltaTable, DeltaTableError> {
        DeltaTableBuilder::from_url(self.table_url(name)?)?
            .with_storage_options(self.options())
            .with_version(version)
            .load()
            .await
    }
}

/// The table property that names the added columns whose values are all filled
/// in: a table of this release has it from its creation, and one of an older release
/// once its rows are filled, so the next openings read only this property.
const FILLED_COLUMNS: &str = "techmon.filledColumns";

/// [`FILLED_COLUMNS`]' value when every column added to `table` is filled.
fn all_filled(table: &Table) -> String {
    table
        .added_columns()
        .iter()
        .map(|added| added.name())
        .collect::<Vec<_>>()
        .join(",")
}

/// `delta` with the added columns it lacks (one commit adds them), their values
/// filled in where they are empty (one commit each), then marked filled (one commit):
/// a stop between any two is repaired at the next opening.
async fn add_columns(table: &'static Table, delta: DeltaTable) -> Result<DeltaTable, LakeError> {
    let failed = |e| LakeError::table(table.name, e);
    let snapshot = delta.snapshot().map_err(failed)?;
    let filled: Vec<String> = snapshot
        .metadata()
        .configuration()
        .get(FILLED_COLUMNS)
        .map(|names| names.split(',').map(str::to_string).collect())
        .unwrap_or_default();
    let unfilled: Vec<_> = table
        .added_columns()
        .iter()
        .filter(|added| !filled.iter().any(|name| name == added.name()))
        .collect();
    if unfilled.is_empty() {
        return Ok(delta);
    }
    let schema = snapshot.schema();
    let missing: Vec<Field> = unfilled
        .iter()
        .filter(|added| schema.field(added.name()).is_none())
        .map(|added| added.field())
        .collect();
    let mut delta = if missing.is_empty() {
        delta
    } else {
        let fields: StructType = (&Schema::new(missing))
            .try_into_kernel()
            .map_err(|e| failed(e.into()))?;
        delta
            .add_columns()
            .with_fields(fields.fields().cloned().collect::<Vec<_>>())
            .await
            .map_err(failed)?
    };
    for added in unfilled {
        let Some(fill) = added.fill else {
            continue;
        };
        let (filled, metrics) = delta
            .update()
            .with_predicate(format!("{} IS NULL", added.name()))
            .with_update(added.name(), fill)
            .with_writer_properties(crate::writer_properties())
            .await
            .map_err(failed)?;
        tracing::info!(
            table = table.name,
            column = added.name(),
            rows = metrics.num_updated_rows,
            "a column added since this table was written, filled in"
        );
        delta = filled;
    }
    delta
        .set_tbl_properties()
        .with_properties(HashMap::from([(
            FILLED_COLUMNS.to_string(),
            all_filled(table),
        )]))
        .with_raise_if_not_exists(false)
        .await
        .map_err(failed)
}

/// The S3 store for `s3://` and `s3a://` lakes, with deltalake's default log store.
#[derive(Debug)]
struct S3Store;

impl ObjectStoreFactory for S3Store {
    fn parse_url_opts(
        &self,
        url: &Url,
        config: &StorageConfig,
    ) -> DeltaResult<(ObjectStoreRef, Path)> {
        // The `AWS_*` environment first, then the lake's options over it; other raw
        // options are deltalake's own (retries, limits).
        let mut builder = AmazonS3Builder::from_env().with_url(url.as_str());
        for (key, value) in &config.raw {
            if let Ok(key) = AmazonS3ConfigKey::from_str(&key.to_ascii_lowercase()) {
                builder = builder.with_config(key, value);
            }
        }
        let store: ObjectStoreRef = Arc::new(builder.build()?);
        let path = Path::from_url_path(url.path())
            .map_err(|e| DeltaTableError::InvalidTableLocation(format!("{url}: {e}")))?;
        Ok((store, path))
    }
}

impl LogStoreFactory for S3Store {
    fn with_options(
        &self,
        prefixed_store: ObjectStoreRef,
        root_store: ObjectStoreRef,
        location: &Url,
        options: &StorageConfig,
    ) -> DeltaResult<Arc<dyn LogStore>> {
        Ok(default_logstore(
            prefixed_store,
            root_store,
            location,
            options,
        ))
    }
}

fn register_s3() {
    static REGISTERED: Once = Once::new();
    REGISTERED.call_once(|| {
        for scheme in S3_SCHEMES {
            let url = Url::parse(&format!("{scheme}://")).expect("a scheme is a URL");
            object_store_factories().insert(url.clone(), Arc::new(S3Store));
            logstore_factories().insert(url, Arc::new(S3Store));
        }
    });
}

/// A DataFusion session in which `delta` (the version it holds) is the table `name`:
/// for SQL over one table.
pub async fn session_over(
    delta: &DeltaTable,
    name: &str,
) -> Result<deltalake::datafusion::prelude::SessionContext, DataFusionError> {
    let ctx = deltalake::datafusion::prelude::SessionContext::new();
    delta
        .update_datafusion_session(&ctx.state())
        .map_err(|e| DataFusionError::External(Box::new(e)))?;
    ctx.register_table(name, delta.table_provider().await?)?;
    Ok(ctx)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn options(pairs: &[(&str, &str)]) -> StorageOptions {
        StorageOptions(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn an_option_the_store_would_not_use_is_refused() {
        let bucket = options(&[("aws_endpoint", "http://127.0.0.1:9"), ("AWS_REGION", "x")]);
        assert!(LakeLocation::new("s3://research/lake", bucket.clone()).is_ok());
        assert!(LakeLocation::new("s3a://research/lake", bucket.clone()).is_ok());
        let misspelt = LakeLocation::new("s3://research/lake", options(&[("aws_endpiont", "x")]));
        assert!(
            matches!(&misspelt, Err(LakeError::StorageOption { option, scheme })
                if option == "aws_endpiont" && scheme == "s3"),
            "{misspelt:?}"
        );
        let folder = tempfile::tempdir().expect("temporary folder");
        let local = LakeLocation::new(&folder.path().to_string_lossy(), bucket);
        assert!(
            local.is_ok(),
            "a folder ignores a bucket's options: {local:?}"
        );
    }

    #[test]
    fn options_show_their_names_not_their_values() {
        let shown = format!(
            "{:?}",
            options(&[("aws_secret_access_key", "s3cr3t-value")])
        );
        assert!(shown.contains("aws_secret_access_key"), "{shown}");
        assert!(!shown.contains("s3cr3t-value"), "{shown}");
    }
}
