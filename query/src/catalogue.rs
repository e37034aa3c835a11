//! What researchers can query: the lake's Delta tables (each at its latest or a pinned
//! version), the reference tables imported from DUO, and techmon's code lists. Nothing
//! else is reachable: the session has no file tables and no URL tables.

use std::sync::Arc;

use deltalake::DeltaTable;
use deltalake::arrow::datatypes::{Schema, SchemaRef};
use deltalake::datafusion::catalog::view::ViewTable;
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::datasource::{MemTable, provider_as_source};
use deltalake::datafusion::logical_expr::LogicalPlanBuilder;
use deltalake::datafusion::prelude::{SessionContext, col, lit};
use deltalake::delta_datafusion::{DeltaScanConfig, DeltaScanNext};
use deltalake::logstore::object_store::ObjectStoreExt as _;
use techmon_lake::code_lists::code_lists;
use techmon_lake::glossary::{self, Codes, Term};
use techmon_lake::registry;
use techmon_lake::tables::{self, TableKind};
use techmon_lake::{LakeLocation, TableVersions};
use tokio::sync::Mutex;

use crate::QueryError;
use crate::lake_scan::LakeScan;

/// What a table of the catalogue holds, which says where it comes from.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum SourceKind {
    /// Written by the transform from the hubs' events.
    Lake,
    /// Imported from DUO's open data.
    Reference,
    /// One of techmon's code lists: built in, or (hubs, KPI targets) as the
    /// administrators keep them.
    CodeList,
    /// A named view: SQL over the others.
    View,
    /// Estimates techmon computes from a view (the effect measurement).
    Estimate,
}

impl SourceKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Lake => "lake",
            Self::Reference => "reference",
            Self::CodeList => "code_list",
            Self::View => "view",
            Self::Estimate => "estimate",
        }
    }
}

/// A table of the catalogue, for `GET /v1/tables`.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TableInfo {
    pub name: String,
    pub kind: SourceKind,
    pub description: String,
    pub columns: Vec<ColumnInfo>,
    /// The columns as Arrow has them, for the protocols that list them so.
    #[serde(skip)]
    pub schema: SchemaRef,
}

#[derive(Debug, Clone, serde::Serialize)]
pub struct ColumnInfo {
    pub name: String,
    pub data_type: String,
    pub nullable: bool,
    #[serde(flatten)]
    pub meaning: Meaning,
}

impl TableInfo {
    pub fn new(name: &str, kind: SourceKind, description: &str, schema: &Schema) -> Self {
        Self {
            name: name.to_string(),
            kind,
            description: description.to_string(),
            columns: schema
                .fields()
                .iter()
                .map(|f| ColumnInfo {
                    name: f.name().clone(),
                    data_type: f.data_type().to_string(),
                    nullable: f.is_nullable(),
                    meaning: Meaning::of(term(name, f.name())),
                })
                .collect(),
            schema: Arc::new(schema.clone()),
        }
    }
}

/// What `column` of the catalogue's table or view `table` means.
pub fn term(table: &str, column: &str) -> Option<&'static Term> {
    match (crate::views::find(table), crate::effects::find(table)) {
        (Some(view), _) => view.term(column),
        (None, Some(estimates)) => estimates.term(column),
        (None, None) => glossary::term(table, column),
    }
}

/// A column's meaning as answers give it: a codebook's variables, `GET /v1/tables`.
#[derive(
    Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize, utoipa::ToSchema,
)]
pub struct Meaning {
    /// Empty only where the catalogue lacks one, which its tests refuse.
    pub description: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unit: Option<String>,
    /// The values it takes, where they are a closed set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub codes: Option<Vec<String>>,
    /// The code list its values come from, as `table.column`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code_list: Option<String>,
}

impl Meaning {
    pub fn of(term: Option<&Term>) -> Self {
        let Some(term) = term else {
            return Self::default();
        };
        Self {
            description: term.description.to_string(),
            unit: term.unit.map(str::to_string),
            codes: term
                .codes
                .values()
                .map(|values| values.into_iter().map(str::to_string).collect()),
            code_list: match term.codes {
                Codes::List(table, column) => Some(format!("{table}.{column}")),
                _ => None,
            },
        }
    }
}

/// The catalogue's Delta tables as one query sees them.
pub struct Resolved {
    /// In the order of the catalogue's sources.
    tables: Vec<Option<DeltaTable>>,
    pub versions: TableVersions,
}

/// One Delta table the catalogue knows, whether or not it exists yet.
struct DeltaSource {
    name: &'static str,
    kind: SourceKind,
    description: &'static str,
    /// Its columns, so that views over a table that has no rows yet still plan.
    schema: SchemaRef,
    /// The table as last loaded, brought up to date per query (one lock per table, so
    /// that a query checks every table for new commits at once).
    latest: Mutex<Option<DeltaTable>>,
}

/// A read-only scan of a Delta table: techmon's own over the version's file list, or
/// deltalake's for a table with reader features that only it reads. Partition values
/// and strings come as [`LakeScan`] describes, in both.
fn scan(
    name: &str,
    table: &DeltaTable,
    session: &dyn Session,
) -> Result<Arc<dyn TableProvider>, QueryError> {
    if let Some(scan) = LakeScan::try_new(table).map_err(|e| QueryError::lake(name, e))? {
        return Ok(Arc::new(scan));
    }
    let snapshot = table
        .snapshot()
        .map_err(|e| QueryError::lake(name, e))?
        .snapshot()
        .clone();
    let config = DeltaScanConfig {
        wrap_partition_values: false,
        schema_force_view_types: true,
        ..DeltaScanConfig::new_from_session(session)
    };
    Ok(Arc::new(
        DeltaScanNext::new(snapshot, config).map_err(|e| QueryError::engine(name, e))?,
    ))
}

/// The lake and reference tables, kept loaded and brought up to date per query.
pub struct Catalogue {
    location: LakeLocation,
    sources: Vec<DeltaSource>,
}

impl Catalogue {
    pub fn new(location: LakeLocation) -> Self {
        let sources = tables::all()
            .map(|t| DeltaSource {
                name: t.name,
                kind: match t.kind {
                    TableKind::Events | TableKind::Counts => SourceKind::Lake,
                    TableKind::Reference => SourceKind::Reference,
                    TableKind::Registry => SourceKind::CodeList,
                },
                description: t.description,
                schema: t.arrow_schema(),
                latest: Mutex::new(None),
            })
            .collect();
        Self { location, sources }
    }

    pub fn location(&self) -> &LakeLocation {
        &self.location
    }

    /// The Delta tables at the pinned versions or else the latest (`None` for a table
    /// without a first commit), and their versions.
    pub async fn resolve(&self, pins: &TableVersions) -> Result<Resolved, QueryError> {
        if let Some(unknown) = pins
            .0
            .keys()
            .find(|t| !self.sources.iter().any(|s| s.name == t.as_str()))
        {
            return Err(QueryError::UnknownTable {
                table: unknown.clone(),
            });
        }
        // All at once: each check is a few file-system calls on blocking threads, and
        // one after the other they were half of a small query's time.
        let tables = futures::future::try_join_all(self.sources.iter().map(|source| async move {
            match pins.0.get(source.name) {
                Some(version) => self.pinned(source.name, *version).await.map(Some),
                None => self.latest(source).await,
            }
        }))
        .await?;
        let versions = self
            .sources
            .iter()
            .zip(&tables)
            .filter_map(|(source, table)| {
                let version = table.as_ref().and_then(DeltaTable::version)?;
                Some((source.name.to_string(), version))
            })
            .collect();
        Ok(Resolved {
            tables,
            versions: TableVersions(versions),
        })
    }

    /// Lets `ctx` reach the object stores of the resolved tables.
    pub fn connect(&self, ctx: &SessionContext, resolved: &Resolved) -> Result<(), QueryError> {
        for (source, table) in self.sources.iter().zip(&resolved.tables) {
            if let Some(table) = table {
                table
                    .update_datafusion_session(&ctx.state())
                    .map_err(|e| QueryError::lake(source.name, e))?;
            }
        }
        Ok(())
    }

    /// Registers every resolved table in `ctx` (missing ones as empty tables with
    /// their columns), and the code lists.
    pub async fn register(
        &self,
        ctx: &SessionContext,
        resolved: &Resolved,
    ) -> Result<(), QueryError> {
        self.connect(ctx, resolved)?;
        for (source, table) in self.sources.iter().zip(&resolved.tables) {
            let provider: Arc<dyn TableProvider> = match table {
                Some(table) => scan(source.name, table, &ctx.state())?,
                // Until it is written, a registry table is as built in.
                None => {
                    let rows = match tables::find(source.name).and_then(registry::built_in) {
                        Some(rows) => vec![rows?],
                        None => vec![],
                    };
                    Arc::new(
                        MemTable::try_new(Arc::clone(&source.schema), vec![rows])
                            .map_err(|e| QueryError::engine(source.name, e))?,
                    )
                }
            };
            ctx.register_table(source.name, provider)
                .map_err(|e| QueryError::engine(source.name, e))?;
        }
        for list in code_lists()? {
            let table = MemTable::try_new(list.batch.schema(), vec![vec![list.batch]])
                .map_err(|e| QueryError::engine(list.name, e))?;
            ctx.register_table(list.name, Arc::new(table))
                .map_err(|e| QueryError::engine(list.name, e))?;
        }
        Ok(())
    }

    /// Puts every lake table in `ctx` behind `hub_id = <hub>`: the table's name then
    /// stands for a view of that hub's rows, and the table itself is in no name a
    /// query can reach.
    pub async fn restrict_to_hub(&self, ctx: &SessionContext, hub: &str) -> Result<(), QueryError> {
        for source in self.sources.iter().filter(|s| s.kind == SourceKind::Lake) {
            let engine = |e| QueryError::engine(source.name, e);
            let provider = ctx.table_provider(source.name).await.map_err(engine)?;
            let plan = LogicalPlanBuilder::scan(source.name, provider_as_source(provider), None)
                .and_then(|scan| scan.filter(col("hub_id").eq(lit(hub))))
                .and_then(LogicalPlanBuilder::build)
                .map_err(engine)?;
            ctx.deregister_table(source.name).map_err(engine)?;
            ctx.register_table(source.name, Arc::new(ViewTable::new(plan, None)))
                .map_err(engine)?;
        }
        Ok(())
    }

    /// A lake or reference table at its latest version; `None` for a name the
    /// catalogue does not have, or a table with no commit yet.
    pub async fn latest_table(&self, name: &str) -> Result<Option<DeltaTable>, QueryError> {
        match self.sources.iter().find(|s| s.name == name) {
            Some(source) => self.latest(source).await,
            None => Ok(None),
        }
    }

    /// The table at its latest version, `None` while it has no first commit.
    async fn latest(&self, source: &DeltaSource) -> Result<Option<DeltaTable>, QueryError> {
        let name = source.name;
        let mut latest = source.latest.lock().await;
        if let Some(table) = latest.as_mut() {
            // One look for the next commit's file first: finding none new by listing
            // the log read the name of every commit the table ever had (one per
            // transform round), twelve tables per query.
            let next = table.version().map_or(0, |v| v + 1);
            let next_commit = deltalake::logstore::commit_uri_from_version(Some(next));
            let store = table.log_store().object_store(None);
            if !matches!(
                store.head(&next_commit).await,
                Err(deltalake::ObjectStoreError::NotFound { .. })
            ) {
                table
                    .update_incremental(None)
                    .await
                    .map_err(|e| QueryError::lake(name, e))?;
            }
            return Ok(Some(table.clone()));
        }
        let table = self
            .location
            .open(name)
            .await
            .map_err(|e| QueryError::lake(name, e))?;
        // No commit yet (or no folder): the table is empty so far.
        if table.version().is_none() {
            return Ok(None);
        }
        *latest = Some(table.clone());
        Ok(Some(table))
    }

    async fn pinned(&self, name: &str, version: u64) -> Result<DeltaTable, QueryError> {
        self.location
            .open_version(name, version)
            .await
            .map_err(|e| QueryError::VersionUnavailable {
                table: name.into(),
                version,
                source: Box::new(e),
            })
    }

    /// The catalogue's tables with their columns and descriptions (views are added by
    /// the engine).
    pub fn describe(&self) -> Result<Vec<TableInfo>, QueryError> {
        let mut out: Vec<TableInfo> = self
            .sources
            .iter()
            .map(|s| TableInfo::new(s.name, s.kind, s.description, &s.schema))
            .collect();
        for list in code_lists()? {
            out.push(TableInfo::new(
                list.name,
                SourceKind::CodeList,
                list.description,
                &list.batch.schema(),
            ));
        }
        Ok(out)
    }
}
