//! Functions that build large values from small arguments end with `value_too_large`
//! (naming the function) before the value is made; the process's memory stays flat.

mod common;

use common::{RESEARCHER, TestLake, serve, sql};

/// The process's peak resident memory so far (VmHWM), in KiB.
fn peak_rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .expect("/proc/self/status")
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn growing_functions_are_bounded() {
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(512, 60, 10_000)).await;
    // Small values are made as ever.
    let small = sql(
        addr,
        RESEARCHER,
        "text/csv",
        None,
        "SELECT repeat('ab', 3) AS r, lpad('7', 3, '0') AS l, replace('aXa', 'X', 'bb') AS p, \
                cardinality(range(1, 11)) AS n, max(length(repeat('x', v))) AS m \
         FROM generate_series(1, 100) AS t(v)",
    )
    .await;
    assert_eq!(small.ok_text(), "r,l,p,n,m\nababab,007,abba,10,100\n");
    let before = peak_rss_kib();
    for (function, query) in [
        ("repeat", "SELECT length(repeat('x', 1000000000)) AS n"),
        ("lpad", "SELECT length(lpad('x', 1000000000, 'y')) AS n"),
        ("rpad", "SELECT length(rpad('x', 1000000000)) AS n"),
        (
            "replace",
            "SELECT length(replace(repeat('a', 1000000), 'a', repeat('b', 1000))) AS n",
        ),
        (
            "regexp_replace",
            "SELECT length(regexp_replace(repeat('a', 100000), '', repeat('b', 1000), 'g')) AS n",
        ),
        (
            "array_repeat",
            "SELECT cardinality(array_repeat('x', 100000000)) AS n",
        ),
        (
            "array_resize",
            "SELECT cardinality(array_resize(make_array(1), 100000000)) AS n",
        ),
        ("range", "SELECT cardinality(range(1, 1000000000)) AS n"),
        (
            "generate_series",
            "SELECT cardinality(generate_series(1, 1000000000)) AS n",
        ),
        // Growing per row, from a column.
        (
            "repeat",
            "SELECT max(length(repeat('x', v * 1000000))) AS n FROM generate_series(1, 100) AS t(v)",
        ),
    ] {
        let reply = sql(addr, RESEARCHER, "application/json", None, query).await;
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (422, "value_too_large"),
            "{query}: {message}"
        );
        assert!(
            message.starts_with(&format!("{function} would make a value of "))
                && message.contains("16777216"),
            "{query}: {message}"
        );
    }
    let grown_mib = peak_rss_kib().saturating_sub(before) / 1024;
    assert!(grown_mib < 256, "the peak grew {grown_mib} MiB");
}
