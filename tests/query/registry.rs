//! The hubs and the KPI targets changed at run time through the admin routes: the
//! query service reads each change at the next query without a restart, and an answer
//! pinned to the versions before a change still reads the list as it was.

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
    WHERE kpi = 'vo_pupils' AND hub_id = 'region' AND year = 2024";

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

    // A hub joins: in the hubs and in the KPI report at once.
    let hub = json!({"hub_id": "techniekpunt-harderwijk", "name": "Techniekpunt Harderwijk",
                     "municipality": "Harderwijk", "first_school_year": "2026/27"});
    let (status, report) =
        change(addr, ADMIN, "/v1/reference/hubs", Change::Json(hub.clone())).await;
    assert_eq!(status, 200, "{report}");
    let (hubs, _) = rows(
        addr,
        None,
        "SELECT municipality, first_school_year, last_school_year FROM hubs WHERE hub_id = 'techniekpunt-harderwijk'",
    )
    .await;
    assert_eq!(
        hubs,
        [
            json!({"municipality": "Harderwijk", "first_school_year": "2026/27", "last_school_year": null})
        ]
    );
    let (reported, _) = rows(
        addr,
        None,
        "SELECT count(*) AS n FROM kpi_report WHERE hub_id = 'techniekpunt-harderwijk'",
    )
    .await;
    assert!(
        reported[0]["n"].as_i64().is_some_and(|n| n > 0),
        "{reported:?}"
    );
    // It retires, by the administrator's command.
    let url = format!("http://{addr}");
    let retired = tokio::task::spawn_blocking(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_techmon"))
            .args(["hubs", "retire", "--id", "techniekpunt-harderwijk"])
            .args([
                "--last-school-year",
                "2027/28",
                "--url",
                &url,
                "--token",
                ADMIN,
            ])
            .output()
            .expect("techmon hubs retire runs")
    })
    .await
    .expect("the command");
    let printed = String::from_utf8_lossy(&retired.stdout);
    assert!(
        retired.status.success() && printed.contains("retired after 2027/28"),
        "{printed} {}",
        String::from_utf8_lossy(&retired.stderr)
    );
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
        Change::Csv("kpi,band,year,target\nvo_pupils,,2024,1\n"),
    )
    .await;
    assert_eq!(status, 403);
    let (unchanged, _) = rows(addr, None, VO_PUPILS_2024).await;
    assert_eq!(unchanged, after);
}
