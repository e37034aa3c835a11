//! The effect estimator on a panel file, for its benchmark against Python's csdid
//! (`bench/effect_panel.py`, `bench/csdid_effect.py`; README, "Benchmarks"): reads a
//! CSV with the columns of `effect_panel` (brin6, school_year, track, reached_by,
//! treated_from, pupils, share_pct), estimates every school at once (the `region`
//! scope) with the bootstrap of the query service, and prints the overall effect.
//!
//!     cargo run --release -p techmon-effect --example estimate_panel -- panel.csv

use techmon_effect::{Bootstrap, Observation, Panel, estimate};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let path = std::env::args().nth(1).ok_or("give the panel's CSV file")?;
    let text = std::fs::read_to_string(&path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().ok_or("an empty file")?.split(',').collect();
    let column = |name: &str| {
        header
            .iter()
            .position(|h| *h == name)
            .ok_or(format!("no column {name}"))
    };
    let (brin6, school_year, treated_from, pupils, share) = (
        column("brin6")?,
        column("school_year")?,
        column("treated_from")?,
        column("pupils")?,
        column("share_pct")?,
    );
    let start = |year: &str| year.get(..4).and_then(|y| y.parse::<i32>().ok());
    let mut observations = Vec::new();
    for line in lines {
        let fields: Vec<&str> = line.split(',').collect();
        observations.push(Observation {
            unit: fields[brin6].to_string(),
            period: start(fields[school_year]).ok_or("a school year")?,
            outcome: fields[share].parse()?,
            size: fields[pupils].parse()?,
            first_treated: start(fields[treated_from]),
        });
    }
    let panel = Panel::balanced(observations);
    let effects = estimate(
        &panel,
        &Bootstrap {
            draws: 999,
            seed: 2022,
        },
    )?;
    println!(
        "overall {:.4} (se {:.4}); {} schools, {} event times",
        effects.overall.att,
        effects.overall.se,
        panel.units.len(),
        effects.event_study.len()
    );
    Ok(())
}
