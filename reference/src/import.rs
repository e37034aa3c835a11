//! Reference tables imported from DUO open onderwijsdata, stored as Delta tables in
//! the lake next to the event tables. Every row carries its source (URL or file
//! name), the SHA-256 of the file and the import time.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, BooleanArray, Int32Array, RecordBatch, StringArray, TimestampMicrosecondArray,
};
use deltalake::datafusion::prelude::{col, lit};
use sha2::{Digest, Sha256};
use techmon_lake::LakeLocation;
use techmon_lake::tables::{self, Table};

use crate::ReferenceError;
use crate::duo::{DuoDataset, DuoFormat, DuoRows, PupilCount};

/// What an import did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ImportReport {
    pub table: &'static str,
    pub source: String,
    pub source_sha256: String,
    pub school_year: String,
    pub encoding: &'static str,
    /// `csv`, or `ckan-json` for a CKAN datastore answer.
    pub format: &'static str,
    /// The CSV separator; none for JSON.
    #[schema(value_type = Option<String>)]
    pub separator: Option<char>,
    pub rows: usize,
    pub suppressed_cells: usize,
    /// False when this source's file for this school year was imported before: the
    /// table is left as it was.
    pub imported: bool,
    /// The table version holding the rows.
    pub table_version: u64,
}

/// Imports one DUO file into its reference table. Idempotent per source and school
/// year: the same file again changes nothing, and a changed file from the same source
/// replaces that source's rows for that year in one commit.
pub async fn import(
    lake: &LakeLocation,
    source: &str,
    bytes: &[u8],
    school_year: Option<techmon_schemas::codes::SchoolYear>,
) -> Result<ImportReport, ReferenceError> {
    let today = chrono::Utc::now().date_naive();
    let file = crate::duo::parse(source, bytes, school_year, today).map_err(|source_error| {
        ReferenceError::File {
            source_name: source.to_string(),
            source: source_error,
        }
    })?;
    let table = reference_table(file.rows.dataset());
    let source_sha256 = hex::encode(Sha256::digest(bytes));
    let school_year = file.school_year.to_string();
    let mut delta = lake.create(table).await?;
    let (rows, suppressed_cells) = (file.rows.len(), file.rows.suppressed_cells());
    let mut report = ImportReport {
        table: table.name,
        source: source.to_string(),
        source_sha256,
        school_year,
        encoding: file.encoding,
        format: match file.format {
            DuoFormat::Csv(_) => "csv",
            DuoFormat::CkanJson => "ckan-json",
        },
        separator: match file.format {
            DuoFormat::Csv(separator) => Some(separator),
            DuoFormat::CkanJson => None,
        },
        rows,
        suppressed_cells,
        imported: false,
        table_version: 0,
    };
    if already_imported(&delta, &report).await? {
        report.table_version = delta.version().unwrap_or(0);
        return Ok(report);
    }
    let batch = to_batch(table, &file.rows, &report, file.school_year.start)?;
    // Quotes doubled: the source is the operator's text.
    let replace = format!(
        "source = '{}' AND school_year = '{}'",
        report.source.replace('\'', "''"),
        report.school_year
    );
    delta = delta
        .write(vec![batch])
        .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
        .with_replace_where(replace)
        .await
        .map_err(|e| ReferenceError::table(table.name, e))?;
    report.imported = true;
    report.table_version = delta.version().unwrap_or(0);
    Ok(report)
}

fn reference_table(dataset: DuoDataset) -> &'static Table {
    let name = match dataset {
        DuoDataset::VoPupils => "duo_vo_pupils",
        DuoDataset::PoPupils => "duo_po_pupils",
        DuoDataset::Schools => "duo_schools",
    };
    tables::find(name).expect("every dataset has its reference table")
}

async fn already_imported(
    delta: &deltalake::DeltaTable,
    report: &ImportReport,
) -> Result<bool, ReferenceError> {
    let engine = |e| ReferenceError::query(report.table, e);
    let frame = techmon_lake::session_over(delta, "reference")
        .await
        .map_err(engine)?
        .table("reference")
        .await
        .map_err(engine)?
        .filter(
            col("source")
                .eq(lit(report.source.as_str()))
                .and(col("school_year").eq(lit(report.school_year.as_str())))
                .and(col("source_sha256").eq(lit(report.source_sha256.as_str()))),
        )
        .map_err(engine)?;
    Ok(frame.count().await.map_err(engine)? > 0)
}

fn to_batch(
    table: &Table,
    rows: &DuoRows,
    report: &ImportReport,
    school_year_start: i32,
) -> Result<RecordBatch, ReferenceError> {
    fn text<'a>(values: impl Iterator<Item = &'a str>) -> ArrayRef {
        Arc::new(StringArray::from_iter_values(values))
    }
    fn optional_text<'a>(values: impl Iterator<Item = Option<&'a str>>) -> ArrayRef {
        Arc::new(StringArray::from_iter(values))
    }
    fn int(values: impl Iterator<Item = i32>) -> ArrayRef {
        Arc::new(Int32Array::from_iter_values(values))
    }
    fn counts<'a>(counts: impl Iterator<Item = &'a PupilCount> + Clone) -> Vec<ArrayRef> {
        let as_i32 = |n: u32| i32::try_from(n).unwrap_or(i32::MAX);
        vec![
            Arc::new(Int32Array::from_iter(
                counts.clone().map(|c| c.exact.map(as_i32)),
            )),
            int(counts.clone().map(|c| as_i32(c.min))),
            int(counts.clone().map(|c| as_i32(c.max))),
            Arc::new(BooleanArray::from_iter(
                counts.map(|c| Some(c.exact.is_none())),
            )),
        ]
    }
    let (mut columns, n) = match rows {
        DuoRows::VoPupils(rows) => {
            let mut columns = vec![
                text(rows.iter().map(|r| r.brin6.as_str())),
                text(rows.iter().map(|r| r.school_name.as_str())),
                optional_text(rows.iter().map(|r| r.municipality.as_deref())),
                text(rows.iter().map(|r| r.onderwijstype.as_str())),
                optional_text(rows.iter().map(|r| r.vmbo_sector.as_deref())),
                optional_text(rows.iter().map(|r| r.afdeling.as_deref())),
                optional_text(rows.iter().map(|r| r.elementcode.as_deref())),
                text(rows.iter().map(|r| r.opleidingsnaam.as_str())),
                optional_text(rows.iter().map(|r| r.profile_code.as_deref())),
                Arc::new(BooleanArray::from_iter(
                    rows.iter().map(|r| Some(r.technical)),
                )) as ArrayRef,
                int(rows.iter().map(|r| i32::from(r.leerjaar))),
                text(rows.iter().map(|r| r.gender.as_str())),
            ];
            columns.extend(counts(rows.iter().map(|r| &r.pupils)));
            (columns, rows.len())
        }
        DuoRows::PoPupils(rows) => {
            let mut columns = vec![
                text(rows.iter().map(|r| r.brin6.as_str())),
                text(rows.iter().map(|r| r.school_name.as_str())),
                text(rows.iter().map(|r| r.municipality.as_str())),
                optional_text(rows.iter().map(|r| r.soort_po.as_deref())),
                int(rows.iter().map(|r| i32::from(r.age))),
                optional_text(rows.iter().map(|r| r.groep_band)),
            ];
            columns.extend(counts(rows.iter().map(|r| &r.pupils)));
            (columns, rows.len())
        }
        DuoRows::Schools(rows) => (
            vec![
                text(rows.iter().map(|r| r.brin6.as_str())),
                text(rows.iter().map(|r| r.name.as_str())),
                optional_text(rows.iter().map(|r| r.pc4.as_deref())),
                text(rows.iter().map(|r| r.place.as_str())),
                text(rows.iter().map(|r| r.municipality.as_str())),
                optional_text(rows.iter().map(|r| r.kind.as_deref())),
            ],
            rows.len(),
        ),
    };
    let repeat = |value: &str| text(std::iter::repeat_n(value, n));
    columns.push(repeat(&report.source));
    columns.push(repeat(&report.source_sha256));
    let now = chrono::Utc::now().timestamp_micros();
    columns.push(Arc::new(
        TimestampMicrosecondArray::from_iter_values(std::iter::repeat_n(now, n))
            .with_timezone("UTC"),
    ));
    columns.push(repeat(&report.school_year));
    columns.push(int(std::iter::repeat_n(school_year_start, n)));
    RecordBatch::try_new(table.arrow_schema(), columns)
        .map_err(|e| ReferenceError::query(table.name, e.into()))
}
