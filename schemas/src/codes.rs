//! Reference code lists: hubs, the zeven werelden van techniek, VO profiles with
//! their technical flag, the KPI targets, and school years.
//!
//! The lists live in `schemas/codes/*.json`, embedded in the binary and parsed on
//! first use.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::LazyLock;

use chrono::{Datelike, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::event::VoOnderwijstype;

// ---------------------------------------------------------------------------
// School years

/// A Dutch school year (schooljaar), running from 1 August to 31 July; written
/// `2024/25`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SchoolYear {
    /// The calendar year the school year starts in (2024 for 2024/25).
    pub start: i32,
}

impl SchoolYear {
    /// The school year starting in August of `start`.
    pub const fn new(start: i32) -> Self {
        Self { start }
    }

    /// Parses `2024/25`: four digits, a slash, and the last two digits of the next
    /// year.
    pub fn parse(s: &str) -> Option<Self> {
        let (first, second) = s.split_once('/')?;
        if first.len() != 4
            || second.len() != 2
            || !first
                .bytes()
                .chain(second.bytes())
                .all(|b| b.is_ascii_digit())
        {
            return None;
        }
        let start: i32 = first.parse().ok()?;
        let end: i32 = second.parse().ok()?;
        (end == (start + 1) % 100).then_some(Self { start })
    }

    /// The school year a date falls in.
    pub fn containing(date: NaiveDate) -> Self {
        if date.month() >= 8 {
            Self { start: date.year() }
        } else {
            Self {
                start: date.year() - 1,
            }
        }
    }

    /// 1 August of the start year.
    pub fn first_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.start, 8, 1)
            .expect("1 August exists in every year chrono supports")
    }

    /// 31 July of the next year.
    pub fn last_day(self) -> NaiveDate {
        NaiveDate::from_ymd_opt(self.start + 1, 7, 31)
            .expect("31 July exists in every year chrono supports")
    }

    /// Whether `date` lies in this school year.
    pub fn contains(self, date: NaiveDate) -> bool {
        Self::containing(date) == self
    }

    /// The school year after this one.
    pub const fn next(self) -> Self {
        Self {
            start: self.start + 1,
        }
    }
}

impl fmt::Display for SchoolYear {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}/{:02}",
            self.start,
            (self.start + 1).rem_euclid(100)
        )
    }
}

impl std::str::FromStr for SchoolYear {
    type Err = crate::UnknownCode;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::parse(s).ok_or(crate::UnknownCode { list: "SchoolYear" })
    }
}

impl Serialize for SchoolYear {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for SchoolYear {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Visitor;
        impl serde::de::Visitor<'_> for Visitor {
            type Value = SchoolYear;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a school year such as 2024/25")
            }
            fn visit_str<E: serde::de::Error>(self, s: &str) -> Result<SchoolYear, E> {
                SchoolYear::parse(s).ok_or_else(|| E::custom("not a school year such as 2024/25"))
            }
        }
        deserializer.deserialize_str(Visitor)
    }
}

// ---------------------------------------------------------------------------
// Code lists

/// A technology hub (techniekhub).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Hub {
    /// The code used as `hub_id` in events, such as `tec-deventer`.
    pub id: String,
    pub name: String,
    /// The municipality (gemeente) the hub is in.
    pub municipality: String,
    /// The id of the region the hub works in.
    pub region: String,
}

/// A region whose hubs share a KPI set and targets: its municipalities are where its
/// schools are (DUO's counts of the region).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Region {
    /// Such as `cleantech-regio`.
    pub id: String,
    pub name: String,
    /// Its municipalities (gemeenten), as DUO writes them.
    pub municipalities: Vec<String>,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RegionFile {
    source: String,
    regions: Vec<Region>,
}

/// One of the zeven werelden van techniek.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// 1 to 7, as used in `activity_held.worlds`.
    pub number: u8,
    pub name: String,
}

/// A VO profile (profiel) a pupil can choose, as used in `profile_chosen.profile_code`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Such as `PIE` or `N&T`.
    pub code: String,
    pub name: String,
    /// The onderwijstypes that offer the profile.
    pub onderwijstypes: Vec<VoOnderwijstype>,
    /// Technical per the Monitor Techniekpact definition.
    pub technical: bool,
}

impl Profile {
    /// Whether the profile is offered in `onderwijstype`.
    pub fn offered_in(&self, onderwijstype: VoOnderwijstype) -> bool {
        self.onderwijstypes.contains(&onderwijstype)
    }
}

/// What a KPI target counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum KpiUnit {
    /// A number of people or organisations.
    Count,
    /// A share, in percent (0 to 100).
    Percent,
    /// A change versus a baseline, in percent (points or relative: see the KPI's description).
    PercentChange,
    /// A score on a 10-point scale.
    #[serde(rename = "score_10")]
    Score10,
}

impl KpiUnit {
    /// The name used in `kpi_targets.json`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Count => "count",
            Self::Percent => "percent",
            Self::PercentChange => "percent_change",
            Self::Score10 => "score_10",
        }
    }
}

/// The yearly targets of one KPI (or one band of a KPI).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KpiTarget {
    /// Such as `vo_pupils` or `po_participation_share`.
    pub kpi: String,
    /// The band for KPIs split in bands (`groep_1_2`, `groep_3_6`, `groep_7_8`).
    pub band: Option<String>,
    pub unit: KpiUnit,
    pub description: String,
    /// Target per year; `None` where the source sets no target for a year.
    pub targets: BTreeMap<i32, Option<f64>>,
}

impl KpiTarget {
    /// The target for `year`, if one is set.
    pub fn target(&self, year: i32) -> Option<f64> {
        self.targets.get(&year).copied().flatten()
    }
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct KpiFile {
    source: String,
    /// The region whose targets these are.
    region: String,
    kpis: Vec<KpiTarget>,
}

fn load<T: serde::de::DeserializeOwned>(name: &str, text: &str) -> T {
    match serde_json::from_str(text) {
        Ok(value) => value,
        // The files are part of the crate: a parse failure is a programming error.
        Err(e) => panic!("embedded code list codes/{name} is invalid: {e}"),
    }
}

static HUBS: LazyLock<Vec<Hub>> =
    LazyLock::new(|| load("hubs.json", include_str!("../codes/hubs.json")));
static REGIONS: LazyLock<RegionFile> =
    LazyLock::new(|| load("regions.json", include_str!("../codes/regions.json")));
static WORLDS: LazyLock<Vec<World>> =
    LazyLock::new(|| load("worlds.json", include_str!("../codes/worlds.json")));
static PROFILES: LazyLock<Vec<Profile>> =
    LazyLock::new(|| load("profiles.json", include_str!("../codes/profiles.json")));
static KPIS: LazyLock<KpiFile> = LazyLock::new(|| {
    load(
        "kpi_targets.json",
        include_str!("../codes/kpi_targets.json"),
    )
});

/// The KPI groep band of a PO pupil aged `age` on DUO's peildatum, 1 October: 4–5
/// is groep 1–2, 6–9 groep 3–6, 10 and older groep 7–8; 3 or younger is not yet in
/// school. The usual age per groep (doubling and skipping aside).
pub fn po_band_of_age(age: u8) -> Option<&'static str> {
    match age {
        0..=3 => None,
        4 | 5 => Some("groep_1_2"),
        6..=9 => Some("groep_3_6"),
        _ => Some("groep_7_8"),
    }
}

/// The hubs known when this build was made. Hubs that join later may send events
/// before the list is updated: event validation does not check `hub_id` against it.
pub fn hubs() -> &'static [Hub] {
    &HUBS
}

/// The hub with code `id`.
pub fn hub(id: &str) -> Option<&'static Hub> {
    HUBS.iter().find(|h| h.id == id)
}

/// The regions known when this build was made; more join at run time.
pub fn regions() -> &'static [Region] {
    &REGIONS.regions
}

/// Where the built-in regions come from.
pub fn regions_source() -> &'static str {
    &REGIONS.source
}

/// The zeven werelden van techniek, 1 to 7.
pub fn worlds() -> &'static [World] {
    &WORLDS
}

/// The world with number `number` (1 to 7).
pub fn world(number: u8) -> Option<&'static World> {
    WORLDS.iter().find(|w| w.number == number)
}

/// All VO profiles.
pub fn profiles() -> &'static [Profile] {
    &PROFILES
}

/// The profile with code `code` (exact, case-sensitive: `MaT` and `M&T` differ).
pub fn profile(code: &str) -> Option<&'static Profile> {
    PROFILES.iter().find(|p| p.code == code)
}

/// All KPI targets (one entry per KPI, or per KPI and band), from seed 003.
///
/// The seed names the middle PO band "Gr 2 – 6", overlapping groep 1–2; like
/// DESIGN.md we read it as groep 3–6 (band `groep_3_6`).
pub fn kpi_targets() -> &'static [KpiTarget] {
    &KPIS.kpis
}

/// The targets of `kpi` (and `band`, for banded KPIs).
pub fn kpi_target(kpi: &str, band: Option<&str>) -> Option<&'static KpiTarget> {
    KPIS.kpis
        .iter()
        .find(|k| k.kpi == kpi && k.band.as_deref() == band)
}

/// The region the built-in KPI targets are for.
pub fn kpi_targets_region() -> &'static str {
    &KPIS.region
}

/// Where the KPI targets come from.
pub fn kpi_targets_source() -> &'static str {
    &KPIS.source
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn school_year_parse_and_display() {
        let y = SchoolYear::parse("2024/25").expect("valid");
        assert_eq!(y, SchoolYear::new(2024));
        assert_eq!(y.to_string(), "2024/25");
        assert_eq!(SchoolYear::parse("1999/00"), Some(SchoolYear::new(1999)));
        assert_eq!(SchoolYear::new(1999).to_string(), "1999/00");
        for bad in [
            "2024/26",
            "2024/2025",
            "2024-25",
            "24/25",
            "2024/",
            "/25",
            "2024/2a",
            "+024/25",
            "2024/25 ",
            "",
        ] {
            assert_eq!(SchoolYear::parse(bad), None, "{bad:?}");
        }
        assert_eq!("2023/24".parse::<SchoolYear>(), Ok(SchoolYear::new(2023)));
    }

    #[test]
    fn school_year_containing() {
        let d = |y, m, d| NaiveDate::from_ymd_opt(y, m, d).expect("valid date");
        assert_eq!(SchoolYear::containing(d(2024, 8, 1)), SchoolYear::new(2024));
        assert_eq!(
            SchoolYear::containing(d(2024, 7, 31)),
            SchoolYear::new(2023)
        );
        assert_eq!(
            SchoolYear::containing(d(2025, 1, 15)),
            SchoolYear::new(2024)
        );
        assert_eq!(
            SchoolYear::containing(d(2024, 12, 31)),
            SchoolYear::new(2024)
        );
        let y = SchoolYear::new(2024);
        assert_eq!(y.first_day(), d(2024, 8, 1));
        assert_eq!(y.last_day(), d(2025, 7, 31));
        assert!(y.contains(d(2025, 7, 31)));
        assert!(!y.contains(d(2025, 8, 1)));
        assert_eq!(y.next(), SchoolYear::new(2025));
    }

    #[test]
    fn school_year_serde() {
        let y: SchoolYear = serde_json::from_str("\"2024/25\"").expect("valid");
        assert_eq!(
            serde_json::to_string(&y).expect("serialises"),
            "\"2024/25\""
        );
        let err = serde_json::from_str::<SchoolYear>("\"Canary/25\"").expect_err("invalid");
        assert!(!err.to_string().contains("anary"));
    }

    #[test]
    fn hubs_and_worlds_load() {
        let ids: Vec<&str> = hubs().iter().map(|h| h.id.as_str()).collect();
        assert_eq!(
            ids,
            [
                "newtechpark",
                "tec-deventer",
                "techniekfabriek",
                "techniekbrouwerij",
                "techniekhuis-lochem"
            ]
        );
        assert_eq!(
            hub("tec-deventer").map(|h| h.municipality.as_str()),
            Some("Deventer")
        );
        assert_eq!(
            hub("newtechpark").map(|h| h.municipality.as_str()),
            Some("Apeldoorn")
        );
        assert_eq!(
            hub("techniekfabriek").map(|h| h.municipality.as_str()),
            Some("Zutphen")
        );
        assert_eq!(
            hub("techniekbrouwerij").map(|h| h.municipality.as_str()),
            Some("Epe")
        );
        assert!(hubs().iter().all(|h| h.region == "cleantech-regio"));
        let cleantech = &regions()[0];
        assert_eq!(cleantech.id, kpi_targets_region());
        assert!(
            hubs()
                .iter()
                .all(|h| cleantech.municipalities.contains(&h.municipality)),
            "{}",
            regions_source()
        );
        assert_eq!(worlds().len(), 7);
        for (i, w) in worlds().iter().enumerate() {
            assert_eq!(usize::from(w.number), i + 1);
        }
        assert_eq!(
            world(6).map(|w| w.name.as_str()),
            Some("Digitaal, Media & Entertainment")
        );
        assert_eq!(world(8), None);
    }

    #[test]
    fn profiles_have_the_stated_technical_flags() {
        use VoOnderwijstype::*;
        for code in ["BWI", "PIE", "MVI", "M&T", "MaT"] {
            let p = profile(code).expect(code);
            assert!(p.technical, "{code}");
            assert_eq!(p.onderwijstypes, [VmboBb, VmboKb, VmboGl], "{code}");
        }
        for code in ["D&P", "Z&W", "E&O", "HBR", "G"] {
            let p = profile(code).expect(code);
            assert!(!p.technical, "{code}");
            assert!(!p.offered_in(Havo) && !p.offered_in(Vwo), "{code}");
        }
        for code in ["N&T", "N&G", "N&T+N&G"] {
            let p = profile(code).expect(code);
            assert!(p.technical, "{code}");
            assert_eq!(p.onderwijstypes, [Havo, Vwo], "{code}");
        }
        for code in ["E&M", "C&M"] {
            let p = profile(code).expect(code);
            assert!(!p.technical, "{code}");
            assert_eq!(p.onderwijstypes, [Havo, Vwo], "{code}");
        }
        assert_eq!(profiles().len(), 15);
        assert_eq!(profile("pie"), None);
        let mut codes: Vec<&str> = profiles().iter().map(|p| p.code.as_str()).collect();
        codes.sort_unstable();
        codes.dedup();
        assert_eq!(codes.len(), profiles().len(), "profile codes are unique");
    }

    #[test]
    fn kpi_targets_match_the_seed() {
        let t = |kpi: &str, band: Option<&str>| {
            kpi_target(kpi, band).unwrap_or_else(|| panic!("{kpi} {band:?}"))
        };
        let years =
            |k: &KpiTarget| -> Vec<Option<f64>> { (2023..=2026).map(|y| k.target(y)).collect() };
        let some = |v: [f64; 4]| v.map(Some).to_vec();
        assert_eq!(
            years(t("po_participation_share", Some("groep_1_2"))),
            some([0.0, 5.0, 10.0, 10.0])
        );
        assert_eq!(
            years(t("po_participation_share", Some("groep_3_6"))),
            some([0.0, 10.0, 15.0, 25.0])
        );
        assert_eq!(
            years(t("po_participation_share", Some("groep_7_8"))),
            some([25.0, 50.0, 70.0, 80.0])
        );
        assert_eq!(
            years(t("vo_pupils", None)),
            some([40.0, 100.0, 150.0, 300.0])
        );
        assert_eq!(
            years(t("mbo_students", None)),
            [None, Some(15.0), Some(30.0), Some(50.0)]
        );
        assert_eq!(years(t("parents", None)), some([50.0, 75.0, 150.0, 200.0]));
        assert_eq!(
            years(t("teachers_professionalised", None)),
            some([4.0, 10.0, 15.0, 20.0])
        );
        assert_eq!(
            years(t("technical_profile_change_vs_2022", None)),
            [None, None, Some(3.0), Some(4.0)]
        );
        assert_eq!(years(t("satisfaction", None)), some([7.0, 8.0, 8.0, 8.0]));
        assert_eq!(
            years(t("affiliated_organisations", None)),
            some([20.0, 40.0, 60.0, 80.0])
        );
        assert_eq!(years(t("ambassadors", None)), some([5.0, 10.0, 15.0, 20.0]));
        assert_eq!(kpi_targets().len(), 11);
        assert_eq!(t("satisfaction", None).unit, KpiUnit::Score10);
        assert_eq!(
            t("po_participation_share", Some("groep_7_8")).unit,
            KpiUnit::Percent
        );
        assert!(kpi_targets_source().contains("3 to 6"));
    }
}
