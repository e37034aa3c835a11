//! Workbooks: a feed sent as an XLSX workbook, read as the rows of one of its
//! worksheets; and the templates of docs/templates/ as one workbook, a sheet per event
//! kind, with the code lists as validation lists and times as spreadsheets store them.

use std::io::Cursor;

use axum::http::StatusCode;
use calamine::{Data, Reader, Xlsx};
use rust_xlsxwriter::{DataValidation, Format, Formula, Workbook, XlsxError};
use techmon_schemas::{EventKind, FieldError, TimeShape, column_shape, latest_version};
use techmon_service::ApiError;

use crate::records::{Sheet, SheetRow, malformed};

/// The media type of an XLSX workbook.
pub const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";

/// How many times its own size a workbook may unpack to: XML compresses about ten
/// times, and a workbook that unpacks to far more is built to exhaust memory.
const MAX_UNPACKED_RATIO: u64 = 64;

/// The rows of one worksheet of an XLSX workbook: the one named `sheet`, else the one
/// named after `kind`, else the first. Cells as text, as a CSV would hold them: a date
/// as a Dutch spreadsheet writes it (`3-10-2024 09:00`, read as a time in the
/// Netherlands), a number as written without a trailing `.0`.
pub fn worksheet(
    body: &[u8],
    kind: Option<EventKind>,
    sheet: Option<&str>,
) -> Result<Sheet, ApiError> {
    check_unpacked_size(body)?;
    let mut workbook = Xlsx::new(Cursor::new(body))
        .map_err(|e| malformed(format!("the body is not an XLSX workbook: {e}")))?;
    let names = workbook.sheet_names();
    let name = match sheet {
        Some(wanted) => names.iter().find(|n| *n == wanted).ok_or_else(|| {
            malformed(format!(
                "the workbook has no sheet of the name given (it has {} sheets)",
                names.len()
            ))
        })?,
        None => names
            .iter()
            .find(|n| kind.is_some_and(|kind| n.eq_ignore_ascii_case(kind.as_str())))
            .or(names.first())
            .ok_or_else(|| malformed("the workbook has no sheets".into()))?,
    }
    .clone();
    let range = workbook
        .worksheet_range(&name)
        .map_err(|e| malformed(format!("the sheet cannot be read: {e}")))?;
    let first_row = range.start().map_or(0, |(row, _)| row as usize);
    // Rows a spreadsheet keeps without anything in them (formatted, or emptied) are
    // no records.
    let mut rows = range.rows().enumerate().filter(|(_, cells)| {
        cells
            .iter()
            .any(|c| cell_text(c).map_or(true, |t| !t.trim().is_empty()))
    });
    let Some((_, header_cells)) = rows.next() else {
        return Err(malformed("the sheet holds no header row".into()));
    };
    let mut headers: Vec<String> = header_cells
        .iter()
        .map(|c| cell_text(c).unwrap_or_default().trim().to_string())
        .collect();
    while headers.last().is_some_and(String::is_empty) {
        headers.pop();
    }
    let rows = rows
        .map(|(at, cells)| {
            let (cells, errors) = row_cells(&headers, cells);
            SheetRow {
                line: Some(first_row + at + 1),
                cells,
                errors,
            }
        })
        .collect();
    Ok(Sheet { headers, rows })
}

/// The names of a workbook's sheets that hold a row under their header, in order (for
/// `techmon push`, which sends each); or why the bytes are no workbook.
pub fn filled_sheets(body: &[u8]) -> Result<Vec<String>, String> {
    let names = Xlsx::new(Cursor::new(body))
        .map(|workbook| workbook.sheet_names())
        .map_err(|e| e.to_string())?;
    Ok(names
        .into_iter()
        .filter(|name| worksheet(body, None, Some(name)).is_ok_and(|sheet| !sheet.rows.is_empty()))
        .collect())
}

/// Refuses a workbook whose parts unpack to more than [`MAX_UNPACKED_RATIO`] times
/// its size, before any part is unpacked.
fn check_unpacked_size(body: &[u8]) -> Result<(), ApiError> {
    let mut archive = zip::ZipArchive::new(Cursor::new(body))
        .map_err(|e| malformed(format!("the body is not an XLSX workbook: {e}")))?;
    let mut unpacked: u64 = 0;
    for index in 0..archive.len() {
        let part = archive
            .by_index_raw(index)
            .map_err(|e| malformed(format!("the body is not an XLSX workbook: {e}")))?;
        unpacked = unpacked.saturating_add(part.size());
    }
    let limit = (body.len() as u64).saturating_mul(MAX_UNPACKED_RATIO);
    if unpacked > limit {
        return Err(ApiError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "body_too_large",
            format!(
                "the workbook unpacks to {unpacked} bytes, more than {MAX_UNPACKED_RATIO} times its size: send its rows as CSV"
            ),
        ));
    }
    Ok(())
}

/// A row's cells under the headers, and an error for a cell right of the last header
/// or holding a spreadsheet error (which refuses the row).
fn row_cells(headers: &[String], cells: &[Data]) -> (Vec<String>, Vec<FieldError>) {
    let mut errors = Vec::new();
    let mut texts = Vec::with_capacity(headers.len());
    for (at, cell) in cells.iter().enumerate() {
        let Some(header) = headers.get(at) else {
            if cell_text(cell).is_ok_and(|t| !t.trim().is_empty()) {
                errors.push(FieldError::new(
                    "/",
                    format!("column {} holds a value but has no header", at + 1),
                ));
            }
            continue;
        };
        match cell_text(cell) {
            Ok(text) => texts.push(text),
            Err(error) => {
                errors.push(FieldError::new(
                    techmon_schemas::csv_column_pointer(header),
                    format!("the cell holds the spreadsheet error {error}"),
                ));
                texts.push(String::new());
            }
        }
    }
    texts.resize(headers.len(), String::new());
    (texts, errors)
}

/// A cell as a CSV would write it; a spreadsheet error (`#N/A`) as the error.
fn cell_text(cell: &Data) -> Result<String, String> {
    Ok(match cell {
        Data::Empty => String::new(),
        Data::String(text) | Data::DateTimeIso(text) | Data::DurationIso(text) => text.clone(),
        Data::Int(n) => n.to_string(),
        Data::Float(x) => number_text(*x),
        Data::Bool(b) => b.to_string(),
        Data::DateTime(time) => techmon_schemas::sheet::serial_text(time.as_f64())
            .unwrap_or_else(|| number_text(time.as_f64())),
        Data::Error(error) => return Err(error.to_string()),
    })
}

/// A number without a trailing `.0`: an integer field takes `12`, not `12.0`.
fn number_text(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        x.to_string()
    }
}

/// The templates of docs/templates/, one per event kind, in [`EventKind::ALL`]'s order.
const TEMPLATES: &[(EventKind, &str)] = &[
    (
        EventKind::ActivityHeld,
        include_str!("../../docs/templates/activity_held.csv"),
    ),
    (
        EventKind::GroupParticipated,
        include_str!("../../docs/templates/group_participated.csv"),
    ),
    (
        EventKind::ParticipantRegistered,
        include_str!("../../docs/templates/participant_registered.csv"),
    ),
    (
        EventKind::ParticipantAttended,
        include_str!("../../docs/templates/participant_attended.csv"),
    ),
    (
        EventKind::SurveyAnswered,
        include_str!("../../docs/templates/survey_answered.csv"),
    ),
    (
        EventKind::ProfileChosen,
        include_str!("../../docs/templates/profile_chosen.csv"),
    ),
    (
        EventKind::PartnerJoined,
        include_str!("../../docs/templates/partner_joined.csv"),
    ),
    (
        EventKind::PartnerLeft,
        include_str!("../../docs/templates/partner_left.csv"),
    ),
    (
        EventKind::AmbassadorCommitted,
        include_str!("../../docs/templates/ambassador_committed.csv"),
    ),
    (
        EventKind::TrajectoryStarted,
        include_str!("../../docs/templates/trajectory_started.csv"),
    ),
    (
        EventKind::TrajectoryEnded,
        include_str!("../../docs/templates/trajectory_ended.csv"),
    ),
    (
        EventKind::ConsentWithdrawn,
        include_str!("../../docs/templates/consent_withdrawn.csv"),
    ),
];

/// The sheet of the code lists the validation lists refer to.
const CODE_LISTS: &str = "codelijsten";

/// Rows of a template sheet that offer a column's code list.
const ROWS_WITH_LISTS: u32 = 1000;

/// The templates as one XLSX workbook: a sheet per event kind, named after it, with
/// the template's Dutch headers and example rows (times and dates as the serial
/// numbers a spreadsheet stores, numbers as numbers), and on every column with a
/// closed list of values a validation list from the sheet of code lists.
pub fn templates() -> Result<Vec<u8>, XlsxError> {
    let mut workbook = Workbook::new();
    let bold = Format::new().set_bold();
    let time_format = Format::new().set_num_format("d-m-yyyy h:mm");
    let date_format = Format::new().set_num_format("d-m-yyyy");
    // Each list once, as a column of the code lists' sheet: (its header, its values).
    let mut lists: Vec<(String, Vec<String>)> = Vec::new();
    for (kind, template) in TEMPLATES {
        let version = latest_version(*kind).unwrap_or(1);
        let mut reader = csv::ReaderBuilder::new().from_reader(template.as_bytes());
        let headers: Vec<String> = reader
            .headers()
            .map_err(|e| XlsxError::ParameterError(format!("template {kind}: {e}")))?
            .iter()
            .map(str::to_string)
            .collect();
        let sheet = workbook.add_worksheet();
        sheet.set_name(kind.as_str())?;
        sheet.set_freeze_panes(1, 0)?;
        let shapes: Vec<_> = headers
            .iter()
            .map(|h| column_shape(*kind, version, h).unwrap_or_default())
            .collect();
        for (column, (header, shape)) in headers.iter().zip(&shapes).enumerate() {
            let column = column as u16;
            sheet.write_string_with_format(0, column, header, &bold)?;
            let width = if shape.time.is_some() {
                16
            } else {
                header.len().max(10) + 2
            };
            sheet.set_column_width(column, width as f64)?;
            if shape.choices.is_empty() {
                continue;
            }
            let at = match lists
                .iter()
                .position(|(_, values)| *values == shape.choices)
            {
                Some(at) => at,
                None => {
                    lists.push((header.clone(), shape.choices.clone()));
                    lists.len() - 1
                }
            };
            let letter = column_letter(at);
            let list = DataValidation::new()
                .allow_list_formula(Formula::new(format!(
                    "={CODE_LISTS}!${letter}$2:${letter}${}",
                    shape.choices.len() + 1
                )))
                .set_error_message(format!("Kies een waarde uit de lijst ({CODE_LISTS})."))?;
            sheet.add_data_validation(1, column, ROWS_WITH_LISTS, column, &list)?;
        }
        for (line, record) in reader.records().enumerate() {
            let record =
                record.map_err(|e| XlsxError::ParameterError(format!("template {kind}: {e}")))?;
            let row = line as u32 + 1;
            for (column, (cell, shape)) in record.iter().zip(&shapes).enumerate() {
                let column = column as u16;
                if cell.is_empty() {
                    continue;
                }
                let serial = shape
                    .time
                    .and_then(|_| techmon_schemas::sheet::spreadsheet_serial(cell));
                let number = shape
                    .number
                    .then(|| cell.replace(',', ".").parse::<f64>().ok())
                    .flatten();
                match (shape.time, serial, number) {
                    (Some(TimeShape::DateTime), Some(serial), _) => {
                        sheet.write_number_with_format(row, column, serial, &time_format)?
                    }
                    (Some(TimeShape::Date), Some(serial), _) => {
                        sheet.write_number_with_format(row, column, serial, &date_format)?
                    }
                    (_, _, Some(number)) => sheet.write_number(row, column, number)?,
                    _ => sheet.write_string(row, column, cell)?,
                };
            }
        }
    }
    let sheet = workbook.add_worksheet();
    sheet.set_name(CODE_LISTS)?;
    for (at, (header, values)) in lists.iter().enumerate() {
        let column = at as u16;
        sheet.write_string_with_format(0, column, header, &bold)?;
        sheet.set_column_width(column, header.len().max(10) as f64 + 2.0)?;
        for (row, value) in values.iter().enumerate() {
            sheet.write_string(row as u32 + 1, column, value)?;
        }
    }
    workbook.save_to_buffer()
}

/// A column's letters (0 → `A`, 26 → `AA`).
fn column_letter(mut at: usize) -> String {
    let mut letters = Vec::new();
    loop {
        letters.push(b'A' + (at % 26) as u8);
        if at < 26 {
            break;
        }
        at = at / 26 - 1;
    }
    letters.reverse();
    String::from_utf8(letters).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn columns_are_lettered_as_spreadsheets_do() {
        let letters: Vec<String> = [0, 1, 25, 26, 27, 51, 52, 701, 702]
            .into_iter()
            .map(column_letter)
            .collect();
        assert_eq!(
            letters,
            ["A", "B", "Z", "AA", "AB", "AZ", "BA", "ZZ", "AAA"]
        );
    }

    #[test]
    fn every_kind_has_its_template_in_order() {
        let kinds: Vec<EventKind> = TEMPLATES.iter().map(|(kind, _)| *kind).collect();
        assert_eq!(kinds, EventKind::ALL);
    }
}
