//! The generated region: deterministic, valid where meant to be, broken where
//! meant to be, with personal data to pseudonymise and a built-in effect.

#![allow(clippy::unwrap_used)]

use std::path::Path;

use techmon_generate::{Generated, Spec, generate};

fn small(dir: &Path, seed: u64) -> Generated {
    let spec = Spec {
        seed,
        events: 0,
        until: Spec::default_until(),
    };
    generate(&spec, dir).expect("generate")
}

fn all_files(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut files = Vec::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).expect("read dir") {
            let path = entry.expect("entry").path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.push(path.strip_prefix(dir).expect("inside").to_path_buf());
            }
        }
    }
    files.sort();
    files
}

#[test]
fn the_same_seed_gives_the_same_files_and_another_seed_other_ones() {
    let (a, b, c) = (
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
        tempfile::tempdir().unwrap(),
    );
    small(a.path(), 7);
    small(b.path(), 7);
    small(c.path(), 8);
    let files = all_files(a.path());
    assert_eq!(files, all_files(b.path()));
    assert!(files.len() > 20, "{files:?}");
    for file in &files {
        let (x, y) = (
            std::fs::read(a.path().join(file)).unwrap(),
            std::fs::read(b.path().join(file)).unwrap(),
        );
        assert!(x == y, "{} differs between two runs", file.display());
    }
    let first = files
        .iter()
        .find(|f| f.extension().is_some_and(|e| e == "ndjson"))
        .unwrap();
    assert_ne!(
        std::fs::read(a.path().join(first)).unwrap(),
        std::fs::read(c.path().join(first)).unwrap_or_default()
    );
}

#[test]
fn records_are_valid_except_the_broken_ones_and_carry_personal_data() {
    let dir = tempfile::tempdir().unwrap();
    let generated = small(dir.path(), 2022);
    let (mut valid, mut invalid, mut with_email, mut csv_rows) = (0, 0, 0, 0);
    let mut ids = std::collections::HashSet::new();
    let mut repeated = 0;
    for hub in &generated.hubs {
        for file in &hub.files {
            let text = std::fs::read_to_string(file).unwrap();
            if file.extension().is_some_and(|e| e == "csv") {
                let mut lines = text.lines();
                let header: Vec<&str> = lines.next().unwrap().split(';').collect();
                for line in lines {
                    let row: Vec<&str> = line.split(';').collect();
                    let record =
                        techmon_schemas::record_from_csv("group_participated", 1, &header, &row)
                            .unwrap_or_else(|e| panic!("{}: {line}: {e:?}", file.display()));
                    let event = techmon_schemas::validate_event(&record)
                        .unwrap_or_else(|e| panic!("{}: {line}: {e:?}", file.display()));
                    assert_eq!(event.hub_id, hub.hub_id);
                    csv_rows += 1;
                }
                continue;
            }
            for line in text.lines() {
                let value: serde_json::Value = serde_json::from_str(line).unwrap();
                match techmon_schemas::validate_event(&value) {
                    Ok(event) => {
                        assert_eq!(event.hub_id, hub.hub_id);
                        if !ids.insert(event.event_id) {
                            repeated += 1;
                        }
                        valid += 1;
                        with_email += usize::from(value["payload"]["email"].is_string());
                    }
                    Err(errors) => {
                        assert_eq!(errors.len(), 1, "one mistake per broken record: {errors:?}");
                        invalid += 1;
                    }
                }
            }
        }
    }
    let truth = &generated.truth;
    assert_eq!(invalid, truth.broken_events);
    assert_eq!(repeated, truth.resent_events);
    assert_eq!(valid + csv_rows, truth.valid_events + truth.resent_events);
    assert!(
        invalid > 0 && with_email > 100 && csv_rows > 500,
        "{invalid} {with_email} {csv_rows}"
    );
    assert_eq!(generated.records(), valid + invalid + csv_rows);
}

#[test]
fn every_hub_reports_and_the_fifth_joins_in_2025() {
    let dir = tempfile::tempdir().unwrap();
    let generated = small(dir.path(), 1);
    let hubs: Vec<&str> = generated.hubs.iter().map(|h| h.hub_id).collect();
    // The code list's hubs, then the joining region's.
    let code_list: Vec<&str> = techmon_schemas::codes::hubs()
        .iter()
        .map(|h| h.id.as_str())
        .chain(["techlab-harderwijk", "techlab-elburg"])
        .collect();
    assert_eq!(hubs, code_list);
    let lochem = generated
        .hubs
        .iter()
        .find(|h| h.hub_id == "techniekhuis-lochem")
        .unwrap();
    let first = lochem.files[0]
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert_eq!(first, "2025-26.ndjson");
    let truth = &generated.truth;
    let vo = |year| {
        truth
            .kpi(
                ("vo_pupils", None),
                ("techniekhuis-lochem", Some("cleantech-regio")),
                year,
            )
            .unwrap()
            .actual
    };
    assert_eq!(vo(2024), Some(0.0));
    assert!(vo(2025).unwrap() > 0.0);
}

#[test]
fn reached_schools_choose_technical_profiles_more_than_the_nation() {
    let dir = tempfile::tempdir().unwrap();
    let truth = small(dir.path(), 2022).truth;
    let change = |scope: (&str, Option<&str>)| {
        truth.share(scope, "2026/27", "all").unwrap().share_pct
            - truth.share(scope, "2022/23", "all").unwrap().share_pct
    };
    let (national, cleantech) = (("national", None), ("region", Some("cleantech-regio")));
    assert!(
        change(cleantech) > change(national) + 1.0,
        "{} vs {}",
        change(cleantech),
        change(national)
    );
    let region = truth
        .kpi(("technical_profile_change_vs_2022", None), cleantech, 2026)
        .unwrap();
    assert!((region.actual.unwrap() - change(cleantech)).abs() < 1e-9);
}

#[test]
fn the_size_is_met_by_club_attendance() {
    let dir = tempfile::tempdir().unwrap();
    let base = small(dir.path(), 3).records();
    let spec = Spec {
        seed: 3,
        events: base + 40_000,
        until: Spec::default_until(),
    };
    let bigger = generate(&spec, tempfile::tempdir().unwrap().path()).unwrap();
    let made = bigger.truth.valid_events;
    assert!(
        made >= spec.events - 1_000 && made < spec.events + 1_000,
        "{made} for {}",
        spec.events
    );
}
