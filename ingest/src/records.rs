//! Turning a request body into records, and the per-record answer.

use std::borrow::Cow;
use std::collections::HashMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;
use techmon_schemas::sheet::{self, Receipt};
use techmon_schemas::{Event, EventKind, FieldError, Problem, ReadEventError};
use uuid::Uuid;

use axum::http::StatusCode;
use techmon_service::ApiError;

/// One record of a request, before validation.
#[derive(Debug)]
pub struct Candidate {
    /// 0-based position in the request.
    pub index: usize,
    /// 1-based line in the body, for line-based bodies (NDJSON, CSV).
    pub line: Option<usize>,
    pub record: Result<Record, Refused>,
    /// For a row of a plain sheet (one without its own `event_id`): the row's key.
    pub row: Option<Uuid>,
}

/// A record refused before it could be read as an event: the `event_id` it names,
/// when it names a valid one, and why.
#[derive(Debug)]
pub struct Refused {
    pub event_id: Option<Uuid>,
    pub errors: Vec<FieldError>,
}

/// A record as it came.
#[derive(Debug, Clone)]
pub enum Record {
    /// An NDJSON line: checked and stored as its own bytes, so what the transform
    /// reads back is exactly what was checked (e.g. a field given twice is refused
    /// here too), and it is tokenised once.
    Line(bytes::Bytes),
    /// An element of a JSON array, or a CSV row made into an event.
    Value(Value),
}

impl Record {
    /// Checks the record against its schema and reads the typed event.
    pub fn read(&self) -> Result<Event, Vec<FieldError>> {
        match self {
            Record::Line(line) => techmon_schemas::read_event(line).map_err(|e| match e {
                ReadEventError::Invalid(errors) => errors,
                ReadEventError::NotJson => {
                    let syntax = serde_json::from_slice::<serde::de::IgnoredAny>(line)
                        .err()
                        .map_or_else(|| "invalid JSON".into(), |e| json_error_kind(&e));
                    vec![FieldError::of(
                        Problem::NotAnEvent,
                        "/",
                        format!("not a JSON object: {syntax}"),
                    )]
                }
            }),
            Record::Value(value) => techmon_schemas::validate_event(value),
        }
    }

    /// The `event_id` a refused record names, if it names a valid one.
    pub fn event_id(&self) -> Option<Uuid> {
        match self {
            Record::Line(line) => techmon_eventlog::event_id_of(line),
            Record::Value(value) => value
                .get("event_id")
                .and_then(Value::as_str)
                .and_then(|id| Uuid::try_parse(id).ok()),
        }
    }

    /// The record as JSON.
    pub fn into_value(self) -> Value {
        match self {
            Record::Line(line) => serde_json::from_slice(&line).unwrap_or(Value::Null),
            Record::Value(value) => value,
        }
    }

    /// The bytes the log stores.
    pub fn into_payload(self) -> Vec<u8> {
        match self {
            Record::Line(line) => line.to_vec(),
            Record::Value(value) => serde_json::to_vec(&value).expect("a JSON value serialises"),
        }
    }
}

/// What became of one record.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RecordStatus {
    Accepted,
    /// Stored as a new version of a plain sheet's row that said something else
    /// before: the answer's `replaces` names the event it replaces.
    Corrected,
    Duplicate,
    Rejected,
}

/// One record's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct RecordResult {
    /// The record's place in the request, from 0.
    pub index: usize,
    /// The line of an NDJSON or CSV body, from 1.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub event_id: Option<Uuid>,
    pub status: RecordStatus,
    /// The event a correction replaces.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replaces: Option<Uuid>,
    /// Where the event log holds an accepted record: its partition and offset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub partition: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub offset: Option<u64>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldError>,
}

/// The answer to a push: counts and one result per record, in request order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, utoipa::ToSchema)]
pub struct PushAnswer {
    pub accepted: usize,
    /// Corrections are stored too, and not among the accepted.
    pub corrected: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub results: Vec<RecordResult>,
}

pub fn malformed(message: String) -> ApiError {
    ApiError::new(StatusCode::BAD_REQUEST, "malformed_body", message)
}

/// Parses `POST /v1/events` bodies: a JSON array of events, a single JSON object (one
/// event, also pretty-printed over several lines), or NDJSON (one event per line). A
/// bad NDJSON line rejects that record only; a JSON array that does not parse is
/// refused whole.
pub fn parse_events(whole: &bytes::Bytes) -> Result<Vec<Candidate>, ApiError> {
    let body = whole.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(whole);
    let first = body.iter().find(|b| !b.is_ascii_whitespace());
    match first {
        None => Err(malformed("the body holds no records".into())),
        Some(b'[') => {
            // serde_json's messages name a position, never the input.
            let values: Vec<Value> = serde_json::from_slice(body).map_err(|e| {
                malformed(format!("the body is not a valid JSON array of events: {e}"))
            })?;
            if values.is_empty() {
                return Err(malformed("the body holds no records".into()));
            }
            Ok(values
                .into_iter()
                .enumerate()
                .map(|(index, v)| Candidate {
                    index,
                    line: None,
                    record: Ok(Record::Value(v)),
                    row: None,
                })
                .collect())
        }
        // One object, whatever its lines: NDJSON of several objects is not one value.
        Some(b'{') if serde_json::from_slice::<serde::de::IgnoredAny>(body).is_ok() => {
            let value: Value = serde_json::from_slice(body)
                .map_err(|e| malformed(format!("the body is not a valid JSON object: {e}")))?;
            Ok(vec![Candidate {
                index: 0,
                line: Some(1),
                record: Ok(Record::Value(value)),
                row: None,
            }])
        }
        Some(_) => Ok(body
            .split(|b| *b == b'\n')
            .enumerate()
            .filter(|(_, line)| !line.iter().all(u8::is_ascii_whitespace))
            .enumerate()
            .map(|(index, (line_no, line))| Candidate {
                index,
                line: Some(line_no + 1),
                record: Ok(Record::Line(whole.slice_ref(line.trim_ascii()))),
                row: None,
            })
            .collect()),
    }
}

/// A description of a JSON syntax error that does not quote the input.
fn json_error_kind(e: &serde_json::Error) -> String {
    match e.classify() {
        serde_json::error::Category::Eof => "the line ends too early".into(),
        _ => format!("invalid JSON at column {}", e.column()),
    }
}

/// A feed's sheet as text cells: a CSV body, or a worksheet of a workbook.
#[derive(Debug)]
pub struct Sheet {
    pub headers: Vec<String>,
    pub rows: Vec<SheetRow>,
}

#[derive(Debug)]
pub struct SheetRow {
    /// The row's line (CSV) or row number (worksheet), from 1.
    pub line: Option<usize>,
    pub cells: Vec<String>,
    /// Why cells could not be read (those cells are left empty): the row is refused.
    pub errors: Vec<FieldError>,
}

/// Reads a CSV feed body: a header row, comma- or semicolon-separated (whichever the
/// header uses), in the `charset` of its content type, else UTF-8 (with or without
/// BOM) when it is that, else Windows-1252 (what a spreadsheet's CSV export writes on
/// a Dutch Windows).
pub fn csv_sheet(body: &[u8], charset: Option<&str>) -> Result<Sheet, ApiError> {
    let text = csv_text(body, charset)?;
    let header_line = text.lines().next().unwrap_or_default();
    let delimiter = techmon_schemas::csv_delimiter(header_line.as_bytes());
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    let headers: Vec<String> = reader
        .headers()
        .map_err(|e| malformed(format!("the CSV header row cannot be read: {e}")))?
        .iter()
        .map(|h| h.trim().to_string())
        .collect();
    if headers.iter().all(String::is_empty) {
        return Err(malformed("the body holds no CSV header row".into()));
    }
    let mut lines = Lines::new(&text);
    let rows = reader
        .records()
        .map(|row| match row {
            Err(e) => SheetRow {
                line: e.position().map(|p| lines.at(p.byte() as usize)),
                cells: Vec::new(),
                errors: vec![FieldError::new("/", "the CSV row cannot be read")],
            },
            Ok(row) => SheetRow {
                line: row.position().map(|p| lines.at(p.byte() as usize)),
                cells: row.iter().map(str::to_string).collect(),
                errors: Vec::new(),
            },
        })
        .collect();
    Ok(Sheet { headers, rows })
}

/// The line a record starts on, from where the CSV reader says it starts: after a
/// `\r\n` the reader's own line count is one behind, as it places the record before
/// the `\n`. Records come in order, so the count goes on from the last.
struct Lines<'a> {
    text: &'a str,
    counted_to: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Self {
        Self {
            text,
            counted_to: 0,
            line: 1,
        }
    }

    fn at(&mut self, byte: usize) -> usize {
        let rest = self.text.get(byte..).unwrap_or_default();
        let start = byte + (rest.len() - rest.trim_start_matches(['\r', '\n']).len());
        if let Some(between) = self.text.get(self.counted_to..start) {
            self.line += between.matches('\n').count();
            self.counted_to = start;
        }
        self.line
    }
}

/// A CSV file's text: UTF-8 (without its byte order mark) when it is that, else
/// Windows-1252.
pub fn decoded(body: &[u8]) -> Cow<'_, str> {
    let encoding = if std::str::from_utf8(body).is_ok() {
        encoding_rs::UTF_8
    } else {
        encoding_rs::WINDOWS_1252
    };
    encoding.decode_with_bom_removal(body).0
}

/// A CSV body as text (see [`csv_sheet`]).
fn csv_text<'a>(body: &'a [u8], charset: Option<&str>) -> Result<Cow<'a, str>, ApiError> {
    let encoding = match charset {
        Some(label) => {
            encoding_rs::Encoding::for_label(label.trim().as_bytes()).ok_or_else(|| {
                ApiError::new(
                    StatusCode::UNSUPPORTED_MEDIA_TYPE,
                    "unsupported_charset",
                    "the charset the content type names is not known: send UTF-8 or windows-1252"
                        .to_string(),
                )
            })?
        }
        None => return Ok(decoded(body)),
    };
    // A byte order mark decides over the label, as browsers do.
    let (text, had_errors) = encoding.decode_with_bom_removal(body);
    if had_errors {
        return Err(malformed(format!(
            "the body is not {} as its content type says",
            encoding.name()
        )));
    }
    Ok(text)
}

/// Makes the rows of a `POST /v1/feeds/{kind}` sheet into records, filling in what a
/// plain row leaves out (see [`techmon_schemas::sheet`]).
pub fn parse_feed(
    kind: EventKind,
    version: u32,
    sheet: Sheet,
    hub: &str,
) -> Result<Vec<Candidate>, ApiError> {
    let received_at = chrono::Utc::now();
    let headers: Vec<&str> = sheet.headers.iter().map(String::as_str).collect();
    let mut candidates = Vec::new();
    // How many anonymous answers with the same key came before: told apart only by
    // that, each is another respondent's.
    let mut repeats: HashMap<Uuid, usize> = HashMap::new();
    for (index, row) in sheet.rows.into_iter().enumerate() {
        let mut row_key = None;
        let cells: Vec<&str> = row.cells.iter().map(String::as_str).collect();
        let refused = |errors| Refused {
            event_id: named_event_id(&headers, &cells),
            errors,
        };
        let record = if row.errors.is_empty() {
            techmon_schemas::record_from_csv(kind.as_str(), version, &headers, &cells)
                .map(|mut record| {
                    let receipt = |repeat| Receipt {
                        hub_id: hub,
                        received_at,
                        repeat,
                    };
                    row_key = sheet::complete(kind, &mut record, &receipt(0));
                    if let Some(key) = row_key
                        && sheet::is_anonymous_answer(kind, &record)
                    {
                        let count = repeats.entry(key).or_default();
                        if *count > 0 {
                            row_key = sheet::complete(kind, &mut record, &receipt(*count));
                        }
                        *count += 1;
                    }
                    Record::Value(record)
                })
                .map_err(refused)
        } else {
            Err(refused(row.errors))
        };
        candidates.push(Candidate {
            index,
            line: row.line,
            record,
            row: row_key,
        });
    }
    refuse_overruled_rows(&mut candidates);
    if candidates.is_empty() {
        return Err(malformed(
            "the sheet holds a header row but no records".into(),
        ));
    }
    Ok(candidates)
}

/// Refuses a row whose key comes again lower in the sheet saying something else: only
/// the lowest is taken, so that sending the sheet again changes nothing. (Saying the
/// same, the lower one is a duplicate.)
fn refuse_overruled_rows(candidates: &mut [Candidate]) {
    let says = |candidate: &Candidate| match &candidate.record {
        Ok(Record::Value(record)) => Some(sheet::content_digest(record)),
        _ => None,
    };
    let mut lowest: HashMap<Uuid, usize> = HashMap::new();
    for (at, candidate) in candidates.iter().enumerate() {
        if let Some(key) = candidate.row {
            lowest.insert(key, at);
        }
    }
    for at in 0..candidates.len() {
        let Some(last) = candidates[at].row.map(|key| lowest[&key]) else {
            continue;
        };
        if last == at || says(&candidates[at]) == says(&candidates[last]) {
            continue;
        }
        let line = candidates[last].line.map_or_else(
            || format!("record {}", last + 1),
            |line| format!("line {line}"),
        );
        candidates[at].row = None;
        candidates[at].record = Err(Refused {
            event_id: None,
            errors: vec![FieldError::new(
                "/",
                format!(
                    "the same row (by its kind's natural key) comes again at {line}, saying something else: only that one is taken"
                ),
            )],
        });
    }
}

/// The valid `event_id` a row names, for the answer to a row refused whole.
fn named_event_id(headers: &[&str], cells: &[&str]) -> Option<Uuid> {
    let column = headers
        .iter()
        .position(|h| techmon_schemas::csv_column_pointer(h) == "/event_id")?;
    Uuid::try_parse(cells.get(column)?.trim()).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ndjson_lines_are_numbered_and_blank_lines_skipped() {
        let body = b"{\"a\":1}\n\n{broken\n{\"b\":2}\n";
        let candidates = parse_events(&bytes::Bytes::from_static(body)).expect("parses");
        let lines: Vec<Option<usize>> = candidates.iter().map(|c| c.line).collect();
        assert_eq!(lines, [Some(1), Some(3), Some(4)]);
        let broken = candidates[1].record.as_ref().expect("a line").read();
        assert_eq!(
            broken.expect_err("not JSON")[0].reason,
            "not a JSON object: invalid JSON at column 2"
        );
        assert_eq!(candidates[2].index, 2);
    }

    #[test]
    fn a_broken_array_is_refused_whole_and_empty_bodies_are_refused() {
        assert_eq!(
            parse_events(&bytes::Bytes::from_static(b"[{\"a\":1},"))
                .err()
                .map(|e| e.code),
            Some("malformed_body")
        );
        assert_eq!(
            parse_events(&bytes::Bytes::from_static(b"  \n"))
                .err()
                .map(|e| e.code),
            Some("malformed_body")
        );
        assert_eq!(
            parse_events(&bytes::Bytes::from_static(b"[]"))
                .err()
                .map(|e| e.code),
            Some("malformed_body")
        );
    }

    #[test]
    fn rows_are_numbered_by_the_line_they_start_on_whatever_the_line_ends() {
        for body in [
            "a;b\n1;2\n\n3;\"x\ny\"\n4;5\n",
            "a;b\r\n1;2\r\n\r\n3;\"x\r\ny\"\r\n4;5\r\n",
        ] {
            let sheet = csv_sheet(body.as_bytes(), None).expect("a sheet");
            let lines: Vec<Option<usize>> = sheet.rows.iter().map(|r| r.line).collect();
            assert_eq!(lines, [Some(2), Some(4), Some(6)], "{body:?}");
        }
    }
}
