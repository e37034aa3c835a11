//! techmon's layered configuration: the committed defaults (`config/default.toml`),
//! then the file given with `--config`, then `TECHMON__SECTION__KEY` variables.

use std::net::SocketAddr;
use std::path::Path;

use config::{Source as _, Value, ValueKind};
use serde::Deserialize;

const DEFAULTS: &str = include_str!("../config/default.toml");

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TechmonConfig {
    pub log: techmon_eventlog::Config,
    pub lake: techmon_lake::Config,
    pub ingest: techmon_ingest::Config,
    pub transform: techmon_transform::Config,
    pub query: techmon_query::Config,
    /// Lets the built-in development tokens work on an address other than loopback
    /// (never do this where the address can be reached by others).
    #[serde(default)]
    pub allow_dev_tokens: bool,
}

/// Loads the configuration. Unknown keys anywhere are errors, so a typo cannot
/// silently leave a default in place.
pub fn load(file: Option<&Path>) -> Result<TechmonConfig, config::ConfigError> {
    let mut builder = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml));
    if let Some(file) = file {
        builder = builder.add_source(config::File::from(file).required(true));
    }
    let mut tree = builder
        .add_source(
            config::Environment::with_prefix("TECHMON")
                .prefix_separator("__")
                .separator("__")
                .try_parsing(true),
        )
        .build()?
        .collect()?;
    for (old, new) in move_deprecated(&mut tree) {
        tracing::warn!(
            "configuration key {old} is deprecated and will be removed in the next release: use {new}"
        );
    }
    Value::new(None, ValueKind::Table(tree)).try_deserialize()
}

/// Keys that moved, as (old, new): the lake was `transform.lake` before the query
/// service and the reference import read it too.
const MOVED: [(&str, &str, &str, &str); 2] = [
    ("transform", "lake", "lake", "url"),
    ("transform", "lake_storage", "lake", "storage"),
];

/// Moves the values of keys that moved to their new place (where given, the old key
/// wins over the new one's default); returns the old and new names of those moved.
fn move_deprecated(tree: &mut config::Map<String, Value>) -> Vec<(String, String)> {
    let mut moved = Vec::new();
    for (old_section, old_key, new_section, new_key) in MOVED {
        let value = match tree.get_mut(old_section).map(|v| &mut v.kind) {
            Some(ValueKind::Table(section)) => section.remove(old_key),
            _ => None,
        };
        let Some(value) = value else { continue };
        let section = tree
            .entry(new_section.to_string())
            .or_insert_with(|| Value::new(None, ValueKind::Table(config::Map::new())));
        if let ValueKind::Table(section) = &mut section.kind {
            section.insert(new_key.to_string(), value);
        }
        moved.push((
            format!("{old_section}.{old_key}"),
            format!("{new_section}.{new_key}"),
        ));
    }
    moved
}

/// Which credentials a command serves, for [`TechmonConfig::check_development_tokens`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Served {
    /// `techmon ingest`: hubs push.
    Ingest,
    /// `techmon query`, `serve` and `demo`: users ask, and hubs ask of their own rows
    /// (and push, but for `query`).
    HubsAndUsers,
}

/// The built-in development tokens are published with the source, so anyone who
/// reaches a non-loopback address could use them.
#[derive(Debug, thiserror::Error)]
#[error(
    "{listen} is not a loopback address, and the built-in development tokens are configured \
     ({names}); anyone who reads techmon's source knows them. Configure your own in {keys} \
     (`techmon token new --hub ID` or `--user NAME --role ROLE` prints the lines), or set \
     allow_dev_tokens = true (TECHMON__ALLOW_DEV_TOKENS=true) to accept them anyway"
)]
pub struct DevelopmentTokensOffLoopback {
    pub listen: SocketAddr,
    /// The hubs and users still holding a built-in token.
    pub names: String,
    /// The configuration keys that replace them.
    pub keys: String,
}

impl TechmonConfig {
    /// Refuses to serve the built-in development tokens on an address other than
    /// loopback, unless `allow_dev_tokens` is set (then it warns, at every start).
    pub fn check_development_tokens(
        &self,
        served: Served,
        listen: SocketAddr,
    ) -> Result<(), DevelopmentTokensOffLoopback> {
        if listen.ip().is_loopback() {
            return Ok(());
        }
        let built_in = development_token_hashes();
        let is_built_in = |hash: &str| built_in.iter().any(|h| h.eq_ignore_ascii_case(hash));
        let mut names = Vec::new();
        let mut keys = Vec::new();
        let hubs: Vec<&str> = (self.ingest.hubs.iter())
            .filter(|h| is_built_in(&h.token_sha256))
            .map(|h| h.hub_id.as_str())
            .collect();
        if !hubs.is_empty() {
            names.extend(hubs);
            keys.push("ingest.hubs");
        }
        if served == Served::HubsAndUsers {
            let users: Vec<&str> = (self.query.users.iter())
                .filter(|u| is_built_in(&u.token_sha256))
                .map(|u| u.name.as_str())
                .collect();
            if !users.is_empty() {
                names.extend(users);
                keys.push("query.users");
            }
        }
        if names.is_empty() {
            return Ok(());
        }
        let refusal = DevelopmentTokensOffLoopback {
            listen,
            names: names.join(", "),
            keys: keys.join(" and "),
        };
        if self.allow_dev_tokens {
            tracing::warn!(
                %listen,
                tokens = %refusal.names,
                "allow_dev_tokens is set: the built-in development tokens work on an address other than loopback"
            );
            return Ok(());
        }
        Err(refusal)
    }
}

/// The token hashes of the committed defaults.
fn development_token_hashes() -> Vec<String> {
    let defaults: TechmonConfig = config::Config::builder()
        .add_source(config::File::from_str(DEFAULTS, config::FileFormat::Toml))
        .build()
        .and_then(config::Config::try_deserialize)
        .expect("the committed defaults deserialize");
    let hubs = defaults.ingest.hubs.into_iter().map(|h| h.token_sha256);
    hubs.chain(defaults.query.users.into_iter().map(|u| u.token_sha256))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn defaults() -> TechmonConfig {
        load(None).expect("the defaults load")
    }

    fn from_file(text: &str) -> TechmonConfig {
        let file = tempfile::Builder::new()
            .suffix(".toml")
            .tempfile()
            .expect("a file");
        std::fs::write(file.path(), text).expect("written");
        load(Some(file.path())).expect("the file loads")
    }

    #[test]
    fn the_lake_keys_of_the_release_before_still_work() {
        assert_eq!(defaults().lake.url, "techmon-data/lake");
        let old = from_file(
            "[transform]\nlake = \"s3://old/lake\"\n[transform.lake_storage]\naws_region = \"eu-west-1\"\n",
        );
        assert_eq!(old.lake.url, "s3://old/lake");
        assert_eq!(
            old.lake.storage.0.get("aws_region").map(String::as_str),
            Some("eu-west-1")
        );
        let new = from_file("[lake]\nurl = \"s3://new/lake\"\n");
        assert_eq!(new.lake.url, "s3://new/lake");
        assert!(new.lake.storage.0.is_empty());
        let mut tree = config::Map::new();
        assert!(move_deprecated(&mut tree).is_empty(), "nothing to move");
    }

    #[test]
    fn development_tokens_only_on_loopback() {
        let config = defaults();
        for listen in ["127.0.0.1:8080", "127.8.0.1:80", "[::1]:8080"] {
            let listen: SocketAddr = listen.parse().expect("address");
            for served in [Served::Ingest, Served::HubsAndUsers] {
                assert!(config.check_development_tokens(served, listen).is_ok());
            }
        }
        let open: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let refusal = config
            .check_development_tokens(Served::HubsAndUsers, open)
            .expect_err("built-in tokens on 0.0.0.0");
        assert_eq!(refusal.keys, "ingest.hubs and query.users");
        assert!(
            refusal.names.contains("techniekhuis-lochem") && refusal.names.contains("dev-admin")
        );
        let lan: SocketAddr = "[2001:db8::1]:8080".parse().expect("address");
        let refusal = config
            .check_development_tokens(Served::HubsAndUsers, lan)
            .expect_err("built-in tokens on a routable address");
        assert!(
            refusal
                .names
                .ends_with("dev-researcher, dev-analyst, dev-admin"),
            "{}",
            refusal.names
        );
    }

    #[test]
    fn own_tokens_or_an_explicit_allowance_pass() {
        let open: SocketAddr = "0.0.0.0:8080".parse().expect("address");
        let mut config = defaults();
        // One hub still on its built-in token is enough to refuse.
        for hub in config.ingest.hubs.iter_mut().skip(1) {
            hub.token_sha256 = "00".repeat(32);
        }
        let refusal = config
            .check_development_tokens(Served::Ingest, open)
            .expect_err("one built-in hub token");
        assert_eq!(refusal.names, "newtechpark");
        // Upper-case hex is the same hash.
        config.ingest.hubs[0].token_sha256 = config.ingest.hubs[0].token_sha256.to_uppercase();
        assert!(
            config
                .check_development_tokens(Served::Ingest, open)
                .is_err()
        );
        config.ingest.hubs[0].token_sha256 = "11".repeat(32);
        assert!(
            config
                .check_development_tokens(Served::Ingest, open)
                .is_ok()
        );
        // The query users are still the built-in ones.
        assert!(
            config
                .check_development_tokens(Served::HubsAndUsers, open)
                .is_err()
        );
        config.allow_dev_tokens = true;
        assert!(
            config
                .check_development_tokens(Served::HubsAndUsers, open)
                .is_ok()
        );
    }
}
