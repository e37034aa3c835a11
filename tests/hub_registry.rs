//! Hubs joining and leaving while techmon serves: a hub an administrator adds gets a
//! token that ingest takes, and a hub retired has its events of later school years
//! refused with the reason, its earlier ones still taken; no restart.

mod common;

use std::time::{Duration, Instant};

use serde_json::{Value, json};

const HUB: &str = "techniekpunt-voorst";

/// An activity of `HUB` held at `at` for two hours.
fn activity(at: (&str, &str)) -> Value {
    json!({"event_id": uuid::Uuid::new_v4(), "event_type": "activity_held", "schema_version": 1,
           "hub_id": HUB, "occurred_at": at.0, "sent_at": at.0,
           "payload": {"activity_id": uuid::Uuid::new_v4().to_string(), "activity_type": "workshop",
                       "title": "Solderen", "starts_at": at.0, "ends_at": at.1,
                       "worlds": [6], "target_groups": ["vo"]}})
}

/// Pushes `event` with `token`: the status and the answer.
async fn push(client: &reqwest::Client, url: &str, token: &str, event: &Value) -> (u16, Value) {
    let response = client
        .post(format!("{url}/v1/events"))
        .bearer_auth(token)
        .json(&json!([event]))
        .send()
        .await
        .expect("ingest answers");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// Runs `techmon` with `args` against `url` as the admin; its standard output.
async fn admin(url: &str, args: &[&str]) -> String {
    let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_techmon"));
    command
        .args(args)
        .args(["--url", url, "--token", "dev-token-admin"]);
    let output = tokio::task::spawn_blocking(move || command.output().expect("techmon runs"))
        .await
        .expect("the command");
    assert!(
        output.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Pushes `event` until `done` says the answer is the one waited for (ingest reads the
/// registry again every second here), for at most 30 seconds.
async fn until(
    client: &reqwest::Client,
    url: &str,
    token: &str,
    event: impl Fn() -> Value,
    done: impl Fn(u16, &Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (status, answer) = push(client, url, token, &event()).await;
        if done(status, &answer) {
            return answer;
        }
        assert!(Instant::now() < deadline, "still {status}: {answer}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hub_joins_and_retires_without_a_restart() {
    let (_dir, _service, url) =
        common::serve_ready(&[("TECHMON__LAKE__REGISTRY_REFRESH_SECONDS", "1")]).await;
    let client = reqwest::Client::new();
    let earlier = ("2024-10-01T13:00:00+02:00", "2024-10-01T15:00:00+02:00");
    let later = ("2025-10-01T13:00:00+02:00", "2025-10-01T15:00:00+02:00");

    // A token for a hub that is not there is refused.
    let refused = std::process::Command::new(env!("CARGO_BIN_EXE_techmon"))
        .args(["hubs", "token", "--id", HUB, "--url", &url])
        .args(["--token", "dev-token-admin"])
        .output()
        .expect("techmon runs");
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("no hub"));

    admin(
        &url,
        &[
            "hubs",
            "add",
            "--id",
            HUB,
            "--name",
            "Techniekpunt Voorst",
            "--municipality",
            "Voorst",
        ],
    )
    .await;
    let printed = admin(&url, &["hubs", "token", "--id", HUB]).await;
    let token = printed
        .lines()
        .find_map(|l| l.strip_prefix("token (shown this once; give it to the hub): "))
        .expect("the token is printed")
        .to_string();
    // The new hub's events are taken with its token once ingest has read it.
    let accepted = until(
        &client,
        &url,
        &token,
        || activity(later),
        |status, _| status == 200,
    )
    .await;
    assert_eq!(accepted["accepted"], 1, "{accepted}");

    admin(
        &url,
        &[
            "hubs",
            "retire",
            "--id",
            HUB,
            "--last-school-year",
            "2024/25",
        ],
    )
    .await;
    let refused = until(
        &client,
        &url,
        &token,
        || activity(later),
        |_, answer| answer["rejected"] == 1,
    )
    .await;
    let error = &refused["results"][0]["errors"][0];
    assert_eq!(error["field"], "/hub_id", "{refused}");
    let reason = error["reason"].as_str().unwrap_or("");
    assert!(
        reason.contains("retired after school year 2024/25") && reason.contains("2025/26"),
        "{reason}"
    );
    let (_, answer) = push(&client, &url, &token, &activity(earlier)).await;
    assert_eq!(answer["accepted"], 1, "{answer}");
}
