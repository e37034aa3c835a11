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
