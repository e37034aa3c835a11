//! The registry (hubs, KPI targets) as the administrators change it at run time. A
//! change rewrites its table whole in one Delta commit, so every version is the whole
//! list at a moment and an answer pinned to an older version reads the list as it
//! was; the rows a change touches say who made it and when. Until its first change a
//! table holds the list built into techmon ([`techmon_lake::registry`]).

use std::sync::Arc;

use deltalake::arrow::array::{
    Array, ArrayRef, AsArray, Float64Array, Int32Array, ListBuilder, RecordBatch, StringArray,
    StringBuilder, TimestampMicrosecondArray,
};
use deltalake::arrow::datatypes::{Float64Type, Int32Type, TimestampMicrosecondType};
use techmon_lake::LakeLocation;
use techmon_lake::tables::{self, Table};
use techmon_schemas::codes::{self, SchoolYear};

use crate::ReferenceError;

/// A region joining: its hubs share a KPI set and targets.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewRegion {
    /// Lower-case letters, digits and dashes, such as `noord-veluwe`.
    pub region_id: String,
    pub name: String,
    /// Its municipalities as DUO writes them: where its schools are.
    pub municipalities: Vec<String>,
}

/// A hub joining.
#[derive(Debug, Clone, serde::Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewHub {
    /// Lower-case letters, digits and dashes, as the hub's events name it.
    pub hub_id: String,
    pub name: String,
    /// The municipality whose DUO counts are the hub's own: one of its region's.
    pub municipality: String,
    /// The region it works in; may be left out while there is one region.
    pub region_id: Option<String>,
    /// The first school year it reports (`2025/26`); from the start when left out.
    pub first_school_year: Option<String>,
}

/// A KPI's target for one year, in a region or for one of its hubs.
#[derive(Debug, Clone, PartialEq)]
pub struct Target {
    /// The region; may be left out while there is one region.
    pub region_id: Option<String>,
    /// A hub of the region whose own target this is; `None`: the region's and each
    /// of its hubs' without one of their own.
    pub hub_id: Option<String>,
    pub kpi: String,
    pub band: Option<String>,
    pub year: i32,
    /// `None`: no target that year (the KPI is still in the region's set).
    pub target: Option<f64>,
}

/// One change to the registry.
#[derive(Debug, Clone)]
pub enum Change {
    AddRegion(NewRegion),
    AddHub(NewHub),
    RetireHub {
        hub_id: String,
        last_school_year: String,
    },
    /// Targets of the KPIs techmon computes, each replacing the one of its region,
    /// hub, KPI, band and year; a KPI a region had no target of joins its set.
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
            Self::AddRegion(_) => "regions",
            Self::AddHub(_) | Self::RetireHub { .. } => "hubs",
            Self::Targets(_) => "kpi_targets",
            Self::IssueToken { .. } => "hub_tokens",
        };
        registry_table(name)
    }

    /// Whether the change is checked against the regions, and against the hubs.
    fn checked_against(&self) -> (bool, bool) {
        match self {
            Self::AddRegion(_) => (true, false),
            Self::AddHub(_) | Self::Targets(_) => (true, true),
            Self::RetireHub { .. } => (false, false),
            Self::IssueToken { .. } => (false, true),
        }
    }
}

fn registry_table(name: &str) -> &'static Table {
    tables::find(name).expect("the registry tables are in the catalogue")
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

/// A row of a registry table: its values in the table's column order, read and set
/// by column name.
#[derive(Debug, Clone)]
struct Row {
    table: &'static Table,
    values: Vec<Value>,
}

#[derive(Debug, Clone, PartialEq)]
enum Value {
    Text(Option<String>),
    TextList(Vec<String>),
    Int(Option<i32>),
    Real(Option<f64>),
    Time(Option<i64>),
}

impl Row {
    /// A row of `table` with every value null.
    fn new(table: &'static Table) -> Self {
        let values = table
            .arrow_schema()
            .fields()
            .iter()
            .map(|field| null_of(field.data_type()))
            .collect();
        Self { table, values }
    }

    fn position(&self, column: &str) -> usize {
        self.table
            .position(column)
            .unwrap_or_else(|| panic!("{} has a column {column}", self.table.name))
    }

    fn get(&self, column: &str) -> &Value {
        &self.values[self.position(column)]
    }

    fn set(&mut self, column: &str, value: Value) -> &mut Self {
        let position = self.position(column);
        self.values[position] = value;
        self
    }

    fn text(&self, column: &str) -> Option<&str> {
        match self.get(column) {
            Value::Text(text) => text.as_deref(),
            _ => None,
        }
    }

    /// Marks the row as changed by `by` at `at` (microseconds since 1970).
    fn stamp(&mut self, by: &str, at: i64) {
        self.set("changed_at", Value::Time(Some(at)))
            .set("changed_by", Value::Text(Some(by.to_string())));
    }
}

fn null_of(data_type: &deltalake::arrow::datatypes::DataType) -> Value {
    use deltalake::arrow::datatypes::DataType;
    match data_type {
        DataType::Int32 => Value::Int(None),
        DataType::Float64 => Value::Real(None),
        DataType::Timestamp(..) => Value::Time(None),
        DataType::List(_) => Value::TextList(Vec::new()),
        _ => Value::Text(None),
    }
}

/// The regions and hubs a change is checked against (those it is not checked
/// against are left empty).
struct Known {
    regions: Vec<Row>,
    hubs: Vec<Row>,
}

impl Known {
    /// What `change` is checked against: `rows` where it is the changed table itself,
    /// else read from `lake`.
    async fn read(
        lake: &LakeLocation,
        change: &Change,
        rows: &[Row],
    ) -> Result<Self, ReferenceError> {
        let of = |name: &'static str| async move {
            if name == change.table().name {
                Ok(rows.to_vec())
            } else {
                read(lake, registry_table(name)).await
            }
        };
        let (regions, hubs) = change.checked_against();
        Ok(Self {
            regions: if regions {
                of("regions").await?
            } else {
                Vec::new()
            },
            hubs: if hubs { of("hubs").await? } else { Vec::new() },
        })
    }

    /// The region `asked` for, which must be known; the only one when none is asked
    /// for and there is one.
    fn region(&self, asked: Option<&str>) -> Result<&Row, ReferenceError> {
        let ids: Vec<&str> = self
            .regions
            .iter()
            .filter_map(|r| r.text("region_id"))
            .collect();
        match asked {
            Some(id) => self
                .regions
                .iter()
                .find(|r| r.text("region_id") == Some(id))
                .ok_or_else(|| {
                    ReferenceError::Change(format!(
                        "no region {id}: the regions are {}",
                        ids.join(", ")
                    ))
                }),
            None if self.regions.len() == 1 => Ok(&self.regions[0]),
            None => Err(ReferenceError::Change(format!(
                "name the region (region_id): one of {}",
                ids.join(", ")
            ))),
        }
    }

    fn hub(&self, hub_id: &str) -> Result<&Row, ReferenceError> {
        self.hubs
            .iter()
            .find(|r| r.text("hub_id") == Some(hub_id))
            .ok_or_else(|| ReferenceError::Change(format!("no hub {hub_id}")))
    }
}

/// Registry table `table`'s rows as they are now (the built-in list while it was
/// never written), without creating it.
async fn read(lake: &LakeLocation, table: &'static Table) -> Result<Vec<Row>, ReferenceError> {
    let opened = lake
        .open(table.name)
        .await
        .map_err(|e| ReferenceError::table(table.name, e))?;
    if opened.version().is_none() {
        return current(table, &opened).await;
    }
    // Written by an older release, it gains the columns added since.
    current(table, &lake.create(table).await?).await
}

/// Applies `change`, made by `by`, to its registry table.
pub async fn change(
    lake: &LakeLocation,
    change: Change,
    by: &str,
) -> Result<ChangeReport, ReferenceError> {
    let table = change.table();
    let delta = lake.create(table).await?;
    let mut rows = current(table, &delta).await?;
    let known = Known::read(lake, &change, &rows).await?;
    let changed = apply(
        &mut rows,
        &change,
        &known,
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
/// log is looked at, and the tables side by side, so that a start does not wait on
/// reading the tables.
pub async fn write_built_in(lake: &LakeLocation) -> Result<(), ReferenceError> {
    let writes = tables::REGISTRY_TABLES.iter().filter_map(|table| {
        let rows = techmon_lake::registry::built_in(table)?;
        Some(async move {
            let opened = lake
                .open(table.name)
                .await
                .map_err(|e| ReferenceError::table(table.name, e))?;
            if opened.version().is_some_and(|v| v > 0) {
                return Ok(());
            }
            lake.create(table)
                .await?
                .write(vec![rows?])
                .with_save_mode(deltalake::protocol::SaveMode::Overwrite)
                .await
                .map_err(|e| ReferenceError::table(table.name, e))?;
            Ok::<_, ReferenceError>(())
        })
    });
    futures::future::try_join_all(writes).await?;
    Ok(())
}

/// Copies the registry as it is now in `from` (its current rows, or the built-in lists
/// where a table was never written) into `to`, one commit a table: a lake rebuilt from
/// the event log keeps the regions, hubs, tokens and targets administrators set.
pub async fn copy(from: &LakeLocation, to: &LakeLocation) -> Result<(), ReferenceError> {
    for table in tables::REGISTRY_TABLES {
        let rows = read(from, table).await?;
        let batch = to_batch(table, &rows)?;
        to.create(table)
            .await?
            .write(vec![batch])
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
            rows.push(Row {
                table,
                values: columns
                    .iter()
                    .map(|column| value(column.as_ref(), i))
                    .collect(),
            });
        }
    }
    Ok(rows)
}

fn value(column: &dyn Array, i: usize) -> Value {
    use deltalake::arrow::datatypes::DataType;
    let valid = column.is_valid(i);
    match column.data_type() {
        DataType::Int32 => Value::Int(valid.then(|| column.as_primitive::<Int32Type>().value(i))),
        DataType::Float64 => {
            Value::Real(valid.then(|| column.as_primitive::<Float64Type>().value(i)))
        }
        DataType::Timestamp(..) => {
            Value::Time(valid.then(|| column.as_primitive::<TimestampMicrosecondType>().value(i)))
        }
        DataType::List(_) => {
            let items = column.as_list::<i32>().value(i);
            let items = items.as_string::<i32>();
            Value::TextList(items.iter().flatten().map(str::to_string).collect())
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
            let values = rows.iter().map(|r| &r.values[c]);
            match field.data_type() {
                DataType::Int32 => Arc::new(Int32Array::from_iter(values.map(|v| match v {
                    Value::Int(v) => *v,
                    _ => None,
                }))),
                DataType::Float64 => Arc::new(Float64Array::from_iter(values.map(|v| match v {
                    Value::Real(v) => *v,
                    _ => None,
                }))),
                DataType::Timestamp(..) => Arc::new(
                    TimestampMicrosecondArray::from_iter(values.map(|v| match v {
                        Value::Time(v) => *v,
                        _ => None,
                    }))
                    .with_timezone("UTC"),
                ),
                DataType::List(_) => {
                    let mut list = ListBuilder::new(StringBuilder::new());
                    for value in values {
                        match value {
                            Value::TextList(items) => list.append_value(items.iter().map(Some)),
                            _ => list.append_null(),
                        }
                    }
                    Arc::new(list.finish())
                }
                _ => Arc::new(StringArray::from_iter(values.map(|v| match v {
                    Value::Text(text) => text.clone(),
                    _ => None,
                }))),
            }
        })
        .collect();
    RecordBatch::try_new(schema, columns).map_err(|e| ReferenceError::query(table.name, e.into()))
}

/// Whether `id` is lower-case letters, digits and dashes, as ids of hubs and regions are.
fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

/// Applies `change` to `rows` (of its table), checked against `known`, stamped with
/// `by` and `at`; says what changed.
fn apply(
    rows: &mut Vec<Row>,
    change: &Change,
    known: &Known,
    by: &str,
    at: i64,
) -> Result<String, ReferenceError> {
    let refuse = |reason: String| Err(ReferenceError::Change(reason));
    let school_year = |text: &str| {
        SchoolYear::parse(text)
            .map(|y| y.to_string())
            .ok_or_else(|| ReferenceError::Change(format!("{text} is no school year like 2025/26")))
    };
    let text = |value: &str| Value::Text(Some(value.trim().to_string()));
    match change {
        Change::AddRegion(region) => {
            if !valid_id(&region.region_id) {
                return refuse(format!(
                    "region_id {:?}: lower-case letters, digits and dashes only",
                    region.region_id
                ));
            }
            if known.region(Some(&region.region_id)).is_ok() {
                return refuse(format!("region {} is known already", region.region_id));
            }
            let mut municipalities: Vec<String> = region
                .municipalities
                .iter()
                .map(|m| m.trim().to_string())
                .filter(|m| !m.is_empty())
                .collect();
            municipalities.sort_unstable_by_key(|m| m.to_uppercase());
            municipalities.dedup_by_key(|m| m.to_uppercase());
            if region.name.trim().is_empty() || municipalities.is_empty() {
                return refuse("a region needs a name and at least one municipality".into());
            }
            let mut row = Row::new(change.table());
            row.set("region_id", text(&region.region_id))
                .set("name", text(&region.name))
                .set("municipalities", Value::TextList(municipalities.clone()))
                .stamp(by, at);
            rows.push(row);
            Ok(format!(
                "region {} added ({})",
                region.region_id,
                municipalities.join(", ")
            ))
        }
        Change::AddHub(hub) => {
            if !valid_id(&hub.hub_id) {
                return refuse(format!(
                    "hub_id {:?}: lower-case letters, digits and dashes only",
                    hub.hub_id
                ));
            }
            if known.hub(&hub.hub_id).is_ok() {
                return refuse(format!("hub {} is known already", hub.hub_id));
            }
            if hub.name.trim().is_empty() || hub.municipality.trim().is_empty() {
                return refuse("a hub needs a name and a municipality".into());
            }
            let region = known.region(hub.region_id.as_deref())?;
            let region_id = region.text("region_id").unwrap_or_default();
            let Value::TextList(municipalities) = region.get("municipalities") else {
                unreachable!("municipalities is a list")
            };
            if !municipalities
                .iter()
                .any(|m| m.eq_ignore_ascii_case(hub.municipality.trim()))
            {
                return refuse(format!(
                    "{} is not one of region {region_id}'s municipalities ({})",
                    hub.municipality.trim(),
                    municipalities.join(", ")
                ));
            }
            let first = hub
                .first_school_year
                .as_deref()
                .map(school_year)
                .transpose()?;
            let mut row = Row::new(change.table());
            row.set("hub_id", text(&hub.hub_id))
                .set("name", text(&hub.name))
                .set("municipality", text(&hub.municipality))
                .set("region_id", text(region_id))
                .set("first_school_year", Value::Text(first.clone()))
                .stamp(by, at);
            rows.push(row);
            Ok(format!(
                "hub {} added ({}, region {region_id}, from {})",
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
                .find(|r| r.text("hub_id") == Some(hub_id.as_str()))
            else {
                return refuse(format!("no hub {hub_id}"));
            };
            if row
                .text("first_school_year")
                .is_some_and(|first| first > last.as_str())
            {
                return refuse(format!("hub {hub_id} starts after {last}"));
            }
            row.set("last_school_year", Value::Text(Some(last.clone())))
                .stamp(by, at);
            Ok(format!("hub {hub_id} retired after {last}"))
        }
        Change::Targets(targets) => {
            for target in targets {
                let band = target.band.as_deref();
                let Some(definition) = codes::kpi_target(&target.kpi, band) else {
                    return refuse(format!(
                        "no KPI {}{} to set a target for",
                        target.kpi,
                        band.map(|b| format!(" ({b})")).unwrap_or_default()
                    ));
                };
                let region = known.region(target.region_id.as_deref())?;
                let region_id = region.text("region_id").unwrap_or_default().to_string();
                if let Some(hub_id) = &target.hub_id
                    && known.hub(hub_id)?.text("region_id") != Some(region_id.as_str())
                {
                    return refuse(format!("hub {hub_id} is not in region {region_id}"));
                }
                let same = |r: &Row| {
                    r.text("region_id") == Some(region_id.as_str())
                        && r.text("hub_id") == target.hub_id.as_deref()
                        && r.text("kpi") == Some(target.kpi.as_str())
                        && r.text("band") == band
                        && r.get("year") == &Value::Int(Some(target.year))
                };
                rows.retain(|r| !same(r));
                let mut row = Row::new(change.table());
                row.set("region_id", Value::Text(Some(region_id)))
                    .set("hub_id", Value::Text(target.hub_id.clone()))
                    .set("kpi", text(&definition.kpi))
                    .set("band", Value::Text(definition.band.clone()))
                    .set("unit", text(definition.unit.as_str()))
                    .set("year", Value::Int(Some(target.year)))
                    .set("target", Value::Real(target.target))
                    .set("description", text(&definition.description))
                    .stamp(by, at);
                rows.push(row);
            }
            Ok(format!("{} target(s) set", targets.len()))
        }
        Change::IssueToken {
            hub_id,
            token_sha256,
        } => {
            known.hub(hub_id)?;
            let mut row = Row::new(change.table());
            row.set("hub_id", text(hub_id))
                .set("token_sha256", text(token_sha256))
                .stamp(by, at);
            rows.push(row);
            Ok(format!("a token issued to hub {hub_id}"))
        }
    }
}

/// Targets from CSV (`,` or `;`): a header with `kpi`, `band`, `year` and `target`
/// (empty band: none; empty target: no target that year), and `region_id` and
/// `hub_id` where the targets are a region's (needed when there are several) or a
/// hub's own.
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
    let (region, hub) = (column("region_id").ok(), column("hub_id").ok());
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
        let optional =
            |i: Option<usize>| i.map(field).filter(|v| !v.is_empty()).map(str::to_string);
        targets.push(Target {
            region_id: optional(region),
            hub_id: optional(hub),
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
