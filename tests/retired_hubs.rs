//! A hub an administrator retires while techmon serves: its events of later school
//! years are refused with the reason, its earlier ones still taken, without a restart.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// An activity of techniekbrouwerij held at `at`.
fn activity(at: &str, ends: &str) -> Value {
    json!({"event_id": uuid::Uuid::new_v4(), "event_type": "activity_held", "schema_version": 1,
           "hub_id": "techniekbrouwerij", "occurred_at": at, "sent_at": at,
           "payload": {"activity_id": uuid::Uuid::new_v4().to_string(), "activity_type": "workshop",
                       "title": "Solderen", "starts_at": at, "ends_at": ends,
                       "worlds": [6], "target_groups": ["vo"]}})
}

async fn push(client: &reqwest::Client, url: &str, event: &Value) -> Value {
    client
        .post(format!("{url}/v1/events"))
        .bearer_auth("dev-token-techniekbrouwerij")
        .json(&json!([event]))
        .send()
        .await
        .expect("ingest answers")
        .json()
        .await
        .expect("a JSON answer")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retired_hubs_later_events_are_refused_without_a_restart() {
    let (_dir, _service, url) =
        common::serve_ready(&[("TECHMON__LAKE__REGISTRY_REFRESH_SECONDS", "1")]).await;
    let client = reqwest::Client::new();
    let (earlier, later) = (
        ("2024-10-01T13:00:00+02:00", "2024-10-01T15:00:00+02:00"),
        ("2025-10-01T13:00:00+02:00", "2025-10-01T15:00:00+02:00"),
    );
    let answer = push(&client, &url, &activity(later.0, later.1)).await;
    assert_eq!(answer["accepted"], 1, "{answer}");

    let retired = client
        .post(format!("{url}/v1/reference/hubs/techniekbrouwerij/retire"))
        .bearer_auth("dev-token-admin")
        .json(&json!({"last_school_year": "2024/25"}))
        .send()
        .await
        .expect("the admin route answers");
    assert_eq!(retired.status(), 200);

    // Ingest reads the hubs again every second.
    let deadline = Instant::now() + Duration::from_secs(30);
    let refused = loop {
        let answer = push(&client, &url, &activity(later.0, later.1)).await;
        if answer["rejected"] == 1 {
            break answer;
        }
        assert!(Instant::now() < deadline, "still taken: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let error = &refused["results"][0]["errors"][0];
    assert_eq!(error["field"], "/hub_id", "{refused}");
    let reason = error["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("retired after school year 2024/25") && reason.contains("2025/26"),
        "{reason}"
    );
    let answer = push(&client, &url, &activity(earlier.0, earlier.1)).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
}
