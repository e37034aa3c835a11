//! A DISTINCT over partition columns of lake tables (`SELECT DISTINCT school_year FROM
//! attendances`, as `kpi_years` asks of three tables) answered from the tables' file
//! lists: each row of a file has that file's partition values. DataFusion otherwise
//! reads every row and hashes its value, which for `kpi_years` is millions of rows
//! on a large lake; DuckDB answers it from the files' metadata.

use std::sync::Arc;

use deltalake::arrow::array::RecordBatch;
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use deltalake::datafusion::common::{Result, ScalarValue};
use deltalake::datafusion::datasource::{
    MemTable, TableProvider as _, provider_as_source, source_as_provider,
};
use deltalake::datafusion::logical_expr::{Aggregate, LogicalPlan, TableScan, TableScanBuilder};
use deltalake::datafusion::optimizer::{ApplyOrder, OptimizerConfig, OptimizerRule};

use crate::lake_scan::LakeScan;

#[derive(Debug)]
pub(crate) struct DistinctPartitionValues;

impl OptimizerRule for DistinctPartitionValues {
    fn name(&self) -> &str {
        "distinct_partition_values"
    }

    fn apply_order(&self) -> Option<ApplyOrder> {
        Some(ApplyOrder::TopDown)
    }

    fn rewrite(
        &self,
        plan: LogicalPlan,
        _config: &dyn OptimizerConfig,
    ) -> Result<Transformed<LogicalPlan>> {
        let LogicalPlan::Aggregate(aggregate) = plan else {
            return Ok(Transformed::no(plan));
        };
        if !aggregate.aggr_expr.is_empty() {
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        // Above a grouping without aggregates only which rows occur matters, not how
        // often: a scan reached through plans that keep that (row by row, no volatile
        // function) may give each distinct row once.
        let input = Arc::unwrap_or_clone(Arc::clone(&aggregate.input)).transform_down(|node| {
            let keeps_distinct_rows = match &node {
                LogicalPlan::TableScan(scan) => {
                    return Ok(match distinct_rows_scan(scan)? {
                        Some(rows) => Transformed::new(rows, true, TreeNodeRecursion::Jump),
                        None => Transformed::new(node, false, TreeNodeRecursion::Jump),
                    });
                }
                LogicalPlan::Projection(projection) => {
                    !projection.expr.iter().any(|e| e.is_volatile())
                }
                LogicalPlan::Filter(filter) => !filter.predicate.is_volatile(),
                LogicalPlan::Aggregate(inner) => inner.aggr_expr.is_empty(),
                LogicalPlan::Union(_)
                | LogicalPlan::SubqueryAlias(_)
                | LogicalPlan::Distinct(_) => true,
                _ => false,
            };
            Ok(if keeps_distinct_rows {
                Transformed::no(node)
            } else {
                Transformed::new(node, false, TreeNodeRecursion::Jump)
            })
        })?;
        if !input.transformed {
            return Ok(Transformed::no(LogicalPlan::Aggregate(aggregate)));
        }
        Aggregate::try_new(Arc::new(input.data), aggregate.group_expr, vec![])
            .map(|rewritten| Transformed::yes(LogicalPlan::Aggregate(rewritten)))
    }
}

/// The scan's distinct rows from the file list, as a scan of the same name and
/// columns; `None` unless it is a lake table's scan of partition columns only.
fn distinct_rows_scan(scan: &TableScan) -> Result<Option<LogicalPlan>> {
    if !scan.filters.is_empty() || scan.fetch.is_some() {
        return Ok(None);
    }
    let provider = source_as_provider(&scan.source)?;
    let Some(lake) = provider.downcast_ref::<LakeScan>() else {
        return Ok(None);
    };
    let columns: Vec<usize> = match &scan.projection {
        Some(columns) => columns.clone(),
        None => (0..lake.schema().fields().len()).collect(),
    };
    let Some(rows) = lake.distinct_partition_values(&columns) else {
        return Ok(None);
    };
    let schema = Arc::new(scan.projected_schema.as_arrow().clone());
    let batch = if rows.is_empty() {
        RecordBatch::new_empty(Arc::clone(&schema))
    } else {
        let arrays = (0..columns.len())
            .map(|c| ScalarValue::iter_to_array(rows.iter().map(|row| row[c].clone())))
            .collect::<Result<Vec<_>>>()?;
        RecordBatch::try_new(Arc::clone(&schema), arrays)?
    };
    let table = MemTable::try_new(schema, vec![vec![batch]])?;
    TableScanBuilder::new(scan.table_name.clone(), provider_as_source(Arc::new(table)))
        .build()
        .map(|values| Some(LogicalPlan::TableScan(values)))
}
