//! The audit trail: every query, KPI request, export, download, import and refused
//! token is in it once, with the user and the table versions of the answer; only an
//! admin reads it, and no token is written.

mod common;

use common::{
    ADMIN, ANALYST, RESEARCHER, TestLake, VO_2024, duo_file, event, get, import, serve, sql,
};
use serde_json::{Value, json};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_request_is_in_the_trail_once_with_user_and_versions() {
    let lake = TestLake::new();
    lake.add(&[event(
        "group_participated",
        "tec-deventer",
        "2024-10-08T10:00:00+02:00",
        json!({"activity_id": "act-1", "school_brin6": "12AB00", "sector": "PO", "groep": 7,
               "school_year": "2024/25", "participants": {"girls": 12, "boys": 11, "other": 0}}),
    )])
    .await;
    let config = lake.config(256, 30, 10_000);
    let addr = serve(&lake.path(), &config).await;

    let asked = "SELECT count(*) AS classes FROM group_participations";
    let answer = sql(addr, RESEARCHER, "application/json", None, asked).await;
    assert_eq!(answer.status, 200);
    let refused = sql(
        addr,
        RESEARCHER,
        "application/json",
        None,
        "DROP TABLE activities",
    )
    .await;
    assert_eq!(refused.error_code(), "statement_not_allowed");
    let stranger = sql(addr, "not-a-token", "application/json", None, asked).await;
    assert_eq!(stranger.status, 401);
    let (status, kpis) = get(addr, RESEARCHER, "/v1/kpis?year=2024&hub=region").await;
    assert_eq!(status, 200, "{kpis}");
    let export = json!({"sql": "SELECT school_brin6, sum(participants_girls) AS girls FROM group_participations GROUP BY 1",
                        "format": "csv"});
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/exports"))
        .bearer_auth(ANALYST)
        .json(&export)
        .send()
        .await
        .expect("export");
    assert_eq!(response.status().as_u16(), 201);
    let provenance: Value = response.json().await.expect("provenance");
    let export_id = provenance["export_id"].as_str().expect("id").to_string();
    let (status, _) = get(
        addr,
        ANALYST,
        &format!("/v1/exports/{export_id}/provenance"),
    )
    .await;
    assert_eq!(status, 200);
    let (status, imported) = import(addr, ADMIN, VO_2024, duo_file(VO_2024)).await;
    assert_eq!(status, 200, "{imported}");
    // The trail is the admin's to read.
    let (status, denied) = get(addr, RESEARCHER, "/v1/audit").await;
    assert_eq!(
        (status, denied["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );
    let (status, trail) = get(addr, ADMIN, "/v1/audit").await;
    assert_eq!(status, 200, "{trail}");
    let entries = trail["entries"].as_array().expect("entries").clone();

    let find = |action: &str, outcome: &str| -> Vec<Value> {
        entries
            .iter()
            .filter(|e| e["action"] == action && e["outcome"] == outcome)
            .cloned()
            .collect()
    };
    let queries = find("query", "ok");
    assert_eq!(queries.len(), 1, "{entries:?}");
    assert_eq!(queries[0]["user"], "rita");
    assert_eq!(queries[0]["role"], "researcher");
    assert_eq!(queries[0]["sql"], asked);
    assert_eq!(queries[0]["rows"], 1);
    assert_eq!(queries[0]["table_versions"], answer.versions.as_str());
    assert!(
        queries[0]["bytes"]
            .as_u64()
            .is_some_and(|b| b as usize == answer.body.len())
    );
    let not_allowed = find("query", "statement_not_allowed");
    assert_eq!(not_allowed.len(), 1);
    assert_eq!(not_allowed[0]["sql"], "DROP TABLE activities");
    let strangers = find("token_refused", "unauthorized");
    assert_eq!(strangers.len(), 1);
    assert!(strangers[0].get("user").is_none());
    let kpis = find("kpis", "ok");
    assert_eq!(kpis.len(), 1);
    assert!(
        kpis[0]["table_versions"]
            .as_str()
            .is_some_and(|v| v.contains("group_participations="))
    );
    let exports = find("export", "ok");
    assert_eq!(exports.len(), 1);
    assert_eq!(
        (exports[0]["user"].as_str(), exports[0]["sql"].clone()),
        (Some("anna"), export["sql"].clone())
    );
    assert!(
        exports[0]["detail"]
            .as_str()
            .is_some_and(|d| d.contains(&export_id))
    );
    assert!(
        exports[0]["table_versions"]
            .as_str()
            .is_some_and(|v| v.contains("group_participations=")),
        "{}",
        exports[0]
    );
    assert_eq!(find("export_download", "ok").len(), 1);
    let imports = find("import", "ok");
    assert_eq!(imports.len(), 1);
    assert_eq!(imports[0]["user"], "ada");
    assert_eq!(
        imports[0]["table_versions"].as_str(),
        Some(format!("duo_vo_pupils={}", imported["table_version"]).as_str())
    );
    let forbidden = find("forbidden", "forbidden");
    assert_eq!(forbidden.len(), 1, "the researcher asking for the trail");
    assert_eq!(forbidden[0]["user"], "rita");

    // Nothing of a token in the files.
    for file in std::fs::read_dir(lake.audit_folder()).expect("audit folder") {
        let text = std::fs::read_to_string(file.expect("file").path()).expect("text");
        for token in [RESEARCHER, ANALYST, ADMIN, "not-a-token"] {
            assert!(!text.contains(token));
            assert!(!text.contains(&techmon_service::token_sha256(token)));
        }
    }
}
