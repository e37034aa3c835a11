//! End to end: `techmon push` of a CSV and an NDJSON file to a running ingest on the
//! Kafka backend (broker at `TECHMON_KAFKA_BROKERS`, started by `.ci/test`) lands
//! every valid record in the log and reports every rejected one.

mod common;

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use common::free_port;
use serde_json::{Value, json};
use techmon_eventlog::EventLog;
use techmon_eventlog::KafkaConfig;
use techmon_eventlog::kafka::KafkaLog;
use techmon_ingest::Config;
use techmon_service::{HubCredential, token_sha256};
use uuid::Uuid;

const TOKEN: &str = "e2e-token-techniekbrouwerij";
const HUB: &str = "techniekbrouwerij";

async fn kafka_log(dir: &Path) -> Arc<dyn EventLog> {
    let brokers = std::env::var("TECHMON_KAFKA_BROKERS")
        .expect("TECHMON_KAFKA_BROKERS is not set: start a Kafka-protocol broker (bash .ci/test does) and set it");
    let config = KafkaConfig {
        brokers: brokers.clone(),
        create_topics: true,
        replication_factor: 1,
        message_timeout_ms: 10_000,
        request_timeout_ms: 10_000,
        event_id_index: dir.join("event-ids.redb"),
        librdkafka: BTreeMap::new(),
    };
    let topic = format!("e2e-{}", Uuid::new_v4());
    Arc::new(
        KafkaLog::connect(&config, &topic, 3, None)
            .await
            .unwrap_or_else(|e| panic!("no broker at {brokers}: {e}")),
    )
}

/// Serves the ingest API for the hub on `port` until the sender is used or dropped.
fn serve_ingest(
    log: Arc<dyn EventLog>,
    port: u16,
) -> (
    tokio::sync::oneshot::Sender<()>,
    tokio::task::JoinHandle<Result<(), techmon_service::ServiceError>>,
) {
    let config = Config {
        listen: format!("127.0.0.1:{port}").parse().expect("addr"),
        max_body_bytes: 1 << 20,
        max_records_per_request: 1000,
        retry_after_seconds: 1,
        hubs: vec![HubCredential {
            hub_id: HUB.into(),
            token_sha256: token_sha256(TOKEN),
        }],
    };
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(async move {
        let router = techmon_ingest::build(&config, log)?;
        techmon_ingest::run(&config, router, async {
            let _ = stopped.await;
        })
        .await
    });
    (stop, server)
}

/// A workbook of one sheet, `Blad1`, of classes at one school: per row its date (as
/// a spreadsheet stores it), activity, groep and number of girls.
fn class_sheet(rows: &[(f64, &str, &str, u32)]) -> Vec<u8> {
    let mut workbook = rust_xlsxwriter::Workbook::new();
    let sheet = workbook.add_worksheet();
    sheet.set_name("Blad1").expect("name");
    let date = rust_xlsxwriter::Format::new().set_num_format("d-m-yyyy h:mm");
    let header = "datum activiteit school sector groep schooljaar meisjes jongens";
    for (c, name) in header.split(' ').enumerate() {
        sheet.write_string(0, c as u16, name).expect("header");
    }
    for (r, (serial, activity, groep, girls)) in rows.iter().enumerate() {
        let r = r as u32 + 1;
        sheet
            .write_number_with_format(r, 0, *serial, &date)
            .expect("date");
        for (c, text) in [
            (1, *activity),
            (2, "12AB00"),
            (3, "PO"),
            (4, *groep),
            (5, "2024/25"),
        ] {
            sheet.write_string(r, c, text).expect("cell");
        }
        sheet.write_number(r, 6, *girls).expect("girls");
        sheet.write_number(r, 7, 14).expect("boys");
    }
    workbook.save_to_buffer().expect("workbook")
}

/// `techmon push` of `files` in batches of 10 to the service on `port`.
fn push_command(port: u16, rejects: &Path, files: &[&Path]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_techmon"));
    command
        .args([
            "push",
            "--url",
            &format!("http://127.0.0.1:{port}"),
            "--batch-size",
            "10",
            "--rejects",
        ])
        .arg(rejects)
        .args(files)
        .env("TECHMON_TOKEN", TOKEN);
    command
}

fn participant(line: usize) -> Value {
    json!({
        "event_id": Uuid::new_v4(),
        "event_type": "participant_registered",
        "schema_version": 1,
        "hub_id": HUB,
        "occurred_at": "2025-03-12T14:00:00+01:00",
        "sent_at": "2025-03-12T18:00:00+01:00",
        "payload": {
            "participant_ref": format!("p-{line}"),
            "name": "Canary Jansen",
            "email": "canary@example.org",
            "birth_date": "2012-05-04",
            "postcode": "8161 AB",
            "gender": "female",
            "role": "pupil",
            "consent_research": true
        }
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_lands_every_valid_record_of_csv_and_ndjson_files_and_retries_until_the_service_is_up()
{
    let dir = tempfile::tempdir().expect("tempdir");
    let log = kafka_log(dir.path()).await;

    // NDJSON: 25 valid records, one with a wrong type at line 7, one for another hub at line 12.
    let mut valid_ids = HashSet::new();
    let mut ndjson = String::new();
    for line in 1..=27 {
        let mut record = participant(line);
        match line {
            7 => record["payload"]["gender"] = json!(3),
            12 => record["hub_id"] = json!("newtechpark"),
            _ => {
                valid_ids.insert(record["event_id"].as_str().expect("id").to_string());
            }
        }
        ndjson.push_str(&format!("{record}\n"));
    }
    // CSV: 12 valid rows, one with an unknown sector at file line 5.
    let mut csv = String::from(
        "event_id,hub_id,occurred_at,sent_at,activity_id,school_brin6,sector,groep,school_year,participants.girls,participants.boys\n",
    );
    for row in 0..13 {
        let id = Uuid::new_v4().to_string();
        let sector = if row == 3 { "kleuterschool" } else { "PO" };
        if row != 3 {
            valid_ids.insert(id.clone());
        }
        csv.push_str(&format!(
            "{id},{HUB},2025-03-12T09:00:00+01:00,2025-03-12T18:00:00+01:00,act-{row},23CD00,{sector},{},2025/26,{},{}\n",
            row % 8 + 1,
            row + 3,
            row + 4
        ));
    }
    // A plain sheet: 25 anonymous answers without ids, many the same, more than one
    // batch: each is an answer of its own, and the sheet again only duplicates.
    let mut sheet = String::from("datum;activiteit;rol_respondent;score;schaal_max\n");
    for row in 0..25 {
        sheet.push_str(&format!("12-3-2025 11:00;act-1;pupil;{};5\n", 3 + row % 2));
    }
    let ndjson_path = dir.path().join("registrations.ndjson");
    let csv_path = dir.path().join("group_participated-2025.csv");
    std::fs::write(&ndjson_path, ndjson).expect("write");
    std::fs::write(&csv_path, csv).expect("write");
    let sheet_path = dir.path().join("survey_answered.csv");
    std::fs::write(&sheet_path, sheet).expect("write");
    let rejects = dir.path().join("rejected.ndjson");

    // The service is not up yet when the push starts: the client must retry.
    let port = free_port();
    let push = push_command(port, &rejects, &[&ndjson_path, &csv_path, &sheet_path])
        .env("RUST_LOG", "warn")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("run techmon push");
    tokio::time::sleep(std::time::Duration::from_millis(1500)).await;

    let (stop, server) = serve_ingest(log.clone(), port);

    let output = tokio::task::spawn_blocking(move || push.wait_with_output())
        .await
        .expect("join")
        .expect("push output");
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(
        output.status.code(),
        Some(1),
        "rejected records make push exit 1\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains("65 records from 3 files"), "{stdout}");
    assert!(
        stderr.contains("retrying"),
        "the push had to wait for the service: {stderr}"
    );

    let rejected: Vec<Value> = std::fs::read_to_string(&rejects)
        .expect("rejects file")
        .lines()
        .map(|l| serde_json::from_str(l).expect("json line"))
        .collect();
    let where_what: Vec<(String, u64, String)> = rejected
        .iter()
        .map(|r| {
            let file = Path::new(r["file"].as_str().expect("file"))
                .file_name()
                .expect("name")
                .to_string_lossy()
                .into_owned();
            (
                file,
                r["line"].as_u64().expect("line"),
                r["errors"][0]["field"].as_str().expect("field").to_string(),
            )
        })
        .collect();
    assert_eq!(
        where_what,
        vec![
            (
                "registrations.ndjson".to_string(),
                7,
                "/payload/gender".to_string()
            ),
            (
                "registrations.ndjson".to_string(),
                12,
                "/hub_id".to_string()
            ),
            (
                "group_participated-2025.csv".to_string(),
                5,
                "/payload/sector".to_string()
            ),
        ]
    );
    assert!(
        stdout.contains("62 accepted, 0 corrected, 0 duplicates, 3 rejected"),
        "{stdout}"
    );

    // Every valid record is in the log, once.
    let mut stored = Vec::new();
    for partition in 0..log.partitions() {
        stored.extend(
            log.read(partition, 0, usize::MAX)
                .await
                .expect("read")
                .into_iter()
                .map(|r| r.event_id.to_string()),
        );
    }
    let stored_set: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), stored_set.len(), "a record was stored twice");
    assert!(valid_ids.is_subset(&stored_set));
    assert_eq!(
        stored_set.len(),
        valid_ids.len() + 25,
        "the 25 answers, each once"
    );

    // Pushing the same files again stores nothing new.
    let again = push_command(
        port,
        &dir.path().join("rejected-again.ndjson"),
        &[&ndjson_path, &csv_path, &sheet_path],
    )
    .output()
    .expect("push again");
    let stdout = String::from_utf8_lossy(&again.stdout);
    assert!(
        stdout.contains("0 accepted, 0 corrected, 62 duplicates, 3 rejected"),
        "{stdout}"
    );

    let _ = stop.send(());
    server.await.expect("server task").expect("server ran");
}

/// `techmon push` of a workbook sends each sheet named after an event kind to its
/// feed: every row of the templates workbook is taken, and sent again only
/// duplicates. A workbook with one sheet of its own name goes to the kind the file is
/// named after, and a refused row is written out with its sheet and row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn push_sends_every_sheet_of_a_workbook_to_its_feed() {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> = Arc::new(
        techmon_eventlog::embedded::EmbeddedLog::open(&dir.path().join("events.redb"), 2, 16)
            .expect("log"),
    );
    let port = free_port();
    let (stop, server) = serve_ingest(log, port);
    let templates = dir.path().join("techmon-templates.xlsx");
    std::fs::write(
        &templates,
        techmon_ingest::workbook::templates().expect("workbook"),
    )
    .expect("write");
    let rows: usize = techmon_schemas::EventKind::ALL
        .iter()
        .map(|kind| {
            let path = Path::new(env!("CARGO_MANIFEST_DIR"))
                .join(format!("docs/templates/{}.csv", kind.as_str()));
            std::fs::read_to_string(path)
                .expect("template")
                .lines()
                .count()
                - 1
        })
        .sum();
    let rejects = dir.path().join("rejected.ndjson");
    for expected in [
        format!("{rows} accepted, 0 corrected, 0 duplicates, 0 rejected"),
        format!("0 accepted, 0 corrected, {rows} duplicates, 0 rejected"),
    ] {
        let output = push_command(port, &rejects, &[&templates])
            .output()
            .expect("push the workbook");
        let stdout = String::from_utf8_lossy(&output.stdout);
        assert!(output.status.success(), "{stdout}");
        assert!(
            stdout.contains(&format!("{rows} records from 1 files in 12 batches")),
            "{stdout}"
        );
        assert!(stdout.contains(&expected), "{stdout}");
    }

    let workbook = class_sheet(&[(45568.0, "act-1", "acht", 12), (45568.0, "act-2", "8", 10)]);
    let classes = dir.path().join("group_participated-klassen.xlsx");
    std::fs::write(&classes, workbook).expect("write");
    let output = push_command(port, &rejects, &[&classes])
        .output()
        .expect("push the classes");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert_eq!(output.status.code(), Some(1), "{stdout}");
    assert!(
        stdout.contains("1 accepted, 0 corrected, 0 duplicates, 1 rejected"),
        "{stdout}"
    );
    let rejected: Value =
        serde_json::from_str(std::fs::read_to_string(&rejects).expect("rejects").trim())
            .expect("one rejected row");
    assert_eq!(
        (
            &rejected["sheet"],
            &rejected["line"],
            &rejected["errors"][0]["field"]
        ),
        (&json!("Blad1"), &json!(2), &json!("/payload/groep"))
    );
    let _ = stop.send(());
    server.await.expect("server task").expect("server ran");
}

/// The upload page in headless Chromium, on `techmon serve`: a coordinator's workbook
/// with good rows, a broken row and a repeated row gets exactly the expected answer
/// per row; the refused rows download with their reasons, and once fixed are taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_upload_page_answers_each_row_and_hands_back_the_refused_rows() {
    let (dir, _service, url) = common::serve_ready(&[]).await;
    let browser = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/browser");
    assert!(
        browser.join("node_modules/playwright-core").exists(),
        "the browser test needs `npm ci --prefix tests/browser` and Debian's chromium (bash .ci/run installs both)"
    );
    let workbook = class_sheet(&[
        (45568.375, "act-1", "7", 12),
        (45569.5, "act-2", "acht", 10),
        (45570.0, "act-3", "8", 9),
        (45568.375, "act-1", "7", 12),
    ]);
    let work = dir.path().join("upload");
    std::fs::create_dir_all(&work).expect("folder");
    let file = work.join("group_participated-klassen.xlsx");
    std::fs::write(&file, workbook).expect("write");
    let row = |line: u32, status: &str, fields: &[&str]| json!({"line": line, "status": status, "fields": fields});
    let expect = json!({
        "rows": [
            row(2, "accepted", &[]),
            row(3, "rejected", &["/payload/groep"]),
            row(4, "accepted", &[]),
            row(5, "duplicate", &[]),
        ],
        "fix": [["acht", "8"]],
        // The refused rows' file: its header, then the fixed row.
        "fixed_rows": [row(2, "accepted", &[])],
    });
    let expect_file = work.join("expect.json");
    std::fs::write(&expect_file, expect.to_string()).expect("write");
    let artefacts = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("artefacts");
    std::fs::create_dir_all(&artefacts).expect("artefacts folder");
    let screenshot = artefacts.join("upload.png");
    let status = Command::new("node")
        .arg(browser.join("upload.mjs"))
        .args([
            "--url",
            &url,
            "--token",
            common::TOKEN,
            "--kind",
            "group_participated",
        ])
        .arg("--file")
        .arg(&file)
        .arg("--expect")
        .arg(&expect_file)
        .arg("--downloads")
        .arg(work.join("downloads"))
        .arg("--screenshot")
        .arg(&screenshot)
        .status()
        .expect("node runs (install Node.js)");
    assert!(
        status.success(),
        "the upload page check failed (screenshot: {}; service log: {})",
        screenshot.display(),
        common::serve_log(dir.path())
    );
    // The service holds the three rows once each: the fixed one too.
    let answer = reqwest::Client::new()
        .post(format!("{url}/v1/feeds/group_participated"))
        .bearer_auth(common::TOKEN)
        .header("content-type", techmon_ingest::workbook::XLSX)
        .body(std::fs::read(&file).expect("the workbook"))
        .send()
        .await
        .expect("push again")
        .json::<techmon_ingest::PushAnswer>()
        .await
        .expect("answer");
    assert_eq!((answer.duplicates, answer.rejected), (3, 1), "{answer:?}");
}
