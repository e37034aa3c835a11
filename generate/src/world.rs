//! The synthetic world: two regions (the Cleantech Regio, built into techmon, and
//! Noord-Veluwe, which joins at run time), their hubs, schools and pupils per school
//! year. Everything the events and the DUO files say is drawn from this one world, so
//! the ground truth can be computed from it.

use rand::Rng;
use rand::rngs::StdRng;
use techmon_schemas::VoOnderwijstype;
use techmon_schemas::codes;

/// The school years the region covers: 2021/22 to 2026/27 (by start year).
pub const FIRST_YEAR: i32 = 2021;
pub const LAST_YEAR: i32 = 2026;
pub const YEARS: usize = (LAST_YEAR - FIRST_YEAR + 1) as usize;

/// Schools the hubs reach have this much higher a technical share from the start
/// (selection: hubs reach the schools already keen on technology), so comparing
/// reached with other schools overstates the effect; comparing changes does not.
pub const SELECTION_PP: f64 = 4.0;
/// Every school's technical share drifts by this much a year (the national trend).
pub const NATIONAL_TREND_PP_PER_YEAR: f64 = 0.3;

pub struct Hub {
    pub id: &'static str,
    pub name: &'static str,
    /// The region it works in (see [`REGIONS`]).
    pub region: &'static str,
    /// The hub's own prefix for participant references (`NTP-P-000731`).
    pub prefix: &'static str,
    pub municipality: &'static str,
    /// The first school year the hub reports; a hub that joins later starts there.
    pub first_year: i32,
    /// The built-in effect: from the school year after the hub first reaches a VO
    /// school, its pupils choose a technical profile this many percentage points
    /// more often for every school year since (e school years after the first
    /// counted: (e + 1) times this).
    pub effect_pp_per_year: f64,
}

/// The hubs: the five of the code list and two of Noord-Veluwe, when each starts
/// reporting, and the effect each has (none for techniekfabriek, so that an estimate
/// of zero is checked too). Lochem joins in 2025/26.
pub const HUBS: &[Hub] = &[
    Hub {
        id: "newtechpark",
        name: "NewTechPark",
        region: CLEANTECH,
        prefix: "NTP",
        municipality: "Apeldoorn",
        first_year: 2021,
        effect_pp_per_year: 1.5,
    },
    Hub {
        id: "tec-deventer",
        name: "Technicampus Experience Center",
        region: CLEANTECH,
        prefix: "TEC",
        municipality: "Deventer",
        first_year: 2021,
        effect_pp_per_year: 2.5,
    },
    Hub {
        id: "techniekfabriek",
        name: "Techniekfabriek",
        region: CLEANTECH,
        prefix: "TFZ",
        municipality: "Zutphen",
        first_year: 2021,
        effect_pp_per_year: 0.0,
    },
    Hub {
        id: "techniekbrouwerij",
        name: "Techniekbrouwerij",
        region: CLEANTECH,
        prefix: "TBE",
        municipality: "Epe",
        first_year: 2021,
        effect_pp_per_year: 1.0,
    },
    Hub {
        id: "techniekhuis-lochem",
        name: "Techniekhuis Lochem",
        region: CLEANTECH,
        prefix: "THL",
        municipality: "Lochem",
        first_year: 2025,
        effect_pp_per_year: 2.0,
    },
    Hub {
        id: "techlab-harderwijk",
        name: "Techlab Harderwijk",
        region: NOORD_VELUWE,
        prefix: "TLH",
        municipality: "Harderwijk",
        first_year: 2022,
        effect_pp_per_year: 3.0,
    },
    Hub {
        id: "techlab-elburg",
        name: "Techlab Elburg",
        region: NOORD_VELUWE,
        prefix: "TLE",
        municipality: "Elburg",
        first_year: 2022,
        effect_pp_per_year: 1.0,
    },
];

const CLEANTECH: &str = "cleantech-regio";
const NOORD_VELUWE: &str = "noord-veluwe";

/// A region of the world: built into techmon, or one that joins while it runs.
pub struct Region {
    pub id: &'static str,
    /// `None`: built in (its name, municipalities and seed 003's targets are techmon's).
    pub joins: Option<Joining>,
}

/// A region that joins while techmon runs: an administrator registers its row, its
/// hubs, and its KPI set and targets.
pub struct Joining {
    pub name: &'static str,
    pub municipalities: &'static [&'static str],
    pub targets: &'static [Target],
}

/// One row of a joining region's targets (`techmon targets import`).
pub struct Target {
    /// A hub's own target; `None`: the region's.
    pub hub: Option<&'static str>,
    pub kpi: &'static str,
    pub band: Option<&'static str>,
    pub year: i32,
    /// `None`: the KPI is in the region's set, its target still to be set.
    pub target: Option<f64>,
}

const fn target(kpi: &'static str, year: i32, target: Option<f64>) -> Target {
    Target {
        hub: None,
        kpi,
        band: None,
        year,
        target,
    }
}

/// The regions: the Cleantech Regio as techmon has it built in, and Noord-Veluwe
/// (seed 004's Techniekpact 2.0 plan: pupils to excursions and technical intake into
/// vmbo and mbo; its SMART targets partly still to be set).
pub const REGIONS: &[Region] = &[
    Region {
        id: CLEANTECH,
        joins: None,
    },
    Region {
        id: NOORD_VELUWE,
        joins: Some(Joining {
            name: "Noord-Veluwe",
            municipalities: &[
                "Elburg",
                "Ermelo",
                "Harderwijk",
                "Nunspeet",
                "Oldebroek",
                "Putten",
            ],
            targets: &[
                Target {
                    band: Some("groep_7_8"),
                    ..target("po_participation_share", 2025, Some(30.0))
                },
                Target {
                    band: Some("groep_7_8"),
                    ..target("po_participation_share", 2026, Some(50.0))
                },
                target("vo_pupils", 2025, Some(150.0)),
                target("vo_pupils", 2026, Some(250.0)),
                Target {
                    hub: Some("techlab-elburg"),
                    ..target("vo_pupils", 2026, Some(60.0))
                },
                target("mbo_students", 2025, None),
                target("mbo_students", 2026, None),
                target("affiliated_organisations", 2025, Some(15.0)),
                target("affiliated_organisations", 2026, Some(25.0)),
                target("technical_profile_change_vs_2022", 2025, Some(1.0)),
                target("technical_profile_change_vs_2022", 2026, Some(2.0)),
            ],
        }),
    },
];

impl Region {
    /// Its municipalities: techmon's own list when built in.
    pub fn municipalities(&self) -> Vec<&'static str> {
        match &self.joins {
            Some(joining) => joining.municipalities.to_vec(),
            None => codes::regions()
                .iter()
                .filter(|r| r.id == self.id)
                .flat_map(|r| r.municipalities.iter().map(String::as_str))
                .collect(),
        }
    }

    /// The (KPI, band) pairs of its KPI set: seed 003's when built in.
    pub fn kpi_set(&self) -> Vec<(&'static str, Option<&'static str>)> {
        let mut set: Vec<(&'static str, Option<&'static str>)> = match &self.joins {
            Some(joining) => joining.targets.iter().map(|t| (t.kpi, t.band)).collect(),
            None => codes::kpi_targets()
                .iter()
                .map(|k| (k.kpi.as_str(), k.band.as_deref()))
                .collect(),
        };
        set.sort_unstable();
        set.dedup();
        set
    }
}

impl Joining {
    /// Its targets as `techmon targets import` reads them (CSV), for region `id`.
    pub fn targets_csv(&self, id: &str) -> String {
        let rows = self.targets.iter().map(|t| {
            format!(
                "{id},{},{},{},{},{}",
                t.hub.unwrap_or(""),
                t.kpi,
                t.band.unwrap_or(""),
                t.year,
                t.target.map(|v| v.to_string()).unwrap_or_default()
            )
        });
        std::iter::once("region_id,hub_id,kpi,band,year,target".to_string())
            .chain(rows)
            .map(|line| line + "\n")
            .collect()
    }
}

/// The regions' municipalities with schools, with their places, and how many PO
/// and VO schools each has: about 60 PO and 12 VO schools in the Cleantech Regio,
/// 25 and 5 in Noord-Veluwe (Ermelo and Nunspeet have no hub of their own).
const MUNICIPALITIES: &[(&str, &[&str], usize, usize)] = &[
    (
        "Apeldoorn",
        &["Apeldoorn", "Ugchelen", "Beekbergen", "Loenen"],
        20,
        4,
    ),
    ("Deventer", &["Deventer", "Bathmen", "Schalkhaar"], 16, 3),
    ("Zutphen", &["Zutphen", "Warnsveld"], 9, 2),
    ("Epe", &["Epe", "Vaassen", "Emst"], 8, 1),
    ("Lochem", &["Lochem", "Laren", "Gorssel"], 7, 2),
    ("Harderwijk", &["Harderwijk", "Hierden"], 9, 2),
    ("Elburg", &["Elburg", "Doornspijk"], 6, 1),
    ("Ermelo", &["Ermelo"], 5, 1),
    ("Nunspeet", &["Nunspeet", "Vierhouten"], 5, 1),
];

/// The region of `municipality`, if it is in one.
pub fn region_of(municipality: &str) -> Option<&'static str> {
    REGIONS
        .iter()
        .find(|r| r.municipalities().contains(&municipality))
        .map(|r| r.id)
}

/// Municipalities elsewhere: their VO schools make up the national totals.
const ELSEWHERE: &[(&str, &str)] = &[
    ("Utrecht", "Utrecht"),
    ("Groningen", "Groningen"),
    ("Zwolle", "Overijssel"),
    ("Arnhem", "Gelderland"),
    ("Nijmegen", "Gelderland"),
    ("Enschede", "Overijssel"),
    ("Amersfoort", "Utrecht"),
    ("Tilburg", "Noord-Brabant"),
    ("Leeuwarden", "Friesland"),
    ("Haarlem", "Noord-Holland"),
];
const VO_SCHOOLS_ELSEWHERE: usize = 90;

const PO_NAMES: &[&str] = &[
    "OBS De Regenboog",
    "CBS Het Kompas",
    "IKC De Sterrenwacht",
    "Basisschool De Vlinderboom",
    "RKBS Sint-Jozef",
    "OBS De Zonnewijzer",
    "CBS De Wegwijzer",
    "Daltonschool De Bolster",
    "Jenaplanschool Het Rondeel",
    "IKC Het Palet",
    "OBS De Esch",
    "CBS Prins Willem-Alexander",
    "Montessorischool De Linde",
    "Basisschool Het Klaverblad",
    "OBS Mariënburg",
];
const VO_NAMES: &[&str] = &[
    "Veluws Lyceum",
    "Sint-Ludgercollège",
    "Athénée De Worp",
    "Het Stedelijk",
    "Christelijk College Het IJssel",
    "Gymnasium Celeanum",
    "Scholengemeenschap De Berkel",
    "Technasium Het Baken",
    "Montessori Lyceum",
    "Dalton College",
];

/// A PO school: pupils per groep (1–8) per school year.
pub struct PoSchool {
    pub brin6: String,
    pub name: String,
    pub place: &'static str,
    pub municipality: &'static str,
    pub province: &'static str,
    /// `groep[y][g - 1]`: the pupils of groep g in school year FIRST_YEAR + y.
    pub groep: Vec<[u32; 8]>,
}

impl PoSchool {
    /// DUO counts PO pupils by age on 1 October: most pupils of groep g are g + 3,
    /// some (later starters, doublers) g + 4. The late share is fixed per school
    /// and groep so the files are reproducible.
    pub fn by_age(&self, year: usize) -> [u32; 10] {
        let mut ages = [0; 10]; // ages 3..=12
        for (g, &pupils) in self.groep[year].iter().enumerate() {
            let late = pupils * (3 + (g as u32 * 7 + self.brin6.len() as u32) % 6) / 100;
            ages[g + 1] += pupils - late;
            ages[g + 2] += late;
        }
        ages
    }
}

/// One cell of the VO world: pupils of one opleiding, leerjaar and gender group.
#[derive(Clone)]
pub struct VoCell {
    pub onderwijstype: VoOnderwijstype,
    /// DUO's opleidingsnaam (upper case), e.g. `VMBO KB BOUWEN, WONEN EN INTERIEUR`.
    pub opleiding: String,
    /// The profile code, for profile rows.
    pub profile: Option<&'static str>,
    pub technical: bool,
    pub leerjaar: u8,
    pub boys: u32,
    pub girls: u32,
}

/// A VO school: its cells per school year.
pub struct VoSchool {
    pub brin6: String,
    pub name: String,
    pub place: &'static str,
    pub municipality: &'static str,
    pub province: &'static str,
    /// The region the school is in, if any.
    pub region: Option<&'static str>,
    pub offers: Vec<VoOnderwijstype>,
    /// The school year hubs first reach this school's pupils, if ever.
    pub reached_from: Option<i32>,
    pub cells: Vec<Vec<VoCell>>,
}

impl VoSchool {
    /// Pupils of one onderwijstype and leerjaar in school year index `year`.
    pub fn cohort(&self, year: usize, onderwijstype: VoOnderwijstype, leerjaar: u8) -> (u32, u32) {
        self.cells[year]
            .iter()
            .filter(|c| c.onderwijstype == onderwijstype && c.leerjaar == leerjaar)
            .fold((0, 0), |(b, g), c| (b + c.boys, g + c.girls))
    }
}

/// An MBO college: its classes are (leerjaar, level) groups.
pub struct MboCollege {
    pub brin6: String,
    pub municipality: &'static str,
}

pub struct World {
    pub po: Vec<PoSchool>,
    pub vo: Vec<VoSchool>,
    pub mbo: Vec<MboCollege>,
}

impl World {
    pub fn build(rng: &mut StdRng) -> Self {
        let mut brins = BrinCodes::default();
        let mut po = Vec::new();
        let mut vo = Vec::new();
        for &(municipality, places, po_count, vo_count) in MUNICIPALITIES {
            let hub_start = HUBS
                .iter()
                .find(|h| h.municipality == municipality)
                .map(|h| h.first_year);
            for i in 0..po_count {
                po.push(po_school(
                    rng,
                    &mut brins,
                    municipality,
                    "Gelderland",
                    places,
                    i,
                ));
            }
            for i in 0..vo_count {
                // Most of a hub's VO schools take part, from the hub's start or a
                // year or two later; the rest never do (the comparison group).
                let reached_from = match (hub_start, rng.random_range(0..4)) {
                    (Some(start), 0) => Some(start),
                    (Some(start), 1) => Some((start + 1).min(LAST_YEAR)),
                    (Some(start), 2) => Some((start + 2).min(LAST_YEAR)),
                    _ => None,
                };
                let province = if municipality == "Deventer" {
                    "Overijssel"
                } else {
                    "Gelderland"
                };
                vo.push(vo_school(
                    rng,
                    &mut brins,
                    (municipality, province, places[i % places.len()]),
                    reached_from,
                    i,
                ));
            }
        }
        // The first VO school of each hub's municipality always takes part, so
        // every hub has VO pupils to reach.
        for hub in HUBS {
            if let Some(school) = vo.iter_mut().find(|s| s.municipality == hub.municipality) {
                school.reached_from.get_or_insert(hub.first_year);
                recompute_profiles(rng, school);
            }
        }
        for i in 0..VO_SCHOOLS_ELSEWHERE {
            let (municipality, province) = ELSEWHERE[i % ELSEWHERE.len()];
            vo.push(vo_school(
                rng,
                &mut brins,
                (municipality, province, municipality),
                None,
                i,
            ));
        }
        // A few PO schools elsewhere, so that the region is a real filter.
        for (i, &(municipality, province)) in ELSEWHERE.iter().take(4).enumerate() {
            po.push(po_school(
                rng,
                &mut brins,
                municipality,
                province,
                &[municipality],
                i,
            ));
        }
        let mbo = ["Apeldoorn", "Deventer", "Zutphen", "Harderwijk"]
            .into_iter()
            .map(|municipality| MboCollege {
                brin6: brins.next(rng),
                municipality,
            })
            .collect();
        Self { po, vo, mbo }
    }
}

impl World {
    /// PO schools in a municipality.
    pub fn po_schools_in(&self, municipality: &str) -> usize {
        self.po
            .iter()
            .filter(|s| s.municipality == municipality)
            .count()
    }
}

/// Unique BRIN6 codes: two digits, two capitals, a two-digit vestiging number.
#[derive(Default)]
struct BrinCodes(std::collections::HashSet<String>);

impl BrinCodes {
    fn next(&mut self, rng: &mut StdRng) -> String {
        loop {
            let letter = |rng: &mut StdRng| char::from(b'A' + rng.random_range(0..26u8));
            let code = format!(
                "{:02}{}{}{:02}",
                rng.random_range(0..100),
                letter(rng),
                letter(rng),
                rng.random_range(0..3)
            );
            if self.0.insert(code.clone()) {
                return code;
            }
        }
    }
}

fn po_school(
    rng: &mut StdRng,
    brins: &mut BrinCodes,
    municipality: &'static str,
    province: &'static str,
    places: &[&'static str],
    index: usize,
) -> PoSchool {
    let size = rng.random_range(8.0..34.0);
    let mut groep = Vec::with_capacity(YEARS);
    for _ in 0..YEARS {
        let mut counts = [0; 8];
        for count in &mut counts {
            *count = (size * rng.random_range(0.8..1.2_f64)).round() as u32;
        }
        groep.push(counts);
    }
    let place = places[index % places.len()];
    PoSchool {
        brin6: brins.next(rng),
        name: format!("{} {place}", PO_NAMES[index % PO_NAMES.len()]),
        place,
        municipality,
        province,
        groep,
    }
}

/// How big a school's opleidingen are, and its own technical share.
struct VoShape {
    size: f64,
    /// Technical share of boys and of girls in school year 2021/22.
    base_boys: f64,
    base_girls: f64,
}

fn vo_school(
    rng: &mut StdRng,
    brins: &mut BrinCodes,
    (municipality, province, place): (&'static str, &'static str, &'static str),
    reached_from: Option<i32>,
    index: usize,
) -> VoSchool {
    use VoOnderwijstype::{Havo, VmboBb, VmboGl, VmboKb, VmboTl, Vwo};
    let offers = match rng.random_range(0..4) {
        0 => vec![VmboBb, VmboKb, VmboGl, VmboTl],
        1 => vec![Havo, Vwo],
        2 => vec![VmboKb, VmboGl, VmboTl, Havo],
        _ => vec![VmboBb, VmboKb, VmboGl, VmboTl, Havo, Vwo],
    };
    let mut school = VoSchool {
        brin6: brins.next(rng),
        name: format!("{}, locatie {place}", VO_NAMES[index % VO_NAMES.len()]),
        place,
        municipality,
        province,
        region: region_of(municipality),
        offers,
        reached_from,
        cells: Vec::new(),
    };
    recompute_profiles(rng, &mut school);
    school
}

/// The profiles a school offers per onderwijstype, as DUO names them.
fn opleidingen(onderwijstype: VoOnderwijstype) -> Vec<(String, Option<&'static str>)> {
    let label = duo_onderwijstype(onderwijstype);
    let named = |codes: &[&'static str]| {
        codes
            .iter()
            .map(|&code| {
                let name = codes::profile(code).map_or(code, |p| p.name.as_str());
                (format!("{label} {}", name.to_uppercase()), Some(code))
            })
            .collect::<Vec<_>>()
    };
    match onderwijstype {
        VoOnderwijstype::VmboBb | VoOnderwijstype::VmboKb | VoOnderwijstype::VmboGl => {
            named(&["BWI", "PIE", "MVI", "M&T", "Z&W", "E&O", "D&P", "HBR"])
        }
        VoOnderwijstype::VmboTl => Vec::new(),
        VoOnderwijstype::Havo | VoOnderwijstype::Vwo => {
            let mut list = named(&["N&T", "N&G", "E&M", "C&M"]);
            // DUO names the double profile by its parts.
            list.push((
                format!("{label} NATUUR EN TECHNIEK/NATUUR EN GEZONDHEID"),
                Some("N&T+N&G"),
            ));
            list
        }
    }
}

/// DUO's ONDERWIJSTYPE VO value.
pub fn duo_onderwijstype(onderwijstype: VoOnderwijstype) -> &'static str {
    match onderwijstype {
        VoOnderwijstype::VmboBb => "VMBO BB",
        VoOnderwijstype::VmboKb => "VMBO KB",
        VoOnderwijstype::VmboGl => "VMBO GL",
        VoOnderwijstype::VmboTl => "VMBO TL",
        VoOnderwijstype::Havo => "HAVO",
        VoOnderwijstype::Vwo => "VWO",
    }
}

/// Leerjaren before the profile choice, and those with a profile.
fn leerjaren(onderwijstype: VoOnderwijstype) -> (&'static [u8], &'static [u8]) {
    match onderwijstype {
        VoOnderwijstype::VmboTl => (&[1, 2, 3, 4], &[]),
        VoOnderwijstype::Havo => (&[1, 2, 3], &[4, 5]),
        VoOnderwijstype::Vwo => (&[1, 2, 3], &[4, 5, 6]),
        _ => (&[1, 2], &[3, 4]),
    }
}

/// Draws (again) the school's cells for every year, with the built-in effect when
/// hubs reach it.
fn recompute_profiles(rng: &mut StdRng, school: &mut VoSchool) {
    let selected = if school.reached_from.is_some() {
        SELECTION_PP / 100.0
    } else {
        0.0
    };
    let shape = VoShape {
        size: rng.random_range(25.0..60.0),
        base_boys: rng.random_range(0.42..0.62) + selected,
        base_girls: rng.random_range(0.12..0.30) + selected,
    };
    let effect_per_year = HUBS
        .iter()
        .find(|h| h.municipality == school.municipality)
        .map_or(0.0, |h| h.effect_pp_per_year);
    school.cells = (0..YEARS)
        .map(|y| {
            let year = FIRST_YEAR + y as i32;
            let effect = school.reached_from.map_or(0.0, |from| {
                f64::from((year - from).max(0)) * effect_per_year
            });
            let shift =
                (f64::from(year - FIRST_YEAR) * NATIONAL_TREND_PP_PER_YEAR + effect) / 100.0;
            let mut cells = Vec::new();
            for &onderwijstype in &school.offers {
                let label = duo_onderwijstype(onderwijstype);
                let (lower, upper) = leerjaren(onderwijstype);
                let onderbouw = if onderwijstype == VoOnderwijstype::VmboTl {
                    format!("{label} ALGEMEEN")
                } else if lower.len() == 2 {
                    format!("{label} LEERJAAR 1 EN 2")
                } else {
                    format!("{label} ONDERBOUW")
                };
                for &leerjaar in lower {
                    let n = |rng: &mut StdRng| {
                        (shape.size * rng.random_range(0.8..1.2_f64)).round() as u32
                    };
                    cells.push(VoCell {
                        onderwijstype,
                        opleiding: onderbouw.clone(),
                        profile: None,
                        technical: false,
                        leerjaar,
                        boys: n(rng),
                        girls: n(rng),
                    });
                }
                let opleidingen = offered(rng, opleidingen(onderwijstype));
                for &leerjaar in upper {
                    let total = |rng: &mut StdRng| {
                        (shape.size * rng.random_range(0.8..1.2_f64)).round() as u32
                    };
                    let (boys, girls) = (total(rng), total(rng));
                    let split = |rng: &mut StdRng, pupils: u32, share: f64| {
                        split_over(rng, pupils, share.clamp(0.0, 1.0), &opleidingen)
                    };
                    let boys = split(rng, boys, shape.base_boys + shift);
                    let girls = split(rng, girls, shape.base_girls + shift);
                    for (((opleiding, profile), b), g) in opleidingen.iter().zip(boys).zip(girls) {
                        cells.push(VoCell {
                            onderwijstype,
                            opleiding: opleiding.clone(),
                            profile: *profile,
                            technical: profile
                                .and_then(codes::profile)
                                .is_some_and(|p| p.technical),
                            leerjaar,
                            boys: b,
                            girls: g,
                        });
                    }
                }
            }
            cells
        })
        .collect();
}

/// The profiles one school offers: all of havo/vwo's, two technical and two other
/// vmbo profiles.
fn offered(
    rng: &mut StdRng,
    all: Vec<(String, Option<&'static str>)>,
) -> Vec<(String, Option<&'static str>)> {
    if all.len() <= 5 {
        return all;
    }
    let (mut technical, mut other): (Vec<_>, Vec<_>) = all
        .into_iter()
        .partition(|(_, code)| code.and_then(codes::profile).is_some_and(|p| p.technical));
    for list in [&mut technical, &mut other] {
        while list.len() > 2 {
            list.remove(rng.random_range(0..list.len()));
        }
    }
    technical.extend(other);
    technical
}

/// Splits `pupils` over the opleidingen: `technical_share` of them (rounded) over
/// the technical profiles, the rest over the others, each pupil to a random one.
fn split_over(
    rng: &mut StdRng,
    pupils: u32,
    technical_share: f64,
    opleidingen: &[(String, Option<&'static str>)],
) -> Vec<u32> {
    let technical: Vec<bool> = opleidingen
        .iter()
        .map(|(_, code)| code.and_then(codes::profile).is_some_and(|p| p.technical))
        .collect();
    let mut counts = vec![0; opleidingen.len()];
    let tech_pupils = (f64::from(pupils) * technical_share).round() as u32;
    for pupil in 0..pupils {
        let want_technical = pupil < tech_pupils;
        let candidates: Vec<usize> = (0..counts.len())
            .filter(|&i| technical[i] == want_technical)
            .collect();
        if let Some(&i) = candidates.get(rng.random_range(0..candidates.len().max(1))) {
            counts[i] += 1;
        }
    }
    counts
}
