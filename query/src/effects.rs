//! The effect measurement in SQL: `effect_estimates`, `effect_event_study` and
//! `effect_group_time` are computed by [`techmon_effect`] from the view
//! `effect_panel` of the same session, so they read the table versions every other
//! part of an answer reads, and a pinned answer reproduces them.
//!
//! Per track (vmbo, havo/vwo, both) the estimate is made per region (`region`: the
//! schools its hubs reached first), for all regions together where there are several
//! (`regions`: every reached school) and per hub (the schools the hub reached first),
//! each against the schools no hub reached; other reached schools are left out.

use std::sync::Arc;

use deltalake::arrow::array::{
    ArrayRef, AsArray, BooleanArray, Float64Array, Int64Array, RecordBatch, StringArray,
};
use deltalake::arrow::datatypes::{DataType, Field, Float64Type, Schema, SchemaRef};
use deltalake::datafusion::catalog::{Session, TableProvider};
use deltalake::datafusion::datasource::TableType;
use deltalake::datafusion::datasource::memory::MemorySourceConfig;
use deltalake::datafusion::error::{DataFusionError, Result};
use deltalake::datafusion::execution::session_state::SessionState;
use deltalake::datafusion::logical_expr::Expr;
use deltalake::datafusion::physical_plan::ExecutionPlan;
use deltalake::datafusion::prelude::SessionContext;
use techmon_effect::{Bootstrap, EffectError, Effects, Estimate, Observation, Panel};
use techmon_lake::glossary::{Codes, Term};
use techmon_schemas::codes::SchoolYear;

/// The Monitor Techniekpact population an estimate is of.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    Vmbo,
    HavoVwo,
    All,
}

impl Track {
    pub const ALL: [Self; 3] = [Self::Vmbo, Self::HavoVwo, Self::All];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Vmbo => "vmbo",
            Self::HavoVwo => "havo_vwo",
            Self::All => "all",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

/// The design, in plain words, for answers that give the estimates.
pub const METHOD: &str = "Staggered difference in differences (Callaway and Sant'Anna 2021), per VO school location and school year from DUO's counts: for the schools a hub first reached in the same school year (a cohort), the change in the share of pupils in a technical profile since the school year before they count as treated, minus the change at schools not yet or never reached (anywhere in the country), weighted by pupils. A school counts as treated from the school year after its first reach, when the reached pupils' profile choices are first in DUO's count. The overall effect averages each cohort's effect over its treated school years, with the cohorts' pupils as weights; the event study gives it per school year since treatment, and before treatment (placebo effects, which should be near zero). Intervals: a wild cluster bootstrap over schools (999 draws, Webb weights). All effects are in percentage points of the technical-profile share.";

/// What the estimates rest on, in plain words.
pub const ASSUMPTIONS: &[&str] = &[
    "Parallel trends: without the hubs, reached schools' shares would have changed as the comparison schools' did (levels may differ). The placebo effects and the pre-trend test check it before treatment; they cannot prove it.",
    "No anticipation: a school's share does not move before its pupils are reached.",
    "No spill-over: reaching a school does not change the comparison schools' shares; spill-over would make the estimate too small.",
    "Reach as recorded: a school whose classes a hub reached without recording it counts as never reached.",
    "Few clusters: a hub reaches a handful of schools, so its interval is approximate; treated_schools says how many each number rests on.",
];

/// Whose reached schools an estimate's treated schools are.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Treated {
    /// Every region's (`regions`).
    Everywhere,
    /// The hubs' of one region (`region`).
    Region(String),
    Hub {
        hub_id: String,
        region_id: String,
    },
}

impl Treated {
    fn scope(&self) -> &str {
        match self {
            Self::Everywhere => "regions",
            Self::Region(_) => "region",
            Self::Hub { hub_id, .. } => hub_id,
        }
    }

    fn region_id(&self) -> Option<&str> {
        match self {
            Self::Everywhere => None,
            Self::Region(region_id) | Self::Hub { region_id, .. } => Some(region_id),
        }
    }

    /// Whether a school first reached by hub `hub_id` of region `region_id` is one of
    /// this scope's treated schools.
    fn treats(&self, hub_id: &str, region_id: &str) -> bool {
        match self {
            Self::Everywhere => true,
            Self::Region(region) => region == region_id,
            Self::Hub { hub_id: hub, .. } => hub == hub_id,
        }
    }
}

/// The bootstrap of every estimate: fixed, so the same table versions give the same
/// answer.
pub const BOOTSTRAP: Bootstrap = Bootstrap {
    draws: 999,
    seed: 2022,
};

/// Below this many treated schools an estimate's interval is flagged as resting on
/// few clusters.
const FEW_CLUSTERS: usize = 10;

/// One of the effect tables.
pub struct EffectTable {
    pub name: &'static str,
    pub description: &'static str,
    pub columns: &'static [Term],
    fields: fn() -> Vec<Field>,
    rows: fn(&[ScopeEffects]) -> Vec<ArrayRef>,
}

impl std::fmt::Debug for EffectTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name)
    }
}

impl EffectTable {
    pub fn schema(&self) -> SchemaRef {
        Arc::new(Schema::new((self.fields)()))
    }

    /// What `column` of this table means.
    pub fn term(&self, column: &str) -> Option<&'static Term> {
        self.columns
            .iter()
            .chain(COMMON_TERMS)
            .find(|t| t.column == column)
    }
}

/// The effect table called `name`.
pub fn find(name: &str) -> Option<&'static EffectTable> {
    EFFECT_TABLES.iter().find(|t| t.name == name)
}

const COMMON_TERMS: &[Term] = &[
    Term::new("scope", "Whose schools are the treated ones: 'region' (every school a hub of region_id reached first), 'regions' (every school a hub reached; only where there are several regions) or a hub_id (the schools that hub reached first). Other reached schools are left out. The comparison schools are those no hub reached, anywhere in DUO's file, and treated schools before they were reached.").codes(Codes::List("hubs", "hub_id")),
    Term::new("region_id", "The region of the scope: the region itself, or the hub's; null for 'regions'.").codes(Codes::List("regions", "region_id")),
    Term::new("track", "The Monitor Techniekpact population: 'vmbo' (vmbo bb/kb/gl, leerjaar 3), 'havo_vwo' (havo and vwo, leerjaar 4), or 'all' (both).").codes(Codes::Values(&["vmbo", "havo_vwo", "all"])),
    Term::new("att_pp", "The average effect on the treated schools' technical-profile share (pupils-weighted), in percentage points.").unit("percentage points"),
    Term::new("se_pp", "The wild cluster bootstrap's standard error (999 draws of Webb weights, a school one cluster; fixed seed).").unit("percentage points"),
    Term::new("ci_low_pp", "The lower end of the 95% interval: att_pp − 1.96 se_pp.").unit("percentage points"),
    Term::new("ci_high_pp", "The upper end of the 95% interval: att_pp + 1.96 se_pp.").unit("percentage points"),
    Term::new("p_value", "The two-sided p-value of no effect (normal, with the bootstrap standard error)."),
    Term::new("analytic_se_pp", "The standard error from the influence function, as R's did and Python's csdid give without bootstrap.").unit("percentage points"),
    Term::new("treated_schools", "The treated school locations (clusters) the estimate rests on.").unit("schools"),
    Term::new("comparison_schools", "The school locations it is compared with: never treated, or not yet treated in the school year.").unit("schools"),
];

pub const EFFECT_TABLES: &[EffectTable] = &[
    EffectTable {
        name: "effect_estimates",
        description: "The effect of a hub reaching a VO school on its pupils' technical-profile share: staggered difference in differences (Callaway and Sant'Anna 2021) on effect_panel, per scope (a region, all regions, or a hub) and track; with its 95% interval, the pre-trend test and the minimum detectable effect. See docs/researchers.md, 'The effect measurement'.",
        columns: &[
            Term::new("att_pp", "The overall effect: each cohort's (schools first treated in the same school year) mean effect over its treated school years, averaged with the cohorts' pupils (R did's 'group' aggregation), in percentage points of the technical-profile share.").unit("percentage points"),
            Term::new("mde_pp", "The minimum detectable effect: the smallest true effect a two-sided 5% test would find with 80% power at this standard error, (1.96 + 0.84) × se_pp.").unit("percentage points"),
            Term::new("comparison_schools", "The school locations never treated within the panel (the comparison pool; not-yet-treated schools add to it per school year).").unit("schools"),
            Term::new("cohorts", "The school years in which schools were first treated.").unit("cohorts"),
            Term::new("schools", "The school locations in the panel: counted in every school year of it.").unit("schools"),
            Term::new("first_school_year", "The panel's first school year (DUO's count of 1 October)."),
            Term::new("last_school_year", "The panel's last school year."),
            Term::new("pre_trend_chi2", "The Wald statistic that every placebo effect (before treatment) is zero; its distribution is chi-square with pre_trend_df degrees of freedom."),
            Term::new("pre_trend_df", "The placebo effects tested.").unit("effects"),
            Term::new("pre_trend_p_value", "The pre-trend test's p-value: small values say the treated and comparison schools did not move in parallel before treatment."),
            Term::new("left_out_unbalanced", "School locations left out because DUO does not count them (in the track) in every school year of the panel.").unit("schools"),
            Term::new("left_out_treated_first", "School locations left out because they were treated from the panel's first school year: there is nothing to compare before.").unit("schools"),
            Term::new("note", "Why there is no estimate, or what to keep in mind (few treated schools)."),
        ],
        fields: estimate_fields,
        rows: estimate_rows,
    },
    EffectTable {
        name: "effect_event_study",
        description: "The effect by school years since schools were first treated (years_since 0: the first school year counted after the first reach), per scope and track: cohort-weighted ATT(g, g + e) with its 95% interval; negative years_since are placebo effects (the change in the school year before, which should be near zero).",
        columns: &[
            Term::new("years_since", "School years since the school year a school first counts as treated; negative: before (placebo).").unit("school years"),
            Term::new("placebo", "Whether the row is before treatment (a check of parallel trends, not an effect)."),
        ],
        fields: event_study_fields,
        rows: event_study_rows,
    },
    EffectTable {
        name: "effect_group_time",
        description: "The group-time average effects ATT(g, t) the others are made of, per scope and track: the cohort first treated in school year g, in school year t (t < g: placebo, the change from the school year before).",
        columns: &[
            Term::new("treated_from", "The cohort: the school year its schools first count as treated."),
            Term::new("school_year", "The school year of the effect (DUO's count of 1 October)."),
            Term::new("att_pp", "ATT(g, t): the cohort's pupils-weighted mean change of the technical-profile share minus that of the comparison schools, in percentage points.").unit("percentage points"),
        ],
        fields: group_time_fields,
        rows: group_time_rows,
    },
];

/// The estimate of one scope and track, and its panel.
#[derive(Debug)]
pub struct ScopeEffects {
    treated: Treated,
    track: Track,
    panel: Panel,
    effects: Result<Effects, EffectError>,
}

/// The effects of every scope and track, from `effect_panel` in `state`.
async fn compute(state: &SessionState) -> Result<Vec<ScopeEffects>> {
    let ctx = SessionContext::new_with_state(state.clone());
    let batches = ctx
        .sql(
            "SELECT brin6, school_year, track, reached_by, treated_from, pupils, share_pct \
             FROM effect_panel",
        )
        .await?
        .collect()
        .await?;
    let hubs = ctx
        .sql("SELECT hub_id, region_id FROM hubs ORDER BY region_id, hub_id")
        .await?
        .collect()
        .await?;
    let hubs: Vec<(String, String)> = strings(&hubs, 0)
        .into_iter()
        .zip(strings(&hubs, 1))
        .filter_map(|(hub, region)| Some((hub?, region?)))
        .collect();
    let region_of = |hub_id: &str| {
        hubs.iter()
            .find(|(hub, _)| hub == hub_id)
            .map_or("", |(_, region)| region.as_str())
    };
    let mut rows = Vec::new();
    for batch in &batches {
        let text = |i: usize| strings(std::slice::from_ref(batch), i);
        let numbers = |i: usize| -> Result<Vec<Option<f64>>> {
            let column = deltalake::arrow::compute::cast(batch.column(i), &DataType::Float64)?;
            Ok(column.as_primitive::<Float64Type>().iter().collect())
        };
        let (brin6, school_year, track, reached_by, treated_from) =
            (text(0), text(1), text(2), text(3), text(4));
        let (pupils, share) = (numbers(5)?, numbers(6)?);
        for i in 0..batch.num_rows() {
            let year = |s: &Option<String>| s.as_deref().and_then(SchoolYear::parse);
            let (Some(unit), Some(period), Some(track)) = (
                brin6[i].clone(),
                year(&school_year[i]),
                track[i].as_deref().and_then(Track::parse),
            ) else {
                continue;
            };
            // The hub that reached the school first, with its region.
            let reached = reached_by[i].clone().map(|hub| {
                let region = region_of(&hub);
                (hub, region)
            });
            rows.push((
                track,
                reached,
                Observation {
                    unit,
                    period: period.start,
                    outcome: share[i].unwrap_or(f64::NAN),
                    size: pupils[i].unwrap_or(f64::NAN),
                    first_treated: year(&treated_from[i]).map(|y| y.start),
                },
            ));
        }
    }
    let mut regions: Vec<&str> = hubs.iter().map(|(_, region)| region.as_str()).collect();
    regions.dedup();
    let mut scopes = Vec::new();
    if regions.len() > 1 {
        scopes.push(Treated::Everywhere);
    }
    for region in regions {
        scopes.push(Treated::Region(region.to_string()));
        scopes.extend(
            hubs.iter()
                .filter(|(_, r)| r == region)
                .map(|(hub_id, region_id)| Treated::Hub {
                    hub_id: hub_id.clone(),
                    region_id: region_id.clone(),
                }),
        );
    }
    let mut all = Vec::new();
    for scope in scopes {
        for track in Track::ALL {
            let observations = rows
                .iter()
                .filter(|(t, reached, _)| {
                    *t == track
                        && reached
                            .as_ref()
                            .is_none_or(|(hub, region)| scope.treats(hub, region))
                })
                .map(|(_, _, o)| o.clone());
            let panel = Panel::balanced(observations);
            let effects = techmon_effect::estimate(&panel, &BOOTSTRAP);
            all.push(ScopeEffects {
                treated: scope.clone(),
                track,
                panel,
                effects,
            });
        }
    }
    Ok(all)
}

/// Column `i` of `batches` as strings.
fn strings(batches: &[RecordBatch], i: usize) -> Vec<Option<String>> {
    batches
        .iter()
        .flat_map(|b| {
            let column = deltalake::arrow::compute::cast(b.column(i), &DataType::Utf8)
                .unwrap_or_else(|_| {
                    deltalake::arrow::array::new_null_array(&DataType::Utf8, b.num_rows())
                });
            column
                .as_string::<i32>()
                .iter()
                .map(|s| s.map(str::to_string))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn text(name: &str) -> Field {
    Field::new(name, DataType::Utf8, true)
}
fn real(name: &str) -> Field {
    Field::new(name, DataType::Float64, true)
}
fn whole(name: &str) -> Field {
    Field::new(name, DataType::Int64, true)
}

/// The columns of an estimate with its uncertainty.
fn estimate_columns() -> Vec<Field> {
    vec![
        real("att_pp"),
        real("se_pp"),
        real("ci_low_pp"),
        real("ci_high_pp"),
        real("p_value"),
        real("analytic_se_pp"),
    ]
}

/// Their values, in the order of [`estimate_columns`].
fn estimate_values(estimates: &[Option<Estimate>]) -> Vec<ArrayRef> {
    let column = |f: &dyn Fn(&Estimate) -> f64| -> ArrayRef {
        Arc::new(Float64Array::from(
            estimates
                .iter()
                .map(|e| e.as_ref().map(f))
                .collect::<Vec<_>>(),
        ))
    };
    vec![
        column(&|e| e.att),
        column(&|e| e.se),
        column(&|e| e.interval().0),
        column(&|e| e.interval().1),
        column(&|e| e.p_value()),
        column(&|e| e.analytic_se),
    ]
}

/// The scope, region and track of each row's estimates.
fn scope_columns<'a>(rows: impl Iterator<Item = &'a ScopeEffects> + Clone) -> Vec<ArrayRef> {
    vec![
        strings_of(rows.clone().map(|s| Some(s.treated.scope().to_string()))),
        strings_of(
            rows.clone()
                .map(|s| s.treated.region_id().map(str::to_string)),
        ),
        strings_of(rows.map(|s| Some(s.track.as_str().to_string()))),
    ]
}

fn strings_of(values: impl IntoIterator<Item = Option<String>>) -> ArrayRef {
    Arc::new(StringArray::from(values.into_iter().collect::<Vec<_>>()))
}

fn counts_of(values: impl IntoIterator<Item = Option<usize>>) -> ArrayRef {
    Arc::new(Int64Array::from(
        values
            .into_iter()
            .map(|v| v.map(|v| v as i64))
            .collect::<Vec<_>>(),
    ))
}

fn school_year(start: i32) -> String {
    SchoolYear::new(start).to_string()
}

fn estimate_fields() -> Vec<Field> {
    let mut fields = vec![text("scope"), text("region_id"), text("track")];
    fields.extend(estimate_columns());
    fields.extend([
        real("mde_pp"),
        whole("treated_schools"),
        whole("comparison_schools"),
        whole("cohorts"),
        whole("schools"),
        text("first_school_year"),
        text("last_school_year"),
        real("pre_trend_chi2"),
        whole("pre_trend_df"),
        real("pre_trend_p_value"),
        whole("left_out_unbalanced"),
        whole("left_out_treated_first"),
        text("note"),
    ]);
    fields
}

fn estimate_rows(all: &[ScopeEffects]) -> Vec<ArrayRef> {
    fn ok(s: &ScopeEffects) -> Option<&Effects> {
        s.effects.as_ref().ok()
    }
    let overall: Vec<Option<Estimate>> = all.iter().map(|s| ok(s).map(|e| e.overall)).collect();
    let pre_trend = |s: &ScopeEffects| ok(s).and_then(|e| e.pre_trend);
    let mut columns = scope_columns(all.iter());
    columns.extend(estimate_values(&overall));
    columns.extend([
        Arc::new(Float64Array::from(
            overall
                .iter()
                .map(|e| e.map(|e| e.minimum_detectable()))
                .collect::<Vec<_>>(),
        )) as ArrayRef,
        counts_of(all.iter().map(|s| ok(s).map(|e| e.treated))),
        counts_of(all.iter().map(|s| ok(s).map(|e| e.never_treated))),
        counts_of(all.iter().map(|s| ok(s).map(|e| e.cohorts))),
        counts_of(all.iter().map(|s| Some(s.panel.units.len()))),
        strings_of(
            all.iter()
                .map(|s| s.panel.periods.first().map(|&y| school_year(y))),
        ),
        strings_of(
            all.iter()
                .map(|s| s.panel.periods.last().map(|&y| school_year(y))),
        ),
        Arc::new(Float64Array::from(
            all.iter()
                .map(|s| pre_trend(s).map(|p| p.chi_square))
                .collect::<Vec<_>>(),
        )),
        counts_of(
            all.iter()
                .map(|s| pre_trend(s).map(|p| p.degrees_of_freedom)),
        ),
        Arc::new(Float64Array::from(
            all.iter()
                .map(|s| pre_trend(s).map(|p| p.p_value))
                .collect::<Vec<_>>(),
        )),
        counts_of(all.iter().map(|s| Some(s.panel.left_out_unbalanced))),
        counts_of(all.iter().map(|s| Some(s.panel.left_out_treated_first))),
        strings_of(all.iter().map(note)),
    ]);
    columns
}

/// Why a scope has no estimate, or what to keep in mind about it.
fn note(scope: &ScopeEffects) -> Option<String> {
    let effects = match &scope.effects {
        Err(e) => return Some(format!("No estimate: {e}.")),
        Ok(effects) => effects,
    };
    let mut notes = Vec::new();
    if effects.treated < FEW_CLUSTERS {
        notes.push(format!(
            "Rests on {} treated school(s): with this few clusters the bootstrap interval is approximate and the effect of one school weighs heavily.",
            effects.treated
        ));
    }
    // A cohort's own spread enters the errors only through its schools' differences:
    // a cohort of one school adds none, however noisy its DUO counts are.
    let mut single: Vec<i32> = effects
        .group_time
        .iter()
        .filter(|c| c.treated == 1)
        .map(|c| c.first_treated)
        .collect();
    single.dedup();
    if !single.is_empty() {
        notes.push(format!(
            "{} of the {} cohorts are a single school: the standard errors leave out that school's own noise (DUO's rounding and suppressed counts), so the intervals are too narrow and the pre-trend test rejects too often.",
            single.len(),
            effects.cohorts
        ));
    }
    (!notes.is_empty()).then(|| notes.join(" "))
}

fn event_study_fields() -> Vec<Field> {
    let mut fields = vec![
        text("scope"),
        text("region_id"),
        text("track"),
        whole("years_since"),
    ];
    fields.extend(estimate_columns());
    fields.extend([
        whole("treated_schools"),
        Field::new("placebo", DataType::Boolean, false),
    ]);
    fields
}

fn event_study_rows(all: &[ScopeEffects]) -> Vec<ArrayRef> {
    let rows: Vec<(&ScopeEffects, &techmon_effect::EventTime)> = all
        .iter()
        .filter_map(|s| Some((s, s.effects.as_ref().ok()?)))
        .flat_map(|(s, e)| e.event_study.iter().map(move |t| (s, t)))
        .collect();
    let mut columns = scope_columns(rows.iter().map(|(s, _)| *s));
    columns.extend([Arc::new(Int64Array::from(
        rows.iter()
            .map(|(_, t)| i64::from(t.years_since))
            .collect::<Vec<_>>(),
    )) as ArrayRef]);
    columns.extend(estimate_values(
        &rows
            .iter()
            .map(|(_, t)| Some(t.estimate))
            .collect::<Vec<_>>(),
    ));
    columns.extend([
        counts_of(rows.iter().map(|(_, t)| Some(t.estimate.treated))),
        Arc::new(BooleanArray::from(
            rows.iter()
                .map(|(_, t)| t.years_since < 0)
                .collect::<Vec<_>>(),
        )) as ArrayRef,
    ]);
    columns
}

fn group_time_fields() -> Vec<Field> {
    vec![
        text("scope"),
        text("region_id"),
        text("track"),
        text("treated_from"),
        text("school_year"),
        real("att_pp"),
        real("analytic_se_pp"),
        whole("treated_schools"),
        whole("comparison_schools"),
    ]
}

fn group_time_rows(all: &[ScopeEffects]) -> Vec<ArrayRef> {
    let rows: Vec<(&ScopeEffects, &techmon_effect::GroupTime)> = all
        .iter()
        .filter_map(|s| Some((s, s.effects.as_ref().ok()?)))
        .flat_map(|(s, e)| e.group_time.iter().map(move |c| (s, c)))
        .collect();
    let mut columns = scope_columns(rows.iter().map(|(s, _)| *s));
    columns.extend([
        strings_of(rows.iter().map(|(_, c)| Some(school_year(c.first_treated)))),
        strings_of(rows.iter().map(|(_, c)| Some(school_year(c.period)))),
        Arc::new(Float64Array::from(
            rows.iter().map(|(_, c)| c.att).collect::<Vec<_>>(),
        )),
        Arc::new(Float64Array::from(
            rows.iter().map(|(_, c)| c.analytic_se).collect::<Vec<_>>(),
        )),
        counts_of(rows.iter().map(|(_, c)| Some(c.treated))),
        counts_of(rows.iter().map(|(_, c)| Some(c.controls))),
    ]);
    columns
}

/// The estimates of one session, computed when one of its effect tables is first
/// read: a session holds one set of table versions, so they hold for all its queries.
pub type Estimated = Arc<tokio::sync::OnceCell<Arc<Vec<ScopeEffects>>>>;

/// An effect table in a session: computed when first scanned, from the session's own
/// `effect_panel`, and shared with the session's other effect tables.
#[derive(Debug)]
pub struct EffectProvider {
    table: &'static EffectTable,
    schema: SchemaRef,
    estimated: Estimated,
}

impl EffectProvider {
    pub fn new(table: &'static EffectTable, estimated: Estimated) -> Self {
        Self {
            table,
            schema: table.schema(),
            estimated,
        }
    }
}

#[async_trait::async_trait]
impl TableProvider for EffectProvider {
    fn schema(&self) -> SchemaRef {
        self.schema.clone()
    }

    fn table_type(&self) -> TableType {
        TableType::View
    }

    async fn scan(
        &self,
        state: &dyn Session,
        projection: Option<&Vec<usize>>,
        _filters: &[Expr],
        _limit: Option<usize>,
    ) -> Result<Arc<dyn ExecutionPlan>> {
        let state = state
            .as_any()
            .downcast_ref::<SessionState>()
            .ok_or_else(|| DataFusionError::Internal("an effect table needs a session".into()))?;
        let all = self
            .estimated
            .get_or_try_init(|| async { compute(state).await.map(Arc::new) })
            .await?;
        let batch = RecordBatch::try_new(self.schema.clone(), (self.table.rows)(all))?;
        let exec: Arc<dyn ExecutionPlan> = MemorySourceConfig::try_new_exec(
            &[vec![batch]],
            self.schema.clone(),
            projection.cloned(),
        )?;
        Ok(exec)
    }
}
