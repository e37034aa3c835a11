//! Helpers of the end-to-end tests: a `techmon serve` child process, and the lake
//! read back with DataFusion.
#![allow(dead_code)] // each test binary uses its own part

use std::collections::HashSet;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use deltalake::arrow::array::{Array, AsArray};
use serde_json::{Value, json};
use techmon_ingest::{PushAnswer, RecordStatus};
use techmon_lake::{LakeLocation, StorageOptions};
use uuid::Uuid;

/// The hub whose token [`push_until`] pushes with.
pub const TOKEN: &str = "dev-token-tec-deventer";
/// The tables the events of [`push_until`] land in.
pub const PUSHED_TABLES: [&str; 3] = ["group_participations", "activities", "survey_answers"];

pub struct Service {
    pub child: Child,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A loopback port nothing listens on (yet).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .expect("bind")
        .local_addr()
        .expect("addr")
        .port()
}

/// Starts `techmon serve` in `dir` on `port`, with `env` over the test defaults; its
/// log (stderr) is appended to `dir/serve.log`.
pub fn start(dir: &Path, port: u16, backend: &str, topic: &str, env: &[(&str, &str)]) -> Service {
    let mut command = Command::new(env!("CARGO_BIN_EXE_techmon"));
    command
        .arg("serve")
        .current_dir(dir)
        .env("TECHMON__INGEST__LISTEN", format!("127.0.0.1:{port}"))
        .env("TECHMON__LOG__BACKEND", backend)
        .env("TECHMON__LOG__TOPIC", topic)
        .env("TECHMON__TRANSFORM__MAX_RECORDS_PER_PARTITION", "200")
        // Rounds of four passes, and passes read ahead, also when killed.
        .env("TECHMON__TRANSFORM__RECORDS_PER_READ", "50")
        .env("TECHMON__TRANSFORM__POLL_INTERVAL_MS", "20")
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(dir.join("serve.log"))
                .expect("serve.log"),
        );
    if let Ok(brokers) = std::env::var("TECHMON_KAFKA_BROKERS") {
        command.env("TECHMON__LOG__KAFKA__BROKERS", brokers);
    }
    for (key, value) in env {
        command.env(key, value);
    }
    Service {
        child: command.spawn().expect("start techmon serve"),
    }
}

/// A lake under a new prefix of the bucket that `.ci/test` makes on its S3-compatible
/// service: the lake's location, and the environment that points `techmon serve` at
/// it (the endpoint through the configuration, the credentials as AWS's variables).
pub fn lake_in_bucket() -> (LakeLocation, Vec<(String, String)>) {
    let endpoint = std::env::var("TECHMON_S3_ENDPOINT")
        .expect("TECHMON_S3_ENDPOINT names the S3-compatible test service (.ci/test starts one)");
    let lake = format!("s3://techmon-test/{}/lake", uuid::Uuid::new_v4());
    let storage = [
        ("aws_endpoint", endpoint.as_str()),
        ("aws_allow_http", "true"),
    ];
    let credentials = [
        ("aws_access_key_id", "techmon-test"),
        ("aws_secret_access_key", "techmon-test"),
        ("aws_region", "us-east-1"),
    ];
    let location = LakeLocation::new(
        &lake,
        StorageOptions(
            storage
                .iter()
                .chain(&credentials)
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        ),
    )
    .expect("a bucket URL");
    let env = storage
        .iter()
        .map(|(k, v)| {
            let key = format!("TECHMON__LAKE__STORAGE__{}", k.to_uppercase());
            (key, v.to_string())
        })
        .chain(
            credentials
                .iter()
                .map(|(k, v)| (k.to_uppercase(), v.to_string())),
        )
        .chain([("TECHMON__LAKE__URL".to_string(), lake)])
        .collect();
    (location, env)
}

/// The lake of `techmon serve` started in `dir` with the default configuration.
pub fn lake_in_folder(dir: &Path) -> LakeLocation {
    let lake = dir.join("techmon-data/lake");
    LakeLocation::new(&lake.to_string_lossy(), StorageOptions::default()).expect("a folder")
}

/// The event ids of these lake tables, as stored (duplicates included).
pub async fn lake_event_ids(lake: &LakeLocation, tables: &[&str]) -> Vec<String> {
    let mut ids = Vec::new();
    for table in tables {
        let Ok(delta) = lake.open(table).await else {
            continue;
        };
        if delta.version().is_none() {
            continue;
        }
        let batches = techmon_lake::session_over(&delta, "t")
            .await
            .expect("session")
            .sql("SELECT event_id FROM t")
            .await
            .expect("sql")
            .collect()
            .await
            .expect("collect");
        for batch in batches {
            let column = deltalake::arrow::compute::cast(
                batch.column(0),
                &deltalake::arrow::datatypes::DataType::Utf8,
            )
            .expect("event ids as text");
            let column = column.as_string::<i32>();
            ids.extend((0..column.len()).map(|i| column.value(i).to_string()));
        }
    }
    ids
}

pub fn event(n: usize) -> Value {
    let (kind, payload) = match n % 3 {
        0 => (
            "group_participated",
            json!({"activity_id": format!("a-{}", n % 11), "school_brin6": "12AB00", "sector": "PO", "groep": 1 + n % 8,
                   "school_year": "2024/25", "participants": {"girls": 9, "boys": 8}}),
        ),
        1 => (
            "activity_held",
            json!({"activity_id": format!("a-{n}"), "activity_type": "workshop", "title": "Solderen",
                   "starts_at": "2024-11-05T13:00:00+01:00", "ends_at": "2024-11-05T15:00:00+01:00",
                   "worlds": [6], "target_groups": ["vo"]}),
        ),
        _ => (
            "survey_answered",
            json!({"activity_id": format!("a-{}", n % 11), "respondent_role": "pupil", "score": 4, "scale_max": 5}),
        ),
    };
    json!({"event_id": Uuid::new_v4(), "event_type": kind, "schema_version": 1, "hub_id": "tec-deventer",
           "occurred_at": "2024-11-05T13:00:00+01:00", "sent_at": "2024-11-05T18:00:00+01:00", "payload": payload})
}

/// How long one batch may go unanswered before the test gives up (a service that
/// never comes back would otherwise keep the pusher re-sending forever).
const UNANSWERED_LIMIT: Duration = Duration::from_secs(90);

/// Pushes batches until `stop`, re-sending a batch until it is answered; returns the
/// ids the service acknowledged (accepted, or duplicate of an earlier acceptance), or
/// the last failure once a batch went unanswered for `UNANSWERED_LIMIT`.
pub async fn push_until(
    url: String,
    stop: tokio::sync::watch::Receiver<bool>,
) -> Result<HashSet<String>, String> {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let mut acknowledged = HashSet::new();
    let mut n = 0;
    while !*stop.borrow() {
        let batch: Vec<Value> = (0..40).map(|i| event(n + i)).collect();
        n += batch.len();
        let body: String = batch.iter().map(|e| format!("{e}\n")).collect();
        let first_try = Instant::now();
        loop {
            let sent = client
                .post(format!("{url}/v1/events"))
                .bearer_auth(TOKEN)
                .header("content-type", "application/x-ndjson")
                .body(body.clone())
                .send()
                .await;
            let answer = match sent {
                Ok(response) if response.status().is_success() => response
                    .json::<PushAnswer>()
                    .await
                    .map_err(|e| format!("unreadable answer: {e}")),
                Ok(response) => Err(format!(
                    "{}: {}",
                    response.status(),
                    response.text().await.unwrap_or_default()
                )),
                Err(e) => Err(e.to_string()),
            };
            match answer {
                Ok(answer) => {
                    for result in answer.results {
                        assert_ne!(result.status, RecordStatus::Rejected, "{:?}", result.errors);
                        acknowledged.insert(result.event_id.expect("id").to_string());
                    }
                    break;
                }
                Err(last) if first_try.elapsed() > UNANSWERED_LIMIT => {
                    return Err(format!(
                        "a batch went unanswered for {UNANSWERED_LIMIT:?}; last: {last}"
                    ));
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(50)).await,
            }
        }
    }
    Ok(acknowledged)
}

/// `techmon serve` on the embedded log in a new folder, with `env`, once it is ready:
/// the folder, the process, and its URL.
pub async fn serve_ready(env: &[(&str, &str)]) -> (tempfile::TempDir, Service, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let service = start(dir.path(), port, "embedded", "techmon.events", env);
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url, dir.path()).await;
    (dir, service, url)
}

/// Waits until the service at `url` answers `/readyz` with success, for a minute;
/// fails with its log (in `dir`) otherwise.
pub async fn wait_ready(url: &str, dir: &Path) {
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while !client
        .get(format!("{url}/readyz"))
        .send()
        .await
        .is_ok_and(|r| r.status().is_success())
    {
        assert!(Instant::now() < deadline, "not ready: {}", serve_log(dir));
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The service's log (warnings and errors), for a failure message.
pub fn serve_log(dir: &std::path::Path) -> String {
    std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default()
}

/// The service's `/metrics` text.
pub async fn metrics(url: &str) -> String {
    reqwest::get(format!("{url}/metrics"))
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text")
}
