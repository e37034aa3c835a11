//! Every parser that takes outside bytes, fed mutated inputs: the event reader, the
//! push API's bodies (JSON, NDJSON, CSV feeds), DUO files, the SQL gate and `Accept`
//! negotiation. None may panic or hang; each answers with a typed error that names
//! the field or line, and the push API stays up. Deterministic (seeded), so a failure
//! repeats; inputs that once broke a parser are kept in `tests/corpus/` and run first.

use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

/// Mutations per seed input.
const MUTATIONS: usize = 400;
/// No input may take longer (a hang, not a benchmark).
const BOUND: Duration = Duration::from_secs(10);

fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

fn files(dir: &str, ext: &str) -> Vec<Vec<u8>> {
    let mut out: Vec<(PathBuf, Vec<u8>)> = std::fs::read_dir(repo(dir))
        .map(|entries| {
            entries
                .filter_map(|e| e.ok().map(|e| e.path()))
                .filter(|p| p.extension().is_some_and(|e| e == ext))
                .map(|p| {
                    let bytes = std::fs::read(&p).expect("seed");
                    (p, bytes)
                })
                .collect()
        })
        .unwrap_or_default();
    out.sort();
    out.into_iter().map(|(_, b)| b).collect()
}

/// Bytes that break formats: quotes, separators, line ends, escapes, NUL, invalid
/// UTF-8, a BOM, numbers at their limits.
const NASTY: &[&[u8]] = &[
    b"\"",
    b";",
    b",",
    b"\n",
    b"\r\n",
    b"\\",
    b"\0",
    b"\xff",
    b"\xc3",
    b"\xEF\xBB\xBF",
    b"{",
    b"}",
    b"[",
    b"]",
    b":",
    b"<5",
    b"-1",
    b"1e999",
    b"18446744073709551616",
    b"-9223372036854775809",
    b"NaN",
    b"\"\"\"",
    b"\t",
    b" ",
    b"'",
    b"--",
    b"/*",
    b"%",
    b"\xe2\x80\xae",
    b"0000-00-00T00:00:00Z",
];

/// One mutation of `seed`.
fn mutate(rng: &mut StdRng, seed: &[u8], others: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = seed.to_vec();
    for _ in 0..rng.random_range(1..=4) {
        let at = if bytes.is_empty() {
            0
        } else {
            rng.random_range(0..=bytes.len())
        };
        match rng.random_range(0..7) {
            0 if !bytes.is_empty() => {
                let i = rng.random_range(0..bytes.len());
                bytes[i] ^= 1 << rng.random_range(0..8);
            }
            1 => {
                let nasty = NASTY[rng.random_range(0..NASTY.len())];
                bytes.splice(at..at, nasty.iter().copied());
            }
            2 if !bytes.is_empty() => {
                let end = (at + rng.random_range(1..64)).min(bytes.len());
                bytes.drain(at.min(end)..end);
            }
            3 if !bytes.is_empty() => {
                let start = rng.random_range(0..bytes.len());
                let end = (start + rng.random_range(1..256)).min(bytes.len());
                let copy = bytes[start..end].to_vec();
                bytes.splice(at..at, copy);
            }
            4 => bytes.truncate(at),
            5 if !others.is_empty() => {
                let other = &others[rng.random_range(0..others.len())];
                let from = rng.random_range(0..=other.len());
                bytes.truncate(at);
                bytes.extend_from_slice(&other[from..]);
            }
            _ => {
                let digit = b"0123456789"[rng.random_range(0..10)];
                bytes.insert(at, digit);
            }
        }
    }
    bytes
}

/// Runs `check` on the corpus of `name`, the seeds, and their mutations; each call
/// must return within [`BOUND`] without panicking.
fn fuzz(name: &str, seeds: &[Vec<u8>], mut check: impl FnMut(&[u8])) {
    assert!(!seeds.is_empty(), "{name}: no seeds");
    let mut inputs: Vec<Vec<u8>> = files(&format!("tests/corpus/{name}"), "bin");
    inputs.extend(seeds.iter().cloned());
    let mut rng = StdRng::seed_from_u64(20_241_001);
    for seed in seeds {
        for _ in 0..MUTATIONS {
            inputs.push(mutate(&mut rng, seed, seeds));
        }
    }
    for input in &inputs {
        let started = Instant::now();
        let outcome = std::panic::catch_unwind(AssertUnwindSafe(|| check(input)));
        if outcome.is_err() || started.elapsed() > BOUND {
            let kept = std::env::temp_dir().join(format!("techmon-{name}-failing.bin"));
            let _ = std::fs::write(&kept, input);
            panic!(
                "{name}: an input {} (kept in {})",
                if outcome.is_err() {
                    "panicked"
                } else {
                    "took too long"
                },
                kept.display()
            );
        }
    }
}

#[test]
fn the_event_reader() {
    let seeds = files("schemas/examples", "json");
    fuzz(
        "event_reader",
        &seeds,
        |bytes| match techmon_schemas::read_event(bytes) {
            Ok(event) => assert!(!event.hub_id.is_empty()),
            Err(techmon_schemas::ReadEventError::NotJson) => {}
            Err(techmon_schemas::ReadEventError::Invalid(errors)) => {
                assert!(!errors.is_empty());
                for e in errors {
                    assert!(e.field.starts_with('/'), "{}", e.field);
                    assert!(!e.reason.is_empty());
                }
            }
        },
    );
}

#[test]
fn duo_files() {
    let mut seeds = files("reference/tests/data/duo", "csv");
    seeds.extend(files("reference/tests/data/duo", "json"));
    // Keep them small: a mutation of a large file says no more than of its start.
    for seed in &mut seeds {
        seed.truncate(4096);
    }
    let today = chrono::NaiveDate::from_ymd_opt(2026, 12, 7).expect("date");
    fuzz("duo", &seeds, |bytes| {
        match techmon_reference::duo::parse("leerlingen-2024.csv", bytes, None, today) {
            Ok(file) => assert!(file.rows.len() < 1_000_000),
            Err(e) => assert!(!e.to_string().is_empty()),
        }
    });
}

#[test]
fn the_sql_gate_and_accept() {
    let seeds: Vec<Vec<u8>> = [
        "SELECT hub_id, count(*) FROM activities GROUP BY 1",
        "WITH x AS (SELECT 1) SELECT * FROM x",
        "EXPLAIN SELECT * FROM kpi_report",
        "COPY (SELECT 1) TO '/tmp/x'",
        "SELECT 1; DROP TABLE activities",
        "CREATE EXTERNAL TABLE t STORED AS CSV LOCATION '/etc/passwd'",
        "SELECT * FROM '/etc/passwd'",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("sql_gate", &seeds, |bytes| {
        let _ = techmon_query::safety::check(&String::from_utf8_lossy(bytes));
    });
    let accepts: Vec<Vec<u8>> = [
        "text/csv",
        "application/json;q=0.9, text/csv;q=1.0",
        "application/vnd.apache.arrow.stream",
        "*/*",
        "application/vnd.apache.parquet; q=0",
    ]
    .iter()
    .map(|s| s.as_bytes().to_vec())
    .collect();
    fuzz("accept", &accepts, |bytes| {
        let text = String::from_utf8_lossy(bytes);
        let _ = techmon_query::formats::Format::from_accept(Some(&text));
    });
}

/// The push API over HTTP: every mutated body gets an answer (never a 5xx, never a
/// dropped connection), and every refused record names a field.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_api_bodies() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: std::sync::Arc<dyn techmon_eventlog::EventLog> = std::sync::Arc::new(
        techmon_eventlog::embedded::EmbeddedLog::open(&dir.path().join("events.redb"), 2, 16)
            .expect("log"),
    );
    let config = techmon_ingest::Config {
        listen: "127.0.0.1:0".parse().expect("address"),
        max_body_bytes: 1 << 20,
        max_records_per_request: 1000,
        retry_after_seconds: 1,
        hubs: vec![techmon_service::HubCredential {
            hub_id: "tec-deventer".into(),
            token_sha256: techmon_service::token_sha256("fuzz-token"),
        }],
    };
    let router = techmon_ingest::build(&config, log).expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(techmon_service::serve(
        listener,
        router,
        std::future::pending(),
    ));
    let client = reqwest::Client::builder()
        .timeout(BOUND)
        .build()
        .expect("client");

    let mut bodies: Vec<(String, Vec<u8>)> = Vec::new();
    let events = files("schemas/examples", "json");
    let feeds: Vec<(String, Vec<u8>)> = std::fs::read_dir(repo("docs/templates"))
        .expect("templates")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .map(|p| {
            let kind = p.file_stem().expect("stem").to_string_lossy().into_owned();
            (
                format!("/v1/feeds/{kind}"),
                std::fs::read(&p).expect("template"),
            )
        })
        .collect();
    let mut rng = StdRng::seed_from_u64(7);
    for seed in &events {
        bodies.push(("/v1/events".into(), seed.clone()));
        for _ in 0..MUTATIONS / 8 {
            bodies.push(("/v1/events".into(), mutate(&mut rng, seed, &events)));
        }
    }
    let feed_seeds: Vec<Vec<u8>> = feeds.iter().map(|(_, b)| b.clone()).collect();
    for (path, seed) in &feeds {
        for _ in 0..MUTATIONS / 8 {
            bodies.push((path.clone(), mutate(&mut rng, seed, &feed_seeds)));
        }
    }
    for (path, body) in bodies {
        let response = client
            .post(format!("{url}{path}"))
            .bearer_auth("fuzz-token")
            .body(body.clone())
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: no answer to a body ({e})"));
        let status = response.status().as_u16();
        assert!(
            matches!(status, 200 | 400 | 404 | 413),
            "{path}: {status} for {:?}",
            String::from_utf8_lossy(&body)
        );
        let answer: serde_json::Value = response.json().await.expect("a JSON answer");
        if status == 200 {
            for result in answer["results"].as_array().expect("results") {
                for error in result["errors"].as_array().into_iter().flatten() {
                    let field = error["field"].as_str().unwrap_or("");
                    assert!(field.starts_with('/'), "{path}: {error}");
                }
            }
        } else {
            assert!(answer["error"]["code"].is_string(), "{path}: {answer}");
        }
    }
}
