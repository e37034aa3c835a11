//! Admission control over HTTP: one user's burst of heavy queries gets 429 with
//! `Retry-After` past their own limit, while another user's query still runs.

mod common;

use common::{ANALYST, RESEARCHER, TestLake, serve, sql};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_users_burst_is_refused_past_their_limit_and_others_go_on() {
    let lake = TestLake::new();
    let mut config = lake.config(1024, 120, 10_000);
    config.max_concurrent_per_user = 1;
    config.queue_seconds = 0;
    let addr = serve(&lake.path(), &config).await;
    let heavy = "SELECT count(*) AS n FROM generate_series(1, 60000000) AS t(v) WHERE v % 7 = 3";
    let burst: Vec<_> = (0..3)
        .map(|_| {
            tokio::spawn(
                async move { sql(addr, RESEARCHER, "application/json", None, heavy).await },
            )
        })
        .collect();
    // Another user's query, while the burst runs.
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let other = sql(addr, ANALYST, "application/json", None, "SELECT 1 AS one").await;
    assert_eq!(
        other.status,
        200,
        "{}",
        String::from_utf8_lossy(&other.body)
    );
    let mut statuses = Vec::new();
    for reply in burst {
        let reply = reply.await.expect("reply");
        if reply.status == 429 {
            assert_eq!(reply.error_code(), "too_many_queries");
        }
        statuses.push(reply.status);
    }
    statuses.sort_unstable();
    assert_eq!(
        statuses,
        [200, 429, 429],
        "one runs, the others are refused"
    );
    // The trail has the refusals under the user.
    let refused = std::fs::read_dir(lake.audit_folder())
        .expect("audit")
        .map(|f| std::fs::read_to_string(f.expect("file").path()).expect("text"))
        .collect::<String>()
        .matches("\"outcome\":\"too_many_queries\"")
        .count();
    assert_eq!(refused, 2);

    // The metrics count them under the user, and nothing runs or waits any more.
    let get = |path: &str| {
        let url = format!("http://{addr}{path}");
        async move {
            let reply = reqwest::get(url).await.expect("GET");
            (reply.status().as_u16(), reply.text().await.expect("body"))
        }
    };
    assert_eq!(get("/healthz").await.0, 200);
    assert_eq!(get("/readyz").await.0, 200);
    let (status, metrics) = get("/metrics").await;
    assert_eq!(status, 200);
    for line in [
        r#"techmon_query_refused_total{reason="too_many_queries",user="rita"} 2"#,
        r#"techmon_query_running{user="rita"} 0"#,
        r#"techmon_query_queued{user="rita"} 0"#,
        r#"techmon_query_running{user="anna"} 0"#,
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} in\n{metrics}");
    }
}

/// All queries together hold at most `query.total_memory_mib`: a query that needs more
/// than is left (here a join's build side, which cannot spill) ends with `memory_busy`,
/// not the process; what it held goes back, and the next query runs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_service_memory_bounds_every_query_together() {
    let lake = TestLake::new();
    let mut config = lake.config(1024, 120, 10_000);
    config.total_memory_mib = 8;
    let addr = serve(&lake.path(), &config).await;
    let join = "SELECT count(*) AS n FROM generate_series(1, 3000000) AS a(x) \
                JOIN generate_series(1, 3000000) AS b(y) ON x = y";
    let reply = sql(addr, RESEARCHER, "application/json", None, join).await;
    let message = reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string();
    assert_eq!(
        (reply.status, reply.error_code().as_str()),
        (503, "memory_busy"),
        "{message}"
    );
    // Which setting bounds it is for the operators' log (a 5xx names a request id).
    assert!(
        message.contains("request id") && !message.contains("total_memory_mib"),
        "{message}"
    );
    for _ in 0..2 {
        let small = sql(
            addr,
            RESEARCHER,
            "text/csv",
            None,
            "SELECT count(*) AS n FROM generate_series(1, 1000)",
        )
        .await;
        assert_eq!(small.ok_text(), "n\n1000\n");
    }
}
