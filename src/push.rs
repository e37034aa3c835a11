//! `techmon push`: sends JSON, NDJSON, CSV and XLSX files to an ingest URL in batches,
//! retrying with backoff while the service or its log is unavailable (safe: every
//! event has an id, so a record that was stored comes back as a duplicate).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use techmon_ingest::{PushAnswer, RecordStatus};

#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("reading {path}: {source}")]
    Read {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: not a JSON array of events: {source}")]
    BadJsonFile {
        path: PathBuf,
        #[source]
        source: serde_json::Error,
    },
    #[error(
        "{path}: a CSV feed, or a workbook without a sheet named after an event kind, needs its event kind: name the file after it (activity_held.csv) or pass --kind"
    )]
    UnknownFeedKind { path: PathBuf },
    #[error("{path}: not an XLSX workbook: {message}")]
    BadWorkbook { path: PathBuf, message: String },
    #[error("{path}: the CSV header cannot be read: {source}")]
    BadCsvFile {
        path: PathBuf,
        #[source]
        source: csv::Error,
    },
    #[error("the service refused batch {batch} of {path} ({status}): {message}")]
    Refused {
        path: PathBuf,
        batch: usize,
        status: u16,
        message: String,
    },
    #[error("gave up on batch {batch} of {path} after {attempts} attempts: {reason}")]
    GaveUp {
        path: PathBuf,
        batch: usize,
        attempts: u32,
        reason: String,
    },
    #[error("writing the rejected records to {path}: {source}")]
    WriteRejects {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("building the HTTP client: {0}")]
    Client(#[source] reqwest::Error),
}

#[derive(Debug, Clone)]
pub struct PushOptions {
    /// Base URL of the ingest service, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub token: String,
    pub batch_size: usize,
    /// Attempts per batch while the service answers 503/429 or cannot be reached.
    pub max_attempts: u32,
    /// Event kind of CSV files whose name does not start with one.
    pub kind: Option<String>,
    /// Where rejected records go (NDJSON: file, line, errors and the record).
    pub rejects: PathBuf,
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PushSummary {
    pub files: usize,
    pub records: usize,
    pub accepted: usize,
    pub corrected: usize,
    pub duplicates: usize,
    pub rejected: usize,
    pub batches: usize,
    pub retries: usize,
}

/// One record as it stands in the file, with where it stands.
struct SourceRecord {
    line: usize,
    text: String,
}

enum Feed {
    /// NDJSON body for `/v1/events`.
    Events(Vec<SourceRecord>),
    /// CSV rows for `/v1/feeds/{kind}`, sent under the header row.
    Csv {
        kind: String,
        header: String,
        rows: Vec<SourceRecord>,
    },
    /// An XLSX workbook, and its sheets to send: (event kind, sheet).
    Workbook {
        bytes: Vec<u8>,
        sheets: Vec<(String, String)>,
    },
}

/// Pushes every file, in order; returns the totals. Rejected records are written to
/// `options.rejects` (created, or emptied, first).
pub async fn push_files(
    options: &PushOptions,
    files: &[PathBuf],
) -> Result<PushSummary, PushError> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(120))
        .build()
        .map_err(PushError::Client)?;
    let rejects_err = |source| PushError::WriteRejects {
        path: options.rejects.clone(),
        source,
    };
    let mut rejects =
        std::io::BufWriter::new(std::fs::File::create(&options.rejects).map_err(rejects_err)?);
    let mut summary = PushSummary::default();
    for path in files {
        let feed = read_feed(path, options.kind.as_deref())?;
        summary.files += 1;
        for (batch_no, batch) in batches(&feed, options).into_iter().enumerate() {
            let (answer, retries) =
                send_batch(&client, options, &batch, path, batch_no + 1).await?;
            summary.batches += 1;
            summary.retries += retries;
            summary.records += answer.results.len();
            summary.accepted += answer.accepted;
            summary.corrected += answer.corrected;
            summary.duplicates += answer.duplicates;
            summary.rejected += answer.rejected;
            for result in answer
                .results
                .iter()
                .filter(|r| r.status == RecordStatus::Rejected)
            {
                let entry = match batch.records.get(result.index) {
                    Some(source) => serde_json::json!({
                        "file": path.display().to_string(),
                        "line": source.line,
                        "event_id": result.event_id,
                        "errors": result.errors,
                        "record": source.text,
                    }),
                    // A worksheet's row: where it is in the workbook.
                    None => serde_json::json!({
                        "file": path.display().to_string(),
                        "sheet": batch.sheet,
                        "line": result.line,
                        "event_id": result.event_id,
                        "errors": result.errors,
                    }),
                };
                writeln!(rejects, "{entry}").map_err(rejects_err)?;
            }
        }
    }
    rejects.flush().map_err(rejects_err)?;
    Ok(summary)
}

/// One request of a push.
struct Batch<'a> {
    url: String,
    content_type: &'static str,
    body: Vec<u8>,
    /// The file's records it sends, in the order of the answer's results (none for a
    /// worksheet, whose rows the answer numbers).
    records: &'a [SourceRecord],
    /// The worksheet it sends (the `sheet` parameter).
    sheet: Option<&'a str>,
}

/// The requests that send a file.
fn batches<'a>(feed: &'a Feed, options: &PushOptions) -> Vec<Batch<'a>> {
    let batch = |url: String, content_type, body: String, records| Batch {
        url,
        content_type,
        body: body.into_bytes(),
        records,
        sheet: None,
    };
    match feed {
        Feed::Events(records) => records
            .chunks(options.batch_size.max(1))
            .map(|chunk| {
                let body = chunk.iter().map(|r| format!("{}\n", r.text)).collect();
                batch(
                    format!("{}/v1/events", options.url),
                    "application/x-ndjson",
                    body,
                    chunk,
                )
            })
            .collect(),
        Feed::Csv { kind, header, rows } => {
            // A plain sheet goes whole: the ids the service derives for its rows tell
            // identical anonymous answers apart by their order in the one sheet.
            let size = if names_event_ids(header) {
                options.batch_size.max(1)
            } else {
                rows.len().max(1)
            };
            rows.chunks(size)
                .map(|chunk| {
                    let mut body = format!("{header}\n");
                    for row in chunk {
                        body.push_str(&row.text);
                        body.push('\n');
                    }
                    batch(
                        format!("{}/v1/feeds/{kind}", options.url),
                        "text/csv; charset=utf-8",
                        body,
                        chunk,
                    )
                })
                .collect()
        }
        // Each sheet whole, the workbook sent once per sheet.
        Feed::Workbook { bytes, sheets } => sheets
            .iter()
            .map(|(kind, sheet)| Batch {
                url: format!("{}/v1/feeds/{kind}", options.url),
                content_type: techmon_ingest::workbook::XLSX,
                body: bytes.clone(),
                records: &[],
                sheet: Some(sheet),
            })
            .collect(),
    }
}

async fn send_batch(
    client: &reqwest::Client,
    options: &PushOptions,
    request: &Batch<'_>,
    path: &Path,
    batch: usize,
) -> Result<(PushAnswer, usize), PushError> {
    let (url, content_type, body) = (&request.url, request.content_type, &request.body);
    let mut backoff = Duration::from_millis(200);
    let mut attempt = 0;
    loop {
        attempt += 1;
        let mut post = client.post(url);
        if let Some(sheet) = request.sheet {
            post = post.query(&[("sheet", sheet)]);
        }
        let sent = post
            .bearer_auth(&options.token)
            .header(reqwest::header::CONTENT_TYPE, content_type)
            .body(body.clone())
            .send()
            .await;
        let wait = match sent {
            Ok(response) if response.status().is_success() => {
                let answer =
                    response
                        .json::<PushAnswer>()
                        .await
                        .map_err(|e| PushError::Refused {
                            path: path.to_path_buf(),
                            batch,
                            status: 200,
                            message: format!("unreadable answer: {e}"),
                        })?;
                return Ok((answer, (attempt - 1) as usize));
            }
            Ok(response) if matches!(response.status().as_u16(), 503 | 429 | 502 | 504) => {
                let retry_after = response
                    .headers()
                    .get(reqwest::header::RETRY_AFTER)
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.parse::<u64>().ok())
                    .map(Duration::from_secs);
                (
                    retry_after,
                    format!("the service answered {}", response.status()),
                )
            }
            Ok(response) => {
                let status = response.status().as_u16();
                let text = response.text().await.unwrap_or_default();
                let message = serde_json::from_str::<Value>(&text)
                    .ok()
                    .and_then(|v| {
                        v.pointer("/error/message")
                            .and_then(Value::as_str)
                            .map(str::to_string)
                    })
                    .unwrap_or(text);
                return Err(PushError::Refused {
                    path: path.to_path_buf(),
                    batch,
                    status,
                    message,
                });
            }
            Err(e) => (None, format!("cannot reach {url}: {e}")),
        };
        let (retry_after, reason) = wait;
        if attempt >= options.max_attempts {
            return Err(PushError::GaveUp {
                path: path.to_path_buf(),
                batch,
                attempts: attempt,
                reason,
            });
        }
        let pause = retry_after.unwrap_or(backoff).min(Duration::from_secs(30));
        tracing::warn!(file = %path.display(), batch, attempt, "{reason}; retrying in {pause:?}");
        tokio::time::sleep(pause).await;
        backoff = (backoff * 2).min(Duration::from_secs(10));
    }
}

fn read_feed(path: &Path, kind: Option<&str>) -> Result<Feed, PushError> {
    let bytes = std::fs::read(path).map_err(|source| PushError::Read {
        path: path.to_path_buf(),
        source,
    })?;
    let extension = path
        .extension()
        .and_then(|e| e.to_str())
        .unwrap_or_default()
        .to_ascii_lowercase();
    let stem = path
        .file_stem()
        .and_then(|s| s.to_str())
        .unwrap_or_default();
    let kind = kind.map(str::to_string).or_else(|| {
        techmon_schemas::EventKind::ALL
            .iter()
            .map(|k| k.as_str())
            .find(|k| stem.starts_with(k))
            .map(str::to_string)
    });
    let unknown_kind = || PushError::UnknownFeedKind {
        path: path.to_path_buf(),
    };
    if extension == "xlsx" {
        let names = techmon_ingest::workbook::filled_sheets(&bytes).map_err(|message| {
            PushError::BadWorkbook {
                path: path.to_path_buf(),
                message,
            }
        })?;
        // The sheets named after a kind; else the first, as the kind given. A sheet
        // with nothing under its header (emptied, or never filled in) is left out.
        let mut sheets: Vec<(String, String)> = names
            .iter()
            .filter(|name| name.parse::<techmon_schemas::EventKind>().is_ok())
            .map(|name| (name.clone(), name.clone()))
            .collect();
        if sheets.is_empty() {
            let first = names.first().ok_or_else(unknown_kind)?;
            sheets.push((kind.ok_or_else(unknown_kind)?, first.clone()));
        }
        return Ok(Feed::Workbook { bytes, sheets });
    }
    // As the service reads a CSV (UTF-8, else Windows-1252), and sent as UTF-8.
    let text = techmon_ingest::csv_file_text(&bytes).into_owned();
    if extension == "csv" {
        return csv_feed(path, kind.ok_or_else(unknown_kind)?, &text);
    }
    let first = text.trim_start().chars().next();
    if first == Some('[') {
        let values: Vec<Value> =
            serde_json::from_str(&text).map_err(|source| PushError::BadJsonFile {
                path: path.to_path_buf(),
                source,
            })?;
        return Ok(Feed::Events(
            values
                .into_iter()
                .enumerate()
                .map(|(i, v)| SourceRecord {
                    line: i + 1,
                    text: v.to_string(),
                })
                .collect(),
        ));
    }
    // A file holding one (possibly pretty-printed) event.
    if let Ok(value @ Value::Object(_)) = serde_json::from_str::<Value>(&text) {
        return Ok(Feed::Events(vec![SourceRecord {
            line: 1,
            text: value.to_string(),
        }]));
    }
    Ok(Feed::Events(
        text.lines()
            .enumerate()
            .filter(|(_, l)| !l.trim().is_empty())
            .map(|(i, l)| SourceRecord {
                line: i + 1,
                text: l.to_string(),
            })
            .collect(),
    ))
}

/// Whether a CSV header has an `event_id` column.
fn names_event_ids(header: &str) -> bool {
    let delimiter = char::from(techmon_schemas::csv_delimiter(header.as_bytes()));
    header
        .split(delimiter)
        .any(|name| name.trim().trim_matches('"').trim_start_matches('\u{feff}') == "event_id")
}

/// Splits a CSV file into its header and its records (a quoted cell may span lines).
fn csv_feed(path: &Path, kind: String, text: &str) -> Result<Feed, PushError> {
    let header_end = text.find('\n').unwrap_or(text.len());
    let header = text[..header_end].trim_end_matches('\r').to_string();
    let delimiter = techmon_schemas::csv_delimiter(header.as_bytes());
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .flexible(true)
        .from_reader(text.as_bytes());
    reader.headers().map_err(|source| PushError::BadCsvFile {
        path: path.to_path_buf(),
        source,
    })?;
    let mut rows = Vec::new();
    let mut record = csv::StringRecord::new();
    let mut start = reader.position().byte() as usize;
    loop {
        let line = reader.position().line() as usize;
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let end = reader.position().byte() as usize;
                let row = text[start..end].trim_end_matches(['\n', '\r']).to_string();
                if !row.trim().is_empty() {
                    rows.push(SourceRecord { line, text: row });
                }
                start = end;
            }
            // Sent as it is: the service names the problem for this row.
            Err(_) => {
                let end = reader.position().byte() as usize;
                rows.push(SourceRecord {
                    line,
                    text: text[start..end].trim_end_matches(['\n', '\r']).to_string(),
                });
                start = end;
            }
        }
    }
    Ok(Feed::Csv { kind, header, rows })
}
