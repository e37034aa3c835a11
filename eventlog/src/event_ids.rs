//! The event ids a log has stored, which make appends idempotent.
//!
//! On disk they are an append-only table (sequence number → id), written in the same
//! transaction as what it covers; in memory, a hash set loaded from it at open. Keyed
//! by the ids themselves, the table would rewrite one B-tree page per random id on
//! every commit; appended in order it writes a few pages per commit.

use std::collections::HashSet;

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use uuid::Uuid;

/// Sequence number → event id (as u128).
const SEEN_IDS: TableDefinition<u64, u128> = TableDefinition::new("seen_event_ids");

#[derive(Debug, Default)]
pub struct SeenIds {
    ids: HashSet<u128>,
    next_sequence: u64,
}

impl SeenIds {
    /// Loads the stored ids (creating the table when missing).
    pub fn load(db: &redb::Database) -> Result<Self, redb::Error> {
        let txn = db.begin_write()?;
        txn.open_table(SEEN_IDS)?;
        txn.commit()?;
        let txn = db.begin_read()?;
        let table = txn.open_table(SEEN_IDS)?;
        let mut ids = HashSet::with_capacity(table.len()? as usize);
        let mut next_sequence = 0;
        for entry in table.iter()? {
            let (sequence, id) = entry?;
            ids.insert(id.value());
            next_sequence = sequence.value() + 1;
        }
        Ok(Self { ids, next_sequence })
    }

    pub fn contains(&self, id: Uuid) -> bool {
        self.ids.contains(&id.as_u128())
    }

    /// Records ids in the caller's transaction. Call [`SeenIds::forget`] with the same
    /// ids if that transaction does not commit.
    pub fn record(
        &mut self,
        txn: &WriteTransaction,
        ids: &[Uuid],
    ) -> Result<(), redb::Error> {
        let mut table = txn.open_table(SEEN_IDS)?;
        for id in ids {
            table.insert(self.next_sequence, id.as_u128())?;
            self.next_sequence += 1;
            self.ids.insert(id.as_u128());
        }
        Ok(())
    }

    /// Undoes [`SeenIds::record`] after its transaction failed to commit.
    pub fn forget(&mut self, ids: &[Uuid]) {
        for id in ids {
            self.ids.remove(&id.as_u128());
        }
        self.next_sequence -= ids.len() as u64;
    }
}
