//! Codebooks: every column of the catalogue is described, and every export comes with
//! a codebook that names each column of its file with a type, a description and how
//! it was made; an XLSX export carries it on a second sheet.

mod common;

use std::collections::{BTreeMap, BTreeSet};

use common::{ANALYST, RESEARCHER, TestLake, get, parquet_batches, po_group, serve};
use serde_json::{Value, json};
use techmon_lake::glossary::TERMS;
use techmon_query::views::{VIEW_TERMS, VIEWS};

async fn post_export(addr: std::net::SocketAddr, request: Value) -> Value {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/exports"))
        .bearer_auth(ANALYST)
        .json(&request)
        .send()
        .await
        .expect("exports answer");
    let status = response.status();
    let answer: Value = response.json().await.expect("json");
    assert!(status.is_success(), "{status}: {answer}");
    answer
}

async fn fetch(addr: std::net::SocketAddr, path: &str, accept: &str) -> (String, Vec<u8>) {
    let response = reqwest::Client::new()
        .get(format!("http://{addr}{path}"))
        .bearer_auth(ANALYST)
        .header("accept", accept)
        .send()
        .await
        .expect("answer");
    assert!(
        response.status().is_success(),
        "{path}: {}",
        response.status()
    );
    let content_type = response
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    (content_type, response.bytes().await.expect("body").to_vec())
}

/// The catalogue as `GET /v1/tables` serves it: table → column → its description.
async fn catalogue(addr: std::net::SocketAddr) -> BTreeMap<String, BTreeMap<String, Value>> {
    let (status, tables) = get(addr, RESEARCHER, "/v1/tables").await;
    assert_eq!(status, 200, "{tables}");
    tables["tables"]
        .as_array()
        .expect("tables")
        .iter()
        .map(|t| {
            let columns = t["columns"]
                .as_array()
                .expect("columns")
                .iter()
                .map(|c| (c["name"].as_str().expect("name").to_string(), c.clone()))
                .collect();
            (t["name"].as_str().expect("name").to_string(), columns)
        })
        .collect()
}

#[tokio::test]
async fn every_column_of_the_catalogue_has_a_description_and_every_description_a_column() {
    let lake = TestLake::new();
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    let tables = catalogue(addr).await;
    for view in VIEWS {
        assert!(
            tables.contains_key(view.name),
            "view {} is served",
            view.name
        );
    }
    let undescribed: Vec<String> = tables
        .iter()
        .flat_map(|(table, columns)| {
            columns
                .iter()
                .filter(|(_, c)| {
                    c["description"]
                        .as_str()
                        .is_none_or(|d| d.trim().is_empty())
                })
                .map(move |(column, _)| format!("{table}.{column}"))
        })
        .collect();
    assert!(
        undescribed.is_empty(),
        "columns without a description: {undescribed:?}"
    );

    // No description is left over from a column that went.
    let named: BTreeSet<&str> = tables
        .values()
        .flat_map(|columns| columns.keys().map(String::as_str))
        .collect();
    let unused: Vec<&str> = TERMS
        .iter()
        .chain(VIEW_TERMS)
        .map(|t| t.column)
        .filter(|c| !named.contains(c))
        .collect();
    assert!(unused.is_empty(), "descriptions of no column: {unused:?}");
    for view in VIEWS {
        for term in view.columns {
            assert!(
                tables[view.name].contains_key(term.column),
                "{} describes a column {} it does not have",
                view.name,
                term.column
            );
        }
    }
    // A code list named as a column's codes is in the catalogue with that column.
    for (table, columns) in &tables {
        for (column, info) in columns {
            if let Some(list) = info["code_list"].as_str() {
                let (list_table, list_column) = list.split_once('.').expect("table.column");
                assert!(
                    tables
                        .get(list_table)
                        .is_some_and(|t| t.contains_key(list_column)),
                    "{table}.{column} names code list {list}, which is not in the catalogue"
                );
            }
        }
    }
}

/// Reads an XLSX workbook with openpyxl (the ingest tests' own spreadsheet).
fn openpyxl_read(bytes: &[u8]) -> Value {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("export.xlsx");
    std::fs::write(&path, bytes).expect("write");
    let script = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("ingest/tests/workbook.py");
    let output = std::process::Command::new("python3")
        .arg(&script)
        .arg("read")
        .arg(&path)
        .output()
        .expect("python3 runs (bash .ci/install installs openpyxl)");
    assert!(
        output.status.success(),
        "openpyxl: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("JSON")
}

const PER_HUB: &str = "SELECT g.hub_id, h.name AS hub_name, g.school_year, \
                       sum(g.participants_girls) AS girls, count(*) AS groups \
                       FROM group_participations g JOIN hubs h ON h.hub_id = g.hub_id \
                       GROUP BY g.hub_id, h.name, g.school_year";

#[tokio::test]
async fn an_xlsx_export_holds_its_rows_and_its_codebook_and_repeats_byte_for_byte() {
    let lake = TestLake::new();
    lake.add(&[
        po_group("tec-deventer", "10AA00", 3, 25),
        po_group("tec-deventer", "11BB00", 30, 28),
        po_group("newtechpark", "13DD00", 40, 45),
    ])
    .await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    let tables = catalogue(addr).await;
    let request = json!({"sql": PER_HUB, "format": "xlsx", "threshold": 1});
    let provenance = post_export(addr, request.clone()).await;
    let id = provenance["export_id"].as_str().expect("id").to_string();
    let (content_type, bytes) = fetch(addr, &format!("/v1/exports/{id}"), "*/*").await;
    assert_eq!(
        content_type,
        "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    );

    let workbook = openpyxl_read(&bytes);
    assert_eq!(workbook["order"], json!(["data", "codebook"]));
    let data = workbook["sheets"]["data"]["rows"].as_array().expect("rows");
    assert_eq!(
        data[0],
        json!(["hub_id", "hub_name", "school_year", "girls", "groups"])
    );
    // Sorted by every column; numbers are numbers.
    let mut rows: Vec<Value> = data[1..].to_vec();
    rows.sort_by_key(|r| r[0].as_str().map(str::to_string));
    assert_eq!(
        rows,
        [
            json!(["newtechpark", hub_name("newtechpark"), "2024/25", 40, 1]),
            json!(["tec-deventer", hub_name("tec-deventer"), "2024/25", 33, 2]),
        ]
    );

    // The codebook sheet: a row per column of the data sheet, each with a type and a
    // description; the hub's columns described as the catalogue describes them.
    let sheet = workbook["sheets"]["codebook"]["rows"]
        .as_array()
        .expect("rows");
    let header_at = sheet
        .iter()
        .position(|r| r[0] == "variable")
        .expect("a variables header");
    let header: Vec<&str> = sheet[header_at]
        .as_array()
        .expect("header")
        .iter()
        .map(|c| c.as_str().unwrap_or_default())
        .collect();
    let field = |name: &str| header.iter().position(|h| *h == name).expect(name);
    let variables: BTreeMap<String, &Value> = sheet[header_at + 1..]
        .iter()
        .take_while(|r| r[0].is_string())
        .map(|r| (r[0].as_str().expect("name").to_string(), r))
        .collect();
    assert_eq!(
        variables.keys().map(String::as_str).collect::<Vec<_>>(),
        ["girls", "groups", "hub_id", "hub_name", "school_year"]
    );
    for (name, row) in &variables {
        assert!(
            row[field("type")].as_str().is_some_and(|t| !t.is_empty())
                && row[field("description")]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
            "{name}: {row}"
        );
    }
    assert_eq!(
        variables["hub_id"][field("description")],
        tables["group_participations"]["hub_id"]["description"]
    );
    assert_eq!(
        variables["hub_name"][field("description")],
        tables["hubs"]["name"]["description"]
    );
    assert_eq!(variables["girls"][field("type")], "integer");
    assert_eq!(
        variables["girls"][field("sources")],
        "group_participations.participants_girls"
    );
    assert!(
        variables["girls"][field("derivation")]
            .as_str()
            .is_some_and(|d| d.contains("sum(")),
        "{}",
        variables["girls"]
    );
    assert!(
        variables["girls"][field("suppression")]
            .as_str()
            .is_some_and(|s| !s.is_empty())
    );
    assert!(variables["hub_name"][field("suppression")].is_null());

    // The same codebook as JSON and Markdown beside the file.
    let (content_type, codebook) = fetch(
        addr,
        &format!("/v1/exports/{id}/codebook"),
        "application/json",
    )
    .await;
    assert_eq!(content_type, "application/json");
    let codebook: Value = serde_json::from_slice(&codebook).expect("JSON codebook");
    let names: Vec<&str> = codebook["variables"]
        .as_array()
        .expect("variables")
        .iter()
        .map(|v| v["name"].as_str().expect("name"))
        .collect();
    assert_eq!(
        names,
        ["hub_id", "hub_name", "school_year", "girls", "groups"]
    );
    assert_eq!(codebook["provenance"]["export_id"], id);
    assert_eq!(
        codebook["provenance"]["data_sha256"],
        provenance["data_sha256"]
    );
    let read: BTreeSet<&str> = codebook["sources"]
        .as_array()
        .expect("sources")
        .iter()
        .map(|s| s["name"].as_str().expect("name"))
        .collect();
    assert_eq!(read, BTreeSet::from(["group_participations", "hubs"]));
    let (content_type, markdown) =
        fetch(addr, &format!("/v1/exports/{id}/codebook"), "text/markdown").await;
    assert!(content_type.starts_with("text/markdown"), "{content_type}");
    let markdown = String::from_utf8(markdown).expect("UTF-8");
    for name in names {
        assert!(
            markdown.contains(&format!("| {name} |")),
            "{name} in\n{markdown}"
        );
    }

    // Made again from nothing on the same versions, the workbook is the same bytes.
    for entry in std::fs::read_dir(lake.config(256, 30, 10_000).exports).expect("exports") {
        std::fs::remove_file(entry.expect("entry").path()).expect("remove");
    }
    let again = post_export(addr, request).await;
    assert_eq!(again["export_id"], json!(id));
    let (_, bytes_again) = fetch(addr, &format!("/v1/exports/{id}"), "*/*").await;
    assert!(
        bytes_again == bytes,
        "the XLSX export differs when made again"
    );
}

fn hub_name(hub: &str) -> String {
    techmon_schemas::codes::hubs()
        .iter()
        .find(|h| h.id == hub)
        .expect("a hub of the code list")
        .name
        .clone()
}

#[tokio::test]
async fn a_parquet_export_of_a_view_names_the_view_and_its_definition_for_every_column() {
    let lake = TestLake::new();
    lake.add(&[po_group("tec-deventer", "10AA00", 13, 25)])
        .await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    let tables = catalogue(addr).await;
    let sql = "SELECT hub_id, school_year, sector, band, role, people FROM reach";
    let provenance = post_export(addr, json!({"sql": sql, "format": "parquet"})).await;
    let id = provenance["export_id"].as_str().expect("id");
    let (_, file) = fetch(addr, &format!("/v1/exports/{id}"), "*/*").await;
    let batches = parquet_batches(&file);
    let schema = batches.first().expect("a batch").schema();
    let (_, codebook) = fetch(
        addr,
        &format!("/v1/exports/{id}/codebook"),
        "application/json",
    )
    .await;
    let codebook: Value = serde_json::from_slice(&codebook).expect("JSON");
    let variables = codebook["variables"].as_array().expect("variables");
    assert_eq!(variables.len(), schema.fields().len());
    for (field, variable) in schema.fields().iter().zip(variables) {
        assert_eq!(variable["name"], json!(field.name()));
        assert_eq!(
            variable["description"],
            tables["reach"][field.name()]["description"],
            "{variable}"
        );
        assert_eq!(
            variable["sources"],
            json!([{"table": "reach", "column": field.name()}])
        );
    }
    assert_eq!(variables[5]["type"], "integer");
    assert!(variables[5]["suppression"].is_string(), "people is a count");
    let reach = &codebook["sources"][0];
    assert_eq!(
        (reach["name"].as_str(), reach["kind"].as_str()),
        (Some("reach"), Some("view"))
    );
    assert!(
        reach["definition"]
            .as_str()
            .is_some_and(|sql| sql.contains("FROM group_participations")),
        "{reach}"
    );
}
