//! The effect measurement's estimator: did reaching a school change its pupils'
//! choice of technical profiles?
//!
//! Staggered difference in differences after Callaway and Sant'Anna (2021,
//! Journal of Econometrics 225(2)): for every cohort of schools first treated in
//! school year g and every school year t, the group-time average effect ATT(g, t)
//! is the weighted mean change of the cohort's outcome from its last school year
//! before g (before t for t < g: the placebo effects) minus that of the schools not
//! treated by t (never treated, and not yet treated). Weights are the schools' sizes.
//! Without covariates this is the doubly robust estimator of R's `did` and Python's
//! `csdid` (control group "not yet treated", base period "varying"), and the
//! aggregations and influence functions are theirs:
//! - overall: each cohort's mean effect over its treated school years, averaged
//!   with the cohorts' weights (`did`'s "group" aggregation);
//! - event study: per number of school years e since first treated, the
//!   cohort-weighted mean of ATT(g, g + e);
//! - the pre-trend test: a Wald test that every placebo ATT(g, t), t < g, is zero.
//!
//! Standard errors: analytic ones from the influence functions (each school one
//! cluster), and a wild cluster bootstrap ([`Bootstrap`]) for the intervals.
//!
//! Arithmetic only: no I/O, so the estimates can be checked against `csdid`.

mod bootstrap;
pub mod distribution;
mod panel;

pub use bootstrap::Bootstrap;
pub use panel::{Observation, Panel, Unit};

use distribution::{Z_80, Z_975, chi_square_upper_tail, two_sided_p};

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EffectError {
    #[error(
        "the panel has {periods} school year(s) in which every school is counted: at least two are needed"
    )]
    TooFewPeriods { periods: usize },
    #[error("no school was treated after the first school year of the panel and by its last")]
    NoTreated,
    #[error("every school was treated by the end of the panel: there is no comparison group")]
    NoComparison,
}

/// An estimate with its uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Estimate {
    pub att: f64,
    /// The wild cluster bootstrap's standard error.
    pub se: f64,
    /// The influence function's standard error (as `did` gives without bootstrap).
    pub analytic_se: f64,
    /// The treated units (schools: clusters) it rests on.
    pub treated: usize,
}

impl Estimate {
    /// The 95% interval: att ± 1.96 bootstrap standard errors.
    pub fn interval(&self) -> (f64, f64) {
        (self.att - Z_975 * self.se, self.att + Z_975 * self.se)
    }

    /// The two-sided p-value of no effect.
    pub fn p_value(&self) -> f64 {
        two_sided_p(self.att / self.se)
    }

    /// The smallest true effect a two-sided 5% test would detect with 80% power at
    /// this estimate's standard error (Bloom 1995): (1.96 + 0.84) × se.
    pub fn minimum_detectable(&self) -> f64 {
        (Z_975 + Z_80) * self.se
    }
}

/// ATT(g, t) of one cohort and school year.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupTime {
    pub first_treated: i32,
    pub period: i32,
    pub att: f64,
    pub analytic_se: f64,
    pub treated: usize,
    /// The comparison units of this cell (never or not yet treated by `period`).
    pub controls: usize,
}

/// The effect e school years after the first treated one (e < 0: placebo).
#[derive(Debug, Clone, PartialEq)]
pub struct EventTime {
    pub years_since: i32,
    pub estimate: Estimate,
}

/// The joint test that every placebo effect is zero.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct PreTrend {
    pub chi_square: f64,
    pub degrees_of_freedom: usize,
    pub p_value: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Effects {
    pub overall: Estimate,
    pub event_study: Vec<EventTime>,
    pub group_time: Vec<GroupTime>,
    /// `None` when there is no placebo effect to test, or their covariance is
    /// singular.
    pub pre_trend: Option<PreTrend>,
    pub treated: usize,
    pub never_treated: usize,
    pub cohorts: usize,
}

/// One ATT(g, t) with its influence function.
struct Cell {
    group: i32,
    period: i32,
    att: f64,
    influence: Vec<f64>,
    treated: usize,
    controls: usize,
}

/// An aggregate of cells, with its influence function.
struct Aggregate {
    att: f64,
    influence: Vec<f64>,
    treated: usize,
}

/// Estimates the effects on `panel`.
pub fn estimate(panel: &Panel, bootstrap: &Bootstrap) -> Result<Effects, EffectError> {
    if panel.periods.len() < 2 {
        return Err(EffectError::TooFewPeriods {
            periods: panel.periods.len(),
        });
    }
    let groups = panel.groups();
    if groups.is_empty() {
        return Err(EffectError::NoTreated);
    }
    let never_treated = panel.units.iter().filter(|u| u.group.is_none()).count();
    if never_treated == 0 {
        return Err(EffectError::NoComparison);
    }
    let n = panel.units.len() as f64;
    // Weights with mean one, as `did` normalises them: the cohorts' shares below
    // are means of them.
    let mean_weight = panel.units.iter().map(|u| u.weight).sum::<f64>() / n;
    let weights: Vec<f64> = panel.units.iter().map(|u| u.weight / mean_weight).collect();
    let share = |g: i32| -> f64 {
        panel
            .units
            .iter()
            .zip(&weights)
            .filter(|(u, _)| u.group == Some(g))
            .map(|(_, w)| w)
            .sum::<f64>()
            / n
    };
    let cells = group_time(panel, &weights);

    // Overall: each cohort's mean over its treated school years, then the cohorts.
    let per_cohort: Vec<(i32, Aggregate)> = groups
        .iter()
        .filter_map(|&g| {
            let post: Vec<&Cell> = cells
                .iter()
                .filter(|c| c.group == g && c.period >= g)
                .collect();
            let equal = vec![1.0; post.len()];
            Some((g, combine(panel, &weights, &post, &equal, false)?))
        })
        .collect();
    let cohort_cells: Vec<Cell> = per_cohort
        .into_iter()
        .map(|(g, a)| Cell {
            group: g,
            period: g,
            att: a.att,
            influence: a.influence,
            treated: a.treated,
            controls: 0,
        })
        .collect();
    let cohort_refs: Vec<&Cell> = cohort_cells.iter().collect();
    let cohort_shares: Vec<f64> = cohort_cells.iter().map(|c| share(c.group)).collect();
    let overall = combine(panel, &weights, &cohort_refs, &cohort_shares, true)
        .ok_or(EffectError::NoTreated)?;

    // The event study: the cohorts' ATT(g, g + e), weighted by the cohorts' shares.
    let mut years_since: Vec<i32> = cells.iter().map(|c| c.period - c.group).collect();
    years_since.sort_unstable();
    years_since.dedup();
    let event_study: Vec<(i32, Aggregate)> = years_since
        .iter()
        .filter_map(|&e| {
            let at: Vec<&Cell> = cells.iter().filter(|c| c.period - c.group == e).collect();
            let shares: Vec<f64> = at.iter().map(|c| share(c.group)).collect();
            Some((e, combine(panel, &weights, &at, &shares, true)?))
        })
        .collect();

    let mut influences: Vec<&[f64]> = vec![&overall.influence];
    influences.extend(event_study.iter().map(|(_, a)| a.influence.as_slice()));
    let errors = bootstrap.standard_errors(&influences);
    let estimate_of = |a: &Aggregate, se: f64| Estimate {
        att: a.att,
        se,
        analytic_se: analytic_se(&a.influence),
        treated: a.treated,
    };
    Ok(Effects {
        overall: estimate_of(&overall, errors[0]),
        event_study: event_study
            .iter()
            .zip(&errors[1..])
            .map(|((e, a), se)| EventTime {
                years_since: *e,
                estimate: estimate_of(a, *se),
            })
            .collect(),
        pre_trend: pre_trend(&cells),
        group_time: cells
            .iter()
            .map(|c| GroupTime {
                first_treated: c.group,
                period: c.period,
                att: c.att,
                analytic_se: analytic_se(&c.influence),
                treated: c.treated,
                controls: c.controls,
            })
            .collect(),
        treated: overall.treated,
        never_treated,
        cohorts: groups.len(),
    })
}

/// ATT(g, t) for every cohort g and school year t after the first: the change from
/// the cohort's last school year before g (for t ≥ g) or from t − 1 (for t < g), in
/// the cohort minus in the units neither treated by t nor in the cohort. A cell
/// without treated or comparison units is left out.
fn group_time(panel: &Panel, weights: &[f64]) -> Vec<Cell> {
    let n = panel.units.len() as f64;
    let mut cells = Vec::new();
    for g in panel.groups() {
        let Some(base) = panel.periods.iter().rposition(|&p| p < g) else {
            continue;
        };
        for (t, &period) in panel.periods.iter().enumerate().skip(1) {
            let reference = if g <= period { base } else { t - 1 };
            let role = |unit: &Unit| {
                if unit.group == Some(g) {
                    Some(true)
                } else if unit.group.is_none_or(|h| h > period) {
                    Some(false)
                } else {
                    None
                }
            };
            // (weight, weighted sum of changes, units) of the treated and the controls.
            let mut sums = [(0.0, 0.0, 0usize); 2];
            for (unit, w) in panel.units.iter().zip(weights) {
                if let Some(treated) = role(unit) {
                    let change = unit.outcomes[t] - unit.outcomes[reference];
                    let sum = &mut sums[usize::from(treated)];
                    sum.0 += w;
                    sum.1 += w * change;
                    sum.2 += 1;
                }
            }
            let [(w0, s0, controls), (w1, s1, treated)] = sums;
            if w0 <= 0.0 || w1 <= 0.0 {
                continue;
            }
            let (mean0, mean1) = (s0 / w0, s1 / w1);
            let influence = panel
                .units
                .iter()
                .zip(weights)
                .map(|(unit, w)| {
                    let change = unit.outcomes[t] - unit.outcomes[reference];
                    match role(unit) {
                        Some(true) => n * w * (change - mean1) / w1,
                        Some(false) => -n * w * (change - mean0) / w0,
                        None => 0.0,
                    }
                })
                .collect();
            cells.push(Cell {
                group: g,
                period,
                att: mean1 - mean0,
                influence,
                treated,
                controls,
            });
        }
    }
    cells
}

/// The weighted mean of `cells` (weights `shares`, normalised here) and its influence
/// function; with `estimated_shares`, the shares are the cohorts' weighted sizes and
/// their estimation enters the influence function as in `did`'s `wif`.
fn combine(
    panel: &Panel,
    weights: &[f64],
    cells: &[&Cell],
    shares: &[f64],
    estimated_shares: bool,
) -> Option<Aggregate> {
    let total: f64 = shares.iter().sum();
    if cells.is_empty() || total <= 0.0 {
        return None;
    }
    let att = cells
        .iter()
        .zip(shares)
        .map(|(c, s)| c.att * s)
        .sum::<f64>()
        / total;
    let mut influence = vec![0.0; panel.units.len()];
    for (cell, s) in cells.iter().zip(shares) {
        for (i, f) in influence.iter_mut().zip(&cell.influence) {
            *i += f * s / total;
        }
    }
    if estimated_shares {
        for ((i, unit), w) in influence.iter_mut().zip(&panel.units).zip(weights) {
            let in_cohort = |c: &Cell| if unit.group == Some(c.group) { *w } else { 0.0 };
            let deviations: f64 = cells
                .iter()
                .zip(shares)
                .map(|(c, s)| in_cohort(c) - s)
                .sum();
            *i += cells
                .iter()
                .zip(shares)
                .map(|(c, s)| {
                    c.att * ((in_cohort(c) - s) / total - deviations * s / (total * total))
                })
                .sum::<f64>();
        }
    }
    let groups: std::collections::BTreeSet<i32> = cells.iter().map(|c| c.group).collect();
    Some(Aggregate {
        att,
        influence,
        treated: groups.iter().map(|&g| panel.cohort(g).count()).sum(),
    })
}

/// √(Σψᵢ²)/n.
fn analytic_se(influence: &[f64]) -> f64 {
    influence.iter().map(|f| f * f).sum::<f64>().sqrt() / influence.len() as f64
}

/// W = n · θ' V⁻¹ θ over the placebo effects θ (cells with t < g), V = Ψ'Ψ / n of
/// their influence functions; chi-square with as many degrees of freedom as cells.
fn pre_trend(cells: &[Cell]) -> Option<PreTrend> {
    let placebo: Vec<&Cell> = cells
        .iter()
        .filter(|c| c.period < c.group && analytic_se(&c.influence) > 0.0)
        .collect();
    let q = placebo.len();
    let n = placebo.first()?.influence.len() as f64;
    let covariance: Vec<Vec<f64>> = placebo
        .iter()
        .map(|a| {
            placebo
                .iter()
                .map(|b| {
                    a.influence
                        .iter()
                        .zip(&b.influence)
                        .map(|(x, y)| x * y)
                        .sum::<f64>()
                        / n
                })
                .collect()
        })
        .collect();
    let theta: Vec<f64> = placebo.iter().map(|c| c.att).collect();
    let solved = solve(covariance, theta.clone())?;
    let chi_square = n * theta.iter().zip(&solved).map(|(a, b)| a * b).sum::<f64>();
    Some(PreTrend {
        chi_square,
        degrees_of_freedom: q,
        p_value: chi_square_upper_tail(chi_square, q),
    })
}

/// Solves A x = b by Gaussian elimination with partial pivoting; `None` if A is
/// singular to working precision.
fn solve(mut a: Vec<Vec<f64>>, mut b: Vec<f64>) -> Option<Vec<f64>> {
    let q = b.len();
    let scale = a.iter().flatten().fold(0.0_f64, |m, v| m.max(v.abs()));
    for col in 0..q {
        let pivot = (col..q).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if a[pivot][col].abs() <= scale * 1e-12 {
            return None;
        }
        a.swap(col, pivot);
        b.swap(col, pivot);
        let (upper, lower) = a.split_at_mut(col + 1);
        let pivot_row = &upper[col];
        for (offset, row) in lower.iter_mut().enumerate() {
            let factor = row[col] / pivot_row[col];
            for (value, above) in row[col..].iter_mut().zip(&pivot_row[col..]) {
                *value -= factor * above;
            }
            b[col + 1 + offset] -= factor * b[col];
        }
    }
    let mut x = vec![0.0; q];
    for row in (0..q).rev() {
        let rest: f64 = (row + 1..q).map(|k| a[row][k] * x[k]).sum();
        x[row] = (b[row] - rest) / a[row][row];
    }
    Some(x)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn solving_a_small_system_needs_a_pivot_swap() {
        // 0·x + 1·y = 2, 2·x + 1·y = 4: x = 1, y = 2.
        let x = solve(vec![vec![0.0, 1.0], vec![2.0, 1.0]], vec![2.0, 4.0]);
        assert_eq!(x, Some(vec![1.0, 2.0]));
        assert_eq!(
            solve(vec![vec![1.0, 2.0], vec![2.0, 4.0]], vec![1.0, 2.0]),
            None
        );
    }

    /// Two periods, one treated and two comparison units: ATT = the treated change
    /// minus the comparison units' weighted mean change, by hand.
    #[test]
    fn two_periods_give_the_difference_of_weighted_changes() {
        let seen = |unit: &str, period, outcome, size, first_treated| Observation {
            unit: unit.into(),
            period,
            outcome,
            size,
            first_treated,
        };
        let panel = Panel::balanced([
            seen("t", 2021, 10.0, 10.0, Some(2022)),
            seen("t", 2022, 15.0, 10.0, Some(2022)),
            seen("c1", 2021, 20.0, 10.0, None),
            seen("c1", 2022, 21.0, 10.0, None),
            seen("c2", 2021, 30.0, 30.0, None),
            seen("c2", 2022, 33.0, 30.0, None),
        ]);
        let effects = estimate(&panel, &Bootstrap::default()).expect("estimable");
        // Treated change 5; comparison (1·10 + 3·30) / 40 = 2.5.
        assert!((effects.overall.att - 2.5).abs() < 1e-12);
        assert_eq!(effects.group_time.len(), 1);
        assert_eq!((effects.treated, effects.never_treated), (1, 2));
        // The comparison units' deviations from 2.5 (−1.5, 0.5) weighted 1/4 and 3/4:
        // se = √((0.25·1.5)² + (0.75·0.5)²) = 0.375·√2; the one treated unit adds none.
        assert!((effects.group_time[0].analytic_se - 0.375 * 2f64.sqrt()).abs() < 1e-12);
    }
}
