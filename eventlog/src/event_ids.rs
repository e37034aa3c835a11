//! The event-id index that makes appends idempotent: event id → where it was stored.
//! The embedded log keeps it inside its own database (same transaction as the record);
//! the Kafka backend keeps it in a database of its own beside the producer.

use redb::{ReadableDatabase, TableDefinition, WriteTransaction};
use uuid::Uuid;

/// event id (as u128) → (partition, offset).
pub(crate) const EVENT_IDS: TableDefinition<u128, (u32, u64)> = TableDefinition::new("event_ids");

/// Where each id was stored before, if it was.
pub(crate) fn lookup(
    db: &redb::Database,
    ids: &[Uuid],
) -> Result<Vec<Option<(u32, u64)>>, redb::Error> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(EVENT_IDS) {
        Ok(t) => t,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; ids.len()]),
        Err(e) => return Err(e.into()),
    };
    ids.iter()
        .map(|id| Ok(table.get(id.as_u128())?.map(|v| v.value())))
        .collect()
}

/// Records ids as stored at the given positions, in the caller's transaction.
pub(crate) fn record(
    txn: &WriteTransaction,
    stored: &[(Uuid, u32, u64)],
) -> Result<(), redb::Error> {
    let mut table = txn.open_table(EVENT_IDS)?;
    for (id, partition, offset) in stored {
        table.insert(id.as_u128(), (*partition, *offset))?;
    }
    Ok(())
}
