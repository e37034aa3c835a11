//! Privacy scan: events carrying planted canary values in every personal field go
//! through the whole pipeline (HTTP ingest, event log, transform); no canary appears
//! in any file of the lake, the event log or the raw zone, in the service's log
//! output, or in an HTTP answer — including the answers to records that are rejected.
//! And crypto-shredding: a withdrawal destroys the key the person's fields are
//! sealed under in the log (embedded and Kafka), and a replay then rebuilds the lake
//! without them and with everyone else's rows as they were.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::{free_port, lake_event_ids, lake_in_folder, start, wait_ready};
use serde_json::{Value, json};
use uuid::Uuid;

const CANARIES: &[&str] = &[
    "Kanarie",             // names
    "kanarie@example.org", // e-mail
    "0612987654",          // phone
    "2011-03-09",          // birth date
    "7413 XK",             // postcode
    "Kanariestraat",       // street address
    "LLN-KANARIE",         // pupil number
    "Vrije tekst kanarie", // free text
];

fn envelope(kind: &str, payload: Value) -> Value {
    json!({"event_id": Uuid::new_v4(), "event_type": kind, "schema_version": 1, "hub_id": "tec-deventer",
           "occurred_at": "2025-02-11T10:00:00+01:00", "sent_at": "2025-02-11T18:00:00+01:00", "payload": payload})
}

fn registration(n: usize) -> Value {
    envelope(
        "participant_registered",
        json!({"participant_ref": format!("ref-{n}"), "name": format!("Anna Kanarie {n}"), "email": "kanarie@example.org",
               "phone": "0612987654", "birth_date": "2011-03-09", "postcode": "7413 XK",
               "street_address": "Kanariestraat 7", "pupil_number": "LLN-KANARIE", "gender": "female",
               "role": "pupil", "consent_research": true, "notes": "Vrije tekst kanarie"}),
    )
}

fn files_under(dir: &Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path))
        } else {
            out.push(path)
        }
    }
    out
}

/// Every value of every column of a Parquet file, as text, a line each: the file's
/// bytes are zstd-compressed, so a canary in a value shows only here.
fn parquet_values(bytes: &[u8]) -> String {
    use deltalake::arrow::util::display::array_value_to_string;
    let reader = deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .expect("a Parquet file")
    .build()
    .expect("a reader");
    let mut text = String::new();
    for batch in reader {
        let batch = batch.expect("a batch");
        for column in batch.columns() {
            for row in 0..column.len() {
                text.push_str(&array_value_to_string(column, row).expect("a value as text"));
                text.push('\n');
            }
        }
    }
    text
}

fn assert_clean(what: &str, bytes: &[u8]) {
    for canary in CANARIES {
        let found = bytes
            .windows(canary.len())
            .any(|w| w.eq_ignore_ascii_case(canary.as_bytes()));
        assert!(!found, "canary {canary:?} found in {what}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_canary_reaches_the_lake_the_log_output_or_an_answer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    // The most talkative log level the service has.
    let service = start(
        dir.path(),
        port,
        "embedded",
        "privacy",
        &[("RUST_LOG", "debug")],
    );
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&url, dir.path()).await;

    let mut valid: Vec<Value> = (0..5).map(registration).collect();
    valid.push(envelope(
        "participant_attended",
        json!({"activity_id": "a-1", "participant_ref": "ref-1"}),
    ));
    valid.push(envelope(
        "survey_answered",
        json!({"activity_id": "a-1", "participant_ref": "ref-2", "respondent_role": "pupil", "score": 8, "scale_max": 10,
               "comment": "Vrije tekst kanarie"}),
    ));
    valid.push(envelope(
        "ambassador_committed",
        json!({"ambassador_ref": "amb-1", "name": "Kanarie Bakker", "email": "kanarie@example.org", "organisation_name": "Bakkerij"}),
    ));
    // Rejected records with canaries in every kind of wrong place.
    let mut wrong_type = registration(90);
    wrong_type["payload"]["gender"] = json!("kanarie@example.org");
    let mut bad_format = registration(91);
    bad_format["payload"]["birth_date"] = json!("Kanarie 2011-03-09");
    bad_format["payload"]["postcode"] = json!("Kanariestraat");
    // Field names are echoed (a hub must learn which field is wrong), values never.
    let mut unknown_field = registration(92);
    unknown_field["payload"]["favourite_street"] = json!("Kanariestraat 0612987654");
    let mut other_hub = registration(93);
    other_hub["hub_id"] = json!("newtechpark");
    let invalid = [wrong_type, bad_format, unknown_field, other_hub];

    let mut answers = Vec::new();
    let body: String = valid
        .iter()
        .chain(&invalid)
        .map(|e| format!("{e}\n"))
        .collect();
    let answer = client
        .post(format!("{url}/v1/events"))
        .bearer_auth("dev-token-tec-deventer")
        .header("content-type", "application/x-ndjson")
        .body(body)
        .send()
        .await
        .expect("push");
    answers.push(answer.text().await.expect("answer"));
    let csv = "event_id,hub_id,occurred_at,sent_at,participant_ref,name,email,gender,role,consent_research\n\
               6f1d8a52-0f4e-4b8e-a7a3-0c9f0e6b2d99,tec-deventer,2025-02-11T10:00:00+01:00,2025-02-11T18:00:00+01:00,r,Kanarie,kanarie@example.org,Kanariestraat,pupil,0612987654\n";
    let answer = client
        .post(format!("{url}/v1/feeds/participant_registered"))
        .bearer_auth("dev-token-tec-deventer")
        .body(csv)
        .send()
        .await
        .expect("push csv");
    answers.push(answer.text().await.expect("answer"));
    let parsed: Value = serde_json::from_str(&answers[0]).expect("json answer");
    assert_eq!(
        (parsed["accepted"].as_u64(), parsed["rejected"].as_u64()),
        (Some(8), Some(4)),
        "{}",
        answers[0]
    );

    // Wait for the transform.
    let lake = dir.path().join("techmon-data/lake");
    let location = lake_in_folder(dir.path());
    let tables = [
        "participants",
        "attendances",
        "survey_answers",
        "ambassadors",
    ];
    let deadline = Instant::now() + Duration::from_secs(60);
    while lake_event_ids(&location, &tables).await.len() < valid.len() {
        assert!(Instant::now() < deadline, "the transform did not catch up");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let metrics = common::metrics(&url).await;
    drop(service);
    for metric in [
        "techmon_ingest_records_accepted_total 8",
        "techmon_transform_rows_written_total",
        "techmon_transform_lag_events",
    ] {
        assert!(
            metrics.contains(metric),
            "{metric} missing from /metrics:\n{metrics}"
        );
    }
    assert_clean("the metrics", metrics.as_bytes());

    let files = files_under(&lake);
    assert!(
        files
            .iter()
            .any(|f| f.extension().is_some_and(|e| e == "parquet"))
    );
    let mut values_read = 0;
    for file in files {
        let bytes = std::fs::read(&file).expect("read");
        assert_clean(&file.display().to_string(), &bytes);
        if file.extension().is_some_and(|e| e == "parquet") {
            let values = parquet_values(&bytes);
            values_read += values.lines().count();
            assert_clean(
                &format!("the values of {}", file.display()),
                values.as_bytes(),
            );
        }
    }
    assert!(values_read > 0, "the lake's files hold values");
    // The event log and the raw zone hold the personal fields sealed, never plain.
    let log_file = dir.path().join("techmon-data/events.redb");
    assert_clean(
        "the event log",
        &std::fs::read(&log_file).expect("events.redb"),
    );
    for file in files_under(&dir.path().join("techmon-data/raw")) {
        assert_clean(
            &file.display().to_string(),
            &std::fs::read(&file).expect("read"),
        );
    }
    let log = std::fs::read(dir.path().join("serve.log")).expect("serve.log");
    assert!(log.len() > 100, "the service logged at debug level");
    assert_clean("the service's log output", &log);
    for answer in &answers {
        assert_clean("an HTTP answer", answer.as_bytes());
    }
}

async fn push(client: &reqwest::Client, url: &str, events: &[Value]) {
    let body: String = events.iter().map(|e| format!("{e}\n")).collect();
    let answer: Value = client
        .post(format!("{url}/v1/events"))
        .bearer_auth("dev-token-tec-deventer")
        .body(body)
        .send()
        .await
        .expect("push")
        .json()
        .await
        .expect("answer");
    assert_eq!(
        answer["accepted"].as_u64(),
        Some(events.len() as u64),
        "{answer}"
    );
}

/// The participant pseudonyms of a lake table, sorted.
async fn pseudonyms(lake: &std::path::Path, table: &str) -> Vec<String> {
    let location = techmon_lake::LakeLocation::new(&lake.to_string_lossy(), Default::default())
        .expect("folder");
    let delta = location.open(table).await.expect("table");
    let batches = techmon_lake::session_over(&delta, "t")
        .await
        .expect("session")
        .sql("SELECT participant_pseudonym FROM t")
        .await
        .expect("sql")
        .collect()
        .await
        .expect("rows");
    let mut out = Vec::new();
    for batch in batches {
        use deltalake::arrow::array::{Array, AsArray};
        let column = deltalake::arrow::compute::cast(
            batch.column(0),
            &deltalake::arrow::datatypes::DataType::Utf8,
        )
        .expect("text");
        let column = column.as_string::<i32>();
        out.extend((0..column.len()).map(|i| column.value(i).to_string()));
    }
    out.sort();
    out
}

async fn withdrawal_shreds_the_sealed_fields(backend: &str) {
    let dir = tempfile::tempdir().expect("tempdir");
    let port = free_port();
    let topic = format!("shred-{}", Uuid::new_v4());
    let service = start(dir.path(), port, backend, &topic, &[]);
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    wait_ready(&url, dir.path()).await;
    // Anna (the canaries) and Bram; both attend.
    let anna = registration(1);
    let mut bram = registration(2);
    for field in [
        "name",
        "email",
        "phone",
        "street_address",
        "pupil_number",
        "notes",
    ] {
        bram["payload"][field] = json!(format!("Bram {field}"));
    }
    bram["payload"]["email"] = json!("bram@example.org");
    bram["payload"]["birth_date"] = json!("2012-01-01");
    bram["payload"]["postcode"] = json!("7411 AB");
    let attend = |reference: &str| {
        envelope(
            "participant_attended",
            json!({"activity_id": "a-1", "participant_ref": reference}),
        )
    };
    push(
        &client,
        &url,
        &[anna.clone(), bram.clone(), attend("ref-1"), attend("ref-2")],
    )
    .await;
    let lake = dir.path().join("techmon-data/lake");
    let wait_for = |table: &'static str, rows: usize| {
        let lake = lake.clone();
        async move {
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                let found = pseudonyms(&lake, table).await;
                if found.len() == rows {
                    return found;
                }
                assert!(
                    Instant::now() < deadline,
                    "{table}: {} rows, not {rows}",
                    found.len()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    };
    let before = wait_for("participants", 2).await;
    wait_for("attendances", 2).await;
    let keys = dir.path().join("techmon-data/raw/person-keys");
    assert_eq!(
        std::fs::read_dir(&keys).expect("keys").count(),
        2,
        "a key per person"
    );

    push(
        &client,
        &url,
        &[envelope(
            "consent_withdrawn",
            json!({"participant_ref": "ref-1"}),
        )],
    )
    .await;
    let after = wait_for("participants", 1).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&keys).expect("keys").count() != 1 {
        assert!(Instant::now() < deadline, "Anna's key was not destroyed");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    // The erasure is in the audit trail (written once the keys are gone).
    let trail = loop {
        let trail = techmon_service::audit::read(
            &dir.path().join("techmon-data/audit"),
            &techmon_service::audit::AuditFilter::default(),
        )
        .expect("audit trail");
        if trail
            .iter()
            .any(|e| e.action == techmon_service::audit::AuditAction::Erasure)
            || Instant::now() > deadline
        {
            break trail;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    drop(service);
    let erasures: Vec<_> = trail
        .iter()
        .filter(|e| e.action == techmon_service::audit::AuditAction::Erasure)
        .collect();
    assert_eq!(erasures.len(), 1, "{trail:?}");
    assert!(
        erasures[0].detail.as_deref().is_some_and(
            |d| d.contains("lake rows of 1 participant(s) erased, 1 person key(s) destroyed")
        ),
        "{:?}",
        erasures[0]
    );

    // Every record of the log: Anna's fields cannot be opened, Bram's can.
    let mut config = techmon::config::load(None).expect("defaults");
    config.log.backend = if backend == "kafka" {
        techmon_eventlog::Backend::Kafka
    } else {
        techmon_eventlog::Backend::Embedded
    };
    config.log.topic = topic.clone();
    config.log.embedded.path = dir.path().join("techmon-data/events.redb");
    config.log.kafka.event_id_index = dir.path().join("techmon-data/kafka-event-ids.redb");
    if let Ok(brokers) = std::env::var("TECHMON_KAFKA_BROKERS") {
        config.log.kafka.brokers = brokers;
    }
    config.lake.url = lake.to_string_lossy().into_owned();
    config.transform.raw = dir.path().join("techmon-data/raw");
    config.transform.person_keys = keys.clone();
    let log = techmon_eventlog::open(&config.log).await.expect("log");
    let person_keys = techmon_eventlog::person_keys::PersonKeys::open(&keys).expect("keys");
    let mut outcomes = Vec::new();
    for partition in 0..log.partitions() {
        for record in log.read(partition, 0, usize::MAX).await.expect("read") {
            assert_clean("a record of the event log", &record.payload);
            let mut value: Value = serde_json::from_slice(&record.payload).expect("json");
            let outcome = person_keys
                .unseal(record.event_id, &mut value)
                .expect("unseal");
            if value["event_type"] == "participant_registered" {
                outcomes.push((value["payload"]["participant_ref"].clone(), outcome));
                if outcome == techmon_eventlog::person_keys::Unsealed::Opened {
                    assert_eq!(value["payload"]["email"], "bram@example.org");
                }
            }
        }
    }
    outcomes.sort_by_key(|(r, _)| r.to_string());
    use techmon_eventlog::person_keys::Unsealed;
    assert_eq!(
        outcomes,
        vec![
            (json!("ref-1"), Unsealed::Shredded),
            (json!("ref-2"), Unsealed::Opened)
        ]
    );

    drop(log);
    // A replay: the lake without Anna, Bram's rows as they were.
    let replayed = dir.path().join("replayed");
    let replay =
        techmon_transform::replay_config(&config.transform, dir.path().join("replayed-raw"));
    techmon::rebuild::rebuild(&config, &replay, &replayed.to_string_lossy(), "replayed")
        .await
        .expect("replay");
    assert_eq!(pseudonyms(&replayed, "participants").await, after);
    assert_eq!(pseudonyms(&replayed, "attendances").await, after);
    assert!(before.contains(&after[0]));

    if backend == "embedded" {
        // Past the retention the log lost records the lake holds: a rebuild refuses.
        use techmon_eventlog::EventLog as _;
        let log = techmon_eventlog::embedded::EmbeddedLog::open(
            &config.log.embedded.path,
            config.log.partitions,
            16,
        )
        .expect("log");
        let mut trimmed = 0;
        for partition in 0..config.log.partitions {
            let end = log.end_offset(partition).await.expect("end");
            trimmed += log.trim(partition, end, i64::MAX).await.expect("trim");
        }
        assert!(trimmed > 0, "the log held records");
        drop(log);
        let again =
            techmon_transform::replay_config(&config.transform, dir.path().join("again-raw"));
        let to = dir.path().join("again");
        let refused = techmon::rebuild::rebuild(&config, &again, &to.to_string_lossy(), "replayed")
            .await
            .expect_err("a rebuild from a trimmed log");
        assert!(
            refused.to_string().contains("no longer holds partition"),
            "{refused}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_shreds_the_sealed_fields_in_the_embedded_log() {
    withdrawal_shreds_the_sealed_fields("embedded").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_withdrawal_shreds_the_sealed_fields_in_kafka() {
    assert!(
        std::env::var("TECHMON_KAFKA_BROKERS").is_ok(),
        "TECHMON_KAFKA_BROKERS is not set: bash .ci/test starts a broker"
    );
    withdrawal_shreds_the_sealed_fields("kafka").await;
}
