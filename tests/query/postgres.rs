//! The PostgreSQL endpoint as researchers' own tools use it: Debian's psql and
//! Python's psycopg against the query service, compared with what `POST /v1/sql`
//! answers; the SQL safety refusals, a hub's token, and the row limit.

mod common;

use std::net::SocketAddr;
use std::process::{Command, Output};

use common::{ANALYST, RESEARCHER, TestLake, po_group, sql};
use serde_json::{Value, json};

const HUB_TOKEN: &str = "tec-deventer-token";

/// The PostgreSQL endpoint over `lake` on a free port, with the HTTP API beside it.
async fn serve_both(lake: &TestLake, max_rows: usize) -> (SocketAddr, SocketAddr) {
    let config = lake.config(256, 30, max_rows);
    common::serve_endpoint(
        &lake.path(),
        &config,
        &[("tec-deventer", HUB_TOKEN)],
        |listener, service| {
            techmon_query::postgres::serve(listener, service, std::future::pending())
        },
    )
    .await
}

/// Debian's psql, each of `commands` as a `-c`, CSV out, errors with their SQLSTATE.
async fn psql(addr: SocketAddr, token: &str, commands: &[&str]) -> Output {
    let mut command = Command::new("psql");
    command
        .env("PGPASSWORD", token)
        .args(["-X", "--csv", "-v", "VERBOSITY=verbose"])
        .args(["-h", &addr.ip().to_string(), "-p", &addr.port().to_string()])
        .args(["-U", "someone", "-d", "techmon"]);
    for c in commands {
        command.args(["-c", c]);
    }
    tokio::task::spawn_blocking(move || {
        command
            .output()
            .expect("psql runs (bash .ci/install installs postgresql-client)")
    })
    .await
    .expect("psql")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

const BY_SCHOOL: &str = "SELECT school_brin6, sum(participants_girls) AS girls, sum(participants_boys) AS boys \
                         FROM group_participations GROUP BY school_brin6 ORDER BY school_brin6";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_lists_the_tables_describes_one_and_answers_as_the_http_api_does() {
    let lake = common::three_schools().await;
    let (http, pg) = serve_both(&lake, 10_000).await;

    let listed = psql(pg, RESEARCHER, &["\\dt"]).await;
    let out = text(&listed.stdout);
    assert!(
        listed.status.success(),
        "\\dt: {}{out}",
        text(&listed.stderr)
    );
    for table in [
        "activities",
        "group_participations",
        "duo_vo_pupils",
        "hubs",
    ] {
        assert!(
            out.lines().any(|l| l.split(',').nth(1) == Some(table)),
            "{table} in\n{out}"
        );
    }

    let described = psql(pg, RESEARCHER, &["\\d group_participations"]).await;
    let out = text(&described.stdout);
    assert!(
        described.status.success(),
        "\\d: {}{out}",
        text(&described.stderr)
    );
    for column in ["school_brin6", "participants_girls", "school_year"] {
        assert!(
            out.lines().any(|l| l.starts_with(&format!("{column},"))),
            "{column} in\n{out}"
        );
    }

    // The same rows as POST /v1/sql gives, and the versions they came from.
    let answered = psql(pg, ANALYST, &[BY_SCHOOL]).await;
    assert!(answered.status.success(), "{}", text(&answered.stderr));
    let reply = sql(http, ANALYST, "text/csv", None, BY_SCHOOL).await;
    assert_eq!(reply.status, 200);
    assert_eq!(text(&answered.stdout), reply.ok_text());
    assert!(
        text(&answered.stderr).contains(&format!("table versions: {}", reply.versions)),
        "{}",
        text(&answered.stderr)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psql_gets_the_sql_refusals_a_hub_token_is_turned_away_and_the_row_limit_ends_one_query() {
    let lake = common::three_schools().await;
    let (_http, pg) = serve_both(&lake, 2).await;

    let refused = psql(
        pg,
        RESEARCHER,
        &[
            "DROP TABLE activities",
            "COPY (SELECT 1) TO '/tmp/x.csv'",
            "SET datafusion.execution.batch_size = 1",
            "SELECT count(*) AS n FROM activities",
        ],
    )
    .await;
    let errors = text(&refused.stderr);
    assert!(errors.contains("ERROR:  25006"), "{errors}");
    assert!(errors.contains("ERROR:  42501"), "{errors}");
    // The connection goes on after each refusal.
    assert!(
        text(&refused.stdout).contains("n\n0\n"),
        "{}",
        text(&refused.stdout)
    );

    let hub = psql(pg, HUB_TOKEN, &["SELECT 1"]).await;
    assert!(!hub.status.success());
    // psql shows a refused connection's message, not its SQLSTATE.
    assert!(
        text(&hub.stderr).contains("FATAL:  a hub's token pushes events"),
        "{}",
        text(&hub.stderr)
    );
    let unknown = psql(pg, "not-a-token", &["SELECT 1"]).await;
    assert!(!unknown.status.success());
    assert!(
        text(&unknown.stderr)
            .to_lowercase()
            .contains("password authentication failed"),
        "{}",
        text(&unknown.stderr)
    );

    // Three schools are more than the two rows allowed: a clear error, and the same
    // connection answers the next statement.
    let limited = psql(pg, ANALYST, &[BY_SCHOOL, "SELECT 'still here' AS answer"]).await;
    let errors = text(&limited.stderr);
    assert!(
        errors.contains("ERROR:  54000") && errors.contains("more than 2 rows"),
        "{errors}"
    );
    assert!(
        text(&limited.stdout).contains("still here"),
        "{}",
        text(&limited.stdout)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn psycopg_fetches_the_http_answers_with_parameters_and_pinned_versions() {
    let lake = common::three_schools().await;
    let (http, pg) = serve_both(&lake, 10_000).await;
    // A later round of rows: version 2 of the table.
    lake.add(&[po_group("newtechpark", "14EE00", 22, 19)]).await;

    let script = r#"
import json, sys
import psycopg
host, port, token = sys.argv[1], int(sys.argv[2]), sys.argv[3]
notices = []
with psycopg.connect(host=host, port=port, user="analyst", password=token, dbname="techmon") as conn:
    conn.add_notice_handler(lambda d: notices.append(d.message_primary))
    with conn.cursor() as cur:
        cur.execute("SELECT school_brin6, sum(participants_girls) AS girls FROM group_participations WHERE school_brin6 <> %s GROUP BY school_brin6 ORDER BY school_brin6", ("10AA00",))
        latest = cur.fetchall()
        cur.execute("SET techmon.versions = 'group_participations=1'")
        cur.execute("SHOW techmon.versions")
        pin = cur.fetchone()[0]
        cur.execute("SELECT count(*) AS groups FROM group_participations")
        pinned = cur.fetchone()[0]
json.dump({"latest": latest, "pin": pin, "pinned": pinned, "notices": notices}, sys.stdout)
"#;
    let (host, port) = (pg.ip().to_string(), pg.port().to_string());
    let output = tokio::task::spawn_blocking(move || {
        Command::new("python3")
            .args(["-c", script, &host, &port, ANALYST])
            .output()
            .expect("python3 runs (bash .ci/install installs psycopg)")
    })
    .await
    .expect("python");
    assert!(output.status.success(), "psycopg: {}", text(&output.stderr));
    let answer: Value = serde_json::from_slice(&output.stdout).expect("JSON");

    let reply = sql(
        http,
        ANALYST,
        "application/json",
        None,
        "SELECT school_brin6, sum(participants_girls) AS girls FROM group_participations \
         WHERE school_brin6 <> '10AA00' GROUP BY school_brin6 ORDER BY school_brin6",
    )
    .await;
    let expected: Vec<Value> = reply.json()["rows"]
        .as_array()
        .expect("rows")
        .iter()
        .map(|r| json!([r["school_brin6"], r["girls"]]))
        .collect();
    assert_eq!(answer["latest"], json!(expected));
    assert_eq!(expected.len(), 3, "the later round is in the latest answer");
    assert_eq!(answer["pin"], "group_participations=1");
    assert_eq!(answer["pinned"], 3, "version 1 has the first three groups");
    let notices = answer["notices"].as_array().expect("notices");
    assert!(
        notices.iter().any(|n| n
            .as_str()
            .is_some_and(|n| n.contains("group_participations=1"))),
        "{notices:?}"
    );
}
