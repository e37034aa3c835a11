//! Golden test of the KPI views: a small lake and the DUO fixture files, and the
//! KPI report for 2024 (school year 2024/25) compared with
//! `tests/query/golden/kpi_report_2024.csv`, worked out by hand as follows.
//!
//! DUO PO 2024 (reference/tests/data/duo, ages on 1 October → bands 4–5 / 6–9 / 10+):
//! - Deventer (08XZ01, tec-deventer): groep 1–2 = 22+24 = 46, 3–6 = 25+21+23+26 = 95,
//!   7–8 = 22+24+5 = 51.
//! - Apeldoorn (07XY00, newtechpark): 28+31 = 59, 27+30+29+26 = 112, 31+28+6 = 65.
//! - Region (four schools): 160, 317, 180 + one `<5` counted as 2.5 = 182.5.
//!
//! tec-deventer's classes at 08XZ01: groep 7 in act-A (10) and in act-B with a second
//! class (10 + 8 = 18) → the largest, 18; groep 8 in act-A (12); groep 2 in act-A (12).
//! - PO groep 7–8: (18 + 12) / 51 = 58.8235 % (target 50, met); groep 1–2: 12 / 46 =
//!   26.0870 % (5, met); groep 3–6: 0 / 95 = 0 % (10, missed).
//! - VO: a havo leerjaar-2 class of 27 and one registered VO pupil attending → 28.
//! - MBO: one class of 8. Parents: three registered parents, one attending twice → 3.
//! - Teachers: two registered teachers at the docentprofessionalisering activity
//!   (a third teacher at a proeverij does not count) → 2.
//! - Satisfaction: 4.5 of 5 = 9.0, 7 of 10, 8 of 10 → 8.0 (target 8, met).
//! - Partners: p1 joined in 2023/24, p2 joined 2024/25, p3 joined and left in
//!   2024/25 → 2. Ambassadors: 1.
//!
//! newtechpark at 07XY00: groep 8 class of 15 → 15 / 65 = 23.0769 %; groep 4 class
//! of 20 → 20 / 112 = 17.8571 % (target 10, met); groep 1–2: 0 / 59; satisfaction 3 of
//! 5 = 6.0; no other activity → 0.
//!
//! Region: groep 1–2 12 / 160 = 7.5 % (met), 3–6 20 / 317 = 6.3091 %, 7–8
//! 45 / 182.5 = 24.6575 %; satisfaction (9 + 7 + 8 + 6) / 4 = 7.5; counts add up.
//! Technical profiles, region, vmbo lj3 + havo/vwo lj4, DUO VO 2022 and 2024 (README
//! of the fixtures; suppressed as 2.5): 2022 (148 + 207) / (305 + 455) = 46.7105 %,
//! 2024 (189 + 276.5) / (337 + 510.5) = 54.9263 % → +8.2157 pp (no target in 2024).

mod common;

use common::{ADMIN, ANALYST, RESEARCHER, TestLake, duo_file, event, import, serve, sql};
use common::{PO_2024, VO_2022, VO_2024, VO_ADDRESSES};
use serde_json::{Value, json};

fn group(
    hub: &str,
    activity: &str,
    school: &str,
    sector: &str,
    level: (&str, u32),
    girls: u32,
    boys: u32,
) -> Value {
    let mut payload = json!({
        "activity_id": activity, "school_brin6": school, "sector": sector, "school_year": "2024/25",
        "participants": {"girls": girls, "boys": boys, "other": 0}
    });
    payload[level.0] = json!(level.1);
    if sector == "VO" {
        payload["onderwijstype"] = json!("havo");
    }
    event(
        "group_participated",
        hub,
        "2024-10-08T10:00:00+02:00",
        payload,
    )
}

fn person(reference: &str, role: &str, sector: Option<&str>) -> Value {
    let mut payload = json!({
        "participant_ref": reference, "name": format!("Naam {reference}"), "gender": "female",
        "role": role, "consent_research": true
    });
    if let Some(sector) = sector {
        payload["sector"] = json!(sector);
        payload["leerjaar"] = json!(2);
    }
    event(
        "participant_registered",
        "tec-deventer",
        "2024-09-20T10:00:00+02:00",
        payload,
    )
}

fn attends(activity: &str, reference: &str) -> Value {
    event(
        "participant_attended",
        "tec-deventer",
        "2024-11-12T10:00:00+01:00",
        json!({"activity_id": activity, "participant_ref": reference}),
    )
}

fn survey(hub: &str, score: f64, scale: u32) -> Value {
    event(
        "survey_answered",
        hub,
        "2024-11-12T12:00:00+01:00",
        json!({"activity_id": "act-A", "respondent_role": "pupil", "score": score, "scale_max": scale}),
    )
}

fn partner(id: &str, at: &str, joined: bool) -> Value {
    if joined {
        event(
            "partner_joined",
            "tec-deventer",
            at,
            json!({"partner_id": id, "organisation_name": "Voorbeeld B.V.", "organisation_kind": "company"}),
        )
    } else {
        event(
            "partner_left",
            "tec-deventer",
            at,
            json!({"partner_id": id}),
        )
    }
}

fn events() -> Vec<Value> {
    let d = "tec-deventer";
    let mut events = vec![
        group(d, "act-A", "08XZ01", "PO", ("groep", 7), 5, 5),
        group(d, "act-B", "08XZ01", "PO", ("groep", 7), 5, 5),
        group(d, "act-B", "08XZ01", "PO", ("groep", 7), 4, 4),
        group(d, "act-A", "08XZ01", "PO", ("groep", 8), 6, 6),
        group(d, "act-A", "08XZ01", "PO", ("groep", 2), 6, 6),
        group(d, "act-V", "34EF02", "VO", ("leerjaar", 2), 14, 13),
        group(d, "act-M", "99ZZ00", "MBO", ("leerjaar", 1), 4, 4),
        group("newtechpark", "act-C", "07XY00", "PO", ("groep", 8), 7, 8),
        group("newtechpark", "act-C", "07XY00", "PO", ("groep", 4), 10, 10),
        event(
            "activity_held",
            d,
            "2024-11-12T09:00:00+01:00",
            json!({
                "activity_id": "act-T", "activity_type": "docentprofessionalisering", "title": "Lesideeën techniek",
                "starts_at": "2024-11-12T09:00:00+01:00", "ends_at": "2024-11-12T12:00:00+01:00",
                "worlds": [6], "target_groups": ["teachers"]
            }),
        ),
        person("P1", "pupil", Some("VO")),
        person("P2", "parent", None),
        person("P3", "parent", None),
        person("P4", "parent", None),
        person("T1", "teacher", None),
        person("T2", "teacher", None),
        person("T3", "teacher", None),
        survey(d, 4.5, 5),
        survey(d, 7.0, 10),
        survey(d, 8.0, 10),
        survey("newtechpark", 3.0, 5),
        partner("p1", "2024-01-15T10:00:00+01:00", true),
        partner("p2", "2024-10-01T10:00:00+02:00", true),
        partner("p3", "2024-09-01T10:00:00+02:00", true),
        partner("p3", "2025-03-01T10:00:00+01:00", false),
        event(
            "ambassador_committed",
            d,
            "2024-11-01T10:00:00+01:00",
            json!({"ambassador_ref": "amb-1", "name": "Jan Voorbeeld"}),
        ),
    ];
    for (activity, reference) in [
        ("act-V", "P1"),
        ("act-O", "P2"),
        ("act-A", "P2"),
        ("act-O", "P3"),
        ("act-O", "P4"),
        ("act-T", "T1"),
        ("act-T", "T2"),
        ("act-A", "T3"),
    ] {
        events.push(attends(activity, reference));
    }
    events
}

#[tokio::test]
async fn kpi_report_matches_the_hand_worked_golden_file() {
    let lake = TestLake::new();
    lake.add(&events()).await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    for file in [PO_2024, VO_2022, VO_2024, VO_ADDRESSES] {
        assert_eq!(
            import(addr, ADMIN, file, duo_file(file)).await.0,
            200,
            "{file}"
        );
    }
    // The analyst's report is row-level (no output control): the whole truth.
    let reply = sql(
        addr,
        ANALYST,
        "text/csv",
        None,
        "SELECT kpi, band, hub_id, actual, target, met FROM kpi_report \
         WHERE year = 2024 AND hub_id IN ('tec-deventer', 'newtechpark', 'region') \
           AND NOT (kpi = 'technical_profile_change_vs_2022' AND hub_id <> 'region') \
         ORDER BY kpi, band, hub_id",
    )
    .await;
    let text = reply.ok_text();
    let mut reader = csv::Reader::from_reader(text.as_bytes());
    let mut actual = String::from("kpi,band,hub_id,actual,target,met\n");
    for record in reader.records() {
        let r = record.expect("record");
        let number = |i: usize| match r.get(i).unwrap_or("") {
            "" => String::new(),
            text => {
                let value: f64 = text.parse().expect("a number");
                if i == 3 {
                    format!("{value:.4}")
                } else {
                    format!("{value}")
                }
            }
        };
        actual.push_str(&format!(
            "{},{},{},{},{},{}\n",
            &r[0],
            &r[1],
            &r[2],
            number(3),
            number(4),
            &r[5]
        ));
    }
    let golden = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("tests/query/golden/kpi_report_2024.csv"),
    )
    .expect("golden file");
    assert_eq!(actual, golden);

    // A researcher's report has the same rows and numbers, but for the values of
    // rows about fewer than 10 persons (and of as many more as keep those from
    // following from the region's), which are blank.
    let report = "SELECT kpi, band, hub_id, year, unit, actual, target, met, numerator, denominator \
                  FROM kpi_report ORDER BY kpi, band, hub_id, year";
    let whole = sql(addr, ANALYST, "application/json", None, report)
        .await
        .json();
    let released = sql(addr, RESEARCHER, "application/json", None, report).await;
    assert!(
        released.suppressed.contains("views=kpi_report"),
        "{}",
        released.suppressed
    );
    let released = released.json();
    let (whole, released) = (
        whole["rows"].as_array().expect("rows"),
        released["rows"].as_array().expect("rows"),
    );
    assert_eq!(whole.len(), released.len());
    let mut blanked = 0;
    for (truth, row) in whole.iter().zip(released) {
        let kpi = truth["kpi"].as_str().expect("text");
        let persons = match (kpi, truth["unit"].as_str()) {
            ("affiliated_organisations" | "technical_profile_change_vs_2022", _) => None,
            (_, Some("score_10")) => Some(truth["denominator"].as_f64().unwrap_or(0.0)),
            _ => Some(truth["numerator"].as_f64().unwrap_or(0.0)),
        };
        for column in ["kpi", "band", "hub_id", "year", "unit", "target"] {
            assert_eq!(truth[column], row[column], "{column} of {truth}");
        }
        if truth["actual"].is_null() {
            assert!(row["actual"].is_null());
        } else if row["actual"].is_null() {
            blanked += 1;
            assert!(
                persons.is_some(),
                "{kpi} counts no persons, yet was blanked"
            );
        } else {
            assert_eq!(truth["actual"], row["actual"], "{truth}");
            assert!(
                persons.is_none_or(|p| p >= 10.0),
                "{truth} published with fewer than 10 persons"
            );
        }
    }
    assert!(blanked > 0, "the small region has small cells");

    // The same report over `GET /v1/kpis`, filtered by year and hub.
    let response = reqwest::Client::new()
        .get(format!("http://{addr}/v1/kpis?year=2024&hub=tec-deventer"))
        .bearer_auth(RESEARCHER)
        .send()
        .await
        .expect("kpis");
    assert!(response.headers().contains_key("techmon-table-versions"));
    let body: Value = response.json().await.expect("json");
    let rows = body["rows"].as_array().expect("rows");
    assert!(
        rows.iter()
            .all(|r| r["hub_id"] == "tec-deventer" && r["year"] == 2024)
    );
    let seven_eight = rows
        .iter()
        .find(|r| r["kpi"] == "po_participation_share" && r["band"] == "groep_7_8")
        .expect("groep 7-8 row");
    assert!((seven_eight["actual"].as_f64().unwrap_or(0.0) - 100.0 * 30.0 / 51.0).abs() < 1e-9);
    assert_eq!(
        (seven_eight["target"].as_f64(), seven_eight["met"].as_bool()),
        (Some(50.0), Some(true))
    );
    assert!(body["table_versions"]["group_participations"].is_u64());
}

/// Profile choices hubs reported: vmbo leerjaar 3 and havo/vwo leerjaar 4 count, each
/// under its track and under `all`, per hub and for the region; other leerjaren
/// do not count.
#[tokio::test]
async fn participant_profile_share_counts_each_choice_once_per_scope_and_track() {
    let choice = |hub: &str, onderwijstype: &str, leerjaar: u32, profile: &str, count: u32| {
        event(
            "profile_chosen",
            hub,
            "2024-10-01T10:00:00+02:00",
            json!({
                "school_brin6": "34EF02", "school_year": "2024/25", "leerjaar": leerjaar,
                "onderwijstype": onderwijstype, "profile_code": profile, "count": count
            }),
        )
    };
    let d = "tec-deventer";
    let lake = TestLake::new();
    lake.add(&[
        choice(d, "vmbo-kb", 3, "PIE", 6),
        choice(d, "vmbo-kb", 3, "E&O", 4),
        choice(d, "havo", 4, "N&T", 3),
        choice(d, "havo", 4, "C&M", 7),
        choice(d, "vmbo-kb", 2, "PIE", 50),
        choice("newtechpark", "vwo", 4, "N&G", 5),
    ])
    .await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    let shares = "SELECT scope, school_year, track, pupils, technical_pupils, round(share_pct, 4) AS share_pct \
                  FROM participant_profile_share ORDER BY scope, track";
    // A researcher sees the one row where both the technical and the other choices
    // are 10 or more (region, all: 14 and 11); the rest tell of a few pupils.
    assert_eq!(
        sql(addr, RESEARCHER, "text/csv", None, shares)
            .await
            .ok_text(),
        "scope,school_year,track,pupils,technical_pupils,share_pct\n\
         newtechpark,2024/25,all,,,\n\
         newtechpark,2024/25,havo_vwo,,,\n\
         region,2024/25,all,25,14,56.0\n\
         region,2024/25,havo_vwo,,,\n\
         region,2024/25,vmbo,,,\n\
         tec-deventer,2024/25,all,,,\n\
         tec-deventer,2024/25,havo_vwo,,,\n\
         tec-deventer,2024/25,vmbo,,,\n"
    );
    let reply = sql(addr, ANALYST, "text/csv", None, shares).await;
    assert_eq!(
        reply.ok_text(),
        "scope,school_year,track,pupils,technical_pupils,share_pct\n\
         newtechpark,2024/25,all,5,5,100.0\n\
         newtechpark,2024/25,havo_vwo,5,5,100.0\n\
         region,2024/25,all,25,14,56.0\n\
         region,2024/25,havo_vwo,15,8,53.3333\n\
         region,2024/25,vmbo,10,6,60.0\n\
         tec-deventer,2024/25,all,20,9,45.0\n\
         tec-deventer,2024/25,havo_vwo,10,3,30.0\n\
         tec-deventer,2024/25,vmbo,10,6,60.0\n"
    );
}

/// A plain sheet's row sent again with another number is a correction: the KPI
/// report counts the corrected number once, whether the earlier version reached the
/// lake in an earlier round of the transform or in the same one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrected_row_of_a_plain_sheet_counts_once_in_the_kpi_report() {
    let lake = TestLake::new();
    let sheet = |girls: u32| {
        format!(
            "datum;activity_id;school_brin6;sector;leerjaar;onderwijstype;school_year;meisjes;jongens\n\
             8-10-2024;act-A;08XZ01;VO;2;havo;2024/25;{girls};14\n\
             9-10-2024;act-B;08XZ01;VO;3;vwo;2024/25;10;10\n"
        )
    };
    let push = |girls| {
        let lake = &lake;
        async move {
            lake.push_feed("tec-deventer", "group_participated", &sheet(girls))
                .await
        }
    };
    let first = push(13).await;
    assert_eq!((first.accepted, first.corrected), (2, 0), "{first:?}");
    lake.transform().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    let vo_pupils = || async move {
        let reply = sql(
            addr,
            ANALYST,
            "application/json",
            None,
            "SELECT actual FROM kpi_report \
             WHERE year = 2024 AND kpi = 'vo_pupils' AND hub_id = 'tec-deventer'",
        )
        .await;
        reply.json()["rows"][0]["actual"]
            .as_f64()
            .expect("a number")
    };
    let rows = || async move {
        let reply = sql(
            addr,
            ANALYST,
            "application/json",
            None,
            "SELECT event_id FROM group_participations ORDER BY event_id",
        )
        .await;
        let ids: Vec<String> = reply.json()["rows"]
            .as_array()
            .expect("rows")
            .iter()
            .map(|r| r["event_id"].as_str().expect("an id").to_string())
            .collect();
        ids
    };
    assert_eq!(vo_pupils().await, 27.0 + 20.0);

    // Corrected after the first version reached the lake: 15 girls, not 13 + 15.
    let corrected = push(15).await;
    assert_eq!(
        (corrected.corrected, corrected.duplicates),
        (1, 1),
        "{corrected:?}"
    );
    let (earlier, later) = (&first.results[0], &corrected.results[0]);
    assert_eq!(later.replaces, earlier.event_id);
    assert_eq!(corrected.results[1].event_id, first.results[1].event_id);
    lake.transform().await;
    assert_eq!(vo_pupils().await, 29.0 + 20.0);
    let mut expected: Vec<String> = [later.event_id, first.results[1].event_id]
        .iter()
        .map(|id| id.expect("an id").to_string())
        .collect();
    expected.sort();
    assert_eq!(rows().await, expected);

    // Corrected twice before the transform ran: only the last counts.
    for girls in [16, 12] {
        assert_eq!(push(girls).await.corrected, 1);
    }
    lake.transform().await;
    assert_eq!(vo_pupils().await, 26.0 + 20.0);
    assert_eq!(rows().await.len(), 2);
}
