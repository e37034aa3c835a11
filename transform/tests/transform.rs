//! The transform over a real embedded event log into a real Delta lake, read back
//! with DataFusion.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use serde_json::{Value, json};
use techmon_eventlog::embedded::EmbeddedLog;
use techmon_eventlog::{EventLog, LogRecord};
use techmon_lake::{LakeLocation, StorageOptions};
use techmon_transform::state::DeadLetterReason;
use techmon_transform::{Config, Transform, TransformError};
use uuid::Uuid;

const TOPIC: &str = "techmon.events";
/// Made by `.ci/test` on the S3-compatible test service.
const S3_BUCKET: &str = "techmon-test";

struct Setup {
    dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
    /// The lake's folder or URL, and the options to reach it.
    lake: String,
    lake_storage: StorageOptions,
}

/// Where a test's lake is: the backends a test generic over them runs against.
#[derive(Debug, Clone, Copy)]
enum Backend {
    Folder,
    /// A new prefix of the bucket that `.ci/test` makes on an S3-compatible service
    /// (moto, which checks conditional writes as S3 does).
    Bucket,
}

impl Setup {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("events.redb"), 3, 16).expect("log"));
        Self::with_log(dir, log)
    }

    /// A lake in a folder of `dir`.
    fn with_log(dir: tempfile::TempDir, log: Arc<dyn EventLog>) -> Self {
        let lake = dir.path().join("lake").to_string_lossy().into_owned();
        Self {
            dir,
            log,
            lake,
            lake_storage: StorageOptions::default(),
        }
    }

    fn on(backend: Backend) -> Self {
        let setup = Self::new();
        match backend {
            Backend::Folder => setup,
            Backend::Bucket => {
                let endpoint = std::env::var("TECHMON_S3_ENDPOINT").expect(
                    "TECHMON_S3_ENDPOINT names the S3-compatible test service (.ci/test starts one)",
                );
                let options = [
                    ("aws_endpoint", endpoint.as_str()),
                    ("aws_allow_http", "true"),
                    ("aws_region", "us-east-1"),
                    ("aws_access_key_id", "techmon-test"),
                    ("aws_secret_access_key", "techmon-test"),
                ];
                Self {
                    lake: format!("s3://{S3_BUCKET}/{}/lake", Uuid::new_v4()),
                    lake_storage: StorageOptions(
                        options
                            .into_iter()
                            .map(|(k, v)| (k.to_string(), v.to_string()))
                            .collect(),
                    ),
                    ..setup
                }
            }
        }
    }

    fn location(&self) -> LakeLocation {
        LakeLocation::new(&self.lake, self.lake_storage.clone()).expect("lake location")
    }

    /// A Kafka topic, with its own id index: see the duplicate test.
    async fn kafka(index: &str) -> (Self, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let topic = format!("transform-{}", Uuid::new_v4());
        let log = kafka_log(&topic, &dir.path().join(index)).await;
        (Self::with_log(dir, log), topic)
    }

    fn config(&self) -> Config {
        Config {
            listen: "127.0.0.1:0".parse().expect("an address"),
            raw: self.dir.path().join("raw"),
            pseudonym_key_id: "test-key-1".into(),
            pseudonym_key_file: None,
            max_records_per_partition: 40,
            // Rounds of five passes: the passes of a round, and those read ahead of
            // the next, are taken in turn.
            records_per_read: 8,
            max_round_bytes: 64 << 20,
            max_round_ms: 10_000,
            poll_interval_ms: 50,
            vacuum_interval_minutes: 60,
            vacuum_retention_hours: 24,
            compact_interval_minutes: 60,
            compact_target_file_mib: 128,
            relink_interval_minutes: 10,
            person_keys: self.dir.path().join("person-keys"),
        }
    }

    async fn transform(&self) -> Transform {
        Transform::open(&self.config(), &self.location(), self.log.clone(), TOPIC)
            .await
            .expect("open transform")
    }

    /// Appends events as ingest would (keyed by subject); returns their ids.
    async fn append(&self, events: &[Value]) -> Vec<String> {
        let records = events
            .iter()
            .map(|e| {
                let event = techmon_schemas::validate_event(e).map(|ev| ev.subject_key());
                LogRecord {
                    key: event.unwrap_or_else(|_| "invalid".into()),
                    event_id: Uuid::parse_str(e["event_id"].as_str().expect("id")).expect("uuid"),
                    payload: e.to_string().into_bytes(),
                    version: None,
                }
            })
            .collect();
        self.log.append(records).await.expect("append");
        events
            .iter()
            .map(|e| e["event_id"].as_str().expect("id").to_string())
            .collect()
    }

    fn lake(&self) -> std::path::PathBuf {
        self.dir.path().join("lake")
    }

    /// Appends `events` and runs a transform until it has read them all.
    async fn transform_of(&self, events: &[Value]) -> Transform {
        self.append(events).await;
        let mut transform = self.transform().await;
        transform.catch_up().await.expect("catch up");
        transform
    }

    /// One column of a lake table, as text, in no particular order.
    async fn column(&self, table: &str, column: &str) -> Vec<String> {
        strings(&rows_at(&self.location(), table).await, column)
    }
}

fn envelope(kind: &str, hub: &str, payload: Value) -> Value {
    json!({
        "event_id": Uuid::new_v4(), "event_type": kind, "schema_version": 1, "hub_id": hub,
        "occurred_at": "2024-10-03T09:00:00+02:00", "sent_at": "2024-10-03T18:00:00+02:00", "payload": payload
    })
}

fn group(n: usize) -> Value {
    envelope(
        "group_participated",
        "tec-deventer",
        json!({
            "activity_id": format!("act-{}", n % 7), "school_brin6": "12AB00", "sector": "PO", "groep": 1 + n % 8,
            "school_year": "2024/25", "participants": {"girls": 10, "boys": 11, "other": 1}
        }),
    )
}

fn registration(hub: &str, reference: &str, name: &str, email: Option<&str>) -> Value {
    let mut payload = json!({
        "participant_ref": reference, "name": name, "phone": "+31 6 99887766", "birth_date": "2011-07-19",
        "postcode": "7411 ZQ", "street_address": "Canarystraat 13", "pupil_number": "PUPIL-CANARY-42",
        "gender": "female", "role": "pupil", "consent_research": true, "notes": "Canary free text note"
    });
    if let Some(email) = email {
        payload["email"] = json!(email);
    }
    envelope("participant_registered", hub, payload)
}

fn attendance(hub: &str, reference: &str) -> Value {
    envelope(
        "participant_attended",
        hub,
        json!({"activity_id": "act-1", "participant_ref": reference}),
    )
}

fn withdrawal(hub: &str, reference: &str) -> Value {
    envelope(
        "consent_withdrawn",
        hub,
        json!({"participant_ref": reference}),
    )
}

async fn kafka_log(topic: &str, index: &Path) -> Arc<dyn EventLog> {
    let brokers = std::env::var("TECHMON_KAFKA_BROKERS")
        .expect("TECHMON_KAFKA_BROKERS is not set: start a Kafka-protocol broker (bash .ci/test does) and set it");
    let config = techmon_eventlog::KafkaConfig {
        brokers,
        create_topics: true,
        replication_factor: 1,
        message_timeout_ms: 10_000,
        request_timeout_ms: 10_000,
        event_id_index: index.to_path_buf(),
        librdkafka: Default::default(),
    };
    Arc::new(
        techmon_eventlog::kafka::KafkaLog::connect(&config, topic, 3, None)
            .await
            .expect("kafka log"),
    )
}

/// Every row of a table of the lake in folder `lake`.
/// A lake in folder `path`.
fn folder(path: &Path) -> LakeLocation {
    LakeLocation::new(&path.to_string_lossy(), StorageOptions::default()).expect("a folder")
}

async fn rows(lake: &Path, table: &str) -> Vec<RecordBatch> {
    rows_at(&folder(lake), table).await
}

/// Every row of a lake table, through DataFusion.
async fn rows_at(lake: &LakeLocation, table: &str) -> Vec<RecordBatch> {
    let delta = lake.open(table).await.expect("table");
    if delta.version().is_none() {
        return vec![];
    }
    techmon_lake::session_over(&delta, table)
        .await
        .expect("session")
        .sql(&format!("SELECT * FROM {table}"))
        .await
        .expect("sql")
        .collect()
        .await
        .expect("collect")
}

fn strings(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(column).expect("column");
        let array =
            deltalake::arrow::compute::cast(array, &deltalake::arrow::datatypes::DataType::Utf8)
                .expect("cast");
        let array = array.as_string::<i32>();
        out.extend(
            (0..array.len())
                .filter(|i| array.is_valid(*i))
                .map(|i| array.value(i).to_string()),
        );
    }
    out
}

/// Every row of a table as text, sorted: for comparing lakes row by row.
async fn table_text(lake: &Path, table: &str) -> Vec<String> {
    use deltalake::arrow::util::display::{ArrayFormatter, FormatOptions};
    let mut lines = Vec::new();
    for batch in rows(lake, table).await {
        let formatters: Vec<ArrayFormatter> = batch
            .columns()
            .iter()
            .map(|c| {
                ArrayFormatter::try_new(c.as_ref(), &FormatOptions::default()).expect("formatter")
            })
            .collect();
        for row in 0..batch.num_rows() {
            let cells: Vec<String> = formatters
                .iter()
                .map(|f| f.value(row).to_string())
                .collect();
            lines.push(cells.join(" | "));
        }
    }
    lines.sort();
    lines
}

fn count(batches: &[RecordBatch]) -> usize {
    batches.iter().map(RecordBatch::num_rows).sum()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lands_exactly_once_across_restarts_in_a_folder() {
    every_event_lands_exactly_once_across_restarts(Backend::Folder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_lands_exactly_once_across_restarts_in_a_bucket() {
    every_event_lands_exactly_once_across_restarts(Backend::Bucket).await;
}

async fn every_event_lands_exactly_once_across_restarts(backend: Backend) {
    let setup = Setup::on(backend);
    let groups: Vec<Value> = (0..150).map(group).collect();
    let mut ids = setup.append(&groups).await;
    // A schema version the transform does not know: a dead letter, not a row.
    let mut future = group(999);
    future["schema_version"] = json!(7);
    setup.append(&[future.clone()]).await;

    let mut transform = setup.transform().await;
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(
        (progress.read, progress.written, progress.dead_letters),
        (151, 150, 1)
    );
    let letters = transform.state().dead_letters().expect("dead letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, DeadLetterReason::UnknownSchemaVersion);
    assert_eq!(
        letters[0].event_id.map(|u| u.to_string()).as_deref(),
        future["event_id"].as_str()
    );
    drop(transform);

    // A restart with nothing new writes nothing.
    let mut transform = setup.transform().await;
    assert_eq!(transform.catch_up().await.expect("catch up").written, 0);

    let more: Vec<Value> = (150..230).map(group).collect();
    ids.extend(setup.append(&more).await);
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(progress.written, 80);
    drop(transform);

    let lake_rows = rows_at(&setup.location(), "group_participations").await;
    let mut lake_ids = strings(&lake_rows, "event_id");
    lake_ids.sort();
    let mut expected = ids.clone();
    expected.sort();
    assert_eq!(
        lake_ids, expected,
        "every accepted event once, nothing else"
    );
    let totals = strings(&lake_rows, "participants_total");
    assert!(totals.iter().all(|t| t == "22"), "girls + boys + other");
    assert_eq!(
        strings(&lake_rows, "school_year")
            .iter()
            .filter(|y| *y == "2024/25")
            .count(),
        230
    );
}

/// Kafka can hold a second copy of an event: a producer that crashed after the
/// broker's acknowledgement but before recording the id sends it again. The
/// transform drops the copy by event id.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_copy_of_an_event_in_kafka_lands_once() {
    let (setup, topic) = Setup::kafka("first-index.redb").await;
    let events: Vec<Value> = (0..30).map(group).collect();
    let ids = setup.append(&events).await;
    // A producer that lost its id index sends five of them again.
    let forgetful = kafka_log(&topic, &setup.dir.path().join("second-index.redb")).await;
    let copies = events[..5]
        .iter()
        .map(|e| LogRecord {
            key: "copy".into(),
            event_id: Uuid::parse_str(e["event_id"].as_str().expect("id")).expect("uuid"),
            payload: e.to_string().into_bytes(),
            version: None,
        })
        .collect();
    forgetful.append(copies).await.expect("append copies");

    let mut transform = Transform::open(
        &setup.config(),
        &setup.location(),
        setup.log.clone(),
        &topic,
    )
    .await
    .expect("open");
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(
        (progress.read, progress.written, progress.duplicates),
        (35, 30, 5)
    );
    drop(transform);
    let mut lake_ids = setup.column("group_participations", "event_id").await;
    lake_ids.sort();
    let mut expected = ids;
    expected.sort();
    assert_eq!(lake_ids, expected);
}

/// Redrive: letters that transform now (here: one a transform of an older version
/// could not read) go to the lake once, however often redriven; the others stay.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redriven_dead_letters_land_once_and_the_rest_stay() {
    let setup = Setup::new();
    let mut future = group(1);
    future["schema_version"] = json!(7);
    setup.append(&[future, group(2)]).await;
    let mut transform = setup.transform().await;
    transform.catch_up().await.expect("catch up");
    drop(transform);

    // As if an older transform had dead-lettered a valid event.
    let now_readable = group(3);
    let mut state = techmon_transform::state::State::open(&setup.config().raw).expect("state");
    let mut changes = techmon_transform::state::StateChanges::default();
    changes
        .dead_letters
        .push(techmon_transform::state::DeadLetter {
            partition: 9,
            offset: 1,
            event_id: Uuid::parse_str(now_readable["event_id"].as_str().expect("id")).ok(),
            reason: DeadLetterReason::UnknownSchemaVersion,
            detail: String::new(),
            dead_at: chrono::Utc::now(),
            payload: now_readable.to_string(),
        });
    state.apply(changes).expect("apply");
    drop(state);

    let mut transform = setup.transform().await;
    assert_eq!(transform.redrive().await.expect("redrive"), (1, 1));
    assert_eq!(transform.redrive().await.expect("redrive again"), (0, 1));
    let letters = transform.state().dead_letters().expect("letters");
    assert_eq!(letters.len(), 1);
    assert_eq!(letters[0].reason, DeadLetterReason::UnknownSchemaVersion);
    drop(transform);
    let ids = setup.column("group_participations", "event_id").await;
    assert_eq!(ids.len(), 2);
    assert_eq!(
        ids.iter()
            .filter(|id| Some(id.as_str()) == now_readable["event_id"].as_str())
            .count(),
        1
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn personal_data_never_reaches_the_lake_and_pseudonyms_link_hubs() {
    let setup = Setup::new();
    let transform = setup
        .transform_of(&[
            registration(
                "tec-deventer",
                "d-1",
                "Canary Jansen",
                Some("canary.jansen@example.org"),
            ),
            registration(
                "techniekbrouwerij",
                "e-9",
                "Canary Jansen",
                Some("Canary.Jansen@Example.org"),
            ),
            registration("newtechpark", "n-5", "Other Canary", None),
            attendance("tec-deventer", "d-1"),
            attendance("techniekbrouwerij", "e-9"),
        ])
        .await;
    drop(transform);

    for canary in [
        "Canary",
        "canary",
        "99887766",
        "2011-07-19",
        "7411 ZQ",
        "7411ZQ",
        "Canarystraat",
        "PUPIL-CANARY",
        "free text",
    ] {
        for entry in walk(&setup.lake()) {
            let bytes = std::fs::read(&entry).expect("read lake file");
            assert!(
                !bytes.windows(canary.len()).any(|w| w == canary.as_bytes()),
                "{canary:?} found in {}",
                entry.display()
            );
        }
    }
    let participants = rows(&setup.lake(), "participants").await;
    let pseudonyms = strings(&participants, "participant_pseudonym");
    assert_eq!(pseudonyms.len(), 3);
    assert_eq!(
        pseudonyms.iter().filter(|p| **p == pseudonyms[0]).count(),
        2,
        "one person at two hubs: {pseudonyms:?}"
    );
    assert_eq!(strings(&participants, "birth_year"), vec!["2011"; 3]);
    assert_eq!(strings(&participants, "pc4"), vec!["7411"; 3]);
    assert_eq!(
        strings(&participants, "pseudonym_key_id"),
        vec!["test-key-1"; 3]
    );
    let attendances = setup.column("attendances", "participant_pseudonym").await;
    assert_eq!(
        attendances,
        vec![pseudonyms[0].clone(); 2],
        "attendance by reference links to the registration"
    );
}

/// Hubs are asked to register a person before their other events. An attendance that
/// comes first gets a pseudonym from the hub's reference, which does not link to the
/// registration; it is counted (progress and metric), so an operator can see it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_attendance_before_its_registration_links_to_it_when_it_comes() {
    let setup = Setup::new();
    // Two attendances before Anna's registration at one hub, in an earlier round
    // than the registration; the other hub registers her (same e-mail) afterwards.
    setup
        .append(&[
            attendance("tec-deventer", "d-7"),
            attendance("tec-deventer", "d-7"),
        ])
        .await;
    let mut transform = setup.transform().await;
    let early = transform.catch_up().await.expect("catch up");
    assert_eq!((early.written, early.unregistered_references), (2, 1));
    assert_eq!(transform.metrics().unregistered_references.get(), 1);
    let provisional = setup.column("attendances", "participant_pseudonym").await;
    assert_eq!(provisional.len(), 2);
    assert_eq!(
        provisional[0], provisional[1],
        "one reference, one pseudonym"
    );

    setup
        .append(&[
            registration("tec-deventer", "d-7", "Anna", Some("anna@example.org")),
            attendance("tec-deventer", "d-7"),
            registration("newtechpark", "n-3", "Anna", Some("anna@example.org")),
        ])
        .await;
    let later = transform.catch_up().await.expect("catch up");
    assert_eq!((later.written, later.relinked_rows), (3, 0));
    assert_eq!(transform.state().pending_relinks().len(), 1);
    // Until the scheduled relink, her early attendances keep the reference's.
    let before = setup.column("attendances", "participant_pseudonym").await;
    assert_eq!(before.iter().filter(|p| **p == provisional[0]).count(), 2);
    assert_eq!(transform.relink().await.expect("relink"), 2);
    assert!(transform.state().pending_relinks().is_empty());
    drop(transform);
    let registered = setup.column("participants", "participant_pseudonym").await;
    assert_eq!(registered.len(), 2);
    assert_eq!(registered[0], registered[1], "one person at two hubs");
    assert_ne!(registered[0], provisional[0]);
    let attended = setup.column("attendances", "participant_pseudonym").await;
    assert_eq!(
        attended,
        vec![registered[0].clone(); 3],
        "all of her attendances"
    );

    // A replay of the same log makes the same rows (in one round, so relinked
    // before they are written).
    let replayed = setup.dir.path().join("replayed");
    let config =
        techmon_transform::replay_config(&setup.config(), setup.dir.path().join("replayed-raw"));
    let replay = Transform::open(&config, &folder(&replayed), setup.log.clone(), TOPIC)
        .await
        .expect("open the replay")
        .catch_up()
        .await
        .expect("replay");
    assert_eq!((replay.written, replay.relinked_rows), (5, 2));
    for table in ["participants", "attendances"] {
        assert_eq!(
            table_text(&replayed, table).await,
            table_text(&setup.lake(), table).await,
            "{table}"
        );
    }
}

/// A withdrawal before the registration withdraws the reference's pseudonym: the
/// registration that follows is dropped, not given a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_after_its_reference_withdrew_is_dropped() {
    let setup = Setup::new();
    setup
        .append(&[
            attendance("tec-deventer", "d-8"),
            withdrawal("tec-deventer", "d-8"),
            registration("tec-deventer", "d-8", "Bram", Some("bram@example.org")),
            attendance("tec-deventer", "d-8"),
        ])
        .await;
    let mut transform = setup.transform().await;
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(
        (
            progress.erased_rows,
            progress.dropped_after_withdrawal,
            progress.relinked_rows
        ),
        (1, 2, 0)
    );
    drop(transform);
    assert_no_person_rows(&setup).await;
}

/// No registration and no attendance in the lake.
async fn assert_no_person_rows(setup: &Setup) {
    for table in ["participants", "attendances"] {
        let rows = setup.column(table, "participant_pseudonym").await;
        assert!(rows.is_empty(), "{table}: {rows:?}");
    }
}

/// A withdrawal that is the first event about a reference withdraws the reference:
/// its registration, and what follows, are dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_before_anything_else_drops_the_registration_after_it() {
    let setup = Setup::new();
    let transform = setup
        .transform_of(&[
            withdrawal("tec-deventer", "d-9"),
            registration("tec-deventer", "d-9", "Cas", Some("cas@example.org")),
            attendance("tec-deventer", "d-9"),
        ])
        .await;
    drop(transform);
    assert_no_person_rows(&setup).await;
}

/// Someone who withdrew at one hub and is then named at another before registering
/// there: that hub's earlier rows are erased, not relinked to the withdrawn pseudonym.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_before_a_registration_of_a_withdrawn_person_are_erased() {
    let setup = Setup::new();
    let mut transform = setup
        .transform_of(&[
            registration("tec-deventer", "d-1", "Anna", Some("anna@example.org")),
            withdrawal("tec-deventer", "d-1"),
        ])
        .await;
    setup.append(&[attendance("newtechpark", "n-4")]).await;
    transform.catch_up().await.expect("catch up");
    assert_eq!(
        setup
            .column("attendances", "participant_pseudonym")
            .await
            .len(),
        1
    );
    setup
        .append(&[registration(
            "newtechpark",
            "n-4",
            "Anna",
            Some("anna@example.org"),
        )])
        .await;
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(
        (progress.erased_rows, progress.dropped_after_withdrawal),
        (1, 1)
    );
    assert_eq!(transform.relink().await.expect("relink"), 0);
    drop(transform);
    assert_no_person_rows(&setup).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_withdrawal_erases_the_participant_and_drops_later_events_in_a_folder() {
    consent_withdrawal_erases_the_participant_and_drops_later_events(Backend::Folder).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_withdrawal_erases_the_participant_and_drops_later_events_in_a_bucket() {
    consent_withdrawal_erases_the_participant_and_drops_later_events(Backend::Bucket).await;
}

async fn consent_withdrawal_erases_the_participant_and_drops_later_events(backend: Backend) {
    let setup = Setup::on(backend);
    let mut transform = setup
        .transform_of(&[
            registration("tec-deventer", "d-1", "Anna", Some("anna@example.org")),
            registration("tec-deventer", "d-2", "Bram", Some("bram@example.org")),
            attendance("tec-deventer", "d-1"),
            attendance("tec-deventer", "d-2"),
        ])
        .await;
    let before = setup.column("participants", "participant_pseudonym").await;
    assert_eq!(before.len(), 2);

    setup
        .append(&[
            withdrawal("tec-deventer", "d-1"),
            attendance("tec-deventer", "d-1"),
            attendance("tec-deventer", "d-2"),
        ])
        .await;
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(progress.erased_rows, 2, "one registration, one attendance");
    assert_eq!(progress.dropped_after_withdrawal, 1);

    let participants = setup.column("participants", "participant_pseudonym").await;
    let attendances = setup.column("attendances", "participant_pseudonym").await;
    assert_eq!(participants.len(), 1);
    let bram = participants[0].clone();
    assert_eq!(attendances, vec![bram.clone(), bram.clone()]);
    let anna: Vec<&String> = before.iter().filter(|p| **p != bram).collect();
    assert_eq!(anna.len(), 1);

    // The history still holds her rows until vacuumed; then only what the current
    // versions use is left in the lake.
    let before_vacuum = data_files(&setup.location(), "participants").await;
    let deleted = transform
        .vacuum(std::time::Duration::ZERO)
        .await
        .expect("vacuum");
    assert!(
        deleted > 0,
        "the files of the versions before the erasure are deleted"
    );
    let kept = data_files(&setup.location(), "participants").await;
    assert!(kept < before_vacuum);
    let current = setup.location().open("participants").await.expect("table");
    let used: Vec<String> = current.get_file_uris().expect("files").collect();
    assert_eq!(kept, used.len(), "no file of an old version is left");
    drop(transform);

    // Nor does a restart bring anything of hers back.
    let mut transform = setup.transform().await;
    transform.catch_up().await.expect("catch up");
    drop(transform);
    let all: HashMap<&str, usize> = HashMap::from([
        (
            "participants",
            count(&rows_at(&setup.location(), "participants").await),
        ),
        (
            "attendances",
            count(&rows_at(&setup.location(), "attendances").await),
        ),
    ]);
    assert_eq!(
        all,
        HashMap::from([("participants", 1), ("attendances", 2)])
    );
}

/// A reference registered again with another e-mail address stays one person: one
/// pseudonym for all their rows, all erased by a withdrawal, and a registration
/// after the withdrawal is dropped.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_registration_with_a_new_email_keeps_the_pseudonym() {
    let setup = Setup::new();
    let mut transform = setup
        .transform_of(&[
            registration("tec-deventer", "d-1", "Anna", Some("anna@example.org")),
            attendance("tec-deventer", "d-1"),
            registration("tec-deventer", "d-1", "Anna", Some("anna@school.example")),
            attendance("tec-deventer", "d-1"),
            registration("tec-deventer", "d-2", "Bram", Some("bram@example.org")),
        ])
        .await;
    let participants = setup.column("participants", "participant_pseudonym").await;
    assert_eq!(participants.len(), 3);
    // The rows come in no particular order: Anna is the pseudonym seen twice.
    let anna = participants
        .iter()
        .find(|p| participants.iter().filter(|q| q == p).count() == 2)
        .unwrap_or_else(|| panic!("both registrations of d-1 share one: {participants:?}"))
        .clone();
    let attendances = setup.column("attendances", "participant_pseudonym").await;
    assert_eq!(attendances, vec![anna.clone(), anna.clone()]);

    setup
        .append(&[
            withdrawal("tec-deventer", "d-1"),
            registration(
                "tec-deventer",
                "d-1",
                "Anna",
                Some("anna@elsewhere.example"),
            ),
        ])
        .await;
    let progress = transform.catch_up().await.expect("catch up");
    drop(transform);
    assert_eq!(
        progress.erased_rows, 4,
        "two registrations, two attendances"
    );
    assert_eq!(progress.dropped_after_withdrawal, 1);
    let participants = setup.column("participants", "participant_pseudonym").await;
    assert_eq!(participants.len(), 1);
    assert_ne!(participants[0], anna);
    assert_eq!(count(&rows(&setup.lake(), "attendances").await), 0);
}

fn ambassador(hub: &str, reference: &str) -> Value {
    envelope(
        "ambassador_committed",
        hub,
        json!({"ambassador_ref": reference, "name": "Canary Ambassador", "organisation_name": "Wavin"}),
    )
}

/// Version 2 of `consent_withdrawn` names an ambassador: their rows go, their later
/// commitments are dropped, and a participant with the same reference keeps theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ambassador_withdrawal_erases_only_that_ambassador() {
    let setup = Setup::new();
    let mut transform = setup
        .transform_of(&[
            ambassador("tec-deventer", "x-1"),
            ambassador("tec-deventer", "x-2"),
            registration("tec-deventer", "x-1", "Anna", Some("anna@example.org")),
        ])
        .await;
    let before = setup.column("ambassadors", "ambassador_pseudonym").await;
    assert_eq!(before.len(), 2);

    let mut withdrawal = envelope(
        "consent_withdrawn",
        "tec-deventer",
        json!({"participant_ref": "x-1", "subject": "ambassador"}),
    );
    withdrawal["schema_version"] = json!(2);
    setup
        .append(&[withdrawal, ambassador("tec-deventer", "x-1")])
        .await;
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(progress.dead_letters, 0);
    assert_eq!(progress.erased_rows, 1, "one commitment");
    assert_eq!(progress.dropped_after_withdrawal, 1);
    drop(transform);

    let after = setup.column("ambassadors", "ambassador_pseudonym").await;
    assert_eq!(after.len(), 1);
    assert!(before.contains(&after[0]));
    assert_eq!(
        count(&rows(&setup.lake(), "participants").await),
        1,
        "the participant x-1 is another person"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_lake_equals_the_original_row_for_row() {
    let setup = Setup::new();
    let mut events: Vec<Value> = (0..60).map(group).collect();
    events.push(registration(
        "tec-deventer",
        "d-1",
        "Anna",
        Some("anna@example.org"),
    ));
    events.push(registration("newtechpark", "n-1", "Bram", None));
    events.push(attendance("tec-deventer", "d-1"));
    events.push(attendance("newtechpark", "n-1"));
    events.push(withdrawal("newtechpark", "n-1"));
    events.push(envelope(
        "activity_held",
        "techniekfabriek",
        json!({"activity_id": "x", "activity_type": "girlsday", "title": "Girlsday", "starts_at": "2025-04-10T09:00:00+02:00",
               "ends_at": "2025-04-10T15:00:00+02:00", "worlds": [1, 7], "target_groups": ["po", "vo"]}),
    ));
    setup.append(&events).await;
    let mut transform = setup.transform().await;
    transform.catch_up().await.expect("catch up");
    drop(transform);

    let replayed = setup.dir.path().join("replayed");
    let config =
        techmon_transform::replay_config(&setup.config(), setup.dir.path().join("replayed-raw"));
    // Smaller rounds than the original: the result must not depend on them.
    let config = Config {
        max_records_per_partition: 7,
        records_per_read: 3,
        max_round_bytes: 64 << 20,
        max_round_ms: 10_000,
        ..config
    };
    let mut replay = Transform::open(&config, &folder(&replayed), setup.log.clone(), TOPIC)
        .await
        .expect("open replay");
    let mut reports = 0;
    let total = replay
        .catch_up_reporting(|_, done, of| {
            reports += 1;
            assert!(done <= of);
        })
        .await
        .expect("replay");
    assert_eq!(total.read as usize, events.len());
    assert!(reports > 1, "progress is reported per round");
    drop(replay);

    for table in techmon_lake::tables::EVENT_TABLES {
        let original = table_text(&setup.lake(), table.name).await;
        let rebuilt = table_text(&replayed, table.name).await;
        assert_eq!(original, rebuilt, "table {}", table.name);
    }
    assert_eq!(
        table_text(&replayed, "participants").await.len(),
        1,
        "the withdrawn participant stays erased"
    );
}

/// An independent reader (Python `deltalake`, from PyPI) sees the same rows, also
/// after an erasure rewrote files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_independent_reader_sees_the_same_rows() {
    let setup = Setup::new();
    let mut events: Vec<Value> = (0..40).map(group).collect();
    events.push(registration(
        "tec-deventer",
        "d-1",
        "Anna",
        Some("anna@example.org"),
    ));
    events.push(registration(
        "tec-deventer",
        "d-2",
        "Bram",
        Some("bram@example.org"),
    ));
    events.push(withdrawal("tec-deventer", "d-2"));
    setup.append(&events).await;
    let mut transform = setup.transform().await;
    transform.catch_up().await.expect("catch up");
    drop(transform);

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/read_lake.py");
    let output = std::process::Command::new("python3")
        .arg(script)
        .arg(setup.lake())
        .output()
        .expect("python3 runs");
    assert!(
        output.status.success(),
        "the Python reader failed (pip install deltalake pyarrow; .ci/run does): {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let seen: Value = serde_json::from_slice(&output.stdout).expect("json");
    for table in ["group_participations", "participants"] {
        let mut ours = strings(&rows(&setup.lake(), table).await, "event_id");
        ours.sort();
        let theirs: Vec<String> = seen[table]["event_ids"]
            .as_array()
            .expect("ids")
            .iter()
            .map(|v| v.as_str().expect("id").to_string())
            .collect();
        assert_eq!(theirs, ours, "table {table}");
    }
    assert_eq!(seen["participants"]["rows"], 1);
    assert_eq!(seen["group_participations"]["rows"], 40);
}

/// Columns whose values never repeat (and pseudonyms, which seldom do) are written
/// without a dictionary; the others keep theirs.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unique_columns_are_written_without_a_dictionary() {
    let setup = Setup::new();
    let mut events: Vec<Value> = (0..50).map(group).collect();
    events.extend((0..20).map(|n| attendance("tec-deventer", &format!("p-{n}"))));
    setup.append(&events).await;
    let mut transform = setup.transform().await;
    transform.catch_up().await.expect("catch up");
    drop(transform);
    assert_files_keep_the_lake_layout(&setup.lake());
}

/// The data files of `group_participations` and `attendances` have no dictionary for
/// the columns whose values never repeat (the pseudonym among them), and one for
/// `hub_id`.
fn assert_files_keep_the_lake_layout(lake: &Path) {
    use deltalake::parquet::file::reader::{FileReader, SerializedFileReader};

    for (table, without) in [
        ("group_participations", vec![]),
        ("attendances", vec!["participant_pseudonym"]),
    ] {
        let files = parquet_files(&lake.join(table));
        assert!(!files.is_empty(), "{table}");
        for file in files {
            let reader = SerializedFileReader::new(std::fs::File::open(&file).expect("open"))
                .expect("parquet");
            let row_group = reader.metadata().row_group(0);
            let has_dictionary = |name: &str| {
                row_group
                    .columns()
                    .iter()
                    .find(|c| c.column_path().string() == name)
                    .unwrap_or_else(|| panic!("no column {name}"))
                    .dictionary_page_offset()
                    .is_some()
            };
            for column in techmon_lake::tables::UNIQUE_COLUMNS.iter().chain(&without) {
                assert!(!has_dictionary(column), "{column} in {}", file.display());
            }
            assert!(has_dictionary("hub_id"), "hub_id in {}", file.display());
        }
    }
}

/// Every round adds a file per table and school year. A compaction rewrites them into
/// one per school year: the same rows, files written as the rounds write them, and
/// the log positions kept (a restart resumes after them, writing nothing twice). The
/// vacuum after it deletes the replaced files.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_compaction_leaves_one_file_per_school_year_with_the_same_rows() {
    let setup = Setup::new();
    let mut events: Vec<Value> = (0..200).map(group).collect();
    events.extend((0..120).map(|n| attendance("tec-deventer", &format!("p-{n}"))));
    let mut ids = setup.append(&events).await;
    let mut transform = setup.transform().await;
    transform.catch_up().await.expect("catch up");
    let tables = ["group_participations", "attendances"];
    let mut before = Vec::new();
    for table in tables {
        let files = parquet_files(&setup.lake().join(table)).len();
        assert!(
            files > 2,
            "{table}: rounds of 40 records per partition, {files} files"
        );
        before.push((files, table_text(&setup.lake(), table).await));
    }

    let compaction = transform.compact().await.expect("compact");
    let files_before: usize = before.iter().map(|(files, _)| files).sum();
    assert_eq!(compaction.files_removed as usize, files_before);
    // Every event of the test falls in school year 2024/25.
    assert_eq!(compaction.files_added, 2);
    assert!(compaction.tables_skipped.is_empty());
    for (table, (_, text)) in tables.iter().zip(&before) {
        assert_eq!(&table_text(&setup.lake(), table).await, text, "{table}");
    }
    assert_eq!(
        transform
            .vacuum(std::time::Duration::ZERO)
            .await
            .expect("vacuum"),
        files_before
    );
    for table in tables {
        assert_eq!(parquet_files(&setup.lake().join(table)).len(), 1, "{table}");
    }
    assert_files_keep_the_lake_layout(&setup.lake());
    drop(transform);

    let more: Vec<Value> = (200..260).map(group).collect();
    ids.extend(setup.append(&more).await);
    let mut transform = setup.transform().await;
    assert_eq!(transform.catch_up().await.expect("catch up").written, 60);
    let mut lake_ids = setup.column("group_participations", "event_id").await;
    lake_ids.extend(setup.column("attendances", "event_id").await);
    lake_ids.sort();
    ids.sort();
    assert_eq!(lake_ids, ids, "every accepted event once, nothing else");
}

/// The data files under a table, whether its current version uses them or not.
async fn data_files(lake: &LakeLocation, table: &str) -> usize {
    use futures::TryStreamExt as _;
    let delta = lake.open(table).await.expect("table");
    let files: Vec<_> = delta
        .log_store()
        .object_store(None)
        .list(None)
        .try_collect()
        .await
        .expect("list the table");
    files
        .iter()
        .filter(|file| file.location.extension() == Some("parquet"))
        .count()
}

fn parquet_files(dir: &Path) -> Vec<std::path::PathBuf> {
    walk(dir)
        .into_iter()
        .filter(|p| p.extension().is_some_and(|e| e == "parquet"))
        .collect()
}

fn walk(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(walk(&path));
        } else {
            out.push(path);
        }
    }
    out
}

/// Two workers started on the same partitions (a deployment mistake, or an old
/// process still running beside its replacement) race to commit the same log
/// positions. The lake's commits decide: one wins each position, the other's commit
/// is refused, and a refused worker resumes from what the lake holds. No event may
/// land twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_the_same_partitions_never_commit_a_position_twice_in_a_folder() {
    two_workers_never_commit_a_position_twice(Backend::Folder).await;
}

/// In a bucket, only S3's conditional write stands between two workers and a
/// commit written twice.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_on_the_same_partitions_never_commit_a_position_twice_in_a_bucket() {
    two_workers_never_commit_a_position_twice(Backend::Bucket).await;
}

async fn two_workers_never_commit_a_position_twice(backend: Backend) {
    let setup = Setup::on(backend);
    let mut ids = setup.append(&(0..100).map(group).collect::<Vec<_>>()).await;
    let config = |raw: &str| Config {
        raw: setup.dir.path().join(raw),
        ..setup.config()
    };
    let open = |raw: &'static str| {
        let (config, lake, log) = (config(raw), setup.location(), setup.log.clone());
        async move {
            Transform::open(&config, &lake, log, TOPIC)
                .await
                .expect("open transform")
        }
    };
    // Both start from the same lake; the first to commit wins.
    let (mut first, mut second) = (open("raw-a").await, open("raw-b").await);
    assert_eq!(first.catch_up().await.expect("first worker").written, 100);
    let refused = second
        .catch_up()
        .await
        .expect_err("positions already committed");
    assert!(
        matches!(
            refused,
            TransformError::PositionsTaken {
                table: "group_participations",
                ..
            }
        ),
        "{refused}"
    );
    assert_eq!(refused.fault(), techmon_service::Fault::External);
    drop((first, second));
    // Resumed from the lake, it has nothing left to write.
    assert_eq!(
        open("raw-b")
            .await
            .catch_up()
            .await
            .expect("resumed")
            .written,
        0
    );

    // Both at once over a longer backlog, each resuming after every refusal.
    ids.extend(
        setup
            .append(&(100..700).map(group).collect::<Vec<_>>())
            .await,
    );
    let worker = |raw: &'static str| async move {
        loop {
            match open(raw).await.catch_up().await {
                Ok(_) => return,
                Err(e) => assert!(matches!(e, TransformError::PositionsTaken { .. }), "{e}"),
            }
        }
    };
    tokio::join!(worker("raw-a"), worker("raw-b"));
    let mut lake_ids = setup.column("group_participations", "event_id").await;
    lake_ids.sort();
    ids.sort();
    assert_eq!(lake_ids.len(), ids.len(), "no event twice, none lost");
    assert_eq!(lake_ids, ids);
}

/// The lake can be any object store URL, not only a folder: the transform writes
/// through `object_store` (here its in-memory store, which lives as long as the
/// transform holds its tables) and reads its own commits back from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_lake_can_live_in_an_object_store() {
    let setup = Setup::new();
    let ids = setup.append(&(0..50).map(group).collect::<Vec<_>>()).await;
    let lake = LakeLocation::new("memory:///research-lake", StorageOptions::default())
        .expect("an object store URL");
    let mut transform = Transform::open(&setup.config(), &lake, setup.log.clone(), TOPIC)
        .await
        .expect("open transform");
    assert_eq!(transform.lake().root().scheme(), "memory");
    assert_eq!(transform.catch_up().await.expect("catch up").written, 50);
    let held = transform
        .lake()
        .event_ids_in("group_participations", &ids)
        .await
        .expect("query the lake");
    assert_eq!(held.len(), 50, "every event in the object store's table");
    assert!(
        transform
            .lake()
            .versions()
            .contains(&("group_participations", 1)),
        "created, then one round of rows (50 over 3 partitions): {:?}",
        transform.lake().versions()
    );
    // Nothing went to the local disk instead.
    assert!(!std::path::Path::new("memory:").exists());
    assert!(!setup.lake().exists());
}

/// A registration with `consent_research` as given, said at `occurred_at`.
fn registration_consenting(reference: &str, name: &str, consent: bool, occurred_at: &str) -> Value {
    let mut event = registration("tec-deventer", reference, name, None);
    event["payload"]["consent_research"] = json!(consent);
    event["payload"]["sector"] = json!("PO");
    event["payload"]["groep"] = json!(7);
    event["occurred_at"] = json!(occurred_at);
    event
}

fn attendance_at(reference: &str, activity: &str, occurred_at: &str) -> Value {
    let mut event = attendance("tec-deventer", reference);
    event["payload"]["activity_id"] = json!(activity);
    event["occurred_at"] = json!(occurred_at);
    event
}

fn survey_of(reference: &str) -> Value {
    envelope(
        "survey_answered",
        "tec-deventer",
        json!({"activity_id": "act-1", "participant_ref": reference, "respondent_role": "pupil",
               "score": 8, "scale_max": 10}),
    )
}

fn profile_choice_of(reference: &str) -> Value {
    envelope(
        "profile_chosen",
        "tec-deventer",
        json!({"school_brin6": "20ZZ01", "school_year": "2025/26", "leerjaar": 3, "onderwijstype": "vmbo-kb",
               "profile_code": "PIE", "count": 1, "participant_ref": reference}),
    )
}

fn trajectory_of(reference: &str) -> Value {
    envelope(
        "trajectory_started",
        "tec-deventer",
        json!({"trajectory_id": "LWR-1", "participant_ref": reference, "route": "Leerwerkroute Techniek"}),
    )
}

/// The counts of people without consent: (measure, hub, school year, band, role) →
/// people.
async fn counts_without_consent(
    setup: &Setup,
) -> Vec<(String, String, String, String, String, i64)> {
    let batches = rows_at(&setup.location(), "participation_without_consent").await;
    let text = |column| strings_with_nulls(&batches, column);
    let people: Vec<i64> = batches
        .iter()
        .flat_map(|b| {
            let p = b.column_by_name("people").expect("people");
            let p = p.as_primitive::<deltalake::arrow::datatypes::Int64Type>();
            (0..p.len()).map(|i| p.value(i)).collect::<Vec<_>>()
        })
        .collect();
    let (measure, hub, year, band, role) = (
        text("measure"),
        text("hub_id"),
        text("school_year"),
        text("band"),
        text("role"),
    );
    let mut out: Vec<_> = (0..people.len())
        .map(|i| {
            (
                measure[i].clone(),
                hub[i].clone(),
                year[i].clone(),
                band[i].clone(),
                role[i].clone(),
                people[i],
            )
        })
        .collect();
    out.sort();
    out
}

/// A column as text, nulls as "∅".
fn strings_with_nulls(batches: &[RecordBatch], column: &str) -> Vec<String> {
    let mut out = Vec::new();
    for batch in batches {
        let array = batch.column_by_name(column).expect("column");
        let array =
            deltalake::arrow::compute::cast(array, &deltalake::arrow::datatypes::DataType::Utf8)
                .expect("cast");
        let array = array.as_string::<i32>();
        out.extend((0..array.len()).map(|i| {
            if array.is_valid(i) {
                array.value(i).to_string()
            } else {
                "∅".to_string()
            }
        }));
    }
    out
}

/// Everything of a person without research consent stays out of the research tables:
/// no registration, attendance or route, answers and choices without the person; what
/// the KPIs count of them is a count per group, each person once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_consent_no_person_row_reaches_the_research_tables() {
    let setup = Setup::new();
    let at = "2024-10-03T09:00:00+02:00";
    let transform = setup
        .transform_of(&[
            registration_consenting("d-1", "Anna", true, at),
            registration_consenting("d-2", "Bram", false, at),
            registration_consenting("d-3", "Cas", false, at),
            attendance_at("d-1", "act-1", at),
            attendance_at("d-2", "act-1", at),
            attendance_at("d-2", "act-2", at),
            attendance_at("d-3", "act-1", "2025-10-03T09:00:00+02:00"),
            survey_of("d-1"),
            survey_of("d-2"),
            profile_choice_of("d-2"),
            trajectory_of("d-2"),
        ])
        .await;
    drop(transform);
    let participants = setup.column("participants", "participant_pseudonym").await;
    assert_eq!(participants.len(), 1, "only Anna's registration");
    let anna = participants[0].clone();
    assert_eq!(
        setup.column("attendances", "participant_pseudonym").await,
        vec![anna.clone()]
    );
    // Both answers stay; Bram's without him.
    let surveys = rows_at(&setup.location(), "survey_answers").await;
    assert_eq!(count(&surveys), 2);
    assert_eq!(
        strings(&surveys, "participant_pseudonym"),
        vec![anna.clone()]
    );
    assert_eq!(strings(&surveys, "pseudonym_key_id").len(), 1);
    let choices = rows_at(&setup.location(), "profile_choices").await;
    assert_eq!(count(&choices), 1);
    assert!(strings(&choices, "participant_pseudonym").is_empty());
    assert_eq!(
        count(&rows_at(&setup.location(), "trajectory_events").await),
        0
    );
    // Bram once in 2024/25 (two activities), Cas once in 2025/26.
    let g78 = "groep_7_8".to_string();
    assert_eq!(
        counts_without_consent(&setup).await,
        vec![
            (
                "reach".into(),
                "tec-deventer".into(),
                "2024/25".into(),
                g78.clone(),
                "pupil".into(),
                1
            ),
            (
                "reach".into(),
                "tec-deventer".into(),
                "2025/26".into(),
                g78,
                "pupil".into(),
                1
            ),
        ]
    );
}

/// Consent given after a refusal brings the person's rows in from then on; taken
/// back, it takes the rows in the lake out again; the counts follow, each person once
/// per group whichever way they are counted.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn consent_given_later_and_taken_back_later() {
    let setup = Setup::new();
    let g78 = "groep_7_8".to_string();
    let reach = |year: &str, people| {
        (
            "reach".to_string(),
            "tec-deventer".to_string(),
            year.to_string(),
            g78.clone(),
            "pupil".to_string(),
            people,
        )
    };
    let mut transform = setup
        .transform_of(&[
            registration_consenting("d-1", "Dewi", false, "2024-09-01T09:00:00+02:00"),
            attendance_at("d-1", "act-1", "2024-10-01T09:00:00+02:00"),
        ])
        .await;
    assert!(
        setup
            .column("participants", "participant_pseudonym")
            .await
            .is_empty()
    );
    assert_eq!(
        counts_without_consent(&setup).await,
        vec![reach("2024/25", 1)]
    );

    // Consent given: her next attendances are research rows. In 2024/25 she is counted
    // already (not twice); 2025/26 is hers in the research tables only.
    setup
        .append(&[
            registration_consenting("d-1", "Dewi", true, "2024-11-01T09:00:00+02:00"),
            attendance_at("d-1", "act-2", "2024-11-02T09:00:00+02:00"),
            attendance_at("d-1", "act-3", "2025-10-02T09:00:00+02:00"),
        ])
        .await;
    transform.catch_up().await.expect("catch up");
    let participants = setup.column("participants", "participant_pseudonym").await;
    assert_eq!(participants.len(), 1, "the registration that consents");
    let dewi = participants[0].clone();
    assert_eq!(
        setup.column("attendances", "participant_pseudonym").await,
        vec![dewi.clone(), dewi.clone()]
    );
    assert_eq!(
        counts_without_consent(&setup).await,
        vec![],
        "2024/25 is counted by her research row now; the withheld one is not counted twice"
    );

    // Consent taken back: her rows leave the research tables, and she is counted.
    setup
        .append(&[
            registration_consenting("d-1", "Dewi", false, "2025-12-01T09:00:00+01:00"),
            survey_of("d-1"),
        ])
        .await;
    let progress = transform.catch_up().await.expect("catch up");
    assert_eq!(
        progress.withheld_rows, 3,
        "a registration and two attendances"
    );
    assert!(
        setup
            .column("participants", "participant_pseudonym")
            .await
            .is_empty()
    );
    assert!(
        setup
            .column("attendances", "participant_pseudonym")
            .await
            .is_empty()
    );
    assert!(
        setup
            .column("survey_answers", "participant_pseudonym")
            .await
            .is_empty()
    );
    assert_eq!(
        count(&rows_at(&setup.location(), "survey_answers").await),
        1
    );
    assert_eq!(
        counts_without_consent(&setup).await,
        vec![reach("2024/25", 1), reach("2025/26", 1)]
    );
    drop(transform);

    // A restart, and a replay from the log, leave the same.
    let transform = setup.transform().await;
    drop(transform);
    assert_eq!(
        counts_without_consent(&setup).await,
        vec![reach("2024/25", 1), reach("2025/26", 1)]
    );
    let replay =
        techmon_transform::replay_config(&setup.config(), setup.dir.path().join("replayed-raw"));
    let replayed_lake = folder(&setup.dir.path().join("replayed"));
    let mut replayed = Transform::open(&replay, &replayed_lake, setup.log.clone(), TOPIC)
        .await
        .expect("replay");
    replayed.catch_up().await.expect("replay catch up");
    drop(replayed);
    let again = rows(
        &setup.dir.path().join("replayed"),
        "participation_without_consent",
    )
    .await;
    assert_eq!(count(&again), 2);
    assert_eq!(
        count(&rows(&setup.dir.path().join("replayed"), "participants").await),
        0
    );
}

/// An attendance sent before the registration that refuses consent is taken out too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rows_before_a_refusing_registration_are_withheld() {
    let setup = Setup::new();
    let mut transform = setup
        .transform_of(&[attendance_at("d-9", "act-1", "2024-10-01T09:00:00+02:00")])
        .await;
    assert_eq!(
        setup
            .column("attendances", "participant_pseudonym")
            .await
            .len(),
        1
    );
    setup
        .append(&[registration_consenting(
            "d-9",
            "Eva",
            false,
            "2024-10-02T09:00:00+02:00",
        )])
        .await;
    let progress = transform.catch_up().await.expect("catch up");
    drop(transform);
    assert_eq!(progress.withheld_rows, 1);
    assert!(
        setup
            .column("attendances", "participant_pseudonym")
            .await
            .is_empty()
    );
    assert!(
        setup
            .column("participants", "participant_pseudonym")
            .await
            .is_empty()
    );
    assert_eq!(
        counts_without_consent(&setup).await,
        vec![(
            "reach".into(),
            "tec-deventer".into(),
            "2024/25".into(),
            "groep_7_8".into(),
            "pupil".into(),
            1
        )]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_log_keeps_what_the_lake_has_not_read_and_deletes_the_rest_past_retention() {
    let dir = tempfile::tempdir().expect("tempdir");
    // A retention of nothing: whatever the lake holds may go at once.
    let log = EmbeddedLog::open(&dir.path().join("events.redb"), 3, 16)
        .expect("log")
        .with_retention(Some(std::time::Duration::ZERO));
    let setup = Setup::with_log(dir, Arc::new(log));
    let groups: Vec<Value> = (0..100).map(group).collect();
    let mut ids = setup.append(&groups).await;
    // A schema version the transform does not know: a dead letter, its event kept.
    let mut future = group(999);
    future["schema_version"] = json!(7);
    setup.append(&[future]).await;
    let mut transform = setup.transform().await;
    assert_eq!(transform.catch_up().await.expect("catch up").written, 100);
    assert_eq!(
        transform
            .state()
            .dead_letters()
            .expect("dead letters")
            .len(),
        1
    );
    // Stored a moment before now, so older than the retention.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let unread: Vec<Value> = (100..150).map(group).collect();
    ids.extend(setup.append(&unread).await);

    assert_eq!(
        transform.trim_log().await.expect("trim"),
        101,
        "what the lake read, the dead letter's event too"
    );
    assert!(
        transform
            .state()
            .dead_letters()
            .expect("dead letters")
            .is_empty(),
        "the dead letter's copy goes by the same retention"
    );
    let mut kept = 0;
    for partition in 0..3 {
        let start = setup.log.start_offset(partition).await.expect("start");
        let end = setup.log.end_offset(partition).await.expect("end");
        kept += end - start;
        let first = setup.log.read(partition, 0, 1).await.expect("read");
        assert_eq!(
            first.first().map(|r| r.offset),
            (end > start).then_some(start),
            "a read from 0 starts at the first record kept"
        );
    }
    assert_eq!(kept, 50, "the events the lake has not read stay");

    // A restart reads the rest from where the lake stands: each event once.
    drop(transform);
    let mut transform = setup.transform().await;
    assert_eq!(transform.catch_up().await.expect("catch up").written, 50);
    let mut lake_ids = strings(
        &rows_at(&setup.location(), "group_participations").await,
        "event_id",
    );
    lake_ids.sort();
    ids.sort();
    assert_eq!(lake_ids, ids);
}

/// The Delta protocol every table asks of its readers and writers, as the table's own
/// log says it (read as JSON, not through deltalake): Spark's and Trino's Delta
/// connectors read the lake, so a dependency upgrade must not raise it unnoticed.
/// The protocol is documented in the README ("The research lake").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_table_keeps_the_documented_delta_protocol() {
    let setup = Setup::new();
    let mut events: Vec<Value> = (0..10).map(group).collect();
    events.push(registration("tec-deventer", "d-1", "Anna", None));
    events.push(attendance("tec-deventer", "d-1"));
    events.push(withdrawal("tec-deventer", "d-1"));
    setup.append(&events).await;
    let mut transform = setup.transform().await;
    transform.catch_up().await.expect("catch up");
    drop(transform);
    let mut tables: Vec<_> = std::fs::read_dir(setup.lake())
        .expect("the lake")
        .map(|entry| entry.expect("an entry").path())
        .filter(|path| path.join("_delta_log").is_dir())
        .collect();
    tables.sort();
    assert!(
        tables.len() >= techmon_lake::tables::EVENT_TABLES.len(),
        "{tables:?}"
    );
    for table in tables {
        let mut commits: Vec<_> = std::fs::read_dir(table.join("_delta_log"))
            .expect("the table's log")
            .map(|entry| entry.expect("an entry").path())
            .filter(|path| path.extension().is_some_and(|e| e == "json"))
            .collect();
        commits.sort();
        let (mut protocol, mut configuration) = (None, None);
        for commit in &commits {
            let text = std::fs::read_to_string(commit).expect("a commit");
            for action in text.lines() {
                let action: Value = serde_json::from_str(action).expect("an action");
                if let Some(p) = action.get("protocol") {
                    protocol = Some(p.clone());
                }
                if let Some(c) = action.pointer("/metaData/configuration") {
                    configuration = Some(c.clone());
                }
            }
        }
        // Reader 1 and writer 2, without table features: what every Delta reader
        // takes (no column mapping, deletion vectors or change data feed).
        assert_eq!(
            protocol,
            Some(json!({"minReaderVersion": 1, "minWriterVersion": 2})),
            "{}",
            table.display()
        );
        let raising = [
            "delta.columnMapping",
            "delta.enableDeletionVectors",
            "delta.enableChangeDataFeed",
            "delta.feature.",
        ];
        for key in configuration
            .as_ref()
            .and_then(Value::as_object)
            .into_iter()
            .flat_map(|c| c.keys())
        {
            assert!(
                !raising.iter().any(|r| key.starts_with(r)),
                "{}: table property {key} needs a higher protocol",
                table.display()
            );
        }
    }
}
