//! Exports: small-cell suppression that the margins cannot undo, the same bytes for
//! the same request, provenance, and the analyst role.

mod common;

use std::collections::BTreeSet;

use common::{ANALYST, RESEARCHER, TestLake, parquet_batches, po_group, serve};
use serde_json::{Value, json};

const BY_SCHOOL: &str = "SELECT school_brin6, sum(participants_girls) AS girls, sum(participants_boys) AS boys \
                         FROM group_participations GROUP BY school_brin6";

async fn post_export(addr: std::net::SocketAddr, token: &str, request: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("http://{addr}/v1/exports"))
        .bearer_auth(token)
        .json(&request)
        .send()
        .await
        .expect("exports answer");
    let status = response.status().as_u16();
    (status, response.json().await.expect("json"))
}

async fn download(addr: std::net::SocketAddr, id: &str) -> Vec<u8> {
    reqwest::Client::new()
        .get(format!("http://{addr}/v1/exports/{id}"))
        .bearer_auth(ANALYST)
        .send()
        .await
        .expect("download")
        .bytes()
        .await
        .expect("bytes")
        .to_vec()
}

/// Whether row r and column c stay connected through the other suppressed cells:
/// if not, the cell's value follows from the row and column totals.
fn derivable(suppressed: &BTreeSet<(usize, usize)>, cell: (usize, usize)) -> bool {
    let mut rows = BTreeSet::from([cell.0]);
    let mut columns = BTreeSet::new();
    loop {
        let before = rows.len() + columns.len();
        for &(r, c) in suppressed.iter().filter(|&&s| s != cell) {
            if rows.contains(&r) {
                columns.insert(c);
            }
            if columns.contains(&c) {
                rows.insert(r);
            }
        }
        if columns.contains(&cell.1) {
            return false;
        }
        if rows.len() + columns.len() == before {
            return true;
        }
    }
}

#[tokio::test]
async fn exports_hide_small_counts_from_the_margins_and_repeat_byte_for_byte() {
    let lake = TestLake::new();
    lake.add(&[
        po_group("tec-deventer", "10AA00", 3, 25),
        po_group("tec-deventer", "11BB00", 30, 28),
        po_group("tec-deventer", "12CC00", 12, 7),
        po_group("newtechpark", "13DD00", 40, 45),
        po_group("newtechpark", "14EE00", 22, 19),
        po_group("newtechpark", "15FF00", 16, 33),
    ])
    .await;
    let addr = serve(&lake.path(), &lake.config(256, 30, 10_000)).await;
    let request = json!({"sql": BY_SCHOOL, "format": "csv", "threshold": 10});

    let (status, denied) = post_export(addr, RESEARCHER, request.clone()).await;
    assert_eq!(
        (status, denied["error"]["code"].as_str()),
        (403, Some("forbidden"))
    );

    let (status, provenance) = post_export(addr, ANALYST, request.clone()).await;
    assert_eq!(status, 201, "{provenance}");
    assert_eq!(provenance["created_by"], "anna");
    assert_eq!(provenance["threshold"], 10);
    assert_eq!(provenance["sql"], BY_SCHOOL);
    // Version 0 creates the table; the lake's one round of rows is version 1.
    assert_eq!(provenance["table_versions"]["group_participations"], 1);
    assert_eq!(provenance["count_columns"], json!(["girls", "boys"]));
    assert_eq!(provenance["suppressed_primary"], 2);
    let id = provenance["export_id"].as_str().expect("id").to_string();
    let csv_bytes = download(addr, &id).await;

    // Rows are sorted by school; cells are empty where suppressed.
    let mut reader = csv::Reader::from_reader(csv_bytes.as_slice());
    let rows: Vec<Vec<String>> = reader
        .records()
        .map(|r| r.expect("record").iter().map(str::to_string).collect())
        .collect();
    let schools: Vec<&str> = rows.iter().map(|r| r[0].as_str()).collect();
    assert_eq!(
        schools,
        ["10AA00", "11BB00", "12CC00", "13DD00", "14EE00", "15FF00"]
    );
    let truth = [[3, 25], [30, 28], [12, 7], [40, 45], [22, 19], [16, 33]];
    let mut suppressed = BTreeSet::new();
    for (r, row) in rows.iter().enumerate() {
        for c in 0..2 {
            match row[c + 1].as_str() {
                "" => {
                    suppressed.insert((r, c));
                }
                published => {
                    let value: i64 = published.parse().expect("a count");
                    assert_eq!(value, truth[r][c], "published counts are the true counts");
                    assert!(
                        value >= 10,
                        "a count below the threshold was published: {value}"
                    );
                }
            }
        }
    }
    assert!(suppressed.contains(&(0, 0)) && suppressed.contains(&(2, 1)));
    assert_eq!(
        suppressed.len() - 2,
        provenance["suppressed_secondary"].as_u64().unwrap_or(0) as usize
    );
    for &cell in &suppressed {
        assert!(
            !derivable(&suppressed, cell),
            "cell {cell:?} follows from the totals: {suppressed:?}"
        );
    }

    // The same request on the same versions: the same export, the same bytes.
    let (status, again) = post_export(addr, ANALYST, request.clone()).await;
    assert_eq!(
        (status, again["export_id"].as_str()),
        (200, Some(id.as_str()))
    );
    assert_eq!(download(addr, &id).await, csv_bytes);

    // Parquet holds the same cells.
    let (_, parquet) = post_export(
        addr,
        ANALYST,
        json!({"sql": BY_SCHOOL, "format": "parquet"}),
    )
    .await;
    let bytes = download(addr, parquet["export_id"].as_str().expect("id")).await;
    let nulls: usize = parquet_batches(&bytes)
        .iter()
        .map(|b| b.column(1).null_count() + b.column(2).null_count())
        .sum();
    assert_eq!(nulls, suppressed.len());

    let (status, bad) = post_export(addr, ANALYST, json!({"sql": "DROP TABLE activities"})).await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (403, Some("statement_not_allowed"))
    );
    let (status, bad) = post_export(
        addr,
        ANALYST,
        json!({"sql": BY_SCHOOL, "count_columns": ["school_brin6"]}),
    )
    .await;
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("bad_export"))
    );

    // Counts held as doubles (as the KPI views' numerators are) are suppressed alike
    // when named, and published as whole numbers: the same file as above.
    let as_doubles = "SELECT school_brin6, CAST(sum(participants_girls) AS DOUBLE) AS girls, \
                      CAST(sum(participants_boys) AS DOUBLE) AS boys \
                      FROM group_participations GROUP BY school_brin6";
    let (status, doubles) = post_export(
        addr,
        ANALYST,
        json!({"sql": as_doubles, "format": "csv", "count_columns": ["girls", "boys"]}),
    )
    .await;
    assert_eq!(status, 201, "{doubles}");
    assert_eq!(doubles["suppressed_primary"], 2);
    let doubles_id = doubles["export_id"].as_str().expect("id");
    assert_eq!(download(addr, doubles_id).await, csv_bytes);

    // A double that is not whole is no count; the error names the column, not the value
    // (school 10AA00's 3 girls halved are 1.5).
    let halves = "SELECT school_brin6, sum(participants_girls) / 2.0 AS half_girls \
                  FROM group_participations GROUP BY school_brin6";
    let (status, bad) = post_export(
        addr,
        ANALYST,
        json!({"sql": halves, "count_columns": ["half_girls"]}),
    )
    .await;
    let message = bad["error"]["message"].as_str().unwrap_or_default();
    assert_eq!(
        (status, bad["error"]["code"].as_str()),
        (400, Some("bad_export"))
    );
    assert!(
        message.contains("half_girls") && message.contains("not whole") && !message.contains("1.5"),
        "{message}"
    );
}
