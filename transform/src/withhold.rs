//! The consent stage of a round: once its rows are made and relinked, the rows of
//! people without research consent leave them, and what the KPIs count of them goes
//! to the state (see [`crate::consent`]).

use std::sync::Arc;

use deltalake::arrow::array::{Array, ArrayRef, AsArray, BooleanArray, RecordBatch, StringArray};
use deltalake::arrow::compute::{cast, filter_record_batch};
use deltalake::arrow::datatypes::{DataType, Int64Type};
use techmon_lake::tables::EVENT_TABLES;

use crate::consent::{
    self, Attended, PersonRows, Profile, RowUse, Said, Statement, WithheldPerson,
};
use crate::state::{QuickMap, State};
use crate::{RoundWork, TransformError};

/// A batch's column by name, as text.
fn text_column(
    batch: &RecordBatch,
    name: &'static str,
    table: &'static str,
) -> Result<ArrayRef, TransformError> {
    column_as(batch, name, table, &DataType::Utf8)
}

/// A batch's column by name, as whole numbers.
fn number_column(
    batch: &RecordBatch,
    name: &'static str,
    table: &'static str,
) -> Result<ArrayRef, TransformError> {
    column_as(batch, name, table, &DataType::Int64)
}

fn column_as(
    batch: &RecordBatch,
    name: &'static str,
    table: &'static str,
    as_type: &DataType,
) -> Result<ArrayRef, TransformError> {
    let rows = |source| TransformError::Rows { table, source };
    let index = batch.schema().index_of(name).map_err(rows)?;
    cast(batch.column(index), as_type).map_err(rows)
}

/// A text cell, if not null.
fn text_at(column: &ArrayRef, row: usize) -> Option<String> {
    let column = column.as_string::<i32>();
    column.is_valid(row).then(|| column.value(row).to_string())
}

/// A number cell, if not null.
fn number_at(column: &ArrayRef, row: usize) -> Option<i64> {
    let column = column.as_primitive::<Int64Type>();
    column.is_valid(row).then(|| column.value(row))
}

/// The round's view of consent: the state's, and what this round read.
struct Round<'s> {
    state: &'s State,
    /// The latest statement this round read per pseudonym.
    statements: QuickMap<String, Statement>,
    /// People withheld (or counted) in this round, as they now stand.
    people: QuickMap<String, WithheldPerson>,
}

impl Round<'_> {
    fn consent(&self, pseudonym: &str) -> Option<consent::Consent> {
        let round = self.statements.get(pseudonym).copied();
        let state = self.state.consent(pseudonym);
        round
            .map(|r| r.latest(state))
            .or(state)
            .map(Statement::consent)
    }

    /// The person as the round leaves them, if ever withheld.
    fn withheld(&mut self, pseudonym: &str) -> Option<&mut WithheldPerson> {
        if !self.people.contains_key(pseudonym) {
            let known = self.state.withheld(pseudonym)?.clone();
            self.people.insert(pseudonym.to_string(), known);
        }
        self.people.get_mut(pseudonym)
    }

    fn withhold(&mut self, pseudonym: &str) -> &mut WithheldPerson {
        if self.withheld(pseudonym).is_none() {
            self.people
                .insert(pseudonym.to_string(), WithheldPerson::default());
        }
        self.people.get_mut(pseudonym).expect("inserted just above")
    }
}

/// Applies the consent rule to the round's rows. Returns whether the counts of people
/// without consent changed.
pub(crate) fn withhold_rows(state: &State, work: &mut RoundWork) -> Result<bool, TransformError> {
    let mut round = Round {
        state,
        statements: QuickMap::default(),
        people: QuickMap::default(),
    };
    let index = |name: &str| EVENT_TABLES.iter().position(|t| t.name == name);
    let (Some(participants), Some(activities)) = (index("participants"), index("activities"))
    else {
        return Err(TransformError::UnknownTable("participants"));
    };
    // Each registration's word, the latest per person.
    for batch in &work.rows[participants] {
        let table = "participants";
        let persons = text_column(batch, "participant_pseudonym", table)?;
        let consents = number_column(batch, "consent_research", table)?;
        let at = number_column(batch, "occurred_at", table)?;
        let partitions = number_column(batch, "log_partition", table)?;
        let offsets = number_column(batch, "log_offset", table)?;
        for row in 0..batch.num_rows() {
            let Some(person) = text_at(&persons, row) else {
                continue;
            };
            let statement = Statement {
                research: number_at(&consents, row) == Some(1),
                said: Said {
                    at_micros: number_at(&at, row).unwrap_or_default(),
                    partition: number_at(&partitions, row).unwrap_or_default() as u32,
                    offset: number_at(&offsets, row).unwrap_or_default() as u64,
                },
            };
            let latest = statement.latest(round.statements.get(&person).copied());
            round.statements.insert(person, latest);
        }
    }
    // Consent taken back: the rows already in the lake go too (its own, and those its
    // reference had before the registration).
    let mut statements: Vec<(String, Statement)> = Vec::new();
    for (person, statement) in &round.statements {
        let before = state.consent(person);
        let latest = statement.latest(before);
        if Some(latest) == before {
            continue;
        }
        statements.push((person.clone(), latest));
        if latest.consent() == consent::Consent::Refused {
            let mut lake_rows: Vec<String> = state
                .pending_relinks()
                .into_iter()
                .chain(work.changes.relinks.iter().cloned())
                .filter(|(_, new)| new == person)
                .map(|(old, _)| old)
                .collect();
            if before.is_some_and(|b| b.research) {
                lake_rows.push(person.clone());
            }
            if !lake_rows.is_empty() {
                lake_rows.push(person.clone());
                lake_rows.sort();
                lake_rows.dedup();
                work.changes
                    .pending_withholds
                    .push((person.clone(), lake_rows));
            }
        }
    }
    statements.sort_by(|a, b| a.0.cmp(&b.0));
    work.changes.consent = statements;
    // The rows.
    for (table_index, table) in EVENT_TABLES.iter().enumerate() {
        let Some(rows) = PersonRows::of(table.name) else {
            continue;
        };
        let Some((column, column_name)) = table.person_column() else {
            continue;
        };
        let name = table.name;
        for batch in work.rows[table_index].iter_mut() {
            let persons = text_column(batch, column_name, name)?;
            let persons = persons.as_string::<i32>();
            let uses: Vec<RowUse> = (0..persons.len())
                .map(|i| match persons.is_valid(i).then(|| persons.value(i)) {
                    Some(p) if !p.is_empty() => consent::row_use(rows, round.consent(p)),
                    _ => RowUse::Research,
                })
                .collect();
            if rows == PersonRows::Participants || rows == PersonRows::Attendances {
                note(&mut round, batch, rows, persons, &uses, name)?;
            }
            if uses.iter().all(|u| *u == RowUse::Research) {
                continue;
            }
            *batch = apply(batch, column, &uses, name)?;
        }
    }
    // Docentprofessionalisering: which activities make a teacher count.
    let mut training = Vec::new();
    for batch in &work.rows[activities] {
        let table = "activities";
        let hubs = text_column(batch, "hub_id", table)?;
        let ids = text_column(batch, "activity_id", table)?;
        let kinds = text_column(batch, "activity_type", table)?;
        let kinds = kinds.as_string::<i32>();
        for row in 0..batch.num_rows() {
            if !kinds.is_valid(row) || kinds.value(row) != "docentprofessionalisering" {
                continue;
            }
            if let (Some(hub), Some(id)) = (text_at(&hubs, row), text_at(&ids, row)) {
                let key = (hub, id);
                if !state.training().contains(&key) && !training.contains(&key) {
                    training.push(key);
                }
            }
        }
    }
    // A withdrawal erases: the person is not counted either.
    for pseudonym in &work.changes.withdrawn {
        if round.people.remove(pseudonym).is_some() || state.withheld(pseudonym).is_some() {
            work.changes.unwithheld.push(pseudonym.clone());
        }
    }
    let changed = !round.people.is_empty()
        || !work.changes.unwithheld.is_empty()
        || (!training.is_empty() && state.withheld_people().next().is_some());
    work.changes.training = training;
    let mut people: Vec<(String, WithheldPerson)> = round.people.into_iter().collect();
    people.sort_by(|a, b| a.0.cmp(&b.0));
    work.changes.withheld = people;
    Ok(changed)
}

/// Notes what the KPIs count of the registrations and attendances of people ever
/// withheld: withheld rows as withheld, research rows of such people as research.
fn note(
    round: &mut Round<'_>,
    batch: &RecordBatch,
    rows: PersonRows,
    persons: &StringArray,
    uses: &[RowUse],
    table: &'static str,
) -> Result<(), TransformError> {
    // Only the rows of people withheld now or before.
    let noted: Vec<usize> = (0..persons.len())
        .filter(|&row| {
            persons.is_valid(row)
                && (uses[row] == RowUse::Withheld
                    || round.people.contains_key(persons.value(row))
                    || round.state.withheld(persons.value(row)).is_some())
        })
        .collect();
    if noted.is_empty() {
        return Ok(());
    }
    match rows {
        PersonRows::Participants => {
            let sectors = text_column(batch, "sector", table)?;
            let groepen = number_column(batch, "groep", table)?;
            let roles = text_column(batch, "role", table)?;
            for row in noted {
                let profile = Profile {
                    sector: text_at(&sectors, row),
                    groep: number_at(&groepen, row),
                    role: text_at(&roles, row),
                };
                let person = persons.value(row);
                let entry = if uses[row] == RowUse::Withheld {
                    Some(round.withhold(person))
                } else {
                    round.withheld(person)
                };
                if let Some(entry) = entry {
                    entry.profile.merge(&profile);
                }
            }
        }
        PersonRows::Attendances => {
            let hubs = text_column(batch, "hub_id", table)?;
            let years = text_column(batch, "school_year", table)?;
            let activities = text_column(batch, "activity_id", table)?;
            let roles = text_column(batch, "role", table)?;
            for row in noted {
                let attended = Attended {
                    hub_id: text_at(&hubs, row).unwrap_or_default(),
                    school_year: text_at(&years, row).unwrap_or_default(),
                    activity_id: text_at(&activities, row).unwrap_or_default(),
                    role: text_at(&roles, row),
                };
                let person = persons.value(row);
                if uses[row] == RowUse::Withheld {
                    round.withhold(person).withheld.insert(attended);
                } else if let Some(entry) = round.withheld(person) {
                    entry.research.insert(attended);
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// The batch with each row as `uses` says: kept, kept without its person (the person
/// column and `pseudonym_key_id` null), or left out.
fn apply(
    batch: &RecordBatch,
    person_column: usize,
    uses: &[RowUse],
    table: &'static str,
) -> Result<RecordBatch, TransformError> {
    let rows = |source| TransformError::Rows { table, source };
    let mut columns: Vec<ArrayRef> = batch.columns().to_vec();
    if uses.contains(&RowUse::WithoutPerson) {
        let key_column = batch.schema().index_of("pseudonym_key_id").map_err(rows)?;
        for index in [person_column, key_column] {
            let text = cast(&columns[index], &DataType::Utf8).map_err(rows)?;
            let text = text.as_string::<i32>();
            let kept: StringArray = (0..text.len())
                .map(|i| {
                    (uses[i] != RowUse::WithoutPerson && text.is_valid(i)).then(|| text.value(i))
                })
                .collect();
            columns[index] =
                cast(&(Arc::new(kept) as ArrayRef), columns[index].data_type()).map_err(rows)?;
        }
    }
    let batch = RecordBatch::try_new(batch.schema(), columns).map_err(rows)?;
    let keep: BooleanArray = uses
        .iter()
        .map(|u| Some(matches!(u, RowUse::Research | RowUse::WithoutPerson)))
        .collect();
    if keep.true_count() == batch.num_rows() {
        return Ok(batch);
    }
    filter_record_batch(&batch, &keep).map_err(rows)
}
