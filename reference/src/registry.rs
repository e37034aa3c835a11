//! The registry (hubs, KPI targets) as the administrators change it at run time. A
//! change rewrites its table whole in one Delta commit, so every version is the whole
//! list at a moment and an answer pinned to an older version reads the list as it
//! was; the rows a change touches say who made it and when. Until its first change a
//! table holds the list built into techmon ([`techmon_lake::registry`]).

use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, RecordBatch, StringArray,
    TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use techmon_lake::LakeLocation;
use techmon_lake::tables::{self, Table};
use techmon_schemas::codes::SchoolYear;

use crate::ReferenceError;

/// A hub joining.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHub {
    /// Lower-case letters, digits and dashes, as the hub's events name it.
    pub hub_id: String,
    pub name: String,
    /// The municipality whose DUO counts are the hub's own.
    pub municipality: String,
    /// The first school year it reports (`2025/26`); from the start when left out.
    pub first_school_year: Option<String>,
}

/// A KPI's target for one year.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    pub kpi: String,
    pub band: Option<String>,
    pub year: i32,
    /// `None`: no target that year.
    pub target: Option<f64>,
}

/// One change to the registry.
#[derive(Debug, Clone)]
pub enum Change {
    AddHub(NewHub),
    RetireHub {
        hub_id: String,
        last_school_year: String,
    },
    /// Targets of known KPIs, each replacing the one of its KPI, band and year.
    Targets(Vec<Target>),
    /// A token for a known hub, by its SHA-256 (the token itself is never stored).
    IssueToken {
        hub_id: String,
        token_sha256: String,
    },
}

impl Change {
    fn table(&self) -> &'static Table {
        let name = match self {
            Self::AddHub(_) | Self::RetireHub { .. } => "hubs",
            Self::Targets(_) => "kpi_targets",
            Self::IssueToken { .. } => "hub_tokens",
        };
        tables::find(name).expect("the registry tables are in the catalogue")
    }
}

/// What a change did.
#[derive(Debug, Clone, serde::Serialize, utoipa::ToSchema)]
pub struct ChangeReport {
    pub table: &'static str,
    /// The table version holding the list after the change.
    pub table_version: u64,
    /// Rows the list has now.
    pub rows: usize,
    /// The change, in words.
    pub changed: String,
    /// A token issued: shown this once, never stored.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// A row of a registry table: its values in the table's column order, the last two
/// being who changed it and when.
type Row = Vec<Value>;

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(Option<String>),
    Int(i32),
    Real(Option<f64>),
    Time(Option<i64>),
}

impl Value {
    fn text(&self) -> Option<&str> {
        match self {
            Self::Text(text) => text.as_deref(),
            _ => None,
        }
    }
}

/// Applies `change`, made by `by`, to its registry table.
pub async fn change(
    lake: &LakeLocation,
    change: Change,
    by: &str,
) -> Result<ChangeReport, ReferenceError> {
    let table = change.table();
    if let Change::IssueToken { hub_id, .. } = &change {
        let hubs = tables::find("hubs").expect("the registry tables are in the catalogue");
        let opened = lake
            .open(hubs.name)
            .await
            .map_err(|e| ReferenceError::table(hubs.name, e))?;
        let known = current(hubs, &opened).await?;
        if !known.iter().any(|r| r[0].text() == Some(hub_id.as_str())) {
            return Err(ReferenceError::Change(format!("no hub {hub_id}")));
        }
    }
    let delta = lake.create(table).await?;
    let mut rows = current(table, &delta).await?;
    let changed = apply(
        &mut rows,
        &change,
        by,
        chrono::Utc::now().timestamp_micros(),
    )?;
    let batch = to_batch(table, &rows)?;
    let delta = delta
        .write(vec![batch])
        .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
        .await
        .map_err(|e| ReferenceError::table(table.name, e))?;
    Ok(ChangeReport {
        table: table.name,
        table_version: delta.version().unwrap_or(0),
        rows: rows.len(),
        changed,
        token: None,
    })
}

/// Writes the built-in lists into registry tables that were never written, so that
/// every answer names a version of them and a later change can be pinned against.
/// A table past its first version (its creation, empty) has been written: only its
/// log is looked at, so that a start does not wait on reading the tables.
pub async fn write_built_in(lake: &LakeLocation) -> Result<(), ReferenceError> {
    for table in tables::REGISTRY_TABLES {
        let Some(rows) = techmon_lake::registry::built_in(table) else {
            continue;
        };
        let opened = lake
            .open(table.name)
            .await
            .map_err(|e| ReferenceError::table(table.name, e))?;
        if opened.version().is_some_and(|v| v > 0) {
            continue;
        }
        let delta = lake.create(table).await?;
        delta
            .write(vec![rows?])
            .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
            .await
            .map_err(|e| ReferenceError::table(table.name, e))?;
    }
    Ok(())
}

/// The table's rows; as built in while it has none.
async fn current(
    table: &'static Table,
    delta: &deltalake::DeltaTable,
) -> Result<Vec<Row>, ReferenceError> {
    let rows = current_rows(table, delta).await?;
    if !rows.is_empty() {
        return Ok(rows);
    }
    match techmon_lake::registry::built_in(table) {
        Some(batch) => rows_of(table, &[batch?]),
        None => Ok(rows),
    }
}

async fn current_rows(
    table: &'static Table,
    delta: &deltalake::DeltaTable,
) -> Result<Vec<Row>, ReferenceError> {
    if delta.version().is_none() {
        return Ok(Vec::new());
    }
    let engine = |e| ReferenceError::query(table.name, e);
    let batches = techmon_lake::session_over(delta, "registry")
        .await
        .map_err(engine)?
        .table("registry")
        .await
        .map_err(engine)?
        .collect()
        .await
        .map_err(engine)?;
    rows_of(table, &batches)
}

fn rows_of(table: &'static Table, batches: &[RecordBatch]) -> Result<Vec<Row>, ReferenceError> {
    let schema = table.arrow_schema();
    let mut rows = Vec::new();
    for batch in batches {
        let columns: Vec<ArrayRef> = schema
            .fields()
            .iter()
            .map(|field| {
                let column = batch.column_by_name(field.name()).ok_or_else(|| {
                    ReferenceError::Change(format!("{} has no column {}", table.name, field.name()))
                })?;
                deltalake::arrow::compute::cast(column, field.data_type())
                    .map_err(|e| ReferenceError::query(table.name, e.into()))
            })
            .collect::<Result<_, _>>()?;
        for i in 0..batch.num_rows() {
            rows.push(
                columns
                    .iter()
                    .map(|column| value(column.as_ref(), i))
                    .collect(),
            );
        }
    }
    Ok(rows)
}

fn value(column: &dyn Array, i: usize) -> Value {
    let valid = column.is_valid(i);
    match column.data_type() {
        deltalake::arrow::datatypes::DataType::Int32 => {
            Value::Int(column.as_primitive::<Int32Type>().value(i))
        }
        deltalake::arrow::datatypes::DataType::Float64 => {
            Value::Real(valid.then(|| column.as_primitive::<Float64Type>().value(i)))
        }
        deltalake::arrow::datatypes::DataType::Timestamp(..) => {
            Value::Time(valid.then(|| column.as_primitive::<TimestampMicrosecondType>().value(i)))
        }
        _ => Value::Text(valid.then(|| column.as_string::<i32>().value(i).to_string())),
    }
}

fn to_batch(table: &'static Table, rows: &[Row]) -> Result<RecordBatch, ReferenceError> {
    use deltalake::arrow::datatypes::DataType;
    let schema = table.arrow_schema();
    let columns: Vec<ArrayRef> = schema
        .fields()
        .iter()
        .enumerate()
        .map(|(c, field)| -> ArrayRef {
            let of = |r: &Row| r[c].clone();
            match field.data_type() {
                DataType::Int32 => {
                    Arc::new(Int32Array::from_iter(rows.iter().map(|r| match of(r) {
                        Value::Int(v) => Some(v),
                        _ => None,
                    })))
                }
                DataType::Float64 => {
                    Arc::new(Float64Array::from_iter(rows.iter().map(|r| match of(r) {
                        Value::Real(v) => v,
                        _ => None,
                    })))
                }
                DataType::Timestamp(..) => Arc::new(
                    TimestampMicrosecondArray::from_iter(rows.iter().map(|r| match of(r) {
                        Value::Time(v) => v,
                        _ => None,
                    }))
                    .with_timezone("UTC"),
                ),
                _ => Arc::new(StringArray::from_iter(
                    rows.iter().map(|r| r[c].text().map(str::to_string)),
                )),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).map_err(|e| ReferenceError::query(table.name, e.into()))
}

/// Applies `change` to `rows` (of its table), stamped with `by` and `at`; says what
/// changed.
fn apply(
    rows: &mut Vec<Row>,
    change: &Change,
    by: &str,
    at: i64,
) -> Result<String, ReferenceError> {
    let refuse = |reason: String| Err(ReferenceError::Change(reason));
    let stamp = || [Value::Time(Some(at)), Value::Text(Some(by.to_string()))];
    let school_year = |text: &str| {
        SchoolYear::parse(text)
            .map(|y| y.to_string())
            .ok_or_else(|| ReferenceError::Change(format!("{text} is no school year like 2025/26")))
    };
    match change {
        Change::AddHub(hub) => {
            let valid_id = !hub.hub_id.is_empty()
                && hub
                    .hub_id
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
            if !valid_id {
                return refuse(format!(
                    "hub_id {:?}: lower-case letters, digits and dashes only",
                    hub.hub_id
                ));
            }
            if rows
                .iter()
                .any(|r| r[0].text() == Some(hub.hub_id.as_str()))
            {
                return refuse(format!("hub {} is known already", hub.hub_id));
            }
            if hub.name.trim().is_empty() || hub.municipality.trim().is_empty() {
                return refuse("a hub needs a name and a municipality".into());
            }
            let first = hub
                .first_school_year
                .as_deref()
                .map(school_year)
                .transpose()?;
            let mut row = vec![
                Value::Text(Some(hub.hub_id.clone())),
                Value::Text(Some(hub.name.trim().to_string())),
                Value::Text(Some(hub.municipality.trim().to_string())),
                Value::Text(first.clone()),
                Value::Text(None),
            ];
            row.extend(stamp());
            rows.push(row);
            Ok(format!(
                "hub {} added ({}, from {})",
                hub.hub_id,
                hub.municipality.trim(),
                first.as_deref().unwrap_or("the start")
            ))
        }
        Change::RetireHub {
            hub_id,
            last_school_year,
        } => {
            let last = school_year(last_school_year)?;
            let Some(row) = rows
                .iter_mut()
                .find(|r| r[0].text() == Some(hub_id.as_str()))
            else {
                return refuse(format!("no hub {hub_id}"));
            };
            if row[3].text().is_some_and(|first| first > last.as_str()) {
                return refuse(format!("hub {hub_id} starts after {last}"));
            }
            row[4] = Value::Text(Some(last.clone()));
            let [at, by] = stamp();
            row[5] = at;
            row[6] = by;
            Ok(format!("hub {hub_id} retired after {last}"))
        }
        Change::Targets(targets) => {
            for target in targets {
                let same_kpi = |r: &Row| {
                    r[0].text() == Some(target.kpi.as_str())
                        && r[1].text() == target.band.as_deref()
                };
                let Some(known) = rows.iter().find(|r| same_kpi(r)).cloned() else {
                    return refuse(format!(
                        "no KPI {}{} to set a target for",
                        target.kpi,
                        target
                            .band
                            .as_deref()
                            .map(|b| format!(" ({b})"))
                            .unwrap_or_default()
                    ));
                };
                rows.retain(|r| !(same_kpi(r) && r[3] == Value::Int(target.year)));
                let mut row = vec![
                    known[0].clone(),
                    known[1].clone(),
                    known[2].clone(),
                    Value::Int(target.year),
                    Value::Real(target.target),
                    known[5].clone(),
                ];
                row.extend(stamp());
                rows.push(row);
            }
            Ok(format!("{} target(s) set", targets.len()))
        }
        Change::IssueToken {
            hub_id,
            token_sha256,
        } => {
            let mut row = vec![
                Value::Text(Some(hub_id.clone())),
                Value::Text(Some(token_sha256.clone())),
            ];
            row.extend(stamp());
            rows.push(row);
            Ok(format!("a token issued to hub {hub_id}"))
        }
    }
}

/// Targets from CSV (`,` or `;`): a header with `kpi`, `band`, `year` and `target`
/// (empty band: none; empty target: no target that year).
pub fn parse_targets(text: &str) -> Result<Vec<Target>, ReferenceError> {
    let separator = if text.lines().next().is_some_and(|h| h.contains(';')) {
        b';'
    } else {
        b','
    };
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let bad = |reason: String| ReferenceError::Change(reason);
    let headers = reader
        .headers()
        .map_err(|e| bad(format!("the header: {e}")))?
        .clone();
    let column = |name: &str| {
        headers
            .iter()
            .position(|h| h.eq_ignore_ascii_case(name))
            .ok_or_else(|| bad(format!("the header has no column {name}")))
    };
    let (kpi, band, year, target) = (
        column("kpi")?,
        column("band")?,
        column("year")?,
        column("target")?,
    );
    let mut targets = Vec::new();
    for (n, record) in reader.records().enumerate() {
        let line = n + 2;
        let record = record.map_err(|e| bad(format!("line {line}: {e}")))?;
        let field = |i: usize| record.get(i).unwrap_or("");
        let parsed_year = field(year)
            .parse()
            .map_err(|_| bad(format!("line {line}, year: {:?} is no year", field(year))))?;
        let parsed_target = match field(target) {
            "" => None,
            text => Some(
                text.replace(',', ".")
                    .parse()
                    .map_err(|_| bad(format!("line {line}, target: {text:?} is no number")))?,
            ),
        };
        targets.push(Target {
            kpi: field(kpi).to_string(),
            band: Some(field(band))
                .filter(|b| !b.is_empty())
                .map(str::to_string),
            year: parsed_year,
            target: parsed_target,
        });
    }
    if targets.is_empty() {
        return Err(bad("no targets in the file".into()));
    }
    Ok(targets)
}
