//! Crashes: `techmon serve` (ingest + transform) is killed with SIGKILL at random
//! moments, at least 20 times, the first of them while it starts, while a hub keeps
//! pushing (and re-sending what was not answered). At the end every event the service
//! acknowledged is in the lake exactly once — on the embedded log and on Kafka
//! (`TECHMON_KAFKA_BROKERS`). A service that never answers again fails the test.

mod common;

use std::collections::HashSet;
use std::time::{Duration, Instant};

use common::{
    PUSHED_TABLES as TABLES, free_port, lake_event_ids, lake_in_bucket, lake_in_folder, push_until,
    serve_log, start,
};
use rand::Rng;
use serde_json::Value;
use uuid::Uuid;

const KILLS: usize = 20;

/// Where the service writes its lake.
#[derive(Debug, Clone, Copy)]
enum LakeAt {
    Folder,
    Bucket,
}

/// One kill loop at a time: three services started and killed side by side on two
/// cores start too slowly to take the events the test needs.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn kill_loop(backend: &str, lake_at: LakeAt) {
    let _alone = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let (lake, env) = match lake_at {
        LakeAt::Folder => (lake_in_folder(dir.path()), vec![]),
        LakeAt::Bucket => lake_in_bucket(),
    };
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    let port = free_port();
    let topic = format!("kill-loop-{}", Uuid::new_v4());
    let url = format!("http://127.0.0.1:{port}");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pusher = tokio::spawn(push_until(url.clone(), stopped));
    let mut rng = rand::rng();
    for kill in 0..KILLS {
        let mut service = start(dir.path(), port, backend, &topic, &env);
        // The first kills land early, while the service creates its files.
        let alive_ms = if kill < KILLS / 4 { 5..400 } else { 300..1200 };
        tokio::time::sleep(Duration::from_millis(rng.random_range(alive_ms))).await;
        service.child.kill().expect("SIGKILL");
        service.child.wait().expect("reap");
    }
    let mut service = start(dir.path(), port, backend, &topic, &env);
    tokio::time::sleep(Duration::from_millis(1500)).await;
    stop.send(true).expect("stop pusher");
    let pushed = pusher.await.expect("pusher");
    if let Ok(Some(status)) = service.child.try_wait() {
        panic!(
            "the last service exited ({status}); its log:\n{}",
            serve_log(dir.path())
        );
    }
    let acknowledged =
        pushed.unwrap_or_else(|e| panic!("{e}; the service's log:\n{}", serve_log(dir.path())));
    assert!(
        acknowledged.len() > 200,
        "too little got through to test anything: {}",
        acknowledged.len()
    );

    // Wait for the transform to catch up with everything acknowledged.
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ids = lake_event_ids(&lake, &TABLES).await;
    while ids.len() < acknowledged.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ids = lake_event_ids(&lake, &TABLES).await;
    }
    if let LakeAt::Bucket = lake_at {
        assert!(
            !dir.path().join("techmon-data/lake").exists(),
            "nothing of the lake on the local disk"
        );
    }
    // The service's query API answers from the same lake.
    let answer: Value = reqwest::Client::new()
        .post(format!("{url}/v1/sql"))
        // Row-level: an analyst's answer counts every row.
        .bearer_auth("dev-token-analyst")
        .body(format!(
            "SELECT {} AS lake_rows",
            TABLES
                .map(|t| format!("(SELECT count(*) FROM {t})"))
                .join(" + ")
        ))
        .send()
        .await
        .expect("query")
        .json()
        .await
        .expect("a JSON answer");
    assert_eq!(
        answer["rows"][0]["lake_rows"].as_u64(),
        Some(ids.len() as u64),
        "{answer}"
    );
    drop(service);
    let unique: HashSet<String> = ids.iter().cloned().collect();
    if unique.len() != ids.len() && std::env::var("TECHMON_KEEP_FAILED").is_ok() {
        eprintln!("kept {}", dir.keep().display());
        panic!("duplicates");
    }
    assert_eq!(
        unique.len(),
        ids.len(),
        "{} rows written twice",
        ids.len() - unique.len()
    );
    let missing = acknowledged.difference(&unique).count();
    assert_eq!(
        missing,
        0,
        "{missing} acknowledged events are not in the lake; the service's log:\n{}",
        serve_log(dir.path())
    );
    // Every batch is re-sent until answered, so nothing is in the lake unacknowledged.
    assert_eq!(unique, acknowledged);
    eprintln!(
        "{backend}, lake in a {lake_at:?}: {} acknowledged events, {} in the lake, after {KILLS} kills",
        acknowledged.len(),
        unique.len()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_in_the_lake_once_after_20_kills_embedded() {
    kill_loop("embedded", LakeAt::Folder).await;
}

/// In a bucket, a commit is one conditional write of its log file, and the data
/// files it names are written before it: a kill between the two leaves files no
/// version uses, never a version without its files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_in_the_bucket_lake_once_after_20_kills() {
    kill_loop("embedded", LakeAt::Bucket).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_event_is_in_the_lake_once_after_20_kills_kafka() {
    assert!(
        std::env::var("TECHMON_KAFKA_BROKERS").is_ok(),
        "TECHMON_KAFKA_BROKERS is not set: bash .ci/test starts a broker"
    );
    kill_loop("kafka", LakeAt::Folder).await;
}
