//! The latest version of each row of a plain sheet (a row without its own event id,
//! known by its kind's natural key; see `techmon_schemas::sheet`). The same row sent
//! again with other values is a correction: a new event that names the one it
//! replaces. Which event that is, the log knows: it keeps, per row, the event id and
//! the content digest of its latest version, written in the same transaction as the
//! records, and stores a new version only over the one it was made to replace, so two
//! requests correcting one row at the same moment never both replace the same event.
//! The Kafka backend writes the index after the broker's acknowledgement: a crash in
//! between leaves the index one version behind the topic, and the next correction of
//! that row names the version before (the lake then keeps both versions of it).

use redb::{ReadableDatabase, ReadableTable, TableDefinition, WriteTransaction};
use uuid::Uuid;

/// Row key → (event id, content digest) of the row's latest version.
const LATEST_VERSIONS: TableDefinition<u128, (u128, u128)> =
    TableDefinition::new("latest_row_versions");

/// The version of a row an appended record is: which row, what it says, and which
/// version it replaces (`None` for the row's first).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RowVersion {
    /// The row's key: derived from the hub, the kind and the natural key's values.
    pub row: Uuid,
    /// A digest of what the row says (all but its ids and the time it was sent).
    pub digest: Uuid,
    pub replaces: Option<Uuid>,
}

/// A row's latest stored version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatestVersion {
    pub event_id: Uuid,
    pub digest: Uuid,
}

/// The latest versions of `rows`, in their order.
pub(crate) fn latest(
    db: &redb::Database,
    rows: &[Uuid],
) -> Result<Vec<Option<LatestVersion>>, redb::Error> {
    let txn = db.begin_read()?;
    let table = match txn.open_table(LATEST_VERSIONS) {
        Ok(table) => table,
        Err(redb::TableError::TableDoesNotExist(_)) => return Ok(vec![None; rows.len()]),
        Err(e) => return Err(e.into()),
    };
    rows.iter()
        .map(|row| Ok(table.get(row.as_u128())?.map(|v| latest_version(v.value()))))
        .collect()
}

fn latest_version((event_id, digest): (u128, u128)) -> LatestVersion {
    LatestVersion {
        event_id: Uuid::from_u128(event_id),
        digest: Uuid::from_u128(digest),
    }
}

/// The versions as a write transaction sees them, its own changes included.
pub(crate) struct Versions<'txn> {
    table: redb::Table<'txn, u128, (u128, u128)>,
}

impl<'txn> Versions<'txn> {
    pub(crate) fn open(txn: &'txn WriteTransaction) -> Result<Self, redb::Error> {
        Ok(Self {
            table: txn.open_table(LATEST_VERSIONS)?,
        })
    }

    /// Whether `version` was made over the row's latest version: a record made over
    /// an older one is outdated (another request corrected the row meanwhile).
    pub(crate) fn is_current(&self, version: &RowVersion) -> Result<bool, redb::Error> {
        let latest = self.table.get(version.row.as_u128())?;
        Ok(latest.map(|v| Uuid::from_u128(v.value().0)) == version.replaces)
    }

    /// Makes `event_id` the row's latest version.
    pub(crate) fn store(
        &mut self,
        event_id: Uuid,
        version: &RowVersion,
    ) -> Result<(), redb::Error> {
        self.table.insert(
            version.row.as_u128(),
            (event_id.as_u128(), version.digest.as_u128()),
        )?;
        Ok(())
    }
}
