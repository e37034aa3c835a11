//! A scan of one version of a lake table over the file list of that version, read
//! from its Delta log once. deltalake's own scan replays the log again for every
//! scan in a query (and a KPI view scans the same tables dozens of times), and tags
//! every row with its file to add partition values after reading.
//! Here DataFusion's Parquet scan adds them as constants.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Schema, SchemaRef};
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::common::stats::Precision;
use deltalake::datafusion::common::{ColumnStatistics, ScalarValue, Statistics};
use deltalake::datafusion::datasource::TableType;
use deltalake::datafusion::datasource::file_format::FileFormat;
use deltalake::datafusion::datasource::file_format::parquet::ParquetFormat;
use deltalake::datafusion::datasource::listing::PartitionedFile;
use deltalake::datafusion::datasource::object_store::ObjectStoreUrl;
use deltalake::datafusion::datasource::physical_plan::{FileGroup, FileScanConfigBuilder};
use deltalake::datafusion::datasource::table_schema::TableSchema;
use deltalake::datafusion::error::Result;
use deltalake::datafusion::logical_expr::{Expr, TableProviderFilterPushDown};
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::physical_plan::empty::EmptyExec;
use deltalake::delta_datafusion::engine::AsObjectStoreUrl;
use deltalake::{DeltaTable, DeltaTableError, ObjectMeta, Path};

#[derive(Debug)]
pub(crate) struct LakeScan {
    /// The table's columns in Delta's order. Partition values are plain strings, not
    /// dictionary-encoded: nearly every view groups by `school_year`, and a dictionary
    /// column sends DataFusion's grouping from its column-wise path to row encoding.
    /// Other strings are read as string views: hub, school and activity ids fit in a
    /// view's inline bytes, which grouping and joins compare without following a
    /// pointer.
    schema: SchemaRef,
    /// Where each column of `schema` is in the Parquet scan, which puts the partition
    /// columns after the columns the files hold.
    scan_columns: Vec<usize>,
    scan_schema: TableSchema,
    store: ObjectStoreUrl,
    files: FileGroup,
    statistics: Statistics,
}

impl LakeScan {
    /// `None` when the table needs a Delta reader feature (deletion vectors, column
    /// mapping) that only deltalake's scan reads; techmon's writer uses none, other
    /// writers of the same lake may.
    pub(crate) fn try_new(table: &DeltaTable) -> Result<Option<Self>, DeltaTableError> {
        let state = table.snapshot()?;
        if state.protocol().min_reader_version() > 1 {
            return Ok(None);
        }
        let partition_columns = state.metadata().partition_columns();
        let delta_schema = state.snapshot().arrow_schema();
        let is_partition = |name: &String| partition_columns.contains(name);
        let (partition_fields, file_fields): (Vec<_>, Vec<_>) = delta_schema
            .fields()
            .iter()
            .partition(|field| is_partition(field.name()));
        let file_fields: Vec<_> = file_fields
            .into_iter()
            .map(|field| match field.data_type() {
                DataType::Utf8 => {
                    Arc::new(field.as_ref().clone().with_data_type(DataType::Utf8View))
                }
                _ => Arc::clone(field),
            })
            .collect();
        let partition_fields: Vec<_> = partition_fields.into_iter().cloned().collect();
        let (mut next_file, mut next_partition) = (0, file_fields.len());
        let scan_columns: Vec<usize> = delta_schema
            .fields()
            .iter()
            .map(|field| {
                let counter = if is_partition(field.name()) {
                    &mut next_partition
                } else {
                    &mut next_file
                };
                *counter += 1;
                *counter - 1
            })
            .collect();
        let scan_schema = TableSchema::builder(Arc::new(Schema::new(file_fields.clone())))
            .with_table_partition_cols(partition_fields.clone())
            .build();
        let schema = Arc::new(Schema::new(
            scan_columns
                .iter()
                .map(|&c| Arc::clone(&scan_schema.table_schema().fields()[c]))
                .collect::<Vec<_>>(),
        ));

        let url = table.table_url();
        // The same key `Catalogue::connect` registers the table's store under.
        let store = url.as_object_store_url();
        let table_path = Path::from_url_path(url.path())?;
        let files = state
            .log_data()
            .iter()
            .map(|file| {
                let values = file.partition_values_map();
                let partition_values = partition_fields
                    .iter()
                    .map(|field| match values.get(field.name()).cloned().flatten() {
                        Some(value) => ScalarValue::try_from_string(value, field.data_type()),
                        None => ScalarValue::try_from(field.data_type()),
                    })
                    .collect::<Result<Vec<_>>>()?;
                let size = file.size() as u64;
                let statistics = Statistics {
                    num_rows: file
                        .num_records()
                        .map_or(Precision::Absent, Precision::Exact),
                    total_byte_size: Precision::Inexact(size as usize),
                    column_statistics: vec![ColumnStatistics::new_unknown(); file_fields.len()],
                };
                let location =
                    Path::from_iter(table_path.parts().chain(file.object_store_path().parts()));
                Ok(PartitionedFile::new_from_meta(ObjectMeta {
                    location,
                    last_modified: chrono::DateTime::from_timestamp_millis(
                        file.modification_time(),
                    )
                    .unwrap_or_default(),
                    size,
                    e_tag: None,
                    version: None,
                })
                .with_partition_values(partition_values)
                // After the partition values, to which it adds exact statistics.
                .with_statistics(Arc::new(statistics)))
            })
            .collect::<Result<Vec<_>>>()?;
        let statistics = Statistics {
            num_rows: files
                .iter()
                .filter_map(|f| f.statistics.as_ref())
                .fold(Precision::Exact(0), |sum, s| sum.add(&s.num_rows)),
            total_byte_size: Precision::Inexact(
                files.iter().map(|f| f.object_meta.size as usize).sum(),
            ),
            column_statistics: Statistics::unknown_column(scan_schema.table_schema()),
        };
        Ok(Some(Self {
            schema,
            scan_columns,
            scan_schema,
            store,
            files: FileGroup::new(files),
            statistics,
        }))
    }

    /// The distinct values of these columns (indices into [`LakeScan::schema`]) from
    /// the file list alone, in file order; `None` unless all are partition columns. A
    /// file's partition values are those of each of its rows; a file known to be empty
    /// adds none.
    pub(crate) fn distinct_partition_values(
        &self,
        columns: &[usize],
    ) -> Option<Vec<Vec<ScalarValue>>> {
        let in_files = self.scan_schema.file_schema().fields().len();
        let partitions: Vec<usize> = columns
            .iter()
            .map(|&c| self.scan_columns[c].checked_sub(in_files))
            .collect::<Option<_>>()?;
        let mut seen = std::collections::HashSet::new();
        let rows = self
            .files
            .iter()
            .filter(|file| {
                file.statistics
                    .as_ref()
                    .is_none_or(|s| s.num_rows != Precision::Exact(0))
            })
            .map(|file| {
                partitions
                    .iter()
                    .map(|&p| file.partition_values[p].clone())
                    .collect::<Vec<_>>()
            })
            .filter(|row| seen.insert(row.clone()))
            .collect();
        Some(rows)
    }
}

#[async_trait::async_trait]
impl TableProvider for LakeScan {
    fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    fn table_type(&self) -> TableType {
        TableType::Base
    }

    /// Inexact: DataFusion keeps filtering, and the filters it pushes into the
    /// Parquet scan skip files by partition value and row groups by statistics.
    fn supports_filters_pushdown(
        &self,
        filters: &[&Expr],
    ) -> Result<Vec<TableProviderFilterPushDown>> {
        Ok(vec![TableProviderFilterPushDown::Inexact; filters.len()])
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        if self.files.is_empty() {
            let schema = match projection {
                Some(columns) => Arc::new(self.schema.project(columns)?),
                None => Arc::clone(&self.schema),
            };
            return Ok(Arc::new(EmptyExec::new(schema)));
        }
        let columns = match projection {
            Some(columns) => columns.iter().map(|&c| self.scan_columns[c]).collect(),
            None => self.scan_columns.clone(),
        };
        let format = ParquetFormat::default().with_options(state.table_options().parquet.clone());
        let config = FileScanConfigBuilder::new(
            self.store.clone(),
            format.file_source(self.scan_schema.clone()),
        )
        .with_file_group(self.files.clone())
        .with_statistics(self.statistics.clone())
        .with_projection_indices(Some(columns))?
        .with_limit(limit)
        .build();
        format.create_physical_plan(state, config).await
    }
}
