//! Output control on researchers' answers: disclosure attacks on a small region,
//! against what the same service tells an analyst (row-level: the truth).

mod common;

use std::collections::BTreeMap;
use std::net::SocketAddr;

use common::{
    ADMIN, ANALYST, EXPIRED_MICRODATA, MICRODATA, RESEARCHER, TestLake, event, serve, sql,
};
use serde_json::{Value, json};

/// One person: gender, birth date, postcode, school, groep.
type Person = (&'static str, &'static str, &'static str, &'static str, u32);

/// The region: 25 girls and 13 boys of groep 7/8 at one school, three children of
/// gender `other` at another, two `unknown`, and one child who is alone in every
/// respect (the target: school, birth year, postcode and groep of her own).
fn people() -> Vec<(String, Person)> {
    let mut people = Vec::new();
    for n in 0..25 {
        people.push((
            format!("g{n}"),
            ("female", "2012-03-01", "7411 AB", "12AB00", 7),
        ));
    }
    for n in 0..13 {
        people.push((
            format!("b{n}"),
            ("male", "2012-06-01", "7412 CD", "12AB00", 8),
        ));
    }
    for n in 0..3 {
        people.push((
            format!("o{n}"),
            ("other", "2011-01-01", "7413 EF", "34CD00", 8),
        ));
    }
    for n in 0..2 {
        people.push((
            format!("u{n}"),
            ("unknown", "2012-09-01", "7411 AB", "12AB00", 7),
        ));
    }
    people.push((
        "target".into(),
        ("female", "2010-02-02", "7999 ZZ", "99ZZ00", 6),
    ));
    people
}

async fn region() -> (TestLake, SocketAddr) {
    region_with(|_| {}).await
}

/// [`region`], its query service configured by `configure` too.
async fn region_with(configure: impl FnOnce(&mut techmon_query::Config)) -> (TestLake, SocketAddr) {
    let lake = TestLake::new();
    let mut events = Vec::new();
    for (reference, (gender, born, postcode, school, groep)) in people() {
        events.push(event(
            "participant_registered",
            "tec-deventer",
            "2024-09-20T10:00:00+02:00",
            json!({"participant_ref": reference, "name": format!("Kind {reference}"),
                   "gender": gender, "birth_date": born, "postcode": postcode,
                   "school_brin6": school, "sector": "PO", "groep": groep,
                   "role": "pupil", "consent_research": true}),
        ));
        events.push(event(
            "participant_attended",
            "tec-deventer",
            "2024-11-12T10:00:00+01:00",
            json!({"activity_id": "act-1", "participant_ref": reference}),
        ));
    }
    // Twelve girls at a second activity; the target alone at a third.
    for n in 0..12 {
        events.push(event(
            "participant_attended",
            "tec-deventer",
            "2024-11-19T10:00:00+01:00",
            json!({"activity_id": "act-2", "participant_ref": format!("g{n}")}),
        ));
    }
    events.push(event(
        "participant_attended",
        "tec-deventer",
        "2024-11-26T10:00:00+01:00",
        json!({"activity_id": "act-secret", "participant_ref": "target"}),
    ));
    lake.add(&events).await;
    let addr = serve_region(&lake, configure).await;
    (lake, addr)
}

/// A query service over the region's lake, its audit trail (and what it released) in
/// the lake's folder: a second one on the same lake is the first after a restart.
async fn serve_region(
    lake: &TestLake,
    configure: impl FnOnce(&mut techmon_query::Config),
) -> SocketAddr {
    let mut config = lake.config(512, 60, 100_000);
    // Researchers of their own, each with a history of what they were answered.
    for n in 1..=3 {
        config.users.push(techmon_service::User {
            name: format!("researcher-{n}"),
            role: techmon_service::Role::Researcher,
            token_sha256: techmon_service::token_sha256(&researcher(n)),
            hub: None,
            microdata_until: None,
        });
    }
    configure(&mut config);
    serve(&lake.path(), &config).await
}

/// The token of another researcher (1 to 3).
fn researcher(n: u32) -> String {
    format!("researcher-token-{n}")
}

/// The answer's rows as JSON objects.
async fn rows(addr: SocketAddr, token: &str, query: &str) -> (Vec<Value>, String) {
    let reply = sql(addr, token, "application/json", None, query).await;
    let text = String::from_utf8_lossy(&reply.body).into_owned();
    assert_eq!(reply.status, 200, "{query}: {text}");
    let body: Value = serde_json::from_str(&text).expect("JSON");
    (
        body["rows"].as_array().expect("rows").clone(),
        reply.suppressed.clone(),
    )
}

async fn refused(addr: SocketAddr, query: &str) -> String {
    let reply = sql(addr, RESEARCHER, "application/json", None, query).await;
    assert_eq!(
        (reply.status, reply.error_code()),
        (403, "disclosure_refused".to_string()),
        "{query} should be refused: {}",
        String::from_utf8_lossy(&reply.body)
    );
    reply.json()["error"]["message"]
        .as_str()
        .unwrap_or("")
        .to_string()
}

/// Queries that would give rows about single persons or single out one.
const ATTACKS: &[&str] = &[
    "SELECT * FROM (SELECT birth_year, pc4 FROM participants) p",
    "WITH p AS (SELECT pc4, gender FROM participants) SELECT * FROM p WHERE gender = 'female'",
    "SELECT p.pc4, a.activity_id FROM participants p JOIN attendances a ON a.participant_pseudonym = p.participant_pseudonym",
    "SELECT gender FROM participants UNION ALL SELECT activity_type FROM activities",
    "SELECT pc4, rank() OVER (ORDER BY birth_year) FROM participants",
    "SELECT DISTINCT ON (school_brin6) school_brin6, pc4 FROM participants",
    "SELECT max(birth_year) FROM participants",
    "SELECT min(birth_year) FROM participants WHERE gender = 'female'",
    "SELECT school_brin6, array_agg(pc4) FROM participants GROUP BY school_brin6",
    "SELECT school_brin6, string_agg(pc4, ',') FROM participants GROUP BY school_brin6",
    "SELECT median(birth_year) FROM participants",
    "SELECT gender, first_value(pc4) OVER (PARTITION BY gender) FROM participants",
    "SELECT count(*) FROM participants WHERE participant_pseudonym = 'x'",
    "SELECT count(*) FILTER (WHERE school_brin6 = '99ZZ00') FROM participants",
    "SELECT sum(CASE WHEN school_brin6 = '99ZZ00' THEN groep ELSE 0 END) FROM participants",
    "SELECT count(DISTINCT CASE WHEN school_brin6 = '99ZZ00' THEN groep END) FROM participants",
    "SELECT sum(g) FROM (SELECT CASE WHEN pc4 = '7999' THEN groep + 1 ELSE 1 END AS g FROM participants)",
    "SELECT count(*) FROM activities WHERE EXISTS (SELECT 1 FROM attendances WHERE activity_id = 'act-secret')",
    "SELECT count(*) FROM participants WHERE school_brin6 IN (SELECT school_brin6 FROM participants WHERE pc4 = '7999')",
    "EXPLAIN ANALYZE SELECT count(*) FROM participants WHERE pc4 = '7999'",
];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn row_level_answers_and_single_value_functions_are_refused() {
    let (_lake, addr) = region().await;
    let microdata = "SELECT participant_pseudonym, birth_year, pc4, school_brin6, gender, groep FROM participants";
    let message = refused(addr, microdata).await;
    assert!(message.contains("single persons"), "{message}");
    // Not in CSV either, nor through a view, a subquery, a join, a union or a window.
    let reply = sql(addr, RESEARCHER, "text/csv", None, microdata).await;
    assert_eq!(reply.status, 403);
    for query in ATTACKS {
        refused(addr, query).await;
    }
    // A plan alone shows no values.
    let reply = sql(
        addr,
        RESEARCHER,
        "application/json",
        None,
        "EXPLAIN SELECT count(*) FROM participants",
    )
    .await;
    assert_eq!(reply.status, 200);
    // The analyst's row-level answer is the truth the tests below check against.
    let (truth, suppressed) = rows(addr, ANALYST, microdata).await;
    assert_eq!(truth.len(), people().len());
    assert_eq!(suppressed, "", "no output control for an analyst");
}

/// The persons per value of `column` in the analyst's (row-level) answer.
async fn truth(addr: SocketAddr, column: &str) -> BTreeMap<String, i64> {
    let query = format!(
        "SELECT CAST({column} AS VARCHAR) AS v, count(*) AS n FROM participants GROUP BY 1"
    );
    let (answer, _) = rows(addr, ANALYST, &query).await;
    answer
        .iter()
        .map(|r| {
            (
                r["v"].as_str().unwrap_or("∅").to_string(),
                r["n"].as_i64().expect("a number"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn small_groups_are_left_out_and_what_is_released_is_exact() {
    let (_lake, addr) = region().await;
    let quasi = "SELECT birth_year, pc4, school_brin6, gender, groep, count(*) AS n FROM participants GROUP BY 1, 2, 3, 4, 5";
    let (released, suppressed) = rows(addr, RESEARCHER, quasi).await;
    let (all, _) = rows(addr, ANALYST, quasi).await;
    assert!(
        released
            .iter()
            .all(|r| r["n"].as_i64().expect("a number") >= 10),
        "{released:?}"
    );
    assert!(released.iter().all(|r| r["school_brin6"] != "99ZZ00"));
    for row in &released {
        assert!(all.contains(row), "released {row} is not the truth");
    }
    assert!(
        suppressed.contains(&format!("rows={}", all.len() - released.len())),
        "{suppressed}"
    );
    assert!(suppressed.starts_with("k=10;"), "{suppressed}");

    // The JSON says so too.
    let reply = sql(addr, RESEARCHER, "application/json", None, quasi).await;
    assert_eq!(
        reply.json()["suppressed"]["rows"],
        json!(all.len() - released.len())
    );

    // HAVING count(*) = 1 finds nothing to show.
    let (lonely, _) = rows(
        addr,
        RESEARCHER,
        "SELECT school_brin6, count(*) FROM participants GROUP BY 1 HAVING count(*) = 1",
    )
    .await;
    assert!(lonely.is_empty(), "{lonely:?}");
    // A global aggregate over one child keeps its row, blank.
    let (one, suppressed) = rows(
        addr,
        RESEARCHER,
        "SELECT count(*) AS n, avg(groep) AS g FROM participants WHERE school_brin6 = '99ZZ00'",
    )
    .await;
    assert_eq!(one, vec![json!({"n": null, "g": null})]);
    assert!(suppressed.contains("cells=2"), "{suppressed}");
    // ... and over nobody too: an empty group is as telling as a small one.
    let (none, _) = rows(
        addr,
        RESEARCHER,
        "SELECT count(*) AS n FROM participants WHERE pc4 = '0000'",
    )
    .await;
    assert_eq!(none, vec![json!({"n": null})]);

    // Attendance per activity: act-secret (1 child) goes, and act-2 (12) with it, or
    // the total of 57 attendances would tell act-secret's count.
    let (activities, _) = rows(addr, RESEARCHER, "SELECT activity_id, count(DISTINCT participant_pseudonym) AS children FROM attendances GROUP BY 1").await;
    assert_eq!(
        activities,
        vec![json!({"activity_id": "act-1", "children": 44})]
    );
    // A cross join with the one attendance of act-secret counts one person on its side.
    let (joined, _) = rows(addr, RESEARCHER, "SELECT p.gender, count(*) AS n FROM participants p CROSS JOIN (SELECT participant_pseudonym FROM attendances WHERE activity_id = 'act-secret') s GROUP BY 1").await;
    assert!(joined.is_empty(), "{joined:?}");
    // Per-person aggregates inside, counted over persons outside: how many activities
    // each child attended.
    let (per_child, _) = rows(addr, RESEARCHER, "SELECT visits, count(*) AS children FROM (SELECT participant_pseudonym, count(*) AS visits FROM attendances GROUP BY 1) GROUP BY 1 ORDER BY 1").await;
    assert_eq!(
        per_child,
        vec![
            json!({"visits": 1, "children": 31}),
            json!({"visits": 2, "children": 13})
        ]
    );
    // The 26 girls are one more than the 25 girls released above (same school,
    // postcode, birth year and groep), which would tell that one girl is elsewhere;
    // the 13 boys were left out above to hide the small groups' sum, and are 6
    // persons short of what was left out there.
    let (by_gender, suppressed) = rows(
        addr,
        RESEARCHER,
        "SELECT gender, count(*) AS n FROM participants GROUP BY 1",
    )
    .await;
    assert!(by_gender.is_empty(), "{by_gender:?}");
    assert!(suppressed.contains("differencing=2"), "{suppressed}");

    // Another researcher, who was answered nothing yet: the girls (26) are released,
    // with their mean birth year; the boys (13) go with the small groups (other 3,
    // unknown 2), which hold fewer than 10 together.
    let first = researcher(1);
    let (by_gender, suppressed) = rows(
        addr,
        &first,
        "SELECT gender, count(*) AS n, avg(birth_year) AS born FROM participants GROUP BY 1",
    )
    .await;
    let genders = truth(addr, "gender").await;
    let born = (25.0 * 2012.0 + 2010.0) / 26.0;
    assert_eq!(
        by_gender,
        vec![json!({"gender": "female", "n": genders["female"], "born": born})]
    );
    assert!(
        suppressed.contains("rows=3; cells=0; differencing=0"),
        "{suppressed}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn differencing_finds_no_one() {
    let (_lake, addr) = region().await;
    // All girls, then all girls but the one of postcode 7999: one person apart.
    let (girls, _) = rows(
        addr,
        RESEARCHER,
        "SELECT count(*) AS n FROM participants WHERE gender = 'female'",
    )
    .await;
    assert_eq!(girls, vec![json!({"n": 26})]);
    let (but_one, suppressed) = rows(
        addr,
        RESEARCHER,
        "SELECT count(*) AS n FROM participants WHERE gender = 'female' AND pc4 <> '7999'",
    )
    .await;
    assert_eq!(
        but_one,
        vec![json!({"n": null})],
        "one person apart from an earlier answer"
    );
    assert!(suppressed.contains("differencing=1"), "{suppressed}");
    // The same group again is no difference.
    let (again, _) = rows(
        addr,
        RESEARCHER,
        "SELECT count(*) AS n FROM participants WHERE gender = 'female'",
    )
    .await;
    assert_eq!(again, vec![json!({"n": 26})]);

    // By groups: groep 6 (her alone) is left out with groep 8 (16) to hide it;
    // asked again without her school, groep 8 alone would tell her count by
    // subtraction from the total, so it stays out (and groep 7 with it).
    let second = researcher(2);
    let (per_groep, _) = rows(
        addr,
        &second,
        "SELECT groep, count(*) AS n FROM participants GROUP BY 1",
    )
    .await;
    assert_eq!(per_groep, vec![json!({"groep": 7, "n": 27})]);
    let (without_her, suppressed) = rows(
        addr,
        &second,
        "SELECT groep, count(*) AS n FROM participants WHERE school_brin6 <> '99ZZ00' GROUP BY 1",
    )
    .await;
    assert!(without_her.is_empty(), "{without_her:?}");
    assert!(suppressed.contains("differencing=1"), "{suppressed}");

    // Sums differ the same way: a sum over all boys and over all boys but one.
    let third = researcher(3);
    let (all_boys, _) = rows(
        addr,
        &third,
        "SELECT sum(birth_year) AS s FROM participants WHERE gender = 'male'",
    )
    .await;
    assert_eq!(all_boys, vec![json!({"s": 13 * 2012})]);
    let (all_but_one, _) = rows(addr, &third, "SELECT sum(birth_year) AS s FROM participants WHERE gender = 'male' OR school_brin6 = '99ZZ00'").await;
    assert_eq!(all_but_one, vec![json!({"s": null})]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_microdata_grant_answers_row_level_and_is_in_the_trail() {
    let (lake, addr) = region().await;
    let microdata = "SELECT participant_pseudonym, birth_year, pc4 FROM participants";
    let (answer, suppressed) = rows(addr, MICRODATA, microdata).await;
    assert_eq!(answer.len(), people().len());
    assert_eq!(suppressed, "");
    // Every attack answers under the grant, and is in the trail.
    for query in ATTACKS {
        let reply = sql(addr, MICRODATA, "application/json", None, query).await;
        assert_eq!(
            reply.status,
            200,
            "{query}: {}",
            String::from_utf8_lossy(&reply.body)
        );
    }
    // An expired grant is a researcher's.
    let reply = sql(addr, EXPIRED_MICRODATA, "application/json", None, microdata).await;
    assert_eq!(reply.error_code(), "disclosure_refused");
    let trail = reqwest::Client::new()
        .get(format!("http://{addr}/v1/audit?user=mira"))
        .bearer_auth(ADMIN)
        .send()
        .await
        .expect("audit")
        .json::<Value>()
        .await
        .expect("JSON");
    let entries = trail["entries"].as_array().expect("entries");
    assert!(
        entries.iter().any(|e| e["sql"] == microdata
            && e["detail"]
                .as_str()
                .is_some_and(|d| d.starts_with("microdata grant until 2999-12-31"))),
        "{entries:?}"
    );
    drop(lake);
}

/// What an attacker with the answer and the total can solve: for each left-out group
/// (its value known to the oracle from the analyst's answer) whether its count is
/// fixed by the published counts, the total, and every group holding one person or
/// more. Brute force over every way to share the rest among the left-out groups.
fn solvable(published: &[i64], left_out: usize, total: i64) -> bool {
    let rest = total - published.iter().sum::<i64>();
    if left_out == 0 {
        return false;
    }
    // Every composition of `rest` into `left_out` parts of at least one: the first
    // part's possible values (all parts are alike to the attacker).
    let mut values = std::collections::BTreeSet::new();
    fn share(
        rest: i64,
        parts: usize,
        first: Option<i64>,
        values: &mut std::collections::BTreeSet<i64>,
    ) {
        if parts == 0 {
            if rest == 0 {
                values.insert(first.unwrap_or(0));
            }
            return;
        }
        for v in 1..=rest - (parts as i64 - 1) {
            share(rest - v, parts - 1, first.or(Some(v)), values);
        }
    }
    share(rest, left_out, None, &mut values);
    values.len() == 1
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_left_out_group_can_be_solved_from_the_answer_and_its_total() {
    let (_lake, addr) = region().await;
    let (total, _) = rows(addr, RESEARCHER, "SELECT count(*) AS n FROM participants").await;
    let total = total[0]["n"].as_i64().expect("the total of 44 is released");
    for column in [
        "gender",
        "groep",
        "school_brin6",
        "birth_year",
        "pc4",
        "CAST(groep AS VARCHAR) || gender",
    ] {
        let query = format!(
            "SELECT CAST({column} AS VARCHAR) AS v, count(*) AS n FROM participants GROUP BY 1"
        );
        let (released, _) = rows(addr, RESEARCHER, &query).await;
        let truth = truth(addr, column).await;
        let published: Vec<i64> = released
            .iter()
            .map(|r| r["n"].as_i64().expect("a number"))
            .collect();
        for row in &released {
            assert_eq!(
                truth.get(row["v"].as_str().expect("text")).copied(),
                row["n"].as_i64(),
                "{column}"
            );
            assert!(row["n"].as_i64().expect("a number") >= 10);
        }
        let left_out = truth.len() - released.len();
        assert!(
            !solvable(&published, left_out, total),
            "{column}: {left_out} left out of {truth:?} can be solved from {published:?} and {total}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cell_key_noise_is_the_same_however_the_count_is_asked() {
    let (_lake, addr) =
        region_with(|config| config.cell_key_noise = vec![techmon_service::Role::Researcher]).await;
    let mut noisy = Vec::new();
    for query in [
        "SELECT count(*) AS n FROM participants",
        "SELECT count(*) AS n FROM participants WHERE groep > 0",
        "SELECT count(*) AS n FROM participants WHERE groep BETWEEN 1 AND 8 AND gender IS NOT NULL",
        "SELECT count(DISTINCT participant_pseudonym) AS n FROM participants",
        "SELECT count(*) AS n FROM (SELECT * FROM participants WHERE birth_year > 2000)",
    ] {
        let (answer, suppressed) = rows(addr, RESEARCHER, query).await;
        assert!(suppressed.contains("noise=cell_key"), "{suppressed}");
        noisy.push(answer[0]["n"].as_i64().expect("a count"));
    }
    // The same 44 persons, the same noise each time: averaging keeps it.
    assert!(noisy.windows(2).all(|w| w[0] == w[1]), "{noisy:?}");
    assert!((noisy[0] - 44).abs() <= 2, "{noisy:?}");
    // Sums and averages are not counts: exact.
    let (sums, _) = rows(
        addr,
        RESEARCHER,
        "SELECT sum(groep) AS s, count(*) AS n FROM participants",
    )
    .await;
    let groepen = 25 * 7 + 13 * 8 + 3 * 8 + 2 * 7 + 6;
    assert_eq!(sums[0]["s"], json!(groepen));
    assert_eq!(sums[0]["n"], json!(noisy[0]));
    // Analysts are not in cell_key_noise: exact.
    let (exact, suppressed) = rows(addr, ANALYST, "SELECT count(*) AS n FROM participants").await;
    assert_eq!(
        (exact[0]["n"].as_i64(), suppressed.as_str()),
        (Some(44), "")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_leave_with_output_control_whatever_the_role() {
    let (lake, addr) = region().await;
    let export = |sql: &str| {
        reqwest::Client::new()
            .post(format!("http://{addr}/v1/exports"))
            .bearer_auth(ANALYST)
            .json(&json!({"sql": sql, "format": "csv"}))
            .send()
    };
    let refused = export("SELECT participant_pseudonym, pc4, birth_year FROM participants")
        .await
        .expect("export");
    assert_eq!(refused.status().as_u16(), 403);
    let made = export("SELECT gender, count(*) AS children FROM participants GROUP BY 1")
        .await
        .expect("export");
    assert_eq!(made.status().as_u16(), 201);
    let provenance: Value = made.json().await.expect("provenance");
    // The 26 girls only: other (3) and unknown (2) are left out, and the boys (13)
    // with them, as those two together are fewer than 10.
    assert_eq!(provenance["rows"], json!(1));
    assert_eq!(provenance["output_control"]["rows"], json!(3));
    drop(lake);
}
