//! The transform's own state, kept in the raw zone (it may hold personal data, so it
//! never goes into the research lake): which pseudonym a hub's participant reference
//! belongs to, whose consent was withdrawn, which event ids were seen, which log
//! positions held a second copy of an event, how far each partition was read, and
//! the dead letters. Everything here can be rebuilt by replaying the event log.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Serialize;
use techmon_eventlog::event_ids::SeenIds;
use uuid::Uuid;

use crate::TransformError;
use crate::consent::{Said, Statement, WithheldPerson};
use techmon_lake::tables::EVENT_TABLES;

/// A round's consent statements as one block, like the links: per statement the
/// pseudonym's 32 bytes, research (1 byte), and when it was said (`at_micros` i64,
/// partition u32, offset u64, little-endian).
struct ConsentBlock;

impl ConsentBlock {
    const ENTRY: usize = 32 + 1 + 8 + 4 + 8;

    fn encode(entries: &[([u8; 32], Statement)]) -> Vec<u8> {
        let mut block = Vec::with_capacity(entries.len() * Self::ENTRY);
        for (pseudonym, statement) in entries {
            block.extend_from_slice(pseudonym);
            block.push(u8::from(statement.research));
            block.extend_from_slice(&statement.said.at_micros.to_le_bytes());
            block.extend_from_slice(&statement.said.partition.to_le_bytes());
            block.extend_from_slice(&statement.said.offset.to_le_bytes());
        }
        block
    }

    fn decode(block: &[u8]) -> Result<Vec<([u8; 32], Statement)>, redb::Error> {
        if !block.len().is_multiple_of(Self::ENTRY) {
            return Err(corrupted("a block of consent statements is cut short"));
        }
        Ok(block
            .chunks_exact(Self::ENTRY)
            .map(|entry| {
                let (pseudonym, rest) = entry.split_at(32);
                let mut bytes = [0; 32];
                bytes.copy_from_slice(pseudonym);
                let number = |range: std::ops::Range<usize>| {
                    let mut eight = [0; 8];
                    eight[..range.len()].copy_from_slice(&rest[range]);
                    u64::from_le_bytes(eight)
                };
                let statement = Statement {
                    research: rest[0] != 0,
                    said: Said {
                        at_micros: number(1..9) as i64,
                        partition: number(9..13) as u32,
                        offset: number(13..21),
                    },
                };
                (bytes, statement)
            })
            .collect())
    }
}

/// A pseudonym's 32 bytes.
fn pseudonym_bytes(pseudonym: &str) -> Option<[u8; 32]> {
    let mut bytes = [0; 32];
    hex::decode_to_slice(pseudonym, &mut bytes).ok()?;
    Some(bytes)
}

/// Block number → the links one round made (see [`Links::block`]). Append-only: keyed
/// by (hub, reference), a round's links rewrote a B-tree page per random key, most
/// of the table at ten million events; a block per round writes a few pages.
const LINK_BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("participant_link_blocks");
/// (hub, participant reference) → pseudonym, one entry per link, as states made
/// before the blocks (format 1) hold them; moved into a block at the first open.
const LINKS: TableDefinition<(&str, &str), &str> = TableDefinition::new("participant_links");
/// Settings of the state: `format` is the layout of its tables (a state without it
/// is of format 1).
const META: TableDefinition<&str, u64> = TableDefinition::new("state_meta");
/// Format 2: links in blocks only.
const FORMAT: u64 = 2;
/// pseudonym → erased from the lake yet.
const WITHDRAWN: TableDefinition<&str, bool> = TableDefinition::new("consent_withdrawn");
/// The pseudonym a reference had before its registration → the registration's, for
/// lake rows not yet given the registration's (see [`StateChanges::relinks`]).
const RELINKS: TableDefinition<&str, &str> = TableDefinition::new("pending_relinks");
/// Block number → the consent statements one round read (see [`ConsentBlock`]).
const CONSENT_BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("consent_blocks");
/// pseudonym → what the KPIs count of a person whose rows were withheld (JSON).
const WITHHELD: TableDefinition<&str, &str> = TableDefinition::new("withheld_people");
/// (hub, activity id) of docentprofessionalisering activities.
const TRAINING: TableDefinition<(&str, &str), ()> = TableDefinition::new("training_activities");
/// pseudonym whose consent was taken back → the pseudonyms whose lake rows are to be
/// withheld into it (its own, and one its reference had before the registration).
const PENDING_WITHHOLDS: TableDefinition<&str, &str> = TableDefinition::new("pending_withholds");
/// Event id of an event a later version of its plain-sheet row replaced → the table
/// its row is still to be removed from, or "" once it is.
const REPLACED: TableDefinition<u128, &str> = TableDefinition::new("replaced_events");
/// Person-key subjects to destroy (see [`techmon_eventlog::person_keys`]).
const SHREDS: TableDefinition<&str, ()> = TableDefinition::new("pending_shreds");
/// redb's page cache for the state.
const STATE_CACHE_BYTES: usize = 32 << 20;

/// Log positions whose event was a second copy of one seen before.
const DUPLICATES: TableDefinition<(u32, u64), ()> = TableDefinition::new("duplicate_positions");
/// Per partition, the last offset whose outcome this state holds.
const APPLIED: TableDefinition<u32, u64> = TableDefinition::new("applied_offsets");
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

/// A map keyed by references, pseudonyms or ids, which every event looks up: SipHash
/// was a few per cent of the transform.
pub(crate) type QuickMap<K, V> = HashMap<K, V, foldhash::fast::RandomState>;

/// (hub, participant reference) → pseudonym, in memory: a link is one allocation
/// (the key `hub NUL reference`; a hub id holds no NUL) and the pseudonym's 32 bytes.
/// Held as three strings, a link took three allocations and much more memory.
#[derive(Default)]
struct Links {
    map: QuickMap<Box<str>, [u8; 32]>,
    next_block: u64,
}

fn corrupted(what: &str) -> redb::Error {
    redb::StorageError::Corrupted(format!("transform state: {what}")).into()
}

impl Links {
    /// Exactly as long as it is: kept as a boxed str, any spare capacity would be
    /// copied away.
    fn key(hub: &str, reference: &str) -> String {
        let mut key = String::with_capacity(hub.len() + 1 + reference.len());
        key.push_str(hub);
        key.push('\0');
        key.push_str(reference);
        key
    }

    /// A link as held in memory.
    fn entry(
        hub: &str,
        reference: &str,
        pseudonym: &str,
    ) -> Result<(Box<str>, [u8; 32]), redb::Error> {
        let mut bytes = [0; 32];
        hex::decode_to_slice(pseudonym, &mut bytes)
            .map_err(|_| corrupted("a linked pseudonym is not 64 hex digits"))?;
        Ok((Self::key(hub, reference).into_boxed_str(), bytes))
    }

    fn get(&self, hub: &str, reference: &str) -> Option<String> {
        self.map
            .get(Self::key(hub, reference).as_str())
            .map(hex::encode)
    }

    /// A round's links as one block: per link, the key's length (u32, little-endian),
    /// the key, and the pseudonym's 32 bytes.
    fn block(entries: &[(Box<str>, [u8; 32])]) -> Vec<u8> {
        let mut block = Vec::with_capacity(entries.iter().map(|(k, _)| k.len() + 36).sum());
        for (key, pseudonym) in entries {
            block.extend_from_slice(&(key.len() as u32).to_le_bytes());
            block.extend_from_slice(key.as_bytes());
            block.extend_from_slice(pseudonym);
        }
        block
    }

    /// Adds the links of a stored block (a later block's link replaces an earlier one).
    fn load_block(&mut self, mut block: &[u8]) -> Result<(), redb::Error> {
        let truncated = || corrupted("a block of participant links is cut short");
        while !block.is_empty() {
            let (len, rest) = block.split_first_chunk::<4>().ok_or_else(truncated)?;
            let len = u32::from_le_bytes(*len) as usize;
            if rest.len() < len + 32 {
                return Err(truncated());
            }
            let (key, rest) = rest.split_at(len);
            let (pseudonym, rest) = rest.split_at(32);
            let key = std::str::from_utf8(key)
                .map_err(|_| corrupted("a participant link's key is not UTF-8"))?;
            let mut bytes = [0; 32];
            bytes.copy_from_slice(pseudonym);
            self.map.insert(key.into(), bytes);
            block = rest;
        }
        Ok(())
    }
}

/// Moves the links a state of format 1 holds one per entry into a block before every
/// other (a later block's link replaces an earlier one), and drops their table.
fn move_links_into_a_block(txn: &redb::WriteTransaction) -> Result<(), redb::Error> {
    let entries = txn
        .open_table(LINKS)?
        .iter()?
        .map(|entry| {
            let (k, v) = entry?;
            let (hub, reference) = k.value();
            Links::entry(hub, reference, v.value())
        })
        .collect::<Result<Vec<_>, redb::Error>>()?;
    if !entries.is_empty() {
        let mut blocks = txn.open_table(LINK_BLOCKS)?;
        let later = blocks
            .iter()?
            .map(|entry| {
                let (n, bytes) = entry?;
                Ok((n.value(), bytes.value().to_vec()))
            })
            .collect::<Result<Vec<_>, redb::Error>>()?;
        // Each block one further on, the last first, to make room for block 0.
        for (n, bytes) in later.iter().rev() {
            blocks.remove(n)?;
            blocks.insert(n + 1, bytes.as_slice())?;
        }
        blocks.insert(0, Links::block(&entries).as_slice())?;
    }
    txn.delete_table(LINKS)?;
    Ok(())
}

/// The consent part of the state as it is loaded.
#[derive(Default)]
struct Consents {
    map: QuickMap<[u8; 32], Statement>,
    next_block: u64,
    withheld: QuickMap<String, WithheldPerson>,
    training: HashSet<(String, String)>,
    pending_withholds: QuickMap<String, Vec<String>>,
}

pub struct State {
    db: Database,
    path: PathBuf,
    links: Links,
    withdrawn: QuickMap<String, bool>,
    relinks: QuickMap<String, String>,
    /// Shared with the threads that prepare a round's records (see [`State::seen_ids`]).
    seen: Arc<SeenIds>,
    duplicates: HashSet<(u32, u64)>,
    applied: HashMap<u32, u64>,
    /// Each participant's latest consent statement.
    consent: QuickMap<[u8; 32], Statement>,
    next_consent_block: u64,
    withheld: QuickMap<String, WithheldPerson>,
    training: HashSet<(String, String)>,
    pending_withholds: QuickMap<String, Vec<String>>,
    /// Events a later version of their row replaced.
    replaced: HashSet<Uuid>,
    /// Of those, the ones whose row is still to be removed from the lake → its table
    /// (as in [`EVENT_TABLES`]): what a round looks at, kept apart from all.
    to_remove: QuickMap<Uuid, usize>,
}

/// What a round changes in the state, applied in one transaction.
#[derive(Default)]
pub struct StateChanges {
    pub links: Vec<((String, String), String)>,
    pub withdrawn: Vec<String>,
    /// (pseudonym, pseudonym that replaces it): a participant reference named by
    /// events before its registration had the reference's own pseudonym until then.
    pub relinks: Vec<(String, String)>,
    /// Event ids first seen in this round.
    pub seen: HashSet<Uuid>,
    pub duplicates: Vec<(u32, u64)>,
    /// (partition, last offset read).
    pub applied: Vec<(u32, u64)>,
    pub dead_letters: Vec<DeadLetter>,
    /// Consent statements read (the latest per pseudonym).
    pub consent: Vec<(String, Statement)>,
    /// People whose rows were withheld, as they now stand.
    pub withheld: Vec<(String, WithheldPerson)>,
    /// People no longer counted at all (withdrawn).
    pub unwithheld: Vec<String>,
    /// (hub, activity id) of docentprofessionalisering activities.
    pub training: Vec<(String, String)>,
    /// Consent taken back: pseudonym → the pseudonyms whose lake rows go with it.
    pub pending_withholds: Vec<(String, Vec<String>)>,
    /// Person-key subjects a withdrawal destroys.
    pub shred: Vec<String>,
    /// Events replaced by a later version of their row → the table of their row.
    pub replaced: QuickMap<Uuid, usize>,
}

impl State {
    pub fn open(raw: &Path) -> Result<Self, TransformError> {
        let path = raw.join("transform-state.redb");
        let err = |e: redb::Error| TransformError::State {
            path: path.clone(),
            source: Box::new(e),
        };
        // A small cache: the state is read into memory at open, and redb's default
        // cache would grow with the state's file.
        let db = techmon_eventlog::files::open_or_create_database(&path, Some(STATE_CACHE_BYTES))
            .map_err(err)?;
        let load = || -> Result<_, redb::Error> {
            let txn = db.begin_write()?;
            if txn.open_table(META)?.get("format")?.is_none() {
                move_links_into_a_block(&txn)?;
                txn.open_table(META)?.insert("format", FORMAT)?;
            }
            txn.open_table(LINK_BLOCKS)?;
            txn.open_table(WITHDRAWN)?;
            txn.open_table(RELINKS)?;
            txn.open_table(DUPLICATES)?;
            txn.open_table(APPLIED)?;
            txn.open_table(DEAD_LETTERS)?;
            txn.open_table(CONSENT_BLOCKS)?;
            txn.open_table(WITHHELD)?;
            txn.open_table(TRAINING)?;
            txn.open_table(PENDING_WITHHOLDS)?;
            txn.open_table(SHREDS)?;
            txn.open_table(REPLACED)?;
            txn.commit()?;
            let seen = SeenIds::load(&db)?;
            let txn = db.begin_read()?;
            let mut links = Links::default();
            for entry in txn.open_table(LINK_BLOCKS)?.iter()? {
                let (block, bytes) = entry?;
                links.load_block(bytes.value())?;
                links.next_block = block.value() + 1;
            }
            let mut withdrawn = QuickMap::default();
            for entry in txn.open_table(WITHDRAWN)?.iter()? {
                let (k, v) = entry?;
                withdrawn.insert(k.value().to_string(), v.value());
            }
            let mut relinks = QuickMap::default();
            for entry in txn.open_table(RELINKS)?.iter()? {
                let (k, v) = entry?;
                relinks.insert(k.value().to_string(), v.value().to_string());
            }
            let mut duplicates = HashSet::new();
            for entry in txn.open_table(DUPLICATES)?.iter()? {
                duplicates.insert(entry?.0.value());
            }
            let mut applied = HashMap::new();
            for entry in txn.open_table(APPLIED)?.iter()? {
                let (k, v) = entry?;
                applied.insert(k.value(), v.value());
            }
            let mut consent = Consents::default();
            for entry in txn.open_table(CONSENT_BLOCKS)?.iter()? {
                let (block, bytes) = entry?;
                for (pseudonym, statement) in ConsentBlock::decode(bytes.value())? {
                    let latest = statement.latest(consent.map.get(&pseudonym).copied());
                    consent.map.insert(pseudonym, latest);
                }
                consent.next_block = block.value() + 1;
            }
            for entry in txn.open_table(WITHHELD)?.iter()? {
                let (k, v) = entry?;
                let person = serde_json::from_str(v.value())
                    .map_err(|_| corrupted("a withheld person is not readable"))?;
                consent.withheld.insert(k.value().to_string(), person);
            }
            for entry in txn.open_table(TRAINING)?.iter()? {
                let (key, _) = entry?;
                let (hub, activity) = key.value();
                consent
                    .training
                    .insert((hub.to_string(), activity.to_string()));
            }
            for entry in txn.open_table(PENDING_WITHHOLDS)?.iter()? {
                let (k, v) = entry?;
                let pseudonyms = serde_json::from_str(v.value())
                    .map_err(|_| corrupted("a pending withhold is not readable"))?;
                consent
                    .pending_withholds
                    .insert(k.value().to_string(), pseudonyms);
            }
            let (mut replaced, mut to_remove) = (HashSet::new(), QuickMap::default());
            for entry in txn.open_table(REPLACED)?.iter()? {
                let (id, table) = entry?;
                let id = Uuid::from_u128(id.value());
                replaced.insert(id);
                if !table.value().is_empty() {
                    let table = EVENT_TABLES
                        .iter()
                        .position(|t| t.name == table.value())
                        .ok_or_else(|| corrupted("a replaced event names no table"))?;
                    to_remove.insert(id, table);
                }
            }
            Ok((
                links,
                withdrawn,
                relinks,
                seen,
                duplicates,
                applied,
                consent,
                (replaced, to_remove),
            ))
        };
        let (links, withdrawn, relinks, seen, duplicates, applied, consent, (replaced, to_remove)) =
            load().map_err(err)?;
        Ok(Self {
            db,
            path,
            links,
            withdrawn,
            relinks,
            seen: Arc::new(seen),
            duplicates,
            applied,
            consent: consent.map,
            next_consent_block: consent.next_block,
            withheld: consent.withheld,
            training: consent.training,
            pending_withholds: consent.pending_withholds,
            replaced,
            to_remove,
        })
    }

    fn error(&self, e: impl Into<redb::Error>) -> TransformError {
        TransformError::State {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    pub fn linked(&self, hub: &str, reference: &str) -> Option<String> {
        self.links.get(hub, reference)
    }

    /// A participant's latest consent statement, if any.
    pub fn consent(&self, pseudonym: &str) -> Option<Statement> {
        self.consent.get(&pseudonym_bytes(pseudonym)?).copied()
    }

    /// What is counted of a person whose rows were withheld.
    pub fn withheld(&self, pseudonym: &str) -> Option<&WithheldPerson> {
        self.withheld.get(pseudonym)
    }

    pub fn withheld_people(&self) -> impl Iterator<Item = &WithheldPerson> {
        self.withheld.values()
    }

    /// (hub, activity id) of the docentprofessionalisering activities.
    pub fn training(&self) -> &HashSet<(String, String)> {
        &self.training
    }

    /// People whose consent was taken back, with the pseudonyms whose lake rows are
    /// still to be withheld into them.
    pub fn pending_withholds(&self) -> Vec<(String, Vec<String>)> {
        let mut pending: Vec<_> = self
            .pending_withholds
            .iter()
            .map(|(p, all)| (p.clone(), all.clone()))
            .collect();
        pending.sort();
        pending
    }

    /// Records what is counted of `pseudonym` once its lake rows are read; the
    /// withhold stays pending until [`State::mark_withheld`].
    pub fn set_withheld(
        &mut self,
        pseudonym: &str,
        person: WithheldPerson,
    ) -> Result<(), TransformError> {
        let json = serde_json::to_string(&person).unwrap_or_default();
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            txn.open_table(WITHHELD)?.insert(pseudonym, json.as_str())?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| self.error(e))?;
        self.withheld.insert(pseudonym.to_string(), person);
        Ok(())
    }

    /// Records that `pseudonym`'s lake rows are withheld.
    pub fn mark_withheld(&mut self, pseudonym: &str) -> Result<(), TransformError> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            txn.open_table(PENDING_WITHHOLDS)?.remove(pseudonym)?;
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| self.error(e))?;
        self.pending_withholds.remove(pseudonym);
        Ok(())
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

    /// Pseudonyms still to be replaced in the lake, with their replacements.
    pub fn pending_relinks(&self) -> Vec<(String, String)> {
        let mut pending: Vec<_> = self
            .relinks
            .iter()
            .map(|(old, new)| (old.clone(), new.clone()))
            .collect();
        pending.sort();
        pending
    }

    /// Whether the record of event `id` at `position` is its first copy, noting the
    /// answer in `changes`. A position whose outcome this state holds already (read
    /// again after a restart) keeps that outcome. A new position, or none (a dead
    /// letter sent again), holds a second copy when the id was seen before, in an
    /// applied round (`seen_before`: whether [`State::seen_ids`] holds it) or
    /// earlier in `changes`; never when the log holds each id once (`seen_before` is
    /// `None`).
    pub fn is_first_copy(
        &self,
        id: Uuid,
        position: Option<(u32, u64)>,
        seen_before: Option<bool>,
        changes: &mut StateChanges,
    ) -> bool {
        if let Some((partition, offset)) = position
            && self
                .applied
                .get(&partition)
                .is_some_and(|last| offset <= *last)
        {
            return !self.duplicates.contains(&(partition, offset));
        }
        match seen_before {
            None => true,
            Some(false) if changes.seen.insert(id) => true,
            Some(_) => {
                changes.duplicates.extend(position);
                false
            }
        }
    }

    /// The event ids of the applied rounds. Looking an id up is a few cache misses, so
    /// the threads that prepare a round's records do it (but for a pass read ahead of
    /// its round, which looks when it is transformed); this set changes only when a
    /// round is applied, after they are done.
    pub fn seen_ids(&self) -> Arc<SeenIds> {
        self.seen.clone()
    }

    pub fn apply(&mut self, changes: StateChanges) -> Result<(), TransformError> {
        let new_links = changes
            .links
            .iter()
            .map(|((hub, reference), pseudonym)| Links::entry(hub, reference, pseudonym))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        let seen: Vec<Uuid> = changes.seen.iter().copied().collect();
        let new_consent = changes
            .consent
            .iter()
            .map(|(pseudonym, statement)| {
                pseudonym_bytes(pseudonym)
                    .map(|bytes| (bytes, *statement))
                    .ok_or_else(|| {
                        corrupted("a consent statement's pseudonym is not 64 hex digits")
                    })
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| self.error(e))?;
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        // Copies only if a round's preparation still held the set, which never outlives
        // the round.
        let seen_ids = Arc::make_mut(&mut self.seen);
        let mut write = || -> Result<(), redb::Error> {
            if !new_links.is_empty() {
                txn.open_table(LINK_BLOCKS)?
                    .insert(self.links.next_block, Links::block(&new_links).as_slice())?;
            }
            let mut withdrawn = txn.open_table(WITHDRAWN)?;
            for pseudonym in &changes.withdrawn {
                if withdrawn.get(pseudonym.as_str())?.is_none() {
                    withdrawn.insert(pseudonym.as_str(), false)?;
                }
            }
            let mut relinks = txn.open_table(RELINKS)?;
            for (old, new) in &changes.relinks {
                relinks.insert(old.as_str(), new.as_str())?;
            }
            seen_ids.record(&txn, &seen)?;
            let mut duplicates = txn.open_table(DUPLICATES)?;
            for position in &changes.duplicates {
                duplicates.insert(*position, ())?;
            }
            let mut applied = txn.open_table(APPLIED)?;
            for (partition, last) in &changes.applied {
                let before = applied.get(*partition)?.map(|v| v.value());
                if before.is_none_or(|before| before < *last) {
                    applied.insert(*partition, *last)?;
                }
            }
            let mut dead = txn.open_table(DEAD_LETTERS)?;
            for letter in &changes.dead_letters {
                let json = serde_json::to_string(letter).unwrap_or_default();
                dead.insert((letter.partition, letter.offset), json.as_str())?;
            }
            if !new_consent.is_empty() {
                txn.open_table(CONSENT_BLOCKS)?.insert(
                    self.next_consent_block,
                    ConsentBlock::encode(&new_consent).as_slice(),
                )?;
            }
            let mut withheld = txn.open_table(WITHHELD)?;
            for (pseudonym, person) in &changes.withheld {
                let json = serde_json::to_string(person).unwrap_or_default();
                withheld.insert(pseudonym.as_str(), json.as_str())?;
            }
            for pseudonym in &changes.unwithheld {
                withheld.remove(pseudonym.as_str())?;
            }
            let mut training = txn.open_table(TRAINING)?;
            for (hub, activity) in &changes.training {
                training.insert((hub.as_str(), activity.as_str()), ())?;
            }
            let mut shreds = txn.open_table(SHREDS)?;
            for subject in &changes.shred {
                shreds.insert(subject.as_str(), ())?;
            }
            let mut pending = txn.open_table(PENDING_WITHHOLDS)?;
            for (pseudonym, all) in &changes.pending_withholds {
                let json = serde_json::to_string(all).unwrap_or_default();
                pending.insert(pseudonym.as_str(), json.as_str())?;
            }
            let mut replaced = txn.open_table(REPLACED)?;
            for (id, table) in &changes.replaced {
                if !self.replaced.contains(id) {
                    replaced.insert(id.as_u128(), EVENT_TABLES[*table].name)?;
                }
            }
            Ok(())
        };
        if let Err(e) = write().and_then(|()| Ok(txn.commit()?)) {
            seen_ids.forget(&seen);
            return Err(self.error(e));
        }
        if !new_links.is_empty() {
            self.links.next_block += 1;
            self.links.map.extend(new_links);
        }
        for pseudonym in changes.withdrawn {
            self.withdrawn.entry(pseudonym).or_insert(false);
        }
        self.relinks.extend(changes.relinks);
        self.duplicates.extend(changes.duplicates);
        if !new_consent.is_empty() {
            self.next_consent_block += 1;
            for (pseudonym, statement) in new_consent {
                let latest = statement.latest(self.consent.get(&pseudonym).copied());
                self.consent.insert(pseudonym, latest);
            }
        }
        self.withheld.extend(changes.withheld);
        for pseudonym in &changes.unwithheld {
            self.withheld.remove(pseudonym);
        }
        self.training.extend(changes.training);
        self.pending_withholds.extend(changes.pending_withholds);
        for (id, table) in changes.replaced {
            if self.replaced.insert(id) {
                self.to_remove.insert(id, table);
            }
        }
        for (partition, last) in changes.applied {
            let applied = self.applied.entry(partition).or_insert(last);
            *applied = (*applied).max(last);
        }
        Ok(())
    }

    /// The (hub, reference) pairs linked to any of these pseudonyms.
    pub fn references_of(&self, pseudonyms: &[String]) -> Vec<(String, String)> {
        let wanted: HashSet<[u8; 32]> = pseudonyms
            .iter()
            .filter_map(|p| pseudonym_bytes(p))
            .collect();
        let mut out: Vec<(String, String)> = self
            .links
            .map
            .iter()
            .filter(|(_, p)| wanted.contains(*p))
            .filter_map(|(key, _)| {
                let (hub, reference) = key.split_once('\0')?;
                Some((hub.to_string(), reference.to_string()))
            })
            .collect();
        out.sort();
        out
    }

    /// Person-key subjects to destroy, kept until [`State::mark_shredded`].
    pub fn note_shreds(&mut self, subjects: &[String]) -> Result<(), TransformError> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut shreds = txn.open_table(SHREDS)?;
                for subject in subjects {
                    shreds.insert(subject.as_str(), ())?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| self.error(e))
    }

    /// The person-key subjects still to destroy.
    pub fn pending_shreds(&self) -> Vec<String> {
        let read = || -> Result<Vec<String>, redb::Error> {
            let txn = self.db.begin_read()?;
            let table = txn.open_table(SHREDS)?;
            let mut out = Vec::new();
            for entry in table.iter()? {
                out.push(entry?.0.value().to_string());
            }
            Ok(out)
        };
        read().unwrap_or_default()
    }

    /// Whether a later version of its row replaced this event.
    pub fn is_replaced(&self, id: Uuid) -> bool {
        self.replaced.contains(&id)
    }

    /// Replaced events whose rows are still to be removed from the lake: per table
    /// (as in [`EVENT_TABLES`]), their ids.
    pub fn pending_removals(&self) -> Vec<(usize, Vec<Uuid>)> {
        let mut pending: std::collections::BTreeMap<usize, Vec<Uuid>> = Default::default();
        for (id, table) in &self.to_remove {
            pending.entry(*table).or_default().push(*id);
        }
        pending.into_iter().collect()
    }

    /// Records that the rows of these replaced events are gone from the lake.
    pub fn mark_removed(&mut self, ids: &[Uuid]) -> Result<(), TransformError> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut replaced = txn.open_table(REPLACED)?;
                for id in ids {
                    replaced.insert(id.as_u128(), "")?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| self.error(e))?;
        for id in ids {
            self.to_remove.remove(id);
        }
        Ok(())
    }

    /// Records that these subjects' keys are destroyed.
    pub fn mark_shredded(&mut self, subjects: &[String]) -> Result<(), TransformError> {
        let write = || -> Result<(), redb::Error> {
            let txn = self.db.begin_write()?;
            {
                let mut shreds = txn.open_table(SHREDS)?;
                for subject in subjects {
                    shreds.remove(subject.as_str())?;
                }
            }
            txn.commit()?;
            Ok(())
        };
        write().map_err(|e| self.error(e))
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

    /// Records that these pseudonyms are replaced in the lake.
    pub fn mark_relinked(&mut self, pseudonyms: &[String]) -> Result<(), TransformError> {
        let txn = self.db.begin_write().map_err(|e| self.error(e))?;
        {
            let mut relinks = txn.open_table(RELINKS).map_err(|e| self.error(e))?;
            for p in pseudonyms {
                relinks.remove(p.as_str()).map_err(|e| self.error(e))?;
            }
        }
        txn.commit().map_err(|e| self.error(e))?;
        for p in pseudonyms {
            self.relinks.remove(p);
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

#[cfg(test)]
mod tests {
    use super::*;

    fn pseudonym(n: u8) -> String {
        hex::encode([n; 32])
    }

    fn link(hub: &str, reference: &str, n: u8) -> ((String, String), String) {
        ((hub.into(), reference.into()), pseudonym(n))
    }

    #[test]
    fn links_survive_reopening_and_a_later_round_replaces_an_earlier_link() {
        let dir = tempfile::tempdir().expect("temporary folder");
        // A state written before link blocks: one link in the per-link table.
        {
            let db = Database::create(dir.path().join("transform-state.redb")).expect("db");
            let txn = db.begin_write().expect("transaction");
            txn.open_table(LINKS)
                .expect("table")
                .insert(("hub-a", "old"), pseudonym(9).as_str())
                .expect("insert");
            txn.commit().expect("commit");
        }
        let mut state = State::open(dir.path()).expect("open");
        let rounds = [
            vec![link("hub-a", "p-1", 1), link("hub-b", "p-1", 2)],
            vec![link("hub-a", "p-1", 3), link("hub-a", "p\u{0}2", 4)],
        ];
        for links in rounds {
            let changes = StateChanges {
                links,
                ..StateChanges::default()
            };
            state.apply(changes).expect("apply");
        }
        drop(state);
        let reopened = State::open(dir.path()).expect("reopen");
        assert_eq!(reopened.linked("hub-a", "old"), Some(pseudonym(9)));
        assert_eq!(reopened.linked("hub-a", "p-1"), Some(pseudonym(3)));
        assert_eq!(reopened.linked("hub-b", "p-1"), Some(pseudonym(2)));
        assert_eq!(reopened.linked("hub-a", "p\u{0}2"), Some(pseudonym(4)));
        assert_eq!(reopened.linked("hub-b", "p-2"), None);
        // The old link moved into block 0, before the two rounds' blocks.
        assert_eq!(reopened.links.next_block, 3);
        let txn = reopened.db.begin_read().expect("read");
        assert!(txn.open_table(LINKS).is_err(), "the per-link table is gone");
        let format = txn
            .open_table(META)
            .expect("meta")
            .get("format")
            .expect("format");
        assert_eq!(format.map(|v| v.value()), Some(FORMAT));
    }

    #[test]
    fn links_of_both_layouts_keep_their_order_when_moved() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let mut state = State::open(dir.path()).expect("open");
        let changes = StateChanges {
            links: vec![link("hub-a", "p-1", 1)],
            ..StateChanges::default()
        };
        state.apply(changes).expect("apply");
        // A build between the layouts left a per-link entry older than the block, and
        // no format.
        {
            let txn = state.db.begin_write().expect("transaction");
            txn.open_table(LINKS)
                .expect("table")
                .insert(("hub-a", "p-1"), pseudonym(9).as_str())
                .expect("insert");
            txn.open_table(META)
                .expect("meta")
                .remove("format")
                .expect("format");
            txn.commit().expect("commit");
        }
        drop(state);
        let reopened = State::open(dir.path()).expect("reopen");
        assert_eq!(
            reopened.linked("hub-a", "p-1"),
            Some(pseudonym(1)),
            "the block is later"
        );
        assert_eq!(reopened.links.next_block, 2);
    }
}
