//! End to end: `techmon demo` at a small size. The pipeline's answers (pushed over
//! HTTP, transformed, queried through the KPI views) must equal the ground truth the
//! generator computed from its own world before pseudonymisation; then a headless
//! browser checks the dashboard shows them.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::{Value, json};
use techmon::demo::{Demo, DemoOptions, ask_as};

/// The ground truth is compared with row-level answers (an analyst's); what a
/// researcher is shown of them is checked apart.
const ANALYST_TOKEN: &str = "dev-token-analyst";

async fn ask(
    client: &reqwest::Client,
    url: &str,
    sql: &str,
) -> anyhow::Result<Vec<serde_json::Value>> {
    ask_as(client, url, ANALYST_TOKEN, sql).await
}
use techmon_generate::Truth;

/// Starts the demo; returns what it did and the trigger that stops it.
async fn start_demo(
    dir: &Path,
) -> (
    Demo,
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<()>,
) {
    let options = DemoOptions {
        dir: dir.to_path_buf(),
        // The smallest region: one club per hub and school year.
        events: 0,
        seed: 7,
        reset: false,
        listen: "127.0.0.1:0".parse().expect("address"),
        exit: false,
    };
    let config = techmon::config::load(None).expect("default configuration");
    let (answered, answers) = tokio::sync::oneshot::channel();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let demo = tokio::spawn(async move {
        techmon::demo::run(config, &options, answered, async {
            let _ = stopped.await;
        })
        .await
        .expect("the demo runs");
    });
    let answered = tokio::time::timeout(Duration::from_secs(600), answers)
        .await
        .expect("answers within 10 minutes")
        .expect("the demo answered");
    (answered, stop, demo)
}

fn close(a: Option<f64>, b: Option<f64>) -> bool {
    match (a, b) {
        (None, None) => true,
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * a.abs().max(1.0),
        _ => false,
    }
}

/// The report row of a KPI, band, scope (of a region) and year.
fn report_row<'a>(rows: &'a [Value], expected: &techmon_generate::KpiTruth) -> &'a Value {
    rows.iter()
        .find(|r| {
            r["kpi"] == expected.kpi
                && r["band"].as_str() == expected.band
                && r["hub_id"] == expected.scope.as_str()
                && r["region_id"].as_str() == expected.region_id
                && r["year"] == expected.year
        })
        .unwrap_or_else(|| panic!("no report row for {expected:?}"))
}

async fn check_kpis(client: &reqwest::Client, url: &str, truth: &Truth) {
    let rows = ask(
        client,
        url,
        "SELECT kpi, band, hub_id, region_id, year, actual FROM kpi_report WHERE year BETWEEN 2021 AND 2026",
    )
    .await
    .expect("kpi_report");
    assert_eq!(
        rows.len(),
        truth.kpis.len(),
        "one report row per KPI, band, scope and year"
    );
    let mut nonzero = 0;
    for expected in &truth.kpis {
        let row = report_row(&rows, expected);
        let actual = row["actual"].as_f64();
        assert!(
            close(actual, expected.actual),
            "{} {:?} {} {:?} {}: the pipeline says {actual:?}, the ground truth {:?}",
            expected.kpi,
            expected.band,
            expected.scope,
            expected.region_id,
            expected.year,
            expected.actual
        );
        nonzero += usize::from(expected.actual.is_some_and(|v| v != 0.0));
    }
    // Most KPIs have something to count (else the comparison above says little).
    assert!(
        nonzero * 10 > truth.kpis.len() * 7,
        "{nonzero} of {}",
        truth.kpis.len()
    );
}

async fn check_technical_shares(client: &reqwest::Client, url: &str, truth: &Truth) {
    let rows = ask(
        client,
        url,
        "SELECT scope, region_id, school_year, track, pupils, technical_pupils, share_pct, share_min_pct, share_max_pct \
         FROM technical_profile_share",
    )
    .await
    .expect("technical_profile_share");
    assert_eq!(rows.len(), truth.technical_share.len());
    for expected in &truth.technical_share {
        let row = rows
            .iter()
            .find(|r| {
                r["scope"] == expected.scope.as_str()
                    && r["region_id"].as_str() == expected.region_id
                    && r["school_year"] == expected.school_year.as_str()
                    && r["track"] == expected.track
            })
            .unwrap_or_else(|| panic!("no share for {expected:?}"));
        let what = format!(
            "{} {:?} {} {}",
            expected.scope, expected.region_id, expected.school_year, expected.track
        );
        assert!(
            close(row["pupils"].as_f64(), Some(expected.pupils)),
            "{what}: pupils {row}"
        );
        assert!(
            close(row["share_pct"].as_f64(), Some(expected.share_pct)),
            "{what}: share {row}"
        );
        // DUO's suppression hides the true share, but never outside the bounds.
        let (low, high) = (
            row["share_min_pct"].as_f64().expect("share_min_pct"),
            row["share_max_pct"].as_f64().expect("share_max_pct"),
        );
        assert!(
            (low..=high).contains(&expected.true_share_pct),
            "{what}: true share {} outside {low}…{high}",
            expected.true_share_pct
        );
    }
}

/// A scope of the effect tables, and its region (none for all regions together).
type Scope<'a> = (&'a str, Option<&'a str>);

/// The scopes of the built-in region, of the hub `tec-deventer` and of all regions.
const CLEANTECH: Scope = ("region", Some("cleantech-regio"));
const TEC_DEVENTER: Scope = ("tec-deventer", Some("cleantech-regio"));
const REGIONS: Scope = ("regions", None);

/// The rows of `rows` of one scope and track.
fn of_scope<'a>(rows: &'a [Value], (scope, region): Scope, track: &str) -> Vec<&'a Value> {
    rows.iter()
        .filter(|r| r["scope"] == scope && r["region_id"].as_str() == region && r["track"] == track)
        .collect()
}

/// Whether techmon's `value` of `column` equals the oracle's.
fn same(row: &Value, column: &str, oracle: &Value) -> bool {
    match (row[column].as_f64(), oracle.as_f64()) {
        (Some(a), Some(b)) => (a - b).abs() <= 1e-9 * b.abs().max(1.0),
        _ => false,
    }
}

/// The effect estimates: the same numbers as Python's csdid (the port of R's `did`)
/// on the same panel, for every scope and track; and near the generator's built-in
/// effects, which techmon never sees.
async fn check_effects(
    client: &reqwest::Client,
    url: &str,
    truth: &Truth,
    work: &Path,
) -> Vec<Value> {
    let panel = ask(
        client,
        url,
        "SELECT brin6, school_year, track, reached_by, treated_from, pupils, share_pct \
         FROM effect_panel ORDER BY brin6, school_year, track",
    )
    .await
    .expect("effect_panel");
    let columns = [
        "brin6",
        "school_year",
        "track",
        "reached_by",
        "treated_from",
        "pupils",
        "share_pct",
    ];
    let mut csv = csv::Writer::from_path(work.join("effect_panel.csv")).expect("panel file");
    csv.write_record(columns).expect("header");
    for row in &panel {
        csv.write_record(columns.map(|c| match &row[c] {
            Value::Null => String::new(),
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }))
        .expect("row");
    }
    csv.flush().expect("panel written");
    let hubs = ask(client, url, "SELECT hub_id, region_id FROM hubs")
        .await
        .expect("hubs");
    let mut csv = csv::Writer::from_path(work.join("hubs.csv")).expect("hubs file");
    csv.write_record(["hub_id", "region_id"]).expect("header");
    for hub in &hubs {
        csv.write_record([&hub["hub_id"], &hub["region_id"]].map(|v| v.as_str().unwrap_or("")))
            .expect("row");
    }
    csv.flush().expect("hubs written");
    let oracle = std::process::Command::new("python3")
        .arg(Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oracles/csdid_effects.py"))
        .arg(work.join("effect_panel.csv"))
        .arg(work.join("hubs.csv"))
        .output()
        .expect("python3 runs (bash .ci/install installs csdid)");
    assert!(
        oracle.status.success(),
        "csdid: {}",
        String::from_utf8_lossy(&oracle.stderr)
    );
    let oracle: Vec<Value> = serde_json::from_slice(&oracle.stdout).expect("csdid's JSON");
    let estimates = ask(client, url, "SELECT * FROM effect_estimates")
        .await
        .expect("effect_estimates");
    let events = ask(client, url, "SELECT * FROM effect_event_study")
        .await
        .expect("effect_event_study");
    let cells = ask(client, url, "SELECT * FROM effect_group_time")
        .await
        .expect("effect_group_time");
    let mut compared = 0;
    for answer in &oracle {
        let (scope, track) = (
            (
                answer["scope"].as_str().expect("scope"),
                answer["region_id"].as_str(),
            ),
            answer["track"].as_str().expect("track"),
        );
        let what = format!("{scope:?} {track}");
        let estimate = of_scope(&estimates, scope, track);
        assert_eq!(estimate.len(), 1, "{what}");
        let expected = &answer["estimates"];
        if expected.is_null() {
            assert!(estimate[0]["att_pp"].is_null(), "{what}: {}", estimate[0]);
            continue;
        }
        let estimate = estimate[0];
        assert_eq!(estimate["schools"], expected["schools"], "{what}");
        assert!(
            same(estimate, "att_pp", &expected["overall"]["att"]),
            "{what}: {estimate} {expected}"
        );
        assert!(
            same(estimate, "analytic_se_pp", &expected["overall"]["se"]),
            "{what}: {estimate} {expected}"
        );
        match expected["pre_trend"].as_object() {
            Some(test) => {
                assert!(
                    same(estimate, "pre_trend_chi2", &test["chi2"]),
                    "{what}: {estimate} {expected}"
                );
                // csdid rounds the p-value to five decimals.
                let p = estimate["pre_trend_p_value"].as_f64().expect("p");
                assert!(
                    (p - test["p_value"].as_f64().expect("p")).abs() <= 5e-6,
                    "{what}"
                );
            }
            None => assert!(estimate["pre_trend_chi2"].is_null(), "{what}"),
        }
        let cells = of_scope(&cells, scope, track);
        let expected_cells = expected["group_time"].as_array().expect("cells");
        assert_eq!(cells.len(), expected_cells.len(), "{what}");
        for cell in expected_cells {
            let year = |start: &Value| {
                let start = start.as_i64().expect("year");
                format!("{start}/{:02}", (start + 1) % 100)
            };
            let row = cells
                .iter()
                .find(|r| {
                    r["treated_from"] == year(&cell["g"]) && r["school_year"] == year(&cell["t"])
                })
                .unwrap_or_else(|| panic!("{what}: no cell {cell}"));
            assert!(
                same(row, "att_pp", &cell["att"]) && same(row, "analytic_se_pp", &cell["se"]),
                "{what}: {row} {cell}"
            );
            compared += 1;
        }
        let events = of_scope(&events, scope, track);
        let expected_events = expected["event_study"].as_array().expect("events");
        assert_eq!(events.len(), expected_events.len(), "{what}");
        for (row, event) in events.iter().zip(expected_events) {
            assert_eq!(row["years_since"], event["e"], "{what}");
            assert!(
                same(row, "att_pp", &event["att"]) && same(row, "analytic_se_pp", &event["se"]),
                "{what}: {row} {event}"
            );
        }
    }
    assert!(compared > 50, "{compared} group-time effects compared");

    check_effects_against_truth(&panel, &estimates, &events, truth);
    check_effects_answer(client, url, &estimates, &events).await;
    events
}

/// `GET /v1/effects` and `techmon effect` give the tables' rows, with the method.
async fn check_effects_answer(
    client: &reqwest::Client,
    url: &str,
    estimates: &[Value],
    events: &[Value],
) {
    const RESEARCHER: &str = "dev-token-researcher";
    let get = |query: &str, versions: Option<&str>| {
        let mut request = client
            .get(format!("{url}/v1/effects?{query}"))
            .bearer_auth(RESEARCHER);
        if let Some(versions) = versions {
            request = request.header("techmon-table-versions", versions);
        }
        request.send()
    };
    let response = get("hub=region&region=cleantech-regio", None)
        .await
        .expect("GET /v1/effects");
    assert_eq!(response.status(), 200);
    let versions = response.headers()["techmon-table-versions"]
        .to_str()
        .expect("versions")
        .to_string();
    let answer: Value = response.json().await.expect("JSON");
    assert!(
        answer["method"]
            .as_str()
            .is_some_and(|m| m.contains("Callaway")),
        "{answer}"
    );
    assert!(
        answer["assumptions"]
            .as_array()
            .is_some_and(|a| a.len() >= 3)
    );
    let region = of_scope(estimates, CLEANTECH, "all");
    assert_eq!(answer["estimates"].as_array().map(Vec::len), Some(1));
    assert!(
        same(&answer["estimates"][0], "att_pp", &region[0]["att_pp"]),
        "{answer}"
    );
    assert_eq!(
        answer["event_study"].as_array().map(Vec::len),
        Some(of_scope(events, CLEANTECH, "all").len())
    );
    let pinned: Value = get("hub=region&region=cleantech-regio", Some(&versions))
        .await
        .expect("pinned")
        .json()
        .await
        .expect("JSON");
    assert_eq!(pinned["estimates"], answer["estimates"]);
    for (query, status) in [
        ("track=lyceum", 400),
        ("hub=No%20Hub", 400),
        ("colour=blue", 400),
    ] {
        assert_eq!(
            get(query, None).await.expect("GET").status(),
            status,
            "{query}"
        );
    }
    let hub = client
        .get(format!("{url}/v1/effects?hub=newtechpark"))
        .bearer_auth("dev-token-tec-deventer")
        .send()
        .await
        .expect("GET as a hub");
    assert_eq!(hub.status(), 403);

    let url = url.to_string();
    let printed = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_techmon"))
            .args([
                "effect",
                "--hub",
                "region",
                "--region",
                "cleantech-regio",
                "--url",
                &url,
                "--token",
                RESEARCHER,
            ])
            .output()
            .expect("techmon effect runs")
    })
    .await
    .expect("techmon effect");
    let stdout = String::from_utf8_lossy(&printed.stdout);
    assert!(
        printed.status.success(),
        "{}",
        String::from_utf8_lossy(&printed.stderr)
    );
    let att = region[0]["att_pp"].as_f64().expect("att");
    assert!(
        stdout.contains("Parallel trends") && stdout.contains(&format!("{att:.2}")),
        "{stdout}"
    );
}

/// The estimates against the generator's built-in effects, which techmon never sees.
/// A hub reaches one to four schools, too few clusters for its standard error to
/// cover DUO's rounding and suppression of one school's counts, so the truth is
/// checked where the estimate rests on every reached school (all regions), and per
/// hub by what no estimate without differencing would give.
fn check_effects_against_truth(
    panel: &[Value],
    estimates: &[Value],
    events: &[Value],
    truth: &Truth,
) {
    // All regions' true effect e school years after treatment: the pupils-weighted
    // mean of the built-in effects of the schools whose cohort is observed e school
    // years after (the schools counted in every school year; weight: mean pupils).
    let all: Vec<&Value> = panel.iter().filter(|r| r["track"] == "all").collect();
    let start = |v: &Value| {
        v.as_str()
            .and_then(|s| s.get(..4))
            .and_then(|s| s.parse::<i32>().ok())
    };
    let years: std::collections::BTreeSet<i32> = all
        .iter()
        .filter_map(|r| start(&r["school_year"]))
        .collect();
    let (first, last) = (
        *years.first().expect("years"),
        *years.last().expect("years"),
    );
    let mut schools: std::collections::BTreeMap<&str, Vec<&Value>> = Default::default();
    for row in &all {
        schools
            .entry(row["brin6"].as_str().expect("brin6"))
            .or_default()
            .push(row);
    }
    // (cohort, weight, built-in effect a year) of the treated schools of the panel.
    let treated: Vec<(i32, f64, f64)> = schools
        .values()
        .filter(|rows| rows.len() == years.len() && rows.iter().all(|r| r["share_pct"].is_f64()))
        .filter_map(|rows| {
            let cohort = start(&rows[0]["treated_from"]).filter(|&g| g > first && g <= last)?;
            let hub = rows[0]["reached_by"].as_str()?;
            let weight = rows
                .iter()
                .map(|r| r["pupils"].as_f64().expect("pupils"))
                .sum::<f64>()
                / rows.len() as f64;
            Some((
                cohort,
                weight,
                truth.effect(hub, 0).expect("a generated hub"),
            ))
        })
        .collect();
    for event in events
        .iter()
        .filter(|r| r["track"] == "all" && r["scope"] == REGIONS.0)
    {
        let e = i32::try_from(event["years_since"].as_i64().expect("years_since")).expect("e");
        let observed: Vec<_> = treated
            .iter()
            .filter(|(g, ..)| g + e <= last && g + e > first)
            .collect();
        let expected = if e < 0 {
            0.0
        } else {
            f64::from(e + 1) * observed.iter().map(|(_, w, a)| w * a).sum::<f64>()
                / observed.iter().map(|(_, w, _)| w).sum::<f64>()
        };
        let (att, se) = (
            event["att_pp"].as_f64().expect("att"),
            event["se_pp"].as_f64().expect("se"),
        );
        assert!(
            (att - expected).abs() <= 3.0 * se,
            "all regions e={e}: {att} ± {se} against {expected}"
        );
        assert_eq!(
            event["treated_schools"],
            observed.len(),
            "all regions e={e}"
        );
    }
    let overall = |scope: &str| {
        let row = estimates
            .iter()
            .find(|r| r["scope"] == scope && r["track"] == "all")?;
        row["att_pp"].as_f64()
    };
    for scope in [REGIONS, CLEANTECH] {
        let low = of_scope(estimates, scope, "all")[0]["ci_low_pp"]
            .as_f64()
            .expect("low");
        assert!(low > 0.0, "{scope:?}'s effect: from {low}");
    }
    // The built-in region's hubs' estimates rank as their built-in effects do (the
    // joining region's rest on one or two schools each).
    let mut hubs: Vec<(f64, f64)> = truth
        .hub_effects
        .iter()
        .filter(|h| {
            techmon_schemas::codes::hubs()
                .iter()
                .any(|c| c.id == h.hub_id)
        })
        .filter_map(|h| Some((h.pp_per_year, overall(h.hub_id)?)))
        .collect();
    hubs.sort_by(|a, b| a.0.total_cmp(&b.0));
    assert!(
        hubs.len() >= 4 && hubs.windows(2).all(|w| w[0].1 < w[1].1),
        "{hubs:?}"
    );
    // The hub without an effect: near zero, though its schools' shares were higher
    // than others' from the start (selection).
    let none = truth
        .hub_effects
        .iter()
        .find(|h| h.pp_per_year == 0.0)
        .expect("a hub without effect");
    let att = overall(none.hub_id).expect("an estimate");
    assert!(
        att.abs() < techmon_generate::world::SELECTION_PP / 4.0,
        "{}: {att}",
        none.hub_id
    );
}

/// (hub, participant reference) pairs.
type References = HashSet<(String, String)>;

/// (hub, participant reference) of the valid registrations in the region's files that
/// refuse research consent, and of those that consent, leaving out references
/// withdrawn later.
fn consent_in_files(generated: &techmon_generate::Generated) -> (References, References) {
    let (mut refused, mut consented, mut withdrawn) =
        (HashSet::new(), HashSet::new(), HashSet::new());
    for file in generated.hubs.iter().flat_map(|h| &h.files) {
        if file.extension().is_none_or(|e| e != "ndjson") {
            continue;
        }
        let text = std::fs::read_to_string(file).expect("events file");
        for line in text.lines() {
            let Ok(event) = serde_json::from_str::<Value>(line) else {
                continue;
            };
            if techmon_schemas::validate_event(&event).is_err() {
                continue;
            }
            let hub = event["hub_id"].as_str().unwrap_or_default().to_string();
            let reference = event["payload"]["participant_ref"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            match event["event_type"].as_str() {
                Some("participant_registered") => {
                    if event["payload"]["consent_research"] == true {
                        consented.insert((hub, reference));
                    } else {
                        refused.insert((hub, reference));
                    }
                }
                Some("consent_withdrawn") => {
                    withdrawn.insert((hub, reference));
                }
                _ => {}
            }
        }
    }
    (&refused - &withdrawn, &consented - &withdrawn)
}

/// People without research consent: none of their rows in a table a researcher
/// reads, through any table that names a person; they are counted all the same (the
/// KPIs equal the ground truth over everyone, see `check_kpis`).
async fn check_consent(
    client: &reqwest::Client,
    url: &str,
    generated: &techmon_generate::Generated,
) {
    let (refused, consented) = consent_in_files(generated);
    assert!(
        refused.len() > 5,
        "the region has people without consent: {}",
        refused.len()
    );
    let one = |sql: &'static str| async move {
        let rows = ask(client, url, sql)
            .await
            .unwrap_or_else(|e| panic!("{sql}: {e}"));
        rows[0]["n"].as_i64().unwrap_or(-1)
    };
    assert_eq!(
        one("SELECT count(*) AS n FROM participants WHERE NOT consent_research").await,
        0
    );
    // Each consenting person's registration, and no one else's (every person of the
    // region registers once, with one reference).
    assert_eq!(
        one("SELECT count(DISTINCT participant_pseudonym) AS n FROM participants").await,
        consented.len() as i64
    );
    for sql in [
        "SELECT count(*) AS n FROM attendances WHERE participant_pseudonym NOT IN (SELECT participant_pseudonym FROM participants)",
        "SELECT count(*) AS n FROM survey_answers WHERE participant_pseudonym NOT IN (SELECT participant_pseudonym FROM participants)",
        "SELECT count(*) AS n FROM profile_choices WHERE participant_pseudonym NOT IN (SELECT participant_pseudonym FROM participants)",
        "SELECT count(*) AS n FROM trajectory_events WHERE participant_pseudonym NOT IN (SELECT participant_pseudonym FROM participants)",
    ] {
        assert_eq!(one(sql).await, 0, "{sql}");
    }
    assert!(
        one("SELECT sum(people) AS n FROM participation_without_consent WHERE measure = 'reach'")
            .await
            > 0
    );
}

/// A researcher's KPI report (`GET /v1/kpis`): every count KPI about fewer than 10
/// persons is blank, every number given is the ground truth's, and the answer says
/// the view's small cells are blank. Gives the hub's rows of 2024 as the dashboard
/// should show them.
async fn check_released_kpis(client: &reqwest::Client, url: &str, truth: &Truth) -> Vec<Value> {
    let response = client
        .get(format!("{url}/v1/kpis"))
        .bearer_auth("dev-token-researcher")
        .send()
        .await
        .expect("kpis");
    let suppressed = response
        .headers()
        .get("techmon-suppressed")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_string();
    assert!(suppressed.contains("views=kpi_report"), "{suppressed}");
    let body: Value = response.json().await.expect("JSON");
    let rows = body["rows"].as_array().expect("rows");
    let mut blank = 0;
    for expected in &truth.kpis {
        let row = report_row(rows, expected);
        let unit = techmon_schemas::codes::kpi_target(expected.kpi, expected.band).map(|t| t.unit);
        let counts_persons = unit == Some(techmon_schemas::codes::KpiUnit::Count)
            && expected.kpi != "affiliated_organisations";
        match row["actual"].as_f64() {
            None => blank += usize::from(expected.actual.is_some()),
            Some(actual) => {
                assert!(close(Some(actual), expected.actual), "{expected:?}: {row}");
                assert!(
                    !counts_persons || actual >= 10.0,
                    "{expected:?} released with fewer than 10 persons"
                );
            }
        }
    }
    assert!(blank > 0, "the region has small cells to blank");
    rows.iter()
        .filter(|r| r["hub_id"] == "tec-deventer" && r["year"] == 2024)
        .map(|r| json!({"kpi": r["kpi"], "band": r["band"], "actual": r["actual"]}))
        .collect()
}

/// What the dashboard should show of `scope` in `year`, by the ground truth: the KPI
/// rows (met against `target`), the technical shares and the event study.
fn expected_view(
    truth: &Truth,
    scope: Scope,
    year: i32,
    effects: &[Value],
    target: impl Fn(&techmon_generate::KpiTruth) -> Option<f64>,
) -> (Vec<Value>, Vec<Value>, Vec<Value>) {
    let kpis = truth
        .kpis
        .iter()
        .filter(|k| (k.scope.as_str(), k.region_id) == scope && k.year == year)
        .map(|k| {
            let met = match (k.actual, target(k)) {
                (Some(a), Some(t)) => json!(a >= t),
                _ => Value::Null,
            };
            json!({"kpi": k.kpi, "band": k.band, "actual": k.actual, "met": met})
        })
        .collect();
    let shares = truth
        .technical_share
        .iter()
        .filter(|s| (s.scope.as_str(), s.region_id) == scope && s.track == "all")
        .map(|s| json!({"series": "scope", "x": s.school_year, "value": s.share_pct}))
        .collect();
    let effect = of_scope(effects, scope, "all")
        .into_iter()
        .map(|r| json!({"series": "effect", "x": r["years_since"].to_string(), "value": r["att_pp"]}))
        .collect();
    (kpis, shares, effect)
}

/// The dashboard in headless Chromium (playwright-core): the KPI table and charts
/// for one hub and year, a query in the SQL console and its CSV download; then for
/// the region that joined, and for both regions together.
fn check_dashboard(
    url: &str,
    truth: &Truth,
    work: &Path,
    researchers_kpis: &[Value],
    effects: &[Value],
) {
    let (hub, year) = ("tec-deventer", 2024);
    let (kpis, shares, effect) = expected_view(truth, TEC_DEVENTER, year, effects, |k| {
        techmon_schemas::codes::kpi_target(k.kpi, k.band).and_then(|t| t.target(year))
    });
    let hubs = techmon_generate::world::HUBS.len();
    let expect = json!({
        "hub": hub, "year": year, "kpis": kpis,
        "charts": {
            "chart-technical-share": {"min_points": shares.len(), "points": shares},
            "chart-effect": {"min_points": effect.len(), "points": effect},
            "chart-po-participation": {"min_points": 3},
            "chart-activities": {"min_points": 10},
            "chart-satisfaction": {"min_points": 3},
        },
        "sql": "SELECT hub_id, count(*) AS activities FROM activities GROUP BY hub_id",
        "sql_rows": hubs,
    });
    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefacts folder");
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "the browser test needs `npm ci --prefix tests/browser` and Debian's chromium (bash .ci/run installs both)"
    );
    let check = |name: &str, token: &str, expect: &Value| {
        let expect_file = work.join(format!("{name}.json"));
        std::fs::write(&expect_file, expect.to_string()).expect("write the expect file");
        let screenshot = artefacts.join(format!("{name}.png"));
        let status = std::process::Command::new("node")
            .arg(browser.join("dashboard.mjs"))
            .args(["--url", url, "--token", token])
            .arg("--expect")
            .arg(&expect_file)
            .arg("--screenshot")
            .arg(&screenshot)
            .arg("--downloads")
            .arg(work.join("downloads").join(name))
            .status()
            .expect("node runs (install Node.js)");
        assert!(
            status.success(),
            "the dashboard check {name} failed (screenshot: {})",
            screenshot.display()
        );
        println!("dashboard screenshot: {}", screenshot.display());
    };
    check("dashboard", ANALYST_TOKEN, &expect);
    // A researcher's dashboard shows the KPIs as the API released them to her.
    let mut released = expect.clone();
    released["kpis"] = json!(researchers_kpis);
    check("dashboard-researcher", "dev-token-researcher", &released);
    // The hub's own token: the dashboard opens on its hub, offers no other, shows the
    // same numbers, and its SQL console sees its own rows only.
    let mut own = expect.clone();
    own["hub_options"] = json!([hub]);
    own["sql_rows"] = json!(1);
    check("dashboard-hub", &format!("dev-token-{hub}"), &own);

    // The region that joined while techmon ran: its own KPI set and targets, its
    // shares and its effects.
    let (region, year) = (("region", Some("noord-veluwe")), 2025);
    let joining = techmon_generate::world::REGIONS
        .iter()
        .find(|r| r.id == "noord-veluwe")
        .and_then(|r| r.joins.as_ref())
        .expect("Noord-Veluwe joins");
    let (kpis, shares, effect) = expected_view(truth, region, year, effects, |k| {
        joining
            .targets
            .iter()
            .find(|t| t.hub.is_none() && t.kpi == k.kpi && t.band == k.band && t.year == year)
            .and_then(|t| t.target)
    });
    let expect = json!({
        "hub": "region:noord-veluwe", "year": year, "kpis": kpis, "kpi_rows": kpis.len(),
        "charts": {
            "chart-technical-share": {"min_points": shares.len(), "points": shares},
            "chart-effect": {"min_points": effect.len(), "points": effect},
            "chart-activities": {"min_points": 10},
        },
    });
    check("dashboard-region", ANALYST_TOKEN, &expect);

    // Both regions together: every KPI of either set, without targets.
    let (kpis, shares, effect) = expected_view(truth, REGIONS, year, effects, |_| None);
    let expect = json!({
        "hub": "regions", "year": year, "kpis": kpis, "kpi_rows": kpis.len(),
        "charts": {
            "chart-technical-share": {"min_points": shares.len(), "points": shares},
            "chart-effect": {"min_points": effect.len(), "points": effect},
            "chart-activities": {"min_points": 10},
        },
    });
    check("dashboard-regions", ANALYST_TOKEN, &expect);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_demo_answers_equal_the_ground_truth_and_the_dashboard_shows_them() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (demo, stop, running) = start_demo(&dir.path().join("demo")).await;
    let truth = &demo.generated.truth;

    // Every record reached the lake once; the broken ones were refused, as a hub sees it.
    assert_eq!(demo.pushed.rejected, truth.broken_events);
    assert_eq!(demo.pushed.duplicates, truth.resent_events);
    assert_eq!(demo.pushed.accepted, truth.valid_events);
    let rejects =
        std::fs::read_to_string(dir.path().join("demo/region/rejected-newtechpark.ndjson"))
            .expect("rejects file");
    assert!(
        rejects.lines().all(|l| l.contains("\"errors\"")),
        "{rejects}"
    );

    let client = reqwest::Client::new();
    check_kpis(&client, &demo.url, truth).await;
    check_consent(&client, &demo.url, &demo.generated).await;
    check_technical_shares(&client, &demo.url, truth).await;
    let effects = check_effects(&client, &demo.url, truth, dir.path()).await;
    let page = client
        .get(format!("{}/", demo.url))
        .send()
        .await
        .expect("GET /");
    assert!(page.status().is_success());
    assert!(page.text().await.expect("page").contains("/assets/app.js"));

    let url = demo.url.clone();
    let work = dir.path().to_path_buf();
    let truth = demo.generated.truth.clone();
    let researchers_kpis = check_released_kpis(&client, &demo.url, &truth).await;
    tokio::task::spawn_blocking(move || {
        check_dashboard(&url, &truth, &work, &researchers_kpis, &effects)
    })
    .await
    .expect("dashboard check");

    let _ = stop.send(());
    running.await.expect("the demo stops cleanly");
}
