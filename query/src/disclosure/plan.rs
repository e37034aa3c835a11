//! The plan rewrite of output control: hidden person columns through every node, the
//! persons of each group counted, and what may single a person out refused.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, SchemaRef};
use deltalake::datafusion::common::tree_node::{Transformed, TreeNode, TreeNodeRecursion};
use deltalake::datafusion::common::{Column, ScalarValue};
use deltalake::datafusion::functions_aggregate::array_agg::array_agg_udaf;
use deltalake::datafusion::functions_aggregate::expr_fn::count_distinct;
use deltalake::datafusion::logical_expr::expr::{AggregateFunction, InSubquery};
use deltalake::datafusion::logical_expr::{
    Aggregate, Distinct, Expr, Filter, JoinType, LogicalPlan, LogicalPlanBuilder, Projection,
    Subquery, SubqueryAlias, Union, Window, col, lit, when,
};

use crate::QueryError;

/// The person-level tables and the column holding the person.
fn person_column(table: &str) -> Option<&'static str> {
    techmon_lake::tables::find(table)
        .and_then(|t| t.person_column())
        .map(|(_, name)| name)
}

/// What a column of a plan node holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    /// A value as stored, or an aggregate.
    Plain,
    /// A value the query made from person-level rows (not allowed as an aggregate's
    /// argument over several persons).
    Derived,
    /// A copy of the person column of hidden person `n`.
    Person(usize),
    /// Hidden person `n`.
    Aid(usize),
    /// The distinct persons of hidden person `n` in a group: inside the query their
    /// number, in the answer's own aggregation the persons themselves.
    Persons(usize),
    /// A count of the answer's own aggregation (noise may be added to it).
    Count,
}

/// A rewritten plan and what each of its output columns holds.
pub(super) struct Node {
    plan: LogicalPlan,
    kinds: Vec<Kind>,
    /// The answer's aggregation has group values (a global aggregate has one row).
    keyed: bool,
}

impl Node {
    pub(super) fn open(plan: LogicalPlan) -> Self {
        let kinds = vec![Kind::Plain; plan.schema().fields().len()];
        Self {
            plan,
            kinds,
            keyed: false,
        }
    }

    fn person_level(&self) -> bool {
        self.kinds.iter().any(|k| matches!(k, Kind::Aid(_)))
    }

    pub(super) fn column(&self, index: usize) -> Expr {
        Expr::Column(Column::from(self.plan.schema().qualified_field(index)))
    }

    fn kind_of(&self, column: &Column) -> Kind {
        self.plan
            .schema()
            .maybe_index_of_column(column)
            .map_or(Kind::Plain, |i| self.kinds[i])
    }

    /// The hidden columns (persons and their counts), as (index, kind).
    fn hidden(&self) -> Vec<(usize, Kind)> {
        self.kinds
            .iter()
            .enumerate()
            .filter(|(_, k)| matches!(k, Kind::Aid(_) | Kind::Persons(_)))
            .map(|(i, k)| (i, *k))
            .collect()
    }
}

fn aid_name(id: usize) -> String {
    format!("__techmon_person_{id}")
}

pub(super) fn persons_name(id: usize) -> String {
    format!("__techmon_persons_{id}")
}

fn refused(reason: impl Into<String>) -> QueryError {
    QueryError::Disclosure {
        reason: reason.into(),
    }
}

pub(super) fn planning(e: deltalake::datafusion::error::DataFusionError) -> QueryError {
    QueryError::from_query(e, 0)
}

/// `plan` with the columns `exprs`.
pub(super) fn project(plan: LogicalPlan, exprs: Vec<Expr>) -> Result<LogicalPlan, QueryError> {
    LogicalPlanBuilder::from(plan)
        .project(exprs)
        .and_then(LogicalPlanBuilder::build)
        .map_err(planning)
}

/// A plan made safe to answer a researcher: its answer goes through
/// [`super::release`].
pub(crate) struct Protected {
    pub plan: LogicalPlan,
    /// The answer's columns as the researcher sees them (without hidden ones).
    pub schema: SchemaRef,
    pub(super) release: Option<Release>,
    pub(super) views: Vec<String>,
}

/// How the answer's aggregation is released.
pub(super) struct Release {
    pub(super) visible: Vec<usize>,
    pub(super) persons: Vec<usize>,
    /// The counts, by their place among the visible columns.
    pub(super) counts: Vec<usize>,
    pub(super) keyed: bool,
}

/// Rewrites `plan` for an answer of aggregates over at least `min_persons` persons;
/// `released_views` are the view names read as released tables.
pub(crate) fn protect(
    plan: LogicalPlan,
    min_persons: u64,
    released_views: &[&str],
) -> Result<Protected, QueryError> {
    if matches!(plan, LogicalPlan::Analyze(_)) {
        return Err(refused(
            "EXPLAIN ANALYZE shows how many rows each step found; it is for row-level access",
        ));
    }
    let mut views = Vec::new();
    let _ = plan.apply_with_subqueries(|node| {
        if let LogicalPlan::TableScan(scan) = node
            && released_views.contains(&scan.table_name.table())
            && !views.iter().any(|v| v == scan.table_name.table())
        {
            views.push(scan.table_name.table().to_string());
        }
        Ok(TreeNodeRecursion::Continue)
    });
    views.sort();
    if matches!(
        plan,
        LogicalPlan::Explain(_) | LogicalPlan::DescribeTable(_)
    ) {
        let schema = Arc::new(plan.schema().as_arrow().clone());
        return Ok(Protected {
            plan,
            schema,
            release: None,
            views,
        });
    }
    let mut rewriter = Rewriter {
        min_persons: min_persons as i64,
        next: 0,
    };
    let node = rewriter.rewrite(plan, true)?;
    if node.person_level() {
        return Err(refused(format!(
            "the answer would hold rows about single persons; aggregate them (GROUP BY … with count(*)): groups of fewer than {min_persons} persons are suppressed"
        )));
    }
    let visible: Vec<usize> = (0..node.kinds.len())
        .filter(|&i| !matches!(node.kinds[i], Kind::Persons(_)))
        .collect();
    let persons: Vec<usize> = (0..node.kinds.len())
        .filter(|&i| matches!(node.kinds[i], Kind::Persons(_)))
        .collect();
    let arrow = node
        .plan
        .schema()
        .as_arrow()
        .project(&visible)
        .map_err(|e| planning(e.into()))?;
    // Any value of a suppressed group may be blank.
    let fields: Vec<_> = arrow
        .fields()
        .iter()
        .map(|f| f.as_ref().clone().with_nullable(true))
        .collect();
    let schema = Arc::new(deltalake::arrow::datatypes::Schema::new(fields));
    let release = (!persons.is_empty()).then(|| Release {
        counts: (0..visible.len())
            .filter(|&position| node.kinds[visible[position]] == Kind::Count)
            .collect(),
        visible,
        persons,
        keyed: node.keyed,
    });
    Ok(Protected {
        plan: node.plan,
        schema,
        release,
        views,
    })
}

/// Aggregates that combine several persons' values into one that is none of them.
const COMBINING_AGGREGATES: &[&str] = &[
    "count",
    "sum",
    "avg",
    "mean",
    "stddev",
    "stddev_pop",
    "stddev_samp",
    "var",
    "var_pop",
    "var_samp",
    "var_population",
    "var_sample",
    "covar",
    "covar_pop",
    "covar_samp",
    "corr",
    "bool_and",
    "bool_or",
    "approx_distinct",
];

/// Window functions over person rows that do not copy another row's value.
const COMBINING_WINDOW_FUNCTIONS: &[&str] = &[
    "row_number",
    "rank",
    "dense_rank",
    "percent_rank",
    "cume_dist",
    "ntile",
    "count",
    "sum",
    "avg",
];

struct Rewriter {
    min_persons: i64,
    next: usize,
}

impl Rewriter {
    fn next_id(&mut self) -> usize {
        self.next += 1;
        self.next
    }

    /// `plan` with hidden person columns; `top`: its rows are the answer's (through
    /// projections, filters, sorts and limits only).
    fn rewrite(&mut self, plan: LogicalPlan, top: bool) -> Result<Node, QueryError> {
        match plan {
            LogicalPlan::TableScan(ref scan) => {
                let Some(person) = person_column(scan.table_name.table()) else {
                    return Ok(Node::open(plan));
                };
                let schema = plan.schema().clone();
                let find = |name: &str| {
                    schema
                        .index_of_column_by_name(Some(&scan.table_name), name)
                        .ok_or_else(|| {
                            refused(format!("the scan of {} lacks {name}", scan.table_name))
                        })
                };
                let person_index = find(person)?;
                let event_index = find("event_id")?;
                let id = self.next_id();
                let node = Node::open(plan.clone());
                let mut exprs: Vec<Expr> =
                    (0..schema.fields().len()).map(|i| node.column(i)).collect();
                let aid = when(
                    node.column(person_index).is_null(),
                    node.column(event_index),
                )
                .otherwise(node.column(person_index))
                .map_err(planning)?;
                exprs.push(aid.alias(aid_name(id)));
                let mut kinds = vec![Kind::Plain; schema.fields().len()];
                kinds[person_index] = Kind::Person(id);
                kinds.push(Kind::Aid(id));
                let plan = project(plan, exprs)?;
                Ok(Node {
                    plan,
                    kinds,
                    keyed: false,
                })
            }
            LogicalPlan::Projection(projection) => {
                let input = self.rewrite(Arc::unwrap_or_clone(projection.input), top)?;
                let mut exprs = Vec::new();
                let mut kinds = Vec::new();
                for expr in projection.expr {
                    check_person_use(&input, &expr, PersonUse::PassOn)?;
                    let expr = self.subqueries(expr, &input)?;
                    kinds.push(expr_kind(&input, &expr));
                    exprs.push(expr);
                }
                for (index, kind) in input.hidden() {
                    exprs.push(input.column(index));
                    kinds.push(kind);
                }
                let keyed = input.keyed;
                let plan = Projection::try_new(exprs, Arc::new(input.plan))
                    .map(LogicalPlan::Projection)
                    .map_err(planning)?;
                Ok(Node { plan, kinds, keyed })
            }
            LogicalPlan::Filter(filter) => {
                let input = self.rewrite(Arc::unwrap_or_clone(filter.input), top)?;
                check_person_use(&input, &filter.predicate, PersonUse::Condition)?;
                let predicate = self.subqueries(filter.predicate, &input)?;
                let plan = Filter::try_new(predicate, Arc::new(input.plan))
                    .map(LogicalPlan::Filter)
                    .map_err(planning)?;
                Ok(Node {
                    plan,
                    kinds: input.kinds,
                    keyed: input.keyed,
                })
            }
            LogicalPlan::Sort(_) | LogicalPlan::Limit(_) | LogicalPlan::Repartition(_) => {
                let child = plan.inputs()[0].clone();
                let input = self.rewrite(child, top)?;
                let rebuilt = plan
                    .with_new_exprs(plan.expressions(), vec![input.plan])
                    .map_err(planning)?;
                Ok(Node {
                    plan: rebuilt,
                    kinds: input.kinds,
                    keyed: input.keyed,
                })
            }
            LogicalPlan::SubqueryAlias(alias) => {
                let input = self.rewrite(Arc::unwrap_or_clone(alias.input), top)?;
                let plan = SubqueryAlias::try_new(Arc::new(input.plan), alias.alias)
                    .map(LogicalPlan::SubqueryAlias)
                    .map_err(planning)?;
                Ok(Node {
                    plan,
                    kinds: input.kinds,
                    keyed: input.keyed,
                })
            }
            LogicalPlan::Join(ref join) => {
                let left = self.rewrite(join.left.as_ref().clone(), false)?;
                let right = self.rewrite(join.right.as_ref().clone(), false)?;
                let both = |expr: &Expr| {
                    let mut kinds = Vec::new();
                    for side in [&left, &right] {
                        kinds.push(expr_kind(side, expr));
                    }
                    kinds
                };
                for (l, r) in &join.on {
                    let person = |e: &Expr| both(e).iter().any(|k| matches!(k, Kind::Person(_)));
                    if person(l) != person(r) {
                        return Err(refused("a pseudonym may be joined only to a pseudonym"));
                    }
                    if !person(l) {
                        check_person_use(&left, l, PersonUse::Condition)?;
                        check_person_use(&right, r, PersonUse::Condition)?;
                    }
                }
                if let Some(filter) = &join.filter {
                    check_person_use(&left, filter, PersonUse::Condition)?;
                    check_person_use(&right, filter, PersonUse::Condition)?;
                }
                let kinds = match join.join_type {
                    JoinType::Inner | JoinType::Left | JoinType::Right | JoinType::Full => {
                        [left.kinds.clone(), right.kinds.clone()].concat()
                    }
                    JoinType::LeftSemi | JoinType::LeftAnti if !right.person_level() => {
                        left.kinds.clone()
                    }
                    JoinType::RightSemi | JoinType::RightAnti if !left.person_level() => {
                        right.kinds.clone()
                    }
                    _ if !left.person_level() && !right.person_level() => {
                        let rebuilt = plan
                            .with_new_exprs(plan.expressions(), vec![left.plan, right.plan])
                            .map_err(planning)?;
                        return Ok(Node::open(rebuilt));
                    }
                    other => {
                        return Err(refused(format!(
                            "a {other} join keeps one side's rows by person-level rows of the other; use an inner join"
                        )));
                    }
                };
                let rebuilt = plan
                    .with_new_exprs(plan.expressions(), vec![left.plan, right.plan])
                    .map_err(planning)?;
                if rebuilt.schema().fields().len() != kinds.len() {
                    return Err(refused("a join whose columns cannot be followed"));
                }
                Ok(Node {
                    plan: rebuilt,
                    kinds,
                    keyed: false,
                })
            }
            LogicalPlan::Aggregate(aggregate) => {
                let input = self.rewrite(Arc::unwrap_or_clone(aggregate.input), false)?;
                self.aggregate(input, aggregate.group_expr, aggregate.aggr_expr, top)
            }
            LogicalPlan::Distinct(Distinct::All(input)) => {
                let input = self.rewrite(Arc::unwrap_or_clone(input), false)?;
                if !input.person_level() {
                    let plan = LogicalPlan::Distinct(Distinct::All(Arc::new(input.plan)));
                    return Ok(Node::open(plan));
                }
                let groups = (0..input.kinds.len())
                    .filter(|&i| !matches!(input.kinds[i], Kind::Aid(_) | Kind::Persons(_)))
                    .map(|i| input.column(i))
                    .collect();
                self.aggregate(input, groups, Vec::new(), top)
            }
            LogicalPlan::Window(window) => {
                let input = self.rewrite(Arc::unwrap_or_clone(window.input), false)?;
                let person_level = input.person_level();
                if person_level {
                    for expr in &window.window_expr {
                        check_window(&input, expr)?;
                    }
                }
                let count = window.window_expr.len();
                let mut kinds = input.kinds.clone();
                kinds.extend(std::iter::repeat_n(
                    if person_level {
                        Kind::Derived
                    } else {
                        Kind::Plain
                    },
                    count,
                ));
                let plan = Window::try_new(window.window_expr, Arc::new(input.plan))
                    .map(LogicalPlan::Window)
                    .map_err(planning)?;
                Ok(Node {
                    plan,
                    kinds,
                    keyed: false,
                })
            }
            LogicalPlan::Union(union) => self.union(union),
            LogicalPlan::Subquery(subquery) => {
                let input = self.rewrite(Arc::unwrap_or_clone(subquery.subquery.clone()), top)?;
                let plan = LogicalPlan::Subquery(Subquery {
                    subquery: Arc::new(input.plan),
                    ..subquery
                });
                Ok(Node {
                    plan,
                    kinds: input.kinds,
                    keyed: input.keyed,
                })
            }
            LogicalPlan::EmptyRelation(_)
            | LogicalPlan::Values(_)
            | LogicalPlan::DescribeTable(_)
            | LogicalPlan::Explain(_) => Ok(Node::open(plan)),
            other => {
                // Anything else (unnest, recursive queries, distinct on) is answered
                // only when it reads no person-level table.
                let mut person_level = false;
                let _ = other.apply_with_subqueries(|node| {
                    if let LogicalPlan::TableScan(scan) = node {
                        person_level |= person_column(scan.table_name.table()).is_some();
                    }
                    Ok(TreeNodeRecursion::Continue)
                });
                if person_level {
                    return Err(refused(format!(
                        "{} over person-level tables is not answered with output control",
                        other.display()
                    )));
                }
                Ok(Node::open(other))
            }
        }
    }

    /// An aggregation of `input` by `groups`.
    fn aggregate(
        &mut self,
        input: Node,
        groups: Vec<Expr>,
        aggregates: Vec<Expr>,
        top: bool,
    ) -> Result<Node, QueryError> {
        if !input.person_level() {
            let plan = Aggregate::try_new(Arc::new(input.plan), groups, aggregates)
                .map(LogicalPlan::Aggregate)
                .map_err(planning)?;
            return Ok(Node::open(plan));
        }
        if groups.iter().any(|g| matches!(g, Expr::GroupingSet(_))) {
            return Err(refused(
                "GROUPING SETS, ROLLUP and CUBE over person-level rows are not answered yet; ask for each grouping apart",
            ));
        }
        // Persons kept whole by the grouping (grouped by their pseudonym) stay hidden
        // columns; the others are counted.
        let mut kept = Vec::new();
        for group in &groups {
            check_person_use(&input, group, PersonUse::PassOn)?;
            if let Kind::Person(id) = expr_kind(&input, group)
                && !kept.contains(&id)
            {
                kept.push(id);
            }
        }
        let hidden = input.hidden();
        let collapsed: Vec<(usize, usize)> = hidden
            .iter()
            .filter_map(|&(i, k)| match k {
                Kind::Aid(id) if !kept.contains(&id) => Some((i, id)),
                _ => None,
            })
            .collect();
        if !collapsed.is_empty() {
            for aggregate in &aggregates {
                check_aggregate(&input, aggregate)?;
            }
        }
        let mut kinds: Vec<Kind> = groups
            .iter()
            .map(|g| match expr_kind(&input, g) {
                Kind::Person(id) => Kind::Person(id),
                Kind::Derived => Kind::Derived,
                _ => Kind::Plain,
            })
            .collect();
        let mut all_groups = groups.clone();
        for &(i, kind) in &hidden {
            if let Kind::Aid(id) = kind
                && kept.contains(&id)
            {
                all_groups.push(input.column(i));
                kinds.push(Kind::Aid(id));
            }
        }
        kinds.extend(aggregates.iter().map(|aggregate| {
            let counts = matches!(unaliased(aggregate), Expr::AggregateFunction(f) if f.func.name() == "count");
            if top && counts { Kind::Count } else { Kind::Plain }
        }));
        let mut all_aggregates = aggregates;
        for &(i, id) in &collapsed {
            // The answer's own groups keep their persons, for the differencing check.
            let persons = if top {
                Expr::AggregateFunction(AggregateFunction::new_udf(
                    array_agg_udaf(),
                    vec![input.column(i)],
                    true,
                    None,
                    Vec::new(),
                    None,
                ))
            } else {
                count_distinct(input.column(i))
            };
            all_aggregates.push(persons.alias(persons_name(id)));
            kinds.push(Kind::Persons(id));
        }
        let keyed = !groups.is_empty();
        let plan = Aggregate::try_new(Arc::new(input.plan), all_groups, all_aggregates)
            .map(LogicalPlan::Aggregate)
            .map_err(planning)?;
        let node = Node { plan, kinds, keyed };
        if top || collapsed.is_empty() {
            return Ok(node);
        }
        // Inside the query: groups below the threshold are left out, and their counts
        // are dropped.
        let condition = collapsed
            .iter()
            .map(|&(_, id)| {
                col(Column::new_unqualified(persons_name(id))).gt_eq(lit(self.min_persons))
            })
            .reduce(Expr::and)
            .unwrap_or(lit(true));
        let visible: Vec<usize> = (0..node.kinds.len())
            .filter(|&i| !matches!(node.kinds[i], Kind::Persons(_)))
            .collect();
        let kinds = visible.iter().map(|&i| node.kinds[i]).collect();
        let exprs: Vec<Expr> = visible.iter().map(|&i| node.column(i)).collect();
        let plan = LogicalPlanBuilder::from(node.plan)
            .filter(condition)
            .and_then(|b| b.project(exprs))
            .and_then(LogicalPlanBuilder::build)
            .map_err(planning)?;
        Ok(Node {
            plan,
            kinds,
            keyed: false,
        })
    }

    /// A union, its inputs' hidden persons lined up as columns of their own.
    fn union(&mut self, union: Union) -> Result<Node, QueryError> {
        let inputs = union
            .inputs
            .into_iter()
            .map(|input| self.rewrite(Arc::unwrap_or_clone(input), false))
            .collect::<Result<Vec<_>, _>>()?;
        if !inputs.iter().any(Node::person_level) {
            let plan = Union::try_new(inputs.into_iter().map(|n| Arc::new(n.plan)).collect())
                .map(LogicalPlan::Union)
                .map_err(planning)?;
            return Ok(Node::open(plan));
        }
        let width = inputs.iter().map(|n| n.hidden().len()).max().unwrap_or(0);
        let ids: Vec<usize> = (0..width).map(|_| self.next_id()).collect();
        let visible_count = inputs[0].kinds.len() - inputs[0].hidden().len();
        let mut kinds = vec![Kind::Plain; visible_count];
        let mut plans = Vec::new();
        for input in inputs {
            let visible: Vec<usize> = (0..input.kinds.len())
                .filter(|&i| !matches!(input.kinds[i], Kind::Aid(_) | Kind::Persons(_)))
                .collect();
            for (position, &i) in visible.iter().enumerate() {
                if input.kinds[i] != Kind::Plain && position < kinds.len() {
                    kinds[position] = Kind::Derived;
                }
            }
            let hidden = input.hidden();
            let mut exprs: Vec<Expr> = visible.iter().map(|&i| input.column(i)).collect();
            for (j, id) in ids.iter().enumerate() {
                let value = match hidden.get(j) {
                    Some(&(i, _)) => input.column(i),
                    None => lit(ScalarValue::Utf8(None)),
                };
                exprs.push(
                    Expr::Cast(deltalake::datafusion::logical_expr::Cast::new(
                        Box::new(value),
                        DataType::Utf8,
                    ))
                    .alias(aid_name(*id)),
                );
            }
            let plan = project(input.plan, exprs)?;
            plans.push(Arc::new(plan));
        }
        kinds.extend(ids.iter().map(|id| Kind::Aid(*id)));
        let plan = Union::try_new(plans)
            .map(LogicalPlan::Union)
            .map_err(planning)?;
        Ok(Node {
            plan,
            kinds,
            keyed: false,
        })
    }

    /// `expr` with its subqueries rewritten: one that reads person-level rows is
    /// allowed only as `pseudonym IN (SELECT pseudonym …)`.
    fn subqueries(&mut self, expr: Expr, outer: &Node) -> Result<Expr, QueryError> {
        let mut failure = None;
        let rewritten = expr
            .transform_up(|e| {
                let outcome = match e {
                    Expr::ScalarSubquery(subquery) => self
                        .open_subquery(subquery)
                        .map(|s| Transformed::yes(Expr::ScalarSubquery(s))),
                    Expr::Exists(mut exists) => {
                        self.open_subquery(exists.subquery.clone()).map(|s| {
                            exists.subquery = s;
                            Transformed::yes(Expr::Exists(exists))
                        })
                    }
                    Expr::InSubquery(in_subquery) => self
                        .in_subquery(in_subquery, outer)
                        .map(|s| Transformed::yes(Expr::InSubquery(s))),
                    Expr::SetComparison(_) => Err(refused(
                        "ANY and ALL over subqueries are not answered with output control",
                    )),
                    other => Ok(Transformed::no(other)),
                };
                match outcome {
                    Ok(done) => Ok(done),
                    Err(error) => {
                        failure = Some(error);
                        Ok(Transformed::new(lit(true), false, TreeNodeRecursion::Stop))
                    }
                }
            })
            .map_err(planning)?;
        match failure {
            Some(error) => Err(error),
            None => Ok(rewritten.data),
        }
    }

    fn open_subquery(&mut self, subquery: Subquery) -> Result<Subquery, QueryError> {
        let node = self.rewrite(Arc::unwrap_or_clone(subquery.subquery.clone()), false)?;
        if node.person_level() {
            return Err(refused(
                "a subquery condition may not read rows about single persons; aggregate them, or join",
            ));
        }
        Ok(Subquery {
            subquery: Arc::new(node.plan),
            ..subquery
        })
    }

    fn in_subquery(
        &mut self,
        mut in_subquery: InSubquery,
        outer: &Node,
    ) -> Result<InSubquery, QueryError> {
        let subquery = in_subquery.subquery.clone();
        let node = self.rewrite(Arc::unwrap_or_clone(subquery.subquery.clone()), false)?;
        if !node.person_level() {
            in_subquery.subquery = Subquery {
                subquery: Arc::new(node.plan),
                ..subquery
            };
            return Ok(in_subquery);
        }
        let same_person = matches!(expr_kind(outer, &in_subquery.expr), Kind::Person(_))
            && matches!(node.kinds.first(), Some(Kind::Person(_)));
        if !same_person {
            return Err(refused(
                "a subquery condition may read rows about single persons only as pseudonym IN (SELECT pseudonym …)",
            ));
        }
        let first = node.column(0);
        let plan = project(node.plan, vec![first])?;
        in_subquery.subquery = Subquery {
            subquery: Arc::new(plan),
            ..subquery
        };
        Ok(in_subquery)
    }
}

/// What a projected or grouped expression holds.
fn expr_kind(node: &Node, expr: &Expr) -> Kind {
    match expr {
        Expr::Column(column) => match node.kind_of(column) {
            Kind::Aid(_) | Kind::Persons(_) => Kind::Derived,
            kind => kind,
        },
        Expr::Alias(alias) => expr_kind(node, &alias.expr),
        _ => {
            let mut reads_person_rows = false;
            let _ = expr.apply(|e| {
                if let Expr::Column(column) = e
                    && !matches!(node.kind_of(column), Kind::Plain | Kind::Count)
                {
                    reads_person_rows = true;
                }
                Ok(TreeNodeRecursion::Continue)
            });
            if reads_person_rows || (node.person_level() && references_columns(expr)) {
                Kind::Derived
            } else {
                Kind::Plain
            }
        }
    }
}

fn references_columns(expr: &Expr) -> bool {
    let mut found = false;
    let _ = expr.apply(|e| {
        found |= matches!(e, Expr::Column(_));
        Ok(TreeNodeRecursion::Continue)
    });
    found
}

/// Where a pseudonym appears.
#[derive(Clone, Copy, PartialEq, Eq)]
enum PersonUse {
    /// Projected or grouped: the column itself may pass on.
    PassOn,
    /// A condition: only `pseudonym IN (SELECT pseudonym …)`.
    Condition,
}

/// Refuses a pseudonym used other than passed on, joined on, grouped by or counted.
fn check_person_use(node: &Node, expr: &Expr, usage: PersonUse) -> Result<(), QueryError> {
    let bare = match expr {
        Expr::Column(_) => true,
        Expr::Alias(alias) => matches!(alias.expr.as_ref(), Expr::Column(_)),
        _ => false,
    };
    if usage == PersonUse::PassOn && bare {
        return Ok(());
    }
    let mut misuse = false;
    let _ = expr.apply(|e| {
        match e {
            // Checked by the subquery rule.
            Expr::InSubquery(in_subquery)
                if matches!(in_subquery.expr.as_ref(), Expr::Column(_)) =>
            {
                return Ok(TreeNodeRecursion::Jump);
            }
            Expr::AggregateFunction(AggregateFunction { params, .. })
                if params.distinct && params.args.len() == 1 =>
            {
                return Ok(TreeNodeRecursion::Jump);
            }
            Expr::Column(column) if matches!(node.kind_of(column), Kind::Person(_)) => {
                misuse = true;
            }
            _ => {}
        }
        Ok(TreeNodeRecursion::Continue)
    });
    if misuse {
        return Err(refused(
            "a pseudonym may be passed on, joined to a pseudonym, grouped by and counted (count(DISTINCT …)), not compared, filtered on or computed with",
        ));
    }
    Ok(())
}

fn unaliased(expr: &Expr) -> &Expr {
    match expr {
        Expr::Alias(alias) => unaliased(&alias.expr),
        other => other,
    }
}

/// An aggregate over several persons: a combining function of plain columns.
fn check_aggregate(node: &Node, expr: &Expr) -> Result<(), QueryError> {
    let inner = unaliased(expr);
    let Expr::AggregateFunction(AggregateFunction { func, params }) = inner else {
        return Err(refused(format!(
            "{expr} over rows of several persons: only aggregate functions"
        )));
    };
    let name = func.name().to_ascii_lowercase();
    if !COMBINING_AGGREGATES.contains(&name.as_str()) {
        return Err(refused(format!(
            "{name} over rows of several persons can give one person's value; use count, sum, avg or stddev"
        )));
    }
    if params.filter.is_some() {
        return Err(refused(
            "FILTER on an aggregate over persons can single one out; group by the condition instead",
        ));
    }
    for argument in &params.args {
        let plain = match argument {
            Expr::Literal(..) => true,
            Expr::Column(column) => matches!(node.kind_of(column), Kind::Plain | Kind::Person(_)),
            Expr::Cast(cast) => {
                matches!(cast.expr.as_ref(), Expr::Column(c) if node.kind_of(c) == Kind::Plain)
            }
            _ => false,
        };
        if !plain {
            return Err(refused(format!(
                "{name}({argument}) over persons: aggregate stored columns, not values made in the query (a CASE or calculation can single out one person); group by the calculation instead"
            )));
        }
        if let Expr::Column(column) = argument
            && matches!(node.kind_of(column), Kind::Person(_))
            && !(name == "count" && params.distinct)
        {
            return Err(refused(
                "a pseudonym may only be counted (count(DISTINCT …))",
            ));
        }
    }
    Ok(())
}

/// A window function over person rows: ranks, counts, sums and averages of plain
/// columns.
fn check_window(node: &Node, expr: &Expr) -> Result<(), QueryError> {
    let mut failure = None;
    let _ = expr.apply(|e| {
        if let Expr::WindowFunction(window) = e {
            let name = window.fun.name().to_ascii_lowercase();
            if !COMBINING_WINDOW_FUNCTIONS.contains(&name.as_str()) {
                failure = Some(refused(format!(
                    "{name} over rows about persons copies one person's value to others' rows; use rank, count, sum or avg"
                )));
            }
            for argument in &window.params.args {
                if !matches!(argument, Expr::Literal(..))
                    && !matches!(argument, Expr::Column(c) if node.kind_of(c) == Kind::Plain)
                {
                    failure = Some(refused(format!(
                        "{name}({argument}) over persons: window functions take stored columns"
                    )));
                }
            }
            return Ok(TreeNodeRecursion::Jump);
        }
        Ok(TreeNodeRecursion::Continue)
    });
    failure.map_or(Ok(()), Err)
}
