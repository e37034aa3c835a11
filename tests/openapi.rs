//! The OpenAPI description that `techmon serve` serves (`GET /v1/openapi.json`, made
//! from the handlers) against what the service does: requests of every kind go to
//! every route, and each answer's status must be documented for its operation, its
//! JSON body must fit the documented schema (an error's code must be named in the
//! status's description), and every documented status must have
//! been answered by some request (but for the few named in `ELSEWHERE`, which need
//! a failing event log or a 256 MiB body, and are tested where those are at hand).

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};

const HUB: &str = "dev-token-tec-deventer";
const RESEARCHER: &str = "dev-token-researcher";
const ANALYST: &str = "dev-token-analyst";
const ADMIN: &str = "dev-token-admin";

/// Documented statuses this test does not provoke, and where they are provoked.
const ELSEWHERE: &[(&str, &str, u16, &str)] = &[
    (
        "post",
        "/v1/events",
        503,
        "ingest/tests/api.rs, the event log down",
    ),
    (
        "post",
        "/v1/feeds/{kind}",
        503,
        "the same push as /v1/events",
    ),
    (
        "get",
        "/readyz",
        503,
        "ingest/tests/api.rs, the event log down",
    ),
    ("post", "/v1/reference/duo", 413, "a body over 256 MiB"),
];

/// One request: the operation it is of (method and path template) and what is sent.
struct Probe {
    method: Method,
    template: &'static str,
    path: String,
    token: Option<&'static str>,
    headers: Vec<(&'static str, String)>,
    body: Vec<u8>,
}

fn probe(method: Method, template: &'static str, path: &str, token: Option<&'static str>) -> Probe {
    Probe {
        method,
        template,
        path: path.to_string(),
        token,
        headers: vec![],
        body: vec![],
    }
}

impl Probe {
    fn body(mut self, body: impl Into<Vec<u8>>) -> Self {
        self.body = body.into();
        self
    }

    fn header(mut self, name: &'static str, value: &str) -> Self {
        self.headers.push((name, value.to_string()));
        self
    }

    fn json(self, value: &Value) -> Self {
        self.header("content-type", "application/json")
            .body(value.to_string())
    }
}

/// What was answered, per operation (`get /v1/sql`).
#[derive(Default)]
struct Answered(BTreeMap<(String, String), BTreeSet<u16>>);

impl Answered {
    /// Sends `probe`, checks its answer against `doc`, and returns its body.
    async fn send(
        &mut self,
        client: &reqwest::Client,
        url: &str,
        doc: &Value,
        probe: Probe,
    ) -> Value {
        let method = probe.method.as_str().to_lowercase();
        let what = format!("{method} {} ({})", probe.template, probe.path);
        let mut request = client
            .request(probe.method.clone(), format!("{url}{}", probe.path))
            .body(probe.body);
        if let Some(token) = probe.token {
            request = request.bearer_auth(token);
        }
        for (name, value) in probe.headers {
            request = request.header(name, value);
        }
        let answer = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{what}: {e}"));
        let status = answer.status().as_u16();
        let content_type = answer
            .headers()
            .get("content-type")
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string();
        let bytes = answer.bytes().await.expect("body");
        let operation = &doc["paths"][probe.template][&method];
        assert!(operation.is_object(), "{what}: not in the description");
        let response = &operation["responses"][status.to_string()];
        assert!(
            response.is_object(),
            "{what}: answered {status}, which is not documented: {}",
            String::from_utf8_lossy(&bytes)
        );
        let media = content_type.split(';').next().unwrap_or_default();
        let body = if media == "application/json" {
            let body: Value = serde_json::from_slice(&bytes).expect("JSON");
            let schema = &response["content"]["application/json"]["schema"];
            assert!(schema.is_object(), "{what} {status}: no JSON documented");
            fits(doc, schema, &body, &format!("{what} {status}"));
            if let Some(code) = body["error"]["code"].as_str() {
                let documented = response["description"].as_str().unwrap_or_default();
                assert!(
                    documented.contains(&format!("`{code}`")),
                    "{what} {status}: code {code} is not named in \"{documented}\""
                );
            }
            body
        } else {
            let documented = response["content"].as_object();
            assert!(
                documented.is_some_and(|c| c.keys().any(|k| k.as_str() == media)),
                "{what} {status}: {content_type} not documented"
            );
            Value::Null
        };
        self.0
            .entry((method, probe.template.to_string()))
            .or_default()
            .insert(status);
        body
    }
}

/// Whether `value` fits `schema` as far as its shape goes: the properties it has are
/// documented, the required ones are there, and so on down.
fn fits(doc: &Value, schema: &Value, value: &Value, what: &str) {
    if let Some(reference) = schema["$ref"].as_str() {
        let name = reference.trim_start_matches("#/components/schemas/");
        let named = &doc["components"]["schemas"][name];
        assert!(
            named.is_object(),
            "{what}: {reference} is not in the components"
        );
        return fits(doc, named, value, what);
    }
    if let Some(choices) = schema["oneOf"].as_array() {
        // An `Option<T>`: null, or T.
        if value.is_null() && choices.iter().any(|c| c["type"] == "null") {
            return;
        }
        let chosen = choices
            .iter()
            .find(|c| c["type"] != "null")
            .expect("a choice");
        return fits(doc, chosen, value, what);
    }
    let types: Vec<&str> = match &schema["type"] {
        Value::String(t) => vec![t.as_str()],
        Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
        _ => return,
    };
    let kind = match value {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_f64() => "number",
        Value::Number(_) => "integer",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    };
    assert!(
        types.contains(&kind) || (kind == "integer" && types.contains(&"number")),
        "{what}: {value} is {kind}, documented as {types:?}"
    );
    match value {
        Value::Object(fields) => {
            let properties = schema["properties"].as_object();
            for required in schema["required"].as_array().into_iter().flatten() {
                let name = required.as_str().expect("a name");
                assert!(
                    fields.contains_key(name),
                    "{what}: {name} is missing in {value}"
                );
            }
            if let Some(properties) = properties {
                for (name, field) in fields {
                    let property = properties
                        .get(name)
                        .unwrap_or_else(|| panic!("{what}: {name} is not documented"));
                    fits(doc, property, field, &format!("{what}.{name}"));
                }
            }
        }
        Value::Array(items) => {
            for item in items {
                fits(doc, &schema["items"], item, &format!("{what}[]"));
            }
        }
        _ => {}
    }
}

async fn description(client: &reqwest::Client, url: &str) -> Value {
    client
        .get(format!("{url}/v1/openapi.json"))
        .send()
        .await
        .expect("the description")
        .json()
        .await
        .expect("JSON")
}

/// The requests that go to the service as configured by default, with the ingest
/// body limit at 4 KiB and at most 5 rows per answer.
fn probes_of_a_working_service() -> Vec<Probe> {
    use Method as M;
    let event = common::event(0);
    let csv = "event_id,schema_version,hub_id,occurred_at,sent_at,activity_id,school_brin6,sector,groep,school_year,participants.girls,participants.boys\n\
               6f0e5c43-7fb6-4be8-9a3b-35e0cbd3e001,1,tec-deventer,2024-10-08T09:00:00+02:00,2024-10-08T16:10:00+02:00,act-1,12AB00,PO,7,2024/25,12,14\n";
    let duo = std::fs::read(std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(
        "reference/tests/data/duo/01.-leerlingen-vo-per-vestiging-naar-onderwijstype-2023.csv",
    ))
    .expect("a DUO fixture");
    let export = json!({"sql": "SELECT count(*) AS n FROM activities", "format": "csv"});
    let hub = json!({"hub_id": "techniekpunt-voorst", "name": "Techniekpunt Voorst", "municipality": "Voorst"});
    let region = json!({"region_id": "noord-veluwe", "name": "Noord-Veluwe", "municipalities": ["Harderwijk", "Elburg"]});
    let sql =
        |body: &str| probe(M::POST, "/v1/sql", "/v1/sql", Some(RESEARCHER)).body(body.to_string());
    let feed = |path: &str, token| probe(M::POST, "/v1/feeds/{kind}", path, token);
    let rows = |path: &str, token| probe(M::POST, "/v1/sheets/rows", path, token);
    let import = |path: &str, token| probe(M::POST, "/v1/reference/duo", path, token);
    vec![
        // The service itself.
        probe(M::GET, "/healthz", "/healthz", None),
        probe(M::GET, "/readyz", "/readyz", None),
        probe(M::GET, "/metrics", "/metrics", None),
        probe(M::GET, "/v1/openapi.json", "/v1/openapi.json", None),
        probe(M::GET, "/", "/", None),
        probe(M::GET, "/assets/app.js", "/assets/app.js", None),
        probe(M::GET, "/assets/style.css", "/assets/style.css", None),
        // Ingest.
        probe(M::POST, "/v1/events", "/v1/events", Some(HUB)).json(&json!([event])),
        probe(M::POST, "/v1/events", "/v1/events", Some(HUB)).body("[not json"),
        probe(M::POST, "/v1/events", "/v1/events", None).json(&json!([event])),
        probe(M::POST, "/v1/events", "/v1/events", Some(HUB)).body(vec![b' '; 8192]),
        feed("/v1/feeds/group_participated", Some(HUB)).body(csv),
        feed("/v1/feeds/group_participated", Some(HUB)).body(""),
        feed("/v1/feeds/group_participated", None).body(csv),
        feed("/v1/feeds/no_such_kind", Some(HUB)).body(csv),
        feed("/v1/feeds/group_participated", Some(HUB)).body(vec![b' '; 8192]),
        feed("/v1/feeds/group_participated?nonsense=1", Some(HUB)).body(csv),
        feed("/v1/feeds/group_participated", Some(HUB))
            .header("content-type", techmon_ingest::workbook::XLSX)
            .body(&b"PK\x03\x04 not a workbook"[..]),
        feed("/v1/feeds/group_participated", Some(HUB))
            .header("content-type", "text/csv; charset=klingon")
            .body(csv),
        probe(M::GET, "/v1/templates.xlsx", "/v1/templates.xlsx", None),
        rows("/v1/sheets/rows", Some(HUB)).body(csv),
        rows(
            "/v1/sheets/rows?kind=group_participated&sheet=Blad1",
            Some(HUB),
        )
        .body(csv),
        rows("/v1/sheets/rows", None).body(csv),
        rows("/v1/sheets/rows", Some(HUB)).body(""),
        rows("/v1/sheets/rows?kind=no_such_kind", Some(HUB)).body(csv),
        rows("/v1/sheets/rows", Some(HUB)).body(vec![b' '; 8192]),
        rows("/v1/sheets/rows", Some(HUB))
            .header("content-type", "text/csv; charset=klingon")
            .body(csv),
        probe(M::GET, "/v1/uploads", "/v1/uploads", Some(HUB)),
        probe(M::GET, "/v1/uploads", "/v1/uploads", None),
        probe(M::GET, "/upload", "/upload", None),
        probe(M::GET, "/assets/upload.js", "/assets/upload.js", None),
        probe(M::GET, "/assets/upload.css", "/assets/upload.css", None),
        probe(M::GET, "/v1/schemas", "/v1/schemas", None),
        probe(
            M::GET,
            "/v1/schemas/{kind}/{version}",
            "/v1/schemas/group_participated/1",
            None,
        ),
        probe(
            M::GET,
            "/v1/schemas/{kind}/{version}",
            "/v1/schemas/group_participated/99",
            None,
        ),
        // SQL.
        sql("SELECT 1 AS one"),
        sql("SELECT 1 AS one").header("accept", "text/csv"),
        sql("SELECT 1 AS one").header("accept", "application/vnd.apache.arrow.stream"),
        sql("SELECT 1 AS one").header("accept", "application/vnd.apache.parquet"),
        sql("SELECT 1 AS one").header("accept", "image/png"),
        sql("SELEKT 1"),
        sql("DELETE FROM activities"),
        sql("SELECT * FROM activities").header("techmon-table-versions", "activities=999"),
        sql("SELECT * FROM generate_series(1, 10)"),
        sql(&format!("SELECT '{}' AS long", "x".repeat(3 << 20))),
        probe(M::POST, "/v1/sql", "/v1/sql", None).body("SELECT 1"),
        probe(M::GET, "/v1/tables", "/v1/tables", Some(RESEARCHER)),
        probe(M::GET, "/v1/tables", "/v1/tables", None),
        probe(M::GET, "/v1/me", "/v1/me", Some(HUB)),
        probe(M::GET, "/v1/me", "/v1/me", None),
        // KPIs.
        probe(
            M::GET,
            "/v1/kpis",
            "/v1/kpis?year=1999&hub=region",
            Some(RESEARCHER),
        ),
        probe(M::GET, "/v1/kpis", "/v1/kpis?year=soon", Some(RESEARCHER)),
        probe(M::GET, "/v1/kpis", "/v1/kpis?hub=tec-hengelo", Some(HUB)),
        probe(M::GET, "/v1/kpis", "/v1/kpis", Some(RESEARCHER)),
        probe(M::GET, "/v1/kpis", "/v1/kpis?year=2024", Some(RESEARCHER))
            .header("techmon-table-versions", "activities=999"),
        probe(M::GET, "/v1/kpis", "/v1/kpis", None),
        // Effects: every scope's row of the track is over the 5 rows allowed here.
        probe(
            M::GET,
            "/v1/effects",
            "/v1/effects?hub=region",
            Some(RESEARCHER),
        ),
        probe(M::GET, "/v1/effects", "/v1/effects", Some(RESEARCHER)),
        probe(
            M::GET,
            "/v1/effects",
            "/v1/effects?track=lyceum",
            Some(RESEARCHER),
        ),
        probe(
            M::GET,
            "/v1/effects",
            "/v1/effects?hub=tec-hengelo",
            Some(HUB),
        ),
        probe(
            M::GET,
            "/v1/effects",
            "/v1/effects?hub=region",
            Some(RESEARCHER),
        )
        .header("techmon-table-versions", "activities=999"),
        probe(M::GET, "/v1/effects", "/v1/effects", None),
        // Exports.
        probe(M::POST, "/v1/exports", "/v1/exports", Some(ANALYST)).json(&export),
        probe(M::POST, "/v1/exports", "/v1/exports", Some(ANALYST)).json(&export),
        probe(M::POST, "/v1/exports", "/v1/exports", Some(ANALYST))
            .header("content-type", "application/json")
            .body("{not json"),
        probe(M::POST, "/v1/exports", "/v1/exports", Some(ANALYST)).json(&json!({"format": "csv"})),
        probe(M::POST, "/v1/exports", "/v1/exports", Some(ANALYST)).body(export.to_string()),
        probe(M::POST, "/v1/exports", "/v1/exports", Some(RESEARCHER)).json(&export),
        probe(M::POST, "/v1/exports", "/v1/exports", None).json(&export),
        probe(M::GET, "/v1/exports/{id}", "/v1/exports/00", Some(ANALYST)),
        probe(
            M::GET,
            "/v1/exports/{id}",
            "/v1/exports/00",
            Some(RESEARCHER),
        ),
        probe(M::GET, "/v1/exports/{id}", "/v1/exports/00", None),
        probe(
            M::GET,
            "/v1/exports/{id}/provenance",
            "/v1/exports/00/provenance",
            Some(ANALYST),
        ),
        probe(
            M::GET,
            "/v1/exports/{id}/provenance",
            "/v1/exports/00/provenance",
            Some(RESEARCHER),
        ),
        probe(
            M::GET,
            "/v1/exports/{id}/provenance",
            "/v1/exports/00/provenance",
            None,
        ),
        probe(
            M::GET,
            "/v1/exports/{id}/codebook",
            "/v1/exports/00/codebook",
            Some(ANALYST),
        ),
        probe(
            M::GET,
            "/v1/exports/{id}/codebook",
            "/v1/exports/00/codebook",
            Some(RESEARCHER),
        ),
        probe(
            M::GET,
            "/v1/exports/{id}/codebook",
            "/v1/exports/00/codebook",
            None,
        ),
        // The audit trail.
        probe(M::GET, "/v1/audit", "/v1/audit?limit=5", Some(ADMIN)),
        probe(M::GET, "/v1/audit", "/v1/audit?limit=many", Some(ADMIN)),
        probe(M::GET, "/v1/audit", "/v1/audit", Some(RESEARCHER)),
        probe(M::GET, "/v1/audit", "/v1/audit", None),
        // Reference data.
        import("/v1/reference/duo?source=vo-2023.csv", Some(ADMIN)).body(duo.clone()),
        import("/v1/reference/duo?source=nothing.csv", Some(ADMIN)).body("a;b\n1;2\n"),
        import("/v1/reference/duo?source=vo-2023.csv", Some(RESEARCHER)).body(duo.clone()),
        import("/v1/reference/duo?source=vo-2023.csv", None).body(duo),
        // The registry.
        hubs(Some(ADMIN)).json(&hub),
        hubs(Some(ADMIN)).json(&hub),
        hubs(Some(RESEARCHER)).json(&hub),
        hubs(None).json(&hub),
        retire(Some(ADMIN)).json(&json!({"last_school_year": "2027/28"})),
        retire(Some(ADMIN)).json(&json!({"last_school_year": "soon"})),
        retire(Some(RESEARCHER)).json(&json!({"last_school_year": "2027/28"})),
        retire(None).json(&json!({"last_school_year": "2027/28"})),
        targets(Some(ADMIN)).body("kpi,band,year,target\nvo_pupils,,2024,90\n"),
        targets(Some(ADMIN)).body("kpi,band,year,target\nhappiness,,2024,90\n"),
        targets(Some(RESEARCHER)).body("kpi,band,year,target\nvo_pupils,,2024,90\n"),
        targets(None).body("kpi,band,year,target\nvo_pupils,,2024,90\n"),
        token("tec-deventer", Some(ADMIN)),
        token("no-such-hub", Some(ADMIN)),
        token("tec-deventer", Some(RESEARCHER)),
        token("tec-deventer", None),
        // A second region last: hubs and targets then need to name theirs.
        regions(Some(ADMIN)).json(&region),
        regions(Some(ADMIN)).json(&region),
        regions(Some(RESEARCHER)).json(&region),
        regions(None).json(&region),
    ]
}

fn token(hub: &str, token: Option<&'static str>) -> Probe {
    probe(
        Method::POST,
        "/v1/reference/hubs/{hub_id}/tokens",
        &format!("/v1/reference/hubs/{hub}/tokens"),
        token,
    )
}

/// The registry's routes, as `token`.
fn regions(token: Option<&'static str>) -> Probe {
    probe(
        Method::POST,
        "/v1/reference/regions",
        "/v1/reference/regions",
        token,
    )
}

fn hubs(token: Option<&'static str>) -> Probe {
    probe(
        Method::POST,
        "/v1/reference/hubs",
        "/v1/reference/hubs",
        token,
    )
}

fn retire(token: Option<&'static str>) -> Probe {
    probe(
        Method::POST,
        "/v1/reference/hubs/{hub_id}/retire",
        "/v1/reference/hubs/techniekpunt-voorst/retire",
        token,
    )
}

fn targets(token: Option<&'static str>) -> Probe {
    probe(
        Method::POST,
        "/v1/reference/kpi_targets",
        "/v1/reference/kpi_targets",
        token,
    )
    .header("content-type", "text/csv")
}

/// Requests whose answer depends on a service that cannot do its work now.
fn probes_of_a_failing_service() -> Vec<Probe> {
    use Method as M;
    let export = json!({"sql": "SELECT count(*) AS n FROM activities"});
    vec![
        probe(M::POST, "/v1/sql", "/v1/sql", Some(RESEARCHER)).body("SELECT 1"),
        // A refusal is audited too: unrecorded, it is not given.
        probe(M::GET, "/v1/tables", "/v1/tables", None),
        probe(M::GET, "/v1/me", "/v1/me", None),
        probe(M::GET, "/v1/kpis", "/v1/kpis", Some(RESEARCHER)),
        probe(
            M::GET,
            "/v1/effects",
            "/v1/effects?hub=region",
            Some(RESEARCHER),
        ),
        probe(M::POST, "/v1/exports", "/v1/exports", Some(ANALYST)).json(&export),
        probe(M::GET, "/v1/exports/{id}", "/v1/exports/00", Some(ANALYST)),
        probe(
            M::GET,
            "/v1/exports/{id}/provenance",
            "/v1/exports/00/provenance",
            Some(ANALYST),
        ),
        probe(
            M::GET,
            "/v1/exports/{id}/codebook",
            "/v1/exports/00/codebook",
            Some(ANALYST),
        ),
        probe(M::GET, "/v1/audit", "/v1/audit", Some(ADMIN)),
        probe(M::GET, "/v1/uploads", "/v1/uploads", Some(HUB)),
        probe(
            M::POST,
            "/v1/reference/duo",
            "/v1/reference/duo?source=x.csv",
            Some(ADMIN),
        )
        .body("a;b\n"),
        targets(Some(ADMIN)).body("kpi,band,year,target\nvo_pupils,,2024,90\n"),
        regions(Some(ADMIN)).json(&json!({"region_id": "noord-veluwe", "name": "Noord-Veluwe", "municipalities": ["Nunspeet"]})),
        hubs(Some(ADMIN)).json(&json!({"hub_id": "techniekpunt-brummen", "name": "Techniekpunt Brummen", "municipality": "Brummen"})),
        retire(Some(ADMIN)).json(&json!({"last_school_year": "2027/28"})),
        token("tec-deventer", Some(ADMIN)),
    ]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_description_and_the_service_agree() {
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(60))
        .build()
        .expect("client");
    let mut answered = Answered::default();

    let (dir, _service, url) = common::serve_ready(&[
        ("TECHMON__INGEST__MAX_BODY_BYTES", "4096"),
        ("TECHMON__QUERY__MAX_ROWS", "5"),
    ])
    .await;
    let doc = description(&client, &url).await;
    assert!(
        doc["openapi"].as_str().is_some_and(|v| v.starts_with("3.")),
        "{doc}"
    );

    for probe in probes_of_a_working_service() {
        answered.send(&client, &url, &doc, probe).await;
    }
    // An export's file and provenance, by its id.
    let made = answered
        .send(
            &client,
            &url,
            &doc,
            probe(Method::POST, "/v1/exports", "/v1/exports", Some(ANALYST))
                .json(&json!({"sql": "SELECT count(*) AS n FROM activities", "format": "parquet"})),
        )
        .await;
    let id = made["export_id"].as_str().expect("an export id");
    for (template, path) in [
        ("/v1/exports/{id}", format!("/v1/exports/{id}")),
        (
            "/v1/exports/{id}/provenance",
            format!("/v1/exports/{id}/provenance"),
        ),
        (
            "/v1/exports/{id}/codebook",
            format!("/v1/exports/{id}/codebook"),
        ),
    ] {
        answered
            .send(
                &client,
                &url,
                &doc,
                probe(Method::GET, template, &path, Some(ANALYST)),
            )
            .await;
    }

    // The audit trail cannot be written: today's file is a folder.
    let today = dir.path().join("techmon-data/audit").join(format!(
        "audit-{}.ndjson",
        chrono::Utc::now().date_naive().format("%Y-%m-%d")
    ));
    let _ = std::fs::remove_file(&today);
    std::fs::create_dir_all(&today).expect("a folder in the file's place");
    for probe in probes_of_a_failing_service() {
        answered.send(&client, &url, &doc, probe).await;
    }

    // One query at a time per user, and no queue: while a long query of the
    // researcher's runs, the next is refused with 429.
    let (_busy_dir, _busy, busy_url) = common::serve_ready(&[
        ("TECHMON__QUERY__MAX_CONCURRENT_PER_USER", "1"),
        ("TECHMON__QUERY__QUEUE_SECONDS", "0"),
        ("TECHMON__QUERY__TIMEOUT_SECONDS", "20"),
    ])
    .await;
    assert_eq!(description(&client, &busy_url).await, doc);
    let long = |token: &'static str| {
        let (client, url) = (client.clone(), busy_url.clone());
        tokio::spawn(async move {
            client
                .post(format!("{url}/v1/sql"))
                .bearer_auth(token)
                .body("SELECT count(*) FROM generate_series(1, 100000000000)")
                .send()
                .await
        })
    };
    let (researcher_long, analyst_long) = (long(RESEARCHER), long(ANALYST));
    tokio::time::sleep(Duration::from_millis(500)).await;
    for probe in [
        probe(Method::POST, "/v1/sql", "/v1/sql", Some(RESEARCHER)).body("SELECT 1"),
        probe(Method::GET, "/v1/kpis", "/v1/kpis", Some(RESEARCHER)),
        probe(
            Method::GET,
            "/v1/effects",
            "/v1/effects?hub=region",
            Some(RESEARCHER),
        ),
        probe(Method::POST, "/v1/exports", "/v1/exports", Some(ANALYST))
            .json(&json!({"sql": "SELECT 1 AS n"})),
    ] {
        answered.send(&client, &busy_url, &doc, probe).await;
    }
    researcher_long.abort();
    analyst_long.abort();

    // Every documented status was answered (or is provoked elsewhere).
    let mut unanswered = Vec::new();
    for (path, operations) in doc["paths"].as_object().expect("paths") {
        for (method, operation) in operations.as_object().expect("operations") {
            let seen = answered.0.get(&(method.clone(), path.clone()));
            for status in operation["responses"]
                .as_object()
                .expect("responses")
                .keys()
            {
                let status: u16 = status.parse().expect("a status code, not `default`");
                let elsewhere = ELSEWHERE
                    .iter()
                    .any(|(m, p, s, _)| (*m, *p, *s) == (method.as_str(), path.as_str(), status));
                if !elsewhere && !seen.is_some_and(|s| s.contains(&status)) {
                    unanswered.push(format!("{method} {path} {status}"));
                }
            }
        }
    }
    assert!(
        unanswered.is_empty(),
        "documented, never answered: {unanswered:#?}"
    );
    // And what is provoked elsewhere is documented.
    for (method, path, status, _) in ELSEWHERE {
        assert!(
            doc["paths"][path][method]["responses"][status.to_string()].is_object(),
            "{method} {path} {status}"
        );
    }
}
