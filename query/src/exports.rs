//! Research datasets for publication: a query's answer with small-cell suppression,
//! written as Parquet or CSV, with a provenance record.
//!
//! Disclosure control. The answer is a table: its rows are the result rows, its
//! count columns the columns named in the request (else every integer column). An
//! attacker is assumed to know every column's total over the rows and, with two or
//! more count columns, every row's total over them.
//! - Primary: every count below the threshold is suppressed (zeros too: an empty
//!   cell can disclose as much as a small one).
//! - Secondary: a suppressed cell must not follow from those totals. Seen as a
//!   bipartite graph (rows and columns as nodes, suppressed cells as edges), a cell
//!   follows from the totals exactly when its edge lies on no cycle. So every row and
//!   column with a suppressed cell gets at least two, and every suppressed cell that
//!   still lies on no cycle gets one, by suppressing the cell that closes a
//!   rectangle with it. Among candidates, the smallest count goes first (ties: first
//!   row, then first column), which also makes the result deterministic.
//!
//! Person-level tables reach an export only as aggregates over at least
//! `query.min_persons` persons, for every role ([`crate::disclosure`]): an export is
//! a publication.
//!
//! The same request on the same table versions gives the same bytes: the rows are
//! sorted by all columns, and the files carry no time. The time and the user go into
//! the provenance record beside the file.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, Int64Array, RecordBatch, UInt32Array};
use deltalake::arrow::compute::{cast, concat_batches, take_record_batch};
use deltalake::arrow::datatypes::{DataType, Field, Float64Type, Int64Type, Schema};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::row::{RowConverter, SortField};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::QueryError;
use crate::catalogue::TableVersions;
use crate::disclosure::{Disclosure, Suppressed};
use crate::engine::{Engine, Scope};
use crate::formats::Format;

/// `POST /v1/exports`.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct ExportRequest {
    /// One SELECT or WITH statement.
    pub sql: String,
    /// `parquet` (default) or `csv`.
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
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Provenance {
    pub export_id: String,
    pub sql: String,
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
/// `folder` as `<export_id>.<format>` and `<export_id>.provenance.json`.
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
        other => {
            return Err(QueryError::BadExport {
                reason: format!("format {other}: exports are parquet or csv"),
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
    let bytes = format.encode(
        &batch.schema(),
        std::slice::from_ref(&batch),
        &answer.versions,
        None,
    )?;
    let provenance = Provenance {
        export_id: export_id.clone(),
        sql: request.sql.clone(),
        table_versions: answer.versions,
        threshold: request.threshold,
        count_columns,
        format: format.name().into(),
        rows: batch.num_rows(),
        suppressed_primary: primary,
        suppressed_secondary: secondary,
        data_sha256: hex::encode(Sha256::digest(&bytes)),
        created_by: user.to_string(),
        created_at: chrono::Utc::now().to_rfc3339(),
        output_control: answer.suppressed.clone(),
    };
    let write = |path: &Path, bytes: &[u8]| {
        std::fs::create_dir_all(folder)
            .and_then(|()| std::fs::write(path, bytes))
            .map_err(|e| QueryError::ExportStore {
                path: path.to_path_buf(),
                reason: e.to_string(),
            })
    };
    write(&data_path, &bytes)?;
    let record = serde_json::to_vec_pretty(&provenance).map_err(|e| QueryError::ExportStore {
        path: provenance_path.clone(),
        reason: e.to_string(),
    })?;
    write(&provenance_path, &record)?;
    Ok((provenance, true))
}

pub fn provenance_path(folder: &Path, export_id: &str) -> PathBuf {
    folder.join(format!("{export_id}.provenance.json"))
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
    let outcome = suppress(&grid, threshold);
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

/// Which cells (row, count column) to suppress.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Suppression {
    pub suppressed: BTreeSet<(usize, usize)>,
    pub primary: usize,
}

/// Small-cell suppression of a grid of counts (rows × count columns); nulls are
/// published as they are (nothing to hide).
pub fn suppress(grid: &[Vec<Option<i64>>], threshold: i64) -> Suppression {
    let rows = grid.len();
    let columns = grid.first().map_or(0, Vec::len);
    let mut suppressed: BTreeSet<(usize, usize)> = (0..rows)
        .flat_map(|r| (0..columns).map(move |c| (r, c)))
        .filter(|&(r, c)| grid[r][c].is_some_and(|v| v < threshold))
        .collect();
    let primary = suppressed.len();
    // Which totals are known: over rows per column (with two or more rows), over
    // columns per row (with two or more count columns).
    let column_totals = rows >= 2;
    let row_totals = columns >= 2;
    let value = |cell: (usize, usize)| grid[cell.0][cell.1].unwrap_or(i64::MAX);
    let cheapest = |candidates: &mut dyn Iterator<Item = (usize, usize)>,
                    suppressed: &BTreeSet<(usize, usize)>| {
        candidates
            .filter(|cell| !suppressed.contains(cell) && grid[cell.0][cell.1].is_some())
            .min_by_key(|&cell| (value(cell), cell))
    };
    loop {
        let mut added = None;
        // A row or column with one suppressed cell gives it away through its total.
        if column_totals {
            for c in 0..columns {
                if suppressed.iter().filter(|s| s.1 == c).count() == 1 {
                    added = cheapest(&mut (0..rows).map(|r| (r, c)), &suppressed);
                    if added.is_some() {
                        break;
                    }
                }
            }
        }
        if added.is_none() && row_totals {
            for r in 0..rows {
                if suppressed.iter().filter(|s| s.0 == r).count() == 1 {
                    added = cheapest(&mut (0..columns).map(|c| (r, c)), &suppressed);
                    if added.is_some() {
                        break;
                    }
                }
            }
        }
        // With both totals known, a cell on no cycle follows from them: close a
        // rectangle through it.
        if added.is_none() && column_totals && row_totals {
            if let Some(&(r, c)) = suppressed
                .iter()
                .find(|&&cell| !on_cycle(&suppressed, cell))
            {
                let others_in_column: Vec<usize> = suppressed
                    .iter()
                    .filter(|s| s.1 == c && s.0 != r)
                    .map(|s| s.0)
                    .collect();
                let others_in_row: Vec<usize> = suppressed
                    .iter()
                    .filter(|s| s.0 == r && s.1 != c)
                    .map(|s| s.1)
                    .collect();
                added = cheapest(
                    &mut others_in_column
                        .iter()
                        .flat_map(|&r2| others_in_row.iter().map(move |&c2| (r2, c2))),
                    &suppressed,
                )
                .or_else(|| {
                    // No rectangle available: any other cell of the row or column.
                    cheapest(
                        &mut (0..rows)
                            .map(|r2| (r2, c))
                            .chain((0..columns).map(|c2| (r, c2))),
                        &suppressed,
                    )
                });
            }
        }
        match added {
            Some(cell) => {
                suppressed.insert(cell);
            }
            None => {
                return Suppression {
                    suppressed,
                    primary,
                };
            }
        }
    }
}

/// Whether suppressed cell (r, c) lies on a cycle of the row–column graph: whether
/// row r and column c stay connected without it.
pub fn on_cycle(suppressed: &BTreeSet<(usize, usize)>, cell: (usize, usize)) -> bool {
    // Nodes: rows as (0, r), columns as (1, c).
    let mut seen: BTreeSet<(u8, usize)> = BTreeSet::new();
    let mut stack = vec![(0u8, cell.0)];
    while let Some(node) = stack.pop() {
        if !seen.insert(node) {
            continue;
        }
        if node == (1, cell.1) {
            return true;
        }
        for &(r, c) in suppressed.iter().filter(|&&s| s != cell) {
            match node {
                (0, row) if r == row => stack.push((1, c)),
                (1, column) if c == column => stack.push((0, r)),
                _ => {}
            }
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    fn grid(rows: &[&[i64]]) -> Vec<Vec<Option<i64>>> {
        rows.iter()
            .map(|r| r.iter().map(|v| Some(*v)).collect())
            .collect()
    }

    /// What an attacker with the totals can do: every row and column with a
    /// suppressed cell has two or more, and no suppressed cell is off every cycle.
    fn safe(grid: &[Vec<Option<i64>>], s: &Suppression, threshold: i64) -> bool {
        let rows = grid.len();
        let columns = grid[0].len();
        let published_small = (0..rows)
            .flat_map(|r| (0..columns).map(move |c| (r, c)))
            .any(|(r, c)| {
                !s.suppressed.contains(&(r, c)) && grid[r][c].is_some_and(|v| v < threshold)
            });
        let lonely_column = rows >= 2
            && (0..columns).any(|c| s.suppressed.iter().filter(|x| x.1 == c).count() == 1);
        let lonely_row = columns >= 2
            && (0..rows).any(|r| s.suppressed.iter().filter(|x| x.0 == r).count() == 1);
        let bridge = rows >= 2
            && columns >= 2
            && s.suppressed
                .iter()
                .any(|&cell| !on_cycle(&s.suppressed, cell));
        !published_small && !lonely_column && !lonely_row && !bridge
    }

    #[test]
    fn a_lonely_small_count_takes_the_smallest_neighbour_with_it() {
        let g = grid(&[&[3], &[40], &[25], &[70]]);
        let s = suppress(&g, 10);
        assert_eq!(s.primary, 1);
        assert_eq!(s.suppressed, BTreeSet::from([(0, 0), (2, 0)]));
        assert!(safe(&g, &s, 10));
    }

    #[test]
    fn two_dimensional_tables_get_rectangles() {
        let g = grid(&[&[5, 30, 12], &[20, 40, 35], &[15, 8, 60], &[50, 45, 33]]);
        let s = suppress(&g, 10);
        assert_eq!(s.primary, 2);
        assert!(safe(&g, &s, 10), "{:?}", s.suppressed);
        // Nothing big is hidden when something smaller would do.
        assert!(!s.suppressed.contains(&(3, 0)) && !s.suppressed.contains(&(2, 2)));
    }

    #[test]
    fn no_small_count_no_suppression() {
        let g = grid(&[&[10, 11], &[12, 13]]);
        assert!(suppress(&g, 10).suppressed.is_empty());
    }

    #[test]
    fn pseudo_random_tables_are_always_safe() {
        let mut seed: u64 = 7;
        let mut next = || {
            seed = seed
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            (seed >> 33) as i64
        };
        for _ in 0..300 {
            let rows = 1 + (next() % 7) as usize;
            let columns = 1 + (next() % 5) as usize;
            let g: Vec<Vec<Option<i64>>> = (0..rows)
                .map(|_| (0..columns).map(|_| Some(next() % 40)).collect())
                .collect();
            let s = suppress(&g, 10);
            assert!(safe(&g, &s, 10), "{g:?} → {:?}", s.suppressed);
        }
    }
}
