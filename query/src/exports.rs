//! Research datasets for publication: a query's answer with small-cell suppression,
//! written as Parquet or CSV, with a provenance record.
//!
//! Disclosure control. The answer is a table: its rows are the result rows, its
//! count columns the columns named in the request (else every integer column);
//! [`crate::disclosure::cells`] suppresses its small cells and those that would follow
//! from its totals.
//!
//! Person-level tables reach an export only as aggregates over at least
//! `query.min_persons` persons, for every role ([`crate::disclosure`]): an export is
//! a publication.
//!
//! The same request on the same table versions gives the same bytes: the rows are
//! sorted by all columns, and the files carry no time. The time and the user go into
//! the provenance record beside the file.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use deltalake::arrow::compute::{cast, concat_batches, take_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use techmon_lake::TableVersions;

use crate::QueryError;
use crate::codebook::Codebook;
use crate::disclosure::{Disclosure, Suppressed};
use crate::engine::{Engine, Scope};
use crate::formats::Format;

/// `POST /v1/exports`.
#[derive(Debug, Clone, Deserialize, Serialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// One SELECT or WITH statement.
    pub sql: String,
    /// `parquet` (default), `csv` or `xlsx` (the rows on a sheet `data`, the codebook
    /// on a sheet `codebook`).
    #[serde(default = "default_format")]
    pub format: String,
    /// Counts below it are suppressed.
    #[serde(default = "default_threshold")]
    pub threshold: i64,
    /// The columns holding counts (integers, or doubles whose values are all whole);
    /// every integer column when absent.
    #[serde(default)]
    pub count_columns: Option<Vec<String>>,
    /// Pinned table versions (`activities=3,…`); the latest when absent.
    #[serde(default)]
    pub table_versions: Option<String>,
}

fn default_format() -> String {
    "parquet".into()
}

fn default_threshold() -> i64 {
    10
}

/// What an export was made from, by whom and when.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Provenance {
    pub export_id: String,
    pub sql: String,
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    pub table_versions: TableVersions,
    pub threshold: i64,
    pub count_columns: Vec<String>,
    pub format: String,
    pub rows: usize,
    pub suppressed_primary: usize,
    pub suppressed_secondary: usize,
    pub data_sha256: String,
    pub created_by: String,
    pub created_at: String,
    /// What output control left out of the query's answer before the cells were
    /// suppressed.
    #[serde(default)]
    pub output_control: Option<Suppressed>,
}

/// Runs the export, or finds the same one made before (then `false`). Files go to
/// `folder` as `<export_id>.<format>`, `<export_id>.provenance.json` and the codebook
/// as `<export_id>.codebook.json` and `<export_id>.codebook.md`.
pub async fn export(
    engine: &Engine,
    folder: &Path,
    request: &ExportRequest,
    user: &str,
    disclosure: &Disclosure,
) -> Result<(Provenance, bool), QueryError> {
    let format = match request.format.as_str() {
        "parquet" => Format::Parquet,
        "csv" => Format::Csv,
        "xlsx" => Format::Xlsx,
        other => {
            return Err(QueryError::BadExport {
                reason: format!("format {other}: exports are parquet, csv or xlsx"),
            });
        }
    };
    if request.threshold < 1 {
        return Err(QueryError::BadExport {
            reason: "the threshold must be at least 1".into(),
        });
    }
    let pins: TableVersions = request.table_versions.as_deref().unwrap_or("").parse()?;
    let answer = engine
        .query_as(&request.sql, &pins, &Scope::AllHubs, disclosure)
        .await?;
    let count_columns: Vec<String> = match &request.count_columns {
        Some(columns) => columns.clone(),
        None => answer
            .schema
            .fields()
            .iter()
            .filter(|f| f.data_type().is_integer())
            .map(|f| f.name().clone())
            .collect(),
    };
    let batch = concat_batches(&answer.schema, &answer.batches)
        .and_then(|batch| sorted(&batch))
        .map_err(|e| QueryError::engine("export", e.into()))?;
    let (batch, primary, secondary) = suppress_batch(&batch, &count_columns, request.threshold)?;

    let identity = serde_json::json!({
        "sql": request.sql, "format": format.name(), "threshold": request.threshold,
        "count_columns": count_columns, "table_versions": answer.versions,
    });
    let export_id = hex::encode(&Sha256::digest(identity.to_string().as_bytes())[..12]);
    let data_path = folder.join(format!("{export_id}.{}", format.name()));
    let provenance_path = provenance_path(folder, &export_id);
    if let Ok(existing) = std::fs::read(&provenance_path)
        && let Ok(provenance) = serde_json::from_slice::<Provenance>(&existing)
        && data_path.exists()
    {
        return Ok((provenance, false));
    }
    let mut provenance = Provenance {
        export_id: export_id.clone(),
        sql: request.sql.clone(),
        table_versions: answer.versions,
        threshold: request.threshold,
        count_columns,
        format: format.name().into(),
        rows: batch.num_rows(),
        suppressed_primary: primary,
        suppressed_secondary: secondary,
        data_sha256: String::new(),
        created_by: user.to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
        output_control: answer.suppressed.clone(),
    };
    let origins = engine
        .origins(&request.sql, &provenance.table_versions)
        .await?;
    let mut codebook = Codebook::new(
        &provenance,
        &batch.schema(),
        &origins,
        &engine.describe().await?,
    );
    let bytes = match format {
        Format::Xlsx => crate::workbook::export(&batch, &codebook)?,
        _ => format.encode(
            &batch.schema(),
            std::slice::from_ref(&batch),
            &provenance.table_versions,
            None,
        )?,
    };
    provenance.data_sha256 = hex::encode(Sha256::digest(&bytes));
    codebook.provenance = provenance.clone();
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::create_dir_all(folder)
            .and_then(|()| std::fs::write(path, bytes))
            .map_err(|source| QueryError::ExportStore {
                path: path.to_path_buf(),
                source,
            })
    };
    // The provenance record last: an export is there once it is.
    write(&data_path, &bytes)?;
    let codebook_json = codebook_path(folder, &export_id, CodebookFormat::Json);
    write(&codebook_json, &json(&codebook_json, &codebook)?)?;
    write(
        &codebook_path(folder, &export_id, CodebookFormat::Markdown),
        codebook.markdown().as_bytes(),
    )?;
    write(&provenance_path, &json(&provenance_path, &provenance)?)?;
    Ok((provenance, true))
}

fn json(path: &Path, value: &impl Serialize) -> Result<Vec<u8>, QueryError> {
    serde_json::to_vec_pretty(value).map_err(|e| QueryError::ExportStore {
        path: path.to_path_buf(),
        source: e.into(),
    })
}

pub fn provenance_path(folder: &Path, export_id: &str) -> PathBuf {
    folder.join(format!("{export_id}.provenance.json"))
}

/// A codebook's forms: for machines and for people.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodebookFormat {
    Json,
    Markdown,
}

impl CodebookFormat {
    /// The form `Accept` asks for: Markdown where it names `text/markdown` (or plain
    /// text) before JSON, else JSON.
    pub fn from_accept(accept: Option<&str>) -> Self {
        crate::formats::media_types(accept.unwrap_or(""))
            .find_map(|media| match media.as_str() {
                "text/markdown" | "text/plain" | "text/*" => Some(Self::Markdown),
                "application/json" | "application/*" | "*/*" => Some(Self::Json),
                _ => None,
            })
            .unwrap_or(Self::Json)
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Self::Json => "application/json",
            Self::Markdown => "text/markdown; charset=utf-8",
        }
    }

    fn extension(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Markdown => "md",
        }
    }
}

pub fn codebook_path(folder: &Path, export_id: &str, format: CodebookFormat) -> PathBuf {
    folder.join(format!("{export_id}.codebook.{}", format.extension()))
}

/// The rows sorted by all columns, so that ties in the query's own order (or its
/// lack of one) cannot change the bytes.
fn sorted(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let converter = RowConverter::new(
        batch
            .schema()
            .fields()
            .iter()
            .map(|f| SortField::new(f.data_type().clone()))
            .collect(),
    )?;
    let rows = converter.convert_columns(batch.columns())?;
    let mut order: Vec<u32> = (0..batch.num_rows() as u32).collect();
    order.sort_by(|a, b| rows.row(*a as usize).cmp(&rows.row(*b as usize)));
    take_record_batch(batch, &UInt32Array::from(order))
}

/// The batch with its count columns as nullable 64-bit integers, suppressed cells
/// null; and the numbers of primary and secondary suppressions.
fn suppress_batch(
    batch: &RecordBatch,
    count_columns: &[String],
    threshold: i64,
) -> Result<(RecordBatch, usize, usize), QueryError> {
    let schema = batch.schema();
    let mut indices = Vec::new();
    let mut counts = Vec::new();
    for name in count_columns {
        let index = schema.index_of(name).map_err(|_| QueryError::BadExport {
            reason: format!("count column {name} is not in the answer"),
        })?;
        counts.push(whole_numbers(name, batch.column(index))?);
        indices.push(index);
    }
    let grid: Vec<Vec<Option<i64>>> = (0..batch.num_rows())
        .map(|r| {
            counts
                .iter()
                .map(|c| (!c.is_null(r)).then(|| c.value(r)))
                .collect()
        })
        .collect();
    let outcome = crate::disclosure::cells::suppress(&grid, threshold);
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    let mut fields: Vec<Field> = schema.fields().iter().map(|f| f.as_ref().clone()).collect();
    for (k, index) in indices.iter().enumerate() {
        let values: Int64Array = (0..batch.num_rows())
            .map(|r| {
                if outcome.suppressed.contains(&(r, k)) {
                    None
                } else {
                    grid[r][k]
                }
            })
            .collect();
        columns[*index] = Arc::new(values);
        fields[*index] = Field::new(fields[*index].name(), DataType::Int64, true);
    }
    let batch = RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
        .map_err(|e| QueryError::engine("export", e.into()))?;
    Ok((
        batch,
        outcome.primary,
        outcome.suppressed.len() - outcome.primary,
    ))
}

/// A count column's values as 64-bit integers. Floating-point columns count too when
/// every value is whole: the KPI views keep their counts as doubles.
fn whole_numbers(name: &str, column: &ArrayRef) -> Result<Int64Array, QueryError> {
    let failed = |e: ArrowError| QueryError::engine("export", e.into());
    if column.data_type().is_integer() {
        let integers = cast(column, &DataType::Int64).map_err(failed)?;
        return Ok(integers.as_primitive::<Int64Type>().clone());
    }
    if !column.data_type().is_floating() {
        return Err(QueryError::BadExport {
            reason: format!("count column {name} does not hold whole numbers"),
        });
    }
    // Beyond 2^53 a double no longer tells whole numbers apart.
    const EXACT: f64 = 9_007_199_254_740_992.0;
    let floats = cast(column, &DataType::Float64).map_err(failed)?;
    floats
        .as_primitive::<Float64Type>()
        .iter()
        .enumerate()
        .map(|(row, value)| match value {
            Some(v) if v.fract() != 0.0 || !(-EXACT..=EXACT).contains(&v) => {
                // The row, not the value: the reason reaches logs and answers.
                Err(QueryError::BadExport {
                    reason: format!(
                        "count column {name} holds a number that is not whole (row {} of the sorted answer)",
                        row + 1
                    ),
                })
            }
            value => Ok(value.map(|v| v as i64)),
        })
        .collect()
}
