//! Key rotation on the demo region: the lake rebuilt from the event log under a new
//! key has every pseudonym changed, none of the old key left, and every KPI as it was.

use std::collections::HashSet;
use std::path::Path;
use std::time::Duration;

use deltalake::arrow::array::{Array, AsArray};
use serde_json::Value;
use techmon::demo::DemoOptions;
use techmon_lake::{LakeLocation, StorageOptions};
use techmon_query::{Engine, TableVersions};

/// The demo region in `dir`, run until its answers are printed.
async fn demo_region(dir: &Path) -> techmon::demo::Demo {
    let options = DemoOptions {
        dir: dir.to_path_buf(),
        events: 0,
        seed: 11,
        reset: false,
        listen: "127.0.0.1:0".parse().expect("address"),
        exit: true,
    };
    let config = techmon::config::load(None).expect("defaults");
    let (answered, answers) = tokio::sync::oneshot::channel();
    techmon::demo::run(config, &options, answered, std::future::pending())
        .await
        .expect("the demo runs");
    answers.await.expect("the demo answered")
}

fn engine(lake: &Path) -> Engine {
    let location =
        LakeLocation::new(&lake.to_string_lossy(), StorageOptions::default()).expect("folder");
    let limits = techmon_query::Limits {
        memory_limit_mib: 512,
        timeout: Duration::from_secs(120),
        max_rows: 1_000_000,
        max_value_bytes: 16 << 20,
        total_memory_mib: 1024,
    };
    Engine::new(location, limits).expect("engine")
}

/// A query's rows as JSON values, in the query's order.
async fn rows(engine: &Engine, sql: &str) -> Vec<Vec<Value>> {
    let answer = engine
        .query(sql, &TableVersions::default())
        .await
        .expect(sql);
    let mut out = Vec::new();
    for batch in &answer.batches {
        let columns: Vec<_> = batch
            .columns()
            .iter()
            .map(|c| {
                deltalake::arrow::compute::cast(c, &deltalake::arrow::datatypes::DataType::Utf8)
                    .expect("as text")
            })
            .collect();
        for row in 0..batch.num_rows() {
            out.push(
                columns
                    .iter()
                    .map(|c| {
                        let c = c.as_string::<i32>();
                        if c.is_valid(row) {
                            Value::from(c.value(row))
                        } else {
                            Value::Null
                        }
                    })
                    .collect(),
            );
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rotated_lake_has_new_pseudonyms_and_the_same_kpis() {
    let dir = tempfile::tempdir().expect("tempdir");
    let demo_dir = dir.path().join("demo");
    let demo = demo_region(&demo_dir).await;
    let mut config = techmon::config::load(None).expect("defaults");
    config.log.backend = techmon_eventlog::Backend::Embedded;
    config.log.embedded.path = demo_dir.join("events.redb");
    config.lake.url = demo_dir.join("lake").to_string_lossy().into_owned();
    config.transform.raw = demo_dir.join("raw");
    config.transform.person_keys = demo_dir.join("raw/person-keys");

    let new_lake = dir.path().join("lake-k2");
    let new_raw = dir.path().join("raw-k2");
    let same = techmon_transform::rotation_config(
        &config.transform,
        new_raw.clone(),
        &config.transform.pseudonym_key_id,
    );
    assert!(same.is_err(), "a new key needs a new id");
    let rotation = techmon_transform::rotation_config(&config.transform, new_raw.clone(), "k2")
        .expect("rotation");
    techmon::rebuild::rebuild(&config, &rotation, &new_lake.to_string_lossy(), "rotated")
        .await
        .expect("rebuilt under k2");
    assert_ne!(
        std::fs::read(new_raw.join("pseudonym.key")).expect("new key"),
        std::fs::read(demo_dir.join("raw/pseudonym.key")).expect("old key")
    );
    // The reference data, as the demo imported it.
    let location =
        LakeLocation::new(&new_lake.to_string_lossy(), StorageOptions::default()).expect("folder");
    for file in &demo.generated.duo_files {
        let name = file
            .file_name()
            .expect("name")
            .to_string_lossy()
            .into_owned();
        techmon_reference::import(&location, &name, &std::fs::read(file).expect("duo"), None)
            .await
            .expect("import");
    }

    let (old, new) = (engine(&demo_dir.join("lake")), engine(&new_lake));
    for (table, column) in [
        ("participants", "participant_pseudonym"),
        ("attendances", "participant_pseudonym"),
        ("survey_answers", "participant_pseudonym"),
        ("ambassadors", "ambassador_pseudonym"),
    ] {
        let sql =
            format!("SELECT {column}, pseudonym_key_id FROM {table} WHERE {column} IS NOT NULL");
        let before = rows(&old, &sql).await;
        let after = rows(&new, &sql).await;
        assert_eq!(before.len(), after.len(), "{table}: as many rows");
        assert!(!after.is_empty(), "{table} has rows to compare");
        let old_pseudonyms: HashSet<&Value> = before.iter().map(|r| &r[0]).collect();
        assert!(
            after.iter().all(|r| !old_pseudonyms.contains(&r[0])),
            "{table}: no old-key pseudonym left"
        );
        assert!(
            after.iter().all(|r| r[1] == "k2"),
            "{table}: every row under k2"
        );
        assert!(
            before
                .iter()
                .all(|r| r[1] == config.transform.pseudonym_key_id.as_str())
        );
    }
    let report = "SELECT kpi, band, hub_id, region_id, year, actual FROM kpi_report ORDER BY kpi, band, hub_id, region_id, year";
    let (before, after) = (rows(&old, report).await, rows(&new, report).await);
    assert!(before.len() > 100, "{}", before.len());
    assert_eq!(before, after, "every KPI as it was");
}
