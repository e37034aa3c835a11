//! Layered configuration: defaults, then `--config FILE`, then TECHMON__ variables.

use std::process::Command;

fn techmon_config(args: &[&str], env: &[(&str, &str)]) -> (bool, String) {
    let mut command = Command::new(env!("CARGO_BIN_EXE_techmon"));
    command
        .args(args)
        .arg("config")
        .env_remove("TECHMON_CONFIG");
    for (key, value) in env {
        command.env(key, value);
    }
    let output = command.output().expect("run techmon config");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.success(), text)
}

#[test]
fn defaults_then_file_then_environment() {
    let (ok, text) = techmon_config(&[], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("backend: Embedded"), "{text}");
    assert!(text.contains("hub_id: \"techniekbrouwerij\""), "{text}");

    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("techmon.toml");
    std::fs::write(
        &file,
        "[log]\nbackend = \"kafka\"\npartitions = 6\n[[ingest.hubs]]\nhub_id = \"new-hub\"\ntoken_sha256 = \"00\"\n",
    )
    .expect("write");
    let path = file.to_str().expect("utf-8 path");
    let (ok, text) = techmon_config(&["--config", path], &[]);
    assert!(ok, "{text}");
    assert!(
        text.contains("backend: Kafka") && text.contains("partitions: 6"),
        "{text}"
    );
    assert!(text.contains("hub_id: \"new-hub\""), "{text}");
    assert!(
        !text.contains("techniekbrouwerij"),
        "a file's hub list replaces the default one: {text}"
    );

    let (ok, text) = techmon_config(
        &["--config", path],
        &[
            (
                "TECHMON__LOG__KAFKA__BROKERS",
                "broker-1:9092,broker-2:9092",
            ),
            ("TECHMON__LOG__PARTITIONS", "12"),
        ],
    );
    assert!(ok, "{text}");
    assert!(
        text.contains("brokers: \"broker-1:9092,broker-2:9092\"")
            && text.contains("partitions: 12"),
        "{text}"
    );
}

#[test]
fn unknown_keys_and_missing_files_are_errors() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("typo.toml");
    std::fs::write(&file, "[log]\nbakend = \"kafka\"\n").expect("write");
    let (ok, text) = techmon_config(&["--config", file.to_str().expect("path")], &[]);
    assert!(!ok);
    assert!(
        text.contains("bakend"),
        "the error names the unknown key: {text}"
    );

    let (ok, text) = techmon_config(&["--config", "/nonexistent/techmon.toml"], &[]);
    assert!(!ok, "{text}");

    let (ok, text) = techmon_config(&[], &[("TECHMON__LOG__BACKEND", "carrier-pigeon")]);
    assert!(!ok);
    assert!(
        text.contains("carrier-pigeon") || text.contains("backend"),
        "{text}"
    );
}

/// The keys of a TOML table, dotted; an array of tables (`[[ingest.hubs]]`) is one key.
fn keys(table: &toml::Table, prefix: &str, into: &mut std::collections::BTreeSet<String>) {
    for (name, value) in table {
        let key = format!("{prefix}{name}");
        match value {
            toml::Value::Table(inner) => keys(inner, &format!("{key}."), into),
            _ => {
                into.insert(key);
            }
        }
    }
}

/// Every key of the built-in configuration is in the README's table, and every key
/// the table names is a built-in one, one the defaults show commented out, or one
/// the table gives no default (`—`): the documentation cannot lose or invent a key.
#[test]
fn every_configuration_key_is_documented_and_every_documented_key_is_one() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let defaults = std::fs::read_to_string(root.join("config/default.toml")).expect("defaults");
    let mut built_in = std::collections::BTreeSet::new();
    keys(
        &defaults.parse::<toml::Table>().expect("TOML"),
        "",
        &mut built_in,
    );
    // Keys the defaults show commented out, in their section.
    let mut commented = std::collections::BTreeSet::new();
    let mut section = String::new();
    for line in defaults.lines() {
        let line = line.trim();
        if let Some(name) = line.strip_prefix('[') {
            section = name.trim_matches(|c| c == '[' || c == ']').to_string() + ".";
        } else if let Some((key, _)) = line.strip_prefix("# ").and_then(|l| l.split_once(" = "))
            && key
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
        {
            commented.insert(format!("{section}{key}"));
        }
    }
    let readme = std::fs::read_to_string(root.join("README.md")).expect("README");
    let documented: Vec<(String, String)> = readme
        .lines()
        .filter_map(|line| {
            let mut cells = line.strip_prefix("| `")?.splitn(3, '|');
            let key = cells.next()?.trim().strip_suffix('`')?;
            let default = cells.next()?.trim();
            key.bytes()
                .all(|b| b.is_ascii_lowercase() || b == b'_' || b == b'.')
                .then(|| (key.to_string(), default.to_string()))
        })
        .collect();
    let names: std::collections::BTreeSet<&str> =
        documented.iter().map(|(key, _)| key.as_str()).collect();
    let undocumented: Vec<&String> = built_in
        .iter()
        .filter(|key| !names.contains(key.as_str()))
        .collect();
    assert!(
        undocumented.is_empty(),
        "keys of config/default.toml without a row in the README's table: {undocumented:?}"
    );
    let unknown: Vec<&String> = documented
        .iter()
        .filter(|(key, default)| {
            !built_in.contains(key) && !commented.contains(key) && default != "—"
        })
        .map(|(key, _)| key)
        .collect();
    assert!(
        unknown.is_empty(),
        "keys in the README's table that config/default.toml neither has nor shows commented out: {unknown:?}"
    );
    assert!(documented.len() > 40, "{documented:?}");
}

/// The example configuration beside the compose file has only keys techmon knows
/// (unknown keys are errors at start).
#[test]
fn the_example_configuration_loads() {
    let example =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("deploy/techmon-kafka.toml");
    let (ok, text) = techmon_config(&["--config", example.to_str().expect("utf-8 path")], &[]);
    assert!(ok, "{text}");
    assert!(text.contains("backend: Kafka"), "{text}");
}
