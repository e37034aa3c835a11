//! The query engine (no HTTP here): a DataFusion session per query over the
//! catalogue and the named views, run within the configured memory, time and row
//! limits.

use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::datatypes::SchemaRef;
use deltalake::datafusion::execution::SessionStateBuilder;
use deltalake::datafusion::execution::cache::cache_manager::{
    CacheManagerConfig, FileMetadataCache,
};
use deltalake::datafusion::execution::cache::default_cache::DefaultCache;
use deltalake::datafusion::execution::memory_pool::GreedyMemoryPool;
use deltalake::datafusion::execution::runtime_env::RuntimeEnvBuilder;
use deltalake::datafusion::execution::session_state::SessionState;
use deltalake::datafusion::physical_plan::execute_stream;
use deltalake::datafusion::prelude::{SQLOptions, SessionConfig, SessionContext};
use futures::StreamExt;

use crate::QueryError;
use crate::catalogue::{Catalogue, TableInfo, TableVersions};
use crate::views::VIEWS;

/// The limits every query runs within.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Operators that can spill (sorts, aggregations, joins) spill to disk beyond it;
    /// a query that still needs more fails cleanly.
    pub memory_limit_mib: usize,
    pub timeout: Duration,
    /// Answers with more rows are refused rather than cut off silently.
    pub max_rows: usize,
}

/// A query's answer and the table versions it was computed from.
#[derive(Debug)]
pub struct Answer {
    pub schema: SchemaRef,
    pub batches: Vec<RecordBatch>,
    pub versions: TableVersions,
}

impl Answer {
    pub fn row_count(&self) -> usize {
        self.batches.iter().map(RecordBatch::num_rows).sum()
    }
}

/// Bounds the Parquet footers kept between queries (least recently used go first).
const PARQUET_FOOTER_CACHE_BYTES: usize = 128 * 1024 * 1024;

pub struct Engine {
    catalogue: Catalogue,
    limits: Limits,
    /// The last session's tables and views, by the versions they hold: planning the
    /// views again for every query would cost more than many queries.
    prepared: tokio::sync::Mutex<Option<(TableVersions, SessionState)>>,
    /// Parquet footers, kept across queries: a lake file never changes once written,
    /// and every query read them all again (`metadata_load_time` in EXPLAIN ANALYZE).
    parquet_footers: Arc<FileMetadataCache>,
}

impl Engine {
    pub fn new(lake: &str, limits: Limits) -> Result<Self, QueryError> {
        Ok(Self {
            catalogue: Catalogue::new(lake)?,
            limits,
            prepared: tokio::sync::Mutex::new(None),
            parquet_footers: Arc::new(DefaultCache::new(PARQUET_FOOTER_CACHE_BYTES)),
        })
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
    /// between a KPI view's dozens of operators made its one large aggregation spill
    /// (10 s of 16 at 10M events) while the others held almost nothing.
    pub async fn session(
        &self,
        pins: &TableVersions,
    ) -> Result<(SessionContext, TableVersions), QueryError> {
        let runtime = RuntimeEnvBuilder::new()
            .with_memory_pool(Arc::new(GreedyMemoryPool::new(
                self.limits.memory_limit_mib * 1024 * 1024,
            )))
            .with_cache_manager(
                CacheManagerConfig::default()
                    .with_file_metadata_cache(Some(Arc::clone(&self.parquet_footers)))
                    .with_metadata_cache_limit(PARQUET_FOOTER_CACHE_BYTES),
            )
            .build_arc()
            .map_err(|e| QueryError::engine("runtime", e))?;
        let resolved = self.catalogue.resolve(pins).await?;
        let mut prepared = self.prepared.lock().await;
        if let Some((versions, state)) = prepared.as_ref()
            && *versions == resolved.versions
        {
            let state = SessionStateBuilder::new_from_existing(state.clone())
                .with_runtime_env(runtime)
                .build();
            let ctx = SessionContext::new_with_state(state);
            self.catalogue.connect(&ctx, &resolved)?;
            return Ok((ctx, resolved.versions));
        }
        let mut config = SessionConfig::new()
            .with_information_schema(true)
            .with_target_partitions(
                std::thread::available_parallelism().map_or(2, std::num::NonZero::get),
            );
        // The lake's grouping keys (class, activity, pseudonym) are mostly unique, so
        // partial aggregation seldom reduces rows; DataFusion's default probe hashes
        // 100,000 rows per partition before it learns that (190 ms of CPU in reach's
        // first aggregation at 1M events); 10,000 tell it as well.
        config
            .options_mut()
            .execution
            .skip_partial_aggregation_probe_rows_threshold = 10_000;
        let state = SessionStateBuilder::new()
            .with_config(config)
            .with_runtime_env(runtime)
            .with_default_features()
            .build();
        let ctx = SessionContext::new_with_state(state);
        self.catalogue.register(&ctx, &resolved).await?;
        for view in VIEWS {
            ctx.sql(&format!("CREATE VIEW {} AS {}", view.name, view.sql))
                .await
                .map_err(|e| QueryError::engine(view.name, e))?;
        }
        *prepared = Some((resolved.versions.clone(), ctx.state()));
        Ok((ctx, resolved.versions))
    }

    /// Runs one read-only statement.
    pub async fn query(&self, sql: &str, pins: &TableVersions) -> Result<Answer, QueryError> {
        crate::safety::check(sql)?;
        let (ctx, versions) = self.session(pins).await?;
        let limits = self.limits;
        let failed = |e| QueryError::from_query(e, limits.memory_limit_mib);
        let run = async {
            let options = SQLOptions::new()
                .with_allow_ddl(false)
                .with_allow_dml(false)
                .with_allow_statements(false);
            let started = Instant::now();
            let frame = ctx.sql_with_options(sql, options).await.map_err(failed)?;
            let schema: SchemaRef = Arc::new(frame.schema().as_arrow().clone());
            let task = Arc::new(frame.task_ctx());
            let plan = frame.create_physical_plan().await.map_err(failed)?;
            let planned = started.elapsed();
            let mut stream = execute_stream(plan, task).map_err(failed)?;
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
            Ok(Answer {
                schema,
                batches,
                versions,
            })
        };
        tokio::time::timeout(limits.timeout, run)
            .await
            .map_err(|_| QueryError::Timeout {
                seconds: limits.timeout.as_secs(),
            })?
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
                "view",
                view.description,
                frame.schema().as_arrow(),
            ));
        }
        Ok(tables)
    }
}
