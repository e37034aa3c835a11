//! The region's schools as DUO open onderwijsdata files, in DUO's legacy layout:
//! semicolon-separated, Windows-1252, CRLF, `BRIN NUMMER` plus a one- or two-digit
//! `VESTIGINGSNUMMER`, counts of 1 to 4 suppressed (`<5`; `-1` in the oldest file).
//! Schools elsewhere in the country are in the same files, as in DUO's: they make
//! the national totals.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use techmon_schemas::VoOnderwijstype;

use crate::GenerateError;
use crate::world::{FIRST_YEAR, World, YEARS, duo_onderwijstype};

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

/// BRIN NUMMER and the legacy one- or two-digit VESTIGINGSNUMMER of a BRIN6.
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
        files.push(write_one(
            dir,
            &format!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-{year}.csv"),
            &vo_pupils(world, y),
        )?);
        files.push(write_one(
            dir,
            &format!("01.-leerlingen-po-per-onderwijssoort-en-leeftijd-{year}.csv"),
            &po_pupils(world, y),
        )?);
    }
    let last = FIRST_YEAR + YEARS as i32 - 1;
    files.push(write_one(
        dir,
        &format!("adressen-alle-vestigingen-vo-{last}.csv"),
        &addresses(world),
    )?);
    Ok(files)
}

fn write_one(dir: &Path, name: &str, text: &str) -> Result<PathBuf, GenerateError> {
    let path = dir.join(name);
    let (bytes, _, unmappable) = encoding_rs::WINDOWS_1252.encode(text);
    debug_assert!(!unmappable, "every name is in Windows-1252");
    std::fs::write(&path, bytes).map_err(|source| GenerateError::Write {
        path: path.clone(),
        source,
    })?;
    Ok(path)
}

type BoysGirls = (u32, u32);

fn vo_pupils(world: &World, y: usize) -> String {
    let year = FIRST_YEAR + y as i32;
    let mut out = String::from(
        "BRIN NUMMER;VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;PLAATSNAAM VESTIGING;GEMEENTENAAM;PROVINCIE;ONDERWIJSTYPE VO;OPLEIDINGSNAAM",
    );
    for leerjaar in 1..=6 {
        let _ = write!(out, ";LEERJAAR {leerjaar} MAN;LEERJAAR {leerjaar} VROUW");
    }
    out.push_str("\r\n");
    for school in &world.vo {
        let (brin, vestiging) = brin_parts(&school.brin6);
        // One line per opleiding, its leerjaren (boys, girls) side by side.
        let mut lines: Vec<(&str, VoOnderwijstype, [Option<BoysGirls>; 6])> = Vec::new();
        for cell in &school.cells[y] {
            let index = match lines
                .iter()
                .position(|(o, t, _)| *o == cell.opleiding && *t == cell.onderwijstype)
            {
                Some(i) => i,
                None => {
                    lines.push((&cell.opleiding, cell.onderwijstype, [None; 6]));
                    lines.len() - 1
                }
            };
            lines[index].2[usize::from(cell.leerjaar) - 1] = Some((cell.boys, cell.girls));
        }
        for (opleiding, onderwijstype, counts) in lines {
            let _ = write!(
                out,
                "{brin};{vestiging};{};{};{};{};{};{opleiding}",
                school.name,
                school.place,
                // DUO pads municipality names in its older files.
                format_args!("{:<12}", school.municipality.to_uppercase()),
                school.province,
                duo_onderwijstype(onderwijstype),
            );
            for count in counts {
                match count {
                    Some((boys, girls)) => {
                        let _ = write!(
                            out,
                            ";{};{}",
                            DuoCount::of(boys).cell(year),
                            DuoCount::of(girls).cell(year)
                        );
                    }
                    None => out.push_str(";;"),
                }
            }
            out.push_str("\r\n");
        }
    }
    out
}

fn po_pupils(world: &World, y: usize) -> String {
    let year = FIRST_YEAR + y as i32;
    let mut out = String::from(
        "BRIN NUMMER;VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;PLAATSNAAM VESTIGING;GEMEENTENAAM;SOORT PO",
    );
    for age in 3..=12 {
        let _ = write!(out, ";LEEFTIJD {age}");
    }
    out.push_str("\r\n");
    for school in &world.po {
        let (brin, vestiging) = brin_parts(&school.brin6);
        let _ = write!(
            out,
            "{brin};{vestiging};{};{};{};Bo",
            school.name,
            school.place,
            school.municipality.to_uppercase()
        );
        for count in school.by_age(y) {
            let _ = write!(out, ";{}", DuoCount::of(count).cell(year));
        }
        out.push_str("\r\n");
    }
    out
}

fn addresses(world: &World) -> String {
    let mut out = String::from(
        "BRIN NUMMER;VESTIGINGSNUMMER;VESTIGINGSNAAM;STRAATNAAM;HUISNUMMER-TOEVOEGING;POSTCODE;PLAATSNAAM;GEMEENTENAAM\r\n",
    );
    for (i, school) in world.vo.iter().enumerate() {
        let (brin, vestiging) = brin_parts(&school.brin6);
        let _ = write!(
            out,
            "{brin};{vestiging};{};Schoolstraat;{};{} {};{};{}\r\n",
            school.name,
            1 + i % 90,
            7000 + (i * 37) % 999,
            ["AB", "CD", "EF", "GH"][i % 4],
            school.place,
            school.municipality.to_uppercase()
        );
    }
    out
}
