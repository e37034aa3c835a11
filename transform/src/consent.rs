//! Research consent: whose person-level rows may reach the research tables, and the
//! counts kept of those that may not.
//!
//! A registration says whether the person (for a minor: the parent) consents to
//! research use (`consent_research`). The latest statement counts, in the order of
//! `occurred_at` (then log position): a later registration may give consent or take
//! it back. Without consent, a person's rows never reach a table researchers read:
//! - their registration and attendances are withheld: kept in the transform's state
//!   (the raw zone) only as what the seed-003 KPIs count of them (sector, groep and
//!   role; hub, school year, activity and role of each attendance), and published as
//!   counts per hub, school year, sector, band and role ([`counts`], the table
//!   `participation_without_consent`), which `reach` and `kpi_measures` add;
//! - their survey answers and profile choices are kept without the person (an
//!   anonymous answer, a choice counted once), so satisfaction and profile shares
//!   stay complete;
//! - their work-learning routes are dropped (no KPI counts them).
//!
//! Consent taken back (`false` after `true`) moves the rows already in the lake the
//! same way. Consent given after a refusal brings the person's rows in from then on;
//! what was withheld before stays counted, and a group the person is then counted in
//! by their research rows is not counted again. Ambassadors commit publicly and have
//! no consent field: their rows are not governed by it (a withdrawal erases them).

use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

use deltalake::arrow::array::{ArrayRef, Int32Array, Int64Array, RecordBatch, StringArray};
use deltalake::arrow::error::ArrowError;
use serde::{Deserialize, Serialize};
use techmon_lake::tables::WITHHELD_COUNTS;
use techmon_schemas::codes::SchoolYear;

/// A person's latest word on research use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Consent {
    Given,
    Refused,
}

/// When a statement was made, for which one is the latest: `occurred_at`, then the
/// log position (so a replay decides the same).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Said {
    pub at_micros: i64,
    pub partition: u32,
    pub offset: u64,
}

/// One registration's word on research use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    pub research: bool,
    pub said: Said,
}

impl Statement {
    pub fn consent(self) -> Consent {
        if self.research {
            Consent::Given
        } else {
            Consent::Refused
        }
    }

    /// The later of two statements.
    pub fn latest(self, other: Option<Self>) -> Self {
        match other {
            Some(other) if other.said > self.said => other,
            _ => self,
        }
    }
}

/// The lake tables that hold a person.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PersonRows {
    Participants,
    Attendances,
    SurveyAnswers,
    ProfileChoices,
    TrajectoryEvents,
    Ambassadors,
}

impl PersonRows {
    /// The table of that name, if it holds a person.
    pub fn of(table: &str) -> Option<Self> {
        Some(match table {
            "participants" => Self::Participants,
            "attendances" => Self::Attendances,
            "survey_answers" => Self::SurveyAnswers,
            "profile_choices" => Self::ProfileChoices,
            "trajectory_events" => Self::TrajectoryEvents,
            "ambassadors" => Self::Ambassadors,
            _ => return None,
        })
    }
}

/// What becomes of a person-level row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowUse {
    /// Into its research table, with the person's pseudonym.
    Research,
    /// Into its research table without the person.
    WithoutPerson,
    /// Kept out of the research tables; counted (see [`counts`]).
    Withheld,
    /// Kept nowhere.
    Dropped,
}

/// The rule: what becomes of a row of `table` about a person whose latest word is
/// `consent` (none yet: the hub has not registered them, and their rows wait for
/// the registration, see the transform's relinks).
pub fn row_use(table: PersonRows, consent: Option<Consent>) -> RowUse {
    match (consent, table) {
        (None | Some(Consent::Given), _) | (_, PersonRows::Ambassadors) => RowUse::Research,
        (Some(Consent::Refused), PersonRows::Participants | PersonRows::Attendances) => {
            RowUse::Withheld
        }
        (Some(Consent::Refused), PersonRows::SurveyAnswers | PersonRows::ProfileChoices) => {
            RowUse::WithoutPerson
        }
        (Some(Consent::Refused), PersonRows::TrajectoryEvents) => RowUse::Dropped,
    }
}

/// What the KPIs use of a person's registrations, as the `reach` view takes it: the
/// greatest sector, groep and role over all of them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Profile {
    pub sector: Option<String>,
    pub groep: Option<i64>,
    pub role: Option<String>,
}

impl Profile {
    pub fn merge(&mut self, other: &Profile) {
        fn greatest<T: Ord + Clone>(a: &mut Option<T>, b: &Option<T>) {
            if b > a {
                a.clone_from(b);
            }
        }
        greatest(&mut self.sector, &other.sector);
        greatest(&mut self.groep, &other.groep);
        greatest(&mut self.role, &other.role);
    }

    /// The PO groep band, as the views name it; none outside PO.
    fn band(&self) -> Option<&'static str> {
        if self.sector.as_deref() != Some("PO") {
            return None;
        }
        match self.groep? {
            1..=2 => Some("groep_1_2"),
            3..=6 => Some("groep_3_6"),
            7..=8 => Some("groep_7_8"),
            _ => None,
        }
    }
}

/// One attendance as the KPIs use it.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Attended {
    pub hub_id: String,
    pub school_year: String,
    pub activity_id: String,
    pub role: Option<String>,
}

/// A person whose rows were withheld at some time: their profile, the attendances
/// withheld, and (after consent was given again) those in the research tables.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WithheldPerson {
    pub profile: Profile,
    pub withheld: BTreeSet<Attended>,
    pub research: BTreeSet<Attended>,
}

/// What a count counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Measure {
    /// People who took part (`reach`).
    Reach,
    /// Teachers attending docentprofessionalisering (`kpi_measures`).
    TeachersProfessionalised,
}

impl Measure {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Reach => "reach",
            Self::TeachersProfessionalised => "teachers_professionalised",
        }
    }
}

/// A group people are counted in: measure, hub, school year, and (for reach)
/// sector, band and role.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Group {
    pub measure: Measure,
    pub hub_id: String,
    pub school_year: String,
    pub sector: Option<String>,
    pub band: Option<&'static str>,
    pub role: Option<String>,
}

/// The groups one attendance puts its person in, as the views count: reach by the
/// attendance's role or else the registration's; teachers when a teacher attends a
/// docentprofessionalisering activity (`training`: hub and activity id).
fn groups_of<'a>(
    profile: &'a Profile,
    attended: &'a Attended,
    training: &'a HashSet<(String, String)>,
) -> impl Iterator<Item = Group> + 'a {
    let role = attended.role.clone().or_else(|| profile.role.clone());
    let reach = Group {
        measure: Measure::Reach,
        hub_id: attended.hub_id.clone(),
        school_year: attended.school_year.clone(),
        sector: profile.sector.clone(),
        band: profile.band(),
        role: role.clone(),
    };
    let teacher = role.as_deref() == Some("teacher")
        && training.contains(&(attended.hub_id.clone(), attended.activity_id.clone()));
    let trained = teacher.then(|| Group {
        measure: Measure::TeachersProfessionalised,
        hub_id: attended.hub_id.clone(),
        school_year: attended.school_year.clone(),
        sector: None,
        band: None,
        role: None,
    });
    std::iter::once(reach).chain(trained)
}

/// People per group among the persons whose rows were withheld: each person once
/// per group their withheld attendances put them in, unless their research rows
/// count them there already.
pub fn counts<'a>(
    persons: impl IntoIterator<Item = &'a WithheldPerson>,
    training: &HashSet<(String, String)>,
) -> BTreeMap<Group, i64> {
    let mut counts = BTreeMap::new();
    for person in persons {
        let in_research: HashSet<Group> = person
            .research
            .iter()
            .flat_map(|a| groups_of(&person.profile, a, training))
            .collect();
        let withheld: HashSet<Group> = person
            .withheld
            .iter()
            .flat_map(|a| groups_of(&person.profile, a, training))
            .filter(|g| !in_research.contains(g))
            .collect();
        for group in withheld {
            *counts.entry(group).or_insert(0) += 1;
        }
    }
    counts
}

/// The counts as rows of [`WITHHELD_COUNTS`], in the groups' order.
pub fn counts_batch(counts: &BTreeMap<Group, i64>) -> Result<RecordBatch, ArrowError> {
    let text = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as ArrayRef;
    let groups: Vec<&Group> = counts.keys().collect();
    RecordBatch::try_new(
        WITHHELD_COUNTS.arrow_schema(),
        vec![
            text(groups.iter().map(|g| Some(g.measure.as_str())).collect()),
            text(groups.iter().map(|g| Some(g.hub_id.as_str())).collect()),
            text(
                groups
                    .iter()
                    .map(|g| Some(g.school_year.as_str()))
                    .collect(),
            ),
            text(groups.iter().map(|g| g.sector.as_deref()).collect()),
            text(groups.iter().map(|g| g.band).collect()),
            text(groups.iter().map(|g| g.role.as_deref()).collect()),
            Arc::new(Int64Array::from_iter_values(counts.values().copied())),
            Arc::new(Int32Array::from_iter(groups.iter().map(|g| {
                SchoolYear::parse(&g.school_year).map(|year| year.start)
            }))),
        ],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn said(at_micros: i64, offset: u64) -> Said {
        Said {
            at_micros,
            partition: 0,
            offset,
        }
    }

    #[test]
    fn the_rule_per_table_and_consent() {
        use PersonRows::*;
        let all = [
            Participants,
            Attendances,
            SurveyAnswers,
            ProfileChoices,
            TrajectoryEvents,
            Ambassadors,
        ];
        for table in all {
            assert_eq!(row_use(table, Some(Consent::Given)), RowUse::Research);
            assert_eq!(row_use(table, None), RowUse::Research);
        }
        let refused: Vec<RowUse> = all
            .iter()
            .map(|t| row_use(*t, Some(Consent::Refused)))
            .collect();
        assert_eq!(
            refused,
            [
                RowUse::Withheld,
                RowUse::Withheld,
                RowUse::WithoutPerson,
                RowUse::WithoutPerson,
                RowUse::Dropped,
                RowUse::Research
            ]
        );
        assert_eq!(PersonRows::of("activities"), None);
        assert_eq!(PersonRows::of("attendances"), Some(Attendances));
    }

    #[test]
    fn the_latest_statement_counts() {
        let yes = Statement {
            research: true,
            said: said(10, 5),
        };
        let no = Statement {
            research: false,
            said: said(20, 1),
        };
        assert_eq!(yes.latest(Some(no)).consent(), Consent::Refused);
        assert_eq!(no.latest(Some(yes)).consent(), Consent::Refused);
        assert_eq!(yes.latest(None).consent(), Consent::Given);
        // The same time: the later log position.
        let again = Statement {
            research: true,
            said: said(20, 2),
        };
        assert_eq!(no.latest(Some(again)).consent(), Consent::Given);
    }

    fn attended(hub: &str, year: &str, activity: &str, role: Option<&str>) -> Attended {
        Attended {
            hub_id: hub.into(),
            school_year: year.into(),
            activity_id: activity.into(),
            role: role.map(String::from),
        }
    }

    fn reach(hub: &str, year: &str, sector: &str, band: Option<&'static str>, role: &str) -> Group {
        Group {
            measure: Measure::Reach,
            hub_id: hub.into(),
            school_year: year.into(),
            sector: Some(sector.into()),
            band,
            role: Some(role.into()),
        }
    }

    #[test]
    fn each_person_once_per_group() {
        let pupil = WithheldPerson {
            profile: Profile {
                sector: Some("PO".into()),
                groep: Some(7),
                role: Some("pupil".into()),
            },
            withheld: [
                attended("h1", "2024/25", "a1", None),
                attended("h1", "2024/25", "a2", None),
                attended("h1", "2025/26", "a3", None),
                attended("h2", "2024/25", "a9", Some("parent")),
            ]
            .into(),
            research: BTreeSet::new(),
        };
        let teacher = WithheldPerson {
            profile: Profile {
                sector: Some("VO".into()),
                groep: None,
                role: Some("teacher".into()),
            },
            withheld: [
                attended("h1", "2024/25", "training", None),
                attended("h1", "2024/25", "training-2", None),
                attended("h1", "2024/25", "a1", None),
            ]
            .into(),
            research: BTreeSet::new(),
        };
        let training: HashSet<(String, String)> = [
            ("h1".to_string(), "training".to_string()),
            ("h1".to_string(), "training-2".to_string()),
        ]
        .into();
        let counted = counts([&pupil, &teacher, &pupil.clone()], &training);
        let g78 = Some("groep_7_8");
        let trained = Group {
            measure: Measure::TeachersProfessionalised,
            hub_id: "h1".into(),
            school_year: "2024/25".into(),
            sector: None,
            band: None,
            role: None,
        };
        let expected: BTreeMap<Group, i64> = [
            (reach("h1", "2024/25", "PO", g78, "pupil"), 2),
            (reach("h1", "2025/26", "PO", g78, "pupil"), 2),
            (reach("h2", "2024/25", "PO", g78, "parent"), 2),
            (reach("h1", "2024/25", "VO", None, "teacher"), 1),
            (trained, 1),
        ]
        .into();
        assert_eq!(counted, expected);
    }

    #[test]
    fn research_rows_are_not_counted_again() {
        let mut person = WithheldPerson {
            profile: Profile {
                sector: Some("VO".into()),
                groep: None,
                role: Some("pupil".into()),
            },
            withheld: [
                attended("h1", "2024/25", "a1", None),
                attended("h1", "2025/26", "a2", None),
            ]
            .into(),
            research: [attended("h1", "2025/26", "a7", None)].into(),
        };
        let counted = counts([&person], &HashSet::new());
        assert_eq!(
            counted,
            [(reach("h1", "2024/25", "VO", None, "pupil"), 1)].into()
        );
        person.research.clear();
        assert_eq!(counts([&person], &HashSet::new()).len(), 2);
    }

    #[test]
    fn profiles_keep_the_greatest_of_every_registration() {
        let mut profile = Profile {
            sector: Some("PO".into()),
            groep: Some(5),
            role: Some("pupil".into()),
        };
        profile.merge(&Profile {
            sector: None,
            groep: Some(7),
            role: Some("parent".into()),
        });
        assert_eq!(
            profile,
            Profile {
                sector: Some("PO".into()),
                groep: Some(7),
                role: Some("pupil".into())
            }
        );
        assert_eq!(profile.band(), Some("groep_7_8"));
        profile.merge(&Profile {
            sector: Some("VO".into()),
            groep: None,
            role: Some("teacher".into()),
        });
        assert_eq!(profile.band(), None);
        assert_eq!(profile.role.as_deref(), Some("teacher"));
    }
}
