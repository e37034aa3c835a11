//! The ingest API against a real server on port 0 and a real event log.

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use serde_json::{Value, json};
use techmon_eventlog::KafkaConfig;
use techmon_eventlog::embedded::EmbeddedLog;
use techmon_eventlog::kafka::KafkaLog;
use techmon_eventlog::{EventLog, StoredRecord};
use techmon_ingest::{Config, PushAnswer, RecordStatus};
use techmon_service::{HubCredential, token_sha256};
use tokio::sync::oneshot;
use uuid::Uuid;

const TOKEN_DEVENTER: &str = "token-of-tec-deventer";
const TOKEN_ZUTPHEN: &str = "token-of-techniekfabriek";

struct Server {
    url: String,
    log: Arc<dyn EventLog>,
    client: reqwest::Client,
    _stop: oneshot::Sender<()>,
    _dir: tempfile::TempDir,
}

fn config(max_body_bytes: usize) -> Config {
    Config {
        listen: "127.0.0.1:0".parse().expect("addr"),
        max_body_bytes,
        max_records_per_request: 100,
        retry_after_seconds: 7,
        hubs: vec![
            HubCredential {
                hub_id: "tec-deventer".into(),
                token_sha256: token_sha256(TOKEN_DEVENTER),
            },
            HubCredential {
                hub_id: "techniekfabriek".into(),
                token_sha256: token_sha256(TOKEN_ZUTPHEN),
            },
        ],
    }
}

/// A server on `log`; with `person_keys`, one that seals personal fields and keys the
/// ids of people's rows with the keys in that folder.
async fn start_with(
    log: Arc<dyn EventLog>,
    dir: tempfile::TempDir,
    max_body_bytes: usize,
    person_keys: Option<&std::path::Path>,
) -> Server {
    let router = techmon_ingest::build_with_metrics(
        &config(max_body_bytes),
        log.clone(),
        prometheus::Registry::new(),
        techmon_ingest::Stores {
            person_keys: person_keys.map(|keys| {
                techmon_eventlog::person_keys::PersonKeys::open(keys).expect("person keys")
            }),
            audit: None,
            registry: None,
        },
    )
    .expect("router");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let (stop, stopped) = oneshot::channel::<()>();
    tokio::spawn(techmon_service::serve(listener, router, async {
        let _ = stopped.await;
    }));
    Server {
        url,
        log,
        client: reqwest::Client::new(),
        _stop: stop,
        _dir: dir,
    }
}

async fn start() -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = Arc::new(EmbeddedLog::open(&dir.path().join("events.redb"), 4, 16).expect("log"));
    start_with(log, dir, 64 * 1024, None).await
}

impl Server {
    async fn post(
        &self,
        path: &str,
        token: &str,
        content_type: &str,
        body: impl Into<reqwest::Body>,
    ) -> reqwest::Response {
        self.client
            .post(format!("{}{path}", self.url))
            .bearer_auth(token)
            .header("content-type", content_type)
            .body(body)
            .send()
            .await
            .expect("request")
    }

    async fn get(&self, path: &str) -> reqwest::Response {
        self.client
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("GET")
    }

    async fn push_ndjson(&self, token: &str, records: &[Value]) -> PushAnswer {
        let body: String = records.iter().map(|r| format!("{r}\n")).collect();
        let response = self
            .post("/v1/events", token, "application/x-ndjson", body)
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("answer")
    }

    async fn stored(&self) -> Vec<StoredRecord> {
        let mut all = Vec::new();
        for p in 0..self.log.partitions() {
            all.extend(self.log.read(p, 0, usize::MAX).await.expect("read"));
        }
        all
    }
}

fn activity(hub: &str) -> Value {
    json!({
        "event_id": Uuid::new_v4(),
        "event_type": "activity_held",
        "schema_version": 1,
        "hub_id": hub,
        "occurred_at": "2024-10-03T09:00:00+02:00",
        "sent_at": "2024-10-03T16:05:12+02:00",
        "payload": {
            "activity_id": format!("act-{}", Uuid::new_v4()),
            "activity_type": "proeverij",
            "title": "Bouw je eigen windmolen",
            "starts_at": "2024-10-03T09:00:00+02:00",
            "ends_at": "2024-10-03T12:00:00+02:00",
            "worlds": [2, 5],
            "target_groups": ["po"]
        }
    })
}

fn group(hub: &str) -> Value {
    json!({
        "event_id": Uuid::new_v4(),
        "event_type": "group_participated",
        "schema_version": 1,
        "hub_id": hub,
        "occurred_at": "2024-10-03T09:00:00+02:00",
        "sent_at": "2024-10-03T16:05:12+02:00",
        "payload": {
            "activity_id": "act-1",
            "school_brin6": "12AB00",
            "sector": "PO",
            "groep": 7,
            "school_year": "2024/25",
            "participants": {"girls": 12, "boys": 14}
        }
    })
}

/// Per result: its line, its status and the fields of its errors.
fn by_line(answer: &PushAnswer) -> Vec<(Option<usize>, RecordStatus, Vec<&str>)> {
    answer
        .results
        .iter()
        .map(|r| (r.line, r.status, fields(&r.errors)))
        .collect()
}

fn fields(errors: &[techmon_schemas::FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[tokio::test]
async fn a_mixed_batch_gets_an_exact_answer_per_record_and_its_valid_records_are_stored() {
    let server = start().await;
    let valid_a = activity("tec-deventer");
    let valid_b = group("tec-deventer");
    let mut unknown_kind = group("tec-deventer");
    unknown_kind["event_type"] = json!("group_teleported");
    let mut wrong_types = group("tec-deventer");
    wrong_types["payload"]["groep"] = json!("zeven");
    wrong_types["payload"]["participants"] = json!({"girls": -1});
    wrong_types["payload"]["school_brin6"] = json!("not-a-brin");
    let mut unknown_field = activity("tec-deventer");
    unknown_field["payload"]["favourite_colour"] = json!("green");
    let mut unknown_version = activity("tec-deventer");
    unknown_version["schema_version"] = json!(9);
    // Readers disagree on which copy of a repeated field counts.
    let field_twice =
        group("tec-deventer")
            .to_string()
            .replacen('{', "{\"hub_id\": \"tec-deventer\", ", 1);

    let body = [
        valid_a.to_string(),
        unknown_kind.to_string(),
        wrong_types.to_string(),
        String::new(), // blank lines are skipped, but count as lines
        valid_b.to_string(),
        valid_a.to_string(), // repeated event_id
        "{\"event_id\": \"truncated".to_string(),
        unknown_field.to_string(),
        unknown_version.to_string(),
        field_twice,
    ]
    .join("\n");
    let response = server
        .post("/v1/events", TOKEN_DEVENTER, "application/x-ndjson", body)
        .await;
    assert_eq!(response.status(), 200);
    let answer: PushAnswer = response.json().await.expect("answer");

    let summary: Vec<(usize, Option<usize>, RecordStatus, Vec<&str>)> = answer
        .results
        .iter()
        .map(|r| (r.index, r.line, r.status, fields(&r.errors)))
        .collect();
    assert_eq!(
        summary,
        vec![
            (0, Some(1), RecordStatus::Accepted, vec![]),
            (1, Some(2), RecordStatus::Rejected, vec!["/event_type"]),
            (
                2,
                Some(3),
                RecordStatus::Rejected,
                vec![
                    "/payload/groep",
                    "/payload/participants/boys",
                    "/payload/participants/girls",
                    "/payload/school_brin6"
                ]
            ),
            (3, Some(5), RecordStatus::Accepted, vec![]),
            (4, Some(6), RecordStatus::Duplicate, vec![]),
            (5, Some(7), RecordStatus::Rejected, vec!["/"]),
            (
                6,
                Some(8),
                RecordStatus::Rejected,
                vec!["/payload/favourite_colour"]
            ),
            (7, Some(9), RecordStatus::Rejected, vec!["/schema_version"]),
            (8, Some(10), RecordStatus::Rejected, vec!["/hub_id"]),
        ],
        "{answer:#?}"
    );
    assert_eq!(
        (answer.accepted, answer.duplicates, answer.rejected),
        (2, 1, 6)
    );
    assert_eq!(
        answer.results[0].event_id.map(|u| u.to_string()),
        valid_a["event_id"].as_str().map(str::to_string)
    );
    assert!(answer.results[0].partition.is_some() && answer.results[0].offset.is_some());
    // A refused record is named by its event_id where it has a readable one.
    let named: Vec<Option<String>> = answer
        .results
        .iter()
        .map(|r| r.event_id.map(|u| u.to_string()))
        .collect();
    assert_eq!(
        named[1].as_deref(),
        unknown_kind["event_id"].as_str(),
        "unknown kind"
    );
    assert_eq!(named[5], None, "truncated line");
    assert_eq!(
        answer.results[5].errors[0].reason,
        "not a JSON object: the line ends too early"
    );

    let stored = server.stored().await;
    let ids: Vec<String> = stored.iter().map(|r| r.event_id.to_string()).collect();
    assert_eq!(ids.len(), 2);
    for valid in [&valid_a, &valid_b] {
        assert!(ids.contains(&valid["event_id"].as_str().expect("id").to_string()));
    }
    // What is stored is the event as sent.
    let stored_a = stored
        .iter()
        .find(|r| r.event_id.to_string() == valid_a["event_id"])
        .expect("a stored");
    assert_eq!(
        serde_json::from_slice::<Value>(&stored_a.payload).expect("json"),
        valid_a
    );

    // Sending the same batch again stores nothing new.
    let again = server
        .push_ndjson(TOKEN_DEVENTER, &[valid_a.clone(), valid_b.clone()])
        .await;
    assert_eq!(
        (again.accepted, again.duplicates, again.rejected),
        (0, 2, 0)
    );
    assert_eq!(server.stored().await.len(), 2);
}

#[tokio::test]
async fn a_json_array_is_answered_by_index() {
    let server = start().await;
    let mut bad = group("tec-deventer");
    bad["payload"]["sector"] = json!("kindergarten");
    let body = json!([group("tec-deventer"), bad]).to_string();
    let response = server
        .post("/v1/events", TOKEN_DEVENTER, "application/json", body)
        .await;
    let answer: PushAnswer = response.json().await.expect("answer");
    assert_eq!(
        answer
            .results
            .iter()
            .map(|r| (r.index, r.line, r.status))
            .collect::<Vec<_>>(),
        vec![
            (0, None, RecordStatus::Accepted),
            (1, None, RecordStatus::Rejected)
        ]
    );
    assert_eq!(fields(&answer.results[1].errors), vec!["/payload/sector"]);
}

#[tokio::test]
async fn a_hub_cannot_write_another_hubs_events_and_strangers_cannot_write_at_all() {
    let server = start().await;
    let answer = server
        .push_ndjson(
            TOKEN_ZUTPHEN,
            &[group("tec-deventer"), group("techniekfabriek")],
        )
        .await;
    assert_eq!(answer.results[0].status, RecordStatus::Rejected);
    assert_eq!(fields(&answer.results[0].errors), vec!["/hub_id"]);
    assert_eq!(answer.results[1].status, RecordStatus::Accepted);
    let stored = server.stored().await;
    assert_eq!(stored.len(), 1);
    assert!(String::from_utf8_lossy(&stored[0].payload).contains("\"hub_id\":\"techniekfabriek\""));

    for token in ["", "wrong-token", TOKEN_DEVENTER.trim_end_matches('r')] {
        let response = server
            .post(
                "/v1/events",
                token,
                "application/x-ndjson",
                group("tec-deventer").to_string(),
            )
            .await;
        assert_eq!(response.status(), 401, "token {token:?}");
        let body: Value = response.json().await.expect("json");
        assert_eq!(body["error"]["code"], "unauthorized");
    }
    let response = server
        .client
        .post(format!("{}/v1/events", server.url))
        .body(group("tec-deventer").to_string())
        .send()
        .await
        .expect("send");
    assert_eq!(response.status(), 401);
    assert_eq!(server.stored().await.len(), 1);
}

#[tokio::test]
async fn oversized_requests_get_413_and_store_nothing() {
    let server = start().await;
    let record = group("tec-deventer").to_string();
    let big: String =
        std::iter::repeat_n(format!("{record}\n"), 64 * 1024 / record.len() + 1).collect();
    let response = server
        .post("/v1/events", TOKEN_DEVENTER, "application/x-ndjson", big)
        .await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "body_too_large");

    let many: Vec<Value> = (0..101)
        .map(|_| json!({"event_id": Uuid::new_v4()}))
        .collect();
    let response = server
        .post(
            "/v1/events",
            TOKEN_DEVENTER,
            "application/json",
            Value::from(many).to_string(),
        )
        .await;
    assert_eq!(response.status(), 413);
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "too_many_records");
    assert!(server.stored().await.is_empty());
}

#[tokio::test]
async fn when_the_log_is_down_the_answer_is_503_with_retry_after_and_nothing_is_acknowledged() {
    let dir = tempfile::tempdir().expect("tempdir");
    // Nothing listens on port 1: every delivery times out.
    let kafka = KafkaConfig {
        brokers: "127.0.0.1:1".into(),
        create_topics: false,
        replication_factor: 1,
        message_timeout_ms: 1500,
        request_timeout_ms: 1500,
        event_id_index: dir.path().join("ids.redb"),
        librdkafka: BTreeMap::new(),
    };
    let log = Arc::new(
        KafkaLog::connect(&kafka, "events", 4, None)
            .await
            .expect("connect is lazy"),
    );
    let server = start_with(log, dir, 64 * 1024, None).await;
    let response = server
        .post(
            "/v1/events",
            TOKEN_DEVENTER,
            "application/x-ndjson",
            format!("{}\n{}", group("tec-deventer"), activity("tec-deventer")),
        )
        .await;
    assert_eq!(response.status(), 503);
    assert_eq!(
        response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok()),
        Some("7")
    );
    let body: Value = response.json().await.expect("json");
    assert_eq!(body["error"]["code"], "log_unavailable");
    assert_eq!(body["error"]["retryable"], true);
    assert!(
        body.get("results").is_none(),
        "no record may be reported as accepted"
    );

    let ready = server.get("/readyz").await;
    assert_eq!(ready.status(), 503);
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
}

#[tokio::test]
async fn csv_feeds_are_answered_by_line() {
    let server = start().await;
    let id1 = Uuid::new_v4();
    let id2 = Uuid::new_v4();
    let id3 = Uuid::new_v4();
    let csv = format!(
        "event_id,hub_id,occurred_at,sent_at,activity_id,school_brin6,sector,groep,school_year,participants.girls,participants.boys\n\
         {id1},tec-deventer,2024-10-03T09:00:00+02:00,2024-10-03T16:00:00+02:00,act-1,12AB00,PO,7,2024/25,12,14\n\
         {id2},tec-deventer,2024-10-03T09:00:00+02:00,2024-10-03T16:00:00+02:00,act-1,12AB00,PO,acht,2024/25,12,14\n\
         {id3},tec-deventer,2024-10-04T09:00:00+02:00,2024-10-04T16:00:00+02:00,act-2,12AB01,PO,8,2024/25,10,9\n"
    );
    let response = server
        .post(
            "/v1/feeds/group_participated",
            TOKEN_DEVENTER,
            "text/csv",
            csv,
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: PushAnswer = response.json().await.expect("answer");
    let summary = by_line(&answer);
    assert_eq!(
        summary,
        vec![
            (Some(2), RecordStatus::Accepted, vec![]),
            (Some(3), RecordStatus::Rejected, vec!["/payload/groep"]),
            (Some(4), RecordStatus::Accepted, vec![]),
        ]
    );
    // A refused row is answered with the id it names.
    assert_eq!(answer.results[1].event_id, Some(id2));
    let stored: HashSet<Uuid> = server.stored().await.iter().map(|r| r.event_id).collect();
    assert_eq!(stored, HashSet::from([id1, id3]));

    // A spreadsheet's CSV export in Windows-1252 is read as that; a groep that does not
    // convert refuses its row at the field's pointer, with its event id.
    let (id4, id5) = (Uuid::new_v4(), Uuid::new_v4());
    let mut csv = format!(
        "event_id;hub_id;occurred_at;sent_at;activity_id;school_brin6;sector;groep;school_year;participants.girls;participants.boys\n\
         {id4};tec-deventer;2024-10-03T09:00:00+02:00;2024-10-03T16:00:00+02:00;caf"
    )
    .into_bytes();
    csv.extend_from_slice(b"\xe9-\x80");
    csv.extend_from_slice(
        format!(
            ";12AB00;PO;7;2024/25;12;14\n\
             {id5};tec-deventer;2024-10-03T09:00:00+02:00;2024-10-03T16:00:00+02:00;act-3;12AB00;PO;7.0;2024/25;12;14\n"
        )
        .as_bytes(),
    );
    let response = server
        .post(
            "/v1/feeds/group_participated",
            TOKEN_DEVENTER,
            "text/csv",
            csv.clone(),
        )
        .await;
    assert_eq!(response.status(), 200);
    let answer: PushAnswer = response.json().await.expect("answer");
    let summary: Vec<(Option<Uuid>, RecordStatus, Vec<&str>)> = answer
        .results
        .iter()
        .map(|r| (r.event_id, r.status, fields(&r.errors)))
        .collect();
    assert_eq!(
        summary,
        vec![
            (Some(id4), RecordStatus::Accepted, vec![]),
            (Some(id5), RecordStatus::Rejected, vec!["/payload/groep"]),
        ]
    );
    let events = server.events().await;
    assert_eq!(events[&id4]["payload"]["activity_id"], "café-€");
    // A charset the content type names is the one read: this body is no UTF-8, and
    // an unknown charset is refused.
    for (content_type, status) in [
        ("text/csv; charset=utf-8", 400),
        ("text/csv; charset=\"klingon\"", 415),
    ] {
        let response = server
            .post(
                "/v1/feeds/group_participated",
                TOKEN_DEVENTER,
                content_type,
                csv.clone(),
            )
            .await;
        assert_eq!(response.status(), status, "{content_type}");
    }

    let response = server
        .post(
            "/v1/feeds/group_teleported",
            TOKEN_DEVENTER,
            "text/csv",
            "event_id\n1\n",
        )
        .await;
    assert_eq!(response.status(), 404);
}

#[tokio::test]
async fn malformed_bodies_never_break_the_server() {
    let server = start().await;
    let deep_array = "[".repeat(60_000);
    let deep_object = "{\"a\":".repeat(12_000);
    let corpus: Vec<(&str, &str, Vec<u8>)> = vec![
        (
            "/v1/events",
            "application/json",
            b"[{\"event_id\": \"6a1d8a52".to_vec(),
        ),
        (
            "/v1/events",
            "application/json",
            b"[1, \"two\", null, true, [], {}]".to_vec(),
        ),
        (
            "/v1/events",
            "application/json",
            br#"[{"event_id": 5, "schema_version": "one", "payload": []}]"#.to_vec(),
        ),
        (
            "/v1/events",
            "application/x-ndjson",
            vec![0xff, 0xfe, 0x00, 0x7b, 0x0a, 0xc3, 0x28],
        ),
        (
            "/v1/events",
            "application/json",
            br#"[{"schema_version": 1e999}]"#.to_vec(),
        ),
        (
            "/v1/events",
            "application/x-ndjson",
            br#"{"schema_version": 123456789012345678901234567890123}"#.to_vec(),
        ),
        (
            "/v1/events",
            "application/x-ndjson",
            br#"{"event_type": "activity_held", "schema_version": 18446744073709551616}"#.to_vec(),
        ),
        ("/v1/events", "application/json", deep_array.into_bytes()),
        (
            "/v1/events",
            "application/x-ndjson",
            deep_object.into_bytes(),
        ),
        ("/v1/events", "application/json", Vec::new()),
        ("/v1/events", "application/json", b"   \n\t ".to_vec()),
        ("/v1/events", "application/json", b"\0\0\0".to_vec()),
        (
            "/v1/events",
            "application/json",
            b"\"just a string\"".to_vec(),
        ),
        (
            "/v1/feeds/group_participated",
            "text/csv",
            b"event_id,hub_id\n\"unterminated,tec-deventer\n".to_vec(),
        ),
        (
            "/v1/feeds/group_participated",
            "text/csv",
            vec![b'a', b',', 0xff, b'\n', 0xfe, b',', b'1', b'\n'],
        ),
        (
            "/v1/feeds/group_participated",
            "text/csv",
            b"event_id,hub_id\n".to_vec(),
        ),
        ("/v1/feeds/group_participated", "text/csv", Vec::new()),
        (
            "/v1/feeds/group_participated",
            "text/csv",
            b"event_id\n1,2,3,4\n".to_vec(),
        ),
    ];
    for (path, content_type, body) in corpus {
        let shown = String::from_utf8_lossy(&body)
            .chars()
            .take(40)
            .collect::<String>();
        let response = server.post(path, TOKEN_DEVENTER, content_type, body).await;
        let status = response.status().as_u16();
        assert!(
            status == 200 || status == 400,
            "{path} {shown:?}: status {status}"
        );
        let answer: Value = response.json().await.expect("a JSON answer");
        if status == 200 {
            assert_eq!(answer["accepted"], 0, "{shown:?}");
        } else {
            assert_eq!(answer["error"]["code"], "malformed_body", "{shown:?}");
        }
    }
    let health = server.get("/healthz").await;
    assert_eq!(health.status(), 200);
    assert!(server.stored().await.is_empty());
}

#[tokio::test]
async fn schemas_are_served_read_only() {
    let server = start().await;
    let catalogue: Value = server.get("/v1/schemas").await.json().await.expect("json");
    let kinds: Vec<&str> = catalogue
        .as_array()
        .or(catalogue["kinds"].as_array())
        .expect("a list of kinds")
        .iter()
        .filter_map(|k| k["kind"].as_str())
        .collect();
    assert_eq!(kinds.len(), 12, "{kinds:?}");
    assert!(kinds.contains(&"consent_withdrawn"));
    let schema = server.get("/v1/schemas/activity_held/1").await;
    assert_eq!(schema.status(), 200);
    let schema: Value = schema.json().await.expect("json");
    assert_eq!(schema["properties"]["event_type"]["const"], "activity_held");
    assert!(schema["properties"]["payload"]["properties"]["worlds"].is_object());
    let missing = server.get("/v1/schemas/activity_held/7").await;
    assert_eq!(missing.status(), 404);
    let post = server
        .client
        .post(format!("{}/v1/schemas/activity_held/1", server.url))
        .send()
        .await
        .expect("post");
    assert_eq!(post.status(), 405);
}

#[tokio::test]
async fn metrics_count_accepted_rejected_and_duplicates() {
    let server = start().await;
    let record = group("tec-deventer");
    let mut bad = group("tec-deventer");
    bad["event_type"] = json!("nope");
    server
        .push_ndjson(TOKEN_DEVENTER, &[record.clone(), record, bad])
        .await;
    let text = server.get("/metrics").await.text().await.expect("text");
    assert!(
        text.contains("techmon_ingest_records_accepted_total 1"),
        "{text}"
    );
    assert!(
        text.contains("techmon_ingest_records_duplicate_total 1"),
        "{text}"
    );
    assert!(
        text.contains("techmon_ingest_records_rejected_total{reason=\"unknown_kind\"} 1"),
        "{text}"
    );
    assert!(
        text.contains("techmon_ingest_request_duration_seconds_count 1"),
        "{text}"
    );
}

/// One event as a lone JSON object, pretty-printed over several lines as people
/// write it by hand: one record, not one per line.
#[tokio::test]
async fn a_lone_pretty_printed_object_is_one_event() {
    let server = start().await;
    let event = group("tec-deventer");
    let pretty = serde_json::to_string_pretty(&event).expect("JSON");
    assert!(pretty.lines().count() > 10);
    let response = server
        .post("/v1/events", TOKEN_DEVENTER, "application/json", pretty)
        .await;
    assert_eq!(response.status(), 200);
    let answer: PushAnswer = response.json().await.expect("answer");
    assert_eq!((answer.accepted, answer.rejected), (1, 0), "{answer:?}");
    assert_eq!(answer.results[0].line, Some(1));
    let stored = server.stored().await;
    assert_eq!(stored.len(), 1);
    let back: Value = serde_json::from_slice(&stored[0].payload).expect("stored JSON");
    assert_eq!(back, event);
    // Two objects on two lines stay NDJSON: two records.
    let two = format!("{}\n{}\n", group("tec-deventer"), activity("tec-deventer"));
    let response = server
        .post("/v1/events", TOKEN_DEVENTER, "application/x-ndjson", two)
        .await;
    let answer: PushAnswer = response.json().await.expect("answer");
    assert_eq!((answer.accepted, answer.results[1].line), (2, Some(2)));
}

#[tokio::test]
async fn every_template_filled_the_plain_way_is_accepted_and_sent_again_only_duplicates() {
    let server = start().await;
    let folder = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/templates");
    let mut templates: Vec<_> = std::fs::read_dir(&folder)
        .expect("the templates")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "csv"))
        .collect();
    templates.sort();
    assert!(templates.len() >= 12, "{templates:?}");
    let mut ids = HashSet::new();
    for path in &templates {
        let kind = path.file_stem().and_then(|s| s.to_str()).expect("a kind");
        let sheet = std::fs::read_to_string(path).expect("a template");
        let rows = sheet.lines().count() - 1;
        for expected in [RecordStatus::Accepted, RecordStatus::Duplicate] {
            let response = server
                .post(
                    &format!("/v1/feeds/{kind}"),
                    TOKEN_DEVENTER,
                    "text/csv",
                    sheet.clone(),
                )
                .await;
            assert_eq!(response.status(), 200, "{kind}");
            let answer: PushAnswer = response.json().await.expect("answer");
            let statuses: Vec<RecordStatus> = answer.results.iter().map(|r| r.status).collect();
            assert_eq!(statuses, vec![expected; rows], "{kind}: {answer:?}");
            for result in &answer.results {
                let id = result.event_id.expect("a derived id");
                assert_eq!(id.get_version_num(), 5, "{kind}");
                ids.insert(id);
            }
        }
    }
    // Each row once, from the token's hub.
    let stored = server.stored().await;
    assert_eq!(stored.len(), ids.len());
    for record in stored {
        let event: Value = serde_json::from_slice(&record.payload).expect("JSON");
        assert_eq!(event["hub_id"], "tec-deventer", "{event}");
        assert!(ids.contains(&record.event_id));
    }
}

#[tokio::test]
async fn excel_serial_dates_and_dutch_dates_give_the_same_events() {
    let sheet = |first: &str, second: &str| {
        format!(
            "datum;activity_id;school_brin6;sector;groep;school_year;participants.girls;participants.boys\n\
             {first};act-1;12AB00;PO;7;2024/25;12;14\n\
             {second};act-2;12AB00;PO;8;2024/25;10;9\n"
        )
    };
    let mut stored = Vec::new();
    for body in [
        sheet("3-10-2024", "05-11-2024 13:30"),
        sheet("45568", "45601.5625"),
    ] {
        let server = start().await;
        let response = server
            .post(
                "/v1/feeds/group_participated",
                TOKEN_DEVENTER,
                "text/csv",
                body,
            )
            .await;
        let answer: PushAnswer = response.json().await.expect("answer");
        assert_eq!(answer.accepted, 2, "{answer:?}");
        let mut events: Vec<Value> = server
            .stored()
            .await
            .iter()
            .map(|r| {
                let mut event: Value = serde_json::from_slice(&r.payload).expect("JSON");
                // The time of receipt is the one thing that differs.
                event.as_object_mut().expect("an object").remove("sent_at");
                event
            })
            .collect();
        events.sort_by_key(|e| e["event_id"].to_string());
        stored.push(events);
    }
    assert_eq!(stored[0], stored[1]);
    let times: BTreeMap<String, String> = stored[0]
        .iter()
        .map(|e| {
            (
                e["payload"]["activity_id"].to_string(),
                e["occurred_at"].to_string(),
            )
        })
        .collect();
    assert_eq!(times["\"act-1\""], "\"2024-10-03T00:00:00+02:00\"");
    assert_eq!(times["\"act-2\""], "\"2024-11-05T13:30:00+01:00\"");
}

/// A server whose ingest seals personal fields and keys the ids of people's rows
/// with the person keys in `keys`.
async fn start_with_keys(keys: &std::path::Path) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let log: Arc<dyn EventLog> =
        Arc::new(EmbeddedLog::open(&dir.path().join("events.redb"), 4, 16).expect("log"));
    start_with(log, dir, 64 * 1024, Some(keys)).await
}

impl Server {
    async fn push_feed(&self, kind: &str, sheet: String) -> PushAnswer {
        let response = self
            .post(
                &format!("/v1/feeds/{kind}"),
                TOKEN_DEVENTER,
                "text/csv",
                sheet,
            )
            .await;
        assert_eq!(response.status(), 200);
        response.json().await.expect("answer")
    }

    /// The stored events, by event id.
    async fn events(&self) -> BTreeMap<Uuid, Value> {
        self.stored()
            .await
            .iter()
            .map(|r| {
                (
                    r.event_id,
                    serde_json::from_slice(&r.payload).expect("stored JSON"),
                )
            })
            .collect()
    }
}

fn class_sheet(rows: &[(&str, u32)]) -> String {
    let mut sheet =
        String::from("datum;activiteit;school;sector;groep;schooljaar;meisjes;jongens\n");
    for (activity, girls) in rows {
        sheet.push_str(&format!(
            "3-10-2024;{activity};12AB00;PO;7;2024/25;{girls};14\n"
        ));
    }
    sheet
}

#[tokio::test]
async fn a_row_sent_again_with_other_numbers_is_a_correction_naming_the_earlier_event() {
    let server = start().await;
    let kind = "group_participated";
    let first = server
        .push_feed(kind, class_sheet(&[("act-1", 12), ("act-2", 10)]))
        .await;
    assert_eq!((first.accepted, first.corrected), (2, 0), "{first:?}");
    let ids = |answer: &PushAnswer| -> Vec<Uuid> {
        answer
            .results
            .iter()
            .map(|r| r.event_id.expect("an id"))
            .collect()
    };
    let statuses = |answer: &PushAnswer| -> Vec<RecordStatus> {
        answer.results.iter().map(|r| r.status).collect()
    };

    let corrected = server
        .push_feed(kind, class_sheet(&[("act-1", 13), ("act-2", 10)]))
        .await;
    assert_eq!(
        statuses(&corrected),
        [RecordStatus::Corrected, RecordStatus::Duplicate]
    );
    assert_eq!(corrected.results[0].replaces, Some(ids(&first)[0]));
    assert_eq!(
        ids(&corrected)[1],
        ids(&first)[1],
        "a duplicate names its event"
    );
    assert_ne!(ids(&corrected)[0], ids(&first)[0]);

    // Back to what it said first: a version of its own, replacing the second.
    let back = server.push_feed(kind, class_sheet(&[("act-1", 12)])).await;
    assert_eq!(statuses(&back), [RecordStatus::Corrected]);
    assert_eq!(back.results[0].replaces, Some(ids(&corrected)[0]));
    assert!(!ids(&first).contains(&ids(&back)[0]));

    // The same row twice in one sheet, saying two things: the lower one is taken,
    // and the sheet sent again changes nothing.
    let sheet = class_sheet(&[("act-1", 14), ("act-1", 15)]);
    let twice = server.push_feed(kind, sheet.clone()).await;
    assert_eq!(
        statuses(&twice),
        [RecordStatus::Rejected, RecordStatus::Corrected]
    );
    assert_eq!(fields(&twice.results[0].errors), ["/"]);
    assert!(twice.results[0].errors[0].reason.contains("line 3"));
    assert_eq!(twice.results[1].replaces, Some(ids(&back)[0]));
    let again = server.push_feed(kind, sheet).await;
    assert_eq!(
        statuses(&again),
        [RecordStatus::Rejected, RecordStatus::Duplicate]
    );
    assert_eq!(again.results[1].event_id, twice.results[1].event_id);
    // Saying the same twice: the lower one is a duplicate.
    let same = server
        .push_feed(kind, class_sheet(&[("act-5", 3), ("act-5", 3)]))
        .await;
    assert_eq!(
        statuses(&same),
        [RecordStatus::Accepted, RecordStatus::Duplicate]
    );

    // The log holds each version once, each naming the one it replaces.
    let events = server.events().await;
    let versions = [
        ids(&first),
        ids(&corrected),
        ids(&back),
        vec![twice.results[1].event_id.expect("an id")],
        vec![same.results[0].event_id.expect("an id")],
    ]
    .concat();
    let distinct: HashSet<Uuid> = versions.iter().copied().collect();
    assert_eq!(events.len(), distinct.len());
    assert_eq!(events.len(), 6);
    for result in [&first, &corrected, &back, &twice]
        .iter()
        .flat_map(|a| &a.results)
        .filter(|r| r.status == RecordStatus::Corrected)
    {
        let event = &events[&result.event_id.expect("an id")];
        assert_eq!(
            event["replaces"].as_str().map(|s| s.to_string()),
            result.replaces.map(|r| r.to_string())
        );
    }
    assert_eq!(
        events[&twice.results[1].event_id.expect("an id")]["payload"]["participants"]["girls"],
        15
    );

    // A sender names its own events, and never what they replace.
    let mut replacing = group("tec-deventer");
    replacing["replaces"] = json!(ids(&first)[0]);
    let refused = server.push_ndjson(TOKEN_DEVENTER, &[replacing]).await;
    assert_eq!(refused.rejected, 1);
    assert_eq!(fields(&refused.results[0].errors), ["/replaces"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_correcting_one_row_at_once_are_stored_one_after_the_other() {
    let server = Arc::new(start().await);
    let pushes: Vec<_> = [20, 21, 22]
        .into_iter()
        .map(|girls| {
            let server = server.clone();
            tokio::spawn(async move {
                server
                    .push_feed("group_participated", class_sheet(&[("act-9", girls)]))
                    .await
            })
        })
        .collect();
    let mut answers = Vec::new();
    for push in pushes {
        answers.push(push.await.expect("a push"));
    }
    let mut statuses: Vec<RecordStatus> = answers.iter().map(|a| a.results[0].status).collect();
    statuses.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        statuses,
        [
            RecordStatus::Accepted,
            RecordStatus::Corrected,
            RecordStatus::Corrected
        ]
    );
    // One chain: no two versions replace the same event.
    let events = server.events().await;
    assert_eq!(events.len(), 3);
    let replaced: HashSet<Option<&str>> = events.values().map(|e| e["replaces"].as_str()).collect();
    assert_eq!(replaced.len(), 3, "{events:?}");
    assert!(replaced.contains(&None));
    assert!(
        replaced
            .iter()
            .flatten()
            .all(|id| events.contains_key(&Uuid::parse_str(id).expect("an id")))
    );
}

#[tokio::test]
async fn the_ids_of_peoples_rows_are_keyed_by_their_person_key() {
    let keys = tempfile::tempdir().expect("tempdir");
    let sheet = "datum;activiteit;deelnemer;rol\n8-10-2024 9:00;act-1;TEC-P-000101;pupil\n";
    let server = start_with_keys(keys.path()).await;
    let first = server.push_feed("participant_attended", sheet.into()).await;
    let id = first.results[0].event_id.expect("an id");
    // Not a UUID anyone could derive from the reference (version 5), but one made
    // with the person's key (version 8): the same again with the same keys.
    assert_eq!(id.get_version_num(), 8, "{first:?}");
    let again = server.push_feed("participant_attended", sheet.into()).await;
    assert_eq!(
        (again.results[0].status, again.results[0].event_id),
        (RecordStatus::Duplicate, Some(id))
    );
    let elsewhere = start_with_keys(&keys.path().join("other")).await;
    let other = elsewhere
        .push_feed("participant_attended", sheet.into())
        .await;
    assert_ne!(other.results[0].event_id, Some(id));
    // A class is no person: its rows keep their derived ids.
    let classes = server
        .push_feed("group_participated", class_sheet(&[("act-1", 12)]))
        .await;
    assert_eq!(
        classes.results[0].event_id.map(|id| id.get_version_num()),
        Some(5)
    );
}

/// Runs the tests' own spreadsheet (openpyxl, `tests/workbook.py`) on `path`.
fn openpyxl(command: &str, path: &std::path::Path) -> Vec<u8> {
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/workbook.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg(command)
        .arg(path)
        .output()
        .expect("python3 runs (bash .ci/install installs openpyxl)");
    assert!(
        output.status.success(),
        "openpyxl {command}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    output.stdout
}

impl Server {
    async fn templates_workbook(&self) -> Vec<u8> {
        let response = self.get("/v1/templates.xlsx").await;
        assert_eq!(response.status(), 200);
        assert_eq!(
            response.headers()["content-type"],
            techmon_ingest::workbook::XLSX
        );
        response.bytes().await.expect("the workbook").to_vec()
    }

    async fn push_workbook(&self, kind: &str, query: &str, bytes: Vec<u8>) -> reqwest::Response {
        self.post(
            &format!("/v1/feeds/{kind}{query}"),
            TOKEN_DEVENTER,
            techmon_ingest::workbook::XLSX,
            bytes,
        )
        .await
    }
}

fn template(kind: &str) -> String {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../docs/templates/{kind}.csv"));
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The closed list of values the JSON Schema gives a payload field (its `enum`; a
/// yes/no field's `ja`/`nee`), as a spreadsheet cell writes them.
fn schema_choices(kind: &str, pointer: &str) -> Vec<String> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../schemas/json/{kind}/v1.schema.json"));
    let schema: Value =
        serde_json::from_str(&std::fs::read_to_string(path).expect("schema")).expect("JSON");
    let Some(field) = pointer.strip_prefix("/payload/") else {
        return vec![];
    };
    let mut property = &schema;
    for part in field.split('/') {
        property = &property["properties"][part];
    }
    if field == "profile_code" {
        return techmon_schemas::codes::profiles()
            .iter()
            .map(|p| p.code.clone())
            .collect();
    }
    if property["type"] == "boolean" {
        return vec!["ja".into(), "nee".into()];
    }
    property["enum"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v.as_str().map_or_else(|| v.to_string(), str::to_string))
        .collect()
}

#[tokio::test]
async fn the_templates_workbook_holds_every_template_with_its_code_lists_as_openpyxl_reads_it() {
    let server = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("templates.xlsx");
    std::fs::write(&path, server.templates_workbook().await).expect("write");
    let read: Value = serde_json::from_slice(&openpyxl("read", &path)).expect("JSON");
    let kinds: Vec<&str> = techmon_schemas::EventKind::ALL
        .iter()
        .map(|k| k.as_str())
        .collect();
    assert_eq!(
        read["order"].as_array().expect("sheets").len(),
        kinds.len() + 1
    );
    let code_lists = &read["sheets"]["codelijsten"]["rows"];
    for kind in kinds {
        let sheet = &read["sheets"][kind];
        let text = template(kind);
        let mut csv = csv::Reader::from_reader(text.as_bytes());
        let headers: Vec<String> = csv
            .headers()
            .expect("headers")
            .iter()
            .map(str::to_string)
            .collect();
        let rows = sheet["rows"].as_array().expect("rows");
        assert_eq!(rows[0], json!(headers), "{kind}");
        // Every example row as the CSV has it: times as the times it names.
        for (record, row) in csv.records().zip(&rows[1..]) {
            let record = record.expect("a row");
            for ((cell, value), header) in record
                .iter()
                .zip(row.as_array().expect("cells"))
                .zip(&headers)
            {
                let expected = if cell.is_empty() {
                    Value::Null
                } else if let Some(time) = ["%d-%m-%Y %H:%M", "%d-%m-%Y"].iter().find_map(|f| {
                    chrono::NaiveDateTime::parse_from_str(cell, f)
                        .or_else(|_| {
                            chrono::NaiveDate::parse_from_str(cell, f)
                                .map(|d| d.and_hms_opt(0, 0, 0).expect("midnight"))
                        })
                        .ok()
                }) {
                    json!({"time": time.format("%Y-%m-%dT%H:%M:%S").to_string()})
                } else if let Ok(number) = cell.replace(',', ".").parse::<f64>() {
                    json!(number)
                } else {
                    json!(cell)
                };
                let same = match (&expected, value) {
                    (Value::Number(a), Value::Number(b)) => a.as_f64() == b.as_f64(),
                    (Value::Number(a), Value::String(b)) => a.as_f64() == b.parse::<f64>().ok(),
                    _ => expected == *value,
                };
                assert!(same, "{kind} {header}: {cell:?} became {value}");
            }
        }
        // A column with a closed list of values offers it; the others offer none.
        let validations = sheet["validations"].as_array().expect("validations");
        for (at, header) in headers.iter().enumerate() {
            let letter = char::from(b'A' + at as u8);
            let pointer = techmon_schemas::csv_column_pointer(header);
            let expected = schema_choices(kind, &pointer);
            let offered: Vec<&Value> = validations
                .iter()
                .filter(|v| v["ranges"] == json!(format!("{letter}2:{letter}1001")))
                .collect();
            if expected.is_empty() {
                assert!(offered.is_empty(), "{kind} {header}: {offered:?}");
                continue;
            }
            assert_eq!(offered.len(), 1, "{kind} {header}: {validations:?}");
            assert_eq!(offered[0]["type"], "list");
            // `codelijsten!$C$2:$C$7`: the list is that column of the code lists.
            let formula = offered[0]["formula"].as_str().expect("a formula");
            let (column, last) = formula
                .strip_prefix("codelijsten!$")
                .and_then(|r| r.split_once("$2:$"))
                .expect("a range of the code lists");
            let (_, last) = last.split_once('$').expect("a row");
            let column = usize::from(column.as_bytes()[0] - b'A');
            let values: Vec<String> = (1..last.parse::<usize>().expect("a row"))
                .map(|row| match &code_lists[row][column] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect();
            assert_eq!(values, expected, "{kind} {header}");
        }
    }
}

#[tokio::test]
async fn every_sheet_of_the_templates_workbook_is_taken_as_its_csv_template() {
    let by_csv = start().await;
    let by_workbook = start().await;
    let workbook = by_workbook.templates_workbook().await;
    let without_receipt = |events: BTreeMap<Uuid, Value>| -> BTreeMap<Uuid, Value> {
        events
            .into_iter()
            .map(|(id, mut event)| {
                event.as_object_mut().expect("an event").remove("sent_at");
                (id, event)
            })
            .collect()
    };
    for kind in techmon_schemas::EventKind::ALL {
        let kind = kind.as_str();
        let rows = template(kind).lines().count() - 1;
        let csv = by_csv.push_feed(kind, template(kind)).await;
        assert_eq!(csv.accepted, rows, "{kind}: {csv:?}");
        for expected in [RecordStatus::Accepted, RecordStatus::Duplicate] {
            let response = by_workbook.push_workbook(kind, "", workbook.clone()).await;
            assert_eq!(response.status(), 200, "{kind}");
            let answer: PushAnswer = response.json().await.expect("answer");
            let statuses: Vec<RecordStatus> = answer.results.iter().map(|r| r.status).collect();
            assert_eq!(statuses, vec![expected; rows], "{kind}: {answer:?}");
            // Row numbers as the spreadsheet shows them, under the header row.
            let lines: Vec<Option<usize>> = answer.results.iter().map(|r| r.line).collect();
            assert_eq!(lines, (2..rows + 2).map(Some).collect::<Vec<_>>(), "{kind}");
        }
    }
    // The same events, to the id: the workbook's dates are the CSV's.
    assert_eq!(
        without_receipt(by_workbook.events().await),
        without_receipt(by_csv.events().await)
    );
}

#[tokio::test]
async fn a_coordinators_workbook_is_answered_per_row() {
    let server = start().await;
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("klassen.xlsx");
    openpyxl("write", &path);
    let bytes = std::fs::read(&path).expect("the workbook");
    let response = server
        .push_workbook("group_participated", "", bytes.clone())
        .await;
    assert_eq!(response.status(), 200);
    let answer: PushAnswer = response.json().await.expect("answer");
    let summary = by_line(&answer);
    assert_eq!(
        summary,
        [
            (Some(2), RecordStatus::Accepted, vec![]),
            (Some(3), RecordStatus::Accepted, vec![]),
            (Some(5), RecordStatus::Rejected, vec!["/payload/groep"]),
            (Some(6), RecordStatus::Duplicate, vec![]),
        ]
    );
    assert_eq!(answer.results[3].event_id, answer.results[0].event_id);
    let times: BTreeMap<String, String> = server
        .events()
        .await
        .values()
        .map(|e| {
            (
                e["payload"]["activity_id"]
                    .as_str()
                    .expect("id")
                    .to_string(),
                e["occurred_at"].as_str().expect("time").to_string(),
            )
        })
        .collect();
    assert_eq!(times["act-1"], "2024-10-03T09:00:00+02:00");
    assert_eq!(times["act-2"], "2024-10-03T13:30:00+02:00");

    // A sheet it does not have, and a body that only starts like a workbook.
    let missing = server
        .push_workbook("group_participated", "?sheet=Klassen", bytes)
        .await;
    assert_eq!(missing.status(), 400);
    let broken = server
        .push_workbook("group_participated", "", b"PK\x03\x04 not a zip".to_vec())
        .await;
    assert_eq!(broken.status(), 400);
    let body: Value = broken.json().await.expect("an error answer");
    assert_eq!(body["error"]["code"], "malformed_body");
}
