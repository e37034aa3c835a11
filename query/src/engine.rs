//! The query engine (no HTTP here): a DataFusion session per query over the
//! catalogue and the named views, run within the configured memory, time and row
//! limits.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::catalog::view::ViewTable;
use deltalake::datafusion::catalog::{
    CatalogProvider, CatalogProviderList, MemoryCatalogProvider, MemoryCatalogProviderList,
    MemorySchemaProvider, SchemaProvider, TableProvider,
};
use deltalake::datafusion::common::tree_node::{TreeNode, TreeNodeRecursion};
use deltalake::datafusion::datasource::empty::EmptyTable;
use deltalake::datafusion::datasource::memory::DataSourceExec;
use deltalake::datafusion::datasource::physical_plan::{FileGroup, FileScanConfig};
use deltalake::datafusion::datasource::source_as_provider;
use deltalake::datafusion::error::DataFusionError;
use deltalake::datafusion::execution::SessionStateBuilder;
use deltalake::datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, FileMetadataCache,
};
use deltalake::datafusion::execution::cache::default_cache::DefaultCache;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::execution::session_state::SessionState;
use deltalake::datafusion::logical_expr::{Expr, LogicalPlan, Volatility};
use deltalake::datafusion::physical_plan::execution_plan::reset_plan_states;
use deltalake::datafusion::physical_plan::{ExecutionPlan, execute_stream};
use deltalake::datafusion::prelude::{
    DataFrame, SQLOptions, SessionConfig, SessionContext, col, lit,
};
use futures::StreamExt;
use techmon_lake::{LakeLocation, TableVersions};

use crate::QueryError;
use crate::catalogue::{Catalogue, SourceKind, TableInfo};
use crate::disclosure::Disclosure;
use crate::distinct_partitions::DistinctPartitionValues;
use crate::effects::{EFFECT_TABLES, EffectProvider, Estimated};
use crate::memory::{QueryPool, ServiceMemory};
use crate::pg_catalog::PgCatalog;
use crate::utc_date_trunc::UtcDateTrunc;
use crate::views::VIEWS;
use datafusion_pg_catalog::pg_catalog::oid_type_planner::PgOidTypePlanner;

/// The limits every query runs within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Operators that can spill (sorts, aggregations, joins) spill to disk beyond it;
    /// a query that still needs more fails cleanly.
    pub memory_limit_mib: usize,
    pub timeout: Duration,
    /// Answers with more rows are refused rather than cut off silently.
    pub max_rows: usize,
    /// The largest value a function may make (see [`crate::bounded`]).
    pub max_value_bytes: u64,
    /// What all running queries may hold together (see [`crate::memory`]).
    pub total_memory_mib: usize,
}

/// Whose rows a query may read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// Every hub's (researchers, analysts, admins).
    AllHubs,
    /// One hub's own: every lake table is seen through `hub_id = <hub>`, so every
    /// view and join over them is too, and `kpi_report` has that hub's rows only.
    Hub(String),
}

/// A query's answer and the table versions it was computed from.
#[derive(Debug)]
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub versions: TableVersions,
    /// What output control left out (researchers' answers only).
    pub suppressed: Option<crate::disclosure::Suppressed>,
}

impl Answer {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Bounds the Parquet footers kept between queries (least recently used go first).
const PARQUET_FOOTER_CACHE_BYTES: usize = 128 * 1024 * 1024;

/// Files that the kept plans of one set of versions list at most, counted once per
/// scan that lists them. A plan's memory grows with the files it lists, so this
/// bounds what kept plans hold, with room for every view's plan on a large lake; the
/// least recently used go first.
const MAX_KEPT_PLAN_FILES: usize = 25_000;

/// Plans kept at most, whatever they scan (a view over empty tables lists no file).
const MAX_KEPT_PLANS: usize = 100;

/// The session of one set of table versions, and the statements planned on it.
struct Prepared {
    versions: TableVersions,
    state: SessionState,
    /// Physical plans by SQL text, never run themselves: each query runs a copy with
    /// fresh state. Planning a KPI view costs DataFusion the same at any lake size, a
    /// large share of a view's time on a small lake, and a plan holds for as long as
    /// the versions it reads.
    plans: HashMap<String, KeptPlan>,
    /// Counts uses of plans, to tell the least recently used.
    uses: u64,
}

/// A statement's result schema and physical plan, the files its scans list, and
/// when it was last used.
struct KeptPlan {
    schema: SchemaRef,
    plan: Arc<dyn ExecutionPlan>,
    files: usize,
    last_used: u64,
}

pub struct Engine {
    catalogue: Catalogue,
    limits: Limits,
    /// The last session's tables, views and plans, by the versions they hold:
    /// planning the views again for every query would cost more than many queries.
    prepared: tokio::sync::Mutex<Option<Prepared>>,
    /// Parquet footers, kept across queries: a lake file never changes once written,
    /// and every query read them all again (`metadata_load_time` in EXPLAIN ANALYZE).
    parquet_footers: Arc<FileMetadataCache>,
    /// What the running queries hold together.
    service_memory: Arc<ServiceMemory>,
    /// The views as released to researchers, by the versions and threshold they were
    /// computed with.
    released: std::sync::Mutex<Option<(TableVersions, u64, ReleasedRows)>>,
    /// PostgreSQL's catalogue, in every session once the PostgreSQL endpoint asks for
    /// it ([`Engine::speak_postgres`]).
    pg_catalog: std::sync::OnceLock<PgCatalog>,
}

/// The released rows of each view, computed when first read.
type ReleasedRows = HashMap<&'static str, Arc<tokio::sync::OnceCell<Vec<RecordBatch>>>>;

impl Engine {
    pub fn new(lake: LakeLocation, limits: Limits) -> Result<Self, QueryError> {
        Ok(Self {
            catalogue: Catalogue::new(lake),
            limits,
            prepared: tokio::sync::Mutex::new(None),
            parquet_footers: Arc::new(DefaultCache::new(PARQUET_FOOTER_CACHE_BYTES)),
            service_memory: ServiceMemory::new(limits.total_memory_mib),
            released: std::sync::Mutex::new(None),
            pg_catalog: std::sync::OnceLock::new(),
        })
    }

    /// Puts PostgreSQL's catalogue (`pg_catalog`) in every session from now on, for
    /// the PostgreSQL endpoint's clients.
    pub async fn speak_postgres(&self) -> Result<(), QueryError> {
        if self.pg_catalog.get().is_some() {
            return Ok(());
        }
        let (listed, _) = self.session(&TableVersions::default()).await?;
        let pg_catalog =
            PgCatalog::new(&listed).map_err(|e| QueryError::engine("pg_catalog", e))?;
        let _ = self.pg_catalog.set(pg_catalog);
        // Sessions prepared before have none.
        *self.prepared.lock().await = None;
        Ok(())
    }

    /// Puts `pg_catalog` in a new session, when the PostgreSQL endpoint runs.
    fn install_pg_catalog(&self, ctx: &SessionContext) -> Result<(), QueryError> {
        match self.pg_catalog.get() {
            Some(pg_catalog) => pg_catalog
                .install(ctx)
                .map_err(|e| QueryError::engine("pg_catalog", e)),
            None => Ok(()),
        }
    }

    pub fn limits(&self) -> Limits {
        self.limits
    }

    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// A session with every table (at `pins`, else the latest versions) and view, and
    /// its own memory pool, so one query's limit is not shared with others. Within a
    /// query, operators take memory as they need it until the limit: a fair split
    /// between a KPI view's dozens of operators made its one large aggregation spill,
    /// for most of the view's time, while the others held almost nothing.
    pub async fn session(
        &self,
        pins: &TableVersions,
    ) -> Result<(SessionContext, TableVersions), QueryError> {
        let (ctx, versions, _) = self.session_and_plan(pins, None, &Scope::AllHubs).await?;
        Ok((ctx, versions))
    }

    /// [`Engine::session`] within `scope`, and the plan of `sql` when it was planned
    /// on the same versions before (a hub's session is made anew each time).
    async fn session_and_plan(
        &self,
        pins: &TableVersions,
        sql: Option<&str>,
        scope: &Scope,
    ) -> Result<(SessionContext, TableVersions, Option<Planned>), QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(QueryPool::new(
                self.limits.memory_limit_mib,
                &self.service_memory,
            )))
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(Arc::clone(&self.parquet_footers)))
                    .with_metadata_cache_limit(PARQUET_FOOTER_CACHE_BYTES),
            )
            .build_arc()
            .map_err(|e| QueryError::engine("runtime", e))?;
        let resolved = self.catalogue.resolve(pins).await?;
        if let Scope::Hub(hub) = scope {
            let ctx = SessionContext::new_with_state(new_state(runtime));
            ctx.register_udf(UtcDateTrunc::udf());
            crate::bounded::register(&ctx, self.limits.max_value_bytes);
            self.catalogue.register(&ctx, &resolved).await?;
            self.catalogue.restrict_to_hub(&ctx, hub).await?;
            create_views(&ctx).await?;
            restrict_view(&ctx, "kpi_report", hub).await?;
            self.install_pg_catalog(&ctx)?;
            return Ok((ctx, resolved.versions, None));
        }
        let mut prepared = self.prepared.lock().await;
        if let Some(known) = prepared.as_mut()
            && known.versions == resolved.versions
        {
            let state = SessionStateBuilder::new_from_existing(known.state.clone())
                .with_runtime_env(runtime)
                .build();
            let ctx = SessionContext::new_with_state(state);
            self.catalogue.connect(&ctx, &resolved)?;
            known.uses += 1;
            let planned = sql.and_then(|sql| known.plans.get_mut(sql)).map(|kept| {
                kept.last_used = known.uses;
                (kept.schema.clone(), kept.plan.clone())
            });
            return Ok((ctx, resolved.versions, planned));
        }
        let ctx = SessionContext::new_with_state(new_state(runtime));
        ctx.register_udf(UtcDateTrunc::udf());
        crate::bounded::register(&ctx, self.limits.max_value_bytes);
        self.catalogue.register(&ctx, &resolved).await?;
        create_views(&ctx).await?;
        register_effect_tables(&ctx)?;
        self.install_pg_catalog(&ctx)?;
        *prepared = Some(Prepared {
            versions: resolved.versions.clone(),
            state: ctx.state(),
            plans: HashMap::new(),
            uses: 0,
        });
        Ok((ctx, resolved.versions, None))
    }

    /// Keeps the plan of `sql` on `versions`, if those are still the prepared ones,
    /// making room by dropping the least recently used plans.
    async fn keep_plan(&self, versions: &TableVersions, sql: &str, (schema, plan): Planned) {
        let files = scanned_files(&plan);
        if files > MAX_KEPT_PLAN_FILES {
            return;
        }
        let mut prepared = self.prepared.lock().await;
        let Some(known) = prepared
            .as_mut()
            .filter(|known| known.versions == *versions)
        else {
            return;
        };
        make_room(&mut known.plans, files);
        known.uses += 1;
        let kept = KeptPlan {
            schema,
            plan,
            files,
            last_used: known.uses,
        };
        known.plans.insert(sql.to_string(), kept);
        tracing::debug!(files, plans = known.plans.len(), "plan kept");
    }

    /// Runs one read-only statement over every hub's rows.
    pub async fn query(&self, sql: &str, pins: &TableVersions) -> Result<Answer, QueryError> {
        self.query_in(sql, pins, &Scope::AllHubs).await
    }

    /// Runs one read-only statement within `scope`.
    pub async fn query_in(
        &self,
        sql: &str,
        pins: &TableVersions,
        scope: &Scope,
    ) -> Result<Answer, QueryError> {
        self.query_as(sql, pins, scope, &Disclosure::RowLevel).await
    }

    /// Runs one read-only statement within `scope`, its answer released as
    /// `disclosure` says (see [`crate::disclosure`]).
    pub async fn query_as(
        &self,
        sql: &str,
        pins: &TableVersions,
        scope: &Scope,
        disclosure: &Disclosure,
    ) -> Result<Answer, QueryError> {
        crate::safety::check(sql)?;
        let limits = self.limits;
        let failed = |e| QueryError::from_query(e, limits.memory_limit_mib);
        let options = read_only();
        let run = async {
            let started = Instant::now();
            let (ctx, versions, schema, plan, protected) = match disclosure {
                Disclosure::RowLevel => {
                    let (ctx, versions, known_plan) =
                        self.session_and_plan(pins, Some(sql), scope).await?;
                    let (schema, plan) = match known_plan {
                        Some(planned) => planned,
                        None => {
                            let frame = ctx.sql_with_options(sql, options).await.map_err(failed)?;
                            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
                            let reusable = plan_is_reusable(frame.logical_plan());
                            let plan = frame.create_physical_plan().await.map_err(failed)?;
                            if reusable && *scope == Scope::AllHubs {
                                self.keep_plan(&versions, sql, (schema.clone(), plan.clone()))
                                    .await;
                            }
                            (schema, plan)
                        }
                    };
                    (ctx, versions, schema, plan, None)
                }
                Disclosure::Aggregates { min_persons, .. } => {
                    let min_persons = *min_persons;
                    let (ctx, versions, _) = self.session_and_plan(pins, None, scope).await?;
                    let (ctx, views) = self.release_views(&ctx, &versions, min_persons).await?;
                    let logical = ctx.state().create_logical_plan(sql).await.map_err(failed)?;
                    options.verify_plan(&logical).map_err(failed)?;
                    let protected = crate::disclosure::protect(logical, min_persons, &views)?;
                    let frame = DataFrame::new(ctx.state(), protected.plan.clone());
                    let plan = frame.create_physical_plan().await.map_err(failed)?;
                    (
                        ctx,
                        versions,
                        protected.schema.clone(),
                        plan,
                        Some(protected),
                    )
                }
            };
            // A copy with fresh state: a join's built side, a scan's shared work.
            let plan = reset_plan_states(plan).map_err(failed)?;
            let planned = started.elapsed();
            let mut stream = execute_stream(plan, ctx.task_ctx()).map_err(failed)?;
            let mut batches = Vec::new();
            let mut rows = 0;
            while let Some(batch) = stream.next().await {
                let batch = batch.map_err(failed)?;
                rows += batch.num_rows();
                if rows > limits.max_rows {
                    return Err(QueryError::TooManyRows {
                        max_rows: limits.max_rows,
                    });
                }
                batches.push(batch);
            }
            // Planning is DataFusion's alone and grows with a view's size (a fifth of
            // kpi_report's time at 1M events): worth telling apart from running.
            tracing::debug!(
                planning_ms = planned.as_secs_f64() * 1e3,
                running_ms = (started.elapsed() - planned).as_secs_f64() * 1e3,
                rows,
                "query planned and run"
            );
            let (batches, suppressed) = match (&protected, disclosure) {
                (
                    Some(protected),
                    Disclosure::Aggregates {
                        min_persons,
                        released,
                        cell_key_noise,
                    },
                ) => {
                    let (batches, suppressed) = crate::disclosure::release(
                        protected,
                        batches,
                        *min_persons,
                        released,
                        *cell_key_noise,
                    )?;
                    (batches, Some(suppressed))
                }
                _ => (batches, None),
            };
            Ok(Answer {
                schema,
                batches,
                versions,
                suppressed,
            })
        };
        tokio::time::timeout(limits.timeout, run)
            .await
            .map_err(|_| QueryError::Timeout {
                seconds: limits.timeout.as_secs(),
            })?
    }

    /// `ctx` with every named view behind its release (see [`crate::views::Release`]),
    /// each computed once per set of versions, and their names.
    async fn release_views(
        &self,
        ctx: &SessionContext,
        versions: &TableVersions,
        min_persons: u64,
    ) -> Result<(SessionContext, Vec<&'static str>), QueryError> {
        let cells: Vec<_> = {
            let mut released = self
                .released
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            if released
                .as_ref()
                .is_none_or(|(v, k, _)| v != versions || *k != min_persons)
            {
                *released = Some((versions.clone(), min_persons, HashMap::new()));
            }
            let (_, _, cells) = released.as_mut().expect("set above");
            VIEWS
                .iter()
                .map(|view| Arc::clone(cells.entry(view.name).or_default()))
                .collect()
        };
        let internal = |what: &str| {
            QueryError::engine("released views", DataFusionError::Internal(what.into()))
        };
        let inner = default_schema(ctx)?;
        let mut views: HashMap<String, Arc<dyn TableProvider>> = HashMap::new();
        for (view, rows) in VIEWS.iter().zip(cells) {
            let engine = |e| QueryError::engine(view.name, e);
            let provider = inner
                .table(view.name)
                .await
                .map_err(engine)?
                .ok_or_else(|| internal("a named view is missing"))?;
            let Some(defined) = provider.downcast_ref::<ViewTable>() else {
                return Err(internal("a named view is not a view"));
            };
            let released =
                crate::disclosure::ReleasedView::new(ctx, view, defined, min_persons, rows)?;
            views.insert(view.name.to_string(), Arc::new(released));
        }
        let schema = crate::disclosure::ReleasedSchema { inner, views };
        Ok((
            with_default_schema(ctx, Arc::new(schema))?,
            VIEWS.iter().map(|v| v.name).collect(),
        ))
    }

    /// The columns `sql`'s answer would have, released as `disclosure` says, and the
    /// types of its parameters (`$1`, …), planned but not run.
    pub async fn answer_schema(
        &self,
        sql: &str,
        pins: &TableVersions,
        scope: &Scope,
        disclosure: &Disclosure,
    ) -> Result<(SchemaRef, Vec<Option<DataType>>), QueryError> {
        crate::safety::check(sql)?;
        let failed = |e| QueryError::from_query(e, self.limits.memory_limit_mib);
        let (ctx, versions, _) = self.session_and_plan(pins, None, scope).await?;
        let (ctx, views) = match disclosure {
            Disclosure::RowLevel => (ctx, Vec::new()),
            Disclosure::Aggregates { min_persons, .. } => {
                self.release_views(&ctx, &versions, *min_persons).await?
            }
        };
        let logical = ctx.state().create_logical_plan(sql).await.map_err(failed)?;
        read_only().verify_plan(&logical).map_err(failed)?;
        let mut parameters: Vec<(usize, Option<DataType>)> = logical
            .get_parameter_types()
            .map_err(failed)?
            .into_iter()
            .filter_map(|(name, t)| Some((name.trim_start_matches('$').parse().ok()?, t)))
            .collect();
        parameters.sort_by_key(|(n, _)| *n);
        let schema = match disclosure {
            Disclosure::RowLevel => Arc::new(logical.schema().as_arrow().clone()),
            Disclosure::Aggregates { min_persons, .. } => {
                crate::disclosure::protect(logical, *min_persons, &views)?.schema
            }
        };
        Ok((schema, parameters.into_iter().map(|(_, t)| t).collect()))
    }

    /// Where each column of `sql`'s answer comes from (see [`crate::codebook`]).
    pub async fn origins(
        &self,
        sql: &str,
        pins: &TableVersions,
    ) -> Result<Vec<crate::codebook::Origin>, QueryError> {
        let (ctx, _) = self.session(pins).await?;
        let ctx = views_as_tables(&ctx).await?;
        let plan = ctx
            .state()
            .create_logical_plan(sql)
            .await
            .map_err(|e| QueryError::from_query(e, self.limits.memory_limit_mib))?;
        Ok(crate::codebook::origins(&plan))
    }

    /// The tables and views researchers can query, with columns and descriptions.
    pub async fn describe(&self) -> Result<Vec<TableInfo>, QueryError> {
        let mut tables = self.catalogue.describe()?;
        let (ctx, _) = self.session(&TableVersions::default()).await?;
        for view in VIEWS {
            let frame = ctx
                .table(view.name)
                .await
                .map_err(|e| QueryError::engine(view.name, e))?;
            tables.push(TableInfo::new(
                view.name,
                SourceKind::View,
                view.description,
                frame.schema().as_arrow(),
            ));
        }
        tables.extend(EFFECT_TABLES.iter().map(|table| {
            TableInfo::new(
                table.name,
                SourceKind::Estimate,
                table.description,
                &table.schema(),
            )
        }));
        Ok(tables)
    }
}

/// What SQL may do: read.
fn read_only() -> SQLOptions {
    SQLOptions::new()
        .with_allow_ddl(false)
        .with_allow_dml(false)
        .with_allow_statements(false)
}

/// A copy of `ctx` in which each view is a table of its columns, so that a plan reads
/// it by its name rather than inlining its SQL; for plans that are never run.
async fn views_as_tables(ctx: &SessionContext) -> Result<SessionContext, QueryError> {
    let engine = |e| QueryError::engine("views as tables", e);
    let inner = default_schema(ctx)?;
    let schema = MemorySchemaProvider::new();
    for name in inner.table_names() {
        let Some(provider) = inner.table(&name).await.map_err(engine)? else {
            continue;
        };
        let provider: Arc<dyn TableProvider> = if VIEWS.iter().any(|v| v.name == name) {
            Arc::new(EmptyTable::new(provider.schema()))
        } else {
            provider
        };
        schema.register_table(name, provider).map_err(engine)?;
    }
    with_default_schema(ctx, Arc::new(schema))
}

/// The schema `ctx`'s unqualified names are in.
fn default_schema(ctx: &SessionContext) -> Result<Arc<dyn SchemaProvider>, QueryError> {
    let state = ctx.state();
    let catalog = &state.config().options().catalog;
    ctx.catalog(&catalog.default_catalog)
        .and_then(|c| c.schema(&catalog.default_schema))
        .ok_or_else(|| {
            QueryError::engine(
                "session",
                DataFusionError::Internal("the session has no default schema".into()),
            )
        })
}

/// A copy of `ctx` (its configuration, functions, memory pool and other schemas)
/// whose default schema is `schema`.
fn with_default_schema(
    ctx: &SessionContext,
    schema: Arc<dyn SchemaProvider>,
) -> Result<SessionContext, QueryError> {
    let state = ctx.state();
    let names = &state.config().options().catalog;
    let catalog = MemoryCatalogProvider::new();
    // The other schemas as they are (`pg_catalog`, where there is one).
    if let Some(existing) = ctx.catalog(&names.default_catalog) {
        for other in existing.schema_names() {
            if other != names.default_schema
                && let Some(kept) = existing.schema(&other)
            {
                catalog
                    .register_schema(&other, kept)
                    .map_err(|e| QueryError::engine("session", e))?;
            }
        }
    }
    catalog
        .register_schema(&names.default_schema, schema)
        .map_err(|e| QueryError::engine("session", e))?;
    let catalogs = MemoryCatalogProviderList::new();
    catalogs.register_catalog(names.default_catalog.clone(), Arc::new(catalog));
    Ok(SessionContext::new_with_state(
        SessionStateBuilder::new_from_existing(state.clone())
            .with_catalog_list(Arc::new(catalogs))
            .build(),
    ))
}

/// A session's state: its configuration, optimizer rules and `runtime`.
fn new_state(
    runtime: Arc<deltalake::datafusion::execution::runtime_env::RuntimeEnv>,
) -> SessionState {
    let mut config = SessionConfig::new()
        .with_information_schema(true)
        // Batches of 32Ki rows rather than DataFusion's 8Ki: the KPI views' large
        // aggregations and joins pay a cost per batch (hashing set-up, emitting,
        // taking rows for the repartition), so fewer batches make the view suite
        // faster on a large lake.
        .with_batch_size(32 * 1024)
        .with_target_partitions(
            std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
        );
    let options = config.options_mut();
    // The lake's grouping keys (class, activity, pseudonym) are mostly unique, so
    // partial aggregation seldom reduces rows; DataFusion's default probe hashes
    // 100,000 rows per partition before it learns that, a noticeable part of a
    // view's first aggregation; 10,000 tell it as well.
    options
        .execution
        .skip_partial_aggregation_probe_rows_threshold = 10_000;
    // DataFusion runs a plan again (`reset_plan_states`) only without dynamic
    // filters: their state is shared by the copies of a plan. The KPI views ran as
    // fast without them.
    options.optimizer.enable_dynamic_filter_pushdown = false;
    options.optimizer.enable_join_dynamic_filter_pushdown = false;
    options.optimizer.enable_topk_dynamic_filter_pushdown = false;
    options.optimizer.enable_aggregate_dynamic_filter_pushdown = false;
    SessionStateBuilder::new()
        .with_config(config)
        .with_runtime_env(runtime)
        .with_default_features()
        // PostgreSQL's oid types (`'activities'::regclass`), as its clients write them.
        .with_type_planner(Arc::new(PgOidTypePlanner))
        .with_optimizer_rule(Arc::new(DistinctPartitionValues))
        .build()
}

/// The named views, over the tables registered in `ctx`.
async fn create_views(ctx: &SessionContext) -> Result<(), QueryError> {
    for view in VIEWS {
        ctx.sql(&format!("CREATE VIEW {} AS {}", view.name, view.sql))
            .await
            .map_err(|e| QueryError::engine(view.name, e))?;
    }
    Ok(())
}

/// The effect tables, computed from `effect_panel` when read. Not in a hub's session:
/// its panel would hold only its own reach, and other hubs' reached schools would
/// pass for comparison schools (a hub asks `GET /v1/effects`).
fn register_effect_tables(ctx: &SessionContext) -> Result<(), QueryError> {
    let estimated = Estimated::default();
    for table in EFFECT_TABLES {
        let provider = EffectProvider::new(table, Arc::clone(&estimated));
        ctx.register_table(table.name, Arc::new(provider))
            .map_err(|e| QueryError::engine(table.name, e))?;
    }
    Ok(())
}

/// Replaces view `name` in `ctx` by its rows of `hub`.
async fn restrict_view(
    ctx: &SessionContext,
    name: &'static str,
    hub: &str,
) -> Result<(), QueryError> {
    let engine = |e| QueryError::engine(name, e);
    let plan = ctx
        .table(name)
        .await
        .map_err(engine)?
        .filter(col("hub_id").eq(lit(hub)))
        .map_err(engine)?
        .into_unoptimized_plan();
    ctx.deregister_table(name).map_err(engine)?;
    ctx.register_table(name, Arc::new(ViewTable::new(plan, None)))
        .map_err(engine)?;
    Ok(())
}

/// Drops the least recently used plans until one that lists `files` fits.
fn make_room(plans: &mut HashMap<String, KeptPlan>, files: usize) {
    while plans.len() >= MAX_KEPT_PLANS
        || plans.values().map(|kept| kept.files).sum::<usize>() + files > MAX_KEPT_PLAN_FILES
    {
        let Some(oldest) = plans
            .iter()
            .min_by_key(|(_, kept)| kept.last_used)
            .map(|(sql, _)| sql.clone())
        else {
            break;
        };
        plans.remove(&oldest);
    }
}

/// A statement's result schema and physical plan.
type Planned = (SchemaRef, Arc<dyn ExecutionPlan>);

/// The files a plan's scans list, each counted once per scan.
fn scanned_files(plan: &Arc<dyn ExecutionPlan>) -> usize {
    let mut files = 0;
    let _ = plan.apply(|node| {
        if let Some(scan) = node.downcast_ref::<DataSourceExec>()
            && let Some(config) = scan.data_source().downcast_ref::<FileScanConfig>()
        {
            files += config.file_groups.iter().map(FileGroup::len).sum::<usize>();
        }
        Ok(TreeNodeRecursion::Continue)
    });
    files
}

/// Whether a statement's physical plan gives the same answer when run again on the
/// same versions: not an EXPLAIN (whose plan holds its measurements), nor a query that
/// calls a function whose value DataFusion fixes while planning, such as `now()`,
/// itself or in a view it reads.
fn plan_is_reusable(plan: &LogicalPlan) -> bool {
    if matches!(plan, LogicalPlan::Explain(_) | LogicalPlan::Analyze(_)) {
        return false;
    }
    let mut reusable = true;
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && let Ok(provider) = source_as_provider(&scan.source)
            && let Some(view) = provider.downcast_ref::<ViewTable>()
        {
            reusable &= plan_is_reusable(view.logical_plan());
        }
        node.apply_expressions(|expr| {
            expr.apply(|e| {
                if let Expr::ScalarFunction(f) = e
                    && f.func.signature().volatility == Volatility::Stable
                {
                    reusable = false;
                }
                Ok(TreeNodeRecursion::Continue)
            })
        })?;
        Ok(if reusable {
            TreeNodeRecursion::Continue
        } else {
            TreeNodeRecursion::Stop
        })
    });
    reusable
}

#[cfg(test)]
mod tests {
    use super::*;
    use deltalake::arrow::datatypes::Schema;
    use deltalake::datafusion::physical_plan::empty::EmptyExec;

    fn kept(files: usize, last_used: u64) -> KeptPlan {
        let schema = Arc::new(Schema::empty());
        KeptPlan {
            plan: Arc::new(EmptyExec::new(schema.clone())),
            schema,
            files,
            last_used,
        }
    }

    fn names(plans: &HashMap<String, KeptPlan>) -> Vec<&str> {
        let mut names: Vec<&str> = plans.keys().map(String::as_str).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn room_is_made_by_dropping_the_least_recently_used_plans() {
        let mut plans = HashMap::from([
            ("a".to_string(), kept(10_000, 1)),
            ("b".to_string(), kept(10_000, 3)),
            ("c".to_string(), kept(4_000, 2)),
        ]);
        // 24,000 files listed: 1,000 more fit, 6,000 only without a (used first).
        make_room(&mut plans, 1_000);
        assert_eq!(names(&plans), ["a", "b", "c"]);
        make_room(&mut plans, 6_000);
        assert_eq!(names(&plans), ["b", "c"]);
        make_room(&mut plans, 15_000);
        assert_eq!(names(&plans), ["b"]);

        // Plans that list no file still count.
        let mut plans: HashMap<String, KeptPlan> = (0..MAX_KEPT_PLANS as u64)
            .map(|n| (format!("{n:03}"), kept(0, 100 - n)))
            .collect();
        make_room(&mut plans, 0);
        assert_eq!(plans.len(), MAX_KEPT_PLANS - 1);
        assert!(!plans.contains_key(&format!("{:03}", MAX_KEPT_PLANS - 1)));
    }
}
