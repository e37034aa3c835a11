//! `techmon generate`: a deterministic synthetic world of two regions to run the
//! whole pipeline on.
//!
//! The world ([`world`]) has the Cleantech Regio with the five hubs of the code list
//! (Lochem joins in 2025/26) and about 60 PO and 12 VO schools, Noord-Veluwe, a
//! region that joins while techmon runs, with two hubs and about 25 PO and 5 VO
//! schools, and VO schools elsewhere for the national totals, school years 2021/22
//! to 2026/27. From it come:
//! - per hub and school year, the events the hub pushes (NDJSON) and its class
//!   participations as the CSV feed hubs export (`season`);
//! - DUO files for the same schools in the layouts DUO publishes, older and newer
//!   (`duo_files`);
//! - the ground truth of every KPI, computed from the world itself (`truth`);
//! - what an administrator registers for the joining region (`registry/`: the region
//!   with its hubs as JSON, its KPI set and targets as the CSV `techmon targets
//!   import` reads).
//!
//! The built-in effect: VO schools whose pupils the hubs reach choose technical
//! profiles more often each year after (each hub its own effect a year, one hub
//! none) on top of the national trend, and the reached schools were keener on
//! technology to begin with (selection), so the headline answer is not trivial and
//! the effect estimates can be checked against a known truth.
//!
//! The same seed and size give the same files, byte for byte.

pub mod duo_files;
mod season;
pub mod truth;
pub mod world;

use std::io::Write;
use std::path::{Path, PathBuf};

use chrono::{NaiveDate, NaiveDateTime};
use rand::SeedableRng;
use rand::rngs::StdRng;

pub use season::GROUP_CSV_HEADER;
pub use truth::{HubEffect, KpiTruth, ShareTruth, Truth};

#[derive(Debug, thiserror::Error)]
pub enum GenerateError {
    #[error("cannot write {path}: {source}")]
    Write {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// What to generate.
#[derive(Debug, Clone)]
pub struct Spec {
    pub seed: u64,
    /// About how many records to write (the weekly clubs' attendance grows to
    /// fill it; the rest of the region is the same at any size).
    pub events: usize,
    /// The moment of generation: nothing happens after it.
    pub until: NaiveDateTime,
}

impl Spec {
    /// The generation moment of the default region: 20 November 2026.
    pub fn default_until() -> NaiveDateTime {
        NaiveDate::from_ymd_opt(2026, 11, 20)
            .and_then(|d| d.and_hms_opt(23, 59, 59))
            .unwrap_or_default()
    }
}

/// One hub's files, in the order to push them.
#[derive(Debug, Clone)]
pub struct HubFiles {
    pub hub_id: &'static str,
    pub files: Vec<PathBuf>,
}

#[derive(Debug)]
pub struct Generated {
    pub hubs: Vec<HubFiles>,
    pub duo_files: Vec<PathBuf>,
    pub truth: Truth,
}

impl Generated {
    /// Records written, resent copies and broken ones included.
    pub fn records(&self) -> usize {
        self.truth.valid_events + self.truth.resent_events + self.truth.broken_events
    }
}

/// Generates the world into `dir` (`events/<hub>/`, `duo/`, `registry/`,
/// `truth.json`).
pub fn generate(spec: &Spec, dir: &Path) -> Result<Generated, GenerateError> {
    let mut rng = StdRng::seed_from_u64(spec.seed);
    let world = world::World::build(&mut rng);
    let mut region = season::Region::new();
    let mut tally = truth::Tally::default();
    let seasons: Vec<(usize, i32)> = world::HUBS
        .iter()
        .enumerate()
        .flat_map(|(h, hub)| (hub.first_year..=world::LAST_YEAR).map(move |y| (h, y)))
        .collect();
    // Everything but the clubs beyond each season's first, first: the clubs then
    // fill what is left of the size, in proportion to the club weeks each season has.
    let mut bases = Vec::with_capacity(seasons.len());
    for &(hub, year) in &seasons {
        let season = season::Season::new(
            &mut rng,
            &mut region,
            &mut tally,
            &world,
            hub,
            (year, spec.until),
            season::SeasonOutput::default(),
        );
        bases.push(season.base());
    }
    // A season's share: its club days before the generation moment, times the
    // hub's PO schools (bigger hubs run more clubs).
    let shares: Vec<usize> = seasons
        .iter()
        .map(|&(hub, year)| {
            let days = season::club_days(year, 0)
                .filter(|d| d.and_hms_opt(0, 0, 0).is_some_and(|t| t <= spec.until))
                .count();
            days * world.po_schools_in(world::HUBS[hub].municipality)
        })
        .collect();
    let mut shares_left: usize = shares.iter().sum();
    let mut hubs: Vec<HubFiles> = Vec::new();
    for ((&(hub, year), base), share) in seasons.iter().zip(bases).zip(shares) {
        // What earlier seasons' clubs made more or less than their share moves on.
        let budget = spec.events.saturating_sub(tally.valid_events) * share / shares_left.max(1);
        shares_left -= share;
        let season = season::Season::new(
            &mut rng,
            &mut region,
            &mut tally,
            &world,
            hub,
            (year, spec.until),
            base,
        );
        let out = season.clubs(budget);
        let hub_id = world::HUBS[hub].id;
        let folder = dir.join("events").join(hub_id);
        let name = format!("{year}-{:02}", (year + 1) % 100);
        let mut files = Vec::new();
        files.push(write_lines(
            &folder.join(format!("{name}.ndjson")),
            None,
            out.events.iter().map(|r| r.line.as_str()),
        )?);
        if !out.group_rows.is_empty() {
            files.push(write_lines(
                &folder.join(format!("group_participated-{name}.csv")),
                Some(GROUP_CSV_HEADER),
                out.group_rows.iter().map(|r| r.line.as_str()),
            )?);
        }
        match hubs.iter_mut().find(|h| h.hub_id == hub_id) {
            Some(h) => h.files.extend(files),
            None => hubs.push(HubFiles { hub_id, files }),
        }
    }
    let duo_files = duo_files::write(&world, &dir.join("duo"))?;
    write_registry(&dir.join("registry"))?;
    let truth = tally.truth(&world);
    let truth_path = dir.join("truth.json");
    let text = serde_json::to_string_pretty(&truth).unwrap_or_default();
    std::fs::write(&truth_path, text).map_err(|source| GenerateError::Write {
        path: truth_path,
        source,
    })?;
    Ok(Generated {
        hubs,
        duo_files,
        truth,
    })
}

/// The joining regions as an administrator registers them: `<region>.json` (the
/// region and its hubs, as `POST /v1/reference/regions` and `…/hubs` take them) and
/// `<region>-targets.csv`.
fn write_registry(dir: &Path) -> Result<(), GenerateError> {
    for region in world::REGIONS {
        let Some(joining) = &region.joins else {
            continue;
        };
        let hubs: Vec<serde_json::Value> = world::HUBS
            .iter()
            .filter(|h| h.region == region.id)
            .map(|h| {
                serde_json::json!({
                    "hub_id": h.id, "name": h.name, "municipality": h.municipality,
                    "region_id": region.id,
                    "first_school_year": techmon_schemas::codes::SchoolYear::new(h.first_year).to_string(),
                })
            })
            .collect();
        let described = serde_json::json!({
            "region": {"region_id": region.id, "name": joining.name, "municipalities": joining.municipalities},
            "hubs": hubs,
        });
        let text = serde_json::to_string_pretty(&described).unwrap_or_default();
        write_lines(
            &dir.join(format!("{}.json", region.id)),
            None,
            [text.as_str()].into_iter(),
        )?;
        let targets = joining.targets_csv(region.id);
        write_lines(
            &dir.join(format!("{}-targets.csv", region.id)),
            None,
            targets.lines(),
        )?;
    }
    Ok(())
}

fn write_lines<'l>(
    path: &Path,
    header: Option<&str>,
    lines: impl Iterator<Item = &'l str>,
) -> Result<PathBuf, GenerateError> {
    let failed = |source| GenerateError::Write {
        path: path.to_path_buf(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(failed)?;
    }
    let mut file = std::io::BufWriter::new(std::fs::File::create(path).map_err(failed)?);
    if let Some(header) = header {
        writeln!(file, "{header}").map_err(failed)?;
    }
    for line in lines {
        writeln!(file, "{line}").map_err(failed)?;
    }
    file.flush().map_err(failed)?;
    Ok(path.to_path_buf())
}
