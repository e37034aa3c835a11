//! The research lake's tables: their columns, and how an event becomes a row.
//!
//! Only what research needs is carried: participants are pseudonyms; names, e-mail
//! addresses, phone numbers, street addresses, pupil numbers and free text are
//! dropped; birth dates become birth years and postcodes PC4.

use std::sync::Arc;

use deltalake::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use serde_json::{Map, Value, json};
use techmon_schemas::codes::SchoolYear;
use techmon_schemas::{Event, Payload};

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

/// Tables with a participant pseudonym column: where consent withdrawal erases.
pub fn participant_tables() -> impl Iterator<Item = &'static Table> {
    TABLES.iter().filter(|t| {
        t.columns
            .iter()
            .any(|(c, ..)| *c == "participant_pseudonym")
    })
}

pub fn table(name: &str) -> Option<&'static Table> {
    TABLES.iter().find(|t| t.name == name)
}

impl Table {
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
    /// The pseudonym of a hub's participant reference, from an earlier registration.
    pub linked: &'a dyn Fn(&str, &str) -> Option<String>,
}

/// A participant known by reference only: the pseudonym of their registration when the
/// transform saw it, else one from the hub's reference.
pub fn referenced_participant(
    key: &PseudonymKey,
    linked: &dyn Fn(&str, &str) -> Option<String>,
    hub_id: &str,
    reference: &str,
) -> String {
    linked(hub_id, reference).unwrap_or_else(|| {
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

/// The row an event adds, and its table; `None` for events that add no row
/// (consent withdrawals, handled by erasure).
pub fn row(event: &Event, ctx: &RowContext<'_>) -> Option<(&'static str, Map<String, Value>)> {
    let occurred = event.occurred_at.date_naive();
    let mut school_year = SchoolYear::containing(occurred);
    let key_id = ctx.key.id();
    let participant =
        |reference: &str| referenced_participant(ctx.key, ctx.linked, &event.hub_id, reference);
    let (table, columns): (&str, Value) = match &event.payload {
        Payload::ActivityHeld(a) => (
            "activities",
            json!({
                "activity_id": a.activity_id, "activity_type": a.activity_type.as_str(), "title": a.title,
                "starts_at": a.starts_at.to_rfc3339(), "ends_at": a.ends_at.to_rfc3339(),
                "duration_minutes": a.duration_minutes, "worlds": a.worlds,
                "target_groups": a.target_groups.iter().map(|t| t.as_str()).collect::<Vec<_>>(),
                "location": a.location, "partner_organisations": a.partner_organisations,
            }),
        ),
        Payload::GroupParticipated(g) => {
            school_year = g.school_year;
            (
                "group_participations",
                json!({
                    "activity_id": g.activity_id, "school_brin6": g.school_brin6, "sector": g.sector.as_str(),
                    "groep": g.groep, "leerjaar": g.leerjaar, "onderwijstype": g.onderwijstype.map(|o| o.as_str()),
                    "participants_girls": g.participants.girls, "participants_boys": g.participants.boys,
                    "participants_other": g.participants.other, "participants_total": g.participants.total(),
                    "accompanying_teachers": g.accompanying_teachers,
                }),
            )
        }
        Payload::ParticipantRegistered(p) => {
            let person = Person {
                reference: &p.participant_ref,
                email: p.email.as_deref(),
                name: Some(&p.name),
                birth_date: p.birth_date,
            };
            (
                "participants",
                json!({
                    "participant_pseudonym": ctx.key.participant(&event.hub_id, person), "pseudonym_key_id": key_id,
                    "birth_year": p.birth_date.map(birth_year), "pc4": p.postcode.as_deref().and_then(pc4),
                    "school_brin6": p.school_brin6, "sector": p.sector.map(|s| s.as_str()), "groep": p.groep,
                    "leerjaar": p.leerjaar, "onderwijstype": p.onderwijstype.map(|o| o.as_str()),
                    "gender": p.gender.as_str(), "role": p.role.as_str(), "consent_research": p.consent_research,
                }),
            )
        }
        Payload::ParticipantAttended(a) => (
            "attendances",
            json!({
                "activity_id": a.activity_id, "participant_pseudonym": participant(&a.participant_ref),
                "pseudonym_key_id": key_id, "role": a.role.map(|r| r.as_str()),
            }),
        ),
        Payload::SurveyAnswered(s) => (
            "survey_answers",
            json!({
                "activity_id": s.activity_id,
                "participant_pseudonym": s.participant_ref.as_deref().map(participant),
                "pseudonym_key_id": s.participant_ref.as_ref().map(|_| key_id),
                "respondent_role": s.respondent_role.as_str(), "score": s.score,
                "scale_max": s.scale_max.value(), "score_of_10": s.score_of_10(),
            }),
        ),
        Payload::ProfileChosen(p) => {
            school_year = p.school_year;
            (
                "profile_choices",
                json!({
                    "school_brin6": p.school_brin6, "leerjaar": p.leerjaar, "onderwijstype": p.onderwijstype.as_str(),
                    "profile_code": p.profile_code, "technical": p.profile().is_some_and(|pr| pr.technical),
                    "participant_pseudonym": p.participant_ref.as_deref().map(participant),
                    "pseudonym_key_id": p.participant_ref.as_ref().map(|_| key_id), "pupils": p.count,
                }),
            )
        }
        Payload::PartnerJoined(p) => (
            "partner_events",
            json!({
                "partner_id": p.partner_id, "change": "joined", "organisation_name": p.organisation_name,
                "organisation_kind": p.organisation_kind.as_str(), "contribution": p.contribution.map(|c| c.as_str()),
            }),
        ),
        Payload::PartnerLeft(p) => (
            "partner_events",
            json!({"partner_id": p.partner_id, "change": "left"}),
        ),
        Payload::AmbassadorCommitted(a) => (
            "ambassadors",
            json!({
                "ambassador_pseudonym": ctx.key.pseudonym("ambassador", &format!("{}:{}", event.hub_id, a.ambassador_ref)),
                "pseudonym_key_id": key_id, "organisation_name": a.organisation_name,
            }),
        ),
        Payload::TrajectoryStarted(t) => (
            "trajectory_events",
            json!({
                "trajectory_id": t.trajectory_id, "participant_pseudonym": participant(&t.participant_ref),
                "pseudonym_key_id": key_id, "change": "started", "route": t.route, "employer": t.employer,
            }),
        ),
        Payload::TrajectoryEnded(t) => (
            "trajectory_events",
            json!({
                "trajectory_id": t.trajectory_id, "participant_pseudonym": participant(&t.participant_ref),
                "pseudonym_key_id": key_id, "change": "ended", "outcome": t.outcome.as_str(),
            }),
        ),
        Payload::ConsentWithdrawn(_) => return None,
    };
    let Value::Object(mut row) = columns else {
        unreachable!("rows are built as objects")
    };
    row.insert("event_id".into(), json!(event.event_id.to_string()));
    row.insert("hub_id".into(), json!(event.hub_id));
    row.insert("occurred_at".into(), json!(event.occurred_at.to_rfc3339()));
    row.insert("school_year".into(), json!(school_year.to_string()));
    row.insert("log_partition".into(), json!(ctx.partition));
    row.insert("log_offset".into(), json!(ctx.offset));
    let table = TABLES.iter().find(|t| t.name == table).map(|t| t.name)?;
    Some((table, row))
}
