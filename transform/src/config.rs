//! The transform's configuration (`[transform]`), where its pseudonym key comes
//! from, and the configurations of a replay and a key rotation.

use std::path::PathBuf;

use serde::Deserialize;

use crate::TransformError;
use crate::pseudonym::PseudonymKey;

/// Environment variable that may hold the pseudonym key (instead of a key file).
pub const KEY_ENV: &str = "TECHMON_PSEUDONYM_KEY";

/// Transform configuration (`[transform]` in techmon's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Where `techmon transform` on its own answers `/healthz`, `/readyz` and
    /// `/metrics`.
    pub listen: std::net::SocketAddr,
    /// The raw zone (personal data allowed): transform state, dead letters, and the
    /// generated pseudonym key when none is configured.
    pub raw: PathBuf,
    /// Stored with every pseudonym, so a key rotation can tell them apart.
    pub pseudonym_key_id: String,
    /// File holding the pseudonym key; default `<raw>/pseudonym.key`, created with a
    /// random key when missing. `TECHMON_PSEUDONYM_KEY` overrides both.
    #[serde(default)]
    pub pseudonym_key_file: Option<PathBuf>,
    /// Records read per partition per round (bounds a commit, and memory).
    pub max_records_per_partition: usize,
    /// Records read per partition in one pass of a round: a pass is parsed on every
    /// core while the one before it is transformed, so enough to keep the cores busy,
    /// few enough that a round stops close to its bounds.
    pub records_per_read: usize,
    /// Bytes of events read per round, over all partitions (bounds memory whatever
    /// the size of the events).
    pub max_round_bytes: usize,
    /// A round stops reading after this long and commits (bounds how long an event
    /// waits for the lake when there is a backlog).
    pub max_round_ms: u64,
    /// Wait between rounds when the log has nothing new.
    pub poll_interval_ms: u64,
    /// How often the history of the tables holding pseudonyms is vacuumed, so that
    /// old versions do not keep the rows of withdrawn participants.
    pub vacuum_interval_minutes: u64,
    /// Data files no longer needed are deleted once older than this.
    pub vacuum_retention_hours: u64,
    /// How often the small data files that each round adds are rewritten into larger
    /// ones.
    pub compact_interval_minutes: u64,
    /// The size a compaction aims at per data file.
    pub compact_target_file_mib: u64,
    /// How often rows written before their participant's registration are given the
    /// registration's pseudonym (each time rewrites the files that hold them).
    pub relink_interval_minutes: u64,
    /// The keys the personal fields of the event log are sealed under, one per
    /// person (see [`techmon_eventlog::person_keys`]); a withdrawal destroys the
    /// person's. Shared with ingest, and kept by a replay.
    pub person_keys: PathBuf,
}

pub(crate) fn load_key(config: &Config) -> Result<PseudonymKey, TransformError> {
    if let Ok(secret) = std::env::var(KEY_ENV) {
        return PseudonymKey::new(&config.pseudonym_key_id, secret.into_bytes());
    }
    match &config.pseudonym_key_file {
        Some(path) => PseudonymKey::from_file(&config.pseudonym_key_id, path, false),
        None => PseudonymKey::from_file(
            &config.pseudonym_key_id,
            &config.raw.join("pseudonym.key"),
            true,
        ),
    }
}

/// The configuration of a replay (into a new lake) with a new raw zone (`raw`) but
/// the same pseudonym key, so the rebuilt lake equals the original.
pub fn replay_config(config: &Config, raw: PathBuf) -> Config {
    let key_file = config
        .pseudonym_key_file
        .clone()
        .unwrap_or_else(|| config.raw.join("pseudonym.key"));
    Config {
        raw,
        pseudonym_key_file: Some(key_file),
        ..config.clone()
    }
}

/// The configuration of a key rotation: a replay (into a new lake) with a new raw
/// zone (`raw`) under a new key, `key_id`, made now in `<raw>/pseudonym.key`. Every
/// pseudonym of the new lake is made with it, none with the old one.
pub fn rotation_config(
    config: &Config,
    raw: PathBuf,
    key_id: &str,
) -> Result<Config, TransformError> {
    if key_id == config.pseudonym_key_id {
        return Err(TransformError::SameKeyId {
            key_id: key_id.to_string(),
        });
    }
    if std::env::var_os(KEY_ENV).is_some() {
        return Err(TransformError::KeyFromEnvironment);
    }
    let key_file = raw.join("pseudonym.key");
    std::fs::create_dir_all(&raw).map_err(|source| TransformError::PseudonymKeyFile {
        path: raw.clone(),
        source,
    })?;
    PseudonymKey::from_file(key_id, &key_file, true)?;
    Ok(Config {
        raw,
        pseudonym_key_id: key_id.to_string(),
        pseudonym_key_file: Some(key_file),
        ..config.clone()
    })
}
