//! The crates draw the data flow: the read side (the query service) compiles nothing
//! of the write path, and only the binary puts the services together. Read from
//! `cargo tree`, with the tests' dependencies too.

use std::collections::BTreeSet;

/// The package names `cargo tree` prints for `args` (normal, build and dev edges).
fn tree(args: &[&str]) -> BTreeSet<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = std::process::Command::new(cargo)
        .args(["tree", "--offline", "--locked", "--prefix", "none"])
        .args(["--edges", "normal,build,dev"])
        .args(args)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree runs");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout)
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// The workspace crates `package` depends on itself.
fn own_dependencies(package: &str) -> BTreeSet<String> {
    let mut own = tree(&["--package", package, "--depth", "1"]);
    own.retain(|name| name.starts_with("techmon") && name != package);
    own
}

#[test]
fn the_query_service_compiles_nothing_of_the_write_path() {
    assert_eq!(
        own_dependencies("techmon-query"),
        BTreeSet::from(
            [
                "techmon-effect",
                "techmon-lake",
                "techmon-schemas",
                "techmon-service",
            ]
            .map(String::from)
        )
    );
    // The pseudonym keys live in techmon-eventlog and techmon-transform; the `hmac`
    // crate itself comes in with PostgreSQL's protocol (SCRAM), so it is no sign.
    let compiled = tree(&["--package", "techmon-query"]);
    for write_path in ["rdkafka", "redb", "techmon-eventlog", "techmon-transform"] {
        assert!(
            !compiled.contains(write_path),
            "techmon-query compiles {write_path}"
        );
    }
}

#[test]
fn only_the_binary_puts_the_services_together() {
    for service in [
        "techmon-ingest",
        "techmon-transform",
        "techmon-reference",
        "techmon-query",
    ] {
        let dependents = tree(&["--invert", service, "--depth", "1"]);
        assert_eq!(
            dependents,
            BTreeSet::from([service.to_string(), "techmon".to_string()]),
            "who depends on {service}"
        );
    }
    // The reference import writes through the lake, and needs nothing of the event
    // path.
    assert_eq!(
        own_dependencies("techmon-reference"),
        BTreeSet::from(["techmon-lake", "techmon-schemas", "techmon-service"].map(String::from))
    );
    // The estimator is arithmetic: no techmon crate, no I/O, no engine.
    let estimator = tree(&["--package", "techmon-effect"]);
    assert_eq!(
        estimator
            .iter()
            .filter(|n| n.starts_with("techmon"))
            .count(),
        1,
        "{estimator:?}"
    );
    for engine in ["tokio", "deltalake", "datafusion", "arrow"] {
        assert!(
            !estimator.contains(engine),
            "techmon-effect compiles {engine}"
        );
    }
    // The shared houses depend on no service, nor on each other but the schemas.
    for house in ["techmon-schemas", "techmon-lake", "techmon-service"] {
        let own = own_dependencies(house);
        assert!(
            own.iter().all(|name| name == "techmon-schemas"),
            "{house} depends on {own:?}"
        );
    }
}

/// Every route is added with `utoipa_axum::routes!`, which adds its description with
/// it: a route added with axum's own `.route(` would be served undescribed.
#[test]
fn every_route_is_added_with_its_description() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    let mut undescribed = Vec::new();
    let manifest = std::fs::read_to_string(root.join("Cargo.toml")).expect("Cargo.toml");
    let members = manifest
        .lines()
        .find_map(|l| l.strip_prefix("members = "))
        .expect("the workspace's members");
    let mut folders = vec![root.join("src")];
    for member in members.split('"').skip(1).step_by(2) {
        folders.push(root.join(member).join("src"));
    }
    assert!(folders.len() > 5, "{members}");
    while let Some(folder) = folders.pop() {
        for entry in std::fs::read_dir(&folder).expect("a source folder") {
            let path = entry.expect("an entry").path();
            if path.is_dir() {
                folders.push(path);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let text = std::fs::read_to_string(&path).expect("a source file");
                for (n, line) in text.lines().enumerate() {
                    if line.contains(".route(") || line.contains(".route_service(") {
                        undescribed.push(format!("{}:{}", path.display(), n + 1));
                    }
                }
            }
        }
    }
    assert!(
        undescribed.is_empty(),
        "routes without a description: {undescribed:#?}"
    );
}
