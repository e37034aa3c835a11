//! The balanced panel the estimator reads: every unit (a school location) observed
//! in every period (school year), with the period it is first treated in.

use std::collections::{BTreeMap, BTreeSet};

/// One unit in one period.
#[derive(Debug, Clone, PartialEq)]
pub struct Observation {
    pub unit: String,
    /// The period: a school year by its first calendar year.
    pub period: i32,
    pub outcome: f64,
    /// The unit's size in this period (pupils): its weight is the mean over periods.
    pub size: f64,
    /// The first period the unit counts as treated in; `None` if never.
    pub first_treated: Option<i32>,
}

/// A unit of the panel.
#[derive(Debug, Clone)]
pub struct Unit {
    pub id: String,
    /// The first period it is treated in, within the panel's periods; `None` for a
    /// unit never treated while observed (treated after the last period included).
    pub group: Option<i32>,
    pub weight: f64,
    /// Its outcome in each of the panel's periods, in order.
    pub outcomes: Vec<f64>,
}

/// Units observed in every period.
#[derive(Debug, Clone, Default)]
pub struct Panel {
    pub periods: Vec<i32>,
    pub units: Vec<Unit>,
    /// Units left out because they are missing from a period (or their outcome is).
    pub left_out_unbalanced: usize,
    /// Units left out because they were treated from the first period on: they have
    /// no period before treatment to compare with.
    pub left_out_treated_first: usize,
}

impl Panel {
    /// The balanced panel of `observations`, as R's `did` and Python's `csdid` build
    /// it: the periods are those any observation has; a unit missing from one, or
    /// with a non-finite outcome or size in one, is left out; so is a unit treated in
    /// the first period; a unit first treated after the last period counts as never
    /// treated. Units are in the order of their ids.
    pub fn balanced(observations: impl IntoIterator<Item = Observation>) -> Self {
        let mut by_unit: BTreeMap<String, Vec<Observation>> = BTreeMap::new();
        let mut periods = BTreeSet::new();
        for observation in observations {
            periods.insert(observation.period);
            by_unit
                .entry(observation.unit.clone())
                .or_default()
                .push(observation);
        }
        let periods: Vec<i32> = periods.into_iter().collect();
        let (Some(&first), Some(&last)) = (periods.first(), periods.last()) else {
            return Self::default();
        };
        let mut panel = Self {
            periods: periods.clone(),
            ..Self::default()
        };
        for (id, mut seen) in by_unit {
            seen.sort_by_key(|o| o.period);
            let complete = seen.len() == periods.len()
                && seen.iter().zip(&periods).all(|(o, p)| o.period == *p)
                && seen
                    .iter()
                    .all(|o| o.outcome.is_finite() && o.size.is_finite() && o.size >= 0.0);
            if !complete {
                panel.left_out_unbalanced += 1;
                continue;
            }
            let group = seen[0].first_treated.filter(|&g| g <= last);
            if group.is_some_and(|g| g <= first) {
                panel.left_out_treated_first += 1;
                continue;
            }
            panel.units.push(Unit {
                id,
                group,
                weight: seen.iter().map(|o| o.size).sum::<f64>() / seen.len() as f64,
                outcomes: seen.iter().map(|o| o.outcome).collect(),
            });
        }
        panel
    }

    /// The units first treated in `group`.
    pub fn cohort(&self, group: i32) -> impl Iterator<Item = &Unit> {
        self.units.iter().filter(move |u| u.group == Some(group))
    }

    /// The first-treated periods, in order.
    pub fn groups(&self) -> Vec<i32> {
        let groups: BTreeSet<i32> = self.units.iter().filter_map(|u| u.group).collect();
        groups.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seen(unit: &str, period: i32, first_treated: Option<i32>) -> Observation {
        Observation {
            unit: unit.into(),
            period,
            outcome: 1.0,
            size: f64::from(period - 2000),
            first_treated,
        }
    }

    #[test]
    fn units_missing_a_period_or_treated_from_the_first_are_left_out() {
        let panel = Panel::balanced([
            seen("a", 2021, None),
            seen("a", 2022, None),
            seen("b", 2022, Some(2022)),
            seen("c", 2021, Some(2021)),
            seen("c", 2022, Some(2021)),
            seen("d", 2021, Some(2030)),
            seen("d", 2022, Some(2030)),
        ]);
        assert_eq!(panel.periods, [2021, 2022]);
        let ids: Vec<_> = panel.units.iter().map(|u| u.id.as_str()).collect();
        assert_eq!(ids, ["a", "d"]);
        assert_eq!(panel.left_out_unbalanced, 1);
        assert_eq!(panel.left_out_treated_first, 1);
        // Treated after the last period: never treated while observed.
        assert_eq!(panel.units[1].group, None);
        // The mean size over the periods: (21 + 22) / 2.
        assert_eq!(panel.units[0].weight, 21.5);
    }
}
