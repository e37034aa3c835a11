//! The event log's conformance suite: written once, run against every backend.
//! The Kafka variants need a Kafka-protocol broker at `TECHMON_KAFKA_BROKERS`
//! (`.ci/test` starts one) and fail when none answers.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;
use std::sync::Arc;

use techmon_eventlog::KafkaConfig;
use techmon_eventlog::embedded::EmbeddedLog;
use techmon_eventlog::kafka::KafkaLog;
use techmon_eventlog::{
    Appended, EventLog, LogError, LogRecord, RowVersion, StoredRecord, partition_for,
};
use uuid::Uuid;

const PARTITIONS: u32 = 4;
/// The retention of the topics the suite creates (the broker's to apply).
const RETENTION: std::time::Duration = std::time::Duration::from_secs(3 * 86_400);

/// Opens a backend's log; opening again reaches the same stored data.
#[async_trait::async_trait]
trait Backend: Send + Sync {
    async fn open(&self) -> Arc<dyn EventLog>;
}

struct Embedded {
    dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl Backend for Embedded {
    async fn open(&self) -> Arc<dyn EventLog> {
        Arc::new(
            EmbeddedLog::open(&self.dir.path().join("events.redb"), PARTITIONS, 16)
                .expect("open embedded log"),
        )
    }
}

struct Kafka {
    topic: String,
    dir: tempfile::TempDir,
}

#[async_trait::async_trait]
impl Backend for Kafka {
    async fn open(&self) -> Arc<dyn EventLog> {
        let config = KafkaConfig {
            brokers: kafka_brokers(),
            create_topics: true,
            replication_factor: 1,
            message_timeout_ms: 10_000,
            request_timeout_ms: 10_000,
            event_id_index: self.dir.path().join("event-ids.redb"),
            librdkafka: BTreeMap::new(),
        };
        let log = KafkaLog::connect(&config, &self.topic, PARTITIONS, Some(RETENTION))
            .await
            .unwrap_or_else(|e| panic!("no Kafka broker answers at {}: {e}", config.brokers));
        Arc::new(log)
    }
}

fn kafka_brokers() -> String {
    std::env::var("TECHMON_KAFKA_BROKERS")
        .expect("TECHMON_KAFKA_BROKERS is not set: start a Kafka-protocol broker (bash .ci/test does) and set it")
}

fn embedded() -> Embedded {
    Embedded {
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

fn kafka() -> Kafka {
    Kafka {
        topic: format!("conformance-{}", Uuid::new_v4()),
        dir: tempfile::tempdir().expect("tempdir"),
    }
}

/// An event whose `note` says which key and sequence number it was appended as.
fn record(key: &str, seq: usize) -> LogRecord {
    let event_id = Uuid::new_v4();
    LogRecord {
        key: key.to_string(),
        event_id,
        payload: format!(r#"{{"event_id":"{event_id}","note":"{key}#{seq}"}}"#).into_bytes(),
        version: None,
    }
}

fn note(record: &StoredRecord) -> String {
    let event: serde_json::Value = serde_json::from_slice(&record.payload).expect("json");
    event["note"].as_str().expect("note").to_string()
}

async fn read_all(log: &dyn EventLog) -> Vec<StoredRecord> {
    let mut all = Vec::new();
    for partition in 0..log.partitions() {
        let mut from = 0;
        loop {
            let batch = log.read(partition, from, 100).await.expect("read");
            let Some(last) = batch.last() else { break };
            from = last.offset + 1;
            all.extend(batch);
        }
    }
    all
}

async fn append_keeps_order_per_key(backend: impl Backend) {
    let log = backend.open().await;
    let keys = [
        "participant:a:1",
        "participant:a:2",
        "activity:b:7",
        "school:12AB00",
        "partner:c:9",
    ];
    let mut appended = Vec::new();
    for round in 0..3 {
        let batch: Vec<LogRecord> = (0..10)
            .flat_map(|i| keys.iter().map(move |k| record(k, round * 10 + i)))
            .collect();
        let result = log.append(batch.clone()).await.expect("append");
        assert_eq!(result.len(), batch.len());
        appended.extend(batch.into_iter().zip(result));
    }
    let stored = read_all(log.as_ref()).await;
    assert_eq!(stored.len(), 150);
    for key in keys {
        let of_key: Vec<&StoredRecord> = stored.iter().filter(|r| r.key == key).collect();
        let partitions: HashSet<u32> = of_key.iter().map(|r| r.partition).collect();
        // The same partition as Kafka's Java client would choose, on every backend.
        assert_eq!(
            partitions,
            HashSet::from([partition_for(key, PARTITIONS)]),
            "partitions of key {key}"
        );
        let notes: Vec<String> = of_key.iter().map(|r| note(r)).collect();
        let expected: Vec<String> = (0..30).map(|i| format!("{key}#{i}")).collect();
        assert_eq!(notes, expected, "order of key {key}");
    }
    // Every answer names the position the record is read back from.
    for (record, outcome) in appended {
        let Appended::Stored { partition, offset } = outcome else {
            panic!("fresh record reported as {outcome:?}")
        };
        let back = stored
            .iter()
            .find(|r| (r.partition, r.offset) == (partition, offset))
            .expect("stored at the answered position");
        assert_eq!(
            (&back.event_id, &back.payload, &back.key),
            (&record.event_id, &record.payload, &record.key)
        );
    }
}

async fn offsets_are_dense_and_reads_resume(backend: impl Backend) {
    let log = backend.open().await;
    let batch: Vec<LogRecord> = (0..40).map(|i| record(&format!("k{}", i % 8), i)).collect();
    log.append(batch).await.expect("append");
    let mut total = 0;
    for partition in 0..PARTITIONS {
        let end = log.end_offset(partition).await.expect("end offset");
        let start = log.start_offset(partition).await.expect("start offset");
        assert_eq!(start, 0, "partition {partition}: nothing was deleted");
        let all = log.read(partition, 0, 1000).await.expect("read");
        assert_eq!(all.len() as u64, end, "partition {partition}");
        let offsets: Vec<u64> = all.iter().map(|r| r.offset).collect();
        assert_eq!(offsets, (0..end).collect::<Vec<_>>());
        if end > 2 {
            let tail = log.read(partition, 2, 1000).await.expect("read from 2");
            assert_eq!(tail, all[2..].to_vec());
            let limited = log.read(partition, 0, 2).await.expect("read 2");
            assert_eq!(limited, all[..2].to_vec());
        }
        assert!(
            log.read(partition, end, 10)
                .await
                .expect("read at end")
                .is_empty()
        );
        total += end;
    }
    assert_eq!(total, 40);
    assert!(
        log.read(PARTITIONS, 0, 1).await.is_err(),
        "a partition past the last is an error"
    );
}

async fn duplicate_event_ids_are_stored_once(backend: impl Backend) {
    let log = backend.open().await;
    let first = record("k", 0);
    let other = record("k", 1);
    let result = log
        .append(vec![first.clone(), first.clone(), other.clone()])
        .await
        .expect("append");
    assert!(matches!(result[0], Appended::Stored { .. }));
    assert_eq!(result[1], Appended::Duplicate, "repeat within a batch");
    assert!(matches!(result[2], Appended::Stored { .. }));
    let again = LogRecord {
        payload: format!(r#"{{"event_id":"{}","note":"changed"}}"#, first.event_id).into_bytes(),
        ..first.clone()
    };
    assert_eq!(
        log.append(vec![again]).await.expect("append"),
        vec![Appended::Duplicate],
        "repeat in a later batch"
    );
    drop(log);
    let log = backend.open().await;
    assert_eq!(
        log.append(vec![first.clone()]).await.expect("append"),
        vec![Appended::Duplicate],
        "repeat after reopen"
    );
    let stored = read_all(log.as_ref()).await;
    assert_eq!(
        stored
            .iter()
            .filter(|r| r.event_id == first.event_id)
            .count(),
        1
    );
    assert_eq!(stored.len(), 2);
}

/// The log reads a record's id back from its event, so a record whose event names
/// another id, or none, is refused with its batch, before anything is stored.
async fn a_record_not_carrying_its_id_is_refused(backend: impl Backend) {
    let log = backend.open().await;
    let good = record("k", 0);
    let other_id = LogRecord {
        event_id: Uuid::new_v4(),
        ..record("k", 1)
    };
    let not_json = LogRecord {
        payload: b"k#2".to_vec(),
        ..record("k", 2)
    };
    for bad in [other_id, not_json] {
        let err = log
            .append(vec![good.clone(), bad.clone()])
            .await
            .expect_err("refused");
        assert!(
            matches!(err, LogError::NotAnEvent { event_id } if event_id == bad.event_id),
            "{err}"
        );
    }
    assert!(read_all(log.as_ref()).await.is_empty());
}

async fn committed_positions_survive_reopen(backend: impl Backend) {
    let log = backend.open().await;
    log.append((0..20).map(|i| record(&format!("k{i}"), i)).collect())
        .await
        .expect("append");
    assert_eq!(
        log.committed_position("transform", 0)
            .await
            .expect("committed"),
        None
    );
    log.commit_positions("transform", &[(0, 3), (1, 5)])
        .await
        .expect("commit");
    log.commit_positions("transform", &[(0, 4)])
        .await
        .expect("commit again");
    log.commit_positions("audit", &[(0, 1)])
        .await
        .expect("commit other group");
    drop(log);
    let log = backend.open().await;
    assert_eq!(
        log.committed_position("transform", 0)
            .await
            .expect("committed"),
        Some(4)
    );
    assert_eq!(
        log.committed_position("transform", 1)
            .await
            .expect("committed"),
        Some(5)
    );
    assert_eq!(
        log.committed_position("transform", 2)
            .await
            .expect("committed"),
        None
    );
    assert_eq!(
        log.committed_position("audit", 0).await.expect("committed"),
        Some(1)
    );
}

async fn concurrent_producers_lose_nothing(backend: impl Backend) {
    let log = backend.open().await;
    let producers: Vec<_> = (0..6)
        .map(|p| {
            let log = log.clone();
            tokio::spawn(async move {
                let mut ids = Vec::new();
                for b in 0..15 {
                    let batch: Vec<LogRecord> = (0..20)
                        .map(|i| record(&format!("producer{p}-k{}", i % 3), b * 20 + i))
                        .collect();
                    ids.extend(batch.iter().map(|r| r.event_id));
                    let result = log.append(batch).await.expect("append");
                    assert!(result.iter().all(|r| matches!(r, Appended::Stored { .. })));
                }
                ids
            })
        })
        .collect();
    let mut sent = HashSet::new();
    for producer in producers {
        sent.extend(producer.await.expect("producer task"));
    }
    let stored = read_all(log.as_ref()).await;
    let stored_ids: HashSet<Uuid> = stored.iter().map(|r| r.event_id).collect();
    assert_eq!(stored.len(), 6 * 15 * 20, "nothing stored twice");
    assert_eq!(stored_ids, sent, "nothing lost");
    // Each producer's keys keep that producer's order.
    for p in 0..6 {
        for k in 0..3 {
            let key = format!("producer{p}-k{k}");
            let seqs: Vec<usize> = stored
                .iter()
                .filter(|r| r.key == key)
                .map(|r| {
                    note(r)
                        .rsplit('#')
                        .next()
                        .and_then(|s| s.parse().ok())
                        .expect("seq")
                })
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "order of {key}: {seqs:?}"
            );
        }
    }
}

/// A version of plain-sheet row `row` that says `says`, made over `replaces`.
fn version(row: Uuid, says: &str, replaces: Option<Uuid>) -> LogRecord {
    LogRecord {
        version: Some(RowVersion {
            row,
            digest: Uuid::new_v5(&Uuid::NAMESPACE_OID, says.as_bytes()),
            replaces,
        }),
        ..record("row", 0)
    }
}

/// A row's version is stored only over the row's latest, so two corrections of the
/// same version cannot both be stored; the latest survives reopening.
async fn a_row_version_is_stored_only_over_the_latest(backend: impl Backend) {
    let log = backend.open().await;
    let (row, other_row) = (Uuid::new_v4(), Uuid::new_v4());
    let first = version(row, "12 girls", None);
    let other = version(other_row, "3 girls", None);
    let stored = log
        .append(vec![first.clone(), other.clone()])
        .await
        .expect("append");
    assert!(stored.iter().all(|a| matches!(a, Appended::Stored { .. })));
    let latest = log
        .latest_versions(&[row, Uuid::new_v4()])
        .await
        .expect("latest");
    assert_eq!(latest[0].map(|l| l.event_id), Some(first.event_id));
    assert_eq!(latest[0].map(|l| l.digest), first.version.map(|v| v.digest));
    assert_eq!(latest[1], None, "a row never sent has no version");

    // Two corrections made over the same version: the first in the batch is stored.
    let second = version(row, "13 girls", Some(first.event_id));
    let rival = version(row, "14 girls", Some(first.event_id));
    let answer = log
        .append(vec![second.clone(), rival.clone()])
        .await
        .expect("append");
    assert!(matches!(answer[0], Appended::Stored { .. }));
    assert_eq!(answer[1], Appended::Outdated);
    // Made over a version that is no longer the latest, or as a first version of a
    // row that has one, it is outdated too; an id stored before stays a duplicate.
    for stale in [
        version(row, "15 girls", Some(first.event_id)),
        version(row, "16", None),
    ] {
        assert_eq!(
            log.append(vec![stale]).await.expect("append"),
            vec![Appended::Outdated]
        );
    }
    assert_eq!(
        log.append(vec![second.clone()]).await.expect("append"),
        vec![Appended::Duplicate]
    );
    drop(log);
    let log = backend.open().await;
    let latest = log
        .latest_versions(&[row, other_row])
        .await
        .expect("latest");
    assert_eq!(latest[0].map(|l| l.event_id), Some(second.event_id));
    assert_eq!(latest[1].map(|l| l.event_id), Some(other.event_id));
    let third = version(row, "12 girls", Some(second.event_id));
    assert!(matches!(
        log.append(vec![third.clone()]).await.expect("append")[0],
        Appended::Stored { .. }
    ));
    let stored: Vec<Uuid> = read_all(log.as_ref())
        .await
        .iter()
        .map(|r| r.event_id)
        .collect();
    let mut expected = vec![
        first.event_id,
        other.event_id,
        second.event_id,
        third.event_id,
    ];
    expected.sort();
    let mut stored = stored;
    stored.sort();
    assert_eq!(stored, expected, "outdated versions are not stored");
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod embedded_log {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::embedded()).await })*
        }
        mod kafka_log {
            $(#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() { super::$case(super::kafka()).await })*
        }
    };
}

conformance!(
    append_keeps_order_per_key,
    offsets_are_dense_and_reads_resume,
    duplicate_event_ids_are_stored_once,
    a_record_not_carrying_its_id_is_refused,
    committed_positions_survive_reopen,
    concurrent_producers_lose_nothing,
    a_row_version_is_stored_only_over_the_latest,
);

#[test]
fn a_changed_partition_count_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path: PathBuf = dir.path().join("events.redb");
    drop(EmbeddedLog::open(&path, 4, 16).expect("create"));
    let err = EmbeddedLog::open(&path, 8, 16)
        .err()
        .expect("reopening with 8 partitions must fail");
    assert!(err.to_string().contains("has 4 partitions"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_topic_techmon_creates_keeps_records_for_the_retention() {
    use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
    use rdkafka::client::DefaultClientContext;
    let backend = kafka();
    drop(backend.open().await);
    let admin: AdminClient<DefaultClientContext> = rdkafka::ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .expect("admin client");
    let described = admin
        .describe_configs(
            [&ResourceSpecifier::Topic(&backend.topic)],
            &AdminOptions::new(),
        )
        .await
        .expect("describe configs");
    let config = described
        .into_iter()
        .next()
        .expect("one resource")
        .expect("the topic's config");
    let retention_ms = config
        .get("retention.ms")
        .and_then(|entry| entry.value.clone());
    assert_eq!(
        retention_ms.as_deref(),
        Some(RETENTION.as_millis().to_string().as_str())
    );
}
