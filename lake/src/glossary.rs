//! What every column of the catalogue means: a description, and its unit or the codes
//! its values come from. A column name means one thing wherever it appears, so one
//! entry serves every table (and the views that pass the column on); where a table
//! uses a name its own way, an entry for that table says so.
//!
//! Codebooks, `GET /v1/tables` and the catalogue's SQL clients read it from here.

use techmon_schemas::codes::KpiUnit;
use techmon_schemas::event::{
    ActivityType, Contribution, Gender, Onderwijstype, OrganisationKind, Outcome, RespondentRole,
    Role, Sector, TargetGroup,
};

/// Where a column's values come from.
#[derive(Debug, Clone, Copy)]
pub enum Codes {
    /// Free values (names, numbers, times).
    Free,
    /// One of these.
    Values(&'static [&'static str]),
    /// One of a closed set of techmon's event schemas.
    Of(fn() -> Vec<&'static str>),
    /// A code of this code list (a table of the catalogue): `(table, column)`.
    List(&'static str, &'static str),
}

impl Codes {
    /// The values, where the set is fixed.
    pub fn values(&self) -> Option<Vec<&'static str>> {
        match self {
            Codes::Free | Codes::List(..) => None,
            Codes::Values(values) => Some(values.to_vec()),
            Codes::Of(values) => Some(values()),
        }
    }
}

/// One column's meaning.
#[derive(Debug, Clone, Copy)]
pub struct Term {
    pub column: &'static str,
    pub description: &'static str,
    /// The unit of a number (`minutes`, `percent`, `percentage points`).
    pub unit: Option<&'static str>,
    pub codes: Codes,
}

impl Term {
    pub const fn new(column: &'static str, description: &'static str) -> Self {
        Self {
            column,
            description,
            unit: None,
            codes: Codes::Free,
        }
    }

    pub const fn unit(self, unit: &'static str) -> Self {
        Self {
            unit: Some(unit),
            ..self
        }
    }

    pub const fn codes(self, codes: Codes) -> Self {
        Self { codes, ..self }
    }
}

/// The meaning of `column` in `table` (a lake table or a code list).
pub fn term(table: &str, column: &str) -> Option<&'static Term> {
    TABLE_TERMS
        .iter()
        .find(|(t, term)| *t == table && term.column == column)
        .map(|(_, term)| term)
        .or_else(|| shared(column))
}

/// The meaning `column` has wherever no table says otherwise.
pub fn shared(column: &str) -> Option<&'static Term> {
    TERMS.iter().find(|term| term.column == column)
}

const DUO_GENDERS: &[&str] = &["man", "vrouw", "totaal"];
const BANDS: &[&str] = &["groep_1_2", "groep_3_6", "groep_7_8"];

/// Columns whose name means the same in every table.
pub const TERMS: &[Term] = &[
    Term::new("event_id", "The event's id (UUID) in the event log: one row per event; a corrected row of a plain sheet gets a new id."),
    Term::new("hub_id", "The techniekhub the row belongs to.").codes(Codes::List("hubs", "hub_id")),
    Term::new("occurred_at", "When the event happened, as the hub reported it (UTC)."),
    Term::new("school_year", "The school year the row falls in, as 2024/25 (1 August to 31 July); DUO's counts on 1 October fall in that year's school year."),
    Term::new("school_year_start", "The first calendar year of school_year: 2024 for 2024/25, to compare and compute with."),
    Term::new("log_partition", "The event log partition the event was read from: with log_offset, where it is in the log."),
    Term::new("log_offset", "The event's position in its event log partition: the later of two events with the same occurred_at has the larger one."),
    Term::new("activity_id", "The hub's own id of the activity; the same id in group_participations, attendances and survey_answers refers to it."),
    Term::new("activity_type", "What kind of activity it was.").codes(Codes::Of(|| ActivityType::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("title", "The activity's title, as the hub named it."),
    Term::new("starts_at", "When the activity started (UTC)."),
    Term::new("ends_at", "When the activity ended (UTC)."),
    Term::new("duration_minutes", "Net contact time, where the hub reported it because it differs from ends_at minus starts_at (breaks, multi-day activities); null otherwise.").unit("minutes"),
    Term::new("worlds", "The werelden van techniek the activity showed, by number.").codes(Codes::List("worlds", "world")),
    Term::new("target_groups", "The education sectors the activity was meant for.").codes(Codes::Of(|| TargetGroup::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("location", "Where the activity took place (the hub, a school, a company), as the hub wrote it; not an address of a person."),
    Term::new("partner_organisations", "The partner organisations that held the activity with the hub."),
    Term::new("school_brin6", "The school location (BRIN6: four characters of the school, two of the vestiging), as in DUO's files; null where the hub did not name a school.").codes(Codes::List("duo_schools", "brin6")),
    Term::new("sector", "The education sector of the pupils or participants.").codes(Codes::Of(|| Sector::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("groep", "The PO groep (1 to 8) of the class or pupil; null outside PO.").unit("groep"),
    Term::new("leerjaar", "The VO or MBO leerjaar (year of study) of the class or pupil; null in PO.").unit("leerjaar"),
    Term::new("onderwijstype", "The kind of VO (and the vmbo leerweg) of the class or pupil.").codes(Codes::Of(|| Onderwijstype::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("participants_girls", "Girls of the group that took part.").unit("persons"),
    Term::new("participants_boys", "Boys of the group that took part.").unit("persons"),
    Term::new("participants_other", "Participants of the group that are neither counted as girls nor as boys.").unit("persons"),
    Term::new("participants_total", "Everyone of the group that took part: girls, boys and others.").unit("persons"),
    Term::new("accompanying_teachers", "Teachers who came with the group.").unit("persons"),
    Term::new("participant_pseudonym", "The participant's pseudonym: a keyed hash of the hub's reference to the person, the same for the same person in every table, never the person's name or number."),
    Term::new("ambassador_pseudonym", "The ambassador's pseudonym: a keyed hash of the hub's reference to the person."),
    Term::new("pseudonym_key_id", "The id of the pseudonym key that made the row's pseudonym (keys rotate; a relink moves rows to the new key)."),
    Term::new("birth_year", "The participant's year of birth (the birth date itself is never kept)."),
    Term::new("pc4", "The four digits of the postcode (PC4): enough to place a person or school in an area, not at an address."),
    Term::new("gender", "The participant's gender as registered.").codes(Codes::Of(|| Gender::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("role", "The person's role: as registered (participants), in the activity where the hub said so (attendances), or the role counted (participation_without_consent).").codes(Codes::Of(|| Role::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("consent_research", "Whether the person (for a minor: a parent) consents to research use; the lake keeps person-level rows only of those who do."),
    Term::new("respondent_role", "Who answered the survey.").codes(Codes::Of(|| RespondentRole::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("score", "The satisfaction score as given, on a scale from 0 or 1 to scale_max.").unit("points of scale_max"),
    Term::new("scale_max", "The highest score of the survey's scale.").codes(Codes::Values(&["5", "10", "100"])),
    Term::new("score_of_10", "The score on a 10-point scale: 10 × score / scale_max.").unit("points of 10"),
    Term::new("profile_code", "The VO profile (vmbo profiel, havo/vwo profiel) chosen.").codes(Codes::List("vo_profiles", "profile_code")),
    Term::new("technical", "Whether the profile counts as technical in the Monitor Techniekpact (vo_profiles.technical)."),
    Term::new("partner_id", "The hub's own id of the partner organisation."),
    Term::new("change", "What happened: joined or left (partner_events), started or ended (trajectory_events).").codes(Codes::Values(&["joined", "left", "started", "ended"])),
    Term::new("organisation_name", "The organisation's name (a partner's, or the one an ambassador works for)."),
    Term::new("organisation_kind", "What kind of organisation the partner is.").codes(Codes::Of(|| OrganisationKind::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("contribution", "What the partner contributes to the hub.").codes(Codes::Of(|| Contribution::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("trajectory_id", "The hub's own id of the work-learning route."),
    Term::new("route", "The name of the work-learning route, such as Leerwerkroute Techniek en ICT."),
    Term::new("employer", "The employer of the route, where there is one."),
    Term::new("outcome", "Where an ended route led.").codes(Codes::Of(|| Outcome::ALL.iter().map(|c| c.as_str()).collect())),
    Term::new("measure", "What the row counts: 'reach' (people who took part) or 'teachers_professionalised' (teachers attending docentprofessionalisering).").codes(Codes::Values(&["reach", "teachers_professionalised"])),
    Term::new("band", "The PO groep band of the KPIs; null outside PO.").codes(Codes::Values(BANDS)),
    Term::new("people", "People counted, each person once per row.").unit("persons"),
    Term::new("brin6", "The school location (BRIN6: four characters of the school, two of the vestiging).").codes(Codes::List("duo_schools", "brin6")),
    Term::new("school_name", "The school's name in DUO's file."),
    Term::new("municipality", "The municipality (gemeente), as DUO or techmon's hub list writes it."),
    Term::new("vmbo_sector", "The vmbo sector (until 2020) or profiel DUO counts the pupils under, where it has one."),
    Term::new("afdeling", "DUO's afdeling (department) of the opleiding, where it has one."),
    Term::new("elementcode", "DUO's code of the opleiding (ILT elementcode), where the file has it."),
    Term::new("opleidingsnaam", "DUO's name of the opleiding the pupils follow."),
    Term::new("age", "The pupils' age on 1 October.").unit("years"),
    Term::new("soort_po", "DUO's kind of PO school (Bo: basisonderwijs, Sbo: speciaal basisonderwijs, So: speciaal onderwijs), where the file has it."),
    Term::new("groep_band", "The groep band the pupils' age maps to: 4-5 groep 1-2, 6-9 groep 3-6, 10 and older groep 7-8.").codes(Codes::Values(BANDS)),
    Term::new("pupils", "Pupils counted; in DUO's tables null where DUO suppressed a small count (1 to 4): pupils_min and pupils_max bound it.").unit("pupils"),
    Term::new("pupils_min", "The least the count can be: the count, or 1 where DUO suppressed it.").unit("pupils"),
    Term::new("pupils_max", "The most the count can be: the count, or 4 where DUO suppressed it.").unit("pupils"),
    Term::new("suppressed", "Whether DUO suppressed the count (published as <5)."),
    Term::new("source", "The DUO file the row was imported from: its URL or file name."),
    Term::new("source_sha256", "The SHA-256 of the imported file, to tell which publication of DUO's file it was."),
    Term::new("imported_at", "When the file was imported (UTC)."),
    Term::new("place", "The place (plaatsnaam) of the school's address."),
    Term::new("kind", "DUO's kind of school: SOORT PO or ONDERWIJSSTRUCTUUR, as DUO writes it."),
    Term::new("world", "The number of the wereld van techniek (1 to 7).").codes(Codes::Values(&["1", "2", "3", "4", "5", "6", "7"])),
    Term::new("name", "The name of what the row describes: the hub, the wereld van techniek, the VO profile or the school."),
    Term::new("onderwijstypes", "The VO onderwijstypes that offer the profile."),
    Term::new("kpi", "The KPI the row is about: one techmon computes, from seed 003 (the Cleantech Regio's KPI table); each region picks its set.").codes(Codes::List("kpi_targets", "kpi")),
    Term::new("unit", "What the KPI's values are.").codes(Codes::Of(|| [KpiUnit::Count, KpiUnit::Percent, KpiUnit::PercentChange, KpiUnit::Score10].map(KpiUnit::as_str).to_vec())),
    Term::new("year", "The KPI year Y: school year Y/Y+1."),
    Term::new("target", "The KPI's target for the year, in the KPI's unit; null: none that year (as in seed 003 for some years, or a region's targets still to be set)."),
    Term::new("description", "The KPI as seed 003 describes it."),
    Term::new("region_id", "The region the row belongs to: its hubs share a KPI set and targets.").codes(Codes::List("regions", "region_id")),
    Term::new("municipalities", "The region's municipalities (gemeenten), as DUO writes them: where its schools are."),
    Term::new("first_school_year", "The first school year the hub reports, as 2025/26; null: from the start."),
    Term::new("last_school_year", "The last school year the hub reports, as 2026/27, once it is retired; null: still reporting."),
    Term::new("token_sha256", "The SHA-256 (hex) of a token issued to the hub; the token itself is shown once, to the administrator who issued it."),
    Term::new("changed_at", "When an administrator last changed the row (UTC); null: as built in."),
    Term::new("changed_by", "The administrator who last changed the row; null: as built in."),
];

/// Columns a table uses its own way.
const TABLE_TERMS: &[(&str, Term)] = &[
    ("kpi_targets", Term::new("hub_id", "The hub whose own target the row is; null: the region's, and each of its hubs' without one of their own.").codes(Codes::List("hubs", "hub_id"))),
    ("duo_vo_pupils", Term::new("gender", "The pupils' gender as DUO counts them: man, vrouw, or totaal where the file gives everyone in one count.").codes(Codes::Values(DUO_GENDERS))),
    ("profile_choices", Term::new("pupils", "The pupils the row stands for: 1 for a pupil's own choice, else the count the hub reported.").unit("pupils")),
];
