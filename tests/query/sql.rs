//! The SQL API over a real lake: formats, versions, roles, safety and limits.

mod common;

use common::{ANALYST, RESEARCHER, TestLake, event, parquet_batches, serve, sql};
use deltalake::arrow::array::RecordBatch;
use deltalake::arrow::util::display::array_value_to_string;
use serde_json::{Value, json};

fn group(school: &str, groep: u32, girls: u32, boys: u32) -> Value {
    event(
        "group_participated",
        "tec-deventer",
        "2024-10-03T09:00:00+02:00",
        json!({
            "activity_id": "act-1", "school_brin6": school, "sector": "PO", "groep": groep,
            "school_year": "2024/25", "participants": {"girls": girls, "boys": boys, "other": 0}
        }),
    )
}

async fn lake_with_groups() -> TestLake {
    let lake = TestLake::new();
    lake.add(&[
        group("12AB00", 7, 10, 12),
        group("12AB00", 8, 9, 9),
        group("34CD01", 5, 3, 4),
    ])
    .await;
    lake
}

/// Rows as text, whatever format they came in.
fn text_rows(batches: &[RecordBatch]) -> Vec<Vec<String>> {
    batches
        .iter()
        .flat_map(|b| {
            (0..b.num_rows()).map(move |r| {
                b.columns()
                    .iter()
                    .map(|c| array_value_to_string(c, r).expect("display"))
                    .collect()
            })
        })
        .collect()
}

const BY_SCHOOL: &str = "SELECT school_brin6, sum(participants_total) AS pupils, count(*) AS groups \
                         FROM group_participations GROUP BY school_brin6 ORDER BY school_brin6";

#[tokio::test]
async fn every_format_gives_the_same_rows() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let expected = vec![
        vec!["12AB00".to_string(), "40".into(), "2".into()],
        vec!["34CD01".to_string(), "7".into(), "1".into()],
    ];

    let json_reply = sql(addr, RESEARCHER, "application/json", None, BY_SCHOOL).await;
    assert_eq!(
        json_reply.status,
        200,
        "{}",
        String::from_utf8_lossy(&json_reply.body)
    );
    let body = json_reply.json();
    let from_json: Vec<Vec<String>> = body["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|row| {
            ["school_brin6", "pupils", "groups"]
                .iter()
                .map(|c| match &row[*c] {
                    Value::String(s) => s.clone(),
                    other => other.to_string(),
                })
                .collect()
        })
        .collect();
    assert_eq!(from_json, expected);
    assert_eq!(body["row_count"], 2);
    // Version 0 creates the table; the lake's one round of rows is version 1.
    assert_eq!(body["table_versions"]["group_participations"], 1);

    let csv_reply = sql(addr, RESEARCHER, "text/csv", None, BY_SCHOOL).await;
    assert_eq!(csv_reply.content_type, "text/csv");
    let mut reader = csv::Reader::from_reader(csv_reply.body.as_slice());
    assert_eq!(
        reader.headers().expect("header").iter().collect::<Vec<_>>(),
        ["school_brin6", "pupils", "groups"]
    );
    let from_csv: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("record").iter().map(str::to_string).collect())
        .collect();
    assert_eq!(from_csv, expected);

    let arrow_reply = sql(
        addr,
        RESEARCHER,
        "application/vnd.apache.arrow.stream",
        None,
        BY_SCHOOL,
    )
    .await;
    let reader =
        deltalake::arrow::ipc::reader::StreamReader::try_new(arrow_reply.body.as_slice(), None)
            .expect("an Arrow IPC stream");
    let batches: Vec<RecordBatch> = reader.map(|b| b.expect("batch")).collect();
    assert_eq!(text_rows(&batches), expected);

    let parquet_reply = sql(
        addr,
        RESEARCHER,
        "application/vnd.apache.parquet",
        None,
        BY_SCHOOL,
    )
    .await;
    let batches = parquet_batches(&parquet_reply.body);
    assert_eq!(text_rows(&batches), expected);

    // Every format states the same versions; the same query gives the same bytes.
    for reply in [&csv_reply, &arrow_reply, &parquet_reply] {
        assert_eq!(reply.versions, json_reply.versions);
    }
    let again = sql(
        addr,
        RESEARCHER,
        "application/vnd.apache.parquet",
        None,
        BY_SCHOOL,
    )
    .await;
    assert_eq!(again.body, parquet_reply.body);
}

/// A DISTINCT over a lake table's partition column (as `kpi_years` asks) is answered
/// from the table's file list, without reading a Parquet file, with the rows reading
/// them gives; a count per school year still reads the rows.
#[tokio::test]
async fn distinct_school_years_come_from_the_file_list() {
    let lake = lake_with_groups().await;
    let mut earlier = group("56EF00", 3, 4, 5);
    earlier["payload"]["school_year"] = json!("2023/24");
    lake.add(&[earlier]).await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let ask =
        |query: String| async move { sql(addr, ANALYST, "text/csv", None, &query).await.ok_text() };
    let distinct = "SELECT DISTINCT school_year FROM group_participations \
                    UNION SELECT school_year FROM attendances ORDER BY 1";
    assert_eq!(
        ask(distinct.into()).await,
        "school_year\n2023/24\n2024/25\n"
    );
    let plan = ask(format!("EXPLAIN {distinct}")).await;
    assert!(!plan.contains(".parquet"), "{plan}");

    let counts = "SELECT school_year, count(*) AS n FROM group_participations \
                  GROUP BY school_year ORDER BY 1";
    assert_eq!(
        ask(counts.into()).await,
        "school_year,n\n2023/24,1\n2024/25,3\n"
    );
    let plan = ask(format!("EXPLAIN {counts}")).await;
    assert!(plan.contains(".parquet"), "{plan}");
}

/// CSV has no lists: a list column (the lake has `worlds`, `target_groups`, …) comes
/// as the list's JSON text, the same value the JSON answer holds; an empty list as
/// `[]`, a null as an empty cell.
#[tokio::test]
async fn lists_come_as_json_text_in_csv() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let query = "SELECT school_brin6, array_remove(array_agg(groep ORDER BY groep), 5) AS groeps, \
                        array_agg(hub_id) AS hubs, \
                        CASE WHEN school_brin6 = '12AB00' THEN array_agg(sector) END AS sectors \
                 FROM group_participations GROUP BY school_brin6 ORDER BY school_brin6";
    let json_text = sql(addr, RESEARCHER, "application/json", None, query)
        .await
        .ok_text();
    let rows = serde_json::from_str::<Value>(&json_text).expect("JSON")["rows"].clone();
    let csv_text = sql(addr, RESEARCHER, "text/csv", None, query)
        .await
        .ok_text();
    let mut reader = csv::Reader::from_reader(csv_text.as_bytes());
    let records: Vec<csv::StringRecord> = reader.records().map(|r| r.expect("record")).collect();
    assert_eq!(records.len(), 2);
    assert_eq!(&records[0][1], "[7,8]");
    assert_eq!(&records[1][1], "[]");
    assert_eq!(&records[1][3], "", "a null list is an empty cell");
    for (record, row) in records.iter().zip(rows.as_array().expect("rows")) {
        for (i, column) in ["groeps", "hubs", "sectors"].iter().enumerate() {
            let cell = &record[i + 1];
            let from_csv: Value = if cell.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(cell).expect("JSON text")
            };
            assert_eq!(from_csv, row[*column], "{column}");
        }
    }
}
#[tokio::test]
async fn answers_name_their_versions_and_pinned_versions_reproduce_them() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let count = "SELECT count(*) AS n FROM group_participations";
    let first = sql(addr, RESEARCHER, "application/json", None, count).await;
    assert_eq!(first.json()["rows"][0]["n"], 3);
    // Version 0 creates each table; the first round of rows is version 1.
    assert!(
        first.versions.contains("group_participations=1"),
        "{}",
        first.versions
    );

    lake.add(&[group("56EF00", 6, 5, 5)]).await;
    let second = sql(addr, RESEARCHER, "application/json", None, count).await;
    assert_eq!(second.json()["rows"][0]["n"], 4);
    assert!(
        second.versions.contains("group_participations=2"),
        "{}",
        second.versions
    );

    // Sending the first answer's versions back reproduces the first answer.
    let pinned = sql(
        addr,
        RESEARCHER,
        "application/json",
        Some(&first.versions),
        count,
    )
    .await;
    assert_eq!(pinned.status, 200);
    assert_eq!(pinned.json()["rows"][0]["n"], 3);
    assert_eq!(pinned.versions, first.versions);

    let missing = sql(
        addr,
        RESEARCHER,
        "application/json",
        Some("group_participations=99"),
        count,
    )
    .await;
    assert_eq!(
        (missing.status, missing.error_code().as_str()),
        (404, "version_unavailable")
    );
    let unknown = sql(
        addr,
        RESEARCHER,
        "application/json",
        Some("secrets=1"),
        count,
    )
    .await;
    assert_eq!(unknown.error_code(), "unknown_table");
}

#[tokio::test]
async fn only_query_users_may_query() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    for token in ["", "dev-token-tec-deventer", "wrong"] {
        let reply = sql(addr, token, "application/json", None, "SELECT 1").await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (401, "unauthorized"),
            "token {token:?}"
        );
    }
    for token in [RESEARCHER, ANALYST] {
        assert_eq!(
            sql(addr, token, "application/json", None, "SELECT 1")
                .await
                .status,
            200
        );
    }
    let tables: Value = reqwest::Client::new()
        .get(format!("http://{addr}/v1/tables"))
        .bearer_auth(RESEARCHER)
        .send()
        .await
        .expect("tables")
        .json()
        .await
        .expect("json");
    let tables = tables["tables"].as_array().expect("tables");
    let named = |name: &str| tables.iter().find(|t| t["name"] == name).cloned();
    let groups = named("group_participations").expect("group_participations listed");
    assert_eq!(groups["kind"], "lake");
    assert!(
        groups["columns"]
            .as_array()
            .expect("columns")
            .iter()
            .any(|c| c["name"] == "participants_total")
    );
    assert_eq!(
        named("kpi_targets").expect("kpi_targets")["kind"],
        "code_list"
    );
    assert_eq!(
        named("duo_vo_pupils").expect("duo_vo_pupils")["kind"],
        "reference"
    );
    assert!(tables.iter().any(|t| t["kind"] == "view"));
}

/// Researchers read each view's SQL in information_schema, and that SQL gives the
/// view's rows (decimals rounded: sums may add up in another order), row-level.
#[tokio::test]
async fn each_views_sql_in_information_schema_gives_its_rows() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let rows_of = |sql_text: String| async move {
        let reply = sql(addr, ANALYST, "application/json", None, &sql_text).await;
        let mut rows: Vec<String> = reply.json()["rows"]
            .as_array()
            .unwrap_or_else(|| panic!("rows of {sql_text}"))
            .iter()
            .map(|row| {
                let cells = row.as_object().expect("a row object").iter();
                cells
                    .map(|(column, cell)| match cell.as_f64() {
                        Some(number) => format!("{column}={number:.6}"),
                        None => format!("{column}={cell}"),
                    })
                    .collect::<Vec<_>>()
                    .join(",")
            })
            .collect();
        rows.sort();
        rows
    };
    let definitions = sql(
        addr,
        RESEARCHER,
        "application/json",
        None,
        "SELECT table_name, definition FROM information_schema.views",
    )
    .await
    .json();
    let definitions = definitions["rows"].as_array().expect("rows");
    for view in techmon_query::views::VIEWS {
        let definition = definitions
            .iter()
            .find(|row| row["table_name"] == view.name)
            .and_then(|row| row["definition"].as_str())
            .unwrap_or_else(|| panic!("{} in information_schema.views", view.name));
        let body = definition
            .strip_prefix(&format!("CREATE VIEW {} AS ", view.name))
            .unwrap_or_else(|| panic!("{}: {definition}", view.name));
        assert_eq!(
            rows_of(format!("SELECT * FROM ({body})")).await,
            rows_of(format!("SELECT * FROM {}", view.name)).await,
            "{}",
            view.name
        );
    }
}

#[tokio::test]
async fn writes_files_and_settings_are_refused_and_the_service_goes_on() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    for &(statement, status, code) in common::REFUSED {
        let reply = sql(addr, RESEARCHER, "application/json", None, statement).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (status, code),
            "{statement}"
        );
        let message = reply.json()["error"]["message"]
            .as_str()
            .unwrap_or("")
            .to_string();
        assert!(!message.is_empty(), "{statement}: a message says why");
    }
    assert!(!std::path::Path::new("/tmp/techmon-copy.csv").exists());
    // The lake is untouched and the service still answers.
    let reply = sql(
        addr,
        RESEARCHER,
        "application/json",
        None,
        "SELECT count(*) AS n FROM group_participations",
    )
    .await;
    assert_eq!(reply.json()["rows"][0]["n"], 3);
}

#[tokio::test]
async fn memory_time_and_row_limits_end_a_query_cleanly() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(8, 2, 100)).await;
    for (statement, code) in [
        // Collecting 20 million values into one array cannot spill.
        (
            "SELECT array_length(array_agg(value)) FROM generate_series(1, 20000000)",
            "memory_limit",
        ),
        // Asked again: its kept plan runs within the new query's limit too.
        (
            "SELECT array_length(array_agg(value)) FROM generate_series(1, 20000000)",
            "memory_limit",
        ),
        (
            "SELECT count(*) FROM generate_series(1, 100000000000)",
            "timeout",
        ),
        ("SELECT * FROM generate_series(1, 1000)", "row_limit"),
    ] {
        let reply = sql(addr, RESEARCHER, "application/json", None, statement).await;
        assert_eq!(
            (reply.status, reply.error_code().as_str()),
            (422, code),
            "{statement}"
        );
    }
    let ok = sql(
        addr,
        RESEARCHER,
        "application/json",
        None,
        "SELECT * FROM generate_series(1, 100)",
    )
    .await;
    assert_eq!(
        (ok.status, ok.json()["row_count"].clone()),
        (200, json!(100))
    );
}

/// techmon reads its own tables with a scan of its own; a table another Delta writer
/// has upgraded to reader features that scan does not read (deletion vectors here)
/// is read by deltalake's, with the same rows.
#[tokio::test]
async fn a_table_upgraded_to_deletion_vectors_gives_the_same_rows() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let explain = format!("EXPLAIN {BY_SCHOOL}");
    let before = sql(addr, RESEARCHER, "application/json", None, BY_SCHOOL).await;
    let before_plan = sql(addr, RESEARCHER, "text/csv", None, &explain)
        .await
        .ok_text();
    assert!(!before_plan.contains("DeltaScanExec"), "{before_plan}");

    let table = url::Url::from_directory_path(
        std::path::Path::new(&lake.path()).join("group_participations"),
    )
    .expect("table URL");
    let table = deltalake::open_table(table).await.expect("open the table");
    let table = table
        .add_feature()
        .with_feature(deltalake::kernel::TableFeatures::DeletionVectors)
        .with_allow_protocol_versions_increase(true)
        .await
        .expect("enable deletion vectors");
    assert_eq!(
        table
            .snapshot()
            .expect("snapshot")
            .protocol()
            .min_reader_version(),
        3
    );

    let after = sql(addr, RESEARCHER, "application/json", None, BY_SCHOOL).await;
    assert_eq!(after.json()["rows"], before.json()["rows"]);
    assert_eq!(after.json()["table_versions"]["group_participations"], 2);
    let after_plan = sql(addr, RESEARCHER, "text/csv", None, &explain)
        .await
        .ok_text();
    assert!(after_plan.contains("DeltaScanExec"), "{after_plan}");
}

/// What a query asks of a view (a filter, some columns, a limit) is planned into the
/// view, down to its tables; the rows are the whole view's, filtered afterwards.
#[tokio::test]
async fn filters_columns_and_limits_on_a_view_give_the_whole_views_rows() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let rows = |reply: common::Reply| -> Vec<Value> {
        let body: Value = serde_json::from_str(&reply.ok_text()).expect("JSON");
        body["rows"].as_array().expect("rows").clone()
    };
    let whole = rows(
        sql(
            addr,
            RESEARCHER,
            "application/json",
            None,
            "SELECT * FROM reach",
        )
        .await,
    );
    let expected: Vec<Value> = whole
        .iter()
        .filter(|r| r["people"].as_f64().is_some_and(|p| p > 10.0))
        .map(|r| json!({"band": r["band"], "people": r["people"]}))
        .collect();
    assert!(
        !expected.is_empty() && expected.len() < whole.len(),
        "the filter keeps some rows of {whole:?}"
    );

    for query in [
        "SELECT band, people FROM reach WHERE people > 10 ORDER BY band",
        "SELECT r.band, r.people FROM reach r WHERE r.people > 10 ORDER BY r.band",
    ] {
        let mut filtered = rows(sql(addr, RESEARCHER, "application/json", None, query).await);
        let mut expected = expected.clone();
        let band = |r: &Value| r["band"].as_str().unwrap_or_default().to_string();
        expected.sort_by_key(band);
        filtered.sort_by_key(band);
        assert_eq!(filtered, expected, "{query}");
    }
    let limited = rows(
        sql(
            addr,
            RESEARCHER,
            "application/json",
            None,
            "SELECT * FROM reach LIMIT 1",
        )
        .await,
    );
    assert_eq!(limited.len(), 1);
    assert!(
        whole.contains(&limited[0]),
        "{limited:?} is a row of {whole:?}"
    );
}

/// A statement asked again on the same versions runs its kept plan: the answers stay
/// right however often it runs (a run leaves state in its plan: the files its scans
/// shared out, a join's built side), a new version plans it again, and a query that
/// asks the time is never answered with an old time.
#[tokio::test]
async fn a_query_asked_again_gives_the_same_rows_until_the_lake_changes() {
    let lake = lake_with_groups().await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 1000)).await;
    let ask = |query: &'static str| async move {
        text_rows(&parquet_batches(
            &sql(
                addr,
                RESEARCHER,
                "application/vnd.apache.parquet",
                None,
                query,
            )
            .await
            .body,
        ))
    };
    // Groups per school: 12AB00 has 22 and 18 pupils, 34CD01 has 7.
    let smallest = "SELECT min(participants_total) AS smallest FROM group_participations";
    let schools = "SELECT g.school_brin6, min(g.participants_total) AS smallest, \
                   max(o.participants_total) AS largest FROM group_participations g \
                   JOIN group_participations o ON g.school_brin6 = o.school_brin6 \
                   GROUP BY g.school_brin6 ORDER BY smallest DESC LIMIT 1";
    for _ in 0..3 {
        assert_eq!(ask(smallest).await, vec![vec!["7".to_string()]]);
        assert_eq!(
            ask(schools).await,
            vec![vec!["12AB00".to_string(), "18".into(), "22".into()]]
        );
    }

    lake.add(&[group("56EF00", 1, 2, 3)]).await;
    assert_eq!(ask(smallest).await, vec![vec!["5".to_string()]]);

    let now = "SELECT CAST(now() AS VARCHAR) AS t";
    let earlier = ask(now).await;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    assert_ne!(ask(now).await, earlier);
}
