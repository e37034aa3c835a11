//! DUO reference imports through the API, and the technical-profile headline over
//! them, checked against figures worked out from the fixture files' README.

mod common;

use common::{ADMIN, RESEARCHER, TestLake, duo_file, import, serve, sql};
use common::{PO_2024, PO_ADDRESSES, VO_2022, VO_2023, VO_2024, VO_ADDRESSES};
use serde_json::Value;
use techmon_schemas::codes::SchoolYear;

#[tokio::test]
async fn duo_files_import_once_in_every_encoding() {
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    // DUO's address files name no year: they are of the school year of the import.
    let now = SchoolYear::containing(chrono::Utc::now().date_naive()).to_string();
    for (file, encoding, separator, year) in [
        (VO_2022, "windows-1252", ";", "2022/23"),
        (VO_2023, "windows-1252", ";", "2023/24"),
        (VO_2024, "utf-8-bom", ",", "2024/25"),
        (PO_2024, "utf-8", ";", "2024/25"),
        (VO_ADDRESSES, "utf-8", ";", now.as_str()),
        (PO_ADDRESSES, "windows-1252", ";", now.as_str()),
    ] {
        let (status, answer) = import(addr, ADMIN, file, duo_file(file)).await;
        assert_eq!(status, 200, "{file}: {answer}");
        assert_eq!(answer["imported"], true, "{file}");
        assert_eq!(
            (answer["encoding"].as_str(), answer["separator"].as_str()),
            (Some(encoding), Some(separator)),
            "{file}"
        );
        assert_eq!(answer["school_year"], year, "{file}");
        // The same file again changes nothing.
        let (_, again) = import(addr, ADMIN, file, duo_file(file)).await;
        assert_eq!(again["imported"], false, "{file}");
        assert_eq!(again["table_version"], answer["table_version"], "{file}");
    }

    // Non-ASCII names survive Windows-1252 and Latin-1; BRIN + vestiging make BRIN6.
    let names = sql(addr, RESEARCHER, "application/json", None,
        "SELECT DISTINCT school_year, school_name FROM duo_vo_pupils WHERE brin6 IN ('12AB01', '34EF02') ORDER BY school_year, school_name").await;
    let rows = names.json()["rows"].clone();
    let found: Vec<(String, String)> = rows
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["school_year"].as_str().unwrap_or("").into(),
                r["school_name"].as_str().unwrap_or("").into(),
            )
        })
        .collect();
    for year in ["2022/23", "2023/24"] {
        assert!(
            found.contains(&(year.into(), "Sint-Ludgercollège".into())),
            "{year}: {found:?}"
        );
        assert!(
            found.contains(&(year.into(), "Athénée De Worp".into())),
            "{year}: {found:?}"
        );
    }

    // Suppressed cells are kept as bounds: README, 2022: 84 suppressed cells.
    let suppressed = sql(addr, RESEARCHER, "application/json", None,
        "SELECT count(*) AS cells, min(pupils_min) AS lo, max(pupils_max) AS hi, count(pupils) AS published \
         FROM duo_vo_pupils WHERE school_year = '2022/23' AND suppressed").await;
    let row = suppressed.json()["rows"][0].clone();
    assert_eq!(
        (
            row["cells"].as_i64(),
            row["lo"].as_i64(),
            row["hi"].as_i64(),
            row["published"].as_i64()
        ),
        (Some(84), Some(1), Some(4), Some(0))
    );

    // A changed file from the same source replaces that source's year, in one commit.
    let mut changed = duo_file(PO_2024);
    changed.extend_from_slice(po_line("1").as_bytes());
    let (status, replaced) = import(addr, ADMIN, PO_2024, changed).await;
    assert_eq!(
        (status, replaced["imported"].clone()),
        (200, serde_json::json!(true))
    );
    let schools = sql(
        addr,
        RESEARCHER,
        "application/json",
        None,
        "SELECT count(DISTINCT brin6) AS schools, count(*) AS cells FROM duo_po_pupils",
    )
    .await;
    // Four schools plus the new one, ages 4 to 24 each, none twice.
    assert_eq!(schools.json()["rows"][0]["schools"], 5);
    assert_eq!(schools.json()["rows"][0]["cells"], 5 * 21);
}

/// A line of a new school (11ZC00 in Epe) for the PO fixture, with `age_4` as its
/// count of four-year-olds and 1 for every other age.
fn po_line(age_4: &str) -> String {
    let ages: Vec<&str> = std::iter::once(age_4)
        .chain(std::iter::repeat_n("1", 20))
        .collect();
    format!(
        "20241001;11ZC;00;OBS Nieuw;;EPE;0232;EPE;Gelderland;Bo;;Openbaar;1;0;{};0\r\n",
        ages.join(";")
    )
}

#[tokio::test]
async fn imports_need_the_admin_role_and_bad_files_are_named() {
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    let (status, answer) = import(addr, RESEARCHER, VO_2024, duo_file(VO_2024)).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, answer) = import(addr, ADMIN, "dienst.csv", b"A;B\n1;2\n".to_vec()).await;
    assert_eq!(
        (status, answer["error"]["code"].as_str()),
        (400, Some("bad_reference_file"))
    );
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap_or("")
            .contains("dienst.csv"),
        "{answer}"
    );
    let mut bad = duo_file(PO_2024);
    bad.extend_from_slice(po_line("veel").as_bytes());
    let (status, answer) = import(addr, ADMIN, PO_2024, bad).await;
    let message = answer["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(status, 400);
    assert!(
        message.contains("line 6, column LEEFTIJD_4: not a pupil count"),
        "{message}"
    );
}

#[tokio::test]
async fn technical_profile_intake_against_2022_with_the_national_trend() {
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    for file in [VO_2022, VO_2024, VO_ADDRESSES] {
        assert_eq!(import(addr, ADMIN, file, duo_file(file)).await.0, 200);
    }
    let reply = sql(addr, RESEARCHER, "application/json", None,
        "SELECT * FROM technical_profile_vs_2022 WHERE school_year = '2024/25' AND track = 'vmbo' AND scope = 'region'").await;
    let row = reply.json()["rows"][0].clone();
    let get = |c: &str| row[c].as_f64().unwrap_or(f64::NAN);

    // From the fixture README (vmbo bb/kb/gl leerjaar 3), suppressed cells as 2.5:
    // 2022 region: technical 138 + 4·2.5 = 148 of 290 + 6·2.5 = 305  → 48.5246 %
    // 2024 region: technical 179 + 4·2.5 = 189 of 322 + 6·2.5 = 337  → 56.0831 %
    let region_2022 = 100.0 * 148.0 / 305.0;
    let region_2024 = 100.0 * 189.0 / 337.0;
    // National: 2022 253 + 11·2.5 = 280.5 of 593 + 15·2.5 = 630.5;
    //           2024 299 + 11·2.5 = 326.5 of 630 + 15·2.5 = 667.5.
    let national_change = 100.0 * 326.5 / 667.5 - 100.0 * 280.5 / 630.5;
    // Bounds: 2022 technical 142–154, other (152 exact + 2 suppressed) 154–160;
    //         2024 technical 183–195, other (143 exact + 2 suppressed) 145–151.
    let min_2022 = 100.0 * 142.0 / (142.0 + 160.0);
    let max_2022 = 100.0 * 154.0 / (154.0 + 154.0);
    let min_2024 = 100.0 * 183.0 / (183.0 + 151.0);
    let max_2024 = 100.0 * 195.0 / (195.0 + 145.0);
    let expected = [
        ("baseline_share_pct", region_2022),
        ("share_pct", region_2024),
        ("change_pp", region_2024 - region_2022),
        (
            "change_relative_pct",
            100.0 * (region_2024 / region_2022 - 1.0),
        ),
        ("national_change_pp", national_change),
        (
            "difference_in_differences_pp",
            region_2024 - region_2022 - national_change,
        ),
        ("change_pp_min", min_2024 - max_2022),
        ("change_pp_max", max_2024 - min_2022),
    ];
    for (column, value) in expected {
        assert!(
            (get(column) - value).abs() < 1e-9,
            "{column}: {} ≠ {value}",
            get(column)
        );
    }
    // 4 + 2 suppressed cells in the 2022 population, 4 + 2 in 2024.
    assert_eq!(row["suppressed_cells"], 12);
    assert!(
        row["note"].as_str().unwrap_or("").contains("suppressed"),
        "{row}"
    );
    // The national trend rose less than the region's, by construction of the fixtures.
    assert!(get("difference_in_differences_pp") > 0.0);

    // Every row (all scopes, tracks and years) against the plain definition: each
    // share joined to its own scope's and track's 2022 share and to the national change.
    let definition = "WITH national AS ( \
            SELECT s.school_year, s.track, s.share_pct - b.share_pct AS change_pp \
            FROM technical_profile_share s JOIN technical_profile_share b \
              ON b.scope = 'national' AND b.track = s.track AND b.school_year = '2022/23' \
            WHERE s.scope = 'national') \
          SELECT s.scope, s.school_year, s.track, b.share_pct AS baseline, b.share_min_pct AS baseline_min, \
                 b.share_max_pct AS baseline_max, n.change_pp AS national, \
                 s.suppressed_cells + b.suppressed_cells AS suppressed \
          FROM technical_profile_share s \
          JOIN technical_profile_share b ON b.scope = s.scope AND b.track = s.track AND b.school_year = '2022/23' \
          LEFT JOIN national n ON n.school_year = s.school_year AND n.track = s.track";
    let check = format!(
        "SELECT count(*) AS rows, \
                sum(CASE WHEN v.scope IS NULL OR d.scope IS NULL \
                           OR (v.baseline_share_pct IS DISTINCT FROM d.baseline) \
                           OR (v.change_pp_min IS DISTINCT FROM (v.share_min_pct - d.baseline_max)) \
                           OR (v.change_pp_max IS DISTINCT FROM (v.share_max_pct - d.baseline_min)) \
                           OR (v.national_change_pp IS DISTINCT FROM d.national) \
                           OR (v.suppressed_cells IS DISTINCT FROM d.suppressed) THEN 1 ELSE 0 END) AS differing \
         FROM technical_profile_vs_2022 v FULL JOIN ({definition}) d \
           ON v.scope = d.scope AND v.school_year = d.school_year AND v.track = d.track"
    );
    let reply = sql(addr, RESEARCHER, "application/json", None, &check).await;
    let answer = reply.json();
    let counts = &answer["rows"][0];
    assert!(counts["rows"].as_i64().unwrap_or(0) > 10, "{answer}");
    assert_eq!(counts["differing"], 0, "{counts}");
}

/// The technical-profile views over the files of three years, as JSON rows.
async fn technical_profile_views(files: &[(&str, Vec<u8>)]) -> Vec<Value> {
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    for (name, bytes) in files {
        let (status, answer) = import(addr, ADMIN, name, bytes.clone()).await;
        assert_eq!(status, 200, "{name}: {answer}");
    }
    profile_rows(addr).await
}

/// The rows of the technical-profile views of the service at `addr`.
async fn profile_rows(addr: std::net::SocketAddr) -> Vec<Value> {
    let mut answers = Vec::new();
    for view in ["technical_profile_share", "technical_profile_vs_2022"] {
        let reply = sql(
            addr,
            RESEARCHER,
            "application/json",
            None,
            &format!("SELECT * FROM {view} ORDER BY scope, school_year, track"),
        )
        .await;
        answers.push(reply.json()["rows"].clone());
    }
    answers
}

/// DUO's older layout (BRIN NUMMER, one- or two-digit VESTIGINGSNUMMER, LWOO, the
/// elementcode table's profile names), its newer one (INSTELLINGSCODE, two-digit
/// VESTIGINGSCODE, the exam file's names) and the CKAN datastore's JSON answer, with
/// the same counts, give the same headline; the municipality comes from the address
/// file.
#[tokio::test]
async fn every_layout_gives_the_same_technical_profile_answers() {
    let years = [VO_2022, VO_2023, VO_2024];
    let mut as_published: Vec<(&str, Vec<u8>)> = years.iter().map(|f| (*f, duo_file(f))).collect();
    as_published.push((VO_ADDRESSES, duo_file(VO_ADDRESSES)));
    let mut other_layout: Vec<(&str, Vec<u8>)> = years
        .iter()
        .map(|f| (*f, duo_file(&format!("other-layout/{f}"))))
        .collect();
    other_layout.push((VO_ADDRESSES, duo_file(VO_ADDRESSES)));
    let published = technical_profile_views(&as_published).await;
    let rows = published[0].as_array().expect("rows");
    let regions = rows.iter().filter(|r| r["scope"] == "region").count();
    // Three years, three tracks, for the region.
    assert_eq!(regions, 9, "{}", published[0]);
    assert_eq!(technical_profile_views(&other_layout).await, published);

    // The CKAN answer stands in for the 2024 CSV (its name gives no year: the
    // import's school_year does).
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    for file in [VO_2022, VO_2023, VO_ADDRESSES] {
        assert_eq!(import(addr, ADMIN, file, duo_file(file)).await.0, 200);
    }
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/reference/duo"))
        .bearer_auth(ADMIN)
        .query(&[
            (
                "source",
                "https://onderwijsdata.duo.nl/api/3/action/datastore_search?resource_id=x",
            ),
            ("school_year", "2024/25"),
        ])
        .body(duo_file("ckan-datastore-search-vo-2024.json"))
        .send()
        .await
        .expect("import");
    let answer: Value = response.json().await.expect("JSON");
    assert_eq!(
        (
            answer["format"].as_str(),
            answer["separator"].is_null(),
            answer["suppressed_cells"].as_u64()
        ),
        (Some("ckan-json"), true, Some(77)),
        "{answer}"
    );
    assert_eq!(profile_rows(addr).await, published);

    // Without the address file the pupils have no municipality: national only.
    let without: Vec<(&str, Vec<u8>)> = years.iter().map(|f| (*f, duo_file(f))).collect();
    let national_only = technical_profile_views(&without).await;
    let scopes: std::collections::BTreeSet<&str> = national_only[0]
        .as_array()
        .expect("rows")
        .iter()
        .filter_map(|r| r["scope"].as_str())
        .collect();
    assert_eq!(scopes, ["national"].into());
}
