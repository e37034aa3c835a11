//! The transform's own state, kept in the raw zone (it may hold personal data, so it
//! never goes into the research lake): which pseudonym a hub's participant reference
//! belongs to, whose consent was withdrawn, which event ids were seen where, and the
//! dead letters. Everything here can be rebuilt by replaying the event log.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use uuid::Uuid;

use crate::TransformError;

/// (hub, participant reference) → pseudonym.
const LINKS: TableDefinition<(&str, &str), &str> = TableDefinition::new("participant_links");
/// pseudonym → erased from the lake yet.
const WITHDRAWN: TableDefinition<&str, bool> = TableDefinition::new("consent_withdrawn");
/// event id → the log position where it was first seen.
const SEEN: TableDefinition<u128, (u32, u64)> = TableDefinition::new("seen_events");
/// log position → dead letter (JSON).
const DEAD_LETTERS: TableDefinition<(u32, u64), &str> = TableDefinition::new("dead_letters");

/// Why an event could not be transformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeadLetterReason {
    /// Not JSON at all.
    Unreadable,
    /// A schema version this transform does not know.
    UnknownSchemaVersion,
    /// An event kind this transform does not know.
    UnknownEventKind,
    /// Fails the schema of its kind and version.
    Invalid,
}

impl DeadLetterReason {
    /// The reason as in JSON and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            DeadLetterReason::Unreadable => "unreadable",
            DeadLetterReason::UnknownSchemaVersion => "unknown_schema_version",
            DeadLetterReason::UnknownEventKind => "unknown_event_kind",
            DeadLetterReason::Invalid => "invalid",
        }
    }
}

#[derive(Debug, Clone, Serialize, serde::Deserialize)]
pub struct DeadLetter {
    pub partition: u32,
    pub offset: u64,
    pub event_id: Option<Uuid>,
    pub reason: DeadLetterReason,
    /// Field paths and reasons (never values).
    pub detail: String,
    pub dead_at: chrono::DateTime<chrono::Utc>,
    /// The event as it stands in the log (may hold personal data: raw zone only).
    pub payload: String,
}

pub struct State {
    db: Database,
    path: PathBuf,
    links: HashMap<(String, String), String>,
    withdrawn: HashMap<String, bool>,
    seen: HashMap<u128, (u32, u64)>,
}

/// What one round adds to the state, written before the lake commits of the round.
#[derive(Default)]
pub struct StateChanges {
    pub links: Vec<((String, String), String)>,
    pub withdrawn: Vec<String>,
    /// event id → where this round first saw it.
    pub seen: HashMap<Uuid, (u32, u64)>,
    pub dead_letters: Vec<DeadLetter>,
}

impl State {
    pub fn open(raw: &Path) -> Result<Self, TransformError> {
        let path = raw.join("transform-state.redb");
        let err = |e: redb::Error| TransformError::State {
            path: path.clone(),
            source: Box::new(e),
        };
        std::fs::create_dir_all(raw).map_err(|e| err(redb::StorageError::Io(e).into()))?;
        let db = Database::create(&path).map_err(|e| err(e.into()))?;
        let load = || -> Result<_, redb::Error> {
            let txn = db.begin_write()?;
            txn.open_table(LINKS)?;
            txn.open_table(WITHDRAWN)?;
            txn.open_table(SEEN)?;
            txn.open_table(DEAD_LETTERS)?;
            txn.commit()?;
            let txn = db.begin_read()?;
            let mut links = HashMap::new();
            for entry in txn.open_table(LINKS)?.iter()? {
                let (k, v) = entry?;
                let (hub, reference) = k.value();
                links.insert(
                    (hub.to_string(), reference.to_string()),
                    v.value().to_string(),
                );
            }
            let mut withdrawn = HashMap::new();
            for entry in txn.open_table(WITHDRAWN)?.iter()? {
                let (k, v) = entry?;
                withdrawn.insert(k.value().to_string(), v.value());
            }
            let mut seen = HashMap::new();
            for entry in txn.open_table(SEEN)?.iter()? {
                let (k, v) = entry?;
                seen.insert(k.value(), v.value());
            }
            Ok((links, withdrawn, seen))
        };
        let (links, withdrawn, seen) = load().map_err(err)?;
        Ok(Self {
            db,
            path,
            links,
            withdrawn,
            seen,
        })
    }

    fn error(&self, e: impl Into<redb::Error>) -> TransformError {
        TransformError::State {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    pub fn linked(&self, hub: &str, reference: &str) -> Option<&String> {
        self.links.get(&(hub.to_string(), reference.to_string()))
    }

    pub fn is_withdrawn(&self, pseudonym: &str) -> bool {
        self.withdrawn.contains_key(pseudonym)
    }

    /// Withdrawn pseudonyms whose rows are not yet erased from the lake.
    pub fn pending_erasures(&self) -> Vec<String> {
        self.withdrawn
            .iter()
            .filter(|(_, erased)| !**erased)
            .map(|(p, _)| p.clone())
            .collect()
    }

    /// Whether this event id was first seen at another log position (a duplicate).
    pub fn seen_elsewhere(&self, id: Uuid, partition: u32, offset: u64) -> bool {
        self.seen
            .get(&id.as_u128())
            .is_some_and(|at| *at != (partition, offset))
    }

    /// Durably applies a round's changes.
    pub fn apply(&mut self, changes: StateChanges) -> Result<(), TransformError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        let write = || -> Result<(), redb::Error> {
            let mut links = txn.open_table(LINKS)?;
            for ((hub, reference), pseudonym) in &changes.links {
                links.insert((hub.as_str(), reference.as_str()), pseudonym.as_str())?;
            }
            let mut withdrawn = txn.open_table(WITHDRAWN)?;
            for pseudonym in &changes.withdrawn {
                if withdrawn.get(pseudonym.as_str())?.is_none() {
                    withdrawn.insert(pseudonym.as_str(), false)?;
                }
            }
            let mut seen = txn.open_table(SEEN)?;
            for (id, (partition, offset)) in &changes.seen {
                if seen.get(id.as_u128())?.is_none() {
                    seen.insert(id.as_u128(), (*partition, *offset))?;
                }
            }
            let mut dead = txn.open_table(DEAD_LETTERS)?;
            for letter in &changes.dead_letters {
                let json = serde_json::to_string(letter).unwrap_or_default();
                dead.insert((letter.partition, letter.offset), json.as_str())?;
            }
            Ok(())
        };
        write().map_err(|e| self.error(e))?;
        txn.commit().map_err(|e| self.error(e))?;
        for (link, pseudonym) in changes.links {
            self.links.insert(link, pseudonym);
        }
        for pseudonym in changes.withdrawn {
            self.withdrawn.entry(pseudonym).or_insert(false);
        }
        for (id, (partition, offset)) in changes.seen {
            self.seen.entry(id.as_u128()).or_insert((partition, offset));
        }
        Ok(())
    }

    /// Records that these pseudonyms' rows are gone from the lake.
    pub fn mark_erased(&mut self, pseudonyms: &[String]) -> Result<(), TransformError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut withdrawn = txn.open_table(WITHDRAWN).map_err(|e| self.error(e))?;
            for p in pseudonyms {
                withdrawn
                    .insert(p.as_str(), true)
                    .map_err(|e| self.error(e))?;
            }
        }
        txn.commit().map_err(|e| self.error(e))?;
        for p in pseudonyms {
            self.withdrawn.insert(p.clone(), true);
        }
        Ok(())
    }

    /// Removes the dead letters at these log positions.
    pub fn remove_dead_letters(&mut self, positions: &[(u32, u64)]) -> Result<(), TransformError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut dead = txn.open_table(DEAD_LETTERS).map_err(|e| self.error(e))?;
            for position in positions {
                dead.remove(*position).map_err(|e| self.error(e))?;
            }
        }
        txn.commit().map_err(|e| self.error(e))
    }

    pub fn dead_letters(&self) -> Result<Vec<DeadLetter>, TransformError> {
        let read = || -> Result<Vec<DeadLetter>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(DEAD_LETTERS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                let (_, v) = entry?;
                if let Ok(letter) = serde_json::from_str(v.value()) {
                    out.push(letter);
                }
            }
            Ok(out)
        };
        read().map_err(|e| self.error(e))
    }
}
