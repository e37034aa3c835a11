//! DUO open onderwijsdata: parses the CSV files DUO publishes into typed rows for
//! the reference tables. Pure: takes the file name and bytes, does no I/O.
//!
//! Three datasets, recognised by their header because DUO renames files:
//! - VO pupils per vestiging by onderwijstype, opleidingsnaam, leerjaar and gender
//!   (`LEERJAAR n MAN` / `LEERJAAR n VROUW` columns);
//! - PO pupils per vestiging by age (`LEEFTIJD n` or `LEEFTIJD n JAAR` columns);
//! - school addresses (a `POSTCODE` column and no count columns).
//!
//! DUO's layout drifted over the years, so the parser accepts UTF-8 with or without
//! BOM and Windows-1252/Latin-1, `;` or `,` separators, header names in any case
//! (with the aliases DUO used), extra columns (ignored), and padded values (trimmed).
//!
//! DUO does not publish counts of 1 to 4 pupils: such cells read `<5` (older files
//! `-1`) and become a [`PupilCount`] with bounds 1 to 4 instead of a number.
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
/// opleidingsnaam, leerjaar and gender.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VoPupilRow {
    pub brin6: String,
    pub school_name: String,
    pub municipality: String,
    /// `vmbo-bb`, `vmbo-kb`, `vmbo-gl`, `vmbo-tl`, `havo`, `vwo`, `pro`, or DUO's
    /// value in lower case with `-` for spaces.
    pub onderwijstype: String,
    pub opleidingsnaam: String,
    /// The [`codes::profiles`] code the opleidingsnaam names, if any.
    pub profile_code: Option<String>,
    /// Whether that profile is technical; false without a profile.
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

/// A parsed DUO file, with what was detected about it for the import record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuoFile {
    pub school_year: SchoolYear,
    /// `utf-8-bom`, `utf-8` or `windows-1252` (which also covers Latin-1).
    pub encoding: &'static str,
    /// `;` or `,`.
    pub separator: char,
    pub rows: DuoRows,
}

/// Why a file could not be parsed. Messages name lines and columns but never quote
/// cells, except the offending count.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DuoError {
    #[error("the file starts with a UTF-8 byte order mark but is not valid UTF-8")]
    InvalidUtf8,
    #[error(
        "line 1: not a known DUO file: expected LEERJAAR n MAN/VROUW columns (VO pupils), \
         LEEFTIJD n columns (PO pupils) or a POSTCODE column (school addresses)"
    )]
    UnknownDataset,
    #[error("line 1: {dataset} file lacks column {column}")]
    MissingColumn { dataset: DuoDataset, column: String },
    #[error("line {line}: {reason}")]
    MalformedCsv { line: u64, reason: String },
    #[error("line {line}, column {column}: {reason}")]
    InvalidCell {
        line: u64,
        column: String,
        reason: String,
    },
    #[error(
        "no school year: none given, the file name does not end in a year such as \
         -2023.csv, and there is no PEILDATUM column"
    )]
    NoSchoolYear,
}

/// The groep band of a PO pupil aged `age` on 1 October (see the module doc).
pub use techmon_schemas::codes::po_band_of_age as groep_band;

/// Parses one DUO file. The school year is `school_year` if given, else the year
/// ending the file name (`…-2023.csv` is 2023/24: DUO counts on 1 October), else the
/// PEILDATUM of the first data line.
pub fn parse(
    file_name: &str,
    bytes: &[u8],
    school_year: Option<SchoolYear>,
) -> Result<DuoFile, DuoError> {
    let (text, encoding) = decode(bytes)?;
    let separator = detect_separator(&text);
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(separator)
        .flexible(false)
        .trim(csv::Trim::All)
        .from_reader(text.as_bytes());
    let mut lines = LineCounter::new(&text);
    let header = Header::new(reader.headers().map_err(|e| lines.malformed(e))?);
    let mut parser = Parser::new(&header)?;
    let peildatum = header.find(&["PEILDATUM"]);
    let mut school_year = school_year.or_else(|| year_ending(file_name));
    if school_year.is_none() && peildatum.is_none() {
        return Err(DuoError::NoSchoolYear);
    }
    for record in reader.records() {
        let record = record.map_err(|e| lines.malformed(e))?;
        if record.iter().all(str::is_empty) {
            continue;
        }
        let line = Line {
            number: lines.line_of(record.position()),
            record: &record,
        };
        if let (None, Some(column)) = (school_year, &peildatum) {
            school_year = Some(line.peildatum(column)?);
        }
        parser.push(&line)?;
    }
    Ok(DuoFile {
        school_year: school_year.ok_or(DuoError::NoSchoolYear)?,
        encoding,
        separator: char::from(separator),
        rows: parser.into_rows(),
    })
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

/// The school year of a file named like `…-2023.csv`.
fn year_ending(file_name: &str) -> Option<SchoolYear> {
    let name = file_name.rsplit(['/', '\\']).next().unwrap_or(file_name);
    let stem = name
        .strip_suffix(".csv")
        .or_else(|| name.strip_suffix(".CSV"))
        .unwrap_or(name);
    let (before, year) = stem.split_at_checked(stem.len().checked_sub(4)?)?;
    if !year.bytes().all(|b| b.is_ascii_digit()) || before.ends_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    year.parse().ok().map(SchoolYear::new)
}

/// The words of `text` joined by `separator`: DUO pads and spaces names unevenly.
fn rejoin_words(text: &str, separator: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(separator)
}

/// Upper case with single spaces, so header names match however DUO wrote them.
fn header_key(name: &str) -> String {
    rejoin_words(name, " ").to_uppercase()
}

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

    fn malformed(&mut self, error: csv::Error) -> DuoError {
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
    fn new(record: &csv::StringRecord) -> Self {
        let columns = record
            .iter()
            .map(|name| (name.to_owned(), header_key(name)))
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

    /// The first column named by any of `aliases` (given as [`header_key`]s).
    fn find(&self, aliases: &[&str]) -> Option<Column> {
        aliases.iter().find_map(|alias| {
            let index = self.columns.iter().position(|(_, key)| key == alias)?;
            Some(self.column(index))
        })
    }

    fn require(&self, dataset: DuoDataset, aliases: &[&str]) -> Result<Column, DuoError> {
        self.find(aliases).ok_or_else(|| DuoError::MissingColumn {
            dataset,
            column: aliases.join(" or "),
        })
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

/// `LEERJAAR n MAN` / `LEERJAAR n VROUW`.
fn leerjaar_gender(words: &[&str]) -> Option<(u8, &'static str)> {
    match words {
        ["LEERJAAR", n, "MAN"] => Some((n.parse().ok()?, "man")),
        ["LEERJAAR", n, "VROUW"] => Some((n.parse().ok()?, "vrouw")),
        _ => None,
    }
}

/// `LEEFTIJD n` / `LEEFTIJD n JAAR`.
fn age(words: &[&str]) -> Option<u8> {
    match words {
        ["LEEFTIJD", n] | ["LEEFTIJD", n, "JAAR"] => n.parse().ok(),
        _ => None,
    }
}

/// The columns identifying a school, common to all three datasets.
struct SchoolColumns {
    brin: Column,
    vestiging: Column,
    name: Column,
    municipality: Column,
}

impl SchoolColumns {
    fn new(header: &Header, dataset: DuoDataset) -> Result<Self, DuoError> {
        let name: &[&str] = match dataset {
            DuoDataset::Schools => &["VESTIGINGSNAAM", "INSTELLINGSNAAM VESTIGING"],
            DuoDataset::VoPupils | DuoDataset::PoPupils => &["INSTELLINGSNAAM VESTIGING"],
        };
        Ok(Self {
            brin: header.require(dataset, &["BRIN NUMMER", "INSTELLINGSCODE"])?,
            vestiging: header.require(dataset, &["VESTIGINGSNUMMER", "VESTIGINGSCODE"])?,
            name: header.require(dataset, name)?,
            municipality: header.require(dataset, &["GEMEENTENAAM"])?,
        })
    }
}

/// A school as read from one line.
struct School {
    brin6: String,
    name: String,
    municipality: String,
}

/// The dataset's own columns, and the rows read so far.
enum Layout {
    Vo {
        onderwijstype: Column,
        opleidingsnaam: Column,
        counts: Vec<(Column, (u8, &'static str))>,
        rows: Vec<VoPupilRow>,
    },
    Po {
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
}

impl Parser {
    /// Recognises the dataset and finds its columns.
    fn new(header: &Header) -> Result<Self, DuoError> {
        let vo = header.matching(leerjaar_gender);
        let po = header.matching(age);
        let (dataset, layout) = if !vo.is_empty() {
            let dataset = DuoDataset::VoPupils;
            let layout = Layout::Vo {
                onderwijstype: header.require(dataset, &["ONDERWIJSTYPE VO"])?,
                opleidingsnaam: header.require(dataset, &["OPLEIDINGSNAAM"])?,
                counts: vo,
                rows: Vec::new(),
            };
            (dataset, layout)
        } else if !po.is_empty() {
            let layout = Layout::Po {
                counts: po,
                rows: Vec::new(),
            };
            (DuoDataset::PoPupils, layout)
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
            return Err(DuoError::UnknownDataset);
        };
        Ok(Self {
            school: SchoolColumns::new(header, dataset)?,
            layout,
        })
    }

    fn push(&mut self, line: &Line<'_>) -> Result<(), DuoError> {
        let school = line.school(&self.school)?;
        match &mut self.layout {
            Layout::Vo {
                onderwijstype,
                opleidingsnaam,
                counts,
                rows,
            } => {
                // `VMBO BB` becomes the schema's `vmbo-bb`.
                let onderwijstype = rejoin_words(line.text(onderwijstype), "-").to_lowercase();
                let opleidingsnaam = line.text(opleidingsnaam);
                let profile = profile_of(&onderwijstype, opleidingsnaam);
                for (column, (leerjaar, gender)) in counts {
                    rows.push(VoPupilRow {
                        brin6: school.brin6.clone(),
                        school_name: school.name.clone(),
                        municipality: school.municipality.clone(),
                        onderwijstype: onderwijstype.clone(),
                        opleidingsnaam: opleidingsnaam.to_owned(),
                        profile_code: profile.map(|p| p.code.clone()),
                        technical: profile.is_some_and(|p| p.technical),
                        leerjaar: *leerjaar,
                        gender: (*gender).to_owned(),
                        pupils: line.count(column)?,
                    });
                }
            }
            Layout::Po { counts, rows } => {
                for (column, age) in counts {
                    rows.push(PoPupilRow {
                        brin6: school.brin6.clone(),
                        school_name: school.name.clone(),
                        municipality: school.municipality.clone(),
                        age: *age,
                        groep_band: groep_band(*age),
                        pupils: line.count(column)?,
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
                kind: kind
                    .as_ref()
                    .map(|k| line.text(k))
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned),
                brin6: school.brin6,
                name: school.name,
                municipality: school.municipality,
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

/// Profile names in lower case, for matching inside opleidingsnamen.
static PROFILE_NAMES: LazyLock<Vec<(String, &'static Profile)>> = LazyLock::new(|| {
    codes::profiles()
        .iter()
        .map(|p| (p.name.to_lowercase(), p))
        .collect()
});

/// The profile an opleidingsnaam names, among those offered in the onderwijstype.
/// DUO spells a combined profile as its parts (`NATUUR EN TECHNIEK/NATUUR EN
/// GEZONDHEID`), so when several names occur we take the shortest profile whose
/// name contains them all (`N&T+N&G`); none such means no profile.
fn profile_of(onderwijstype: &str, opleidingsnaam: &str) -> Option<&'static Profile> {
    let onderwijstype: VoOnderwijstype = onderwijstype.parse().ok()?;
    let opleidingsnaam = opleidingsnaam.to_lowercase();
    let offered = || {
        PROFILE_NAMES
            .iter()
            .filter(move |(_, p)| p.offered_in(onderwijstype))
    };
    let named: Vec<&str> = offered()
        .filter(|(name, _)| opleidingsnaam.contains(name.as_str()))
        .map(|(name, _)| name.as_str())
        .collect();
    if named.is_empty() {
        return None;
    }
    offered()
        .filter(|(name, _)| named.iter().all(|n| name.contains(n)))
        .min_by_key(|(name, _)| name.len())
        .map(|(_, p)| *p)
}

/// One data line, for reading cells and reporting errors at it.
struct Line<'a> {
    number: u64,
    record: &'a csv::StringRecord,
}

impl Line<'_> {
    fn text(&self, column: &Column) -> &str {
        self.record.get(column.index).unwrap_or("")
    }

    fn invalid(&self, column: &Column, reason: impl Into<String>) -> DuoError {
        DuoError::InvalidCell {
            line: self.number,
            column: column.name.clone(),
            reason: reason.into(),
        }
    }

    fn school(&self, columns: &SchoolColumns) -> Result<School, DuoError> {
        Ok(School {
            brin6: self.brin6(columns)?,
            name: self.text(&columns.name).to_owned(),
            municipality: self.text(&columns.municipality).to_owned(),
        })
    }

    /// BRIN number and vestigingsnummer joined: `12AB` + `1` is `12AB01`. Newer files
    /// give the whole BRIN6 as vestigingscode.
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

    /// An exact count, `<5` / `-1` for a suppressed one, or empty for none.
    fn count(&self, column: &Column) -> Result<PupilCount, DuoError> {
        let text = self.text(column);
        match text {
            "" => Ok(PupilCount::exact(0)),
            "-1" => Ok(PupilCount::SUPPRESSED),
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
            )
            .expect($name)
        };
    }

    /// brin6 → (name, municipality) of the VO fixture schools.
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

    fn in_region(municipality: &str) -> bool {
        codes::hubs().iter().any(|h| h.municipality == municipality)
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
                .filter(|r| (!region || in_region(&r.municipality)) && (!technical || r.technical))
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
        let schools: BTreeMap<&str, (&str, &str)> = rows
            .iter()
            .map(|r| {
                (
                    r.brin6.as_str(),
                    (r.school_name.as_str(), r.municipality.as_str()),
                )
            })
            .collect();
        assert_eq!(schools, BTreeMap::from(VO_SCHOOLS));
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
        assert_eq!(file.separator, ';');
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
        // The last data line: `…;VWO CULTUUR EN MAATSCHAPPIJ;;;;;;;-1;10;5;<5;-1;9`.
        let cell = |leerjaar, gender: &str| {
            vo_rows(&file)
                .iter()
                .find(|r| {
                    r.brin6 == "56JK01"
                        && r.opleidingsnaam == "VWO CULTUUR EN MAATSCHAPPIJ"
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

    #[test]
    fn vo_2022_profiles_and_onderwijstypes() {
        let file = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2022.csv");
        let profiles: BTreeMap<&str, (&str, Option<&str>, bool)> = vo_rows(&file)
            .iter()
            .map(|r| {
                let profile = (
                    r.onderwijstype.as_str(),
                    r.profile_code.as_deref(),
                    r.technical,
                );
                (r.opleidingsnaam.as_str(), profile)
            })
            .collect();
        let expected = [
            (
                "VMBO BB BOUWEN, WONEN EN INTERIEUR",
                ("vmbo-bb", Some("BWI"), true),
            ),
            (
                "VMBO KB BOUWEN, WONEN EN INTERIEUR",
                ("vmbo-kb", Some("BWI"), true),
            ),
            (
                "VMBO KB PRODUCEREN, INSTALLEREN EN ENERGIE",
                ("vmbo-kb", Some("PIE"), true),
            ),
            (
                "VMBO GL MEDIA, VORMGEVING EN ICT",
                ("vmbo-gl", Some("MVI"), true),
            ),
            ("VMBO BB ZORG EN WELZIJN", ("vmbo-bb", Some("Z&W"), false)),
            ("VMBO KB ZORG EN WELZIJN", ("vmbo-kb", Some("Z&W"), false)),
            (
                "VMBO KB ECONOMIE EN ONDERNEMEN",
                ("vmbo-kb", Some("E&O"), false),
            ),
            (
                "VMBO GL ECONOMIE EN ONDERNEMEN",
                ("vmbo-gl", Some("E&O"), false),
            ),
            ("VMBO TL ALGEMEEN", ("vmbo-tl", None, false)),
            ("VMBO KB LEERJAAR 1 EN 2", ("vmbo-kb", None, false)),
            ("HAVO ONDERBOUW", ("havo", None, false)),
            ("HAVO NATUUR EN TECHNIEK", ("havo", Some("N&T"), true)),
            ("HAVO NATUUR EN GEZONDHEID", ("havo", Some("N&G"), true)),
            (
                "HAVO NATUUR EN TECHNIEK/NATUUR EN GEZONDHEID",
                ("havo", Some("N&T+N&G"), true),
            ),
            (
                "HAVO ECONOMIE EN MAATSCHAPPIJ",
                ("havo", Some("E&M"), false),
            ),
            ("HAVO CULTUUR EN MAATSCHAPPIJ", ("havo", Some("C&M"), false)),
            ("VWO ONDERBOUW", ("vwo", None, false)),
            ("VWO NATUUR EN TECHNIEK", ("vwo", Some("N&T"), true)),
            ("VWO NATUUR EN GEZONDHEID", ("vwo", Some("N&G"), true)),
            (
                "VWO NATUUR EN TECHNIEK/NATUUR EN GEZONDHEID",
                ("vwo", Some("N&T+N&G"), true),
            ),
            ("VWO ECONOMIE EN MAATSCHAPPIJ", ("vwo", Some("E&M"), false)),
            ("VWO CULTUUR EN MAATSCHAPPIJ", ("vwo", Some("C&M"), false)),
            ("PRAKTIJKONDERWIJS", ("pro", None, false)),
        ];
        assert_eq!(profiles, BTreeMap::from(expected));
    }

    #[test]
    fn vo_2023_latin_1() {
        let file = fixture!("01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2023.csv");
        assert_eq!(file.encoding, "windows-1252");
        assert_eq!(file.separator, ';');
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
        assert_eq!(file.separator, ',');
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
        let file = fixture!("01.-leerlingen-po-per-onderwijssoort-en-leeftijd-2024.csv");
        assert_eq!((file.encoding, file.separator), ("utf-8", ','));
        assert_eq!(file.school_year, SchoolYear::new(2024));
        let DuoRows::PoPupils(rows) = &file.rows else {
            panic!("expected PO pupils, got {}", file.rows.dataset());
        };
        assert_eq!(rows.len(), 4 * 10);
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
        assert_eq!(suppressed.municipality, "Epe");
        let empty = row("08XZ01", 3).expect("08XZ01 age 3");
        assert_eq!(
            (empty.pupils, empty.groep_band),
            (PupilCount::exact(0), None)
        );
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
        let vo = fixture!("adressen-alle-vestigingen-vo-2024.csv");
        assert_eq!((vo.encoding, vo.separator), ("utf-8", ';'));
        let DuoRows::Schools(rows) = &vo.rows else {
            panic!("expected schools, got {}", vo.rows.dataset());
        };
        assert_eq!(rows.len(), 5);
        let zutphen = school(
            "12AB01",
            "Sint-Ludgercollège",
            "7201",
            "Zutphen",
            "Zutphen",
            Some("VMBO/HAVO/VWO"),
        );
        assert_eq!(rows[0], zutphen);
        let utrecht = school(
            "45GH00",
            "Stedelijk College Utrecht",
            "3511",
            "Utrecht",
            "Utrecht",
            None,
        );
        assert_eq!(rows[3], utrecht);
        let po = fixture!("adressen-alle-vestigingen-po-2024.csv");
        assert_eq!(po.school_year, SchoolYear::new(2024));
        let DuoRows::Schools(rows) = &po.rows else {
            panic!("expected schools, got {}", po.rows.dataset());
        };
        assert_eq!(
            rows[0],
            school(
                "07XY00",
                "OBS De Regenboog",
                "7321",
                "Apeldoorn",
                "Apeldoorn",
                Some("Bo")
            )
        );
        assert_eq!(
            rows[3],
            school(
                "10YB02",
                "Basisschool De Vlinderboom",
                "8171",
                "Vaassen",
                "Epe",
                Some("Sbo")
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
        let file = parse("po-2024.csv", &po_file(&columns, cells), None)?;
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
            let err = parse("po-2024.csv", text.as_bytes(), None).expect_err("bad count");
            assert_eq!(
                err,
                DuoError::InvalidCell {
                    line: 5,
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
            match parse("adressen-2024.csv", bytes.as_bytes(), None)?.rows {
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
            match parse("adressen-2024.csv", bytes.as_bytes(), None)?.rows {
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
    fn missing_column_and_unknown_dataset() {
        let vo = b"BRIN NUMMER;VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;GEMEENTENAAM;ONDERWIJSTYPE VO;LEERJAAR 1 MAN\n";
        let err = parse("vo-2024.csv", vo, None).expect_err("no OPLEIDINGSNAAM");
        assert_eq!(
            err,
            DuoError::MissingColumn {
                dataset: DuoDataset::VoPupils,
                column: "OPLEIDINGSNAAM".into()
            }
        );
        assert_eq!(
            err.to_string(),
            "line 1: vo_pupils file lacks column OPLEIDINGSNAAM"
        );
        let po = b"VESTIGINGSNUMMER;INSTELLINGSNAAM VESTIGING;GEMEENTENAAM;LEEFTIJD 4\n";
        let err = parse("po-2024.csv", po, None).expect_err("no BRIN");
        assert_eq!(
            err.to_string(),
            "line 1: po_pupils file lacks column BRIN NUMMER or INSTELLINGSCODE"
        );
        for unknown in [
            &b"NAAM;ADRES;AANTAL\nGeheim;Geheimstraat;3\n"[..],
            b"",
            b"\n\n",
        ] {
            let err = parse("duo-2024.csv", unknown, None).expect_err("unknown");
            assert_eq!(err, DuoError::UnknownDataset);
            let message = err.to_string();
            assert!(
                message.starts_with("line 1: not a known DUO file"),
                "{message}"
            );
            assert!(message.contains("LEERJAAR n MAN/VROUW") && message.contains("POSTCODE"));
        }
    }

    #[test]
    fn malformed_lines_and_encoding() {
        let mut bytes = b"\r\n".to_vec();
        bytes.extend(po_file("LEEFTIJD 4", "7;8"));
        let err = parse("po-2024.csv", &bytes, None).expect_err("extra field");
        assert_eq!(
            err,
            DuoError::MalformedCsv {
                line: 3,
                reason: "6 fields where the header has 5".into()
            }
        );
        let err = parse("po-2024.csv", b"\xEF\xBB\xBFBRIN NUMMER;\xFF\n", None).expect_err("bad");
        assert_eq!(err, DuoError::InvalidUtf8);
    }

    #[test]
    fn header_names_onderwijstypes_and_quotes() {
        let bytes = "brin nummer , Vestigingsnummer,Instellingsnaam  Vestiging,gemeentenaam,\
                     onderwijstype vo,opleidingsnaam,Leerjaar 3 Man,LEERJAAR 3 VROUW,EXTRA\n\
                     12AB,1,\"School; of \"\"Zo\"\", Zutphen\",Zutphen, Vmbo  KB ,\
                     \"VMBO KB PRODUCEREN, INSTALLEREN EN ENERGIE\",5,6,x\n\
                     12AB,1,School,Zutphen,VMBO GL/TL,VMBO GL/TL ALGEMEEN,7,8,y\n";
        let file = parse("vo.csv", bytes.as_bytes(), Some(SchoolYear::new(2030))).expect("parses");
        assert_eq!((file.encoding, file.separator), ("utf-8", ','));
        assert_eq!(file.school_year, SchoolYear::new(2030));
        let rows = vo_rows(&file);
        assert_eq!(rows.len(), 4);
        assert_eq!(rows[0].school_name, "School; of \"Zo\", Zutphen");
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
            ("vmbo-gl/tl", None)
        );
    }

    #[test]
    fn profile_matching() {
        let code = |onderwijstype, opleidingsnaam| {
            profile_of(onderwijstype, opleidingsnaam).map(|p| p.code.as_str())
        };
        assert_eq!(
            code("vmbo-bb", "VMBO BB BOUWEN, WONEN EN INTERIEUR"),
            Some("BWI")
        );
        assert_eq!(
            code("vmbo-gl", "vmbo gl mobiliteit en transport"),
            Some("M&T")
        );
        assert_eq!(code("vwo", "VWO NATUUR EN TECHNIEK"), Some("N&T"));
        assert_eq!(
            code("havo", "HAVO NATUUR EN TECHNIEK/NATUUR EN GEZONDHEID"),
            Some("N&T+N&G")
        );
        // Offered only in some onderwijstypes.
        assert_eq!(code("vwo", "VWO BOUWEN, WONEN EN INTERIEUR"), None);
        assert_eq!(code("vmbo-kb", "VMBO KB NATUUR EN TECHNIEK"), None);
        assert_eq!(code("vmbo-tl", "VMBO TL ALGEMEEN"), None);
        assert_eq!(code("pro", "PRAKTIJKONDERWIJS"), None);
        // Two profiles with no combined one: ambiguous.
        assert_eq!(
            code(
                "havo",
                "HAVO ECONOMIE EN MAATSCHAPPIJ/CULTUUR EN MAATSCHAPPIJ"
            ),
            None
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
            parse("leerlingen-po.csv", &bytes, None).map(|f| f.school_year)
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
            parse("leerlingen-po.csv", &po_file("LEEFTIJD 4", "7"), None).expect_err("no year");
        assert_eq!(err, DuoError::NoSchoolYear);
    }
}
