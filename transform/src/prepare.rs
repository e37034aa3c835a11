//! Preparing records on every core: each record read, unsealed, validated and made
//! into its row, before the round puts them in the log's order.

use std::sync::Arc;

use techmon_eventlog::LogError;
use techmon_eventlog::StoredRecord;
use techmon_eventlog::event_ids::SeenIds;
use techmon_eventlog::person_keys::{PersonKeys, Unsealed};
use techmon_lake::tables::EVENT_TABLES;
use techmon_schemas::{Event, Problem, ReadEventError};

use crate::pseudonym::PseudonymKey;
use crate::state::DeadLetterReason;
use crate::{TransformError, batch, tables};

/// Records prepared by [`prepare`]: the rows they add, per table (as in
/// [`EVENT_TABLES`]), and per record, in order, what else the transform needs.
pub(crate) struct Prepared {
    pub(crate) records: Vec<PreparedRecord>,
    pub(crate) rows: Vec<Option<batch::TableRows>>,
}

pub(crate) struct PreparedRecord {
    pub(crate) partition: u32,
    pub(crate) offset: u64,
    /// The event's id; for a dead letter, the id the log stored it under.
    pub(crate) event_id: uuid::Uuid,
    /// Whether an applied round saw the event's id (see [`State::seen_ids`]); `None`
    /// when the log holds each id once, so nobody looked, and in a pass read ahead
    /// until [`Transform::transform_parsed`] looks (`None` counts as a first copy).
    pub(crate) seen_before: Option<bool>,
    pub(crate) outcome: Outcome,
}

pub(crate) enum Outcome {
    Dead {
        reason: DeadLetterReason,
        detail: String,
        payload: String,
    },
    /// A consent withdrawal (or a record whose person's key is destroyed), with the
    /// person-key subject it destroys.
    Withdrawal {
        subject: tables::Subject,
        shred: Option<String>,
    },
    /// The event added the next row of this table to the prepared rows.
    Row {
        table: usize,
        subject: tables::Subject,
        /// The event a corrected row of a plain sheet replaces.
        replaces: Option<uuid::Uuid>,
    },
}

/// The part of transforming records that does not depend on the records before
/// them: reading and validating each event, who it is about, and its row (but for
/// the participant's pseudonym).
pub(crate) fn prepare(
    records: Vec<StoredRecord>,
    key: &PseudonymKey,
    person_keys: &PersonKeys,
    seen: Option<&SeenIds>,
) -> Result<Prepared, TransformError> {
    let mut prepared = Prepared {
        records: Vec::with_capacity(records.len()),
        rows: EVENT_TABLES.iter().map(|_| None).collect(),
    };
    for record in records {
        let (partition, offset) = (record.partition, record.offset);
        let (event_id, outcome) = match parse(&record, key, person_keys)? {
            Err((reason, detail)) => (
                record.event_id,
                Outcome::Dead {
                    reason,
                    detail,
                    payload: String::from_utf8_lossy(&record.payload).into_owned(),
                },
            ),
            Ok(Parsed::Shredded(subject)) => (
                record.event_id,
                Outcome::Withdrawal {
                    subject,
                    shred: None,
                },
            ),
            Ok(Parsed::Event(event)) => {
                let subject = tables::subject(&event, key);
                let ctx = tables::RowContext {
                    key,
                    partition,
                    offset,
                };
                // Decided by the kind alone: a withdrawal erases, every other kind adds a row.
                let outcome = if event.kind() == techmon_schemas::EventKind::ConsentWithdrawn {
                    Outcome::Withdrawal {
                        subject,
                        shred: Some(event.subject_key()),
                    }
                } else {
                    let (table, row) = tables::row(&event, &ctx)?;
                    prepared.rows[table]
                        .get_or_insert_with(|| batch::TableRows::new(&EVENT_TABLES[table]))
                        .push(row)?;
                    Outcome::Row {
                        table,
                        subject,
                        replaces: event.replaces,
                    }
                };
                (event.event_id, outcome)
            }
        };
        prepared.records.push(PreparedRecord {
            partition,
            offset,
            event_id,
            seen_before: seen.map(|ids| ids.contains(event_id)),
            outcome,
        });
    }
    Ok(prepared)
}

/// [`prepare`] of records on every core, started at once and collected in the
/// records' order: the work of one record does not depend on another's, and it is
/// most of a round's.
pub(crate) struct Parsing {
    /// How many records are parsed.
    pub(crate) records: usize,
    pub(crate) chunks: Vec<tokio::task::JoinHandle<Result<Prepared, TransformError>>>,
}

impl Parsing {
    pub(crate) fn start(
        records: Vec<StoredRecord>,
        (key, person_keys): (&Arc<PseudonymKey>, &Arc<PersonKeys>),
        seen: &Option<Arc<SeenIds>>,
    ) -> Self {
        let count = records.len();
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        let per_core = records.len().div_ceil(cores).max(1);
        let mut records = records.into_iter();
        let mut chunks = Vec::new();
        loop {
            let chunk: Vec<StoredRecord> = records.by_ref().take(per_core).collect();
            if chunk.is_empty() {
                break;
            }
            let (key, person_keys, seen) = (key.clone(), person_keys.clone(), seen.clone());
            chunks.push(tokio::task::spawn_blocking(move || {
                prepare(chunk, &key, &person_keys, seen.as_deref())
            }));
        }
        Self {
            records: count,
            chunks,
        }
    }

    pub(crate) async fn finish(self) -> Vec<Result<Prepared, TransformError>> {
        let mut prepared = Vec::with_capacity(self.chunks.len());
        for task in self.chunks {
            match task.await {
                Ok(chunk) => prepared.push(chunk),
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            }
        }
        prepared
    }
}

/// What a stored record holds. It lives for one record: boxing the event would cost
/// an allocation per event.
#[allow(clippy::large_enum_variant)]
pub(crate) enum Parsed {
    Event(Event),
    /// An event whose personal fields were sealed under a key since destroyed: its
    /// person withdrew, and it counts as a withdrawal of whom it names.
    Shredded(tables::Subject),
}

/// Reads and validates a stored event, its sealed personal fields opened first; on
/// failure, why (without values). The person keys failing to read is an error of
/// the transform's (tried again), not of the record.
pub(crate) fn parse(
    record: &StoredRecord,
    key: &PseudonymKey,
    person_keys: &PersonKeys,
) -> Result<Result<Parsed, (DeadLetterReason, String)>, TransformError> {
    let unreadable = || {
        (
            DeadLetterReason::Unreadable,
            "the stored event is not JSON".to_string(),
        )
    };
    let opened;
    let bytes: &[u8] = if memchr::memmem::find(&record.payload, b"\"sealed\"").is_some() {
        let Ok(mut value) = serde_json::from_slice::<serde_json::Value>(&record.payload) else {
            return Ok(Err(unreadable()));
        };
        match person_keys.unseal(record.event_id, &mut value) {
            Ok(Unsealed::Shredded) => {
                return Ok(Ok(Parsed::Shredded(shredded_subject(&value, key))));
            }
            Ok(Unsealed::Plain | Unsealed::Opened) => {}
            Err(LogError::SealedFields { reason, .. }) => {
                return Ok(Err((DeadLetterReason::Invalid, reason)));
            }
            Err(error) => return Err(error.into()),
        }
        opened = serde_json::to_vec(&value).unwrap_or_default();
        &opened
    } else {
        &record.payload
    };
    Ok(techmon_schemas::read_event(bytes)
        .map(Parsed::Event)
        .map_err(|error| match error {
            ReadEventError::NotJson => unreadable(),
            ReadEventError::Invalid(errors) => {
                let reason = match errors.first().map(|e| e.problem) {
                    Some(Problem::UnknownVersion) => DeadLetterReason::UnknownSchemaVersion,
                    Some(Problem::UnknownKind) => DeadLetterReason::UnknownEventKind,
                    Some(Problem::NotAnEvent | Problem::Field) | None => DeadLetterReason::Invalid,
                };
                let detail = errors
                    .iter()
                    .map(|e| format!("{}: {}", e.field, e.reason))
                    .collect::<Vec<_>>()
                    .join("; ");
                (reason, detail)
            }
        }))
}

/// Whom a shredded record names (its references are not sealed).
fn shredded_subject(value: &serde_json::Value, key: &PseudonymKey) -> tables::Subject {
    let hub = value["hub_id"].as_str().unwrap_or_default().to_string();
    let payload = &value["payload"];
    if let Some(reference) = payload["ambassador_ref"].as_str() {
        return tables::Subject::Ambassador {
            pseudonym: tables::ambassador_pseudonym(key, &hub, reference),
        };
    }
    match payload["participant_ref"].as_str() {
        Some(reference) => tables::Subject::Referenced {
            hub_id: hub,
            reference: reference.to_string(),
        },
        None => tables::Subject::Nobody,
    }
}
