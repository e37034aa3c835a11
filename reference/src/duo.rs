//! DUO open onderwijsdata: parses the files DUO publishes into typed rows for the
//! reference tables. Pure: takes the file name and bytes, does no I/O.
//!
//! Three datasets, recognised by their header because DUO renames files:
//! - VO pupils per vestiging by onderwijstype, sector, afdeling, opleiding, leerjaar
//!   and gender (`01.-leerlingen-vo-per-vestiging-naar-onderwijstype-YYYY.csv`,
//!   count columns `LEER- OF VERBLIJFSJAAR n - MAN` / `- VROUW`);
//! - PO pupils per vestiging by age (`01.-leerlingen-po-soort-po-cluster-leeftijd-…`,
//!   count columns `LEEFTIJD_n`; older files `LEEFTIJD n` or `LEEFTIJD n JAAR`);
//! - school addresses (`02.-alle-vestigingen-vo.csv`,
//!   `02.-alle-schoolvestigingen-basisonderwijs.csv`: a `POSTCODE` column and no
//!   count columns).
//!
//! Column names are matched by meaning, not by one spelling: case, spaces,
//! underscores and punctuation are ignored (`LEER- OF VERBLIJFSJAAR 1 - MAN`,
//! `LEERJAAR 1 MAN` and `LEERJAAR_1_MAN` are one column), and DUO's older and newer
//! names are aliases (`BRIN NUMMER` / `INSTELLINGSCODE`, `VESTIGINGSNUMMER` /
//! `VESTIGINGSCODE`). Schools are identified by BRIN and vestiging, joined to a BRIN6
//! whether the vestiging is written as one or two digits or as the whole BRIN6.
//! The parser accepts UTF-8 with or without BOM and Windows-1252/Latin-1, `;` or `,`,
//! extra columns (ignored) and padded values (trimmed); and the JSON answer of the
//! CKAN datastore of DUO's newer portal (`datastore_search`), whose fields are the
//! same columns.
//!
//! DUO does not publish counts of 1 to 4 pupils: such cells read `<5` (older files
//! `-1`) and become a [`PupilCount`] with bounds 1 to 4 instead of a number. The
//! portal's datastore writes them as 4 ("aantallen kleiner dan 5 worden weergegeven
//! door 4"), so there a 4 is read as 1 to 4 too.
//!
//! DUO's VO file has no municipality column (its address files have): a VO row's
//! municipality is null unless the file has `GEMEENTENAAM`, and the views take it
//! from `duo_schools` by BRIN6.
//!
//! PO groep bands: DUO counts pupils by age on the peildatum, 1 October. At that
//! date, pupils of 4–5 are taken to be in groep 1–2, of 6–9 in groep 3–6 and of 10
//! and older in groep 7–8; age 3 or younger has no band (not yet in school). This
//! follows the usual age per groep; kleuterverlenging, doubling and skipping put
//! some pupils in another groep.

use std::borrow::Cow;
use std::fmt;
use std::iter::Sum;
use std::ops::Add;
use std::sync::LazyLock;

use chrono::NaiveDate;
use techmon_schemas::VoOnderwijstype;
use techmon_schemas::codes::{self, Profile, SchoolYear};

/// Which DUO dataset a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum DuoDataset {
    VoPupils,
    PoPupils,
    Schools,
}

impl DuoDataset {
    /// The name used for the reference table.
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::VoPupils => "vo_pupils",
            Self::PoPupils => "po_pupils",
            Self::Schools => "schools",
        }
    }
}

impl fmt::Display for DuoDataset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A number of pupils as published: exact, or suppressed by DUO (1 to 4).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct PupilCount {
    /// The count, when DUO published it.
    pub exact: Option<u32>,
    pub min: u32,
    pub max: u32,
}

impl PupilCount {
    /// A cell DUO suppressed (`<5` or `-1`): between 1 and 4 pupils.
    pub const SUPPRESSED: Self = Self {
        exact: None,
        min: 1,
        max: 4,
    };

    /// A published count.
    pub const fn exact(n: u32) -> Self {
        Self {
            exact: Some(n),
            min: n,
            max: n,
        }
    }
}

/// Totals keep the bounds, and stay exact only while every part is.
impl Add for PupilCount {
    type Output = Self;
    fn add(self, other: Self) -> Self {
        Self {
            exact: self
                .exact
                .zip(other.exact)
                .map(|(a, b)| a.saturating_add(b)),
            min: self.min.saturating_add(other.min),
            max: self.max.saturating_add(other.max),
        }
    }
}

impl Sum for PupilCount {
    fn sum<I: Iterator<Item = Self>>(iter: I) -> Self {
        iter.fold(Self::exact(0), Add::add)
    }
}

/// One count cell of the VO file: pupils of one school, onderwijstype,
/// opleiding, leerjaar and gender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoPupilRow {
    pub brin6: String,
    pub school_name: String,
    /// `GEMEENTENAAM` where the file has it (DUO's own VO files do not).
    pub municipality: Option<String>,
    /// `vmbo-bb`, `vmbo-kb`, `vmbo-gl`, `vmbo-tl`, `havo`, `vwo`, `pro`, or DUO's
    /// value in lower case with `-` between its words (`brugjaar`, `havo-vwo`,
    /// `vmbo-vavo`, …), without the leerjaren it names.
    pub onderwijstype: String,
    /// `VMBO SECTOR`, `AFDELING` and `ELEMENTCODE` as DUO writes them; none for
    /// `n.v.t.`, empty, or a file without the column.
    pub vmbo_sector: Option<String>,
    pub afdeling: Option<String>,
    pub elementcode: Option<String>,
    pub opleidingsnaam: String,
    /// The [`codes::profiles`] code the afdeling or opleidingsnaam names, if any.
    pub profile_code: Option<String>,
    /// Whether the row counts as a technical profile ([`classify`]).
    pub technical: bool,
    pub leerjaar: u8,
    /// `man` or `vrouw`, as DUO writes it.
    pub gender: String,
    pub pupils: PupilCount,
}

/// One count cell of the PO file: pupils of one school and age on 1 October.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoPupilRow {
    pub brin6: String,
    pub school_name: String,
    pub municipality: String,
    /// `SOORT PO` (`Bo`, `Sbo`, `So`, …) where the file has it.
    pub soort_po: Option<String>,
    pub age: u8,
    /// See [`groep_band`].
    pub groep_band: Option<&'static str>,
    pub pupils: PupilCount,
}

/// One school (vestiging) from an address file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchoolRow {
    pub brin6: String,
    pub name: String,
    /// The four digits of the postcode: enough to place a school on a map.
    pub pc4: Option<String>,
    pub place: String,
    pub municipality: String,
    /// `SOORT PO` or `ONDERWIJSSTRUCTUUR` as DUO writes it, when given.
    pub kind: Option<String>,
}

/// The rows of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DuoRows {
    VoPupils(Vec<VoPupilRow>),
    PoPupils(Vec<PoPupilRow>),
    Schools(Vec<SchoolRow>),
}

impl DuoRows {
    pub fn len(&self) -> usize {
        match self {
            Self::VoPupils(rows) => rows.len(),
            Self::PoPupils(rows) => rows.len(),
            Self::Schools(rows) => rows.len(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// How many count cells DUO suppressed.
    pub fn suppressed_cells(&self) -> usize {
        let suppressed = |pupils: &mut dyn Iterator<Item = &PupilCount>| {
            pupils.filter(|c| c.exact.is_none()).count()
        };
        match self {
            Self::VoPupils(rows) => suppressed(&mut rows.iter().map(|r| &r.pupils)),
            Self::PoPupils(rows) => suppressed(&mut rows.iter().map(|r| &r.pupils)),
            Self::Schools(_) => 0,
        }
    }

    /// Which dataset the rows are of.
    pub fn dataset(&self) -> DuoDataset {
        match self {
            Self::VoPupils(_) => DuoDataset::VoPupils,
            Self::PoPupils(_) => DuoDataset::PoPupils,
            Self::Schools(_) => DuoDataset::Schools,
        }
    }
}

/// How the file was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DuoFormat {
    /// CSV with this separator (`;` or `,`).
    Csv(char),
    /// The JSON answer of a CKAN datastore (`datastore_search`).
    CkanJson,
}

/// A parsed DUO file, with what was detected about it for the import record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuoFile {
    pub school_year: SchoolYear,
    /// `utf-8-bom`, `utf-8` or `windows-1252` (which also covers Latin-1).
    pub encoding: &'static str,
    pub format: DuoFormat,
    pub rows: DuoRows,
}

/// Where in a file: a CSV line as an editor numbers it, or a CKAN record (from 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum At {
    Line(u64),
    Record(u64),
}

impl fmt::Display for At {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Record(n) => write!(f, "record {n}"),
        }
    }
}

/// Why a file could not be parsed. Messages name lines and columns but never quote
/// cells, except the offending count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuoError {
    #[error("the file starts with a UTF-8 byte order mark but is not valid UTF-8")]
    InvalidUtf8,
    #[error(
        "line 1: not a known DUO file: looked for the count columns of VO pupils \
         (LEER- OF VERBLIJFSJAAR n - MAN / - VROUW, or LEERJAAR n MAN / VROUW, or a column \
         ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR), of PO pupils (LEEFTIJD_n, LEEFTIJD n \
         or LEEFTIJD n JAAR), or the POSTCODE column of school addresses; found: {found}"
    )]
    UnknownDataset { found: String },
    #[error("line 1: {dataset} file lacks column {column}; found: {found}")]
    MissingColumn {
        dataset: DuoDataset,
        column: String,
        found: String,
    },
    #[error("line {line}: {reason}")]
    MalformedCsv { line: u64, reason: String },
    #[error("not a CKAN datastore answer: {reason}")]
    MalformedJson { reason: String },
    #[error("{at}, column {column}: {reason}")]
    InvalidCell {
        at: At,
        column: String,
        reason: String,
    },
    #[error(
        "no school year: none given, the file name does not end in a year such as \
         -2023.csv or -2023-2024.csv, and there is no PEILDATUM or SCHOOLJAAR column"
    )]
    NoSchoolYear,
    #[error(
        "the file holds the school years {years} (column SCHOOLJAAR): import one at a \
         time with its school year given"
    )]
    SeveralSchoolYears { years: String },
}

/// The groep band of a PO pupil aged `age` on 1 October (see the module doc).
pub use techmon_schemas::codes::po_band_of_age as groep_band;

/// Parses one DUO file. The school year is `school_year` if given, else the year
/// the file name ends in (`…-2023.csv` and `…-2023-2024.csv` are 2023/24: DUO counts
/// on 1 October), else the PEILDATUM of the first data line. An address file with
/// none of these (DUO's are not dated) is of the school year containing `today`.
pub fn parse(
    file_name: &str,
    bytes: &[u8],
    school_year: Option<SchoolYear>,
    today: NaiveDate,
) -> Result<DuoFile, DuoError> {
    let (text, encoding) = decode(bytes)?;
    let (table, format) = if text.trim_start().starts_with('{') {
        (Table::from_ckan(&text)?, DuoFormat::CkanJson)
    } else {
        let separator = detect_separator(&text);
        (
            Table::from_csv(&text, separator)?,
            DuoFormat::Csv(char::from(separator)),
        )
    };
    let header = Header::new(&table.header);
    let mut parser = Parser::new(&header, format)?;
    let peildatum = header.find(&PEILDATUM);
    // Files with a line per school year hold several: the one asked for is read.
    let schooljaar = header.find(&["SCHOOLJAAR"]);
    let mut school_year = school_year.or_else(|| year_ending(file_name));
    if let (None, None, Some(column)) = (school_year, &peildatum, &schooljaar) {
        school_year = Some(only_school_year(&table, column)?);
    }
    for line in table.lines() {
        if let (None, Some(column)) = (school_year, &peildatum) {
            school_year = Some(line.peildatum(column)?);
        }
        if let (Some(year), Some(column)) = (school_year, &schooljaar)
            && line.school_year(column)? != year
        {
            continue;
        }
        parser.push(&line)?;
    }
    let school_year = match (school_year, &parser.layout) {
        (Some(year), _) => year,
        (None, Layout::Schools { .. }) => SchoolYear::containing(today),
        (None, _) => return Err(DuoError::NoSchoolYear),
    };
    Ok(DuoFile {
        school_year,
        encoding,
        format,
        rows: parser.into_rows(),
    })
}

/// The one school year a SCHOOLJAAR column holds.
fn only_school_year(table: &Table, column: &Column) -> Result<SchoolYear, DuoError> {
    let mut years = std::collections::BTreeSet::new();
    for line in table.lines() {
        years.insert(line.school_year(column)?);
    }
    match years.len() {
        0 => Err(DuoError::NoSchoolYear),
        1 => Ok(*years.first().expect("one year")),
        _ => Err(DuoError::SeveralSchoolYears {
            years: years
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join(", "),
        }),
    }
}

/// DUO's files come in all three encodings; Latin-1 decodes correctly as
/// Windows-1252 (WHATWG treats them as one).
fn decode(bytes: &[u8]) -> Result<(Cow<'_, str>, &'static str), DuoError> {
    if let Some(rest) = bytes.strip_prefix(b"\xEF\xBB\xBF") {
        let text = std::str::from_utf8(rest).map_err(|_| DuoError::InvalidUtf8)?;
        return Ok((Cow::Borrowed(text), "utf-8-bom"));
    }
    Ok(match std::str::from_utf8(bytes) {
        Ok(text) => (Cow::Borrowed(text), "utf-8"),
        Err(_) => (
            encoding_rs::WINDOWS_1252
                .decode_without_bom_handling(bytes)
                .0,
            "windows-1252",
        ),
    })
}

/// `;` or `,`, whichever occurs more often outside quotes in the header line; `;`
/// on a tie, as in most DUO files.
fn detect_separator(text: &str) -> u8 {
    let header = text.lines().find(|l| !l.trim().is_empty()).unwrap_or("");
    let (mut quoted, mut semicolons, mut commas) = (false, 0, 0);
    for c in header.chars() {
        match c {
            '"' => quoted = !quoted,
            ';' if !quoted => semicolons += 1,
            ',' if !quoted => commas += 1,
            _ => {}
        }
    }
    if commas > semicolons { b',' } else { b';' }
}

/// The school year of a file named like `…-2023.csv`, or `…-2023-2024.csv` (DUO's
/// newer names give both calendar years).
fn year_ending(file_name: &str) -> Option<SchoolYear> {
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = name
        .strip_suffix(".csv")
        .or_else(|| name.strip_suffix(".CSV"))
        .unwrap_or(name);
    let last_year = |stem: &str| -> Option<(i32, usize)> {
        let (before, year) = stem.split_at_checked(stem.len().checked_sub(4)?)?;
        if !year.bytes().all(|b| b.is_ascii_digit())
            || before.ends_with(|c: char| c.is_ascii_digit())
        {
            return None;
        }
        Some((year.parse().ok()?, before.len()))
    };
    let (year, before) = last_year(stem)?;
    let start = match stem[..before].strip_suffix('-').and_then(last_year) {
        Some((first, _)) if first + 1 == year => first,
        _ => year,
    };
    Some(SchoolYear::new(start))
}

/// A column name by meaning: upper case, its words split at anything that is not a
/// letter or digit, joined by single spaces (`LEER- OF VERBLIJFSJAAR 1 - MAN` is
/// `LEER OF VERBLIJFSJAAR 1 MAN`, `SOORT_PO` is `SOORT PO`).
fn header_key(name: &str) -> String {
    name.to_uppercase()
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// The names of columns, as DUO has written them over the years; the first is the
/// one messages name.
type Aliases = [&'static str];

const BRIN: [&str; 3] = ["BRIN NUMMER", "INSTELLINGSCODE", "BRINNUMMER"];
const VESTIGING: [&str; 3] = ["VESTIGINGSNUMMER", "VESTIGINGSCODE", "VESTIGINGS NUMMER"];
const MUNICIPALITY: [&str; 1] = ["GEMEENTENAAM"];
const PEILDATUM: [&str; 2] = ["PEILDATUM", "PEILDATUM LEERLINGEN"];
const VO_ONDERWIJSTYPE: [&str; 2] = [
    "ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR",
    "ONDERWIJSTYPE VO",
];
const ELEMENTCODE: [&str; 3] = ["ELEMENTCODE", "ERKENDE OPLEIDINGSCODE", "OPLEIDINGSCODE"];

/// Line numbers as an editor shows them. The csv crate's own count is off after
/// CRLF line ends and skipped blank lines, so we count newlines up to where each
/// record starts.
struct LineCounter<'t> {
    text: &'t [u8],
    counted_to: usize,
    line: u64,
}

impl<'t> LineCounter<'t> {
    fn new(text: &'t str) -> Self {
        Self {
            text: text.as_bytes(),
            counted_to: 0,
            line: 1,
        }
    }

    /// The line a record at `position` starts on. csv reports where the previous
    /// record ended, so the line ends and blank lines after that are skipped first.
    fn line_of(&mut self, position: Option<&csv::Position>) -> u64 {
        let byte = position.map_or(0, |p| usize::try_from(p.byte()).unwrap_or(usize::MAX));
        let rest = self.text.get(byte..).unwrap_or_default();
        let start = byte
            + rest
                .iter()
                .take_while(|b| matches!(b, b'\r' | b'\n'))
                .count();
        if let Some(skipped) = self.text.get(self.counted_to..start) {
            self.line += skipped.iter().filter(|&&b| b == b'\n').count() as u64;
            self.counted_to = start;
        }
        self.line
    }

    fn malformed(&mut self, error: &csv::Error) -> DuoError {
        let line = self.line_of(error.position());
        let reason = match error.kind() {
            csv::ErrorKind::UnequalLengths {
                expected_len, len, ..
            } => format!("{len} fields where the header has {expected_len}"),
            _ => error.to_string(),
        };
        DuoError::MalformedCsv { line, reason }
    }
}

/// A file read as a header and records of text cells, each where it was found.
struct Table {
    header: Vec<String>,
    records: Vec<(At, csv::StringRecord)>,
}

impl Table {
    fn from_csv(text: &str, separator: u8) -> Result<Self, DuoError> {
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(separator)
            .flexible(false)
            .trim(csv::Trim::All)
            .from_reader(text.as_bytes());
        let mut lines = LineCounter::new(text);
        let header = reader
            .headers()
            .map_err(|e| lines.malformed(&e))?
            .iter()
            .map(str::to_owned)
            .collect();
        let mut records = Vec::new();
        for record in reader.records() {
            let record = record.map_err(|e| lines.malformed(&e))?;
            if !record.iter().all(str::is_empty) {
                records.push((At::Line(lines.line_of(record.position())), record));
            }
        }
        Ok(Self { header, records })
    }

    /// A `datastore_search` answer: `result.fields` (ids in order; CKAN's own `_id`
    /// and a search's `rank` left out) and `result.records`, objects by field id.
    fn from_ckan(text: &str) -> Result<Self, DuoError> {
        let malformed = |reason: &str| DuoError::MalformedJson {
            reason: reason.to_owned(),
        };
        let answer: serde_json::Value =
            serde_json::from_str(text).map_err(|e| malformed(&e.to_string()))?;
        let result = &answer["result"];
        let fields = result["fields"]
            .as_array()
            .ok_or_else(|| malformed("no result.fields list"))?;
        let header: Vec<String> = fields
            .iter()
            .filter_map(|f| f["id"].as_str())
            .filter(|id| !matches!(*id, "_id" | "_full_text" | "rank"))
            .map(str::to_owned)
            .collect();
        let records = result["records"]
            .as_array()
            .ok_or_else(|| malformed("no result.records list"))?;
        let records = records
            .iter()
            .enumerate()
            .map(|(i, record)| {
                let cells = header.iter().map(|field| match &record[field] {
                    serde_json::Value::String(s) => s.trim().to_owned(),
                    serde_json::Value::Null => String::new(),
                    other => other.to_string(),
                });
                (
                    At::Record(i as u64 + 1),
                    csv::StringRecord::from_iter(cells),
                )
            })
            .collect();
        Ok(Self { header, records })
    }

    fn lines(&self) -> impl Iterator<Item = Line<'_>> {
        self.records
            .iter()
            .map(|(at, record)| Line { at: *at, record })
    }
}

/// A column found in the header, with its name as written for messages.
struct Column {
    index: usize,
    name: String,
}

struct Header {
    /// (name as written, [`header_key`]).
    columns: Vec<(String, String)>,
}

impl Header {
    fn new(names: &[String]) -> Self {
        let columns = names
            .iter()
            .map(|name| (name.clone(), header_key(name)))
            .collect();
        Self { columns }
    }

    fn column(&self, index: usize) -> Column {
        let name = self.columns.get(index).map_or("", |(name, _)| name);
        Column {
            index,
            name: name.to_owned(),
        }
    }

    /// The columns as written, for messages.
    fn found(&self) -> String {
        let names: Vec<&str> = self.columns.iter().map(|(name, _)| name.as_str()).collect();
        if names.iter().all(|n| n.is_empty()) {
            "no columns".into()
        } else {
            names.join(", ")
        }
    }

    /// The first column named by any of `aliases`.
    fn find(&self, aliases: &Aliases) -> Option<Column> {
        aliases.iter().find_map(|alias| {
            let alias = header_key(alias);
            let index = self.columns.iter().position(|(_, key)| *key == alias)?;
            Some(self.column(index))
        })
    }

    fn require(&self, dataset: DuoDataset, aliases: &Aliases) -> Result<Column, DuoError> {
        self.find(aliases)
            .ok_or_else(|| self.missing(dataset, aliases.join(" or ")))
    }

    fn missing(&self, dataset: DuoDataset, column: String) -> DuoError {
        DuoError::MissingColumn {
            dataset,
            column,
            found: self.found(),
        }
    }

    /// The columns whose name, split in words, `pattern` accepts, with what it read.
    fn matching<T>(&self, pattern: impl Fn(&[&str]) -> Option<T>) -> Vec<(Column, T)> {
        let keys = self.columns.iter().map(|(_, key)| key);
        keys.enumerate()
            .filter_map(|(index, key)| {
                let words: Vec<&str> = key.split(' ').collect();
                Some((self.column(index), pattern(&words)?))
            })
            .collect()
    }
}

/// `LEER- OF VERBLIJFSJAAR n - MAN` / `- VROUW`, also `LEERJAAR n MAN` (as words).
fn leerjaar_gender(words: &[&str]) -> Option<(u8, &'static str)> {
    let (n, gender) = match words {
        ["LEERJAAR" | "VERBLIJFSJAAR", n, gender] | ["LEER", "OF", "VERBLIJFSJAAR", n, gender] => {
            (n, gender)
        }
        _ => return None,
    };
    let gender = match *gender {
        "MAN" => "man",
        "VROUW" => "vrouw",
        _ => return None,
    };
    Some((n.parse().ok()?, gender))
}

/// A count per gender (`MAN`, `AANTAL LEERLINGEN VROUW`) or of everyone (`AANTAL
/// LEERLINGEN`, `TOTAAL`), for VO files without a column per leerjaar (as words).
fn gender_total(words: &[&str]) -> Option<&'static str> {
    let (last, before) = words.split_last()?;
    if !matches!(
        before,
        [] | ["AANTAL"] | ["LEERLINGEN"] | ["AANTAL", "LEERLINGEN"]
    ) {
        return None;
    }
    match *last {
        "MAN" => Some("man"),
        "VROUW" => Some("vrouw"),
        "LEERLINGEN" | "TOTAAL" | "AANTAL" => Some("totaal"),
        _ => None,
    }
}

/// The one leerjaar an onderwijstype value names (`HAVO 4`, `HAVO/VWO lj 3`); none
/// when it names several (`VMBO BL lj 3-4`) or none.
fn leerjaar_in(value: &str) -> Option<u8> {
    let mut numbers = value
        .split(|c: char| !c.is_ascii_alphanumeric())
        .filter(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_digit()));
    let one = numbers.next()?.parse().ok()?;
    (numbers.next().is_none() && (1..=6).contains(&one)).then_some(one)
}

/// `LEEFTIJD_n`, `LEEFTIJD n`, `LEEFTIJD n JAAR` or `n JAAR` (as words).
fn age(words: &[&str]) -> Option<u8> {
    match words {
        ["LEEFTIJD", n] | ["LEEFTIJD", n, "JAAR"] | [n, "JAAR"] => n.parse().ok(),
        _ => None,
    }
}

/// Count columns must come whole: every leerjaar and every age from the lowest to
/// the highest, each leerjaar with both genders. A missing one would silently
/// drop pupils from every total.
fn complete_counts<T: PartialEq>(
    header: &Header,
    dataset: DuoDataset,
    found: &[(Column, T)],
    expected: impl IntoIterator<Item = (T, String)>,
) -> Result<(), DuoError> {
    for (count, name) in expected {
        if !found.iter().any(|(_, c)| *c == count) {
            return Err(header.missing(dataset, name));
        }
    }
    Ok(())
}

/// The columns identifying a school, common to all three datasets.
struct SchoolColumns {
    brin: Column,
    vestiging: Column,
    name: Column,
    municipality: Option<Column>,
}

impl SchoolColumns {
    fn new(header: &Header, dataset: DuoDataset) -> Result<Self, DuoError> {
        let name: &Aliases = match dataset {
            DuoDataset::Schools => &[
                "VESTIGINGSNAAM",
                "INSTELLINGSNAAM VESTIGING",
                "INSTELLINGSNAAM",
            ],
            DuoDataset::VoPupils | DuoDataset::PoPupils => {
                &["INSTELLINGSNAAM VESTIGING", "VESTIGINGSNAAM"]
            }
        };
        let municipality = match dataset {
            DuoDataset::VoPupils => header.find(&MUNICIPALITY),
            DuoDataset::PoPupils | DuoDataset::Schools => {
                Some(header.require(dataset, &MUNICIPALITY)?)
            }
        };
        Ok(Self {
            brin: header.require(dataset, &BRIN)?,
            vestiging: header.require(dataset, &VESTIGING)?,
            name: header.require(dataset, name)?,
            municipality,
        })
    }
}

/// A school as read from one line.
struct School {
    brin6: String,
    name: String,
    municipality: Option<String>,
}

/// How a VO file gives its counts.
enum VoCounts {
    /// A column per leerjaar and gender (`LEER- OF VERBLIJFSJAAR 3 - MAN`).
    PerLeerjaar(Vec<(Column, (u8, &'static str))>),
    /// A column per gender, or one of everyone (gender `totaal`), on lines of one
    /// leerjaar: its `LEERJAAR` column, else the one the onderwijstype names.
    PerLine {
        leerjaar: Option<Column>,
        counts: Vec<(Column, &'static str)>,
    },
}

/// The dataset's own columns, and the rows read so far.
enum Layout {
    Vo {
        onderwijstype: Column,
        opleidingsnaam: Option<Column>,
        vmbo_sector: Option<Column>,
        afdeling: Option<Column>,
        elementcode: Option<Column>,
        counts: VoCounts,
        rows: Vec<VoPupilRow>,
    },
    Po {
        soort_po: Option<Column>,
        counts: Vec<(Column, u8)>,
        rows: Vec<PoPupilRow>,
    },
    Schools {
        postcode: Column,
        place: Column,
        kind: Option<Column>,
        rows: Vec<SchoolRow>,
    },
}

struct Parser {
    school: SchoolColumns,
    layout: Layout,
    /// The CKAN datastore writes a suppressed count as 4.
    four_is_suppressed: bool,
}

impl Parser {
    /// Recognises the dataset and finds its columns.
    fn new(header: &Header, format: DuoFormat) -> Result<Self, DuoError> {
        let vo = header.matching(leerjaar_gender);
        let po = header.matching(age);
        let (dataset, layout) = if !vo.is_empty() {
            let dataset = DuoDataset::VoPupils;
            let leerjaren = vo.iter().map(|(_, (leerjaar, _))| *leerjaar);
            let (first, last) = (
                leerjaren.clone().min().unwrap_or(1),
                leerjaren.max().unwrap_or(1),
            );
            // A missing column is named as the file names its others.
            let older = header_key(&vo[0].0.name).starts_with("LEER OF");
            let expected = (first..=last).flat_map(|n| {
                [("man", "MAN"), ("vrouw", "VROUW")].map(|(gender, upper)| {
                    let name = if older {
                        format!("LEER- OF VERBLIJFSJAAR {n} - {upper}")
                    } else {
                        format!("LEERJAAR {n} {upper}")
                    };
                    ((n, gender), name)
                })
            });
            complete_counts(header, dataset, &vo, expected)?;
            let layout = Layout::Vo {
                onderwijstype: header.require(dataset, &VO_ONDERWIJSTYPE)?,
                opleidingsnaam: Some(header.require(dataset, &["OPLEIDINGSNAAM"])?),
                vmbo_sector: header.find(&["VMBO SECTOR"]),
                afdeling: header.find(&["AFDELING"]),
                elementcode: header.find(&ELEMENTCODE),
                counts: VoCounts::PerLeerjaar(vo),
                rows: Vec::new(),
            };
            (dataset, layout)
        } else if let Some(onderwijstype) = header.find(&VO_ONDERWIJSTYPE[..1]) {
            // DUO's long layout: a line per school, onderwijstype and leerjaar.
            let dataset = DuoDataset::VoPupils;
            let mut counts = header.matching(gender_total);
            if counts.iter().any(|(_, gender)| *gender != "totaal") {
                counts.retain(|(_, gender)| *gender != "totaal");
            }
            if counts.is_empty() {
                return Err(header.missing(
                    dataset,
                    "LEER- OF VERBLIJFSJAAR n - MAN / - VROUW, or MAN and VROUW, or AANTAL LEERLINGEN".into(),
                ));
            }
            let layout = Layout::Vo {
                onderwijstype,
                opleidingsnaam: header.find(&["OPLEIDINGSNAAM"]),
                vmbo_sector: header.find(&["VMBO SECTOR"]),
                afdeling: header.find(&["AFDELING"]),
                elementcode: header.find(&ELEMENTCODE),
                counts: VoCounts::PerLine {
                    leerjaar: header.find(&["LEERJAAR"]),
                    counts,
                },
                rows: Vec::new(),
            };
            (dataset, layout)
        } else if !po.is_empty() {
            let dataset = DuoDataset::PoPupils;
            let ages = po.iter().map(|(_, age)| *age);
            let (first, last) = (ages.clone().min().unwrap_or(0), ages.max().unwrap_or(0));
            let separator = if po[0].0.name.contains('_') { "_" } else { " " };
            let expected = (first..=last).map(|age| (age, format!("LEEFTIJD{separator}{age}")));
            complete_counts(header, dataset, &po, expected)?;
            let layout = Layout::Po {
                soort_po: header.find(&["SOORT PO"]),
                counts: po,
                rows: Vec::new(),
            };
            (dataset, layout)
        } else if let Some(postcode) = header.find(&["POSTCODE"]) {
            let dataset = DuoDataset::Schools;
            let layout = Layout::Schools {
                postcode,
                place: header.require(dataset, &["PLAATSNAAM"])?,
                kind: header.find(&["SOORT PO", "ONDERWIJSSTRUCTUUR"]),
                rows: Vec::new(),
            };
            (dataset, layout)
        } else {
            return Err(DuoError::UnknownDataset {
                found: header.found(),
            });
        };
        Ok(Self {
            school: SchoolColumns::new(header, dataset)?,
            layout,
            four_is_suppressed: format == DuoFormat::CkanJson,
        })
    }

    fn push(&mut self, line: &Line<'_>) -> Result<(), DuoError> {
        let school = line.school(&self.school)?;
        let four_is_suppressed = self.four_is_suppressed;
        match &mut self.layout {
            Layout::Vo {
                onderwijstype,
                opleidingsnaam,
                vmbo_sector,
                afdeling,
                elementcode,
                counts,
                rows,
            } => {
                let value = line.text(onderwijstype);
                let cells: Vec<(u8, &'static str, &Column)> = match counts {
                    VoCounts::PerLeerjaar(counts) => counts
                        .iter()
                        .map(|(column, (leerjaar, gender))| (*leerjaar, *gender, column))
                        .collect(),
                    VoCounts::PerLine { leerjaar, counts } => {
                        let leerjaar = match leerjaar {
                            Some(column) => line.leerjaar(column)?,
                            None => leerjaar_in(value).ok_or_else(|| {
                                line.invalid(
                                    onderwijstype,
                                    "names no single leerjaar (such as HAVO lj 4), and the file has no LEERJAAR column",
                                )
                            })?,
                        };
                        counts
                            .iter()
                            .map(|(column, gender)| (leerjaar, *gender, column))
                            .collect()
                    }
                };
                let onderwijstype = onderwijstype_of(value);
                let opleidingsnaam = opleidingsnaam.as_ref().map_or("", |c| line.text(c));
                let vmbo_sector = line.value(vmbo_sector.as_ref());
                let afdeling = line.value(afdeling.as_ref());
                let elementcode = line.value(elementcode.as_ref());
                let classified = classify(
                    &onderwijstype,
                    vmbo_sector.as_deref(),
                    elementcode.as_deref(),
                    [afdeling.as_deref().unwrap_or(""), opleidingsnaam],
                );
                for (leerjaar, gender, column) in cells {
                    rows.push(VoPupilRow {
                        brin6: school.brin6.clone(),
                        school_name: school.name.clone(),
                        municipality: school.municipality.clone(),
                        onderwijstype: onderwijstype.clone(),
                        vmbo_sector: vmbo_sector.clone(),
                        afdeling: afdeling.clone(),
                        elementcode: elementcode.clone(),
                        opleidingsnaam: opleidingsnaam.to_owned(),
                        profile_code: classified.profile_code.clone(),
                        technical: classified.technical,
                        leerjaar,
                        gender: gender.to_owned(),
                        pupils: line.count(column, four_is_suppressed)?,
                    });
                }
            }
            Layout::Po {
                soort_po,
                counts,
                rows,
            } => {
                let soort_po = line.value(soort_po.as_ref());
                for (column, age) in counts {
                    rows.push(PoPupilRow {
                        brin6: school.brin6.clone(),
                        school_name: school.name.clone(),
                        municipality: school.municipality.clone().unwrap_or_default(),
                        soort_po: soort_po.clone(),
                        age: *age,
                        groep_band: groep_band(*age),
                        pupils: line.count(column, four_is_suppressed)?,
                    });
                }
            }
            Layout::Schools {
                postcode,
                place,
                kind,
                rows,
            } => rows.push(SchoolRow {
                pc4: line.pc4(postcode)?,
                place: line.text(place).to_owned(),
                kind: line.value(kind.as_ref()),
                brin6: school.brin6,
                name: school.name,
                municipality: school.municipality.unwrap_or_default(),
            }),
        }
        Ok(())
    }

    fn into_rows(self) -> DuoRows {
        match self.layout {
            Layout::Vo { rows, .. } => DuoRows::VoPupils(rows),
            Layout::Po { rows, .. } => DuoRows::PoPupils(rows),
            Layout::Schools { rows, .. } => DuoRows::Schools(rows),
        }
    }
}

/// DUO's onderwijstype as the schema names it. The VO file's values name the
/// leerjaren too (`VMBO BL lj 3-4`, `HAVO lj 4-5`, `Praktijkonderwijs alle vj`),
/// which the count columns already give; older values are plain (`VMBO BB`). Leerweg
/// letters: BB/BL basis, KB/KL kader, GL gemengd, TL theoretisch.
pub fn onderwijstype_of(value: &str) -> String {
    let upper = value.to_uppercase();
    let words: Vec<&str> = upper
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .take_while(|w| !matches!(*w, "LJ" | "ALLE") && !w.bytes().all(|b| b.is_ascii_digit()))
        .collect();
    let known = match words.as_slice() {
        ["VMBO", "BB" | "BL" | "B"] => Some("vmbo-bb"),
        ["VMBO", "KB" | "KL" | "K"] => Some("vmbo-kb"),
        ["VMBO", "GL" | "G"] => Some("vmbo-gl"),
        ["VMBO", "TL" | "T"] | ["MAVO"] => Some("vmbo-tl"),
        ["HAVO"] => Some("havo"),
        ["VWO"] => Some("vwo"),
        ["PRO" | "PRAKTIJKONDERWIJS"] => Some("pro"),
        _ => None,
    };
    known.map_or_else(
        || {
            let words: Vec<&str> = words
                .iter()
                .filter(|w| !matches!(**w, "UITBEST" | "AAN"))
                .copied()
                .collect();
            words.join("-").to_lowercase()
        },
        str::to_owned,
    )
}

/// How DUO's values name VO profiles: `reference/data/duo_vo_profiles.json`.
#[derive(Debug, serde::Deserialize)]
struct ProfileSpellings {
    profiles: Vec<Spelling>,
    technical_vmbo_sectors: Vec<String>,
    /// ELEMENTCODE → the profiles it stands for.
    elementcodes: std::collections::HashMap<String, Vec<String>>,
}

#[derive(Debug, serde::Deserialize)]
struct Spelling {
    code: String,
    names: Vec<String>,
    abbreviations: Vec<String>,
}

/// The spellings with their profiles, and the technical sectors (lower case).
struct Spellings {
    profiles: Vec<(&'static Profile, Spelling)>,
    technical_vmbo_sectors: Vec<String>,
    elementcodes: std::collections::HashMap<String, Vec<String>>,
}

static SPELLINGS: LazyLock<Spellings> = LazyLock::new(|| {
    let list: ProfileSpellings = serde_json::from_str(include_str!("../data/duo_vo_profiles.json"))
        .expect("duo_vo_profiles.json is valid");
    let profiles = list
        .profiles
        .into_iter()
        .map(|spelling| {
            let profile = codes::profile(&spelling.code)
                .unwrap_or_else(|| panic!("{} is a vo_profiles code", spelling.code));
            (profile, spelling)
        })
        .collect();
    Spellings {
        profiles,
        technical_vmbo_sectors: list.technical_vmbo_sectors,
        elementcodes: list.elementcodes,
    }
});

/// What a VO row's values say of its profile.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The vo_profiles code, when the values name one profile or a combination the
    /// list has.
    pub profile_code: Option<String>,
    pub technical: bool,
}

/// The profile DUO's values name among those offered in `onderwijstype`: its
/// ELEMENTCODE where `duo_vo_profiles.json` lists it, else `texts` (AFDELING and
/// OPLEIDINGSNAAM) by the spellings there; a vmbo row naming none is technical by
/// its `vmbo_sector`.
pub fn classify(
    onderwijstype: &str,
    vmbo_sector: Option<&str>,
    elementcode: Option<&str>,
    texts: [&str; 2],
) -> Classified {
    let Ok(onderwijstype) = onderwijstype.parse::<VoOnderwijstype>() else {
        return Classified {
            profile_code: None,
            technical: false,
        };
    };
    let mut named: Vec<&'static Profile> = Vec::new();
    if let Some(codes) = elementcode.and_then(|c| SPELLINGS.elementcodes.get(c.trim())) {
        named.extend(
            SPELLINGS
                .profiles
                .iter()
                .map(|(p, _)| *p)
                .filter(|p| codes.contains(&p.code) && p.offered_in(onderwijstype)),
        );
    }
    // Names only where the code said nothing.
    let by_names = if named.is_empty() {
        texts.as_slice()
    } else {
        &[]
    };
    for text in by_names {
        let text = text.to_lowercase();
        let words: Vec<&str> = text
            .split(|c: char| c.is_whitespace() || "/,-+()".contains(c))
            .filter(|w| !w.is_empty())
            .collect();
        for (profile, spelling) in &SPELLINGS.profiles {
            let found = spelling.names.iter().any(|n| text.contains(n.as_str()))
                || spelling
                    .abbreviations
                    .iter()
                    .any(|a| words.contains(&a.as_str()));
            if found && profile.offered_in(onderwijstype) && !named.contains(profile) {
                named.push(profile);
            }
        }
    }
    match named.as_slice() {
        [] => {
            let vmbo = !matches!(onderwijstype, VoOnderwijstype::Havo | VoOnderwijstype::Vwo);
            let sector = vmbo_sector.map(str::to_lowercase);
            Classified {
                profile_code: None,
                technical: vmbo
                    && sector.is_some_and(|s| SPELLINGS.technical_vmbo_sectors.contains(&s)),
            }
        }
        [one] => Classified {
            profile_code: Some(one.code.clone()),
            technical: one.technical,
        },
        several => {
            // In the list's order, which is the order of the combination codes.
            let codes: Vec<&str> = SPELLINGS
                .profiles
                .iter()
                .filter(|(p, _)| several.contains(p))
                .map(|(p, _)| p.code.as_str())
                .collect();
            let combination = codes.join("+");
            Classified {
                profile_code: codes::profile(&combination).map(|p| p.code.clone()),
                technical: several.iter().any(|p| p.technical),
            }
        }
    }
}

/// One data line (or CKAN record), for reading cells and reporting errors at it.
struct Line<'a> {
    at: At,
    record: &'a csv::StringRecord,
}

impl Line<'_> {
    fn text(&self, column: &Column) -> &str {
        self.record.get(column.index).unwrap_or("")
    }

    /// An optional column's value; none for empty or `n.v.t.` (not applicable).
    fn value(&self, column: Option<&Column>) -> Option<String> {
        let text = self.text(column?);
        (!text.is_empty() && !text.eq_ignore_ascii_case("n.v.t.")).then(|| text.to_owned())
    }

    fn invalid(&self, column: &Column, reason: impl Into<String>) -> DuoError {
        DuoError::InvalidCell {
            at: self.at,
            column: column.name.clone(),
            reason: reason.into(),
        }
    }

    fn school(&self, columns: &SchoolColumns) -> Result<School, DuoError> {
        Ok(School {
            brin6: self.brin6(columns)?,
            name: self.text(&columns.name).to_owned(),
            municipality: columns
                .municipality
                .as_ref()
                .map(|m| self.text(m).to_owned()),
        })
    }

    /// BRIN number and vestigingsnummer joined: `12AB` + `1` is `12AB01`. Address
    /// files (and some years) give the whole BRIN6 as vestigingscode.
    fn brin6(&self, columns: &SchoolColumns) -> Result<String, DuoError> {
        let brin = self.text(&columns.brin);
        if brin.len() != 4 || !brin.bytes().all(|b| b.is_ascii_alphanumeric()) {
            return Err(self.invalid(&columns.brin, "not a BRIN number of 4 letters or digits"));
        }
        let vestiging = self.text(&columns.vestiging);
        let brin6 = match vestiging.len() {
            1 | 2 if vestiging.bytes().all(|b| b.is_ascii_digit()) => {
                format!("{brin}{vestiging:0>2}")
            }
            6 if vestiging.bytes().all(|b| b.is_ascii_alphanumeric())
                && vestiging[..4].eq_ignore_ascii_case(brin) =>
            {
                vestiging.to_owned()
            }
            _ => {
                return Err(self.invalid(
                    &columns.vestiging,
                    "neither 1 or 2 digits nor a BRIN6 starting with the BRIN number",
                ));
            }
        };
        Ok(brin6.to_ascii_uppercase())
    }

    /// An exact count, `<5` / `-1` for a suppressed one (and 4 where
    /// `four_is_suppressed`), or empty for none.
    fn count(&self, column: &Column, four_is_suppressed: bool) -> Result<PupilCount, DuoError> {
        let text = self.text(column);
        match text {
            "" => Ok(PupilCount::exact(0)),
            "-1" => Ok(PupilCount::SUPPRESSED),
            "4" if four_is_suppressed => Ok(PupilCount::SUPPRESSED),
            _ if text
                .strip_prefix('<')
                .is_some_and(|n| n.trim_start() == "5") =>
            {
                Ok(PupilCount::SUPPRESSED)
            }
            // `u32::from_str` also takes a leading `+`, which DUO never writes.
            _ => match text.parse() {
                Ok(n) if !text.starts_with('+') => Ok(PupilCount::exact(n)),
                _ => {
                    let shown: String = text.chars().take(12).collect();
                    Err(self.invalid(column, format!("not a pupil count, <5 or -1: {shown:?}")))
                }
            },
        }
    }

    /// The PC4 part of a postcode such as `7411 AB`.
    fn pc4(&self, column: &Column) -> Result<Option<String>, DuoError> {
        let postcode = self.text(column);
        if postcode.is_empty() {
            return Ok(None);
        }
        let (digits, letters) = postcode.split_at_checked(4).unwrap_or((postcode, ""));
        let letters = letters.trim_start();
        if digits.len() == 4
            && digits.bytes().all(|b| b.is_ascii_digit())
            && matches!(letters.len(), 0 | 2)
            && letters.bytes().all(|b| b.is_ascii_alphabetic())
        {
            Ok(Some(digits.to_owned()))
        } else {
            Err(self.invalid(column, "not a postcode such as 7411 AB"))
        }
    }

    /// The school year of a SCHOOLJAAR cell: `2023-2024`, `2023/2024`, `2023/24` or
    /// `2023` are 2023/24.
    fn school_year(&self, column: &Column) -> Result<SchoolYear, DuoError> {
        let text = self.text(column);
        let start = text
            .get(..4)
            .filter(|y| y.bytes().all(|b| b.is_ascii_digit()));
        let rest = text.get(4..).unwrap_or("");
        let rest_ok = rest.is_empty()
            || rest
                .strip_prefix(['-', '/'])
                .is_some_and(|r| matches!(r.len(), 2 | 4) && r.bytes().all(|b| b.is_ascii_digit()));
        match start.and_then(|y| y.parse().ok()) {
            Some(start) if rest_ok => Ok(SchoolYear::new(start)),
            _ => Err(self.invalid(column, "not a school year such as 2023-2024")),
        }
    }

    /// A LEERJAAR cell: 1 to 6.
    fn leerjaar(&self, column: &Column) -> Result<u8, DuoError> {
        self.text(column)
            .parse()
            .ok()
            .filter(|n| (1..=6).contains(n))
            .ok_or_else(|| self.invalid(column, "not a leerjaar from 1 to 6"))
    }

    /// The school year of a PEILDATUM (`YYYYMMDD` or `YYYY-MM-DD`).
    fn peildatum(&self, column: &Column) -> Result<SchoolYear, DuoError> {
        let text = self.text(column);
        ["%Y%m%d", "%Y-%m-%d"]
            .iter()
            .find_map(|format| NaiveDate::parse_from_str(text, format).ok())
            .map(SchoolYear::containing)
            .ok_or_else(|| self.invalid(column, "not a date such as 20231001 or 2023-10-01"))
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    /// Parses a fixture from `tests/data/duo`, by default with the school year from
    /// its name.
    macro_rules! fixture {
        ($name:literal) => {
            fixture!($name, None)
        };
        ($name:literal, $school_year:expr) => {
            parse(
                $name,
                include_bytes!(concat!("../tests/data/duo/", $name)),
                $school_year,
                today(),
            )
            .expect($name)
        };
    }

    /// The import date the tests parse on.
    fn today() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 7).expect("a date")
    }

    /// `parse` on [`today`].
    fn parse_now(
        name: &str,
        bytes: &[u8],
        school_year: Option<SchoolYear>,
    ) -> Result<DuoFile, DuoError> {
        parse(name, bytes, school_year, today())
    }

    /// brin6 → (name, municipality) of the VO fixture schools (the municipality as
    /// the address file gives it: DUO's VO files have none).
    const VO_SCHOOLS: [(&str, (&str, &str)); 5] = [
        ("12AB01", ("Sint-Ludgercollège", "Zutphen")),
        ("23CD00", ("Veluws Lyceum, locatie Zuid", "Apeldoorn")),
        ("34EF02", ("Athénée De Worp", "Deventer")),
        ("45GH00", ("Stedelijk College Utrecht", "Utrecht")),
        ("56JK01", ("Noorderlicht College", "Groningen")),
    ];

    fn vo_rows(file: &DuoFile) -> &[VoPupilRow] {
        match &file.rows {
            DuoRows::VoPupils(rows) => rows,
            other => panic!("expected VO pupils, got {}", other.dataset()),
        }
    }

    fn in_region(brin6: &str) -> bool {
        let (_, (_, municipality)) = VO_SCHOOLS
            .iter()
            .find(|(b, _)| *b == brin6)
            .expect("a fixture school");
        codes::hubs()
            .iter()
            .any(|h| h.municipality == *municipality)
    }

    /// A total as the fixture README gives it: exact part and suppressed cells.
    fn total(exact: u32, suppressed: u32) -> PupilCount {
        PupilCount {
            exact: (suppressed == 0).then_some(exact),
            min: exact + suppressed,
            max: exact + 4 * suppressed,
        }
    }

    /// [region all, region technical, national all, national technical] of the
    /// pupils of `types` in `leerjaar`.
    fn vo_totals(rows: &[VoPupilRow], types: &[&str], leerjaar: u8) -> [PupilCount; 4] {
        let sum = |region: bool, technical: bool| {
            rows.iter()
                .filter(|r| types.contains(&r.onderwijstype.as_str()) && r.leerjaar == leerjaar)
                .filter(|r| (!region || in_region(&r.brin6)) && (!technical || r.technical))
                .map(|r| r.pupils)
                .sum()
        };
        [
            sum(true, false),
            sum(true, true),
            sum(false, false),
            sum(false, true),
        ]
    }

    const VMBO_BB_KB_GL: &[&str] = &["vmbo-bb", "vmbo-kb", "vmbo-gl"];
    const HAVO_VWO: &[&str] = &["havo", "vwo"];

    /// Checks schools, suppressed cells and the README totals of a VO fixture.
    fn assert_vo_file(
        file: &DuoFile,
        suppressed: usize,
        vmbo: [PupilCount; 4],
        hv: [PupilCount; 4],
    ) {
        let rows = vo_rows(file);
        let schools: BTreeMap<&str, &str> = rows
            .iter()
            .map(|r| (r.brin6.as_str(), r.school_name.as_str()))
            .collect();
        let expected = VO_SCHOOLS.map(|(brin6, (name, _))| (brin6, name));
        assert_eq!(schools, BTreeMap::from(expected));
        assert!(rows.iter().all(|r| r.municipality.is_none()));
        let hidden: Vec<_> = rows.iter().filter(|r| r.pupils.exact.is_none()).collect();
        assert_eq!(hidden.len(), suppressed);
        assert!(hidden.iter().all(|r| r.pupils == PupilCount::SUPPRESSED));
        assert_eq!(vo_totals(rows, VMBO_BB_KB_GL, 3), vmbo, "vmbo leerjaar 3");
        assert_eq!(vo_totals(rows, HAVO_VWO, 4), hv, "havo/vwo leerjaar 4");
    }

    #[test]
    fn vo_2022_windows_1252_semicolons() {
        let file = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2022.csv");
        assert_eq!(file.encoding, "windows-1252");
        assert_eq!(file.format, DuoFormat::Csv(';'));
        assert_eq!(file.school_year, SchoolYear::new(2022));
        assert_vo_file(
            &file,
            84,
            [total(290, 6), total(138, 4), total(593, 15), total(253, 11)],
            [
                total(430, 10),
                total(192, 6),
                total(779, 20),
                total(376, 13),
            ],
        );
        // The last data line: `…;VWO-ATH Prf Cul/Maat;;;;;;;-1;10;5;<5;-1;9`.
        let cell = |leerjaar, gender: &str| {
            vo_rows(&file)
                .iter()
                .find(|r| {
                    r.brin6 == "56JK01"
                        && r.opleidingsnaam == "VWO-ATH Prf Cul/Maat"
                        && r.leerjaar == leerjaar
                        && r.gender == gender
                })
                .map(|r| r.pupils)
        };
        assert_eq!(cell(3, "man"), Some(PupilCount::exact(0)));
        assert_eq!(cell(4, "man"), Some(PupilCount::SUPPRESSED));
        assert_eq!(cell(4, "vrouw"), Some(PupilCount::exact(10)));
        assert_eq!(cell(5, "vrouw"), Some(PupilCount::SUPPRESSED));
    }

    /// opleidingsnaam → (onderwijstype, profile, technical) of every line of a file.
    fn profiles_of(file: &DuoFile) -> BTreeMap<(&str, &str), (Option<&str>, bool)> {
        vo_rows(file)
            .iter()
            .map(|r| {
                let key = (r.onderwijstype.as_str(), r.opleidingsnaam.as_str());
                (key, (r.profile_code.as_deref(), r.technical))
            })
            .collect()
    }

    #[test]
    fn profiles_and_onderwijstypes_in_the_older_layout() {
        let file = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2022.csv");
        let rows = vo_rows(&file);
        let bwi = rows
            .iter()
            .find(|r| r.profile_code.as_deref() == Some("BWI"))
            .expect("a BWI row");
        assert_eq!(
            (
                bwi.vmbo_sector.as_deref(),
                bwi.afdeling.as_deref(),
                bwi.elementcode.as_deref()
            ),
            (Some("Techniek"), Some("Bouwen, wonen en interieur"), None)
        );
        let expected = [
            (
                ("vmbo-bb", "VMBO BB BOUWEN, WONEN EN INTERIEUR"),
                (Some("BWI"), true),
            ),
            (
                ("vmbo-kb", "VMBO KB BOUWEN, WONEN EN INTERIEUR"),
                (Some("BWI"), true),
            ),
            (
                ("vmbo-kb", "VMBO KB PRODUCEREN, INSTALLEREN EN ENERGIE"),
                (Some("PIE"), true),
            ),
            (
                ("vmbo-gl", "VMBO GL MEDIA, VORMGEVING EN ICT"),
                (Some("MVI"), true),
            ),
            (("vmbo-bb", "VMBO BB ZORG EN WELZIJN"), (Some("Z&W"), false)),
            (("vmbo-kb", "VMBO KB ZORG EN WELZIJN"), (Some("Z&W"), false)),
            (
                ("vmbo-kb", "VMBO KB ECONOMIE EN ONDERNEMEN"),
                (Some("E&O"), false),
            ),
            (
                ("vmbo-gl", "VMBO GL ECONOMIE EN ONDERNEMEN"),
                (Some("E&O"), false),
            ),
            (("vmbo-tl", "VMBO TL"), (None, false)),
            (("brugjaar", "Ljvb op VMBO"), (None, false)),
            (("brugjaar", "HAVO (1-3)"), (None, false)),
            (("havo-vwo", "HAVO (1-3)"), (None, false)),
            (("havo", "HAVO Prf Nat/Tech"), (Some("N&T"), true)),
            (("havo", "HAVO Prf Nat/Gezond"), (Some("N&G"), true)),
            (
                ("havo", "HAVO Prf Nat/Tech & Nat/Gezond"),
                (Some("N&T+N&G"), true),
            ),
            (("havo", "HAVO Prf Ec/Maat"), (Some("E&M"), false)),
            (("havo", "HAVO Prf Cul/Maat"), (Some("C&M"), false)),
            (("brugjaar", "VWO-ATHENEUMSTROOM (1-3)"), (None, false)),
            (("havo-vwo", "VWO-ATHENEUMSTROOM (1-3)"), (None, false)),
            (("vwo", "VWO-ATH Prf Nat/Tech"), (Some("N&T"), true)),
            (("vwo", "VWO-ATH Prf Nat/Gezond"), (Some("N&G"), true)),
            (
                ("vwo", "VWO-ATH Prf Nat/Tech & Nat/Gezond"),
                (Some("N&T+N&G"), true),
            ),
            (("vwo", "VWO-ATH Prf Ec/Maat"), (Some("E&M"), false)),
            (("vwo", "VWO-ATH Prf Cul/Maat"), (Some("C&M"), false)),
            (("pro", "Praktijkonderwijs"), (None, false)),
        ];
        assert_eq!(profiles_of(&file), BTreeMap::from(expected));
    }

    #[test]
    fn profiles_in_the_newer_layout_and_the_same_counts_in_both() {
        let file = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv");
        let profiles = profiles_of(&file);
        for (key, expected) in [
            (
                ("vmbo-bb", "VMBO BB Bouwen, wonen en interieur"),
                (Some("BWI"), true),
            ),
            (("havo", "HAVO - N&T"), (Some("N&T"), true)),
            (("vwo", "VWO - N&T / N&G"), (Some("N&T+N&G"), true)),
            (("vwo", "VWO - C&M"), (Some("C&M"), false)),
        ] {
            assert_eq!(profiles.get(&key), Some(&expected), "{key:?}");
        }
        let with_code: Vec<_> = vo_rows(&file)
            .iter()
            .map(|r| r.elementcode.as_deref())
            .collect();
        assert!(with_code.contains(&Some("0374")), "{with_code:?}");
        // Every count cell the same, read from either layout.
        let cells = |file: &DuoFile| -> BTreeMap<(String, String, bool, u8, String), PupilCount> {
            let mut cells = BTreeMap::new();
            for r in vo_rows(file) {
                let key = (
                    r.brin6.clone(),
                    r.onderwijstype.clone(),
                    r.technical,
                    r.leerjaar,
                    r.gender.clone(),
                );
                let cell = cells.entry(key).or_insert(PupilCount::exact(0));
                *cell = *cell + r.pupils;
            }
            cells
        };
        let older =
            fixture!("other-layout/01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv");
        assert_eq!(older.encoding, file.encoding);
        assert_eq!(cells(&older), cells(&file));
        let json = include_bytes!("../tests/data/duo/ckan-datastore-search-vo-2024.json");
        let ckan = parse_now(
            "datastore_search?resource_id=…",
            json,
            Some(SchoolYear::new(2024)),
        )
        .expect("the CKAN answer");
        assert_eq!(ckan.format, DuoFormat::CkanJson);
        assert_eq!(cells(&ckan), cells(&file));
        assert_eq!(ckan.rows.suppressed_cells(), file.rows.suppressed_cells());
    }

    #[test]
    fn vo_2023_latin_1() {
        let file = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2023.csv");
        assert_eq!(file.encoding, "windows-1252");
        assert_eq!(file.format, DuoFormat::Csv(';'));
        assert_eq!(file.school_year, SchoolYear::new(2023));
        assert_vo_file(
            &file,
            77,
            [total(308, 6), total(160, 4), total(611, 15), total(275, 11)],
            [total(469, 7), total(237, 3), total(818, 17), total(421, 10)],
        );
    }

    #[test]
    fn vo_2024_utf8_bom_commas() {
        let file = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv");
        assert_eq!(file.encoding, "utf-8-bom");
        assert_eq!(file.format, DuoFormat::Csv(','));
        assert_eq!(file.school_year, SchoolYear::new(2024));
        assert_vo_file(
            &file,
            77,
            [total(322, 6), total(179, 4), total(630, 15), total(299, 11)],
            [total(493, 7), total(269, 3), total(849, 17), total(460, 10)],
        );
    }

    #[test]
    fn technical_share_rises_more_in_the_region() {
        let old = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2022.csv");
        let new = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv");
        for (types, leerjaar) in [(VMBO_BB_KB_GL, 3), (HAVO_VWO, 4)] {
            // Suppressed cells counted as 1, then as 4.
            let bounds: [fn(PupilCount) -> u32; 2] = [|c| c.min, |c| c.max];
            for bound in bounds {
                let share = |file: &DuoFile, region: bool| {
                    let [ra, rt, na, nt] = vo_totals(vo_rows(file), types, leerjaar).map(bound);
                    let (all, technical) = if region { (ra, rt) } else { (na, nt) };
                    f64::from(technical) / f64::from(all)
                };
                let rise = |region| share(&new, region) - share(&old, region);
                assert!(rise(true) > rise(false), "{types:?} leerjaar {leerjaar}");
            }
        }
    }

    #[test]
    fn po_pupils_by_age_and_band() {
        let file = fixture!("01.-leerlingen-po-soort-po-cluster-leeftijd-2024-2025.csv");
        assert_eq!((file.encoding, file.format), ("utf-8", DuoFormat::Csv(';')));
        assert_eq!(file.school_year, SchoolYear::new(2024));
        let DuoRows::PoPupils(rows) = &file.rows else {
            panic!("expected PO pupils, got {}", file.rows.dataset());
        };
        // LEEFTIJD_4 to LEEFTIJD_24; LEEFTIJD_JONGER and LEEFTIJD_OUDER name no age.
        assert_eq!(rows.len(), 4 * 21);
        assert!(rows.iter().all(|r| r.soort_po.as_deref() == Some("Bo")));
        assert!(rows.iter().all(|r| r.groep_band == groep_band(r.age)));
        let band = |band| -> PupilCount {
            rows.iter()
                .filter(|r| r.groep_band == band)
                .map(|r| r.pupils)
                .sum()
        };
        assert_eq!(band(None), total(0, 0));
        assert_eq!(band(Some("groep_1_2")), total(160, 0));
        assert_eq!(band(Some("groep_3_6")), total(317, 0));
        assert_eq!(band(Some("groep_7_8")), total(180, 1));
        let row = |brin6: &str, age| rows.iter().find(|r| r.brin6 == brin6 && r.age == age);
        let suppressed = row("10YB02", 12).expect("10YB02 age 12");
        assert_eq!(suppressed.pupils, PupilCount::SUPPRESSED);
        assert_eq!(suppressed.municipality, "EPE");
        let empty = row("08XZ01", 13).expect("08XZ01 age 13");
        assert_eq!(empty.pupils, PupilCount::exact(0));
        assert_eq!(empty.school_name, "CBS Het Kompas, locatie Noord");
    }

    #[test]
    fn groep_bands_follow_age_on_1_october() {
        let bands: Vec<_> = (2..=14).map(groep_band).collect();
        let (g12, g36, g78) = (Some("groep_1_2"), Some("groep_3_6"), Some("groep_7_8"));
        assert_eq!(
            bands,
            [
                None, None, g12, g12, g36, g36, g36, g36, g78, g78, g78, g78, g78
            ]
        );
    }

    #[test]
    fn school_addresses() {
        let school = |brin6: &str,
                      name: &str,
                      pc4: &str,
                      place: &str,
                      municipality: &str,
                      kind: Option<&str>| SchoolRow {
            brin6: brin6.to_owned(),
            name: name.to_owned(),
            pc4: Some(pc4.to_owned()),
            place: place.to_owned(),
            municipality: municipality.to_owned(),
            kind: kind.map(String::from),
        };
        let vo = fixture!("02.-alle-vestigingen-vo.csv");
        assert_eq!((vo.encoding, vo.format), ("utf-8", DuoFormat::Csv(';')));
        // DUO's address files name no year: the one the import falls in.
        assert_eq!(vo.school_year, SchoolYear::new(2026));
        let DuoRows::Schools(rows) = &vo.rows else {
            panic!("expected schools, got {}", vo.rows.dataset());
        };
        assert_eq!(rows.len(), 5);
        let zutphen = school(
            "12AB01",
            "Sint-Ludgercollège",
            "7201",
            "ZUTPHEN",
            "ZUTPHEN",
            Some("VMBO/HAVO/VWO"),
        );
        assert_eq!(rows[0], zutphen);
        let utrecht = school(
            "45GH00",
            "Stedelijk College Utrecht",
            "3511",
            "UTRECHT",
            "UTRECHT",
            None,
        );
        assert_eq!(rows[3], utrecht);
        let po = fixture!(
            "02.-alle-schoolvestigingen-basisonderwijs.csv",
            Some(SchoolYear::new(2024))
        );
        assert_eq!(
            (po.encoding, po.school_year),
            ("windows-1252", SchoolYear::new(2024))
        );
        let DuoRows::Schools(rows) = &po.rows else {
            panic!("expected schools, got {}", po.rows.dataset());
        };
        assert_eq!(
            rows[0],
            school(
                "07XY00",
                "OBS De Regenboog",
                "7321",
                "APELDOORN",
                "APELDOORN",
                None
            )
        );
        assert_eq!(
            rows[3],
            school(
                "10YB02",
                "Basisschool De Vlinderboom",
                "8171",
                "VAASSEN",
                "EPE",
                None
            )
        );
    }

    /// A one-school PO file with the given header suffix and cells.
    fn po_file(columns: &str, cells: &str) -> Vec<u8> {
        format!(
            "BRIN NUMMER;VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;GEMEENTENAAM;{columns}\n\
             12AB;1;Geheime School;Geheimstad;{cells}\n"
        )
        .into_bytes()
    }

    fn po_counts(cells: &str) -> Result<Vec<PupilCount>, DuoError> {
        let columns = (0..cells.split(';').count())
            .map(|i| format!("LEEFTIJD {} JAAR", i + 4))
            .collect::<Vec<_>>()
            .join(";");
        let file = parse_now("po-2024.csv", &po_file(&columns, cells), None)?;
        let DuoRows::PoPupils(rows) = file.rows else {
            panic!("expected PO pupils, got {}", file.rows.dataset());
        };
        Ok(rows.into_iter().map(|r| r.pupils).collect())
    }

    #[test]
    fn counts_exact_empty_and_suppressed() {
        let s = PupilCount::SUPPRESSED;
        assert_eq!(
            s,
            PupilCount {
                exact: None,
                min: 1,
                max: 4
            }
        );
        let counts = po_counts("<5;< 5;-1; 17 ;;0").expect("valid counts");
        let e = PupilCount::exact;
        assert_eq!(counts, [s, s, s, e(17), e(0), e(0)]);
        assert_eq!([e(3), s, e(2)].into_iter().sum::<PupilCount>(), total(5, 1));
        for bad in ["+3", "5.0", "<4", "-2", "1 000", "veel"] {
            let err = po_counts(bad).expect_err(bad);
            let message = err.to_string();
            assert!(
                message.starts_with("line 2, column LEEFTIJD 4 JAAR: "),
                "{message}"
            );
            assert!(
                message.contains(bad) && !message.contains("Geheim"),
                "{message}"
            );
        }
    }

    #[test]
    fn bad_count_names_line_and_column() {
        // A blank line and a quoted line break before the bad cell, on line 5.
        let text = "BRIN NUMMER;VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;GEMEENTENAAM;LEEFTIJD 4\n\
                    12AB;1;\"Geheime\nSchool\";Geheimstad;7\n\
                    \n\
                    12AB;2;Geheime School;Geheimstad;12,5\n";
        for text in [text.to_owned(), text.replace('\n', "\r\n")] {
            let err = parse_now("po-2024.csv", text.as_bytes(), None).expect_err("bad count");
            assert_eq!(
                err,
                DuoError::InvalidCell {
                    at: At::Line(5),
                    column: "LEEFTIJD 4".into(),
                    reason: "not a pupil count, <5 or -1: \"12,5\"".into()
                },
                "{text:?}"
            );
        }
    }

    #[test]
    fn brin6_joins_brin_and_vestiging() {
        let brin6 = |brin: &str, vestiging: &str| -> Result<String, DuoError> {
            let bytes = format!(
                "BRIN NUMMER;VESTIGINGSNUMMER;VESTIGINGSNAAM;POSTCODE;PLAATSNAAM;GEMEENTENAAM\n\
                 {brin};{vestiging};Geheime School;7411 AB;Geheimstad;Geheimstad\n"
            );
            match parse_now("adressen-2024.csv", bytes.as_bytes(), None)?.rows {
                DuoRows::Schools(rows) => Ok(rows[0].brin6.clone()),
                other => panic!("expected schools, got {}", other.dataset()),
            }
        };
        assert_eq!(brin6("12AB", "1"), Ok("12AB01".into()));
        assert_eq!(brin6("12ab", "03"), Ok("12AB03".into()));
        assert_eq!(brin6("12AB", "12ab04"), Ok("12AB04".into()));
        for bad in ["12A", "12ABC", "12-B", ""] {
            let err = brin6(bad, "1").expect_err(bad);
            assert_eq!(
                err.to_string(),
                "line 2, column BRIN NUMMER: not a BRIN number of 4 letters or digits"
            );
        }
        for bad in ["123", "", "99ZZ01", "1a", "12AB1"] {
            let err = brin6("12AB", bad).expect_err(bad);
            let message = err.to_string();
            assert!(
                message.starts_with("line 2, column VESTIGINGSNUMMER: "),
                "{message}"
            );
            assert!(!message.contains("Geheim"), "{message}");
        }
    }

    #[test]
    fn postcodes_keep_pc4() {
        let pc4 = |postcode: &str| -> Result<Option<String>, DuoError> {
            let bytes = format!(
                "BRIN NUMMER;VESTIGINGSNUMMER;VESTIGINGSNAAM;POSTCODE;PLAATSNAAM;GEMEENTENAAM\n\
                 12AB;1;Geheime School;{postcode};Geheimstad;Geheimstad\n"
            );
            match parse_now("adressen-2024.csv", bytes.as_bytes(), None)?.rows {
                DuoRows::Schools(rows) => Ok(rows[0].pc4.clone()),
                other => panic!("expected schools, got {}", other.dataset()),
            }
        };
        assert_eq!(pc4("7411 AB"), Ok(Some("7411".into())));
        assert_eq!(pc4("7411AB"), Ok(Some("7411".into())));
        assert_eq!(pc4("7411"), Ok(Some("7411".into())));
        assert_eq!(pc4(""), Ok(None));
        for bad in ["741 AB", "7411 A", "ABCD EF", "7411 ABC", "74115"] {
            let err = pc4(bad).expect_err(bad);
            assert_eq!(
                err.to_string(),
                "line 2, column POSTCODE: not a postcode such as 7411 AB"
            );
        }
    }

    #[test]
    fn missing_columns_are_named_with_those_found() {
        let vo = b"BRIN NUMMER;VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR;LEER- OF VERBLIJFSJAAR 1 - MAN;LEER- OF VERBLIJFSJAAR 1 - VROUW\n";
        let err = parse_now("vo-2024.csv", vo, None).expect_err("no OPLEIDINGSNAAM");
        assert_eq!(
            err.to_string(),
            "line 1: vo_pupils file lacks column OPLEIDINGSNAAM; found: BRIN NUMMER, \
             VESTIGINGSNUMMER, INSTELLINGSNAAM VESTIGING, ONDERWIJSTYPE VO EN LEER- OF \
             VERBLIJFSJAAR, LEER- OF VERBLIJFSJAAR 1 - MAN, LEER- OF VERBLIJFSJAAR 1 - VROUW"
        );
        // A count column missing among the others.
        let mut header = String::from(
            "INSTELLINGSCODE;VESTIGINGSCODE;INSTELLINGSNAAM VESTIGING;ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR;OPLEIDINGSNAAM",
        );
        for n in 1..=6 {
            for gender in ["MAN", "VROUW"] {
                if (n, gender) != (3, "VROUW") {
                    header.push_str(&format!(";LEER- OF VERBLIJFSJAAR {n} - {gender}"));
                }
            }
        }
        let err = parse_now("vo-2024.csv", header.as_bytes(), None).expect_err("no 3 - VROUW");
        let message = err.to_string();
        assert!(
            message.starts_with(
                "line 1: vo_pupils file lacks column LEER- OF VERBLIJFSJAAR 3 - VROUW; found: INSTELLINGSCODE, "
            ) && message.ends_with("LEER- OF VERBLIJFSJAAR 6 - VROUW"),
            "{message}"
        );
        let po = b"INSTELLINGSCODE;VESTIGINGSCODE;INSTELLINGSNAAM_VESTIGING;GEMEENTENAAM;LEEFTIJD_4;LEEFTIJD_6\n";
        let err = parse_now("po-2024.csv", po, None).expect_err("no age 5");
        assert_eq!(
            err.to_string(),
            "line 1: po_pupils file lacks column LEEFTIJD_5; found: INSTELLINGSCODE, \
             VESTIGINGSCODE, INSTELLINGSNAAM_VESTIGING, GEMEENTENAAM, LEEFTIJD_4, LEEFTIJD_6"
        );
        let po = b"VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;GEMEENTENAAM;LEEFTIJD 4\n";
        let err = parse_now("po-2024.csv", po, None).expect_err("no BRIN");
        assert!(
            err.to_string().starts_with(
                "line 1: po_pupils file lacks column BRIN NUMMER or INSTELLINGSCODE or BRINNUMMER; found: VESTIGINGSNUMMER"
            ),
            "{err}"
        );
        for (unknown, found) in [
            (
                &b"NAAM;ADRES;AANTAL\nGeheim;Geheimstraat;3\n"[..],
                "NAAM, ADRES, AANTAL",
            ),
            (b"", "no columns"),
            (b"\n\n", "no columns"),
        ] {
            let err = parse_now("duo-2024.csv", unknown, None).expect_err("unknown");
            assert_eq!(
                err,
                DuoError::UnknownDataset {
                    found: found.into()
                }
            );
            let message = err.to_string();
            assert!(
                message.starts_with("line 1: not a known DUO file")
                    && message.contains("LEER- OF VERBLIJFSJAAR n - MAN")
                    && message.contains("LEEFTIJD_n")
                    && message.contains("POSTCODE")
                    && message.ends_with(&format!("found: {found}")),
                "{message}"
            );
        }
    }

    #[test]
    fn malformed_lines_and_encoding() {
        let mut bytes = b"\r\n".to_vec();
        bytes.extend(po_file("LEEFTIJD 4", "7;8"));
        let err = parse_now("po-2024.csv", &bytes, None).expect_err("extra field");
        assert_eq!(
            err,
            DuoError::MalformedCsv {
                line: 3,
                reason: "6 fields where the header has 5".into()
            }
        );
        let err =
            parse_now("po-2024.csv", b"\xEF\xBB\xBFBRIN NUMMER;\xFF\n", None).expect_err("bad");
        assert_eq!(err, DuoError::InvalidUtf8);
    }

    #[test]
    fn header_names_by_meaning_onderwijstypes_and_quotes() {
        // DUO's own invented-looking spellings over the years: one column each.
        let bytes = "brin_nummer , Vestigingsnummer,Instellingsnaam  Vestiging,gemeentenaam,\
                     onderwijstype vo,opleidingsnaam,Leerjaar 3 Man,LEERJAAR_3_VROUW,EXTRA\n\
                     12AB,1,\"School; of \"\"Zo\"\", Zutphen\",Zutphen, Vmbo  KB ,\
                     \"VMBO KB PRODUCEREN, INSTALLEREN EN ENERGIE\",5,6,x\n\
                     12AB,1,School,Zutphen,VMBO GL/TL,VMBO GL/TL ALGEMEEN,7,8,y\n";
        let file =
            parse_now("vo.csv", bytes.as_bytes(), Some(SchoolYear::new(2030))).expect("parses");
        assert_eq!((file.encoding, file.format), ("utf-8", DuoFormat::Csv(',')));
        assert_eq!(file.school_year, SchoolYear::new(2030));
        let rows = vo_rows(&file);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].school_name, "School; of \"Zo\", Zutphen");
        assert_eq!(rows[0].municipality.as_deref(), Some("Zutphen"));
        assert_eq!(
            (
                rows[0].onderwijstype.as_str(),
                rows[0].profile_code.as_deref()
            ),
            ("vmbo-kb", Some("PIE"))
        );
        assert_eq!((rows[1].leerjaar, rows[1].gender.as_str()), (3, "vrouw"));
        assert_eq!(rows[1].pupils, PupilCount::exact(6));
        assert_eq!(
            (
                rows[2].onderwijstype.as_str(),
                rows[2].profile_code.as_deref()
            ),
            ("vmbo-gl-tl", None)
        );
    }

    /// VO pupils as DUO's newer portal also serves them: a record per school,
    /// onderwijstype, school year and leerjaar, one count of everyone (the fields as
    /// a public script reads the CKAN export), counts of 1 to 4 written as 4.
    #[test]
    fn the_long_layout_a_record_per_school_year_and_leerjaar() {
        let record = |year: &str,
                      onderwijstype: &str,
                      sector: &str,
                      afdeling: &str,
                      leerjaar: u8,
                      pupils: u32| {
            serde_json::json!({
                "_id": 1, "BEVOEGD GEZAG": "41000", "BRIN NUMMER": "12AB", "VESTIGINGSNUMMER": "12AB01",
                "BRINVESTIGINGSNUMMER": "12AB01", "INSTELLINGSNAAM VESTIGING": "Sint-Ludgercollège",
                "PLAATSNAAM VESTIGING": "ZUTPHEN", "PROVINCIE VESTIGING": "Gelderland", "INDICATIE VO-VAVO": "VO",
                "VMBO SECTOR": sector, "AFDELING": afdeling,
                "ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR": onderwijstype, "SCHOOLJAAR": year,
                "LEERJAAR": leerjaar, "AANTAL LEERLINGEN": pupils
            })
        };
        let fields = [
            "_id",
            "BEVOEGD GEZAG",
            "BRIN NUMMER",
            "VESTIGINGSNUMMER",
            "BRINVESTIGINGSNUMMER",
            "INSTELLINGSNAAM VESTIGING",
            "PLAATSNAAM VESTIGING",
            "PROVINCIE VESTIGING",
            "INDICATIE VO-VAVO",
            "VMBO SECTOR",
            "AFDELING",
            "ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR",
            "SCHOOLJAAR",
            "LEERJAAR",
            "AANTAL LEERLINGEN",
        ];
        let answer = serde_json::json!({"success": true, "result": {
        "fields": fields.iter().map(|f| serde_json::json!({"id": f})).collect::<Vec<_>>(),
        "records": [
            record("2023-2024", "VMBO BL lj 3-4", "Techniek", "Bouwen, wonen en interieur", 3, 17),
            record("2023-2024", "VMBO BL lj 3-4", "Techniek", "Bouwen, wonen en interieur", 4, 4),
            record("2024-2025", "VMBO BL lj 3-4", "Techniek", "Bouwen, wonen en interieur", 3, 21),
            record("2023-2024", "HAVO lj 4-5", "n.v.t.", "n.v.t.", 4, 30),
        ]}})
        .to_string();
        let err = parse_now("datastore_search", answer.as_bytes(), None).expect_err("two years");
        assert_eq!(
            err.to_string(),
            "the file holds the school years 2023/24, 2024/25 (column SCHOOLJAAR): import one at a time with its school year given"
        );
        let file = parse_now(
            "datastore_search",
            answer.as_bytes(),
            Some(SchoolYear::new(2023)),
        )
        .expect("2023/24");
        let rows: Vec<_> = vo_rows(&file)
            .iter()
            .map(|r| {
                (
                    r.onderwijstype.as_str(),
                    r.profile_code.as_deref(),
                    r.technical,
                    r.leerjaar,
                    r.gender.as_str(),
                    r.pupils,
                )
            })
            .collect();
        let s = PupilCount::SUPPRESSED;
        assert_eq!(
            rows,
            [
                (
                    "vmbo-bb",
                    Some("BWI"),
                    true,
                    3,
                    "totaal",
                    PupilCount::exact(17)
                ),
                ("vmbo-bb", Some("BWI"), true, 4, "totaal", s),
                ("havo", None, false, 4, "totaal", PupilCount::exact(30)),
            ]
        );
        assert_eq!(vo_rows(&file)[0].brin6, "12AB01");
    }

    /// A line per onderwijstype with counts per gender: the leerjaar is the one the
    /// onderwijstype names; a value that names several is refused, named.
    #[test]
    fn per_gender_lines_take_the_leerjaar_from_the_onderwijstype() {
        let csv = "INSTELLINGSCODE;VESTIGINGSCODE;INSTELLINGSNAAM VESTIGING;ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR;OPLEIDINGSNAAM;MAN;VROUW\n\
                   12AB;01;School;HAVO lj 4;HAVO - N&T;12;<5\n\
                   12AB;01;School;VMBO BL lj 3-4;VMBO BB Bouwen, wonen en interieur;5;6\n";
        let err = parse_now("vo-2024.csv", csv.as_bytes(), None).expect_err("a range");
        assert_eq!(
            err.to_string(),
            "line 3, column ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR: names no single leerjaar (such as HAVO lj 4), and the file has no LEERJAAR column"
        );
        let first_line: String = csv.lines().take(2).map(|l| format!("{l}\n")).collect();
        let file = parse_now("vo-2024.csv", first_line.as_bytes(), None).expect("one leerjaar");
        let rows: Vec<_> = vo_rows(&file)
            .iter()
            .map(|r| {
                (
                    r.leerjaar,
                    r.gender.as_str(),
                    r.profile_code.as_deref(),
                    r.pupils,
                )
            })
            .collect();
        assert_eq!(
            rows,
            [
                (4, "man", Some("N&T"), PupilCount::exact(12)),
                (4, "vrouw", Some("N&T"), PupilCount::SUPPRESSED)
            ]
        );
        assert_eq!(leerjaar_in("HAVO 4"), Some(4));
        assert_eq!(leerjaar_in("Brugjaar 1-2"), None);
        assert_eq!(leerjaar_in("Praktijkonderwijs alle vj"), None);
        assert_eq!(leerjaar_in("VWO lj 7"), None);
        let no_counts = "INSTELLINGSCODE;VESTIGINGSCODE;INSTELLINGSNAAM VESTIGING;ONDERWIJSTYPE VO EN LEER- OF VERBLIJFSJAAR\n";
        assert!(
            parse_now("vo-2024.csv", no_counts.as_bytes(), None)
                .expect_err("no counts")
                .to_string()
                .starts_with("line 1: vo_pupils file lacks column LEER- OF VERBLIJFSJAAR n - MAN / - VROUW, or MAN and VROUW, or AANTAL LEERLINGEN; found: ")
        );
    }

    #[test]
    fn onderwijstypes_as_duo_writes_them() {
        for (value, expected) in [
            ("VMBO BL lj 3-4", "vmbo-bb"),
            ("VMBO KL lj 3-4", "vmbo-kb"),
            ("VMBO GL lj 3-4", "vmbo-gl"),
            ("VMBO TL lj 3-4", "vmbo-tl"),
            ("VMBO BB", "vmbo-bb"),
            ("HAVO lj 4-5", "havo"),
            ("VWO lj 4-6", "vwo"),
            ("HAVO/VWO lj 3", "havo-vwo"),
            ("Brugjaar 1-2", "brugjaar"),
            ("Praktijkonderwijs alle vj", "pro"),
            ("VMBO uitbest. aan VAVO", "vmbo-vavo"),
            ("HAVO uitbest. aan VAVO", "havo-vavo"),
            ("VMBO-MBO2 lj 3-6", "vmbo-mbo2"),
            ("Int. Baccelaureaat", "int-baccelaureaat"),
        ] {
            assert_eq!(onderwijstype_of(value), expected, "{value}");
        }
    }

    #[test]
    fn profiles_from_duo_values() {
        let classified = |onderwijstype, sector, afdeling, opleidingsnaam| {
            let c = classify(onderwijstype, sector, None, [afdeling, opleidingsnaam]);
            (c.profile_code, c.technical)
        };
        let code = |c: &str| Some(c.to_owned());
        // The exam file's spellings and the elementcode table's.
        assert_eq!(
            classified("havo", None, "", "HAVO - N&T"),
            (code("N&T"), true)
        );
        assert_eq!(
            classified("vwo", None, "", "VWO - N&T / N&G"),
            (code("N&T+N&G"), true)
        );
        assert_eq!(
            classified("havo", None, "", "HAVO Prf Nat/Gezond"),
            (code("N&G"), true)
        );
        assert_eq!(
            classified("vwo", None, "n.v.t.", "VWO-GYM Prf Nat/Tech & Ec/Maat"),
            (None, true)
        );
        assert_eq!(
            classified("vwo", None, "", "VWO - E&M / C&M"),
            (None, false)
        );
        assert_eq!(
            classified("havo", None, "", "HAVO - C&M"),
            (code("C&M"), false)
        );
        assert_eq!(
            classified("vwo", None, "", "VWO NATUUR EN TECHNIEK"),
            (code("N&T"), true)
        );
        // vmbo: the profiel by its name in AFDELING or OPLEIDINGSNAAM, else the sector.
        assert_eq!(
            classified(
                "vmbo-kb",
                Some("Techniek"),
                "Mobiliteit en transport",
                "VMBO KB"
            ),
            (code("M&T"), true)
        );
        assert_eq!(
            classified(
                "vmbo-gl",
                Some("Techniek"),
                "",
                "VMBO GL Maritiem en techniek"
            ),
            (code("MaT"), true)
        );
        assert_eq!(
            classified(
                "vmbo-bb",
                Some("Zorg en welzijn"),
                "Zorg en welzijn",
                "VMBO BB"
            ),
            (code("Z&W"), false)
        );
        assert_eq!(
            classified(
                "vmbo-bb",
                Some("Techniek"),
                "Bouwtechniek",
                "VMBO BB BOUWTECHNIEK"
            ),
            (None, true)
        );
        assert_eq!(
            classified("vmbo-kb", Some("Economie"), "Handel", "VMBO KB"),
            (None, false)
        );
        // Offered only in some onderwijstypes; a sector only for vmbo.
        assert_eq!(
            classified("vwo", None, "", "VWO BOUWEN, WONEN EN INTERIEUR"),
            (None, false)
        );
        assert_eq!(
            classified("vmbo-kb", None, "", "VMBO KB N&T"),
            (None, false)
        );
        assert_eq!(
            classified("havo", Some("Techniek"), "", "HAVO"),
            (None, false)
        );
        assert_eq!(
            classified("brugjaar", Some("Techniek"), "", "Brugjaar"),
            (None, false)
        );
        // The elementcode first, where the list has it: 0375 is N&T with E&M.
        let by_code = |code, name| {
            let c = classify("havo", None, Some(code), ["", name]);
            (c.profile_code, c.technical)
        };
        assert_eq!(by_code("0375", "HAVO"), (None, true));
        assert_eq!(by_code("0374", "HAVO"), (code("N&T+N&G"), true));
        assert_eq!(by_code("0379", "HAVO - N&T"), (None, false));
        assert_eq!(by_code("0376", "HAVO - N&T"), (code("N&T"), true));
        // Abbreviations only as whole words.
        assert_eq!(
            classified("havo", None, "", "HAVO INTERNATIONAAL"),
            (None, false)
        );
    }

    #[test]
    fn separator_detection() {
        assert_eq!(detect_separator("A;B,C\n1,2,3"), b';');
        assert_eq!(detect_separator("\n\"A;B\";C,D,E"), b',');
        assert_eq!(detect_separator("A,B;C;D"), b';');
        assert_eq!(detect_separator("A"), b';');
    }

    #[test]
    fn school_year_sources() {
        let year = |name| year_ending(name).map(|y| y.start);
        assert_eq!(year("01.-leerlingen-vo-2023.csv"), Some(2023));
        assert_eq!(year("C:\\duo\\LEERLINGEN-2021.CSV"), Some(2021));
        assert_eq!(year("data/leerlingen-2024"), Some(2024));
        assert_eq!(
            year("01.-leerlingen-po-soort-po-cluster-leeftijd-2024-2025.csv"),
            Some(2024)
        );
        assert_eq!(year("leerlingen-2022-2024.csv"), Some(2024));
        assert_eq!(year("leerlingen-20231001.csv"), None);
        assert_eq!(year("leerlingen-vo.csv"), None);
        assert_eq!(year("2023/leerlingen.csv"), None);

        let explicit = fixture!(
            "01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2022.csv",
            Some(SchoolYear::new(2019))
        );
        assert_eq!(explicit.school_year, SchoolYear::new(2019));

        let with_peildatum = |date: &str| {
            let bytes = po_file("PEILDATUM;LEEFTIJD 4", &format!("{date};7"));
            parse_now("leerlingen-po.csv", &bytes, None).map(|f| f.school_year)
        };
        assert_eq!(with_peildatum("20231001"), Ok(SchoolYear::new(2023)));
        assert_eq!(with_peildatum("2024-10-01"), Ok(SchoolYear::new(2024)));
        assert_eq!(with_peildatum("2024-03-01"), Ok(SchoolYear::new(2023)));
        assert_eq!(
            with_peildatum("1-10-2023")
                .expect_err("bad date")
                .to_string(),
            "line 2, column PEILDATUM: not a date such as 20231001 or 2023-10-01"
        );
        let err =
            parse_now("leerlingen-po.csv", &po_file("LEEFTIJD 4", "7"), None).expect_err("no year");
        assert_eq!(err, DuoError::NoSchoolYear);
    }
}
