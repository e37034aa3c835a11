//! Privacy scan: events carrying planted canary values in every personal field go
//! through the whole pipeline (HTTP ingest, event log, transform); no canary appears
//! in any file of the lake, in the service's log output, or in an HTTP answer —
//! including the answers to records that are rejected.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, lake_event_ids, lake_in_folder, start};
use serde_json::{Value, json};
use uuid::Uuid;

const CANARIES: &[&str] = &[
    "Kanarie",             // names
    "kanarie@example.org", // e-mail
    "0612987654",          // phone
    "2011-03-09",          // birth date
    "7413 XK",             // postcode
    "Kanariestraat",       // street address
    "LLN-KANARIE",         // pupil number
    "Vrije tekst kanarie", // free text
];

fn envelope(kind: &str, payload: Value) -> Value {
    json!({"event_id": Uuid::new_v4(), "event_type": kind, "schema_version": 1, "hub_id": "tec-deventer",
           "occurred_at": "2025-02-11T10:00:00+01:00", "sent_at": "2025-02-11T18:00:00+01:00", "payload": payload})
}

fn registration(n: usize) -> Value {
    envelope(
        "participant_registered",
        json!({"participant_ref": format!("ref-{n}"), "name": format!("Anna Kanarie {n}"), "email": "kanarie@example.org",
               "phone": "0612987654", "birth_date": "2011-03-09", "postcode": "7413 XK",
               "street_address": "Kanariestraat 7", "pupil_number": "LLN-KANARIE", "gender": "female",
               "role": "pupil", "consent_research": true, "notes": "Vrije tekst kanarie"}),
    )
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path))
        } else {
            out.push(path)
        }
    }
    out
}

fn assert_clean(what: &str, bytes: &[u8]) {
    for canary in CANARIES {
        let found = bytes
            .windows(canary.len())
            .any(|w| w.eq_ignore_ascii_case(canary.as_bytes()));
        assert!(!found, "canary {canary:?} found in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_reaches_the_lake_the_log_output_or_an_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // The most talkative log level the service has.
    let service = start(
        dir.path(),
        port,
        "embedded",
        "privacy",
        &[("RUST_LOG", "debug")],
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.get(format!("{url}/readyz")).send().await.is_err() {
        assert!(Instant::now() < deadline, "service did not start");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    let mut valid: Vec<Value> = (0..5).map(registration).collect();
    valid.push(envelope(
        "participant_attended",
        json!({"activity_id": "a-1", "participant_ref": "ref-1"}),
    ));
    valid.push(envelope(
        "survey_answered",
        json!({"activity_id": "a-1", "participant_ref": "ref-2", "respondent_role": "pupil", "score": 8, "scale_max": 10,
               "comment": "Vrije tekst kanarie"}),
    ));
    valid.push(envelope(
        "ambassador_committed",
        json!({"ambassador_ref": "amb-1", "name": "Kanarie Bakker", "email": "kanarie@example.org", "organisation_name": "Bakkerij"}),
    ));
    // Rejected records with canaries in every kind of wrong place.
    let mut wrong_type = registration(90);
    wrong_type["payload"]["gender"] = json!("kanarie@example.org");
    let mut bad_format = registration(91);
    bad_format["payload"]["birth_date"] = json!("Kanarie 2011-03-09");
    bad_format["payload"]["postcode"] = json!("Kanariestraat");
    // Field names are echoed (a hub must learn which field is wrong), values never.
    let mut unknown_field = registration(92);
    unknown_field["payload"]["favourite_street"] = json!("Kanariestraat 0612987654");
    let mut other_hub = registration(93);
    other_hub["hub_id"] = json!("newtechpark");
    let invalid = [wrong_type, bad_format, unknown_field, other_hub];

    let mut answers = Vec::new();
    let body: String = valid
        .iter()
        .chain(&invalid)
        .map(|e| format!("{e}\n"))
        .collect();
    let answer = client
        .post(format!("{url}/v1/events"))
        .bearer_auth("dev-token-tec-deventer")
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("push");
    answers.push(answer.text().await.expect("answer"));
    let csv = "event_id,hub_id,occurred_at,sent_at,participant_ref,name,email,gender,role,consent_research\n\
               6f1d8a52-0f4e-4b8e-a7a3-0c9f0e6b2d99,tec-deventer,2025-02-11T10:00:00+01:00,2025-02-11T18:00:00+01:00,r,Kanarie,kanarie@example.org,Kanariestraat,pupil,0612987654\n";
    let answer = client
        .post(format!("{url}/v1/feeds/participant_registered"))
        .bearer_auth("dev-token-tec-deventer")
        .body(csv)
        .send()
        .await
        .expect("push csv");
    answers.push(answer.text().await.expect("answer"));
    let parsed: Value = serde_json::from_str(&answers[0]).expect("json answer");
    assert_eq!(
        (parsed["accepted"].as_u64(), parsed["rejected"].as_u64()),
        (Some(8), Some(4)),
        "{}",
        answers[0]
    );

    // Wait for the transform.
    let lake = dir.path().join("techmon-data/lake");
    let location = lake_in_folder(dir.path());
    let tables = [
        "participants",
        "attendances",
        "survey_answers",
        "ambassadors",
    ];
    while lake_event_ids(&location, &tables).await.len() < valid.len() {
        assert!(
            Instant::now() < deadline + Duration::from_secs(40),
            "the transform did not catch up"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = client
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    drop(service);
    for metric in [
        "techmon_ingest_records_accepted_total 8",
        "techmon_transform_rows_written_total",
        "techmon_transform_lag_events",
    ] {
        assert!(
            metrics.contains(metric),
            "{metric} missing from /metrics:\n{metrics}"
        );
    }
    assert_clean("the metrics", metrics.as_bytes());

    let files = files_under(&lake);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "parquet"))
    );
    for file in files {
        assert_clean(
            &file.display().to_string(),
            &std::fs::read(&file).expect("read"),
        );
    }
    let log = std::fs::read(dir.path().join("serve.log")).expect("serve.log");
    assert!(log.len() > 100, "the service logged at debug level");
    assert_clean("the service's log output", &log);
    for answer in &answers {
        assert_clean("an HTTP answer", answer.as_bytes());
    }
}
