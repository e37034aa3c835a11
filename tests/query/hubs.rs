//! Hubs see their own numbers: with the token it pushes with, a hub asks SQL and the
//! KPI report of its own rows only, through every table, view and join, and gets the
//! region's KPI totals beside its own; nothing of another hub's.

mod common;

use common::{RESEARCHER, TestLake, event, get, serve_with_hubs, sql};
use serde_json::{Value, json};

const DEVENTER: &str = "hub-token-of-tec-deventer";

fn group(hub: &str, activity: &str, girls: u32) -> Value {
    event(
        "group_participated",
        hub,
        "2024-10-08T10:00:00+02:00",
        json!({"activity_id": activity, "school_brin6": "12AB00", "sector": "VO", "leerjaar": 2,
               "onderwijstype": "havo", "school_year": "2024/25",
               "participants": {"girls": girls, "boys": 10, "other": 0}}),
    )
}

fn activity(hub: &str, id: &str) -> Value {
    event(
        "activity_held",
        hub,
        "2024-10-08T10:00:00+02:00",
        json!({"activity_id": id, "activity_type": "workshop", "title": "Solderen",
               "starts_at": "2024-10-08T10:00:00+02:00", "ends_at": "2024-10-08T12:00:00+02:00",
               "worlds": [6], "target_groups": ["vo"]}),
    )
}

/// The first column of every row, as text.
fn column(reply: &common::Reply) -> Vec<String> {
    let answer = reply.json();
    let rows = answer["rows"].as_array().cloned().unwrap_or_default();
    rows.iter()
        .map(|r| {
            let first = r.as_object().and_then(|o| o.values().next()).cloned();
            match first {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => String::new(),
            }
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_sees_its_own_rows_through_every_path() {
    let lake = TestLake::new();
    lake.add(&[
        activity("tec-deventer", "act-d"),
        activity("newtechpark", "act-n"),
        group("tec-deventer", "act-d", 12),
        group("newtechpark", "act-n", 30),
        // An activity id both hubs use: a join on it must not reach the other's rows.
        group("newtechpark", "act-d", 7),
    ])
    .await;
    let config = lake.config(256, 30, 10_000);
    let addr = serve_with_hubs(&lake.path(), &config, &[("tec-deventer", DEVENTER)]).await;
    let ask = |token: &'static str, query: &'static str| async move {
        let reply = sql(addr, token, "application/json", None, query).await;
        assert_eq!(
            reply.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&reply.body)
        );
        let mut values = column(&reply);
        values.sort();
        values
    };
    for query in [
        "SELECT DISTINCT hub_id FROM group_participations",
        "SELECT DISTINCT hub_id FROM activities",
        "SELECT DISTINCT hub_id FROM activities_per_month",
        "SELECT DISTINCT hub_id FROM reach",
        "SELECT DISTINCT hub_id FROM kpi_report",
        "SELECT DISTINCT g.hub_id FROM group_participations g JOIN activities a ON g.activity_id = a.activity_id",
        "SELECT DISTINCT a.hub_id FROM group_participations g JOIN activities a ON g.activity_id = a.activity_id",
        "WITH every AS (SELECT hub_id FROM group_participations UNION ALL SELECT hub_id FROM activities) \
         SELECT DISTINCT hub_id FROM every",
    ] {
        assert_eq!(ask(DEVENTER, query).await, ["tec-deventer"], "{query}");
    }
    assert_eq!(
        ask(
            DEVENTER,
            "SELECT count(*) AS n FROM group_participations WHERE hub_id = 'newtechpark'"
        )
        .await,
        ["0"]
    );
    assert_eq!(
        ask(
            DEVENTER,
            "SELECT sum(participants_girls) AS girls FROM group_participations"
        )
        .await,
        ["12"]
    );
    // A researcher sees both.
    assert_eq!(
        ask(
            RESEARCHER,
            "SELECT DISTINCT hub_id FROM group_participations"
        )
        .await,
        ["newtechpark", "tec-deventer"]
    );

    // The KPI report: its own rows and the region's, the region's as the researcher's.
    let (status, mine) = get(addr, DEVENTER, "/v1/kpis?year=2024").await;
    assert_eq!(status, 200, "{mine}");
    let rows = mine["rows"].as_array().expect("rows").clone();
    assert!(
        rows.iter()
            .all(|r| r["hub_id"] == "tec-deventer" || r["hub_id"] == "region")
    );
    assert!(rows.iter().any(|r| r["hub_id"] == "region"));
    let (_, everyone) = get(addr, RESEARCHER, "/v1/kpis?year=2024&hub=region").await;
    let region = |rows: &[Value], kpi: &str| -> Value {
        rows.iter()
            .find(|r| r["hub_id"] == "region" && r["kpi"] == kpi)
            .map(|r| r["actual"].clone())
            .unwrap_or(Value::Null)
    };
    let all_rows = everyone["rows"].as_array().expect("rows").clone();
    assert_eq!(region(&rows, "vo_pupils"), region(&all_rows, "vo_pupils"));
    assert!(
        region(&rows, "vo_pupils")
            .as_f64()
            .is_some_and(|n| n > 22.0)
    );
    let (status, other) = get(addr, DEVENTER, "/v1/kpis?hub=newtechpark").await;
    assert_eq!(
        (status, other["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    // Who it is, for the dashboard to open on its own hub.
    let (status, me) = get(addr, DEVENTER, "/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(
        (me["role"].as_str(), me["hub"].as_str()),
        (Some("hub"), Some("tec-deventer"))
    );
    // Nothing an analyst or admin may do.
    let export = reqwest::Client::new()
        .post(format!("http://{addr}/v1/exports"))
        .bearer_auth(DEVENTER)
        .json(&json!({"sql": "SELECT 1 AS n", "format": "csv"}))
        .send()
        .await
        .expect("export");
    assert_eq!(export.status().as_u16(), 403);
    assert_eq!(get(addr, DEVENTER, "/v1/audit").await.0, 403);
    // Its queries are in the trail under its name.
    let (_, trail) = get(addr, common::ADMIN, "/v1/audit?user=hub:tec-deventer").await;
    let entries = trail["entries"].as_array().expect("entries");
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "query" && e["role"] == "hub")
    );
    assert!(
        entries
            .iter()
            .any(|e| e["action"] == "forbidden" && e["detail"] == "Export")
    );
}
