//! Rust types for techmon events, matching the JSON Schemas in `schemas/json/`
//! field for field. Serialising an [`Event`] produces JSON that validates against
//! the schema of its kind; deserialising rejects unknown fields.
//!
//! `Debug` output of payloads that carry personal data redacts the direct
//! identifiers, participant references and free text, so that a stray `{:?}` in a
//! log line does not leak them.

use std::fmt;

use chrono::{DateTime, FixedOffset, NaiveDate};
use serde::de::DeserializeSeed;
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::codes::{Profile, SchoolYear};
use crate::time::Rfc3339;

string_enum! {
    /// The kinds of event (`event_type`).
    pub enum EventKind {
        ActivityHeld => "activity_held",
        GroupParticipated => "group_participated",
        ParticipantRegistered => "participant_registered",
        ParticipantAttended => "participant_attended",
        SurveyAnswered => "survey_answered",
        ProfileChosen => "profile_chosen",
        PartnerJoined => "partner_joined",
        PartnerLeft => "partner_left",
        AmbassadorCommitted => "ambassador_committed",
        TrajectoryStarted => "trajectory_started",
        TrajectoryEnded => "trajectory_ended",
        ConsentWithdrawn => "consent_withdrawn",
    }
}

string_enum! {
    /// `activity_held.activity_type`.
    pub enum ActivityType {
        Proeverij => "proeverij",
        TecExperience => "tec_experience",
        Workshop => "workshop",
        Leskist => "leskist",
        Bedrijfsbezoek => "bedrijfsbezoek",
        Docentprofessionalisering => "docentprofessionalisering",
        Ouderbijeenkomst => "ouderbijeenkomst",
        Girlsday => "girlsday",
        Challenge => "challenge",
        Werkleerroute => "werkleerroute",
        Naschools => "naschools",
        Overig => "overig",
    }
}

string_enum! {
    /// `activity_held.target_groups`.
    pub enum TargetGroup {
        Po => "po",
        Vo => "vo",
        Mbo => "mbo",
        Hbo => "hbo",
        Teachers => "teachers",
        Parents => "parents",
        Adults => "adults",
        Other => "other",
    }
}

string_enum! {
    /// Education sector.
    pub enum Sector {
        Po => "PO",
        Vo => "VO",
        Mbo => "MBO",
        Hbo => "HBO",
        Other => "other",
    }
}

string_enum! {
    /// Type of education (onderwijstype) of a group or participant.
    pub enum Onderwijstype {
        VmboBb => "vmbo-bb",
        VmboKb => "vmbo-kb",
        VmboGl => "vmbo-gl",
        VmboTl => "vmbo-tl",
        Havo => "havo",
        Vwo => "vwo",
        Pro => "pro",
        Mbo1 => "mbo-1",
        Mbo2 => "mbo-2",
        Mbo3 => "mbo-3",
        Mbo4 => "mbo-4",
        Hbo => "hbo",
        Other => "other",
    }
}

string_enum! {
    /// The VO onderwijstypes in which a profile is chosen (`profile_chosen.onderwijstype`).
    pub enum VoOnderwijstype {
        VmboBb => "vmbo-bb",
        VmboKb => "vmbo-kb",
        VmboGl => "vmbo-gl",
        VmboTl => "vmbo-tl",
        Havo => "havo",
        Vwo => "vwo",
    }
}

impl From<VoOnderwijstype> for Onderwijstype {
    fn from(value: VoOnderwijstype) -> Self {
        match value {
            VoOnderwijstype::VmboBb => Onderwijstype::VmboBb,
            VoOnderwijstype::VmboKb => Onderwijstype::VmboKb,
            VoOnderwijstype::VmboGl => Onderwijstype::VmboGl,
            VoOnderwijstype::VmboTl => Onderwijstype::VmboTl,
            VoOnderwijstype::Havo => Onderwijstype::Havo,
            VoOnderwijstype::Vwo => Onderwijstype::Vwo,
        }
    }
}

string_enum! {
    /// `participant_registered.gender`.
    pub enum Gender {
        Female => "female",
        Male => "male",
        Other => "other",
        Unknown => "unknown",
    }
}

string_enum! {
    /// Role of a participant.
    pub enum Role {
        Pupil => "pupil",
        Student => "student",
        Teacher => "teacher",
        Parent => "parent",
        Adult => "adult",
    }
}

string_enum! {
    /// `survey_answered.respondent_role`.
    pub enum RespondentRole {
        Pupil => "pupil",
        Student => "student",
        Teacher => "teacher",
        Parent => "parent",
        Adult => "adult",
        Company => "company",
        Other => "other",
    }
}

string_enum! {
    /// `partner_joined.organisation_kind`.
    pub enum OrganisationKind {
        Company => "company",
        Education => "education",
        Government => "government",
        Foundation => "foundation",
        Other => "other",
    }
}

string_enum! {
    /// `partner_joined.contribution`.
    pub enum Contribution {
        Membership => "membership",
        Financial => "financial",
        InKind => "in_kind",
        Other => "other",
    }
}

string_enum! {
    /// `trajectory_ended.outcome`.
    pub enum Outcome {
        Work => "work",
        Education => "education",
        Returned => "returned",
        Dropped => "dropped",
    }
}

/// `survey_answered.scale_max`: the top of the score's scale (JSON: 5, 10 or 100).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ScaleMax {
    Five,
    Ten,
    Hundred,
}

impl ScaleMax {
    pub const ALL: &'static [ScaleMax] = &[ScaleMax::Five, ScaleMax::Ten, ScaleMax::Hundred];

    pub const fn value(self) -> u32 {
        match self {
            ScaleMax::Five => 5,
            ScaleMax::Ten => 10,
            ScaleMax::Hundred => 100,
        }
    }

    pub fn from_value(value: u64) -> Option<Self> {
        Self::ALL
            .iter()
            .copied()
            .find(|s| u64::from(s.value()) == value)
    }
}

impl Serialize for ScaleMax {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_u32(self.value())
    }
}

impl<'de> Deserialize<'de> for ScaleMax {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = ScaleMax;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("5, 10 or 100")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<ScaleMax, E> {
                ScaleMax::from_value(v).ok_or_else(|| E::custom("scale_max must be 5, 10 or 100"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<ScaleMax, E> {
                u64::try_from(v)
                    .ok()
                    .and_then(ScaleMax::from_value)
                    .ok_or_else(|| E::custom("scale_max must be 5, 10 or 100"))
            }
        }
        deserializer.deserialize_u64(Visitor)
    }
}

/// Prints a struct with some fields replaced by `<redacted>`.
macro_rules! redacted_debug {
    ($name:ident { plain: [$($plain:ident),* $(,)?], redacted: [$($secret:ident),* $(,)?] }) => {
        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                let mut s = f.debug_struct(stringify!($name));
                $( s.field(stringify!($plain), &self.$plain); )*
                $( s.field(stringify!($secret), &Redacted(self.$secret.is_some_or_present())); )*
                s.finish()
            }
        }
    };
}

/// Stand-in for a redacted value in `Debug` output.
struct Redacted(bool);

impl fmt::Debug for Redacted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(if self.0 { "<redacted>" } else { "None" })
    }
}

/// Whether a redacted field holds a value (to show `None` for absent options).
trait Presence {
    fn is_some_or_present(&self) -> bool;
}
impl Presence for String {
    fn is_some_or_present(&self) -> bool {
        true
    }
}
impl<T> Presence for Option<T> {
    fn is_some_or_present(&self) -> bool {
        self.is_some()
    }
}

fn one() -> u32 {
    1
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

/// An activity held by a hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ActivityHeld {
    pub activity_id: String,
    pub activity_type: ActivityType,
    pub title: String,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub starts_at: DateTime<FixedOffset>,
    #[serde(deserialize_with = "crate::time::deserialize")]
    pub ends_at: DateTime<FixedOffset>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duration_minutes: Option<u32>,
    /// Numbers of the zeven werelden van techniek (1 to 7), without repeats.
    pub worlds: Vec<u8>,
    pub target_groups: Vec<TargetGroup>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub location: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub partner_organisations: Vec<String>,
}

/// Participants of a group by gender.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Participants {
    pub girls: u32,
    pub boys: u32,
    /// Other or unknown gender; 0 when left out.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub other: u32,
}

impl Participants {
    pub fn total(&self) -> u64 {
        u64::from(self.girls) + u64::from(self.boys) + u64::from(self.other)
    }
}

/// A group took part in an activity (counts, no names).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GroupParticipated {
    pub activity_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_brin6: Option<String>,
    pub sector: Sector,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groep: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leerjaar: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onderwijstype: Option<Onderwijstype>,
    pub school_year: SchoolYear,
    pub participants: Participants,
    /// 0 when left out.
    #[serde(default)]
    pub accompanying_teachers: u32,
}

/// An individual participant was registered (personal data).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantRegistered {
    pub participant_ref: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub birth_date: Option<NaiveDate>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub postcode: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub street_address: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pupil_number: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub school_brin6: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sector: Option<Sector>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub groep: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leerjaar: Option<u8>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub onderwijstype: Option<Onderwijstype>,
    pub gender: Gender,
    pub role: Role,
    pub consent_research: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub notes: Option<String>,
}

redacted_debug!(ParticipantRegistered {
    plain: [
        school_brin6,
        sector,
        groep,
        leerjaar,
        onderwijstype,
        gender,
        role,
        consent_research
    ],
    redacted: [
        participant_ref,
        name,
        email,
        phone,
        birth_date,
        postcode,
        street_address,
        pupil_number,
        notes
    ]
});

/// A registered participant attended an activity.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ParticipantAttended {
    pub activity_id: String,
    pub participant_ref: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role: Option<Role>,
}

redacted_debug!(ParticipantAttended {
    plain: [activity_id, role],
    redacted: [participant_ref]
});

/// A satisfaction survey answer.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SurveyAnswered {
    pub activity_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_ref: Option<String>,
    pub respondent_role: RespondentRole,
    pub score: f64,
    pub scale_max: ScaleMax,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub comment: Option<String>,
}

redacted_debug!(SurveyAnswered {
    plain: [activity_id, respondent_role, score, scale_max],
    redacted: [participant_ref, comment]
});

impl SurveyAnswered {
    /// The score on a 10-point scale (4.5 of 5 is 9.0).
    pub fn score_of_10(&self) -> f64 {
        self.score * 10.0 / f64::from(self.scale_max.value())
    }
}

/// VO pupils chose a profile: one participant, or a count.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProfileChosen {
    pub school_brin6: String,
    pub school_year: SchoolYear,
    pub leerjaar: u8,
    pub onderwijstype: VoOnderwijstype,
    /// A code from [`crate::codes::profiles`].
    pub profile_code: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub participant_ref: Option<String>,
    /// Number of pupils; 1 when left out. Above 1 only without `participant_ref`.
    #[serde(default = "one")]
    pub count: u32,
}

redacted_debug!(ProfileChosen {
    plain: [
        school_brin6,
        school_year,
        leerjaar,
        onderwijstype,
        profile_code,
        count
    ],
    redacted: [participant_ref]
});

impl ProfileChosen {
    /// The chosen profile in the code list (always `Some` for a validated event).
    pub fn profile(&self) -> Option<&'static Profile> {
        crate::codes::profile(&self.profile_code)
    }
}

/// An organisation affiliated with the hub.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerJoined {
    pub partner_id: String,
    pub organisation_name: String,
    pub organisation_kind: OrganisationKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub contribution: Option<Contribution>,
}

/// A partner organisation left.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PartnerLeft {
    pub partner_id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

redacted_debug!(PartnerLeft {
    plain: [partner_id],
    redacted: [reason]
});

/// A person committed as ambassador (personal data).
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AmbassadorCommitted {
    pub ambassador_ref: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub email: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub organisation_name: Option<String>,
}

redacted_debug!(AmbassadorCommitted {
    plain: [organisation_name],
    redacted: [ambassador_ref, name, email]
});

/// An adult started a work-learning route.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajectoryStarted {
    pub trajectory_id: String,
    pub participant_ref: String,
    pub route: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub employer: Option<String>,
}

redacted_debug!(TrajectoryStarted {
    plain: [trajectory_id, route, employer],
    redacted: [participant_ref]
});

/// A work-learning route ended.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrajectoryEnded {
    pub trajectory_id: String,
    pub participant_ref: String,
    pub outcome: Outcome,
}

redacted_debug!(TrajectoryEnded {
    plain: [trajectory_id, outcome],
    redacted: [participant_ref]
});

/// A person withdrew consent: erase their data from every derived table.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsentWithdrawn {
    /// The hub's id for the person, of the kind `subject` says.
    pub participant_ref: String,
    /// Version 1 has no such field: its withdrawals are all participants'.
    #[serde(default, skip_serializing_if = "WithdrawalSubject::is_participant")]
    pub subject: WithdrawalSubject,
}

redacted_debug!(ConsentWithdrawn {
    plain: [subject],
    redacted: [participant_ref]
});

string_enum! {
    /// `consent_withdrawn.subject` (version 2): whose reference a withdrawal names.
    #[derive(Default)]
    pub enum WithdrawalSubject {
        #[default]
        Participant => "participant",
        Ambassador => "ambassador",
    }
}

impl WithdrawalSubject {
    fn is_participant(&self) -> bool {
        *self == Self::Participant
    }
}

macro_rules! payloads {
    ($($kind:ident),+ $(,)?) => {
        /// The kind-specific part of an event. Serialises as the bare payload object
        /// (the kind is the envelope's `event_type`).
        #[derive(Debug, Clone, PartialEq, Serialize)]
        #[serde(untagged)]
        pub enum Payload {
            $($kind($kind)),+
        }

        impl Payload {
            /// The event kind of this payload.
            pub fn kind(&self) -> EventKind {
                match self {
                    $(Payload::$kind(_) => EventKind::$kind),+
                }
            }

        }

        /// Reads the payload object of an event of the given kind.
        ///
        /// Errors from serde may quote values; do not pass them on to a client
        /// or a log (see [`crate::validate_event`], which never does).
        pub struct PayloadSeed(pub EventKind);

        impl<'de> DeserializeSeed<'de> for PayloadSeed {
            type Value = Payload;

            fn deserialize<D: serde::Deserializer<'de>>(self, deserializer: D) -> Result<Payload, D::Error> {
                Ok(match self.0 {
                    $(EventKind::$kind => Payload::$kind($kind::deserialize(deserializer)?)),+
                })
            }
        }

        $(
            impl From<$kind> for Payload {
                fn from(value: $kind) -> Self {
                    Payload::$kind(value)
                }
            }
        )+
    };
}

payloads!(
    ActivityHeld,
    GroupParticipated,
    ParticipantRegistered,
    ParticipantAttended,
    SurveyAnswered,
    ProfileChosen,
    PartnerJoined,
    PartnerLeft,
    AmbassadorCommitted,
    TrajectoryStarted,
    TrajectoryEnded,
    ConsentWithdrawn,
);

/// One event: the envelope and its payload. `event_type` is not stored: it is
/// the payload's kind ([`Event::kind`]).
#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// The idempotency key.
    pub event_id: Uuid,
    pub schema_version: u32,
    pub hub_id: String,
    pub occurred_at: DateTime<FixedOffset>,
    pub sent_at: DateTime<FixedOffset>,
    /// The event this one replaces: set by techmon on a corrected row of a plain
    /// sheet (see [`crate::sheet`]).
    pub replaces: Option<Uuid>,
    pub payload: Payload,
}

impl Event {
    /// The event kind (`event_type`).
    pub fn kind(&self) -> EventKind {
        self.payload.kind()
    }

    /// The school year the event falls in: the one a class's participation or a
    /// profile choice names, else the one its date in the Netherlands is in, whatever
    /// offset the hub sent.
    pub fn school_year(&self) -> SchoolYear {
        match &self.payload {
            Payload::GroupParticipated(g) => g.school_year,
            Payload::ProfileChosen(p) => p.school_year,
            _ => SchoolYear::containing(crate::time::dutch_date(&self.occurred_at)),
        }
    }

    /// Who or what the event is about: the one answer that the log's keys, the
    /// transform's pseudonyms and erasure all use. An event about a participant names
    /// them even when it is also about an activity or school (an answered survey, a
    /// pupil's profile choice); a consent withdrawal is about the participant or
    /// ambassador it withdraws.
    pub fn subject(&self) -> Subject<'_> {
        let hub = self.hub_id.as_str();
        let participant = |reference| Subject::Participant { hub, reference };
        match &self.payload {
            Payload::ActivityHeld(p) => Subject::Activity {
                hub,
                activity_id: &p.activity_id,
            },
            Payload::GroupParticipated(p) => Subject::Activity {
                hub,
                activity_id: &p.activity_id,
            },
            Payload::ParticipantRegistered(p) => participant(&p.participant_ref),
            Payload::ParticipantAttended(p) => participant(&p.participant_ref),
            Payload::SurveyAnswered(p) => match &p.participant_ref {
                Some(reference) => participant(reference),
                None => Subject::Activity {
                    hub,
                    activity_id: &p.activity_id,
                },
            },
            Payload::ProfileChosen(p) => match &p.participant_ref {
                Some(reference) => participant(reference),
                None => Subject::School {
                    brin6: p.school_brin6.as_str(),
                },
            },
            Payload::PartnerJoined(p) => Subject::Partner {
                hub,
                partner_id: &p.partner_id,
            },
            Payload::PartnerLeft(p) => Subject::Partner {
                hub,
                partner_id: &p.partner_id,
            },
            Payload::AmbassadorCommitted(p) => Subject::Ambassador {
                hub,
                reference: &p.ambassador_ref,
            },
            Payload::TrajectoryStarted(p) => participant(&p.participant_ref),
            Payload::TrajectoryEnded(p) => participant(&p.participant_ref),
            Payload::ConsentWithdrawn(p) => match p.subject {
                WithdrawalSubject::Participant => participant(&p.participant_ref),
                WithdrawalSubject::Ambassador => Subject::Ambassador {
                    hub,
                    reference: &p.participant_ref,
                },
            },
        }
    }

    /// The key that keeps one subject's events in order on the log (the Kafka
    /// message key); see [`Subject::key`]. It contains the participant reference: it
    /// is raw, personal data, like the event itself.
    pub fn subject_key(&self) -> String {
        self.subject().key()
    }

    /// The payload fields that hold personal data (identifying or free text): the
    /// event log keeps them sealed under the key of [`Event::subject_key`]'s person,
    /// which a withdrawal destroys.
    pub fn personal_fields(&self) -> &'static [&'static str] {
        match &self.payload {
            Payload::ParticipantRegistered(_) => &[
                "name",
                "email",
                "phone",
                "birth_date",
                "postcode",
                "street_address",
                "pupil_number",
                "notes",
            ],
            Payload::AmbassadorCommitted(_) => &["name", "email"],
            Payload::SurveyAnswered(_) => &["comment"],
            _ => &[],
        }
    }

    /// The participant the event is about, if it is about one.
    pub fn participant_ref(&self) -> Option<&str> {
        match self.subject() {
            Subject::Participant { reference, .. } => Some(reference),
            _ => None,
        }
    }

    /// The event as JSON (the wire format).
    pub fn to_json(&self) -> serde_json::Value {
        serde_json::to_value(self).expect("an Event always serialises to JSON")
    }
}

/// Who or what an event is about (see [`Event::subject`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    Participant {
        hub: &'a str,
        reference: &'a str,
    },
    Ambassador {
        hub: &'a str,
        reference: &'a str,
    },
    Activity {
        hub: &'a str,
        activity_id: &'a str,
    },
    Partner {
        hub: &'a str,
        partner_id: &'a str,
    },
    /// Counted profile choices of a school's pupils.
    School {
        brin6: &'a str,
    },
}

impl Subject<'_> {
    /// `participant:<hub_id>:<participant_ref>`, `ambassador:<hub_id>:<ambassador_ref>`,
    /// `activity:<hub_id>:<activity_id>`, `partner:<hub_id>:<partner_id>` or
    /// `school:<brin6>`.
    pub fn key(&self) -> String {
        match self {
            Subject::Participant { hub, reference } => format!("participant:{hub}:{reference}"),
            Subject::Ambassador { hub, reference } => format!("ambassador:{hub}:{reference}"),
            Subject::Activity { hub, activity_id } => format!("activity:{hub}:{activity_id}"),
            Subject::Partner { hub, partner_id } => format!("partner:{hub}:{partner_id}"),
            Subject::School { brin6 } => format!("school:{brin6}"),
        }
    }
}

#[derive(Serialize)]
struct EventOut<'a> {
    event_id: &'a Uuid,
    event_type: EventKind,
    schema_version: u32,
    hub_id: &'a str,
    occurred_at: &'a DateTime<FixedOffset>,
    sent_at: &'a DateTime<FixedOffset>,
    #[serde(skip_serializing_if = "Option::is_none")]
    replaces: &'a Option<Uuid>,
    payload: &'a Payload,
}

impl Serialize for Event {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        EventOut {
            event_id: &self.event_id,
            event_type: self.kind(),
            schema_version: self.schema_version,
            hub_id: &self.hub_id,
            occurred_at: &self.occurred_at,
            sent_at: &self.sent_at,
            replaces: &self.replaces,
            payload: &self.payload,
        }
        .serialize(serializer)
    }
}

/// The envelope's fields.
#[derive(Deserialize)]
#[serde(field_identifier, rename_all = "snake_case")]
enum EnvelopeField {
    EventId,
    EventType,
    SchemaVersion,
    HubId,
    OccurredAt,
    SentAt,
    Replaces,
    Payload,
}

struct EventVisitor;

impl<'de> serde::de::Visitor<'de> for EventVisitor {
    type Value = Event;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("an event object")
    }

    fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<Event, A::Error> {
        use serde::de::Error;
        fn once<T, E: Error>(slot: &mut Option<T>, value: T, name: &'static str) -> Result<(), E> {
            match slot.replace(value) {
                Some(_) => Err(E::duplicate_field(name)),
                None => Ok(()),
            }
        }
        let (mut event_id, mut kind, mut schema_version) = (None, None, None);
        let (mut hub_id, mut occurred_at, mut sent_at) = (None, None, None);
        let (mut payload, mut replaces) = (None, None);
        // The payload is read straight into its kind's type when `event_type` came
        // first (as techmon writes it); otherwise it waits as a JSON value.
        let mut payload_before_kind: Option<serde_json::Value> = None;
        while let Some(field) = map.next_key()? {
            match field {
                EnvelopeField::EventId => once(&mut event_id, map.next_value()?, "event_id")?,
                EnvelopeField::EventType => once(&mut kind, map.next_value()?, "event_type")?,
                EnvelopeField::SchemaVersion => {
                    once(&mut schema_version, map.next_value()?, "schema_version")?
                }
                EnvelopeField::HubId => once(&mut hub_id, map.next_value()?, "hub_id")?,
                EnvelopeField::OccurredAt => {
                    let time: Rfc3339 = map.next_value()?;
                    once(&mut occurred_at, time.0, "occurred_at")?
                }
                EnvelopeField::SentAt => {
                    let time: Rfc3339 = map.next_value()?;
                    once(&mut sent_at, time.0, "sent_at")?
                }
                EnvelopeField::Replaces => once(&mut replaces, map.next_value()?, "replaces")?,
                EnvelopeField::Payload => {
                    if payload.is_some() || payload_before_kind.is_some() {
                        return Err(A::Error::duplicate_field("payload"));
                    }
                    match kind {
                        Some(kind) => payload = Some(map.next_value_seed(PayloadSeed(kind))?),
                        None => payload_before_kind = Some(map.next_value()?),
                    }
                }
            }
        }
        let kind: EventKind = kind.ok_or_else(|| A::Error::missing_field("event_type"))?;
        let payload = match (payload, payload_before_kind) {
            (Some(payload), _) => payload,
            (None, Some(value)) => PayloadSeed(kind)
                .deserialize(value)
                .map_err(A::Error::custom)?,
            (None, None) => return Err(A::Error::missing_field("payload")),
        };
        Ok(Event {
            event_id: event_id.ok_or_else(|| A::Error::missing_field("event_id"))?,
            schema_version: schema_version
                .ok_or_else(|| A::Error::missing_field("schema_version"))?,
            hub_id: hub_id.ok_or_else(|| A::Error::missing_field("hub_id"))?,
            occurred_at: occurred_at.ok_or_else(|| A::Error::missing_field("occurred_at"))?,
            sent_at: sent_at.ok_or_else(|| A::Error::missing_field("sent_at"))?,
            replaces,
            payload,
        })
    }
}

/// Deserialises without schema validation or semantic checks: use it for events
/// read back from the log. For records from outside use [`crate::validate_event`].
impl<'de> Deserialize<'de> for Event {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_map(EventVisitor)
    }
}
