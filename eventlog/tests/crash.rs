//! Kills a process that appends to the embedded log at random moments (SIGKILL) and
//! checks that every record the log had acknowledged is there after reopening.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use rand::Rng;
use techmon_eventlog::embedded::EmbeddedLog;
use techmon_eventlog::{Appended, EventLog, LogRecord};
use uuid::Uuid;

const CHILD_ENV: &str = "TECHMON_CRASH_CHILD_LOG";
const PARTITIONS: u32 = 4;

/// The appending process. Does nothing unless started by the test below.
#[tokio::test]
async fn appending_child_process() {
    let Ok(path) = std::env::var(CHILD_ENV) else {
        return;
    };
    let log = EmbeddedLog::open(Path::new(&path), PARTITIONS, 16).expect("open");
    let mut stdout = std::io::stdout().lock();
    for batch_no in 0u64.. {
        let batch: Vec<LogRecord> = (0..50)
            .map(|i| {
                let event_id = Uuid::new_v4();
                LogRecord {
                    key: format!("subject-{}", (batch_no * 50 + i) % 97),
                    event_id,
                    payload: format!(
                        r#"{{"event_id":"{event_id}","padding":"{}"}}"#,
                        "x".repeat(150)
                    )
                    .into_bytes(),
                    version: None,
                }
            })
            .collect();
        let ids: Vec<Uuid> = batch.iter().map(|r| r.event_id).collect();
        let result = log.append(batch).await.expect("append");
        for (id, outcome) in ids.iter().zip(result) {
            assert!(matches!(outcome, Appended::Stored { .. }));
            writeln!(stdout, "ACK {id}").expect("stdout");
        }
        stdout.flush().expect("flush");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_acknowledged_record_survives_kill_9() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("events.redb");
    let mut rng = rand::rng();
    let mut acknowledged: HashSet<Uuid> = HashSet::new();
    for round in 0..6 {
        let mut child = Command::new(std::env::current_exe().expect("test binary"))
            .args([
                "--exact",
                "appending_child_process",
                "--nocapture",
                "--test-threads",
                "1",
            ])
            .env(CHILD_ENV, &path)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn child");
        let stdout = child.stdout.take().expect("child stdout");
        // Kill after a random time, while the reader below keeps collecting acks.
        let kill_after = Duration::from_millis(rng.random_range(100..1500));
        let reader = std::thread::spawn(move || {
            let mut acks = Vec::new();
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if let Some(id) = line.strip_prefix("ACK ") {
                    acks.push(Uuid::parse_str(id).expect("ack line"));
                }
            }
            acks
        });
        std::thread::sleep(kill_after);
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        let acks = reader.join().expect("reader thread");
        acknowledged.extend(acks);

        let log = EmbeddedLog::open(&path, PARTITIONS, 16).expect("reopen after kill -9");
        let mut stored = Vec::new();
        for partition in 0..PARTITIONS {
            let end = log.end_offset(partition).await.expect("end");
            let records = log.read(partition, 0, usize::MAX).await.expect("read");
            assert_eq!(records.len() as u64, end, "partition {partition} has a gap");
            stored.extend(records.into_iter().map(|r| r.event_id));
        }
        let stored_set: HashSet<Uuid> = stored.iter().copied().collect();
        assert_eq!(stored_set.len(), stored.len(), "a record was stored twice");
        let lost: Vec<&Uuid> = acknowledged.difference(&stored_set).collect();
        assert!(
            lost.is_empty(),
            "round {round}: {} acknowledged records lost after kill -9",
            lost.len()
        );
    }
    eprintln!("{} acknowledged records over 6 kills", acknowledged.len());
    assert!(
        acknowledged.len() > 100,
        "the child appended too little to test anything: {}",
        acknowledged.len()
    );
}
