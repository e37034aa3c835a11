//! Arrow Flight SQL as researchers' tools use it: Python's ADBC Flight SQL driver
//! against the query service, compared with what `POST /v1/sql` answers; a Basic
//! handshake with the token as password; the SQL refusals; a hub's token.

mod common;

use std::net::SocketAddr;
use std::process::Command;

use common::{ANALYST, RESEARCHER, TestLake, po_group, sql};
use serde_json::{Value, json};

const HUB_TOKEN: &str = "tec-deventer-token";

/// Flight SQL over `lake` on a free port, with the HTTP API beside it.
async fn serve_both(lake: &TestLake) -> (SocketAddr, SocketAddr) {
    let config = lake.config(256, 30, 10_000);
    common::serve_endpoint(
        &lake.path(),
        &config,
        &[("tec-deventer", HUB_TOKEN)],
        |listener, service| techmon_query::flight::serve(listener, service, std::future::pending()),
    )
    .await
}

/// Python's ADBC Flight SQL driver: each statement's rows as JSON, or its error;
/// `auth` is a token, or `basic:<token>` for the handshake; `pins` go as the
/// `techmon-table-versions` header of every call.
async fn adbc(addr: SocketAddr, auth: &str, pins: &str, statements: &[&str]) -> Vec<Value> {
    let script = r#"
import json, sys
import adbc_driver_flightsql as flightsql
import adbc_driver_flightsql.dbapi as dbapi
uri, auth, token, pins = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4]
if auth == "basic":
    kwargs = {"username": "me", "password": token}
else:
    kwargs = {flightsql.DatabaseOptions.AUTHORIZATION_HEADER.value: "Bearer " + token}
if pins:
    kwargs[flightsql.DatabaseOptions.RPC_CALL_HEADER_PREFIX.value + "techmon-table-versions"] = pins
answers = []
listing = sys.argv[5] == "--tables"
try:
    conn = dbapi.connect(uri, db_kwargs=kwargs)
except Exception as e:
    print(json.dumps([{"error": str(e)}]))
    sys.exit(0)
with conn:
    if listing:
        objects = conn.adbc_get_objects(depth="columns").read_all().to_pylist()
        tables = {t["table_name"]: [c["column_name"] for c in t["table_columns"]]
                  for catalog in objects for schema in catalog["catalog_db_schemas"] or []
                  for t in schema["db_schema_tables"] or []}
        print(json.dumps([{"tables": tables}]))
        sys.exit(0)
    for statement in sys.argv[5:]:
        cur = conn.cursor()
        try:
            cur.execute(statement)
            table = cur.fetch_arrow_table()
            answers.append({"columns": table.column_names, "rows": [list(r.values()) for r in table.to_pylist()]})
        except Exception as e:
            answers.append({"error": str(e)})
        finally:
            cur.close()
print(json.dumps(answers))
"#;
    let (token, auth) = match auth.split_once(':') {
        Some((kind, token)) => (token.to_string(), kind.to_string()),
        None => (auth.to_string(), "bearer".to_string()),
    };
    let mut command = Command::new("python3");
    command
        .args(["-c", script, &format!("grpc://{addr}"), &auth, &token, pins])
        .args(statements);
    let output = tokio::task::spawn_blocking(move || {
        command
            .output()
            .expect("python3 runs (bash .ci/install installs adbc-driver-flightsql)")
    })
    .await
    .expect("python");
    assert!(
        output.status.success(),
        "adbc: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice::<Vec<Value>>(&output.stdout).expect("JSON")
}

const BY_SCHOOL: &str = "SELECT school_brin6, sum(participants_girls) AS girls, sum(participants_boys) AS boys \
                         FROM group_participations GROUP BY school_brin6 ORDER BY school_brin6";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_fetches_the_http_answers_and_gets_the_same_refusals() {
    let lake = common::three_schools().await;
    let (http, flight) = serve_both(&lake).await;

    let reply = sql(http, ANALYST, "application/json", None, BY_SCHOOL).await;
    assert_eq!(reply.status, 200);
    let expected: Vec<Value> = reply.json()["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| json!([r["school_brin6"], r["girls"], r["boys"]]))
        .collect();
    assert_eq!(expected.len(), 3);

    let answers = adbc(
        flight,
        ANALYST,
        "",
        &[
            BY_SCHOOL,
            "DROP TABLE activities",
            "SELECT participant_pseudonym FROM participants",
        ],
    )
    .await;
    assert_eq!(
        answers[0]["columns"],
        json!(["school_brin6", "girls", "boys"]),
        "{answers:?}"
    );
    assert_eq!(answers[0]["rows"], json!(expected));
    let refusal = answers[1]["error"].as_str().unwrap_or_default();
    assert!(refusal.contains("statement_not_allowed"), "{refusal}");

    // A researcher's answers are aggregates: a person-level column is refused.
    let answers = adbc(
        flight,
        &format!("basic:{RESEARCHER}"),
        "",
        &[BY_SCHOOL, "SELECT participant_pseudonym FROM participants"],
    )
    .await;
    assert_eq!(answers[0]["rows"], json!(expected), "{answers:?}");
    let refusal = answers[1]["error"].as_str().unwrap_or_default();
    assert!(refusal.contains("disclosure_refused"), "{refusal}");

    for (token, why) in [(HUB_TOKEN, "forbidden"), ("not-a-token", "unauthorized")] {
        let answers = adbc(flight, token, "", &["SELECT 1 AS one"]).await;
        let error = answers[0]["error"].as_str().unwrap_or_default();
        assert!(error.contains(why), "{token}: {answers:?}");
    }

    // A later round of rows is version 2; a pin reads version 1 still.
    lake.add(&[po_group("newtechpark", "14EE00", 22, 19)]).await;
    let count = "SELECT count(*) AS groups FROM group_participations";
    let latest = adbc(flight, ANALYST, "", &[count]).await;
    let pinned = adbc(flight, ANALYST, "group_participations=1", &[count]).await;
    assert_eq!(
        (&latest[0]["rows"], &pinned[0]["rows"]),
        (&json!([[4]]), &json!([[3]]))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adbc_lists_the_tables_and_views_with_their_columns_as_get_tables_does() {
    let lake = common::three_schools().await;
    let (http, flight) = serve_both(&lake).await;
    let (status, served) = common::get(http, RESEARCHER, "/v1/tables").await;
    assert_eq!(status, 200);
    let expected: serde_json::Map<String, Value> = served["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            let columns: Vec<&Value> = t["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| &c["name"])
                .collect();
            (
                t["name"].as_str().expect("name").to_string(),
                json!(columns),
            )
        })
        .collect();
    let listed = adbc(flight, RESEARCHER, "", &["--tables"]).await;
    assert_eq!(listed[0]["tables"], Value::Object(expected));
}
