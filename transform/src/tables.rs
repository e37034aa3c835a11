//! How an event becomes a row of the lake's event tables ([`techmon_lake::tables`]).
//!
//! Only what research needs is carried: participants are pseudonyms; names, e-mail
//! addresses, phone numbers, street addresses, pupil numbers and free text are
//! dropped; birth dates become birth years and postcodes PC4.

use std::borrow::Cow;

use chrono::{DateTime, TimeZone};
use techmon_lake::tables::EVENT_TABLES;
use techmon_schemas::codes::SchoolYear;
use techmon_schemas::{Event, Payload, Subject as EventSubject};

use crate::pseudonym::{Person, PseudonymKey, birth_year, pc4};

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

/// Who `event` is about (see [`Event::subject`]), with the pseudonyms the event
/// itself gives.
pub fn subject(event: &Event, key: &PseudonymKey) -> Subject {
    match (event.subject(), &event.payload) {
        (EventSubject::Participant { hub, reference }, Payload::ParticipantRegistered(p)) => {
            Subject::Registered {
                hub_id: hub.to_string(),
                reference: reference.to_string(),
                pseudonym: key.participant(
                    hub,
                    Person {
                        reference,
                        email: p.email.as_deref(),
                        name: Some(&p.name),
                        birth_date: p.birth_date,
                    },
                ),
            }
        }
        (EventSubject::Participant { hub, reference }, _) => Subject::Referenced {
            hub_id: hub.to_string(),
            reference: reference.to_string(),
        },
        (EventSubject::Ambassador { hub, reference }, _) => Subject::Ambassador {
            pseudonym: ambassador_pseudonym(key, hub, reference),
        },
        (
            EventSubject::Activity { .. }
            | EventSubject::Partner { .. }
            | EventSubject::School { .. },
            _,
        ) => Subject::Nobody,
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

/// One value of a row, typed as its column (see [`techmon_lake::tables::Table::arrow_schema`]). Text
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

/// The row an event adds, and its table (the index in [`EVENT_TABLES`]); a consent
/// withdrawal, the one kind that adds no row (it erases), is an error. The person's pseudonym is left null: it depends
/// on the registrations and withdrawals before the event (see [`Subject`]), and it is
/// filled in as the rows are put in the log's order.
pub fn row<'a>(
    event: &'a Event,
    ctx: &RowContext<'a>,
) -> Result<(usize, Row<'a>), crate::TransformError> {
    let school_year = event.school_year();
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
        Payload::GroupParticipated(g) => (
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
        ),
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
        Payload::ProfileChosen(p) => (
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
        ),
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
        Payload::ConsentWithdrawn(_) => return Err(crate::TransformError::NoRow(event.kind())),
    };
    let table = EVENT_TABLES
        .iter()
        .position(|t| t.name == table)
        .ok_or(crate::TransformError::UnknownTable(table))?;
    let mut row = Vec::with_capacity(7 + cells.len());
    // The columns every event table starts with.
    row.extend([
        Cell::Id(event.event_id),
        (&event.hub_id).into(),
        event.occurred_at.into(),
        Cell::SchoolYear(school_year),
        ctx.partition.into(),
        ctx.offset.into(),
    ]);
    row.extend(cells);
    // The columns added since (`tables::ADDED_COLUMNS`), last.
    row.push(Cell::Int(school_year.start.into()));
    Ok((table, Row(row)))
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
        let (_, Row(cells)) = row(&event, &ctx).expect("a row");
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
