//! Releasing answers: the answer's small groups left out, and the named views.

use std::collections::HashMap;
use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, RecordBatch, new_null_array};
use deltalake::arrow::compute::{cast, concat_batches, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::logical_expr::{Expr, LogicalPlan};

use super::differencing::PersonSketch;
use super::plan::{Node, Protected, persons_name, planning, project};
use super::{Suppressed, UserReleases, cell_key};
use crate::QueryError;

/// The answer as released. Its groups of fewer than `min_persons` persons, and those
/// whose persons differ by fewer than that from a group released to the same user
/// before, are left out, and with them the smallest others until the left-out rows
/// hold at least `min_persons` persons in two or more groups (so neither one of them
/// nor their sum tells of a few persons). The one row of a global aggregate is
/// blanked instead.
pub(crate) fn release(
    protected: &Protected,
    batches: Vec<RecordBatch>,
    min_persons: u64,
    released: &UserReleases,
    cell_key_noise: bool,
) -> Result<(Vec<RecordBatch>, Suppressed), QueryError> {
    let mut suppressed = Suppressed {
        min_persons,
        views: protected.views.clone(),
        ..Suppressed::default()
    };
    let Some(release) = &protected.release else {
        return Ok((batches, suppressed));
    };
    let failed = |e: deltalake::arrow::error::ArrowError| planning(e.into());
    let batch = match batches.first() {
        Some(first) => concat_batches(&first.schema(), &batches).map_err(failed)?,
        None => RecordBatch::new_empty(Arc::new(protected.plan.schema().as_arrow().clone())),
    };
    let rows = batch.num_rows();
    // Per row: its persons (the fewest of its person columns), their hashes and
    // sketches, per person column.
    let mut persons = vec![u64::MAX; rows];
    let mut members: Vec<Vec<Vec<u64>>> = vec![Vec::new(); rows];
    // The sum of the record keys of each row's persons (of its first person column).
    let mut record_keys = vec![0u64; rows];
    for (place, &index) in release.persons.iter().enumerate() {
        let sets = batch.column(index).as_list::<i32>();
        for row in 0..rows {
            let hashes: Vec<u64> = if sets.is_null(row) {
                Vec::new()
            } else {
                let values = cast(&sets.value(row), &DataType::Utf8).map_err(failed)?;
                let values = values.as_string::<i32>();
                let keys: Vec<_> = values
                    .iter()
                    .flatten()
                    .map(|p| released.keys.key(p))
                    .collect();
                if place == 0 {
                    record_keys[row] = keys.iter().map(|k| u64::from(k.record)).sum();
                }
                keys.iter().map(|k| k.hash).collect()
            };
            persons[row] = persons[row].min(hashes.len() as u64);
            members[row].push(hashes);
        }
    }
    let sketches: Vec<Vec<PersonSketch>> = members
        .iter()
        .map(|sets| {
            sets.iter()
                .map(|set| PersonSketch::of(set.iter().copied()))
                .collect()
        })
        .collect();
    let mut history = released.history();
    let mut out: Vec<bool> = persons.iter().map(|p| *p < min_persons).collect();
    for row in 0..rows {
        if out[row] {
            continue;
        }
        let earlier = (0..row).filter(|r| !out[*r]).flat_map(|r| &sketches[r]);
        let mut earlier = earlier.collect::<Vec<_>>().into_iter();
        let differenced = sketches[row].iter().any(|sketch| {
            history.differences(sketch, min_persons)
                || earlier.any(|other| sketch.differences(other, min_persons))
        });
        if differenced {
            out[row] = true;
            suppressed.differencing += 1;
        }
    }
    let mut visible = batch.project(&release.visible).map_err(failed)?;
    if cell_key_noise && !release.counts.is_empty() {
        suppressed.cell_key_noise = true;
        let mut columns = visible.columns().to_vec();
        for &position in &release.counts {
            let counts = cast(&columns[position], &DataType::Int64).map_err(failed)?;
            let noisy: deltalake::arrow::array::Int64Array = counts
                .as_primitive::<deltalake::arrow::datatypes::Int64Type>()
                .iter()
                .enumerate()
                .map(|(row, count)| count.map(|c| (c + cell_key::noise(record_keys[row])).max(0)))
                .collect();
            columns[position] = cast(
                &(Arc::new(noisy) as ArrayRef),
                columns[position].data_type(),
            )
            .map_err(failed)?;
        }
        visible = RecordBatch::try_new(visible.schema(), columns).map_err(failed)?;
    }
    let released_batch = if release.keyed {
        leave_out_enough(&persons, &mut out, min_persons);
        suppressed.rows = out.iter().filter(|o| **o).count();
        let keep: deltalake::arrow::array::BooleanArray = out.iter().map(|o| Some(!o)).collect();
        filter_record_batch(&visible, &keep).map_err(failed)?
    } else {
        suppressed.cells = out.iter().filter(|o| **o).count() * release.visible.len();
        let keep: Vec<bool> = out.iter().map(|o| !o).collect();
        let columns = visible
            .columns()
            .iter()
            .map(|column| blank(column, &keep))
            .collect::<Result<Vec<_>, _>>()
            .map_err(failed)?;
        RecordBatch::try_new(protected.schema.clone(), columns).map_err(failed)?
    };
    let mut remembered: Vec<PersonSketch> = sketches
        .into_iter()
        .enumerate()
        .filter(|(row, _)| !out[*row])
        .flat_map(|(_, sets)| sets)
        .collect();
    // The left-out rows together are released too: their persons are the answer's
    // population (which a count can ask) less the published rows.
    if release.keyed && out.iter().any(|o| *o) {
        let left_out: std::collections::HashSet<u64> = (0..rows)
            .filter(|r| out[*r])
            .flat_map(|r| members[r].first().into_iter().flatten().copied())
            .collect();
        remembered.push(PersonSketch::of(left_out));
    }
    history
        .remember(remembered)
        .map_err(|source| QueryError::Released {
            path: history.file().to_path_buf(),
            source,
        })?;
    let released_batch =
        RecordBatch::try_new(protected.schema.clone(), released_batch.columns().to_vec())
            .map_err(failed)?;
    Ok((vec![released_batch], suppressed))
}

/// Leaves out the smallest published rows too until the left-out ones are none, or
/// two or more holding at least `min_persons` persons and not one each.
fn leave_out_enough(persons: &[u64], out: &mut [bool], min_persons: u64) {
    loop {
        let left_out: Vec<u64> = (0..persons.len())
            .filter(|r| out[*r])
            .map(|r| persons[r])
            .collect();
        let total: u64 = left_out.iter().sum();
        let count = left_out.len() as u64;
        if count == 0 || (count >= 2 && total >= min_persons && total > count) {
            return;
        }
        let smallest = (0..persons.len())
            .filter(|r| !out[*r])
            .min_by_key(|r| (persons[*r], *r));
        match smallest {
            Some(row) => out[row] = true,
            None => return,
        }
    }
}

/// `column` with the values where `keep` is false made null.
fn blank(
    column: &ArrayRef,
    keep: &[bool],
) -> Result<ArrayRef, deltalake::arrow::error::ArrowError> {
    if keep.iter().all(|k| *k) {
        return Ok(column.clone());
    }
    let mask: deltalake::arrow::array::BooleanArray = keep.iter().map(|k| Some(*k)).collect();
    let nulls = new_null_array(column.data_type(), column.len());
    deltalake::arrow::compute::kernels::zip::zip(&mask, column, &nulls)
}

/// The released rows of a view: the values of rows whose persons fall below `k`
/// blanked, and more where a total of their partition would give them away.
fn release_view(
    batch: &RecordBatch,
    persons: &ArrayRef,
    values: &[usize],
    within: &[usize],
    min_persons: u64,
) -> Result<(RecordBatch, usize), QueryError> {
    let failed = |e: deltalake::arrow::error::ArrowError| planning(e.into());
    let persons = cast(persons, &DataType::Float64).map_err(failed)?;
    let persons = persons.as_primitive::<deltalake::arrow::datatypes::Float64Type>();
    let converter = deltalake::arrow::row::RowConverter::new(
        within
            .iter()
            .map(|&i| deltalake::arrow::row::SortField::new(batch.column(i).data_type().clone()))
            .collect(),
    )
    .map_err(failed)?;
    let keys = converter
        .convert_columns(
            &within
                .iter()
                .map(|&i| batch.column(i).clone())
                .collect::<Vec<_>>(),
        )
        .map_err(failed)?;
    let mut partitions: HashMap<Vec<u8>, Vec<usize>> = HashMap::new();
    for row in 0..batch.num_rows() {
        partitions
            .entry(keys.row(row).as_ref().to_vec())
            .or_default()
            .push(row);
    }
    let mut keep = vec![true; batch.num_rows()];
    for rows in partitions.values() {
        let grid: Vec<Vec<Option<i64>>> = rows
            .iter()
            .map(|&r| vec![(!persons.is_null(r)).then(|| persons.value(r).round() as i64)])
            .collect();
        for (r, _) in super::cells::suppress(&grid, min_persons as i64).suppressed {
            keep[rows[r]] = false;
        }
    }
    let blanked = keep.iter().filter(|k| !**k).count();
    let mut columns = batch.columns().to_vec();
    for &index in values {
        columns[index] = blank(&columns[index], &keep).map_err(failed)?;
    }
    let batch = RecordBatch::try_new(batch.schema(), columns).map_err(failed)?;
    Ok((batch, blanked))
}

/// A named view as researchers read it: computed whole, released by its
/// [`Release`](crate::views::Release), and kept for as long as the table versions
/// it was computed from.
#[derive(Debug)]
pub(crate) struct ReleasedView {
    /// The view's plan, with its persons as the last column when it has a rule.
    plan: LogicalPlan,
    /// Its `CREATE VIEW` statement, for `information_schema.views`.
    definition: Option<String>,
    schema: SchemaRef,
    rule: Option<(Vec<usize>, Vec<usize>)>,
    min_persons: u64,
    rows: Arc<tokio::sync::OnceCell<Vec<RecordBatch>>>,
}

impl ReleasedView {
    pub(crate) fn new(
        ctx: &deltalake::datafusion::prelude::SessionContext,
        view: &crate::views::View,
        defined: &deltalake::datafusion::catalog::view::ViewTable,
        min_persons: u64,
        rows: Arc<tokio::sync::OnceCell<Vec<RecordBatch>>>,
    ) -> Result<Self, QueryError> {
        let failed = |e| QueryError::engine(view.name, e);
        let plan = defined.logical_plan().clone();
        let definition = defined.definition().cloned();
        let schema: SchemaRef = Arc::new(plan.schema().as_arrow().clone());
        let (plan, rule) = match &view.release {
            crate::views::Release::Open => (plan, None),
            crate::views::Release::Persons {
                persons,
                values,
                within,
            } => {
                let index = |name: &&str| schema.index_of(name).map_err(|e| failed(e.into()));
                let values = values.iter().map(index).collect::<Result<Vec<_>, _>>()?;
                let within = within.iter().map(index).collect::<Result<Vec<_>, _>>()?;
                let persons = ctx.parse_sql_expr(persons, plan.schema()).map_err(failed)?;
                let node = Node::open(plan.clone());
                let mut exprs: Vec<Expr> =
                    (0..schema.fields().len()).map(|i| node.column(i)).collect();
                exprs.push(persons.alias(persons_name(0)));
                (project(plan, exprs)?, Some((values, within)))
            }
        };
        Ok(Self {
            plan,
            definition,
            schema,
            rule,
            min_persons,
            rows,
        })
    }

    async fn compute(
        &self,
        state: &dyn deltalake::datafusion::catalog::Session,
    ) -> deltalake::datafusion::error::Result<Vec<RecordBatch>> {
        let plan = state.create_physical_plan(&self.plan).await?;
        let batches = deltalake::datafusion::physical_plan::collect(plan, state.task_ctx()).await?;
        let Some((values, within)) = &self.rule else {
            return Ok(batches);
        };
        let batch = concat_batches(&self.plan.schema().as_arrow().clone().into(), &batches)?;
        let persons = batch.column(batch.num_columns() - 1).clone();
        let visible: Vec<usize> = (0..self.schema.fields().len()).collect();
        let batch = batch.project(&visible)?;
        let (batch, _) = release_view(&batch, &persons, values, within, self.min_persons)
            .map_err(|e| deltalake::datafusion::error::DataFusionError::External(Box::new(e)))?;
        Ok(vec![batch])
    }
}

#[async_trait::async_trait]
impl deltalake::datafusion::catalog::TableProvider for ReleasedView {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> deltalake::datafusion::datasource::TableType {
        deltalake::datafusion::datasource::TableType::View
    }

    fn get_table_definition(&self) -> Option<&str> {
        self.definition.as_deref()
    }

    async fn scan(
        &self,
        state: &dyn deltalake::datafusion::catalog::Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> deltalake::datafusion::error::Result<
        Arc<dyn deltalake::datafusion::physical_plan::ExecutionPlan>,
    > {
        let batches = self.rows.get_or_try_init(|| self.compute(state)).await?;
        let exec = deltalake::datafusion::datasource::memory::MemorySourceConfig::try_new_exec(
            std::slice::from_ref(batches),
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}

/// A session's tables as researchers see them: the named views released, every other
/// table as it is. An overlay, so the session kept for other users is not changed.
#[derive(Debug)]
pub(crate) struct ReleasedSchema {
    pub inner: Arc<dyn deltalake::datafusion::catalog::SchemaProvider>,
    pub views: HashMap<String, Arc<dyn deltalake::datafusion::catalog::TableProvider>>,
}

#[async_trait::async_trait]
impl deltalake::datafusion::catalog::SchemaProvider for ReleasedSchema {
    fn table_names(&self) -> Vec<String> {
        self.inner.table_names()
    }

    async fn table(
        &self,
        name: &str,
    ) -> deltalake::datafusion::error::Result<
        Option<Arc<dyn deltalake::datafusion::catalog::TableProvider>>,
    > {
        match self.views.get(name) {
            Some(view) => Ok(Some(Arc::clone(view))),
            None => self.inner.table(name).await,
        }
    }

    fn table_exist(&self, name: &str) -> bool {
        self.inner.table_exist(name)
    }
}
