//! A service's life: it refuses the built-in development tokens on an address other
//! than loopback (unless told to allow them, with a warning), and SIGTERM, as
//! containers and systemd stop services, shuts it down cleanly: exit 0, and nothing
//! acknowledged lost or written twice.

mod common;

use std::collections::HashSet;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{
    PUSHED_TABLES, free_port, lake_event_ids, lake_in_folder, push_until, serve_log, start,
    wait_ready,
};

/// `techmon <command>` in `dir` with `env`; its exit status and standard error.
fn run(dir: &std::path::Path, command: &str, env: &[(&str, &str)]) -> (Option<i32>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_techmon"));
    child
        .arg(command)
        .current_dir(dir)
        .env_remove("TECHMON_CONFIG");
    for (key, value) in env {
        child.env(key, value);
    }
    let output = child.output().expect("run techmon");
    (
        output.status.code(),
        String::from_utf8_lossy(&output.stderr).into_owned(),
    )
}

#[test]
fn development_tokens_are_refused_off_loopback() {
    let dir = tempfile::tempdir().expect("tempdir");
    for (command, listen_key, names, keys) in [
        (
            "serve",
            "TECHMON__INGEST__LISTEN",
            "newtechpark",
            "ingest.hubs and query.users",
        ),
        (
            "ingest",
            "TECHMON__INGEST__LISTEN",
            "tec-deventer",
            "ingest.hubs",
        ),
        (
            "query",
            "TECHMON__QUERY__LISTEN",
            "dev-researcher",
            "ingest.hubs and query.users",
        ),
    ] {
        let (code, stderr) = run(dir.path(), command, &[(listen_key, "0.0.0.0:0")]);
        assert_eq!(code, Some(2), "techmon {command}: {stderr}");
        assert!(
            stderr.contains("0.0.0.0:0 is not a loopback address")
                && stderr.contains(names)
                && stderr.contains(&format!("Configure your own in {keys} "))
                && stderr.contains("allow_dev_tokens"),
            "techmon {command}: {stderr}"
        );
        assert!(
            !dir.path().join("techmon-data").exists(),
            "techmon {command} refused before opening anything"
        );
    }
}

/// Sends SIGTERM to the service and waits for it to exit.
fn terminate(service: &mut common::Service) -> std::process::ExitStatus {
    let sent = Command::new("kill")
        .args(["-TERM", &service.child.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success(), "SIGTERM sent");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(status) = service.child.try_wait().expect("wait") {
            return status;
        }
        assert!(Instant::now() < deadline, "no exit 60 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn allowed_development_tokens_warn_and_sigterm_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let listen = format!("0.0.0.0:{port}");
    let mut service = start(
        dir.path(),
        port,
        "embedded",
        "techmon.events",
        &[
            ("TECHMON__INGEST__LISTEN", &listen),
            ("TECHMON__ALLOW_DEV_TOKENS", "true"),
        ],
    );
    wait_ready(&format!("http://127.0.0.1:{port}"), dir.path()).await;
    let status = terminate(&mut service);
    let log = serve_log(dir.path());
    assert!(status.success(), "{status}: {log}");
    assert!(
        log.contains("allow_dev_tokens is set") && log.contains("newtechpark"),
        "{log}"
    );
    assert!(
        !log.contains('\u{1b}'),
        "no colour codes in a log file: {log}"
    );
}

/// SIGTERM three times while a hub pushes and the transform writes rounds: each
/// time the service exits 0, and at the end every acknowledged event is in the lake
/// exactly once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_during_pushes_and_rounds_loses_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let url = format!("http://127.0.0.1:{port}");
    let (stop, stopped) = tokio::sync::watch::channel(false);
    let pusher = tokio::spawn(push_until(url, stopped));
    let env = [("RUST_LOG", "info")];
    for stop_after_ms in [1500, 2500, 2000] {
        let mut service = start(dir.path(), port, "embedded", "techmon.events", &env);
        tokio::time::sleep(Duration::from_millis(stop_after_ms)).await;
        let status = terminate(&mut service);
        assert!(status.success(), "{status}: {}", serve_log(dir.path()));
    }
    let log = serve_log(dir.path());
    assert_eq!(log.matches("shutting down").count(), 3, "{log}");
    let service = start(dir.path(), port, "embedded", "techmon.events", &env);
    tokio::time::sleep(Duration::from_millis(1000)).await;
    stop.send(true).expect("stop pusher");
    let acknowledged = pusher
        .await
        .expect("pusher")
        .unwrap_or_else(|e| panic!("{e}: {}", serve_log(dir.path())));
    assert!(acknowledged.len() > 200, "{}", acknowledged.len());
    let lake = lake_in_folder(dir.path());
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut ids = lake_event_ids(&lake, &PUSHED_TABLES).await;
    while ids.len() < acknowledged.len() && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(500)).await;
        ids = lake_event_ids(&lake, &PUSHED_TABLES).await;
    }
    drop(service);
    let unique: HashSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), ids.len(), "rows written twice");
    assert_eq!(
        unique,
        acknowledged,
        "the lake holds exactly the acknowledged events: {}",
        serve_log(dir.path())
    );
}

/// Starts `techmon <command>` on its own in a new folder, listening where `listen`
/// (a configuration key) says, and waits until it is ready and healthy.
async fn alone(command: &str, listen: &str) -> (tempfile::TempDir, common::Service, String) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let service = common::Service {
        child: Command::new(env!("CARGO_BIN_EXE_techmon"))
            .arg(command)
            .current_dir(dir.path())
            .env(listen, format!("127.0.0.1:{port}"))
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::null())
            .stderr(std::fs::File::create(dir.path().join("serve.log")).expect("log"))
            .spawn()
            .expect("start techmon"),
    };
    let url = format!("http://127.0.0.1:{port}");
    wait_ready(&url, dir.path()).await;
    let health = reqwest::get(format!("{url}/healthz"))
        .await
        .expect("healthz");
    assert_eq!(health.status(), 200);
    (dir, service, url)
}

/// `techmon query` on its own: health, readiness and metrics (its queries per user),
/// and SIGTERM ends it cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_query_service_on_its_own_has_probes_and_metrics() {
    let (dir, mut service, url) = alone("query", "TECHMON__QUERY__LISTEN").await;
    let client = reqwest::Client::new();
    let answer = client
        .post(format!("{url}/v1/sql"))
        .bearer_auth("dev-token-researcher")
        .body("SELECT 1 AS one")
        .send()
        .await
        .expect("sql");
    assert_eq!(answer.status(), 200);
    let metrics = common::metrics(&url).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == r#"techmon_query_running{user="dev-researcher"} 0"#),
        "{metrics}"
    );
    let status = terminate(&mut service);
    assert!(status.success(), "{status}: {}", serve_log(dir.path()));
}

/// `techmon transform` on its own answers its probes and metrics on
/// `transform.listen`, and stops cleanly on SIGTERM.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_transform_on_its_own_has_probes_and_metrics() {
    let (dir, mut service, url) = alone("transform", "TECHMON__TRANSFORM__LISTEN").await;
    let metrics = common::metrics(&url).await;
    assert!(
        metrics
            .lines()
            .any(|l| l == "techmon_transform_events_read_total 0"),
        "{metrics}"
    );
    let unknown = reqwest::get(format!("{url}/v1/sql")).await.expect("answer");
    assert_eq!(unknown.status(), 404);
    let status = terminate(&mut service);
    assert!(status.success(), "{status}: {}", serve_log(dir.path()));
}

/// Queries that take every place of the query service do not hold up the hubs: under
/// `serve` they run on a runtime of their own, and each push is acknowledged within
/// a bound (generous: a debug build, two cores) while they run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushes_are_acknowledged_while_queries_take_the_query_service() {
    const ACK_BOUND: Duration = Duration::from_secs(3);
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let mut service = start(
        dir.path(),
        port,
        "embedded",
        "techmon.events",
        &[("TECHMON__QUERY__TIMEOUT_SECONDS", "20")],
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&url, dir.path()).await;
    // As many heavy queries as the service runs at once (query.max_concurrent).
    let heavy = "SELECT count(*) AS n FROM generate_series(1, 4000000000) AS t(v) WHERE v % 7 = 3";
    let queries: Vec<_> = ["researcher", "researcher", "analyst", "analyst"]
        .into_iter()
        .map(|role| {
            let request = client
                .post(format!("{url}/v1/sql"))
                .bearer_auth(format!("dev-token-{role}"))
                .body(heavy)
                .send();
            tokio::spawn(async move { request.await.map(|r| r.status().as_u16()) })
        })
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let mut latencies = Vec::new();
    let mut n = 0;
    while queries.iter().any(|q| !q.is_finished()) && latencies.len() < 40 {
        let body: String = (0..40)
            .map(|i| format!("{}\n", common::event(n + i)))
            .collect();
        n += 40;
        let sent = Instant::now();
        let reply = client
            .post(format!("{url}/v1/events"))
            .bearer_auth("dev-token-tec-deventer")
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("push");
        assert!(reply.status().is_success(), "{}", reply.status());
        latencies.push(sent.elapsed());
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let running = queries.iter().filter(|q| !q.is_finished()).count();
    for query in queries {
        let status = query.await.expect("task").expect("the query was answered");
        // Answered, or ended at query.timeout_seconds.
        assert!([200, 422].contains(&status), "{status}");
    }
    println!(
        "push acknowledgements under load: {latencies:?}; queries still running after: {running}"
    );
    assert!(
        latencies.len() >= 5,
        "the queries ran for {} pushes only",
        latencies.len()
    );
    let slowest = latencies.iter().max().expect("pushes");
    assert!(
        *slowest < ACK_BOUND,
        "a push took {slowest:?} while queries ran: {latencies:?}"
    );
    let status = terminate(&mut service);
    assert!(status.success(), "{status}: {}", serve_log(dir.path()));
}
