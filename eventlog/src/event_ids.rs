//! The event ids a log has stored, which make appends idempotent.
//!
//! On disk they are an append-only table of blocks (block number → the ids of one
//! commit), written in the same transaction as what it covers; in memory, a set
//! loaded from it at open. Keyed by the ids themselves, the table would rewrite one
//! B-tree page per random id on every commit; one block per commit writes a few.
//!
//! The set in memory is many small sorted vectors, one per shard of ids: 16 bytes an
//! id and a little slack (a hash set takes more, and twice that for a moment while
//! it grows), and each shard grows on its own.

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use uuid::Uuid;

/// Block number → the ids of one commit, 16 big-endian bytes each.
const SEEN_ID_BLOCKS: TableDefinition<u64, &[u8]> = TableDefinition::new("seen_event_id_blocks");
/// Sequence number → event id: one entry per id, as databases made before the blocks
/// hold them; moved into a block at the first load, and the table dropped (so its
/// presence is the old layout's mark).
const SEEN_IDS: TableDefinition<u64, u128> = TableDefinition::new("seen_event_ids");

const ID_BYTES: usize = 16;

/// Shards of the set in memory: about 40 ids each at ten million, so that inserting
/// one moves a few hundred bytes and a lookup touches a few cache lines.
const SHARD_BITS: u32 = 18;
const SHARDS: usize = 1 << SHARD_BITS;

#[derive(Debug, Clone)]
pub struct SeenIds {
    /// Each sorted.
    shards: Vec<Vec<u128>>,
    next_block: u64,
}

/// The shard of an id, by a mix of all its bits: ids need not be random (a
/// time-ordered UUID shares its leading bits with its neighbours).
fn shard(id: u128) -> usize {
    let folded = (id as u64) ^ ((id >> 64) as u64);
    (folded.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> (64 - SHARD_BITS)) as usize
}

/// Ids on either side of where an id would sit in an even spread, searched first.
const GUESS_SPAN: usize = 8;

/// [`slice::binary_search`] in a sorted shard. Random ids (UUID v4) are spread evenly
/// over a shard's values, so an id is near the place its leading bits predict: a
/// search there touches a cache line or two, where one over the whole shard waits on
/// several in turn, a visible part of the transform's time with many ids.
/// Ids that are not random are found by the search over the whole shard.
fn search(ids: &[u128], id: u128) -> Result<usize, usize> {
    let guess = (((id >> 64) * ids.len() as u128) >> 64) as usize;
    let from = guess.saturating_sub(GUESS_SPAN);
    let to = (guess + GUESS_SPAN).min(ids.len());
    let after_start = from == 0 || ids[from - 1] < id;
    let before_end = to == ids.len() || id < ids[to];
    if after_start && before_end {
        return match ids[from..to].binary_search(&id) {
            Ok(at) => Ok(from + at),
            Err(at) => Err(from + at),
        };
    }
    ids.binary_search(&id)
}

impl Default for SeenIds {
    fn default() -> Self {
        Self {
            shards: vec![Vec::new(); SHARDS],
            next_block: 0,
        }
    }
}

/// Creates the blocks' table when missing; in a database of the old layout, moves the
/// ids stored one per entry into a block after the others (a set: order does not
/// matter) and drops their table.
fn move_ids_into_a_block(txn: &WriteTransaction) -> Result<(), redb::Error> {
    let mut blocks = txn.open_table(SEEN_ID_BLOCKS)?;
    let old_layout = txn
        .list_tables()?
        .any(|t| redb::TableHandle::name(&t) == redb::TableHandle::name(&SEEN_IDS));
    if !old_layout {
        return Ok(());
    }
    let ids = txn
        .open_table(SEEN_IDS)?
        .iter()?
        .map(|entry| Ok(entry?.1.value()))
        .collect::<Result<Vec<u128>, redb::Error>>()?;
    if !ids.is_empty() {
        let next = blocks.last()?.map_or(0, |(n, _)| n.value() + 1);
        let bytes: Vec<u8> = ids.iter().flat_map(|id| id.to_be_bytes()).collect();
        blocks.insert(next, bytes.as_slice())?;
    }
    drop(blocks);
    txn.delete_table(SEEN_IDS)?;
    Ok(())
}

impl SeenIds {
    /// Loads the stored ids (creating the tables when missing).
    pub fn load(db: &redb::Database) -> Result<Self, redb::Error> {
        let txn = db.begin_write()?;
        move_ids_into_a_block(&txn)?;
        txn.commit()?;
        let txn = db.begin_read()?;
        let blocks = txn.open_table(SEEN_ID_BLOCKS)?;
        let mut seen = Self::default();
        // Gathered unsorted, then each shard sorted once.
        for entry in blocks.iter()? {
            let (block, bytes) = entry?;
            for id in bytes.value().chunks_exact(ID_BYTES) {
                let mut be = [0; ID_BYTES];
                be.copy_from_slice(id);
                let id = u128::from_be_bytes(be);
                seen.shards[shard(id)].push(id);
            }
            seen.next_block = block.value() + 1;
        }
        for ids in &mut seen.shards {
            ids.sort_unstable();
            ids.dedup();
            ids.shrink_to_fit();
        }
        Ok(seen)
    }

    pub fn contains(&self, id: Uuid) -> bool {
        let id = id.as_u128();
        search(&self.shards[shard(id)], id).is_ok()
    }

    fn insert(&mut self, id: u128) {
        let ids = &mut self.shards[shard(id)];
        if let Err(at) = search(ids, id) {
            if ids.len() == ids.capacity() {
                // Grow by a quarter, not double: the slack is memory held for nothing.
                ids.reserve_exact(ids.len() / 4 + 4);
            }
            ids.insert(at, id);
        }
    }

    fn remove(&mut self, id: u128) {
        let ids = &mut self.shards[shard(id)];
        if let Ok(at) = search(ids, id) {
            ids.remove(at);
        }
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
        for id in ids {
            self.insert(id.as_u128());
        }
        Ok(())
    }

    /// Undoes [`SeenIds::record`] after its transaction failed to commit.
    pub fn forget(&mut self, ids: &[Uuid]) {
        if ids.is_empty() {
            return;
        }
        for id in ids {
            self.remove(id.as_u128());
        }
        self.next_block -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn search_agrees_with_a_binary_search_over_the_whole_shard() {
        let random = |n: usize| -> Vec<u128> { (0..n).map(|_| rand::random()).collect() };
        // Evenly spread, clustered (time-ordered ids), and both at once.
        let clustered = |n: u128| -> Vec<u128> { (0..n).map(|i| (7 << 100) + i * 3).collect() };
        let mut shards = vec![Vec::new(), vec![5], random(40), random(1000), clustered(40)];
        shards.push([random(30), clustered(30)].concat());
        for mut ids in shards {
            ids.sort_unstable();
            ids.dedup();
            let near = ids
                .iter()
                .flat_map(|id| [id.wrapping_sub(1), *id, id.wrapping_add(1)]);
            for id in near.chain(random(200)).chain([0, u128::MAX]) {
                assert_eq!(search(&ids, id), ids.binary_search(&id), "{id} in {ids:?}");
            }
        }
    }

    #[test]
    fn holds_what_was_recorded_across_reopening_and_forgets_a_failed_commit() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let db = redb::Database::create(dir.path().join("ids.redb")).expect("database");
        let mut seen = SeenIds::load(&db).expect("load");
        // Random ids and time-ordered ones (which share their leading bits).
        let random: Vec<Uuid> = (0..5000).map(|_| Uuid::new_v4()).collect();
        let ordered: Vec<Uuid> = (0..5000u128)
            .map(|n| Uuid::from_u128((7 << 100) + n))
            .collect();
        for ids in [&random, &ordered] {
            let txn = db.begin_write().expect("transaction");
            seen.record(&txn, ids).expect("record");
            txn.commit().expect("commit");
        }
        let failed: Vec<Uuid> = (0..100).map(|_| Uuid::new_v4()).collect();
        {
            let txn = db.begin_write().expect("transaction");
            seen.record(&txn, &failed).expect("record");
            txn.abort().expect("abort");
        }
        seen.forget(&failed);
        let reopened = SeenIds::load(&db).expect("load");
        for set in [&seen, &reopened] {
            assert!(random.iter().chain(&ordered).all(|id| set.contains(*id)));
            assert!(!failed.iter().any(|id| set.contains(*id)));
            assert!(!set.contains(Uuid::from_u128((7 << 100) + 5000)));
        }
        assert_eq!(reopened.next_block, 2);
        assert!(seen.shards.iter().all(|ids| ids.is_sorted()));
    }

    #[test]
    fn ids_stored_one_by_one_move_into_a_block_after_the_others() {
        let dir = tempfile::tempdir().expect("temporary folder");
        let db = redb::Database::create(dir.path().join("ids.redb")).expect("database");
        let mut seen = SeenIds::load(&db).expect("load");
        let in_a_block = Uuid::new_v4();
        let txn = db.begin_write().expect("transaction");
        seen.record(&txn, &[in_a_block]).expect("record");
        // As a database made before the blocks held them (beside a later block).
        let old: Vec<Uuid> = (0..3).map(|_| Uuid::new_v4()).collect();
        {
            let mut one_by_one = txn.open_table(SEEN_IDS).expect("table");
            for (n, id) in old.iter().enumerate() {
                one_by_one.insert(n as u64, id.as_u128()).expect("insert");
            }
        }
        txn.commit().expect("commit");
        for _ in 0..2 {
            let reopened = SeenIds::load(&db).expect("load");
            assert!(
                old.iter()
                    .chain([&in_a_block])
                    .all(|id| reopened.contains(*id))
            );
            assert_eq!(reopened.next_block, 2, "the moved ids are block 1");
            let txn = db.begin_read().expect("read");
            assert!(
                txn.open_table(SEEN_IDS).is_err(),
                "the per-id table is gone"
            );
        }
    }
}
