//! A real lake for the query tests: events appended to an embedded event log and
//! written by the transform, as in production.

#![allow(dead_code)]

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use techmon_eventlog::embedded::EmbeddedLog;
use techmon_eventlog::{EventLog, LogRecord};
use techmon_lake::LakeLocation;
use techmon_query::{Config, Engine};
use techmon_service::{Role, User};
use uuid::Uuid;

const TOPIC: &str = "techmon.events";

pub const RESEARCHER: &str = "researcher-token";
pub const ANALYST: &str = "analyst-token";
pub const ADMIN: &str = "admin-token";
pub const MICRODATA: &str = "microdata-token";
pub const EXPIRED_MICRODATA: &str = "expired-microdata-token";

pub struct TestLake {
    pub dir: tempfile::TempDir,
    log: Arc<dyn EventLog>,
}

impl TestLake {
    pub fn new() -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let log = Arc::new(EmbeddedLog::open(&dir.path().join("events.redb"), 2, 16).expect("log"));
        Self { dir, log }
    }

    pub fn path(&self) -> String {
        self.dir.path().join("lake").to_string_lossy().into_owned()
    }

    /// A query service configuration whose exports are kept in the lake's folder,
    /// so they go when the test does.
    pub fn config(&self, memory_limit_mib: usize, timeout_seconds: u64, max_rows: usize) -> Config {
        let user = |name: &str, role, token| User {
            name: name.into(),
            role,
            token_sha256: techmon_service::token_sha256(token),
            hub: None,
            microdata_until: None,
        };
        let granted = |name: &str, token, until: &str| User {
            microdata_until: Some(until.parse().expect("a date")),
            ..user(name, Role::Researcher, token)
        };
        Config {
            listen: "127.0.0.1:0".parse().expect("address"),
            postgres_listen: None,
            flight_listen: None,
            memory_limit_mib,
            total_memory_mib: 4096,
            timeout_seconds,
            max_rows,
            max_value_bytes: 16 << 20,
            exports: self.dir.path().join("exports"),
            audit: self.audit_folder(),
            output_control: self.dir.path().join("output-control"),
            audit_retention_days: 30,
            max_concurrent: 4,
            max_concurrent_per_user: 2,
            queue_seconds: 10,
            min_persons: 10,
            cell_key_noise: Vec::new(),
            users: vec![
                user("rita", Role::Researcher, RESEARCHER),
                granted("mira", MICRODATA, "2999-12-31"),
                granted("otto", EXPIRED_MICRODATA, "2020-01-31"),
                user("anna", Role::Analyst, ANALYST),
                user("ada", Role::Admin, ADMIN),
            ],
        }
    }

    /// Where the query service's audit trail is.
    pub fn audit_folder(&self) -> std::path::PathBuf {
        self.dir.path().join("audit")
    }

    /// Appends the events and runs the transform until it has written them.
    pub async fn add(&self, events: &[Value]) {
        let records = events
            .iter()
            .map(|e| LogRecord {
                key: techmon_schemas::validate_event(e)
                    .expect("test events are valid")
                    .subject_key(),
                event_id: Uuid::parse_str(e["event_id"].as_str().expect("id")).expect("uuid"),
                payload: e.to_string().into_bytes(),
                version: None,
            })
            .collect();
        self.log.append(records).await.expect("append");
        self.transform().await;
    }

    /// Pushes a CSV feed of `kind` for `hub` through the ingest API, as a hub does
    /// (with the person keys the transform reads).
    pub async fn push_feed(&self, hub: &str, kind: &str, csv: &str) -> techmon_ingest::PushAnswer {
        let token = format!("{hub}-token");
        let config = techmon_ingest::Config {
            listen: "127.0.0.1:0".parse().expect("an address"),
            max_body_bytes: 1 << 20,
            max_records_per_request: 1000,
            retry_after_seconds: 1,
            hubs: vec![techmon_service::HubCredential {
                hub_id: hub.into(),
                token_sha256: techmon_service::token_sha256(&token),
            }],
        };
        let keys =
            techmon_eventlog::person_keys::PersonKeys::open(&self.dir.path().join("person-keys"))
                .expect("person keys");
        let router = techmon_ingest::build_with_metrics(
            &config,
            self.log.clone(),
            prometheus::Registry::new(),
            techmon_ingest::Stores {
                person_keys: Some(keys),
                audit: None,
                registry: None,
            },
        )
        .expect("ingest");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = listener.local_addr().expect("address");
        let (_stop, stopped) = tokio::sync::oneshot::channel::<()>();
        tokio::spawn(techmon_service::serve(listener, router, async {
            let _ = stopped.await;
        }));
        let response = reqwest::Client::new()
            .post(format!("http://{addr}/v1/feeds/{kind}"))
            .bearer_auth(&token)
            .header("content-type", "text/csv")
            .body(csv.to_string())
            .send()
            .await
            .expect("push");
        assert_eq!(response.status(), 200);
        response.json().await.expect("a push answer")
    }

    /// Runs the transform until it has written what the log holds.
    pub async fn transform(&self) {
        let config = techmon_transform::Config {
            listen: "127.0.0.1:0".parse().expect("an address"),
            raw: self.dir.path().join("raw"),
            pseudonym_key_id: "test-key".into(),
            pseudonym_key_file: None,
            max_records_per_partition: 10_000,
            records_per_read: 8192,
            max_round_bytes: 64 << 20,
            max_round_ms: 10_000,
            poll_interval_ms: 50,
            vacuum_interval_minutes: 60,
            vacuum_retention_hours: 24,
            compact_interval_minutes: 60,
            compact_target_file_mib: 128,
            relink_interval_minutes: 10,
            person_keys: self.dir.path().join("person-keys"),
        };
        let lake = LakeLocation::new(&self.path(), Default::default()).expect("a lake folder");
        let mut transform =
            techmon_transform::Transform::open(&config, &lake, self.log.clone(), TOPIC)
                .await
                .expect("open transform");
        let progress = transform.catch_up().await.expect("transform");
        assert_eq!(progress.dead_letters, 0, "test events must transform");
    }
}

pub fn event(kind: &str, hub: &str, occurred_at: &str, payload: Value) -> Value {
    json!({
        "event_id": Uuid::new_v4(), "event_type": kind, "schema_version": 1, "hub_id": hub,
        "occurred_at": occurred_at, "sent_at": occurred_at, "payload": payload
    })
}

/// Statements the query service refuses whatever the protocol, with the HTTP status
/// and error code of the refusal: what writes, reaches files or changes settings, and
/// SQL that does not plan.
pub const REFUSED: &[(&str, u16, &str)] = &[
    ("CREATE TABLE t AS SELECT 1", 403, "statement_not_allowed"),
    (
        "CREATE EXTERNAL TABLE pw (line VARCHAR) STORED AS CSV LOCATION '/etc/passwd'",
        403,
        "statement_not_allowed",
    ),
    ("CREATE VIEW v AS SELECT 1", 403, "statement_not_allowed"),
    (
        "INSERT INTO group_participations SELECT * FROM group_participations",
        403,
        "statement_not_allowed",
    ),
    (
        "DELETE FROM group_participations",
        403,
        "statement_not_allowed",
    ),
    (
        "UPDATE group_participations SET groep = 1",
        403,
        "statement_not_allowed",
    ),
    (
        "COPY group_participations TO '/tmp/techmon-copy.csv'",
        403,
        "statement_not_allowed",
    ),
    (
        "DROP TABLE group_participations",
        403,
        "statement_not_allowed",
    ),
    (
        "SET datafusion.execution.target_partitions = 64",
        403,
        "statement_not_allowed",
    ),
    ("SELECT 1; SELECT 2", 400, "not_one_statement"),
    ("SELECT * FROM '/etc/passwd'", 400, "bad_sql"),
    ("SELECT * FROM read_csv('/etc/passwd')", 400, "bad_sql"),
    ("SELECT * FROM read_parquet('/etc/passwd')", 400, "bad_sql"),
    ("SELECT * FROM no_such_table", 400, "bad_sql"),
];

/// A class of PO groep 7 at activity `act-1` of `hub`, in 2024/25.
pub fn po_group(hub: &str, school: &str, girls: u32, boys: u32) -> Value {
    event(
        "group_participated",
        hub,
        "2024-10-08T10:00:00+02:00",
        json!({
            "activity_id": "act-1", "school_brin6": school, "sector": "PO", "groep": 7, "school_year": "2024/25",
            "participants": {"girls": girls, "boys": boys, "other": 0}
        }),
    )
}

/// The credentials of `hubs` (hub id, token).
fn hub_credentials(hubs: &[(&str, &str)]) -> Vec<techmon_service::HubCredential> {
    hubs.iter()
        .map(|(hub_id, token)| techmon_service::HubCredential {
            hub_id: hub_id.to_string(),
            token_sha256: techmon_service::token_sha256(token),
        })
        .collect()
}

/// A SQL endpoint (`serve` on a listener, with the query service over `lake`) on a
/// free port, and the HTTP API beside it; `hubs` (hub id, token) have the hub role.
pub async fn serve_endpoint<F>(
    lake: &str,
    config: &Config,
    hubs: &[(&str, &str)],
    serve: impl FnOnce(tokio::net::TcpListener, techmon_query::http::QueryService) -> F,
) -> (SocketAddr, SocketAddr)
where
    F: Future<Output = Result<(), techmon_query::QueryError>> + Send + 'static,
{
    let http = serve_with_hubs(lake, config, hubs).await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(serve(listener, query_service(lake, config, hubs)));
    (http, addr)
}

/// A lake with one PO class of each of three schools, of two hubs (one round of rows:
/// version 1 of `group_participations`).
pub async fn three_schools() -> TestLake {
    let lake = TestLake::new();
    lake.add(&[
        po_group("tec-deventer", "10AA00", 13, 25),
        po_group("tec-deventer", "11BB00", 30, 28),
        po_group("newtechpark", "13DD00", 40, 45),
    ])
    .await;
    lake
}

/// The query service over `lake` for the users of `config` and `hubs` (hub id,
/// token), as the SQL endpoints (PostgreSQL, Flight SQL) take it.
pub fn query_service(
    lake: &str,
    config: &Config,
    hubs: &[(&str, &str)],
) -> techmon_query::http::QueryService {
    let location = LakeLocation::new(lake, Default::default()).expect("a lake folder");
    let engine = Arc::new(Engine::new(location, config.limits()).expect("engine"));
    let hubs = hub_credentials(hubs);
    let access = techmon_query::access(config, &hubs).expect("access");
    techmon_query::http::service(config, engine, access, &prometheus::Registry::new())
        .expect("service")
}

/// Serves the query API over `lake` on a free port.
pub async fn serve(lake: &str, config: &Config) -> SocketAddr {
    serve_with_hubs(lake, config, &[]).await
}

/// [`serve`], answering `hubs` too (hub id, token) with the hub role.
pub async fn serve_with_hubs(lake: &str, config: &Config, hubs: &[(&str, &str)]) -> SocketAddr {
    let location = LakeLocation::new(lake, Default::default()).expect("a lake folder");
    // Tokens issued to hubs at run time count within a second.
    let issued = techmon::hub_registry::LakeHubRegistry::watch(location.clone(), 1);
    let engine = Engine::new(location, config.limits()).expect("engine");
    let hubs = hub_credentials(hubs);
    let engine = Arc::new(engine);
    let registry = prometheus::Registry::new();
    let (research, _) =
        techmon::serve::research_routes(config, (&hubs, issued), Arc::clone(&engine), &registry)
            .await
            .expect("router");
    let router = research.merge(techmon_query::probes(engine, registry));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(techmon_service::serve(
        listener,
        router,
        std::future::pending(),
    ));
    addr
}

pub struct Reply {
    pub status: u16,
    pub versions: String,
    pub content_type: String,
    /// What output control left out (`techmon-suppressed`), empty when nothing applied.
    pub suppressed: String,
    pub body: Vec<u8>,
}

impl Reply {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }

    /// The body as text, after checking the answer is a success.
    pub fn ok_text(&self) -> String {
        let text = String::from_utf8_lossy(&self.body).into_owned();
        assert_eq!(self.status, 200, "{text}");
        text
    }

    pub fn error_code(&self) -> String {
        self.json()["error"]["code"]
            .as_str()
            .unwrap_or("")
            .to_string()
    }
}

pub async fn sql(
    addr: SocketAddr,
    token: &str,
    accept: &str,
    pins: Option<&str>,
    sql: &str,
) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!("http://{addr}/v1/sql"))
        .bearer_auth(token)
        .header("accept", accept)
        .timeout(Duration::from_secs(120))
        .body(sql.to_string());
    if let Some(pins) = pins {
        request = request.header("techmon-table-versions", pins);
    }
    let response = request.send().await.expect("query API answers");
    let header = |name: &str| {
        response
            .headers()
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string()
    };
    Reply {
        status: response.status().as_u16(),
        versions: header("techmon-table-versions"),
        content_type: header("content-type"),
        suppressed: header("techmon-suppressed"),
        body: response.bytes().await.expect("body").to_vec(),
    }
}

/// A GET with `token`: the status and the JSON body (null when there is none).
pub async fn get(addr: std::net::SocketAddr, token: &str, path: &str) -> (u16, Value) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(token)
        .send()
        .await
        .expect("answer");
    let status = response.status().as_u16();
    (status, response.json().await.unwrap_or(Value::Null))
}

/// A DUO fixture file from `reference/tests/data/duo`.
pub fn duo_file(name: &str) -> Vec<u8> {
    std::fs::read(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("reference/tests/data/duo")
            .join(name),
    )
    .expect("fixture")
}

/// Imports a DUO file through the API; returns the status and the answer.
pub async fn import(addr: SocketAddr, token: &str, name: &str, bytes: Vec<u8>) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/reference/duo"))
        .bearer_auth(token)
        .query(&[("source", name)])
        .body(bytes)
        .send()
        .await
        .expect("query API answers");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON answer"))
}

pub const VO_2022: &str = "01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2022.csv";
pub const VO_2023: &str = "01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2023.csv";
pub const VO_2024: &str = "01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2024.csv";
pub const PO_2024: &str = "01.-leerlingen-po-soort-po-cluster-leeftijd-2024-2025.csv";
/// DUO's address files: the VO pupils files name no municipality, these do.
pub const VO_ADDRESSES: &str = "02.-alle-vestigingen-vo.csv";
pub const PO_ADDRESSES: &str = "02.-alle-schoolvestigingen-basisonderwijs.csv";

/// The record batches of a Parquet file.
pub fn parquet_batches(bytes: &[u8]) -> Vec<deltalake::arrow::array::RecordBatch> {
    deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(
        bytes::Bytes::copy_from_slice(bytes),
    )
    .expect("a Parquet file")
    .build()
    .expect("reader")
    .map(|b| b.expect("batch"))
    .collect()
}
