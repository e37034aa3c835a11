//! The regions, hubs and KPI targets changed at run time through the admin routes and
//! commands: the query service reads each change at the next query without a
//! restart, and an answer pinned to the versions before a change still reads the list
//! as it was.

mod common;

use common::{ADMIN, ANALYST, RESEARCHER, TestLake, serve, sql};
use serde_json::{Value, json};

/// An admin request; the status and the JSON answer.
async fn change(addr: std::net::SocketAddr, token: &str, path: &str, body: Change) -> (u16, Value) {
    let request = reqwest::Client::new()
        .post(format!("http://{addr}{path}"))
        .bearer_auth(token);
    let request = match body {
        Change::Json(value) => request.json(&value),
        Change::Csv(text) => request.header("content-type", "text/csv").body(text),
    };
    let response = request.send().await.expect("an answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

enum Change {
    Json(Value),
    Csv(&'static str),
}

/// The rows of an analyst's answer (row-level: no output control), and the versions
/// it names.
async fn rows(addr: std::net::SocketAddr, pins: Option<&str>, query: &str) -> (Vec<Value>, String) {
    let reply = sql(addr, ANALYST, "application/json", pins, query).await;
    assert_eq!(
        reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&reply.body)
    );
    let answer: Value = serde_json::from_slice(&reply.body).expect("JSON");
    (
        answer["rows"].as_array().cloned().unwrap_or_default(),
        reply.versions,
    )
}

const VO_PUPILS_2024: &str = "SELECT target, met FROM kpi_report \
    WHERE kpi = 'vo_pupils' AND hub_id = 'region' AND region_id = 'cleantech-regio' AND year = 2024";

#[tokio::test]
async fn targets_and_hubs_change_without_a_restart_and_pins_keep_the_old_ones() {
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;

    // As built in: seed 003's target of 100 VO pupils in 2024, not met without any.
    let (before, versions) = rows(addr, None, VO_PUPILS_2024).await;
    assert_eq!(before, [json!({"target": 100.0, "met": false})]);
    assert!(versions.contains("kpi_targets="), "{versions}");

    let (status, report) = change(
        addr,
        ADMIN,
        "/v1/reference/kpi_targets",
        Change::Csv("kpi;band;year;target\nvo_pupils;;2024;0\nsatisfaction;;2027;8,5\n"),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    assert_eq!(report["table"], "kpi_targets");
    let (after, _) = rows(addr, None, VO_PUPILS_2024).await;
    assert_eq!(after, [json!({"target": 0.0, "met": true})]);
    let (added, _) = rows(
        addr,
        None,
        "SELECT target, changed_by FROM kpi_targets WHERE kpi = 'satisfaction' AND year = 2027",
    )
    .await;
    assert_eq!(added, [json!({"target": 8.5, "changed_by": "ada"})]);
    // Pinned to the versions before the change: the old target.
    let (pinned, _) = rows(addr, Some(&versions), VO_PUPILS_2024).await;
    assert_eq!(pinned, before);

    // A second region joins, by the administrator's command, with a KPI set of its
    // own; then a hub in it.
    let region = admin(
        addr,
        &[
            "regions",
            "add",
            "--id",
            "noord-veluwe",
            "--name",
            "Noord-Veluwe",
            "--municipalities",
            "Harderwijk,Elburg,Ermelo,Nunspeet,Oldebroek,Putten",
        ],
    )
    .await;
    assert!(region.contains("region noord-veluwe added"), "{region}");
    let hub = json!({"hub_id": "techniekpunt-harderwijk", "name": "Techniekpunt Harderwijk",
                     "municipality": "Harderwijk", "region_id": "noord-veluwe",
                     "first_school_year": "2026/27"});
    let (status, report) =
        change(addr, ADMIN, "/v1/reference/hubs", Change::Json(hub.clone())).await;
    assert_eq!(status, 200, "{report}");
    let (hubs, _) = rows(
        addr,
        None,
        "SELECT municipality, region_id, first_school_year, last_school_year FROM hubs WHERE hub_id = 'techniekpunt-harderwijk'",
    )
    .await;
    assert_eq!(
        hubs,
        [
            json!({"municipality": "Harderwijk", "region_id": "noord-veluwe", "first_school_year": "2026/27", "last_school_year": null})
        ]
    );
    // The region's KPI set is the KPIs it has targets (or empty ones) of; the hub has
    // one target of its own.
    let (status, report) = change(
        addr,
        ADMIN,
        "/v1/reference/kpi_targets",
        Change::Csv(
            "region_id,hub_id,kpi,band,year,target
             noord-veluwe,,vo_pupils,,2024,30
             noord-veluwe,,mbo_students,,2024,
             noord-veluwe,techniekpunt-harderwijk,vo_pupils,,2024,10
",
        ),
    )
    .await;
    assert_eq!(status, 200, "{report}");
    let (reported, _) = rows(
        addr,
        None,
        "SELECT hub_id, region_id, kpi, target FROM kpi_report \
         WHERE year = 2024 AND (region_id = 'noord-veluwe' OR region_id IS NULL) ORDER BY hub_id, kpi",
    )
    .await;
    assert_eq!(
        reported,
        [
            json!({"hub_id": "region", "region_id": "noord-veluwe", "kpi": "mbo_students", "target": null}),
            json!({"hub_id": "region", "region_id": "noord-veluwe", "kpi": "vo_pupils", "target": 30.0}),
        ]
        .into_iter()
        .chain(
            // All regions together: every KPI of either set, without targets.
            ["affiliated_organisations", "ambassadors", "mbo_students", "parents"]
                .into_iter()
                .chain(std::iter::repeat_n("po_participation_share", 3))
                .chain([
                    "satisfaction",
                    "teachers_professionalised",
                    "technical_profile_change_vs_2022",
                    "vo_pupils",
                ])
                .map(|kpi| json!({"hub_id": "regions", "region_id": null, "kpi": kpi, "target": null}))
        )
        .chain([
            json!({"hub_id": "techniekpunt-harderwijk", "region_id": "noord-veluwe", "kpi": "mbo_students", "target": null}),
            json!({"hub_id": "techniekpunt-harderwijk", "region_id": "noord-veluwe", "kpi": "vo_pupils", "target": 10.0}),
        ])
        .collect::<Vec<_>>()
    );
    // A target from a TOML file, by the administrator's command.
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("noord-veluwe.toml");
    std::fs::write(
        &file,
        "region_id = \"noord-veluwe\"\n\
         [[targets]]\nhub_id = \"techniekpunt-harderwijk\"\nkpi = \"mbo_students\"\nyear = 2024\ntarget = 5\n",
    )
    .expect("the file");
    let imported = admin(addr, &["targets", "import", &file.to_string_lossy()]).await;
    assert!(imported.contains("1 target(s) set"), "{imported}");
    let (own, _) = rows(
        addr,
        None,
        "SELECT target FROM kpi_report WHERE kpi = 'mbo_students' AND year = 2024 \
         AND hub_id = 'techniekpunt-harderwijk'",
    )
    .await;
    assert_eq!(own, [json!({"target": 5.0})]);

    // A token issued to the hub while the service runs asks as the hub: its own
    // rows and its region's, not another region's or hub's.
    let (status, issued) = change(
        addr,
        ADMIN,
        "/v1/reference/hubs/techniekpunt-harderwijk/tokens",
        Change::Json(json!(null)),
    )
    .await;
    assert_eq!(status, 200, "{issued}");
    let token = issued["token"].as_str().expect("a token").to_string();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let kpis = loop {
        let response = reqwest::Client::new()
            .get(format!("http://{addr}/v1/kpis?year=2024"))
            .bearer_auth(&token)
            .send()
            .await
            .expect("an answer");
        if response.status() == 200 {
            break response.json::<Value>().await.expect("JSON");
        }
        assert_eq!(response.status(), 401, "before the registry is read again");
        assert!(
            std::time::Instant::now() < deadline,
            "the issued token is never taken"
        );
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    };
    let scopes: std::collections::BTreeSet<(String, String)> = kpis["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| {
            (
                r["hub_id"].as_str().unwrap_or("").to_string(),
                r["region_id"].as_str().unwrap_or("").to_string(),
            )
        })
        .collect();
    assert_eq!(
        scopes,
        [
            ("region", "noord-veluwe"),
            ("regions", ""),
            ("techniekpunt-harderwijk", "noord-veluwe")
        ]
        .map(|(h, r)| (h.to_string(), r.to_string()))
        .into(),
        "{kpis}"
    );
    let other = reqwest::Client::new()
        .get(format!("http://{addr}/v1/kpis?hub=tec-deventer"))
        .bearer_auth(&token)
        .send()
        .await
        .expect("an answer");
    assert_eq!(other.status(), 403);

    // The Cleantech Regio keeps its own set and targets.
    let (cleantech, _) = rows(addr, None, VO_PUPILS_2024).await;
    assert_eq!(cleantech, after);

    // It retires, by the administrator's command.
    let retired = admin(
        addr,
        &[
            "hubs",
            "retire",
            "--id",
            "techniekpunt-harderwijk",
            "--last-school-year",
            "2027/28",
        ],
    )
    .await;
    assert!(retired.contains("retired after 2027/28"), "{retired}");
    let (retired, _) = rows(
        addr,
        None,
        "SELECT last_school_year, changed_by FROM hubs WHERE hub_id = 'techniekpunt-harderwijk'",
    )
    .await;
    assert_eq!(
        retired,
        [json!({"last_school_year": "2027/28", "changed_by": "ada"})]
    );

    // What cannot be done is refused with the reason, and changes nothing.
    for (path, body, reason) in [
        ("/v1/reference/hubs", Change::Json(hub), "known already"),
        (
            "/v1/reference/hubs",
            Change::Json(
                json!({"hub_id": "techlab-elburg", "name": "Techlab Elburg", "municipality": "Elburg"}),
            ),
            "name the region",
        ),
        (
            "/v1/reference/hubs",
            Change::Json(
                json!({"hub_id": "techlab-zwolle", "name": "Techlab Zwolle", "municipality": "Zwolle", "region_id": "noord-veluwe"}),
            ),
            "Zwolle is not one of region noord-veluwe's municipalities",
        ),
        (
            "/v1/reference/regions",
            Change::Json(
                json!({"region_id": "noord-veluwe", "name": "Noord-Veluwe", "municipalities": ["Ermelo"]}),
            ),
            "region noord-veluwe is known already",
        ),
        (
            "/v1/reference/kpi_targets",
            Change::Csv(
                "region_id,hub_id,kpi,band,year,target\ncleantech-regio,techniekpunt-harderwijk,vo_pupils,,2024,3\n",
            ),
            "hub techniekpunt-harderwijk is not in region cleantech-regio",
        ),
        (
            "/v1/reference/kpi_targets",
            Change::Csv("kpi,band,year,target\nvo_pupils,,2024,3\n"),
            "name the region",
        ),
        (
            "/v1/reference/hubs",
            Change::Json(json!({"hub_id": "Hub One", "name": "x", "municipality": "y"})),
            "lower-case",
        ),
        (
            "/v1/reference/hubs/no-such-hub/retire",
            Change::Json(json!({"last_school_year": "2027/28"})),
            "no hub no-such-hub",
        ),
        (
            "/v1/reference/kpi_targets",
            Change::Csv("kpi,band,year,target\nhappiness,,2024,3\n"),
            "no KPI happiness",
        ),
        (
            "/v1/reference/kpi_targets",
            Change::Csv("kpi,band,year,target\nvo_pupils,,soon,3\n"),
            "line 2, year",
        ),
    ] {
        let (status, answer) = change(addr, ADMIN, path, body).await;
        assert_eq!(status, 400, "{path}: {answer}");
        assert_eq!(answer["error"]["code"], "bad_change", "{answer}");
        let message = answer["error"]["message"].as_str().unwrap_or("");
        assert!(message.contains(reason), "{message}");
    }
    let (status, _) = change(
        addr,
        RESEARCHER,
        "/v1/reference/kpi_targets",
        Change::Csv("region_id,kpi,band,year,target\ncleantech-regio,vo_pupils,,2024,1\n"),
    )
    .await;
    assert_eq!(status, 403);
    let (unchanged, _) = rows(addr, None, VO_PUPILS_2024).await;
    assert_eq!(unchanged, after);
}

/// Runs `techmon` with `args` against the service at `addr` as the admin; what it
/// printed, once it succeeded.
async fn admin(addr: std::net::SocketAddr, args: &[&str]) -> String {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string())
        .chain([
            "--url".into(),
            format!("http://{addr}"),
            "--token".into(),
            ADMIN.into(),
        ])
        .collect();
    let output = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_techmon"))
            .args(&args)
            .output()
            .expect("techmon runs")
    })
    .await
    .expect("the command");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}
