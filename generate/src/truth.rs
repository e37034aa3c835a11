//! The ground truth: what the generator handed over, tallied while it is emitted,
//! and every KPI of seed 003 computed from it here, in Rust, by the monitor's
//! definitions (see `query/src/views.rs`) — independently of the pipeline, so a
//! test can hold the pipeline's answers against it.

use std::collections::{BTreeMap, HashMap, HashSet};

use serde::Serialize;
use techmon_schemas::codes::SchoolYear;

use crate::duo_files::{DuoCount, vo_track};
use crate::world::{FIRST_YEAR, HUBS, LAST_YEAR, REGIONS, World};

/// A person the generator made up (an index into its people).
pub type PersonId = u64;

/// A school class as hubs report it: the same class in several activities is one.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct ClassKey {
    pub hub: usize,
    pub year: i32,
    pub sector: &'static str,
    pub school: String,
    pub groep: Option<u8>,
    pub leerjaar: Option<u8>,
    pub onderwijstype: Option<&'static str>,
}

/// What a registration said about a person, as far as the KPIs use it.
#[derive(Debug, Clone, Copy)]
pub struct Registered {
    pub sector: Option<&'static str>,
    pub groep: Option<u8>,
    pub role: &'static str,
}

/// Everything the KPIs count, recorded as the events are emitted.
#[derive(Default)]
pub struct Tally {
    /// Pupils per class and activity.
    pub classes: HashMap<ClassKey, HashMap<String, u32>>,
    pub registered: HashMap<PersonId, Registered>,
    /// (hub, school year, person) for every attendance.
    pub attended: HashSet<(usize, i32, PersonId)>,
    /// (hub, school year, teacher) attending docentprofessionalisering.
    pub professionalised: HashSet<(usize, i32, PersonId)>,
    /// (hub, school year, score of 10, respondent if named).
    pub surveys: Vec<(usize, i32, f64, Option<PersonId>)>,
    /// Partner changes in the order they happened: (hub, partner, school year, joined).
    pub partner_changes: Vec<(usize, String, i32, bool)>,
    /// (hub, ambassador, school year).
    pub ambassadors: Vec<(usize, String, i32)>,
    pub withdrawn: HashSet<PersonId>,
    /// Records written: accepted ones, deliberately broken ones, resent copies.
    pub valid_events: usize,
    pub broken_events: usize,
    pub resent_events: usize,
}

/// One KPI value for a hub, a region (`region`) or all regions (`regions`) and
/// year, as `kpi_report` should give it (`scope` is its `hub_id`): `None` where the
/// report has no value.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct KpiTruth {
    pub kpi: &'static str,
    pub band: Option<&'static str>,
    pub scope: String,
    pub region_id: Option<&'static str>,
    pub year: i32,
    pub actual: Option<f64>,
}

/// The technical-profile share for a scope, school year and track as DUO's files
/// give it (suppressed cells as 2.5), and the true share behind the suppression.
#[derive(Debug, Clone, Serialize)]
pub struct ShareTruth {
    pub scope: String,
    pub region_id: Option<&'static str>,
    pub school_year: String,
    pub track: &'static str,
    pub pupils: f64,
    pub technical_pupils: f64,
    pub share_pct: f64,
    pub true_share_pct: f64,
}

#[derive(Debug, Clone, Serialize)]
pub struct Truth {
    pub valid_events: usize,
    pub broken_events: usize,
    pub resent_events: usize,
    pub kpis: Vec<KpiTruth>,
    pub technical_share: Vec<ShareTruth>,
    /// Each hub's built-in effect (see [`crate::world::Hub::effect_pp_per_year`]).
    pub hub_effects: Vec<HubEffect>,
}

/// A hub's built-in effect on the technical share of the VO schools it reaches.
#[derive(Debug, Clone, Serialize)]
pub struct HubEffect {
    pub hub_id: &'static str,
    pub pp_per_year: f64,
}

impl Truth {
    /// The share of a scope (of a region), school year and track.
    pub fn share(
        &self,
        (scope, region_id): (&str, Option<&str>),
        school_year: &str,
        track: &str,
    ) -> Option<&ShareTruth> {
        self.technical_share.iter().find(|s| {
            s.scope == scope
                && s.region_id == region_id
                && s.school_year == school_year
                && s.track == track
        })
    }

    /// The true effect on a hub's reached schools `years_since` school years after
    /// the first school year counted after the first reach (none before).
    pub fn effect(&self, hub_id: &str, years_since: i32) -> Option<f64> {
        let hub = self.hub_effects.iter().find(|h| h.hub_id == hub_id)?;
        Some(hub.pp_per_year * f64::from((years_since + 1).max(0)))
    }

    /// A KPI value of a scope (of a region) and year (`None` if the generator has no
    /// such row).
    pub fn kpi(
        &self,
        (kpi, band): (&str, Option<&str>),
        (scope, region_id): (&str, Option<&str>),
        year: i32,
    ) -> Option<&KpiTruth> {
        self.kpis.iter().find(|k| {
            k.kpi == kpi
                && k.band == band
                && k.scope == scope
                && k.region_id == region_id
                && k.year == year
        })
    }
}

fn band(groep: u8) -> Option<&'static str> {
    match groep {
        1 | 2 => Some("groep_1_2"),
        3..=6 => Some("groep_3_6"),
        7 | 8 => Some("groep_7_8"),
        _ => None,
    }
}

/// A scope of the report: its hubs (by index), its name (`hub_id` in the report),
/// its region, and its KPI set.
struct Scope {
    hubs: Vec<usize>,
    name: String,
    region_id: Option<&'static str>,
    kpis: Vec<(&'static str, Option<&'static str>)>,
}

/// Scopes of the report: each hub, each region, and all regions together.
fn scopes() -> Vec<Scope> {
    let mut scopes = Vec::new();
    let mut every = Vec::new();
    for region in REGIONS {
        let kpis = region.kpi_set();
        let hubs: Vec<usize> = (0..HUBS.len())
            .filter(|&i| HUBS[i].region == region.id)
            .collect();
        scopes.extend(hubs.iter().map(|&i| Scope {
            hubs: vec![i],
            name: HUBS[i].id.to_string(),
            region_id: Some(region.id),
            kpis: kpis.clone(),
        }));
        scopes.push(Scope {
            hubs,
            name: "region".to_string(),
            region_id: Some(region.id),
            kpis: kpis.clone(),
        });
        every.extend(kpis);
    }
    every.sort_unstable();
    every.dedup();
    if REGIONS.len() > 1 {
        scopes.push(Scope {
            hubs: (0..HUBS.len()).collect(),
            name: "regions".to_string(),
            region_id: None,
            kpis: every,
        });
    }
    scopes
}

impl Tally {
    /// People reached per (hub, year, KPI, band), by the monitor's rules: a class
    /// once per school year at its largest activity, an individual once.
    fn reach(&self) -> HashMap<(usize, i32, &'static str, Option<&'static str>), f64> {
        let mut reach = HashMap::new();
        for (class, per_activity) in &self.classes {
            let people = per_activity.values().copied().max().unwrap_or(0);
            let kpi = match class.sector {
                "PO" => "po_participation_share",
                "VO" => "vo_pupils",
                "MBO" => "mbo_students",
                _ => continue,
            };
            let band = if class.sector == "PO" {
                match class.groep.and_then(band) {
                    Some(b) => Some(b),
                    None => continue,
                }
            } else {
                None
            };
            *reach.entry((class.hub, class.year, kpi, band)).or_default() += f64::from(people);
        }
        for &(hub, year, person) in &self.attended {
            if self.withdrawn.contains(&person) {
                continue;
            }
            let Some(who) = self.registered.get(&person) else {
                continue;
            };
            let key = match (who.sector, who.role) {
                (_, "parent") => ("parents", None),
                (Some("PO"), "pupil") => match who.groep.and_then(band) {
                    Some(b) => ("po_participation_share", Some(b)),
                    None => continue,
                },
                (Some("VO"), "pupil") => ("vo_pupils", None),
                (Some("MBO"), "pupil" | "student") => ("mbo_students", None),
                _ => continue,
            };
            *reach.entry((hub, year, key.0, key.1)).or_default() += 1.0;
        }
        reach
    }

    pub fn truth(&self, world: &World) -> Truth {
        let reach = self.reach();
        let po_pupils = po_denominators(world);
        let shares = technical_shares(world);
        let mut kpis = Vec::new();
        for year in FIRST_YEAR..=LAST_YEAR {
            for scope in scopes() {
                let in_scope = |hub: usize| scope.hubs.contains(&hub);
                let sum = |kpi: &str, band: Option<&str>| -> f64 {
                    reach
                        .iter()
                        .filter(|((h, y, k, b), _)| {
                            in_scope(*h) && *y == year && *k == kpi && *b == band
                        })
                        .map(|(_, v)| v)
                        .sum()
                };
                let mut push = |kpi, band, actual| {
                    if scope.kpis.contains(&(kpi, band)) {
                        kpis.push(KpiTruth {
                            kpi,
                            band,
                            scope: scope.name.clone(),
                            region_id: scope.region_id,
                            year,
                            actual,
                        });
                    }
                };
                for b in ["groep_1_2", "groep_3_6", "groep_7_8"] {
                    let municipalities: Vec<&str> = HUBS
                        .iter()
                        .enumerate()
                        .filter(|(i, _)| in_scope(*i))
                        .map(|(_, h)| h.municipality)
                        .collect();
                    let denominator: f64 = municipalities
                        .iter()
                        .filter_map(|m| po_pupils.get(&(*m, year, b)))
                        .sum();
                    let actual = (denominator > 0.0)
                        .then(|| 100.0 * sum("po_participation_share", Some(b)) / denominator);
                    push("po_participation_share", Some(b), actual);
                }
                for kpi in ["vo_pupils", "mbo_students", "parents"] {
                    push(kpi, None, Some(sum(kpi, None)));
                }
                let teachers = self
                    .professionalised
                    .iter()
                    .filter(|(h, y, p)| in_scope(*h) && *y == year && !self.withdrawn.contains(p))
                    .count();
                push("teachers_professionalised", None, Some(teachers as f64));
                let scores: Vec<f64> = self
                    .surveys
                    .iter()
                    .filter(|(h, y, _, who)| {
                        in_scope(*h)
                            && *y == year
                            && who.is_none_or(|p| !self.withdrawn.contains(&p))
                    })
                    .map(|(_, _, s, _)| *s)
                    .collect();
                let satisfaction =
                    (!scores.is_empty()).then(|| scores.iter().sum::<f64>() / scores.len() as f64);
                push("satisfaction", None, satisfaction);
                // A partner counts while its latest change up to the year is a join.
                let mut latest: HashMap<(usize, &str), bool> = HashMap::new();
                for (hub, partner, y, joined) in &self.partner_changes {
                    if in_scope(*hub) && *y <= year {
                        latest.insert((*hub, partner), *joined);
                    }
                }
                let partners = latest.values().filter(|j| **j).count();
                push("affiliated_organisations", None, Some(partners as f64));
                let ambassadors: HashSet<(usize, &str)> = self
                    .ambassadors
                    .iter()
                    .filter(|(h, _, y)| in_scope(*h) && *y <= year)
                    .map(|(h, a, _)| (*h, a.as_str()))
                    .collect();
                push("ambassadors", None, Some(ambassadors.len() as f64));
                let of_scope =
                    |year| shares.get(&((scope.name.clone(), scope.region_id), year, "all"));
                let change = of_scope(year)
                    .zip(of_scope(2022))
                    .map(|(now, base)| now.share_pct - base.share_pct);
                push("technical_profile_change_vs_2022", None, change);
            }
        }
        Truth {
            valid_events: self.valid_events,
            broken_events: self.broken_events,
            resent_events: self.resent_events,
            kpis,
            technical_share: shares.into_values().collect(),
            hub_effects: HUBS
                .iter()
                .map(|h| HubEffect {
                    hub_id: h.id,
                    pp_per_year: h.effect_pp_per_year,
                })
                .collect(),
        }
    }
}

/// DUO PO pupils per (municipality, year, groep band): the point estimate from the
/// files the generator writes (a suppressed count as 2.5).
fn po_denominators(world: &World) -> HashMap<(&'static str, i32, &'static str), f64> {
    let mut pupils = HashMap::new();
    for school in &world.po {
        for y in 0..crate::world::YEARS {
            for (age, &count) in (3..).zip(school.by_age(y).iter()) {
                let Some(band) = techmon_schemas::codes::po_band_of_age(age) else {
                    continue;
                };
                *pupils
                    .entry((school.municipality, FIRST_YEAR + y as i32, band))
                    .or_default() += DuoCount::of(count).estimate();
            }
        }
    }
    pupils
}

/// A scope of the technical shares: its name and region.
type ShareScope = (String, Option<&'static str>);

/// Technical shares per (scope, year, track) for the nation, all regions, each region
/// and each hub's municipality.
fn technical_shares(world: &World) -> BTreeMap<(ShareScope, i32, &'static str), ShareTruth> {
    // (estimate all, estimate technical, true all, true technical)
    let mut sums: BTreeMap<(ShareScope, i32, &'static str), [f64; 4]> = BTreeMap::new();
    for school in &world.vo {
        let mut scopes: Vec<ShareScope> = vec![("national".to_string(), None)];
        if let Some(region) = school.region {
            if REGIONS.len() > 1 {
                scopes.push(("regions".to_string(), None));
            }
            scopes.push(("region".to_string(), Some(region)));
        }
        scopes.extend(
            HUBS.iter()
                .filter(|h| h.municipality == school.municipality)
                .map(|h| (h.id.to_string(), Some(h.region))),
        );
        for (y, cells) in school.cells.iter().enumerate() {
            for cell in cells {
                let Some(track) = vo_track(cell.onderwijstype, cell.leerjaar) else {
                    continue;
                };
                for pupils in [cell.boys, cell.girls] {
                    let estimate = DuoCount::of(pupils).estimate();
                    let truth = f64::from(pupils);
                    for scope in &scopes {
                        for t in [track, "all"] {
                            let sum = sums
                                .entry((scope.clone(), FIRST_YEAR + y as i32, t))
                                .or_default();
                            sum[0] += estimate;
                            sum[2] += truth;
                            if cell.technical {
                                sum[1] += estimate;
                                sum[3] += truth;
                            }
                        }
                    }
                }
            }
        }
    }
    sums.into_iter()
        .map(
            |((scope, year, track), [all, technical, true_all, true_technical])| {
                let share = ShareTruth {
                    scope: scope.0.clone(),
                    region_id: scope.1,
                    school_year: SchoolYear::new(year).to_string(),
                    track,
                    pupils: all,
                    technical_pupils: technical,
                    share_pct: 100.0 * technical / all,
                    true_share_pct: 100.0 * true_technical / true_all,
                };
                ((scope, year, track), share)
            },
        )
        .collect()
}
