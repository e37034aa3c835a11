//! Answers in the format the client asks for by `Accept`: JSON (the default), CSV,
//! an Arrow IPC stream or Parquet. Encoding is deterministic: the same rows give the
//! same bytes.

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, RecordBatch, StringBuilder};
use deltalake::arrow::csv;
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef};
use deltalake::arrow::error::ArrowError;
use deltalake::arrow::ipc::writer::StreamWriter;
use deltalake::arrow::json::WriterBuilder;
use deltalake::arrow::json::writer::{EncoderOptions, make_encoder};
use deltalake::parquet::arrow::ArrowWriter;
use deltalake::parquet::basic::{Compression, ZstdLevel};
use deltalake::parquet::file::properties::WriterProperties;
use techmon_lake::TableVersions;

use crate::QueryError;
use crate::disclosure::Suppressed;

/// A JSON answer.
#[derive(serde::Serialize, utoipa::ToSchema)]
#[schema(as = SqlAnswer)]
pub(crate) struct JsonAnswer<'a> {
    /// The lake table versions the answer was computed from.
    #[schema(value_type = std::collections::BTreeMap<String, u64>)]
    table_versions: &'a TableVersions,
    row_count: usize,
    columns: Vec<AnswerColumn<'a>>,
    /// Researchers' answers: what output control left out (a blank is a protected
    /// cell, not a zero).
    #[serde(skip_serializing_if = "Option::is_none")]
    suppressed: Option<&'a Suppressed>,
    /// One object per row, a key per column, as Arrow writes them.
    #[schema(value_type = Vec<Object>)]
    rows: &'a serde_json::value::RawValue,
}

#[derive(serde::Serialize, utoipa::ToSchema)]
struct AnswerColumn<'a> {
    name: &'a str,
    /// Arrow's name of the type (`Int64`, `Utf8`, `Date32`, …).
    data_type: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Json,
    Csv,
    Arrow,
    Parquet,
    Xlsx,
}

const FORMATS: &[(Format, &[&str])] = &[
    (Format::Json, &["application/json", "application/*", "*/*"]),
    (Format::Csv, &["text/csv", "text/*"]),
    (
        Format::Arrow,
        &[
            "application/vnd.apache.arrow.stream",
            "application/vnd.apache.arrow",
        ],
    ),
    (
        Format::Parquet,
        &[
            "application/vnd.apache.parquet",
            "application/x-parquet",
            "application/parquet",
        ],
    ),
    (Format::Xlsx, &[crate::workbook::MEDIA_TYPE]),
];

/// The media types an `Accept` header names, in its order, without parameters.
pub fn media_types(accept: &str) -> impl Iterator<Item = String> + '_ {
    accept.split(',').map(|part| {
        part.split(';')
            .next()
            .unwrap_or("")
            .trim()
            .to_ascii_lowercase()
    })
}

impl Format {
    /// The first format of the `Accept` header (in the client's order) that techmon
    /// writes; JSON when there is no header.
    pub fn from_accept(accept: Option<&str>) -> Result<Self, QueryError> {
        let Some(accept) = accept.filter(|a| !a.trim().is_empty()) else {
            return Ok(Self::Json);
        };
        media_types(accept)
            .find_map(|media| {
                FORMATS
                    .iter()
                    .find(|(_, names)| names.contains(&media.as_str()))
                    .map(|(format, _)| *format)
            })
            .ok_or_else(|| QueryError::UnsupportedFormat {
                accept: accept.to_string(),
            })
    }

    /// From a short name (`json`, `csv`, `arrow`, `parquet`), as the CLI and exports
    /// take it.
    pub fn from_name(name: &str) -> Option<Self> {
        [
            Self::Json,
            Self::Csv,
            Self::Arrow,
            Self::Parquet,
            Self::Xlsx,
        ]
        .into_iter()
        .find(|f| f.name() == name)
    }

    pub fn name(self) -> &'static str {
        match self {
            Self::Json => "json",
            Self::Csv => "csv",
            Self::Arrow => "arrow",
            Self::Parquet => "parquet",
            Self::Xlsx => "xlsx",
        }
    }

    pub fn content_type(self) -> &'static str {
        FORMATS
            .iter()
            .find(|(f, _)| *f == self)
            .map_or("application/octet-stream", |(_, names)| names[0])
    }

    /// The rows in this format; JSON also states the table versions and the columns.
    pub fn encode(
        self,
        schema: &SchemaRef,
        batches: &[RecordBatch],
        versions: &TableVersions,
        suppressed: Option<&Suppressed>,
    ) -> Result<Vec<u8>, QueryError> {
        let failed = |e: Box<dyn std::error::Error + Send + Sync>| QueryError::Encode {
            format: self.name(),
            source: e,
        };
        let mut out = Vec::new();
        match self {
            Self::Json => {
                let mut rows = WriterBuilder::new()
                    .with_explicit_nulls(true)
                    .build::<_, deltalake::arrow::json::writer::JsonArray>(Vec::new());
                for batch in batches {
                    rows.write(batch).map_err(|e| failed(e.into()))?;
                }
                rows.finish().map_err(|e| failed(e.into()))?;
                let mut rows = rows.into_inner();
                if rows.is_empty() {
                    rows = b"[]".to_vec();
                }
                // The head is written with no rows; `rows` is its last field, so its
                // `[]}` gives way to the rows as Arrow wrote them, without a second
                // parse of them.
                let no_rows = serde_json::value::RawValue::from_string("[]".into())
                    .map_err(|e| failed(e.into()))?;
                let answer = JsonAnswer {
                    table_versions: versions,
                    row_count: batches.iter().map(RecordBatch::num_rows).sum(),
                    columns: schema
                        .fields()
                        .iter()
                        .map(|f| AnswerColumn {
                            name: f.name(),
                            data_type: f.data_type().to_string(),
                        })
                        .collect(),
                    suppressed,
                    rows: &no_rows,
                };
                serde_json::to_writer(&mut out, &answer).map_err(|e| failed(e.into()))?;
                out.truncate(out.len() - b"[]}".len());
                out.extend_from_slice(&rows);
                out.push(b'}');
            }
            Self::Csv => {
                let mut writer = csv::WriterBuilder::new().with_header(true).build(&mut out);
                // An empty batch still writes the header, so the columns are known.
                let empty = [RecordBatch::new_empty(schema.clone())];
                let batches = if batches.is_empty() {
                    &empty[..]
                } else {
                    batches
                };
                for batch in batches {
                    let batch = nested_as_json_text(batch).map_err(|e| failed(e.into()))?;
                    writer.write(&batch).map_err(|e| failed(e.into()))?;
                }
            }
            Self::Arrow => {
                let mut writer =
                    StreamWriter::try_new(&mut out, schema).map_err(|e| failed(e.into()))?;
                for batch in batches {
                    writer.write(batch).map_err(|e| failed(e.into()))?;
                }
                writer.finish().map_err(|e| failed(e.into()))?;
            }
            Self::Parquet => {
                let properties = WriterProperties::builder()
                    .set_compression(Compression::ZSTD(ZstdLevel::default()))
                    .build();
                let mut writer = ArrowWriter::try_new(&mut out, schema.clone(), Some(properties))
                    .map_err(|e| failed(e.into()))?;
                for batch in batches {
                    writer.write(batch).map_err(|e| failed(e.into()))?;
                }
                writer.close().map_err(|e| failed(e.into()))?;
            }
            Self::Xlsx => {
                out = crate::workbook::answer(schema, batches, versions)?;
            }
        }
        Ok(out)
    }
}

/// CSV has no nested values, so each list (or struct, or map) becomes its JSON text:
/// `[1,5]`, `["po","vo"]`, `[]` (a null stays an empty cell), which a spreadsheet
/// shows and any reader can parse.
fn nested_as_json_text(batch: &RecordBatch) -> Result<RecordBatch, ArrowError> {
    let schema = batch.schema();
    if !schema.fields().iter().any(|f| f.data_type().is_nested()) {
        return Ok(batch.clone());
    }
    let mut fields = Vec::with_capacity(batch.num_columns());
    let mut columns: Vec<ArrayRef> = Vec::with_capacity(batch.num_columns());
    for (field, column) in schema.fields().iter().zip(batch.columns()) {
        if !field.data_type().is_nested() {
            fields.push(field.clone());
            columns.push(column.clone());
            continue;
        }
        // Arrow's JSON encoder knows every nested type; explicit nulls keep a struct's
        // empty fields, as the JSON answer shows them.
        let options = EncoderOptions::default().with_explicit_nulls(true);
        let mut encoder = make_encoder(field, column.as_ref(), &options)?;
        let mut texts = StringBuilder::with_capacity(column.len(), 0);
        let mut text = Vec::new();
        for row in 0..column.len() {
            if encoder.is_null(row) {
                texts.append_null();
                continue;
            }
            text.clear();
            encoder.encode(row, &mut text);
            texts.append_value(
                std::str::from_utf8(&text).map_err(|e| ArrowError::JsonError(e.to_string()))?,
            );
        }
        let texts = texts.finish();
        fields.push(Arc::new(Field::new(field.name(), DataType::Utf8, true)));
        columns.push(Arc::new(texts));
    }
    RecordBatch::try_new(Arc::new(Schema::new(fields)), columns)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_picks_the_first_supported_format() {
        assert_eq!(Format::from_accept(None).ok(), Some(Format::Json));
        assert_eq!(
            Format::from_accept(Some("text/csv")).ok(),
            Some(Format::Csv)
        );
        assert_eq!(
            Format::from_accept(Some(
                "image/png, application/vnd.apache.parquet;q=0.9, text/csv"
            ))
            .ok(),
            Some(Format::Parquet)
        );
        assert_eq!(
            Format::from_accept(Some("application/vnd.apache.arrow.stream")).ok(),
            Some(Format::Arrow)
        );
        assert!(matches!(
            Format::from_accept(Some("image/png")),
            Err(QueryError::UnsupportedFormat { .. })
        ));
    }
}
