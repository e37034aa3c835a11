//! The event ids a log has stored, which make appends idempotent.
//!
//! On disk they are an append-only table of blocks (block number → the ids of one
//! commit), written in the same transaction as what it covers; in memory, a hash set
//! loaded from it at open. Keyed by the ids themselves, the table would rewrite one
//! B-tree page per random id on every commit; one block per commit writes a few.

use std::collections::HashSet;

use redb::{
    ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition, WriteTransaction,
};
use uuid::Uuid;

/// Block number → the ids of one commit, 16 big-endian bytes each.
const SEEN_ID_BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("seen_event_id_blocks");
/// Sequence number → event id: one entry per id, as written before the blocks.
const SEEN_IDS: TableDefinition<u64, u128> = TableDefinition::new("seen_event_ids");

const ID_BYTES: usize = 16;

#[derive(Debug, Default)]
pub struct SeenIds {
    ids: HashSet<u128>,
    next_block: u64,
}

impl SeenIds {
    /// Loads the stored ids (creating the tables when missing).
    pub fn load(db: &redb::Database) -> Result<Self, redb::Error> {
        let txn = db.begin_write()?;
        txn.open_table(SEEN_ID_BLOCKS)?;
        txn.open_table(SEEN_IDS)?;
        txn.commit()?;
        let txn = db.begin_read()?;
        let one_by_one = txn.open_table(SEEN_IDS)?;
        let blocks = txn.open_table(SEEN_ID_BLOCKS)?;
        let mut ids = HashSet::with_capacity(one_by_one.len()? as usize);
        for entry in one_by_one.iter()? {
            ids.insert(entry?.1.value());
        }
        let mut next_block = 0;
        for entry in blocks.iter()? {
            let (block, bytes) = entry?;
            let bytes = bytes.value();
            ids.reserve(bytes.len() / ID_BYTES);
            for id in bytes.chunks_exact(ID_BYTES) {
                let mut be = [0; ID_BYTES];
                be.copy_from_slice(id);
                ids.insert(u128::from_be_bytes(be));
            }
            next_block = block.value() + 1;
        }
        Ok(Self { ids, next_block })
    }

    pub fn contains(&self, id: Uuid) -> bool {
        self.ids.contains(&id.as_u128())
    }

    /// Records ids in the caller's transaction. Call [`SeenIds::forget`] with the same
    /// ids if that transaction does not commit.
    pub fn record(&mut self, txn: &WriteTransaction, ids: &[Uuid]) -> Result<(), redb::Error> {
        if ids.is_empty() {
            return Ok(());
        }
        let bytes: Vec<u8> = ids
            .iter()
            .flat_map(|id| id.as_u128().to_be_bytes())
            .collect();
        txn.open_table(SEEN_ID_BLOCKS)?
            .insert(self.next_block, bytes.as_slice())?;
        self.next_block += 1;
        self.ids.extend(ids.iter().map(Uuid::as_u128));
        Ok(())
    }

    /// Undoes [`SeenIds::record`] after its transaction failed to commit.
    pub fn forget(&mut self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.ids.remove(&id.as_u128());
        }
        self.next_block -= 1;
    }
}
