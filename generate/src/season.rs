//! One hub's school year of events: activities with their season (Proeverij in
//! autumn, Girlsday in April), class participations, individual registrations and
//! attendance (with made-up personal data, so the privacy path is exercised),
//! surveys, partners, ambassadors, work-learning routes, profile choices, consent
//! withdrawals, and a few records a hub's tools get wrong.

use std::collections::HashSet;

use chrono::{Datelike, Duration, NaiveDate, NaiveDateTime, Weekday};
use rand::Rng;
use rand::rngs::StdRng;
use serde_json::{Map, Value, json};
use techmon_schemas::VoOnderwijstype;
use techmon_schemas::codes::SchoolYear;

use crate::truth::{ClassKey, PersonId, Registered, Tally};
use crate::world::{FIRST_YEAR, HUBS, Hub, LAST_YEAR, VoSchool, World};

/// Share of records written twice (a hub resending a batch).
const RESENT: f64 = 0.001;
/// Share of records followed by a broken copy (a hub's tool getting one wrong).
const BROKEN: f64 = 0.002;

/// The columns of the group participation CSV feeds hubs export.
pub const GROUP_CSV_HEADER: &str = "event_id;hub_id;occurred_at;sent_at;activity_id;school_brin6;sector;groep;leerjaar;onderwijstype;school_year;participants.girls;participants.boys;accompanying_teachers";

/// A record ready to write, with when it happened (files are in time order).
pub struct Record {
    pub at: NaiveDateTime,
    pub line: String,
}

/// What one season produced: NDJSON lines and CSV rows of group participations.
#[derive(Default)]
pub struct SeasonOutput {
    pub events: Vec<Record>,
    pub group_rows: Vec<Record>,
}

/// State that lasts across seasons: people's unique identities, partners.
#[derive(Default)]
pub struct Region {
    next_person: PersonId,
    identities: HashSet<(String, NaiveDate)>,
    /// Per hub: partner ids that are affiliated now.
    partners: Vec<Vec<String>>,
    partner_counter: Vec<usize>,
    ambassador_counter: Vec<usize>,
    participant_counter: Vec<usize>,
    activity_counter: Vec<usize>,
}

const FIRST_NAMES: &[&str] = &[
    "Sanne", "Daan", "Emma", "Noah", "Julia", "Sem", "Tess", "Luuk", "Sophie", "Finn", "Lotte",
    "Milan", "Anna", "Lucas", "Eva", "Jesse", "Fleur", "Thijs", "Noor", "Bram", "Zoë", "Ruben",
    "Isa", "Lars", "Mila", "Stijn", "Roos", "Jens", "Femke", "Gijs", "Anouk", "Timo",
];
const LAST_NAMES: &[&str] = &[
    "de Voorbeeld",
    "Jansen",
    "de Vries",
    "van den Berg",
    "Bakker",
    "Visser",
    "Smit",
    "Meijer",
    "de Boer",
    "Mulder",
    "de Groot",
    "Bos",
    "Vos",
    "Peters",
    "Hendriks",
    "van Leeuwen",
    "Dekker",
    "Brouwer",
    "de Wit",
    "Dijkstra",
    "Smits",
    "de Graaf",
    "van der Meer",
    "Kok",
    "Jacobs",
    "Schouten",
    "van Dijk",
    "Willems",
    "Hoekstra",
    "Koster",
    "Prins",
    "Kuipers",
];
const COMPANIES: &[&str] = &[
    "Metaalbedrijf",
    "Installatietechniek",
    "Bouwbedrijf",
    "Elektrotechniek",
    "Machinefabriek",
    "Energiecoöperatie",
    "Software",
    "Waterschap",
    "Kunststoffen",
    "Mechatronica",
];
const TOWN_PC4: &[(&str, u32)] = &[
    ("Apeldoorn", 7311),
    ("Deventer", 7411),
    ("Zutphen", 7201),
    ("Epe", 8161),
    ("Lochem", 7241),
    ("Harderwijk", 3841),
    ("Elburg", 8081),
];

impl Region {
    pub fn new() -> Self {
        Self {
            partners: vec![Vec::new(); HUBS.len()],
            partner_counter: vec![0; HUBS.len()],
            ambassador_counter: vec![0; HUBS.len()],
            participant_counter: vec![0; HUBS.len()],
            activity_counter: vec![0; HUBS.len()],
            ..Self::default()
        }
    }

    /// A new person with a name and birth date no one else has (identities link
    /// by name and birth date when there is no e-mail).
    fn person(&mut self, rng: &mut StdRng, born: i32) -> (PersonId, String, NaiveDate) {
        loop {
            let name = format!(
                "{} {}",
                FIRST_NAMES[rng.random_range(0..FIRST_NAMES.len())],
                LAST_NAMES[rng.random_range(0..LAST_NAMES.len())]
            );
            let birth = NaiveDate::from_yo_opt(born, rng.random_range(1..=365)).unwrap_or_default();
            if self.identities.insert((name.clone(), birth)) {
                self.next_person += 1;
                return (self.next_person, name, birth);
            }
        }
    }
}

/// Central European time as the hubs' tools write it: summer time (+02:00) from
/// April to October, else +01:00 (close enough for a synthetic region).
fn timestamp(at: NaiveDateTime) -> String {
    let offset = if (4..=10).contains(&at.month()) {
        "+02:00"
    } else {
        "+01:00"
    };
    format!("{}{offset}", at.format("%Y-%m-%dT%H:%M:%S"))
}

/// The days a club meets, twice a week (`weekday` and two days later; 0 is
/// Monday): mid-September to mid-June, not in the Christmas and May holidays.
pub fn club_days(year: i32, weekday: u32) -> impl Iterator<Item = NaiveDate> {
    let mut first = date(year, 9, 15);
    while first.weekday().num_days_from_monday() != weekday {
        first += Duration::days(1);
    }
    let last = date(year + 1, 6, 15);
    (0..)
        .flat_map(move |week| {
            [
                first + Duration::days(7 * week),
                first + Duration::days(7 * week + 2),
            ]
        })
        .take_while(move |day| *day <= last)
        .filter(|day| {
            !(day.month() == 12 && day.day() > 20
                || day.month() == 1 && day.day() < 6
                || day.month() == 5 && day.day() < 8)
        })
}

/// A weekday between `from` and `to` (inclusive).
fn school_day(rng: &mut StdRng, from: NaiveDate, to: NaiveDate) -> NaiveDate {
    let span = (to - from).num_days().max(0);
    let mut day = from + Duration::days(rng.random_range(0..=span));
    while matches!(day.weekday(), Weekday::Sat | Weekday::Sun) {
        day += Duration::days(1);
    }
    day
}

fn date(year: i32, month: u32, day: u32) -> NaiveDate {
    NaiveDate::from_ymd_opt(year, month, day).unwrap_or_default()
}

/// An activity of this season.
struct Activity {
    id: String,
    starts: NaiveDateTime,
    ends: NaiveDateTime,
}

pub struct Season<'a> {
    rng: &'a mut StdRng,
    region: &'a mut Region,
    tally: &'a mut Tally,
    world: &'a World,
    hub_index: usize,
    hub: &'static Hub,
    year: i32,
    /// Growth over the years: 0 in 2021/22, 1 in 2026/27.
    growth: f64,
    /// The hub's PO schools against the average hub's: more schools, more people.
    size: f64,
    /// Nothing happens after this moment (the day the region was generated).
    until: NaiveDateTime,
    out: SeasonOutput,
}

impl<'a> Season<'a> {
    pub fn new(
        rng: &'a mut StdRng,
        region: &'a mut Region,
        tally: &'a mut Tally,
        world: &'a World,
        hub_index: usize,
        (year, until): (i32, NaiveDateTime),
        out: SeasonOutput,
    ) -> Self {
        Self {
            rng,
            region,
            tally,
            world,
            hub_index,
            hub: &HUBS[hub_index],
            year,
            growth: f64::from(year - FIRST_YEAR) / f64::from(LAST_YEAR - FIRST_YEAR),
            size: world.po_schools_in(HUBS[hub_index].municipality) as f64 * HUBS.len() as f64
                / world.po.len().max(1) as f64,
            until,
            out,
        }
    }

    /// Everything of the season but the after-school clubs beyond its first: every
    /// season has one, and [`Season::clubs`] adds what the size leaves room for.
    pub fn base(mut self) -> SeasonOutput {
        self.partners_and_ambassadors();
        self.po_classes();
        self.vo_classes();
        self.mbo_classes();
        self.girlsday();
        self.teachers();
        self.parents();
        self.work_learning_routes();
        self.profile_choices();
        self.club();
        self.out
    }

    /// Adds after-school clubs until they made `budget` events; returns the season in
    /// time order.
    pub fn clubs(mut self, budget: usize) -> SeasonOutput {
        let start = self.tally.valid_events;
        while self.tally.valid_events - start < budget {
            self.club();
        }
        let mut out = self.out;
        out.events.sort_by_key(|r| r.at);
        out.group_rows.sort_by_key(|r| r.at);
        out
    }

    fn first_day(&self) -> NaiveDate {
        date(self.year, 9, 1)
    }

    fn last_day(&self) -> NaiveDate {
        date(self.year + 1, 6, 30)
    }

    fn event_id(&mut self) -> String {
        uuid::Builder::from_random_bytes(self.rng.random())
            .into_uuid()
            .to_string()
    }

    /// The envelope around `payload`; `None` after the generation moment.
    fn envelope(&mut self, at: NaiveDateTime, kind: &str, payload: Value) -> Option<Value> {
        if at > self.until {
            return None;
        }
        let sent = (at + Duration::hours(self.rng.random_range(1..48))).min(self.until.max(at));
        Some(json!({
            "event_id": self.event_id(),
            "event_type": kind,
            "schema_version": 1,
            "hub_id": self.hub.id,
            "occurred_at": timestamp(at),
            "sent_at": timestamp(sent),
            "payload": payload,
        }))
    }

    /// Emits one event; false (and nothing emitted) after the generation moment.
    fn emit(&mut self, at: NaiveDateTime, kind: &str, payload: Value) -> bool {
        let Some(event) = self.envelope(at, kind, payload) else {
            return false;
        };
        let line = event.to_string();
        self.tally.valid_events += 1;
        if self.rng.random_bool(RESENT) {
            self.tally.resent_events += 1;
            self.out.events.push(Record {
                at,
                line: line.clone(),
            });
        }
        self.out.events.push(Record { at, line });
        if self.rng.random_bool(BROKEN) {
            let broken = self.broken(event);
            self.tally.broken_events += 1;
            self.out.events.push(Record {
                at,
                line: broken.to_string(),
            });
        }
        true
    }

    /// A copy of `event` with a new id and one mistake, each naming one field.
    fn broken(&mut self, mut event: Value) -> Value {
        event["event_id"] = json!(self.event_id());
        let payload = event["payload"]
            .as_object_mut()
            .expect("payloads are objects");
        match self.rng.random_range(0..5) {
            0 if payload.contains_key("activity_id") => {
                payload.remove("activity_id");
            }
            1 if payload.contains_key("groep") => {
                payload.insert("groep".into(), json!(11));
            }
            2 if payload.contains_key("school_brin6") => {
                payload.insert("school_brin6".into(), json!("12-AB-00"));
            }
            3 => {
                payload.insert("opmerking".into(), json!("graag terugbellen"));
            }
            _ => {
                let at = event["occurred_at"].as_str().unwrap_or_default();
                // Day-month-year, as a spreadsheet writes it.
                let dutch = format!("{}-{}-{}", &at[8..10], &at[5..7], &at[..4]);
                event["occurred_at"] = json!(dutch);
            }
        }
        event
    }

    /// A new activity of `kind` on a day between `from` and `to`.
    fn activity(
        &mut self,
        kind: &str,
        (from, to): (NaiveDate, NaiveDate),
        target_groups: &[&str],
        title: &str,
    ) -> Activity {
        let day = school_day(self.rng, from, to);
        let start_hour = if kind == "naschools" || kind == "ouderbijeenkomst" {
            15
        } else {
            9
        };
        self.activity_on(day, start_hour, kind, target_groups, title)
    }

    fn activity_on(
        &mut self,
        day: NaiveDate,
        hour: u32,
        kind: &str,
        target_groups: &[&str],
        title: &str,
    ) -> Activity {
        self.region.activity_counter[self.hub_index] += 1;
        let id = format!(
            "{}-{}-{:05}",
            self.hub.prefix, self.year, self.region.activity_counter[self.hub_index]
        );
        let minutes: i64 = match kind {
            "naschools" => 90,
            "leskist" => 60,
            "bedrijfsbezoek" | "proeverij" => 180,
            _ => 120,
        };
        let starts = day.and_hms_opt(hour, 0, 0).unwrap_or_default();
        let ends = starts + Duration::minutes(minutes);
        let worlds: Vec<u8> = {
            let first = self.rng.random_range(1..=7u8);
            if self.rng.random_bool(0.4) {
                vec![first, 1 + first % 7]
            } else {
                vec![first]
            }
        };
        let partners: Vec<String> = self.region.partners[self.hub_index]
            .iter()
            .take(self.rng.random_range(0..3))
            .cloned()
            .collect();
        self.emit(
            starts,
            "activity_held",
            json!({
                "activity_id": id, "activity_type": kind, "title": title,
                "starts_at": timestamp(starts), "ends_at": timestamp(ends),
                "duration_minutes": minutes, "worlds": worlds, "target_groups": target_groups,
                "location": self.hub.municipality, "partner_organisations": partners,
            }),
        );
        Activity { id, starts, ends }
    }

    /// A class at an activity: a CSV row of the hub's group feed, tallied.
    fn class_at(&mut self, activity: &Activity, class: ClassKey, girls: u32, boys: u32) {
        let at = activity.ends;
        if at > self.until {
            return;
        }
        let teachers = self.rng.random_range(1..=3);
        let id = self.event_id();
        let row = format!(
            "{id};{};{};{};{};{};{};{};{};{};{};{girls};{boys};{teachers}",
            self.hub.id,
            timestamp(at),
            timestamp(at + Duration::hours(20)),
            activity.id,
            class.school,
            class.sector,
            class.groep.map(|g| g.to_string()).unwrap_or_default(),
            class.leerjaar.map(|l| l.to_string()).unwrap_or_default(),
            class.onderwijstype.unwrap_or_default(),
            SchoolYear::new(self.year),
        );
        self.out.group_rows.push(Record { at, line: row });
        self.tally.valid_events += 1;
        *self
            .tally
            .classes
            .entry(class)
            .or_default()
            .entry(activity.id.clone())
            .or_default() += girls + boys;
        // The teacher rates the activity on 5; two pupils on 10.
        if self.rng.random_bool(0.7) {
            let score = f64::from(self.rng.random_range(6..=10u32)) / 2.0;
            self.survey(activity, "teacher", score, 5, None);
        }
        for _ in 0..2 {
            let score = f64::from(self.rng.random_range(5..=10u32));
            self.survey(activity, "pupil", score, 10, None);
        }
    }

    fn survey(
        &mut self,
        activity: &Activity,
        role: &str,
        score: f64,
        scale: u32,
        respondent: Option<(PersonId, &str)>,
    ) {
        let at = activity.ends + Duration::hours(self.rng.random_range(1..30));
        let mut payload = json!({
            "activity_id": activity.id, "respondent_role": role, "score": score, "scale_max": scale,
        });
        if let Some((_, reference)) = respondent {
            payload["participant_ref"] = json!(reference);
        }
        if self.emit(at, "survey_answered", payload) {
            let year = SchoolYear::containing(at.date()).start;
            self.tally.surveys.push((
                self.hub_index,
                year,
                10.0 * score / f64::from(scale),
                respondent.map(|(p, _)| p),
            ));
        }
    }

    /// A PO school's groep (its parallel classes take part together).
    fn po_class(&self, school: usize, groep: u8) -> ClassKey {
        ClassKey {
            hub: self.hub_index,
            year: self.year,
            sector: "PO",
            school: self.world.po[school].brin6.clone(),
            groep: Some(groep),
            leerjaar: None,
            onderwijstype: None,
        }
    }

    fn po_classes(&mut self) {
        let schools: Vec<usize> = (0..self.world.po.len())
            .filter(|&i| self.world.po[i].municipality == self.hub.municipality)
            .collect();
        let y = (self.year - FIRST_YEAR) as usize;
        let autumn = (self.first_day(), date(self.year, 12, 18));
        let spring = (date(self.year + 1, 1, 8), self.last_day());
        let whole = (self.first_day(), self.last_day());
        for school in schools {
            for groep in 1..=8u8 {
                let (chance, kind, window, title): (f64, &str, _, &str) = match groep {
                    1 | 2 => (
                        0.02 + 0.12 * self.growth,
                        "leskist",
                        whole,
                        "Leskist: bouwen met zonne-energie",
                    ),
                    3..=6 => (
                        0.06 + 0.24 * self.growth,
                        "tec_experience",
                        whole,
                        "TEC Experience: programmeer een robot",
                    ),
                    _ => (
                        0.25 + 0.45 * self.growth,
                        "proeverij",
                        autumn,
                        "Techniekproeverij",
                    ),
                };
                if !self.rng.random_bool(chance) {
                    continue;
                }
                let pupils = self.world.po[school].groep[y][usize::from(groep) - 1];
                let girls = pupils / 2;
                let class = self.po_class(school, groep);
                let activity = self.activity(kind, window, &["po"], title);
                self.class_at(&activity, class.clone(), girls, pupils - girls);
                // Some classes come back, for a company visit in spring.
                if groep >= 7 && self.rng.random_bool(0.35) {
                    let visit = self.activity("bedrijfsbezoek", spring, &["po"], "Bedrijfsbezoek");
                    self.class_at(&visit, class, girls, pupils - girls);
                }
            }
        }
    }

    fn vo_classes(&mut self) {
        let y = (self.year - FIRST_YEAR) as usize;
        let whole = (self.first_day(), self.last_day());
        let schools: Vec<usize> = (0..self.world.vo.len())
            .filter(|&i| {
                let s = &self.world.vo[i];
                s.municipality == self.hub.municipality
                    && s.reached_from.is_some_and(|f| f <= self.year)
            })
            .collect();
        for school in schools {
            let offers = self.world.vo[school].offers.clone();
            let candidates: Vec<(VoOnderwijstype, u8)> = offers
                .into_iter()
                .flat_map(|o| (1..=3u8).map(move |leerjaar| (o, leerjaar)))
                .filter(|(o, leerjaar)| !(o.as_str().starts_with("vmbo") && *leerjaar == 3))
                .collect();
            let mut classes: Vec<_> = candidates
                .iter()
                .copied()
                .filter(|_| self.rng.random_bool(0.15))
                .collect();
            // A school is reached in the school year the world says (its effect
            // starts from there): one class at least takes part that year.
            if classes.is_empty() && self.world.vo[school].reached_from == Some(self.year) {
                classes.extend(candidates.first());
            }
            for (onderwijstype, leerjaar) in classes {
                let (boys, girls) = self.world.vo[school].cohort(y, onderwijstype, leerjaar);
                let (kind, title) = if self.rng.random_bool(0.5) {
                    ("bedrijfsbezoek", "Bedrijfsbezoek maakindustrie")
                } else {
                    ("challenge", "Duurzaamheidschallenge")
                };
                let activity = self.activity(kind, whole, &["vo"], title);
                let class = ClassKey {
                    hub: self.hub_index,
                    year: self.year,
                    sector: "VO",
                    school: self.world.vo[school].brin6.clone(),
                    groep: None,
                    leerjaar: Some(leerjaar),
                    onderwijstype: Some(onderwijstype.as_str()),
                };
                self.class_at(&activity, class, girls, boys);
            }
        }
    }

    fn mbo_classes(&mut self) {
        let Some(college) = self
            .world
            .mbo
            .iter()
            .find(|c| c.municipality == self.hub.municipality)
        else {
            return;
        };
        let brin6 = college.brin6.clone();
        let whole = (self.first_day(), self.last_day());
        for _ in 0..self.rng.random_range(1..=3 + (3.0 * self.growth) as usize) {
            let leerjaar = self.rng.random_range(1..=3u8);
            let level = ["mbo-2", "mbo-3", "mbo-4"][self.rng.random_range(0..3)];
            let activity =
                self.activity("workshop", whole, &["mbo"], "Workshop slimme installaties");
            let class = ClassKey {
                hub: self.hub_index,
                year: self.year,
                sector: "MBO",
                school: brin6.clone(),
                groep: None,
                leerjaar: Some(leerjaar),
                onderwijstype: Some(level),
            };
            let (girls, boys) = (self.rng.random_range(1..6), self.rng.random_range(8..20));
            self.class_at(&activity, class, girls, boys);
        }
    }

    /// Girlsday, on the second Thursday of April: the girls of groep 7 or 8 of a
    /// quarter of the hub's PO schools.
    fn girlsday(&mut self) {
        let mut day = date(self.year + 1, 4, 8);
        while day.weekday() != Weekday::Thu {
            day += Duration::days(1);
        }
        let activity = self.activity_on(day, 9, "girlsday", &["po", "vo"], "Girlsday");
        let y = (self.year - FIRST_YEAR) as usize;
        let schools: Vec<usize> = (0..self.world.po.len())
            .filter(|&i| self.world.po[i].municipality == self.hub.municipality)
            .filter(|_| self.rng.random_bool(0.25))
            .collect();
        for school in schools {
            let groep = self.rng.random_range(7..=8u8);
            let girls = self.world.po[school].groep[y][usize::from(groep) - 1] / 2;
            let class = self.po_class(school, groep);
            self.class_at(&activity, class, girls, 0);
        }
    }

    /// Registers a person with the hub: returns its id and the hub's reference.
    fn register(
        &mut self,
        at: NaiveDateTime,
        born: i32,
        who: Registered,
        details: Map<String, Value>,
        with_email: bool,
    ) -> Option<(PersonId, String)> {
        let (person, name, birth) = self.region.person(self.rng, born);
        self.region.participant_counter[self.hub_index] += 1;
        let reference = format!(
            "{}-P-{:06}",
            self.hub.prefix, self.region.participant_counter[self.hub_index]
        );
        let (_, pc4) = TOWN_PC4
            .iter()
            .find(|(m, _)| *m == self.hub.municipality)
            .copied()
            .unwrap_or(("", 7411));
        let gender = ["female", "male", "male", "female", "other"][self.rng.random_range(0..5)];
        let mut payload = json!({
            "participant_ref": reference, "name": name, "birth_date": birth.to_string(),
            "postcode": format!("{} {}{}", pc4 + self.rng.random_range(0..20),
                                char::from(b'A' + self.rng.random_range(0..26u8)),
                                char::from(b'A' + self.rng.random_range(0..26u8))),
            "gender": gender, "role": who.role, "consent_research": self.rng.random_bool(0.9),
        });
        if with_email {
            let local: String = name
                .to_lowercase()
                .chars()
                .map(|c| if c.is_ascii_alphabetic() { c } else { '.' })
                .collect();
            payload["email"] = json!(format!("{local}.{person}@example.org"));
            payload["phone"] = json!(format!("+31 6 {:08}", person));
        }
        if let Some(sector) = who.sector {
            payload["sector"] = json!(sector);
        }
        if let Some(groep) = who.groep {
            payload["groep"] = json!(groep);
        }
        for (k, v) in details {
            payload[k] = v;
        }
        if !self.emit(at, "participant_registered", payload) {
            return None;
        }
        self.tally.registered.insert(person, who);
        Some((person, reference))
    }

    fn attend(&mut self, activity: &Activity, person: PersonId, reference: &str) -> bool {
        let at = activity.ends;
        if !self.emit(
            at,
            "participant_attended",
            json!({"activity_id": activity.id, "participant_ref": reference}),
        ) {
            return false;
        }
        self.tally
            .attended
            .insert((self.hub_index, self.year, person));
        true
    }

    fn teachers(&mut self) {
        let sessions: Vec<Activity> = (0..self.rng.random_range(2..=4))
            .map(|_| {
                let window = (self.first_day(), self.last_day());
                self.activity(
                    "docentprofessionalisering",
                    window,
                    &["teachers"],
                    "Techniek in de klas",
                )
            })
            .collect();
        let teachers =
            ((4.0 + 18.0 * self.growth) * self.size).round() as usize + self.rng.random_range(0..4);
        for _ in 0..teachers {
            let school = &self.world.po[self.rng.random_range(0..self.world.po.len())];
            let details = Map::from_iter([("school_brin6".to_string(), json!(school.brin6))]);
            let first = sessions.iter().map(|s| s.starts).min().unwrap_or_default();
            let who = Registered {
                sector: Some("PO"),
                groep: None,
                role: "teacher",
            };
            let born = self.rng.random_range(1965..2000);
            let Some((person, reference)) =
                self.register(first - Duration::days(7), born, who, details, true)
            else {
                continue;
            };
            let attends: Vec<usize> = (0..sessions.len())
                .filter(|_| self.rng.random_bool(0.6))
                .collect();
            for i in attends {
                if self.attend(&sessions[i], person, &reference) {
                    self.tally
                        .professionalised
                        .insert((self.hub_index, self.year, person));
                }
            }
        }
    }

    fn parents(&mut self) {
        let sessions: Vec<Activity> = (0..self.rng.random_range(2..=5))
            .map(|_| {
                let window = (self.first_day(), self.last_day());
                self.activity(
                    "ouderbijeenkomst",
                    window,
                    &["parents"],
                    "Ouderavond: kiezen voor techniek",
                )
            })
            .collect();
        let parents = ((30.0 + 180.0 * self.growth) * self.size).round() as usize
            + self.rng.random_range(0..20);
        for _ in 0..parents {
            let session = self.rng.random_range(0..sessions.len());
            let who = Registered {
                sector: None,
                groep: None,
                role: "parent",
            };
            let born = self.rng.random_range(1975..1995);
            let at = sessions[session].starts - Duration::days(3);
            if let Some((person, reference)) = self.register(at, born, who, Map::new(), true) {
                self.attend(&sessions[session], person, &reference);
            }
        }
    }

    /// Adult work-learning routes (werkleerroute): about 60% end in work.
    fn work_learning_routes(&mut self) {
        let window = (self.first_day(), date(self.year + 1, 3, 31));
        self.activity(
            "werkleerroute",
            window,
            &["adults"],
            "Informatiebijeenkomst werkleerroute",
        );
        for n in 0..self.rng.random_range(4..12) {
            let start = school_day(self.rng, window.0, window.1)
                .and_hms_opt(10, 0, 0)
                .unwrap_or_default();
            let who = Registered {
                sector: None,
                groep: None,
                role: "adult",
            };
            let born = self.rng.random_range(1965..2002);
            let Some((_, reference)) =
                self.register(start - Duration::days(14), born, who, Map::new(), true)
            else {
                continue;
            };
            let trajectory = format!("{}-LWR-{}-{n:03}", self.hub.prefix, self.year);
            let route = ["installatietechniek", "metaal", "elektrotechniek", "bouw"][n % 4];
            self.emit(
                start,
                "trajectory_started",
                json!({"trajectory_id": trajectory, "participant_ref": reference, "route": route}),
            );
            let end = start + Duration::days(self.rng.random_range(90..240));
            let outcome = match self.rng.random_range(0..100) {
                0..60 => "work",
                60..75 => "education",
                75..85 => "returned",
                _ => "dropped",
            };
            self.emit(
                end,
                "trajectory_ended",
                json!({"trajectory_id": trajectory, "participant_ref": reference, "outcome": outcome}),
            );
        }
    }

    /// An after-school club meeting twice a week: 10–14 children (PO groep 4–8 or
    /// VO leerjaar 1–2), registered individually, attendance per session.
    fn club(&mut self) {
        let weekday = self.rng.random_range(0..3);
        let mut sessions = Vec::new();
        for day in club_days(self.year, weekday) {
            sessions.push(self.activity_on(day, 15, "naschools", &["po", "vo"], "Techniekclub"));
        }
        let Some(first) = sessions.first().map(|s| s.starts) else {
            return;
        };
        for _ in 0..self.rng.random_range(10..=14) {
            let (who, details, born, email) = if self.rng.random_bool(0.55) {
                let groep = self.rng.random_range(4..=8u8);
                let school = &self.world.po[self.rng.random_range(0..self.world.po.len())];
                let details = Map::from_iter([("school_brin6".to_string(), json!(school.brin6))]);
                let who = Registered {
                    sector: Some("PO"),
                    groep: Some(groep),
                    role: "pupil",
                };
                (who, details, self.year - 4 - i32::from(groep), false)
            } else {
                let leerjaar = self.rng.random_range(1..=2u8);
                let region: Vec<&VoSchool> = self
                    .world
                    .vo
                    .iter()
                    .filter(|s| s.region == Some(self.hub.region))
                    .collect();
                let school = region[self.rng.random_range(0..region.len())];
                let onderwijstype = school.offers[self.rng.random_range(0..school.offers.len())];
                let details = Map::from_iter([
                    ("school_brin6".to_string(), json!(school.brin6)),
                    ("leerjaar".to_string(), json!(leerjaar)),
                    ("onderwijstype".to_string(), json!(onderwijstype.as_str())),
                ]);
                let who = Registered {
                    sector: Some("VO"),
                    groep: None,
                    role: "pupil",
                };
                (
                    who,
                    details,
                    self.year - 12 - i32::from(leerjaar),
                    self.rng.random_bool(0.5),
                )
            };
            let Some((person, reference)) =
                self.register(first - Duration::days(5), born, who, details, email)
            else {
                continue;
            };
            let mut last = None;
            for (i, session) in sessions.iter().enumerate() {
                if self.rng.random_bool(0.85) && self.attend(session, person, &reference) {
                    last = Some(i);
                }
            }
            let Some(last) = last else {
                continue;
            };
            if self.rng.random_bool(0.4) {
                let score = f64::from(self.rng.random_range(6..=10u32));
                self.survey(
                    &sessions[last],
                    "pupil",
                    score,
                    10,
                    Some((person, &reference)),
                );
            }
            // A few withdraw their consent after their last club day.
            if self.rng.random_bool(0.01) {
                let at = sessions[last].ends + Duration::days(2);
                if self.emit(
                    at,
                    "consent_withdrawn",
                    json!({"participant_ref": reference}),
                ) {
                    self.tally.withdrawn.insert(person);
                }
            }
        }
    }

    fn partners_and_ambassadors(&mut self) {
        let hub = self.hub_index;
        let joins = if self.year == self.hub.first_year {
            self.rng.random_range(6..=10)
        } else {
            self.rng.random_range(3..=9)
        };
        for _ in 0..joins {
            self.region.partner_counter[hub] += 1;
            let id = format!("partner-{:03}", self.region.partner_counter[hub]);
            let name = format!(
                "{} {} B.V.",
                COMPANIES[self.rng.random_range(0..COMPANIES.len())],
                LAST_NAMES[self.rng.random_range(0..LAST_NAMES.len())]
            );
            let at = school_day(self.rng, self.first_day(), self.last_day())
                .and_hms_opt(11, 0, 0)
                .unwrap_or_default();
            let kind = [
                "company",
                "company",
                "company",
                "education",
                "government",
                "other",
            ][self.rng.random_range(0..6)];
            if self.emit(
                at,
                "partner_joined",
                json!({"partner_id": id, "organisation_name": name, "organisation_kind": kind, "contribution": "membership"}),
            ) {
                self.tally.partner_changes.push((hub, id.clone(), self.year, true));
                self.region.partners[hub].push(id);
            }
        }
        // Partners that joined in an earlier year may leave.
        for _ in 0..self.rng.random_range(0..=2) {
            let earlier: Vec<usize> = (0..self.region.partners[hub].len())
                .filter(|&i| {
                    let id = &self.region.partners[hub][i];
                    self.tally
                        .partner_changes
                        .iter()
                        .any(|(h, p, y, joined)| *h == hub && p == id && *joined && *y < self.year)
                })
                .collect();
            if earlier.is_empty() {
                break;
            }
            let id =
                self.region.partners[hub].remove(earlier[self.rng.random_range(0..earlier.len())]);
            let at = school_day(self.rng, self.first_day(), self.last_day())
                .and_hms_opt(12, 0, 0)
                .unwrap_or_default();
            if self.emit(
                at,
                "partner_left",
                json!({"partner_id": id, "reason": "andere prioriteiten"}),
            ) {
                self.tally.partner_changes.push((hub, id, self.year, false));
            } else {
                self.region.partners[hub].push(id);
            }
        }
        for _ in 0..self.rng.random_range(1..=4) {
            self.region.ambassador_counter[hub] += 1;
            let reference = format!("amb-{:04}", self.region.ambassador_counter[hub]);
            let (person, name, _) = self.region.person(self.rng, 1970);
            let at = school_day(self.rng, self.first_day(), self.last_day())
                .and_hms_opt(16, 0, 0)
                .unwrap_or_default();
            let email = format!("ambassadeur.{person}@example.org");
            if self.emit(
                at,
                "ambassador_committed",
                json!({"ambassador_ref": reference, "name": name, "email": email, "organisation_name": COMPANIES[person as usize % COMPANIES.len()]}),
            ) {
                self.tally.ambassadors.push((hub, reference, self.year));
            }
        }
    }

    /// Profile choices hubs hear back from schools they reach: counts of former
    /// participants per profile in leerjaar 3 (vmbo) and 4 (havo/vwo).
    fn profile_choices(&mut self) {
        let y = (self.year - FIRST_YEAR) as usize;
        let schools: Vec<usize> = (0..self.world.vo.len())
            .filter(|&i| {
                let s = &self.world.vo[i];
                s.municipality == self.hub.municipality
                    && s.reached_from.is_some_and(|f| f < self.year)
            })
            .collect();
        let at = date(self.year, 10, 1)
            .and_hms_opt(12, 0, 0)
            .unwrap_or_default();
        for school in schools {
            let cells: Vec<_> = self.world.vo[school].cells[y]
                .iter()
                .filter(|c| {
                    c.profile.is_some()
                        && crate::duo_files::vo_track(c.onderwijstype, c.leerjaar).is_some()
                })
                .cloned()
                .collect();
            for cell in cells {
                // About a third of the pupils took part earlier.
                let count = (cell.boys + cell.girls) / 3;
                let (Some(profile), true) = (cell.profile, count > 0) else {
                    continue;
                };
                let onderwijstype: VoOnderwijstype = cell.onderwijstype;
                self.emit(
                    at,
                    "profile_chosen",
                    json!({
                        "school_brin6": self.world.vo[school].brin6, "school_year": SchoolYear::new(self.year),
                        "leerjaar": cell.leerjaar, "onderwijstype": onderwijstype.as_str(),
                        "profile_code": profile, "count": count,
                    }),
                );
            }
        }
    }
}
