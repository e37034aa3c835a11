//! The region's schools as DUO open onderwijsdata files, in the layouts DUO
//! publishes, a mix of years as a researcher downloads them:
//! - VO pupils (`01.-leerlingen-vo-per-vestiging-naar-onderwijstype-YYYY.csv`): until
//!   2022 the older layout (`BRIN NUMMER` and a one- or two-digit
//!   `VESTIGINGSNUMMER`, `LWOO INDICATIE`, havo/vwo profiles as the elementcode
//!   table names them, Windows-1252, `;`, CRLF; `-1` for a suppressed count in the
//!   oldest file, `<5` after); from 2023 the newer one (`INSTELLINGSCODE` and a
//!   two-digit `VESTIGINGSCODE`, a samenwerkingsverband column, profiles as DUO's
//!   exam file names them; UTF-8 with `;`, from 2025 the portal's quoted CSV with
//!   `,` and a BOM). Neither has a municipality column.
//! - PO pupils by age (`01.-leerlingen-po-soort-po-cluster-leeftijd-YYYY-YYYY.csv`):
//!   older `BRIN NUMMER`, `LEEFTIJD n` and `TOTAAL`; from 2023 `INSTELLINGSCODE`,
//!   `SOORT_PO`, `LEEFTIJD_JONGER`, `LEEFTIJD_4` … `LEEFTIJD_24`, `LEEFTIJD_OUDER`.
//! - The VO schools' addresses (`02.-alle-vestigingen-vo.csv`, six-character
//!   `VESTIGINGSCODE`, municipality in upper case), which place the VO schools in
//!   their municipality. DUO's address file names no year.
//!
//! Schools elsewhere in the country are in the same files, as in DUO's: they make
//! the national totals.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use techmon_schemas::VoOnderwijstype;
use techmon_schemas::codes;

use crate::GenerateError;
use crate::world::{FIRST_YEAR, VoCell, World, YEARS};

/// The first year in DUO's newer layout.
const NEWER_FROM: i32 = 2023;
/// The first year DUO's portal serves (quoted, `,`, BOM).
const PORTAL_FROM: i32 = 2025;

/// A count as DUO publishes it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum DuoCount {
    Exact(u32),
    /// 1 to 4 pupils.
    Suppressed,
}

impl DuoCount {
    pub fn of(pupils: u32) -> Self {
        if (1..5).contains(&pupils) {
            Self::Suppressed
        } else {
            Self::Exact(pupils)
        }
    }

    /// The point estimate the query views use: a suppressed count as 2.5.
    pub fn estimate(self) -> f64 {
        match self {
            Self::Exact(n) => f64::from(n),
            Self::Suppressed => 2.5,
        }
    }

    fn cell(self, year: i32) -> String {
        match self {
            Self::Exact(n) => n.to_string(),
            // DUO wrote -1 before it wrote <5.
            Self::Suppressed if year == FIRST_YEAR => "-1".into(),
            Self::Suppressed => "<5".into(),
        }
    }
}

/// The Monitor Techniekpact population of VO pupils: vmbo bb/kb/gl in leerjaar 3,
/// havo/vwo in leerjaar 4.
pub fn vo_track(onderwijstype: VoOnderwijstype, leerjaar: u8) -> Option<&'static str> {
    use VoOnderwijstype::{Havo, VmboBb, VmboGl, VmboKb, Vwo};
    match (onderwijstype, leerjaar) {
        (VmboBb | VmboKb | VmboGl, 3) => Some("vmbo"),
        (Havo | Vwo, 4) => Some("havo_vwo"),
        _ => None,
    }
}

/// BRIN NUMMER and the older one- or two-digit VESTIGINGSNUMMER of a BRIN6.
fn brin_parts(brin6: &str) -> (&str, String) {
    let vestiging: u32 = brin6[4..].parse().unwrap_or(0);
    (&brin6[..4], vestiging.to_string())
}

/// Writes every DUO file into `dir`; returns their paths.
pub fn write(world: &World, dir: &Path) -> Result<Vec<PathBuf>, GenerateError> {
    std::fs::create_dir_all(dir).map_err(|source| GenerateError::Write {
        path: dir.to_path_buf(),
        source,
    })?;
    let mut files = Vec::new();
    for y in 0..YEARS {
        let year = FIRST_YEAR + y as i32;
        let vo = vo_pupils(world, y);
        let vo_name = format!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-{year}.csv");
        files.push(match year {
            ..NEWER_FROM => write_one(dir, &vo_name, &vo, Encoding::Windows1252)?,
            NEWER_FROM..PORTAL_FROM => write_one(dir, &vo_name, &vo, Encoding::Utf8)?,
            _ => write_one(dir, &vo_name, &vo, Encoding::Utf8Bom)?,
        });
        let po_name = format!(
            "01.-leerlingen-po-soort-po-cluster-leeftijd-{year}-{}.csv",
            year + 1
        );
        let encoding = if year < NEWER_FROM {
            Encoding::Windows1252
        } else {
            Encoding::Utf8
        };
        files.push(write_one(dir, &po_name, &po_pupils(world, y), encoding)?);
    }
    files.push(write_one(
        dir,
        "02.-alle-vestigingen-vo.csv",
        &addresses(world),
        Encoding::Utf8,
    )?);
    Ok(files)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Encoding {
    Windows1252,
    Utf8,
    Utf8Bom,
}

fn write_one(
    dir: &Path,
    name: &str,
    text: &str,
    encoding: Encoding,
) -> Result<PathBuf, GenerateError> {
    let path = dir.join(name);
    let bytes = match encoding {
        Encoding::Windows1252 => {
            let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
            debug_assert!(!unmappable, "every name is in Windows-1252");
            bytes.into_owned()
        }
        Encoding::Utf8 => text.as_bytes().to_vec(),
        Encoding::Utf8Bom => [b"\xEF\xBB\xBF".as_slice(), text.as_bytes()].concat(),
    };
    std::fs::write(&path, bytes).map_err(|source| GenerateError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

/// A line of cells in `year`'s style: `;`, or from [`PORTAL_FROM`] every cell quoted
/// and separated by `,`.
fn line(year: i32, cells: &[String]) -> String {
    if year >= PORTAL_FROM {
        let quoted: Vec<String> = cells
            .iter()
            .map(|c| format!("\"{}\"", c.replace('"', "\"\"")))
            .collect();
        quoted.join(",") + "\r\n"
    } else {
        cells.join(";") + "\r\n"
    }
}

/// DUO's `ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR` of a cell: the value names the
/// leerjaren of its line.
fn duo_onderwijstype(onderwijstype: VoOnderwijstype, leerjaar: u8) -> &'static str {
    use VoOnderwijstype::{Havo, VmboBb, VmboGl, VmboKb, VmboTl, Vwo};
    match (onderwijstype, leerjaar) {
        (_, 1 | 2) => "Brugjaar 1-2",
        (Havo | Vwo, 3) => "HAVO/VWO lj 3",
        (VmboBb, _) => "VMBO BL lj 3-4",
        (VmboKb, _) => "VMBO KL lj 3-4",
        (VmboGl, _) => "VMBO GL lj 3-4",
        (VmboTl, _) => "VMBO TL lj 3-4",
        (Havo, _) => "HAVO lj 4-5",
        (Vwo, _) => "VWO lj 4-6",
    }
}

/// havo/vwo profiles as DUO's elementcode table (older files) and its exam file
/// (newer files) name them, with the elementcode's last two digits.
fn havo_vwo_profile(code: &str) -> Option<(&'static str, &'static str, &'static str)> {
    Some(match code {
        "N&T" => ("70", "Prf Nat/Tech", "N&T"),
        "N&G" => ("71", "Prf Nat/Gezond", "N&G"),
        "E&M" => ("72", "Prf Ec/Maat", "E&M"),
        "C&M" => ("73", "Prf Cul/Maat", "C&M"),
        "N&T+N&G" => ("74", "Prf Nat/Tech & Nat/Gezond", "N&T / N&G"),
        _ => return None,
    })
}

/// `VMBO SECTOR`, `AFDELING`, `ELEMENTCODE` and `OPLEIDINGSNAAM` of a cell.
fn duo_values(cell: &VoCell, newer: bool) -> [String; 4] {
    let none = || "n.v.t.".to_owned();
    let profile = cell.profile.and_then(codes::profile);
    match (cell.onderwijstype, profile) {
        (VoOnderwijstype::Havo | VoOnderwijstype::Vwo, Some(profile)) => {
            let Some((number, older, exam)) = havo_vwo_profile(&profile.code) else {
                return [none(), none(), String::new(), cell.opleiding.clone()];
            };
            let (level, older_prefix, exam_prefix) = if cell.onderwijstype == VoOnderwijstype::Havo
            {
                ("03", "HAVO", "HAVO")
            } else {
                ("01", "VWO-ATH", "VWO")
            };
            let name = if newer {
                format!("{exam_prefix} - {exam}")
            } else {
                format!("{older_prefix} {older}")
            };
            [none(), none(), format!("{level}{number}"), name]
        }
        (_, Some(profile)) => {
            let sector = match profile.code.as_str() {
                _ if profile.technical => "Techniek",
                "Z&W" => "Zorg en welzijn",
                "G" => "Landbouw",
                _ => "Economie",
            };
            let name = if newer {
                let leerweg = cell.opleiding.split(' ').nth(1).unwrap_or_default();
                format!("VMBO {leerweg} {}", profile.name)
            } else {
                cell.opleiding.clone()
            };
            [sector.to_owned(), profile.name.clone(), String::new(), name]
        }
        (_, None) => [none(), none(), String::new(), cell.opleiding.clone()],
    }
}

type BoysGirls = (u32, u32);

fn vo_pupils(world: &World, y: usize) -> String {
    let year = FIRST_YEAR + y as i32;
    let newer = year >= NEWER_FROM;
    let mut header: Vec<String> = if newer {
        [
            "INSTELLINGSCODE",
            "VESTIGINGSCODE",
            "INSTELLINGSNAAM VESTIGING",
            "PLAATSNAAM VESTIGING",
            "PROVINCIE VESTIGING",
            "SAMENWERKINGSVERBAND PASSEND ONDERWIJS VO",
            "ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR",
            "VMBO SECTOR",
            "AFDELING",
            "ERKENDE OPLEIDINGSCODE",
            "OPLEIDINGSNAAM",
        ]
    } else {
        [
            "BRIN NUMMER",
            "VESTIGINGSNUMMER",
            "INSTELLINGSNAAM VESTIGING",
            "PLAATSNAAM VESTIGING",
            "PROVINCIE VESTIGING",
            "ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR",
            "LWOO INDICATIE",
            "VMBO SECTOR",
            "AFDELING",
            "ELEMENTCODE",
            "OPLEIDINGSNAAM",
        ]
    }
    .map(str::to_owned)
    .to_vec();
    for leerjaar in 1..=6 {
        for gender in ["MAN", "VROUW"] {
            header.push(format!("LEER- OF VERBLIJFSJAAR {leerjaar} - {gender}"));
        }
    }
    let mut out = line(year, &header);
    for school in &world.vo {
        let (brin, vestiging) = brin_parts(&school.brin6);
        let vestiging = if newer {
            school.brin6[4..].to_owned()
        } else {
            vestiging
        };
        // One line per onderwijstype value and opleiding, its leerjaren (boys, girls)
        // side by side.
        let mut lines: Vec<(&'static str, &VoCell, [Option<BoysGirls>; 6])> = Vec::new();
        for cell in &school.cells[y] {
            let value = duo_onderwijstype(cell.onderwijstype, cell.leerjaar);
            let index = match lines.iter().position(|(v, c, _)| {
                *v == value
                    && c.opleiding == cell.opleiding
                    && c.onderwijstype == cell.onderwijstype
            }) {
                Some(i) => i,
                None => {
                    lines.push((value, cell, [None; 6]));
                    lines.len() - 1
                }
            };
            lines[index].2[usize::from(cell.leerjaar) - 1] = Some((cell.boys, cell.girls));
        }
        for (value, cell, counts) in lines {
            let [sector, afdeling, elementcode, opleiding] = duo_values(cell, newer);
            let mut cells = vec![
                brin.to_owned(),
                vestiging.clone(),
                school.name.clone(),
                school.place.to_owned(),
                school.province.to_owned(),
            ];
            if newer {
                cells.push("SWV VO 25.05".into());
                cells.push(value.into());
            } else {
                cells.push(value.into());
                cells.push("N".into());
            }
            cells.extend([sector, afdeling, elementcode, opleiding]);
            for count in counts {
                match count {
                    Some((boys, girls)) => cells.extend([
                        DuoCount::of(boys).cell(year),
                        DuoCount::of(girls).cell(year),
                    ]),
                    None => cells.extend([String::new(), String::new()]),
                }
            }
            out.push_str(&line(year, &cells));
        }
    }
    out
}

fn po_pupils(world: &World, y: usize) -> String {
    let year = FIRST_YEAR + y as i32;
    let newer = year >= NEWER_FROM;
    let mut out = if newer {
        let mut header = String::from(
            "PEILDATUM;INSTELLINGSCODE;VESTIGINGSCODE;INSTELLINGSNAAM_VESTIGING;POSTCODE_VESTIGING;PLAATSNAAM;GEMEENTENUMMER;GEMEENTENAAM;PROVINCIE;SOORT_PO;CLUSTER;DENOMINATIE_VESTIGING;BEVOEGD_GEZAG_NUMMER;LEEFTIJD_JONGER",
        );
        for age in 4..=24 {
            let _ = write!(header, ";LEEFTIJD_{age}");
        }
        header + ";LEEFTIJD_OUDER\r\n"
    } else {
        let mut header = String::from(
            "BRIN NUMMER;VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;PLAATSNAAM VESTIGING;GEMEENTENAAM;SOORT PO",
        );
        for age in 3..=12 {
            let _ = write!(header, ";LEEFTIJD {age}");
        }
        header + ";TOTAAL\r\n"
    };
    for school in &world.po {
        let (brin, vestiging) = brin_parts(&school.brin6);
        // Ages 3 to 12.
        let ages = school.by_age(y);
        let cell = |n: u32| DuoCount::of(n).cell(year);
        if newer {
            let _ = write!(
                out,
                "{year}1001;{brin};{};{};;{};0000;{};{};Bo;;Openbaar;00000;{}",
                &school.brin6[4..],
                school.name,
                school.place.to_uppercase(),
                school.municipality.to_uppercase(),
                school.province,
                cell(ages[0]),
            );
            for age in 4..=24 {
                let _ = write!(out, ";{}", cell(ages.get(age - 3).copied().unwrap_or(0)));
            }
            out.push_str(";0\r\n");
        } else {
            let _ = write!(
                out,
                "{brin};{vestiging};{};{};{};Bo",
                school.name,
                school.place,
                school.municipality.to_uppercase()
            );
            for count in ages {
                let _ = write!(out, ";{}", cell(count));
            }
            let _ = write!(out, ";{}\r\n", cell(ages.iter().sum()));
        }
    }
    out
}

fn addresses(world: &World) -> String {
    let mut out = String::from(
        "PROVINCIE;BEVOEGD GEZAG NUMMER;INSTELLINGSCODE;VESTIGINGSCODE;VESTIGINGSNAAM;STRAATNAAM;HUISNUMMER-TOEVOEGING;POSTCODE;PLAATSNAAM;GEMEENTENUMMER;GEMEENTENAAM;DENOMINATIE;TELEFOONNUMMER;INTERNETADRES;ONDERWIJSSTRUCTUUR\r\n",
    );
    for (i, school) in world.vo.iter().enumerate() {
        let _ = write!(
            out,
            "{};{};{};{};{};Schoolstraat;{};{} {};{};0000;{};Bijzonder;;;VMBO/HAVO/VWO\r\n",
            school.province,
            40000 + i,
            &school.brin6[..4],
            school.brin6,
            school.name,
            1 + i % 90,
            7000 + (i * 37) % 999,
            ["AB", "CD", "EF", "GH"][i % 4],
            school.place.to_uppercase(),
            school.municipality.to_uppercase(),
        );
    }
    out
}
