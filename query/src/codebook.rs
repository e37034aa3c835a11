//! The codebook that goes with every export: each variable of the file with its type,
//! its meaning (description, unit or codes), how it was derived, the suppression
//! applied to it, and the tables and views it was made from, at their versions.
//! Modelled on the Frictionless Table Schema (`name`, `type`, `description`,
//! `constraints.enum`) with DDI-Codebook's derivation and provenance beside it.
//!
//! A variable's derivation comes from the query's logical plan: a column passed on
//! unchanged from a table or view means what the catalogue says it means; a computed
//! one is described by its expression and the columns it was computed from.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Schema};
use deltalake::datafusion::common::Column;
use deltalake::datafusion::logical_expr::utils::grouping_set_to_exprlist;
use deltalake::datafusion::logical_expr::{Distinct, Expr, LogicalPlan};
use serde::{Deserialize, Serialize};

use crate::catalogue::{Meaning, SourceKind, TableInfo, term};
use crate::exports::Provenance;

/// A column of a catalogue table or view.
#[derive(
    Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, utoipa::ToSchema,
)]
pub struct SourceColumn {
    pub table: String,
    pub column: String,
}

impl std::fmt::Display for SourceColumn {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}.{}", self.table, self.column)
    }
}

/// Where a column of an answer comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// A column of a catalogue table or view, passed on unchanged.
    Column(SourceColumn),
    /// Computed by the query: the expression, and the catalogue columns it reads.
    Computed {
        expression: String,
        from: BTreeSet<SourceColumn>,
    },
}

impl Origin {
    fn columns(&self) -> BTreeSet<SourceColumn> {
        match self {
            Origin::Column(column) => BTreeSet::from([column.clone()]),
            Origin::Computed { from, .. } => from.clone(),
        }
    }
}

/// The origin of each column of `plan`'s output, in order. `plan` is as the SQL
/// planner made it (views not yet inlined), so that a view's column is the view's.
pub fn origins(plan: &LogicalPlan) -> Vec<Origin> {
    (0..plan.schema().fields().len())
        .map(|i| origin(plan, i))
        .collect()
}

fn origin(plan: &LogicalPlan, i: usize) -> Origin {
    let opaque = |what: &str| Origin::Computed {
        expression: what.to_string(),
        from: BTreeSet::new(),
    };
    match plan {
        LogicalPlan::TableScan(scan) => Origin::Column(SourceColumn {
            table: scan.table_name.table().to_string(),
            column: scan.projected_schema.field(i).name().clone(),
        }),
        LogicalPlan::Projection(projection) => of_expr(&projection.expr[i], &projection.input),
        LogicalPlan::Aggregate(aggregate) => {
            let groups = grouping_set_to_exprlist(&aggregate.group_expr).unwrap_or_default();
            let grouping_id = matches!(aggregate.group_expr.as_slice(), [Expr::GroupingSet(_)]);
            let first_aggregate = groups.len() + usize::from(grouping_id);
            if let Some(group) = groups.get(i) {
                of_expr(group, &aggregate.input)
            } else if let Some(aggregate_expr) = i
                .checked_sub(first_aggregate)
                .and_then(|k| aggregate.aggr_expr.get(k))
            {
                of_expr(aggregate_expr, &aggregate.input)
            } else {
                opaque("the grouping set's id")
            }
        }
        LogicalPlan::Window(window) => {
            let passed = window.input.schema().fields().len();
            match i.checked_sub(passed) {
                None => origin(&window.input, i),
                Some(k) => of_expr(&window.window_expr[k], &window.input),
            }
        }
        LogicalPlan::Join(join) => {
            let (qualifier, field) = join.schema.qualified_field(i);
            let column = Column::new(qualifier.cloned(), field.name());
            [&join.left, &join.right]
                .into_iter()
                .find_map(|side| {
                    side.schema()
                        .index_of_column(&column)
                        .ok()
                        .map(|k| origin(side, k))
                })
                .unwrap_or_else(|| opaque("whether the row has a match"))
        }
        LogicalPlan::Union(union) => {
            let mut branches = union.inputs.iter().map(|input| origin(input, i));
            let first = branches.next().unwrap_or_else(|| opaque("nothing"));
            let rest: Vec<Origin> = branches.collect();
            if rest.iter().all(|o| *o == first) {
                return first;
            }
            Origin::Computed {
                expression: format!("the union of {} queries", rest.len() + 1),
                from: rest
                    .iter()
                    .chain(std::iter::once(&first))
                    .flat_map(Origin::columns)
                    .collect(),
            }
        }
        LogicalPlan::Filter(_)
        | LogicalPlan::Sort(_)
        | LogicalPlan::Limit(_)
        | LogicalPlan::Repartition(_)
        | LogicalPlan::SubqueryAlias(_)
        | LogicalPlan::Subquery(_)
        | LogicalPlan::Distinct(Distinct::All(_)) => match plan.inputs().first() {
            Some(input) => origin(input, i),
            None => opaque("nothing"),
        },
        LogicalPlan::Distinct(Distinct::On(on)) => of_expr(&on.select_expr[i], &on.input),
        LogicalPlan::Values(_) | LogicalPlan::EmptyRelation(_) => opaque("a constant"),
        _ => opaque(&plan.schema().field(i).name().clone()),
    }
}

/// The origin of `expr` evaluated over the rows of `input`.
fn of_expr(expr: &Expr, input: &Arc<LogicalPlan>) -> Origin {
    let expr = expr.clone().unalias_nested().data;
    let of_column = |column: &Column| {
        input
            .schema()
            .index_of_column(column)
            .ok()
            .map(|k| origin(input, k))
    };
    if let Expr::Column(column) = &expr
        && let Some(found) = of_column(column)
    {
        return found;
    }
    Origin::Computed {
        expression: expr.human_display().to_string(),
        from: expr
            .column_refs()
            .into_iter()
            .filter_map(of_column)
            .flat_map(|o| o.columns())
            .collect(),
    }
}

/// The type of a variable, as the Frictionless Table Schema names them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum VariableType {
    String,
    Integer,
    Number,
    Boolean,
    Date,
    Datetime,
    Array,
    Any,
}

impl VariableType {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::String => "string",
            Self::Integer => "integer",
            Self::Number => "number",
            Self::Boolean => "boolean",
            Self::Date => "date",
            Self::Datetime => "datetime",
            Self::Array => "array",
            Self::Any => "any",
        }
    }

    pub fn of(data_type: &DataType) -> Self {
        match data_type {
            t if t.is_integer() => Self::Integer,
            t if t.is_floating()
                || matches!(t, DataType::Decimal128(..) | DataType::Decimal256(..)) =>
            {
                Self::Number
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Self::String,
            DataType::Boolean => Self::Boolean,
            DataType::Date32 | DataType::Date64 => Self::Date,
            DataType::Timestamp(..) => Self::Datetime,
            DataType::List(_) | DataType::LargeList(_) | DataType::FixedSizeList(..) => Self::Array,
            _ => Self::Any,
        }
    }
}

/// One variable (column) of an export.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Variable {
    pub name: String,
    #[serde(rename = "type")]
    pub variable_type: VariableType,
    /// Arrow's name of the type in the file (`Int64`, `Utf8`, …).
    pub arrow_type: String,
    pub nullable: bool,
    #[serde(flatten)]
    pub meaning: Meaning,
    /// How it was made: the catalogue column it is, or the expression it was
    /// computed by.
    pub derivation: String,
    /// The catalogue columns it was made from.
    pub sources: Vec<SourceColumn>,
    /// What disclosure control did to it; none when it was left as computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub suppression: Option<String>,
}

/// A table or view an export read.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct SourceTable {
    pub name: String,
    pub kind: SourceKind,
    pub description: String,
    /// The Delta table's version the export read (lake and reference tables).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<u64>,
    /// A view's SQL.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub definition: Option<String>,
}

/// The codebook of one export.
#[derive(Debug, Clone, Serialize, Deserialize, utoipa::ToSchema)]
pub struct Codebook {
    pub provenance: Provenance,
    pub variables: Vec<Variable>,
    /// The tables and views the variables were made from.
    pub sources: Vec<SourceTable>,
}

impl Codebook {
    /// The codebook of the file with columns `schema`, made as `provenance` says by a
    /// query whose columns have `origins`; `catalogue` describes the tables and views.
    pub fn new(
        provenance: &Provenance,
        schema: &Schema,
        origins: &[Origin],
        catalogue: &[TableInfo],
    ) -> Self {
        let variables: Vec<Variable> = schema
            .fields()
            .iter()
            .zip(origins)
            .map(|(field, origin)| {
                let (meaning, derivation) = match origin {
                    Origin::Column(source) => (
                        Meaning::of(term(&source.table, &source.column)),
                        format!("{source}, unchanged"),
                    ),
                    Origin::Computed { expression, from } => {
                        let from: Vec<String> = from.iter().map(ToString::to_string).collect();
                        let of = if from.is_empty() {
                            String::new()
                        } else {
                            format!(" of {}", from.join(", "))
                        };
                        (
                            Meaning {
                                description: format!("Computed by the export's query{of}: {expression}."),
                                ..Meaning::default()
                            },
                            format!("computed as {expression}"),
                        )
                    }
                };
                Variable {
                    name: field.name().clone(),
                    variable_type: VariableType::of(field.data_type()),
                    arrow_type: field.data_type().to_string(),
                    nullable: field.is_nullable(),
                    meaning,
                    derivation,
                    sources: origin.columns().into_iter().collect(),
                    suppression: provenance
                        .count_columns
                        .contains(field.name())
                        .then(|| format!(
                            "A count: blank (null) where below {} (primary suppression), and where it would follow from the totals of its row or column (secondary suppression).",
                            provenance.threshold
                        )),
                }
            })
            .collect();
        let read: BTreeSet<&str> = variables
            .iter()
            .flat_map(|v| v.sources.iter().map(|s| s.table.as_str()))
            .collect();
        let sources = catalogue
            .iter()
            .filter(|t| read.contains(t.name.as_str()))
            .map(|t| SourceTable {
                name: t.name.clone(),
                kind: t.kind,
                description: t.description.clone(),
                version: provenance.table_versions.0.get(&t.name).copied(),
                definition: crate::views::find(&t.name).map(|v| v.sql.to_string()),
            })
            .collect();
        Self {
            provenance: provenance.clone(),
            variables,
            sources,
        }
    }

    /// The codebook for people, as Markdown.
    pub fn markdown(&self) -> String {
        let p = &self.provenance;
        let mut out = String::new();
        let cell = |text: &str| text.replace('|', "\\|").replace('\n', " ");
        let _ = writeln!(out, "# Codebook of export {}\n", p.export_id);
        let _ = writeln!(out, "| | |\n|---|---|");
        for (key, value) in [
            ("File", format!("{}.{}", p.export_id, p.format)),
            ("Rows", p.rows.to_string()),
            ("Made by", p.created_by.clone()),
            ("Made at", p.created_at.clone()),
            ("Table versions", p.table_versions.to_string()),
            ("SHA-256 of the file", p.data_sha256.clone()),
        ] {
            let _ = writeln!(out, "| {key} | {} |", cell(&value));
        }
        let _ = writeln!(out, "\n## Query\n\n```sql\n{}\n```\n", p.sql);
        let _ = writeln!(out, "## Disclosure control\n");
        let _ = writeln!(
            out,
            "Counts below {} are blank: {} cells (primary) and {} more that would follow from totals (secondary). Count columns: {}.",
            p.threshold,
            p.suppressed_primary,
            p.suppressed_secondary,
            if p.count_columns.is_empty() {
                "none".to_string()
            } else {
                p.count_columns.join(", ")
            }
        );
        if let Some(control) = &p.output_control {
            let _ = writeln!(
                out,
                "\nBefore that, output control left out groups of fewer than {} persons: {}.",
                control.min_persons,
                control.header()
            );
        }
        let _ = writeln!(out, "\n## Variables\n");
        let _ = writeln!(
            out,
            "| Variable | Type | Description | Unit or codes | Derivation | Suppression |\n|---|---|---|---|---|---|"
        );
        for v in &self.variables {
            let values = v
                .meaning
                .unit
                .clone()
                .or_else(|| v.meaning.codes.as_ref().map(|c| c.join(", ")))
                .or_else(|| {
                    v.meaning
                        .code_list
                        .as_ref()
                        .map(|l| format!("codes of {l}"))
                })
                .unwrap_or_default();
            let _ = writeln!(
                out,
                "| {} | {} ({}) | {} | {} | {} | {} |",
                cell(&v.name),
                v.variable_type.as_str(),
                cell(&v.arrow_type),
                cell(&v.meaning.description),
                cell(&values),
                cell(&v.derivation),
                cell(v.suppression.as_deref().unwrap_or("")),
            );
        }
        let _ = writeln!(out, "\n## Sources\n");
        for s in &self.sources {
            let version = s
                .version
                .map(|v| format!(", version {v}"))
                .unwrap_or_default();
            let _ = writeln!(out, "### {}\n\n{}{version}\n", s.name, s.description);
            if let Some(sql) = &s.definition {
                let _ = writeln!(out, "```sql\n{sql}\n```\n");
            }
        }
        out
    }
}
