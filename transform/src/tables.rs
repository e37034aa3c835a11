//! The research lake's tables: their columns, and how an event becomes a row.
//!
//! Only what research needs is carried: participants are pseudonyms; names, e-mail
//! addresses, phone numbers, street addresses, pupil numbers and free text are
//! dropped; birth dates become birth years and postcodes PC4.

use std::borrow::Cow;
use std::sync::Arc;

use chrono::{DateTime, TimeZone};
use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use techmon_schemas::codes::SchoolYear;
use techmon_schemas::{Event, Payload, WithdrawalSubject};

use crate::pseudonym::{Person, PseudonymKey, birth_year, pc4};

/// A column's type, as few as the tables need.
#[derive(Debug, Clone, Copy)]
enum Column {
    Text,
    Int,
    BigInt,
    Real,
    Flag,
    Time,
    IntList,
    TextList,
}

/// One lake table.
pub struct Table {
    pub name: &'static str,
    pub description: &'static str,
    /// Columns after the common ones, with whether they may be null.
    columns: &'static [(&'static str, Column, bool)],
}

/// The columns every table starts with.
const COMMON: &[(&str, Column, bool)] = &[
    ("event_id", Column::Text, false),
    ("hub_id", Column::Text, false),
    ("occurred_at", Column::Time, false),
    ("school_year", Column::Text, false),
    ("log_partition", Column::Int, false),
    ("log_offset", Column::BigInt, false),
];

/// Columns of [`COMMON`] whose values (almost) never repeat within a table.
pub const UNIQUE_COLUMNS: &[&str] = &["event_id", "occurred_at", "log_offset"];

/// The partition column of every table.
pub const PARTITION_COLUMN: &str = "school_year";

pub const TABLES: &[Table] = &[
    Table {
        name: "activities",
        description: "Activities held by the hubs (activity_held).",
        columns: &[
            ("activity_id", Column::Text, false),
            ("activity_type", Column::Text, false),
            ("title", Column::Text, false),
            ("starts_at", Column::Time, false),
            ("ends_at", Column::Time, false),
            ("duration_minutes", Column::Int, true),
            ("worlds", Column::IntList, true),
            ("target_groups", Column::TextList, true),
            ("location", Column::Text, true),
            ("partner_organisations", Column::TextList, true),
        ],
    },
    Table {
        name: "group_participations",
        description: "Groups (school classes) taking part in an activity, with counts by gender (group_participated).",
        columns: &[
            ("activity_id", Column::Text, false),
            ("school_brin6", Column::Text, true),
            ("sector", Column::Text, false),
            ("groep", Column::Int, true),
            ("leerjaar", Column::Int, true),
            ("onderwijstype", Column::Text, true),
            ("participants_girls", Column::Int, false),
            ("participants_boys", Column::Int, false),
            ("participants_other", Column::Int, false),
            ("participants_total", Column::Int, false),
            ("accompanying_teachers", Column::Int, false),
        ],
    },
    Table {
        name: "participants",
        description: "Individual registrations, pseudonymised (participant_registered).",
        columns: &[
            ("participant_pseudonym", Column::Text, false),
            ("pseudonym_key_id", Column::Text, false),
            ("birth_year", Column::Int, true),
            ("pc4", Column::Text, true),
            ("school_brin6", Column::Text, true),
            ("sector", Column::Text, true),
            ("groep", Column::Int, true),
            ("leerjaar", Column::Int, true),
            ("onderwijstype", Column::Text, true),
            ("gender", Column::Text, false),
            ("role", Column::Text, false),
            ("consent_research", Column::Flag, false),
        ],
    },
    Table {
        name: "attendances",
        description: "Individual attendance of an activity, pseudonymised (participant_attended).",
        columns: &[
            ("activity_id", Column::Text, false),
            ("participant_pseudonym", Column::Text, false),
            ("pseudonym_key_id", Column::Text, false),
            ("role", Column::Text, true),
        ],
    },
    Table {
        name: "survey_answers",
        description: "Satisfaction scores, also converted to a 10-point scale (survey_answered).",
        columns: &[
            ("activity_id", Column::Text, false),
            ("participant_pseudonym", Column::Text, true),
            ("pseudonym_key_id", Column::Text, true),
            ("respondent_role", Column::Text, false),
            ("score", Column::Real, false),
            ("scale_max", Column::Int, false),
            ("score_of_10", Column::Real, false),
        ],
    },
    Table {
        name: "profile_choices",
        description: "VO profile choices, per pupil (pseudonymised) or as a count (profile_chosen).",
        columns: &[
            ("school_brin6", Column::Text, false),
            ("leerjaar", Column::Int, false),
            ("onderwijstype", Column::Text, false),
            ("profile_code", Column::Text, false),
            ("technical", Column::Flag, false),
            ("participant_pseudonym", Column::Text, true),
            ("pseudonym_key_id", Column::Text, true),
            ("pupils", Column::Int, false),
        ],
    },
    Table {
        name: "partner_events",
        description: "Organisations joining or leaving a hub (partner_joined, partner_left).",
        columns: &[
            ("partner_id", Column::Text, false),
            ("change", Column::Text, false),
            ("organisation_name", Column::Text, true),
            ("organisation_kind", Column::Text, true),
            ("contribution", Column::Text, true),
        ],
    },
    Table {
        name: "ambassadors",
        description: "People committed as hub ambassadors, pseudonymised (ambassador_committed).",
        columns: &[
            ("ambassador_pseudonym", Column::Text, false),
            ("pseudonym_key_id", Column::Text, false),
            ("organisation_name", Column::Text, true),
        ],
    },
    Table {
        name: "trajectory_events",
        description: "Adult work-learning routes starting and ending (trajectory_started, trajectory_ended).",
        columns: &[
            ("trajectory_id", Column::Text, false),
            ("participant_pseudonym", Column::Text, false),
            ("pseudonym_key_id", Column::Text, false),
            ("change", Column::Text, false),
            ("route", Column::Text, true),
            ("employer", Column::Text, true),
            ("outcome", Column::Text, true),
        ],
    },
];

/// The counts kept of people whose registration refused research use (see
/// [`crate::consent`]): rewritten whole whenever they change.
pub struct CountsTable {
    pub name: &'static str,
    pub description: &'static str,
}

pub const WITHHELD_COUNTS: CountsTable = CountsTable {
    name: "participation_without_consent",
    description: "People without research consent, as counts only: per measure ('reach': took part, by sector, PO groep band and role, as the reach view counts individuals; 'teachers_professionalised': teachers attending docentprofessionalisering), hub and school year, each person once per group. The KPI views add them; their rows never reach the other tables.",
};

impl CountsTable {
    pub fn arrow_schema(&self) -> SchemaRef {
        let text = |name: &str, nullable| Field::new(name, DataType::Utf8, nullable);
        Arc::new(Schema::new(vec![
            text("measure", false),
            text("hub_id", false),
            text("school_year", false),
            text("sector", true),
            text("band", true),
            text("role", true),
            Field::new("people", DataType::Int64, false),
        ]))
    }

    /// The counts as one batch, in the groups' order.
    pub fn batch(
        &self,
        counts: &std::collections::BTreeMap<crate::consent::Group, i64>,
    ) -> Result<deltalake::arrow::array::RecordBatch, deltalake::arrow::error::ArrowError> {
        use deltalake::arrow::array::{ArrayRef, Int64Array, StringArray};
        let text = |values: Vec<Option<&str>>| Arc::new(StringArray::from(values)) as ArrayRef;
        let groups: Vec<&crate::consent::Group> = counts.keys().collect();
        deltalake::arrow::array::RecordBatch::try_new(
            self.arrow_schema(),
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
            ],
        )
    }
}

/// Columns that hold the pseudonym of the person a row is about.
pub(crate) const PERSON_COLUMNS: &[&str] = &["participant_pseudonym", "ambassador_pseudonym"];

/// Tables with a person's pseudonym (see [`Table::person_column`]), with the
/// column's name: where consent withdrawal erases.
pub fn person_tables() -> impl Iterator<Item = (&'static Table, &'static str)> {
    TABLES
        .iter()
        .filter_map(|t| t.person_column().map(|(_, name)| (t, name)))
}

impl Table {
    /// The column holding the pseudonym of the person a row is about (a participant
    /// or an ambassador), if any: its position among the table's columns, and its
    /// name. [`row`] leaves it null; the transform fills it in.
    pub fn person_column(&self) -> Option<(usize, &'static str)> {
        COMMON
            .iter()
            .chain(self.columns)
            .enumerate()
            .find(|(_, (name, ..))| PERSON_COLUMNS.contains(name))
            .map(|(position, (name, ..))| (position, *name))
    }

    pub fn arrow_schema(&self) -> SchemaRef {
        let field = |(name, column, nullable): &(&str, Column, bool)| {
            let data_type = match column {
                Column::Text => DataType::Utf8,
                Column::Int => DataType::Int32,
                Column::BigInt => DataType::Int64,
                Column::Real => DataType::Float64,
                Column::Flag => DataType::Boolean,
                Column::Time => DataType::Timestamp(TimeUnit::Microsecond, Some("UTC".into())),
                Column::IntList => {
                    DataType::List(Arc::new(Field::new("item", DataType::Int32, true)))
                }
                Column::TextList => {
                    DataType::List(Arc::new(Field::new("item", DataType::Utf8, true)))
                }
            };
            Field::new(*name, data_type, *nullable)
        };
        Arc::new(Schema::new(
            COMMON
                .iter()
                .chain(self.columns)
                .map(field)
                .collect::<Vec<_>>(),
        ))
    }
}

/// What the transform needs to know beyond the event to make its row.
pub struct RowContext<'a> {
    pub key: &'a PseudonymKey,
    pub partition: u32,
    pub offset: u64,
}

/// Who an event is about, as far as the event itself tells.
#[derive(Debug)]
pub enum Subject {
    Nobody,
    /// A registration: the pseudonym of what the hub registered, which later events
    /// with the same reference link to.
    Registered {
        hub_id: String,
        reference: String,
        pseudonym: String,
    },
    /// A participant known by the hub's reference only (see [`referenced_participant`]).
    Referenced {
        hub_id: String,
        reference: String,
    },
    /// An ambassador: pseudonyms of their own, from the hub's ambassador reference.
    Ambassador {
        pseudonym: String,
    },
}

/// The pseudonym of a hub's ambassador.
pub(crate) fn ambassador_pseudonym(key: &PseudonymKey, hub_id: &str, reference: &str) -> String {
    key.pseudonym("ambassador", &format!("{hub_id}:{reference}"))
}

/// Who `event` is about.
pub fn subject(event: &Event, key: &PseudonymKey) -> Subject {
    let referenced = |reference: &str| Subject::Referenced {
        hub_id: event.hub_id.clone(),
        reference: reference.to_string(),
    };
    match &event.payload {
        Payload::ParticipantRegistered(p) => Subject::Registered {
            hub_id: event.hub_id.clone(),
            reference: p.participant_ref.clone(),
            pseudonym: key.participant(
                &event.hub_id,
                Person {
                    reference: &p.participant_ref,
                    email: p.email.as_deref(),
                    name: Some(&p.name),
                    birth_date: p.birth_date,
                },
            ),
        },
        Payload::ParticipantAttended(a) => referenced(&a.participant_ref),
        Payload::SurveyAnswered(s) => s
            .participant_ref
            .as_deref()
            .map_or(Subject::Nobody, referenced),
        Payload::ProfileChosen(p) => p
            .participant_ref
            .as_deref()
            .map_or(Subject::Nobody, referenced),
        Payload::TrajectoryStarted(t) => referenced(&t.participant_ref),
        Payload::TrajectoryEnded(t) => referenced(&t.participant_ref),
        Payload::ConsentWithdrawn(c) => match c.subject {
            WithdrawalSubject::Participant => referenced(&c.participant_ref),
            WithdrawalSubject::Ambassador => Subject::Ambassador {
                pseudonym: ambassador_pseudonym(key, &event.hub_id, &c.participant_ref),
            },
        },
        Payload::AmbassadorCommitted(a) => Subject::Ambassador {
            pseudonym: ambassador_pseudonym(key, &event.hub_id, &a.ambassador_ref),
        },
        _ => Subject::Nobody,
    }
}

/// A participant known by reference only: the pseudonym of their registration when the
/// transform saw it (`linked`), else one from the hub's reference.
pub fn referenced_participant(
    key: &PseudonymKey,
    linked: Option<String>,
    hub_id: &str,
    reference: &str,
) -> String {
    linked.unwrap_or_else(|| {
        key.participant(
            hub_id,
            Person {
                reference,
                email: None,
                name: None,
                birth_date: None,
            },
        )
    })
}

/// One value of a row, typed as its column (see [`Table::arrow_schema`]). Text
/// borrows from the event where it can: a row lives only until it is appended to
/// its table's columns, so a copy of each text would be allocated for nothing.
#[derive(Debug, Clone, PartialEq)]
pub enum Cell<'a> {
    Null,
    Text(Cow<'a, str>),
    /// An id, written as text (hyphenated, lower case) straight into its column.
    Id(uuid::Uuid),
    /// A school year, written as text (`2024/25`) straight into its column.
    SchoolYear(SchoolYear),
    Int(i64),
    Real(f64),
    Flag(bool),
    /// Microseconds since the epoch, UTC.
    Time(i64),
    Ints(Vec<i64>),
    Texts(Vec<&'a str>),
}

impl<'a> From<&'a str> for Cell<'a> {
    fn from(v: &'a str) -> Self {
        Cell::Text(Cow::Borrowed(v))
    }
}
impl<'a> From<&'a String> for Cell<'a> {
    fn from(v: &'a String) -> Self {
        Cell::Text(Cow::Borrowed(v))
    }
}
impl From<String> for Cell<'_> {
    fn from(v: String) -> Self {
        Cell::Text(Cow::Owned(v))
    }
}
macro_rules! int_cells {
    ($($t:ty),*) => {$(
        impl From<$t> for Cell<'_> {
            fn from(v: $t) -> Self {
                Cell::Int(i64::from(v))
            }
        }
    )*};
}
int_cells!(u8, u32, i32);
impl From<u64> for Cell<'_> {
    fn from(v: u64) -> Self {
        // Saturates: log offsets never get there, and an Int column refuses it.
        Cell::Int(i64::try_from(v).unwrap_or(i64::MAX))
    }
}
impl From<f64> for Cell<'_> {
    fn from(v: f64) -> Self {
        Cell::Real(v)
    }
}
impl From<bool> for Cell<'_> {
    fn from(v: bool) -> Self {
        Cell::Flag(v)
    }
}
impl<Zone: TimeZone> From<DateTime<Zone>> for Cell<'_> {
    fn from(v: DateTime<Zone>) -> Self {
        Cell::Time(v.timestamp_micros())
    }
}
impl<'a, T: Into<Cell<'a>>> From<Option<T>> for Cell<'a> {
    fn from(v: Option<T>) -> Self {
        v.map_or(Cell::Null, Into::into)
    }
}

/// A row: one cell per column of its table, in the table's column order.
#[derive(Debug, Clone, PartialEq)]
pub struct Row<'a>(pub Vec<Cell<'a>>);

/// The row an event adds, and its table; `None` for a consent withdrawal, the one
/// kind that adds no row (it erases). The person's pseudonym is left null: it depends
/// on the registrations and withdrawals before the event (see [`Subject`]), and it is
/// filled in as the rows are put in the log's order.
pub fn row<'a>(
    event: &'a Event,
    ctx: &RowContext<'a>,
) -> Result<Option<(usize, Row<'a>)>, crate::TransformError> {
    // By the date in the Netherlands, whatever offset the hub sent.
    let occurred = techmon_schemas::time::dutch_date(&event.occurred_at);
    let mut school_year = SchoolYear::containing(occurred);
    let key_id = ctx.key.id();
    let person = Cell::Null;
    // Cells after the common ones, in the order of the table's columns.
    let (table, cells): (&str, Vec<Cell>) = match &event.payload {
        Payload::ActivityHeld(a) => (
            "activities",
            vec![
                (&a.activity_id).into(),
                a.activity_type.as_str().into(),
                (&a.title).into(),
                a.starts_at.into(),
                a.ends_at.into(),
                a.duration_minutes.into(),
                Cell::Ints(a.worlds.iter().map(|w| i64::from(*w)).collect()),
                Cell::Texts(a.target_groups.iter().map(|t| t.as_str()).collect()),
                a.location.as_ref().into(),
                Cell::Texts(a.partner_organisations.iter().map(String::as_str).collect()),
            ],
        ),
        Payload::GroupParticipated(g) => {
            school_year = g.school_year;
            (
                "group_participations",
                vec![
                    (&g.activity_id).into(),
                    g.school_brin6.as_ref().into(),
                    g.sector.as_str().into(),
                    g.groep.into(),
                    g.leerjaar.into(),
                    g.onderwijstype.map(|o| o.as_str()).into(),
                    g.participants.girls.into(),
                    g.participants.boys.into(),
                    g.participants.other.into(),
                    g.participants.total().into(),
                    g.accompanying_teachers.into(),
                ],
            )
        }
        Payload::ParticipantRegistered(p) => (
            "participants",
            vec![
                person,
                key_id.into(),
                p.birth_date.map(birth_year).into(),
                p.postcode.as_deref().and_then(pc4).into(),
                p.school_brin6.as_ref().into(),
                p.sector.map(|s| s.as_str()).into(),
                p.groep.into(),
                p.leerjaar.into(),
                p.onderwijstype.map(|o| o.as_str()).into(),
                p.gender.as_str().into(),
                p.role.as_str().into(),
                p.consent_research.into(),
            ],
        ),
        Payload::ParticipantAttended(a) => (
            "attendances",
            vec![
                (&a.activity_id).into(),
                person,
                key_id.into(),
                a.role.map(|r| r.as_str()).into(),
            ],
        ),
        Payload::SurveyAnswered(s) => (
            "survey_answers",
            vec![
                (&s.activity_id).into(),
                person,
                s.participant_ref.as_ref().map(|_| key_id).into(),
                s.respondent_role.as_str().into(),
                s.score.into(),
                s.scale_max.value().into(),
                s.score_of_10().into(),
            ],
        ),
        Payload::ProfileChosen(p) => {
            school_year = p.school_year;
            (
                "profile_choices",
                vec![
                    (&p.school_brin6).into(),
                    p.leerjaar.into(),
                    p.onderwijstype.as_str().into(),
                    (&p.profile_code).into(),
                    p.profile().is_some_and(|pr| pr.technical).into(),
                    person,
                    p.participant_ref.as_ref().map(|_| key_id).into(),
                    p.count.into(),
                ],
            )
        }
        Payload::PartnerJoined(p) => (
            "partner_events",
            vec![
                (&p.partner_id).into(),
                "joined".into(),
                (&p.organisation_name).into(),
                p.organisation_kind.as_str().into(),
                p.contribution.map(|c| c.as_str()).into(),
            ],
        ),
        Payload::PartnerLeft(p) => (
            "partner_events",
            vec![
                (&p.partner_id).into(),
                "left".into(),
                Cell::Null,
                Cell::Null,
                Cell::Null,
            ],
        ),
        Payload::AmbassadorCommitted(a) => (
            "ambassadors",
            vec![person, key_id.into(), a.organisation_name.as_ref().into()],
        ),
        Payload::TrajectoryStarted(t) => (
            "trajectory_events",
            vec![
                (&t.trajectory_id).into(),
                person,
                key_id.into(),
                "started".into(),
                (&t.route).into(),
                t.employer.as_ref().into(),
                Cell::Null,
            ],
        ),
        Payload::TrajectoryEnded(t) => (
            "trajectory_events",
            vec![
                (&t.trajectory_id).into(),
                person,
                key_id.into(),
                "ended".into(),
                Cell::Null,
                Cell::Null,
                t.outcome.as_str().into(),
            ],
        ),
        Payload::ConsentWithdrawn(_) => return Ok(None),
    };
    let table = TABLES
        .iter()
        .position(|t| t.name == table)
        .ok_or(crate::TransformError::UnknownTable(table))?;
    let mut row = Vec::with_capacity(COMMON.len() + cells.len());
    row.extend([
        Cell::Id(event.event_id),
        (&event.hub_id).into(),
        event.occurred_at.into(),
        Cell::SchoolYear(school_year),
        ctx.partition.into(),
        ctx.offset.into(),
    ]);
    row.extend(cells);
    Ok(Some((table, Row(row))))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The school year of the row an activity held at `occurred_at` adds.
    fn school_year_of(occurred_at: &str) -> String {
        let event = techmon_schemas::read_event(
            serde_json::json!({
                "event_id": uuid::Uuid::new_v4(), "event_type": "activity_held",
                "schema_version": 1, "hub_id": "tec-deventer",
                "occurred_at": occurred_at, "sent_at": "2024-08-02T10:00:00+02:00",
                "payload": {"activity_id": "a", "activity_type": "workshop", "title": "Solderen",
                            "starts_at": occurred_at, "ends_at": occurred_at,
                            "worlds": [6], "target_groups": ["vo"]}
            })
            .to_string()
            .as_bytes(),
        )
        .expect("a valid event");
        let key = PseudonymKey::new("k1", vec![7; 32]).expect("key");
        let ctx = RowContext {
            key: &key,
            partition: 0,
            offset: 0,
        };
        let (_, Row(cells)) = row(&event, &ctx).expect("a table").expect("a row");
        match &cells[3] {
            Cell::SchoolYear(year) => year.to_string(),
            other => panic!("school_year is {other:?}"),
        }
    }

    #[test]
    fn the_school_year_goes_by_the_date_in_the_netherlands() {
        // 00:30 on 1 August in the Netherlands, sent in UTC or another offset.
        assert_eq!(school_year_of("2024-07-31T22:30:00Z"), "2024/25");
        assert_eq!(school_year_of("2024-07-31T17:30:00-05:00"), "2024/25");
        assert_eq!(school_year_of("2024-08-01T00:30:00+02:00"), "2024/25");
        // 23:59 on 31 July there.
        assert_eq!(school_year_of("2024-07-31T21:59:00Z"), "2023/24");
        assert_eq!(school_year_of("2024-08-01T06:59:00+09:00"), "2023/24");
    }
}
