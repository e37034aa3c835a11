//! Answers and exports as XLSX workbooks, for the researchers and analysts who work in
//! Excel: the rows on a sheet `data` (numbers as numbers, times as Excel times), and
//! for an export its codebook on a sheet `codebook` beside it.
//!
//! The same rows give the same bytes: the workbook's creation time is fixed, and the
//! codebook sheet leaves out who made the export and when (those are in its
//! provenance record).

use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::{
    DataType, Float64Type, Int32Type, SchemaRef, TimeUnit, TimestampMicrosecondType,
};
use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
use rust_xlsxwriter::{DocProperties, ExcelDateTime, Format, Workbook, Worksheet, XlsxError};
use techmon_lake::TableVersions;

use crate::QueryError;
use crate::codebook::Codebook;

/// The media type of an XLSX workbook.
pub const MEDIA_TYPE: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// The rows a sheet holds below its header.
pub const MAX_ROWS: usize = 1_048_575;

/// Excel's serial number of 1970-01-01 (its day 0 is 1899-12-30).
const UNIX_EPOCH_SERIAL: f64 = 25_569.0;
const MICROS_PER_DAY: f64 = 86_400_000_000.0;

/// A step of writing a workbook: rust_xlsxwriter's errors and Arrow's (a cast) alike.
type Written<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

fn failed(source: Box<dyn std::error::Error + Send + Sync>) -> QueryError {
    QueryError::Encode {
        format: "xlsx",
        source,
    }
}

/// Refuses more rows than a sheet holds.
fn fits(rows: usize) -> Result<(), QueryError> {
    if rows > MAX_ROWS {
        return Err(QueryError::TooManyRows { max_rows: MAX_ROWS });
    }
    Ok(())
}

/// An answer's rows, with the table versions they were read at on a second sheet.
pub fn answer(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    versions: &TableVersions,
) -> Result<Vec<u8>, QueryError> {
    fits(batches.iter().map(RecordBatch::num_rows).sum())?;
    answer_workbook(schema, batches, versions).map_err(failed)
}

fn answer_workbook(
    schema: &SchemaRef,
    batches: &[RecordBatch],
    versions: &TableVersions,
) -> Written<Vec<u8>> {
    let mut workbook = new_workbook()?;
    data_sheet(workbook.add_worksheet(), schema, batches)?;
    let sheet = workbook.add_worksheet();
    sheet.set_name("table_versions")?;
    let bold = Format::new().set_bold();
    sheet.write_string_with_format(0, 0, "table", &bold)?;
    sheet.write_string_with_format(0, 1, "version", &bold)?;
    for (row, (table, version)) in (1..).zip(&versions.0) {
        sheet.write_string(row, 0, table)?;
        sheet.write_number(row, 1, *version as f64)?;
    }
    Ok(workbook.save_to_buffer()?)
}

/// An export's rows and its codebook.
pub fn export(batch: &RecordBatch, codebook: &Codebook) -> Result<Vec<u8>, QueryError> {
    fits(batch.num_rows())?;
    export_workbook(batch, codebook).map_err(failed)
}

fn export_workbook(batch: &RecordBatch, codebook: &Codebook) -> Written<Vec<u8>> {
    let mut workbook = new_workbook()?;
    data_sheet(
        workbook.add_worksheet(),
        &batch.schema(),
        std::slice::from_ref(batch),
    )?;
    codebook_sheet(workbook.add_worksheet(), codebook)?;
    Ok(workbook.save_to_buffer()?)
}

fn new_workbook() -> Result<Workbook, XlsxError> {
    let mut workbook = Workbook::new();
    let created = ExcelDateTime::from_ymd(2000, 1, 1)?;
    workbook.set_properties(&DocProperties::new().set_creation_datetime(&created));
    Ok(workbook)
}

fn data_sheet(sheet: &mut Worksheet, schema: &SchemaRef, batches: &[RecordBatch]) -> Written<()> {
    sheet.set_name("data")?;
    let bold = Format::new().set_bold();
    let time = Format::new().set_num_format("yyyy-mm-dd hh:mm:ss");
    let date = Format::new().set_num_format("yyyy-mm-dd");
    for (column, field) in (0..).zip(schema.fields()) {
        sheet.write_string_with_format(0, column, field.name(), &bold)?;
    }
    let mut first_row: u32 = 1;
    for batch in batches {
        for (column, array) in (0..).zip(batch.columns()) {
            write_column(sheet, first_row, column, array, &time, &date)?;
        }
        first_row += batch.num_rows() as u32;
    }
    sheet.set_freeze_panes(1, 0)?;
    Ok(())
}

/// One column's cells from `first_row` down; nulls stay blank.
fn write_column(
    sheet: &mut Worksheet,
    first_row: u32,
    column: u16,
    array: &ArrayRef,
    time: &Format,
    date: &Format,
) -> Written<()> {
    let rows = (first_row..)
        .zip(0..array.len())
        .filter(|(_, i)| array.is_valid(*i));
    match array.data_type() {
        t if t.is_numeric() => {
            let numbers = cast(array, &DataType::Float64)?;
            let numbers = numbers.as_primitive::<Float64Type>();
            for (row, i) in rows {
                sheet.write_number(row, column, numbers.value(i))?;
            }
        }
        DataType::Boolean => {
            let flags = array.as_boolean();
            for (row, i) in rows {
                sheet.write_boolean(row, column, flags.value(i))?;
            }
        }
        DataType::Timestamp(..) => {
            let micros = cast(array, &DataType::Timestamp(TimeUnit::Microsecond, None))?;
            let micros = micros.as_primitive::<TimestampMicrosecondType>();
            for (row, i) in rows {
                let serial = UNIX_EPOCH_SERIAL + micros.value(i) as f64 / MICROS_PER_DAY;
                sheet.write_number_with_format(row, column, serial, time)?;
            }
        }
        DataType::Date32 => {
            let days = array.as_primitive::<Int32Type>();
            for (row, i) in rows {
                let serial = UNIX_EPOCH_SERIAL + f64::from(days.value(i));
                sheet.write_number_with_format(row, column, serial, date)?;
            }
        }
        _ => {
            let text = ArrayFormatter::try_new(array.as_ref(), &FormatOptions::default())?;
            for (row, i) in rows {
                sheet.write_string(row, column, text.value(i).to_string())?;
            }
        }
    }
    Ok(())
}

/// The codebook: what the file is and how it was made, then a row per variable, then
/// the tables and views it read.
fn codebook_sheet(sheet: &mut Worksheet, codebook: &Codebook) -> Written<()> {
    sheet.set_name("codebook")?;
    let bold = Format::new().set_bold();
    let p = &codebook.provenance;
    let mut row: u32 = 0;
    for (key, value) in [
        ("export", p.export_id.clone()),
        ("query", p.sql.clone()),
        ("rows", p.rows.to_string()),
        ("table versions", p.table_versions.to_string()),
        ("suppression threshold", p.threshold.to_string()),
        ("count columns", p.count_columns.join(", ")),
        (
            "cells suppressed (primary)",
            p.suppressed_primary.to_string(),
        ),
        (
            "cells suppressed (secondary)",
            p.suppressed_secondary.to_string(),
        ),
        (
            "output control",
            p.output_control
                .as_ref()
                .map(crate::disclosure::Suppressed::header)
                .unwrap_or_default(),
        ),
    ] {
        sheet.write_string_with_format(row, 0, key, &bold)?;
        sheet.write_string(row, 1, value)?;
        row += 1;
    }
    row += 1;
    let headers = [
        "variable",
        "type",
        "arrow_type",
        "description",
        "unit",
        "codes",
        "code_list",
        "derivation",
        "sources",
        "suppression",
    ];
    for (column, header) in (0..).zip(headers) {
        sheet.write_string_with_format(row, column, header, &bold)?;
    }
    for v in &codebook.variables {
        row += 1;
        let sources: Vec<String> = v.sources.iter().map(ToString::to_string).collect();
        let cells = [
            v.name.clone(),
            v.variable_type.as_str().to_string(),
            v.arrow_type.clone(),
            v.meaning.description.clone(),
            v.meaning.unit.clone().unwrap_or_default(),
            v.meaning
                .codes
                .as_ref()
                .map(|c| c.join(", "))
                .unwrap_or_default(),
            v.meaning.code_list.clone().unwrap_or_default(),
            v.derivation.clone(),
            sources.join(", "),
            v.suppression.clone().unwrap_or_default(),
        ];
        for (column, cell) in (0..).zip(cells) {
            sheet.write_string(row, column, cell)?;
        }
    }
    row += 2;
    for (column, header) in (0..).zip(["source", "kind", "version", "description", "definition"]) {
        sheet.write_string_with_format(row, column, header, &bold)?;
    }
    for s in &codebook.sources {
        row += 1;
        sheet.write_string(row, 0, &s.name)?;
        sheet.write_string(row, 1, s.kind.as_str())?;
        if let Some(version) = s.version {
            sheet.write_number(row, 2, version as f64)?;
        }
        sheet.write_string(row, 3, &s.description)?;
        sheet.write_string(row, 4, s.definition.as_deref().unwrap_or(""))?;
    }
    sheet.set_column_width(0, 28)?;
    sheet.set_column_width(3, 80)?;
    Ok(())
}
