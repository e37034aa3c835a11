//! The embedded event log: one `redb` database (ACID, crash-safe, fsync on commit).
//!
//! All appends go through one writer thread that gathers whatever requests are
//! waiting into a single write transaction (group commit): one fsync covers many
//! HTTP batches, and no request is answered before its transaction is durable.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc;
use std::time::{SystemTime, UNIX_EPOCH};

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde::Deserialize;
use tokio::sync::oneshot;
use uuid::Uuid;

use crate::event_ids::SeenIds;
use crate::row_versions::{LatestVersion, Versions};
use crate::{
    Appended, EventLog, LogError, LogRecord, StoredRecord, check_events, check_partition,
    partition_for,
};

/// (partition, offset of its first record) → the records one commit appended to the
/// partition, in offset order ([`RecordBlock`]). With a record per entry, reading
/// them (a B-tree leaf per few records, each copied from the file into a fresh page)
/// took a large share of a replay's CPU.
const RECORD_BLOCKS: TableDefinition<(u32, u64), &[u8]> = TableDefinition::new("record_blocks");
/// (partition, offset) → (key, event id, stored at ms, payload): one entry per
/// record, as logs made before the blocks (format 1) hold them; moved into blocks
/// when such a log is first opened.
const RECORDS: TableDefinition<(u32, u64), StoredValue> = TableDefinition::new("records");
type StoredValue = (&'static str, u128, i64, &'static [u8]);
/// The layout of the log's tables, in `META` under `format`: 2 stores records in
/// blocks only. A log without it is of format 1.
const FORMAT: u64 = 2;
/// A block is closed before it would pass this many bytes (a record this long or
/// longer is a block of its own). redb stores a value in a page of a power of two
/// bytes from 4 KiB, beside its key and a header: a block that with them just passes
/// a power of two half fills a page twice that size, which every read copies and
/// zeroes in full. A read that starts inside a block passes over the records before
/// its start.
const BLOCK_BYTES: usize = 64 * 1024 - 512;
/// partition → next offset.
const HEADS: TableDefinition<u32, u64> = TableDefinition::new("heads");
/// (consumer group, partition) → committed position.
const POSITIONS: TableDefinition<(&str, u32), u64> = TableDefinition::new("positions");
/// Settings fixed when the log was created.
const META: TableDefinition<&str, u64> = TableDefinition::new("meta");

/// Requests gathered into one write transaction, at most.
const MAX_RECORDS_PER_COMMIT: usize = 100_000;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EmbeddedConfig {
    /// The database file.
    pub path: PathBuf,
    /// Page cache of the database, in MiB.
    pub cache_mib: usize,
}

type AppendReply = oneshot::Sender<Result<Vec<Appended>, LogError>>;

pub struct EmbeddedLog {
    db: Arc<Database>,
    path: PathBuf,
    partitions: u32,
    /// `None` only while dropping.
    appends: Option<mpsc::Sender<(Vec<LogRecord>, AppendReply)>>,
    writer: Option<std::thread::JoinHandle<()>>,
    /// How long records are kept ([`EventLog::trim`] deletes older ones).
    retention: Option<std::time::Duration>,
}

impl Drop for EmbeddedLog {
    /// Stops the writer and waits for it, so the database is closed when this returns
    /// and can be opened again at once.
    fn drop(&mut self) {
        self.appends.take();
        if let Some(writer) = self.writer.take() {
            let _ = writer.join();
        }
    }
}

impl EmbeddedLog {
    /// Opens (or creates) the log at `path` with `partitions` partitions. The count is
    /// fixed at creation: a different count later is an error, since keys would move.
    pub fn open(path: &Path, partitions: u32, cache_mib: usize) -> Result<Self, LogError> {
        let err = |e: redb::Error| LogError::Embedded {
            path: path.to_path_buf(),
            source: Box::new(e),
        };
        let db = crate::files::open_or_create_database(path, Some(cache_mib * 1024 * 1024))
            .map_err(err)?;
        let txn = db.begin_write().map_err(|e| err(e.into()))?;
        {
            let mut meta = txn.open_table(META).map_err(|e| err(e.into()))?;
            let found = meta
                .get("partitions")
                .map_err(|e| err(e.into()))?
                .map(|v| v.value());
            match found {
                Some(found) if found != u64::from(partitions) => {
                    return Err(LogError::PartitionCountChanged {
                        path: path.to_path_buf(),
                        found: found as u32,
                        configured: partitions,
                    });
                }
                Some(_) => {}
                None => {
                    meta.insert("partitions", u64::from(partitions))
                        .map_err(|e| err(e.into()))?;
                }
            }
            if meta.get("format").map_err(|e| err(e.into()))?.is_none() {
                let moved = move_records_into_blocks(&txn).map_err(err)?;
                if moved > 0 {
                    tracing::info!(path = %path.display(), records = moved, "event log moved to format {FORMAT}");
                }
                meta.insert("format", FORMAT).map_err(|e| err(e.into()))?;
            }
            txn.open_table(RECORD_BLOCKS).map_err(|e| err(e.into()))?;
            txn.open_table(HEADS).map_err(|e| err(e.into()))?;
            txn.open_table(POSITIONS).map_err(|e| err(e.into()))?;
        }
        txn.commit().map_err(|e| err(e.into()))?;

        let db = Arc::new(db);
        let (appends, requests) = mpsc::channel();
        let writer = Writer {
            db: db.clone(),
            path: path.to_path_buf(),
            partitions,
            seen: None,
        };
        let writer = std::thread::Builder::new()
            .name("eventlog-writer".into())
            .spawn(move || writer.run(requests))
            .map_err(|e| err(redb::StorageError::Io(e).into()))?;
        Ok(Self {
            db,
            path: path.to_path_buf(),
            partitions,
            appends: Some(appends),
            writer: Some(writer),
            retention: None,
        })
    }

    /// Keeps records for `retention` (see [`EventLog::trim`]); `None`, for ever.
    pub fn with_retention(mut self, retention: Option<std::time::Duration>) -> Self {
        self.retention = retention;
        self
    }

    fn error(&self, e: impl Into<redb::Error>) -> LogError {
        LogError::Embedded {
            path: self.path.clone(),
            source: Box::new(e.into()),
        }
    }

    /// Runs a closure on the database on a blocking thread.
    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce(&Database) -> Result<T, redb::Error> + Send + 'static,
    ) -> Result<T, LogError> {
        let db = self.db.clone();
        tokio::task::spawn_blocking(move || f(&db))
            .await
            .map_err(|source| LogError::Blocking {
                backend: "embedded",
                source,
            })?
            .map_err(|e| self.error(e))
    }
}

struct Writer {
    db: Arc<Database>,
    path: PathBuf,
    partitions: u32,
    /// Loaded by the first append: a process that only reads the log (the
    /// transform, a replay) does not hold every id ever stored.
    seen: Option<SeenIds>,
}

impl Writer {
    fn run(mut self, requests: mpsc::Receiver<(Vec<LogRecord>, AppendReply)>) {
        while let Ok(first) = requests.recv() {
            let mut group = vec![first];
            let mut records = group[0].0.len();
            while records < MAX_RECORDS_PER_COMMIT {
                match requests.try_recv() {
                    Ok(next) => {
                        records += next.0.len();
                        group.push(next);
                    }
                    Err(_) => break,
                }
            }
            match self.commit(&group) {
                Ok(results) => {
                    for ((_, reply), result) in group.into_iter().zip(results) {
                        let _ = reply.send(Ok(result));
                    }
                }
                Err(e) => {
                    tracing::error!(path = %self.path.display(), error = %e, "embedded event log commit failed");
                    let source = Arc::new(e);
                    for (_, reply) in group {
                        let _ = reply.send(Err(LogError::Commit {
                            path: self.path.clone(),
                            source: Arc::clone(&source),
                        }));
                    }
                }
            }
        }
    }

    /// Stores a group of requests in one durable transaction.
    fn commit(
        &mut self,
        group: &[(Vec<LogRecord>, AppendReply)],
    ) -> Result<Vec<Vec<Appended>>, redb::Error> {
        let now_ms = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_millis() as i64);
        let seen = match &mut self.seen {
            Some(seen) => seen,
            None => self.seen.insert(SeenIds::load(&self.db)?),
        };
        let txn = self.db.begin_write()?;
        let mut results = Vec::with_capacity(group.len());
        let mut new_ids = Vec::new();
        let mut in_group = std::collections::HashSet::new();
        {
            let mut blocks = txn.open_table(RECORD_BLOCKS)?;
            let mut heads = txn.open_table(HEADS)?;
            let mut versions = Versions::open(&txn)?;
            let mut next: Vec<u64> = (0..self.partitions)
                .map(|p| Ok(heads.get(p)?.map_or(0, |v| v.value())))
                .collect::<Result<_, redb::Error>>()?;
            // Per partition: the block being filled, and the offset of its first record.
            let mut open: Vec<(RecordBlock, u64)> = next
                .iter()
                .map(|head| (RecordBlock::new(now_ms), *head))
                .collect();
            for (batch, _) in group {
                let mut outcome = Vec::with_capacity(batch.len());
                for record in batch {
                    if seen.contains(record.event_id) || in_group.contains(&record.event_id) {
                        outcome.push(Appended::Duplicate);
                        continue;
                    }
                    if let Some(version) = &record.version {
                        if !versions.is_current(version)? {
                            outcome.push(Appended::Outdated);
                            continue;
                        }
                        versions.store(record.event_id, version)?;
                    }
                    in_group.insert(record.event_id);
                    let partition = partition_for(&record.key, self.partitions);
                    let offset = next[partition as usize];
                    next[partition as usize] += 1;
                    let (block, first) = &mut open[partition as usize];
                    if !block.is_empty()
                        && block.bytes.len() + RecordBlock::size(record) > BLOCK_BYTES
                    {
                        blocks.insert((partition, *first), block.bytes.as_slice())?;
                        *block = RecordBlock::new(now_ms);
                        *first = offset;
                    }
                    block.push(record);
                    new_ids.push(record.event_id);
                    outcome.push(Appended::Stored { partition, offset });
                }
                results.push(outcome);
            }
            for (partition, (block, first)) in open.iter().enumerate() {
                if !block.is_empty() {
                    blocks.insert((partition as u32, *first), block.bytes.as_slice())?;
                }
            }
            for (partition, head) in next.iter().enumerate() {
                heads.insert(partition as u32, *head)?;
            }
        }
        let committed = seen.record(&txn, &new_ids).and_then(|()| Ok(txn.commit()?));
        if let Err(e) = committed {
            seen.forget(&new_ids);
            return Err(e);
        }
        Ok(results)
    }
}

/// Moves the records a log of format 1 holds one per entry into blocks, a block per
/// record so that each keeps its time (what the retention goes by), and drops their
/// table; returns how many moved.
fn move_records_into_blocks(txn: &redb::WriteTransaction) -> Result<u64, redb::Error> {
    let mut moved = 0;
    {
        let records = txn.open_table(RECORDS)?;
        let mut blocks = txn.open_table(RECORD_BLOCKS)?;
        for entry in records.iter()? {
            let (position, value) = entry?;
            let (key, id, timestamp_ms, payload) = value.value();
            let mut block = RecordBlock::new(timestamp_ms);
            block.push(&LogRecord {
                key: key.to_string(),
                event_id: Uuid::from_u128(id),
                payload: payload.to_vec(),
                version: None,
            });
            blocks.insert(position.value(), block.bytes.as_slice())?;
            moved += 1;
        }
    }
    txn.delete_table(RECORDS)?;
    Ok(moved)
}

/// The records one commit appended to a partition, stored as one value: the commit's
/// time (8 bytes), then per record the key's length (4 bytes) and key, the event id
/// (16) and the payload's length (4) and payload; integers little-endian.
struct RecordBlock {
    bytes: Vec<u8>,
}

/// A record read from a block: offset, key, event id, payload.
type Stored<'a> = (u64, &'a str, u128, &'a [u8]);
/// Where a block's bytes end early or hold a key that is not UTF-8: the offset of the
/// record and what is wrong.
type Corrupt = (u64, &'static str);

impl RecordBlock {
    fn new(timestamp_ms: i64) -> Self {
        Self {
            bytes: timestamp_ms.to_le_bytes().to_vec(),
        }
    }

    fn is_empty(&self) -> bool {
        self.bytes.len() == 8
    }

    /// The bytes [`RecordBlock::push`] adds.
    fn size(record: &LogRecord) -> usize {
        4 + record.key.len() + 16 + 4 + record.payload.len()
    }

    fn push(&mut self, record: &LogRecord) {
        self.bytes
            .extend_from_slice(&(record.key.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(record.key.as_bytes());
        self.bytes
            .extend_from_slice(&record.event_id.as_u128().to_le_bytes());
        self.bytes
            .extend_from_slice(&(record.payload.len() as u32).to_le_bytes());
        self.bytes.extend_from_slice(&record.payload);
    }

    /// The records of a stored block whose first record is at `offset`: each with its
    /// offset, key, event id and payload, borrowed from the block, and the block's time.
    fn records(
        bytes: &[u8],
        mut offset: u64,
    ) -> (i64, impl Iterator<Item = Result<Stored<'_>, Corrupt>>) {
        let (timestamp_ms, mut rest, mut broken) = match bytes.split_first_chunk::<8>() {
            Some((time, rest)) => (i64::from_le_bytes(*time), rest, None),
            None => (0, &[][..], Some("the block has no time")),
        };
        let records = std::iter::from_fn(move || {
            if let Some(reason) = broken.take() {
                return Some(Err((offset, reason)));
            }
            if rest.is_empty() {
                return None;
            }
            let record = match Self::take(&mut rest) {
                Ok((key, id, payload)) => Ok((offset, key, id, payload)),
                Err(reason) => {
                    rest = &[];
                    Err((offset, reason))
                }
            };
            offset += 1;
            Some(record)
        });
        (timestamp_ms, records)
    }

    /// A record read from the database, copied out of it.
    fn copied(
        partition: u32,
        (offset, key, id, payload): Stored<'_>,
        timestamp_ms: i64,
    ) -> StoredRecord {
        StoredRecord {
            partition,
            offset,
            key: key.to_string(),
            event_id: Uuid::from_u128(id),
            timestamp_ms,
            payload: payload.to_vec(),
        }
    }

    /// Reads one record off the front of `rest`.
    fn take<'a>(rest: &mut &'a [u8]) -> Result<(&'a str, u128, &'a [u8]), &'static str> {
        fn length(rest: &mut &[u8]) -> Option<usize> {
            let (n, after) = rest.split_first_chunk::<4>()?;
            *rest = after;
            Some(u32::from_le_bytes(*n) as usize)
        }
        fn bytes<'a>(rest: &mut &'a [u8], n: usize) -> Option<&'a [u8]> {
            let (taken, after) = rest.split_at_checked(n)?;
            *rest = after;
            Some(taken)
        }
        const CUT: &str = "the block ends inside a record";
        let key_length = length(rest).ok_or(CUT)?;
        let key = bytes(rest, key_length).ok_or(CUT)?;
        let key = std::str::from_utf8(key).map_err(|_| "the key is not UTF-8")?;
        let (id, after) = rest.split_first_chunk::<16>().ok_or(CUT)?;
        *rest = after;
        let payload_length = length(rest).ok_or(CUT)?;
        let payload = bytes(rest, payload_length).ok_or(CUT)?;
        Ok((key, u128::from_le_bytes(*id), payload))
    }
}

#[async_trait::async_trait]
impl EventLog for EmbeddedLog {
    fn backend(&self) -> &'static str {
        "embedded"
    }

    /// A record is stored in the same transaction as its id, and only when the id is
    /// new.
    fn holds_each_event_id_once(&self) -> bool {
        true
    }

    fn partitions(&self) -> u32 {
        self.partitions
    }

    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Appended>, LogError> {
        if records.is_empty() {
            return Ok(vec![]);
        }
        check_events(&records)?;
        let unavailable = || LogError::Unavailable {
            backend: "embedded",
            what: "the writer thread has stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.appends
            .as_ref()
            .ok_or_else(unavailable)?
            .send((records, reply))
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    async fn latest_versions(&self, rows: &[Uuid]) -> Result<Vec<Option<LatestVersion>>, LogError> {
        let rows = rows.to_vec();
        self.blocking(move |db| crate::row_versions::latest(db, &rows))
            .await
    }

    async fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        check_partition(partition, self.partitions)?;
        let path = self.path.clone();
        let read = self
            .blocking(move |db| {
                let txn = db.begin_read()?;
                let mut out = Vec::new();
                let blocks = txn.open_table(RECORD_BLOCKS)?;
                // The block holding `from` starts at or before it.
                let start = match blocks
                    .range((partition, 0)..=(partition, from))?
                    .next_back()
                {
                    Some(entry) => entry?.0.value().1,
                    None => from,
                };
                for entry in blocks.range((partition, start)..(partition, u64::MAX))? {
                    if out.len() >= max {
                        break;
                    }
                    let (key, block) = entry?;
                    let (timestamp_ms, records) =
                        RecordBlock::records(block.value(), key.value().1);
                    for record in records {
                        let record = match record {
                            Ok(record) => record,
                            Err(corrupt) => return Ok(Err(corrupt)),
                        };
                        if record.0 < from {
                            continue;
                        }
                        if out.len() >= max {
                            break;
                        }
                        out.push(RecordBlock::copied(partition, record, timestamp_ms));
                    }
                }
                Ok(Ok(out))
            })
            .await?;
        read.map_err(|(offset, reason)| LogError::CorruptRecord {
            partition,
            offset,
            reason: format!("{reason} (log {})", path.display()),
        })
    }

    fn retention(&self) -> Option<std::time::Duration> {
        self.retention
    }

    /// Deletes whole blocks only, oldest first, up to the first that is too young or
    /// reaches `before` (blocks are stored in time order).
    async fn trim(&self, partition: u32, before: u64, older_than_ms: i64) -> Result<u64, LogError> {
        check_partition(partition, self.partitions)?;
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            let mut deleted = 0;
            {
                let mut blocks = txn.open_table(RECORD_BLOCKS)?;
                let mut old = Vec::new();
                for entry in blocks.range((partition, 0)..(partition, before))? {
                    let (key, block) = entry?;
                    let start = key.value().1;
                    let (stored_ms, records) = RecordBlock::records(block.value(), start);
                    let count = records.count() as u64;
                    if stored_ms >= older_than_ms || start + count > before {
                        break;
                    }
                    old.push((start, count));
                }
                for (start, count) in old {
                    blocks.remove((partition, start))?;
                    deleted += count;
                }
            }
            txn.commit()?;
            Ok(deleted)
        })
        .await
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        check_partition(partition, self.partitions)?;
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let heads = txn.open_table(HEADS)?;
            Ok(heads.get(partition)?.map_or(0, |v| v.value()))
        })
        .await
    }

    async fn start_offset(&self, partition: u32) -> Result<u64, LogError> {
        check_partition(partition, self.partitions)?;
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let first_block = txn
                .open_table(RECORD_BLOCKS)?
                .range((partition, 0)..=(partition, u64::MAX))?
                .next()
                .transpose()?
                .map(|(key, _)| key.value().1);
            let end = txn
                .open_table(HEADS)?
                .get(partition)?
                .map_or(0, |v| v.value());
            Ok(first_block.unwrap_or(end))
        })
        .await
    }

    async fn commit_positions(
        &self,
        group: &str,
        positions: &[(u32, u64)],
    ) -> Result<(), LogError> {
        for (partition, _) in positions {
            check_partition(*partition, self.partitions)?;
        }
        let group = group.to_string();
        let positions = positions.to_vec();
        self.blocking(move |db| {
            let txn = db.begin_write()?;
            {
                let mut table = txn.open_table(POSITIONS)?;
                for (partition, offset) in positions {
                    table.insert((group.as_str(), partition), offset)?;
                }
            }
            Ok(txn.commit()?)
        })
        .await
    }

    async fn committed_position(
        &self,
        group: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError> {
        check_partition(partition, self.partitions)?;
        let group = group.to_string();
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(POSITIONS)?;
            Ok(table.get((group.as_str(), partition))?.map(|v| v.value()))
        })
        .await
    }

    async fn check_ready(&self) -> Result<(), LogError> {
        self.blocking(|db| {
            db.begin_read()?;
            Ok(())
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// An event of about `bytes` bytes.
    fn record(key: &str, bytes: usize) -> LogRecord {
        let event_id = Uuid::new_v4();
        let filler = "x".repeat(bytes);
        LogRecord {
            key: key.to_string(),
            event_id,
            payload: format!(r#"{{"event_id":"{event_id}","filler":"{filler}"}}"#).into_bytes(),
            version: None,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_log_of_records_stored_one_by_one_moves_into_blocks_once() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.redb");
        // Five records as builds before the blocks stored them: offsets 0 to 4.
        let old: Vec<LogRecord> = (0..5).map(|_| record("k", 10)).collect();
        {
            let log = EmbeddedLog::open(&path, 1, 1).expect("open");
            let txn = log.db.begin_write().expect("write");
            {
                let mut records = txn.open_table(RECORDS).expect("records");
                for (offset, r) in old.iter().enumerate() {
                    let value = (
                        r.key.as_str(),
                        r.event_id.as_u128(),
                        7,
                        r.payload.as_slice(),
                    );
                    records.insert((0, offset as u64), value).expect("insert");
                }
                txn.open_table(HEADS)
                    .expect("heads")
                    .insert(0, 5)
                    .expect("head");
                // As a build before the format was recorded left it.
                txn.open_table(META)
                    .expect("meta")
                    .remove("format")
                    .expect("format");
            }
            txn.commit().expect("commit");
        }
        let log = EmbeddedLog::open(&path, 1, 1).expect("reopen");
        // Two commits: seven records of a quarter of a block (three blocks), then one.
        let big: Vec<LogRecord> = (0..7).map(|_| record("k", BLOCK_BYTES / 4)).collect();
        let last = vec![record("k", 10)];
        for batch in [big.clone(), last.clone()] {
            log.append(batch).await.expect("append");
        }
        let db = log.db.begin_read().expect("read");
        let blocks = db.open_table(RECORD_BLOCKS).expect("blocks");
        let (firsts, sizes): (Vec<u64>, Vec<usize>) = blocks
            .iter()
            .expect("iter")
            .map(|e| {
                let (key, block) = e.expect("entry");
                (key.value().1, block.value().len())
            })
            .unzip();
        assert_eq!(
            firsts,
            vec![0, 1, 2, 3, 4, 5, 8, 11, 12],
            "a block per record moved; then blocks close at BLOCK_BYTES and per commit"
        );
        assert!(sizes.iter().all(|size| *size <= BLOCK_BYTES), "{sizes:?}");
        // Moved once: the old table is gone, and the log says its format.
        let tables: Vec<String> = db
            .list_tables()
            .expect("tables")
            .map(|t| redb::TableHandle::name(&t).to_string())
            .collect();
        assert!(!tables.contains(&"records".to_string()), "{tables:?}");
        let format = db
            .open_table(META)
            .expect("meta")
            .get("format")
            .expect("format");
        assert_eq!(format.map(|v| v.value()), Some(FORMAT));
        drop((blocks, db));
        drop(log);
        let log = EmbeddedLog::open(&path, 1, 1).expect("reopen again");

        let expected: Vec<&LogRecord> = old.iter().chain(&big).chain(&last).collect();
        for from in 0..=expected.len() as u64 {
            for max in [1, 2, 4, 100] {
                let read = log.read(0, from, max).await.expect("read");
                let ids: Vec<Uuid> = read.iter().map(|r| r.event_id).collect();
                let want: Vec<Uuid> = expected
                    .iter()
                    .skip(from as usize)
                    .take(max)
                    .map(|r| r.event_id)
                    .collect();
                assert_eq!(ids, want, "from {from}, max {max}");
                for (n, r) in read.iter().enumerate() {
                    let original = expected[from as usize + n];
                    assert_eq!(r.offset, from + n as u64);
                    assert_eq!((&r.key, &r.payload), (&original.key, &original.payload));
                }
            }
        }
        let old_time = log.read(0, 0, 1).await.expect("read")[0].timestamp_ms;
        assert_eq!(old_time, 7, "a record stored one by one keeps its time");
    }

    #[test]
    fn a_cut_block_names_the_record_it_cuts() {
        let mut block = RecordBlock::new(1);
        block.push(&record("k", 10));
        block.push(&record("k", 10));
        let cut = &block.bytes[..block.bytes.len() - 3];
        let (_, records) = RecordBlock::records(cut, 40);
        let read: Vec<Result<u64, Corrupt>> =
            records.map(|r| r.map(|(offset, ..)| offset)).collect();
        assert_eq!(
            read,
            vec![Ok(40), Err((41, "the block ends inside a record"))]
        );
    }
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn trims_what_is_past_retention_and_read_only_in_whole_blocks() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("log.redb");
        // Two records stored one by one (offsets 0 and 1, stored at 7 ms past 1970).
        {
            let log = EmbeddedLog::open(&path, 1, 1).expect("open");
            let txn = log.db.begin_write().expect("write");
            {
                let mut records = txn.open_table(RECORDS).expect("records");
                for offset in 0..2u64 {
                    let r = record("k", 10);
                    let value = (
                        r.key.as_str(),
                        r.event_id.as_u128(),
                        7,
                        r.payload.as_slice(),
                    );
                    records.insert((0, offset), value).expect("insert");
                }
                txn.open_table(HEADS)
                    .expect("heads")
                    .insert(0, 2)
                    .expect("head");
                txn.open_table(META)
                    .expect("meta")
                    .remove("format")
                    .expect("format");
            }
            txn.commit().expect("commit");
        }
        let log = EmbeddedLog::open(&path, 1, 1).expect("reopen");
        // Three commits of two records: blocks at 2, 4 and 6.
        let mut appended = Vec::new();
        for _ in 0..3 {
            let batch: Vec<LogRecord> = (0..2).map(|_| record("k", 10)).collect();
            appended.extend(batch.iter().map(|r| r.event_id));
            log.append(batch).await.expect("append");
        }
        let future = now_ms() + 60_000;
        assert_eq!(log.start_offset(0).await.expect("start"), 0);

        // Nothing is older than 1970: nothing goes, whatever the lake read.
        assert_eq!(log.trim(0, 8, 0).await.expect("trim"), 0);
        // The lake read offsets 0 to 4: record 0 and 1 and the block at 2 go; the block
        // at 4 holds offset 5, not read yet, so it stays whole.
        assert_eq!(log.trim(0, 5, future).await.expect("trim"), 4);
        assert_eq!(log.start_offset(0).await.expect("start"), 4);
        let ids: Vec<Uuid> = log
            .read(0, 0, 100)
            .await
            .expect("read")
            .iter()
            .map(|r| r.event_id)
            .collect();
        assert_eq!(
            ids,
            appended[2..],
            "a read from 0 starts at the first record kept"
        );
        // Past retention and read: all goes, and the next record keeps its offset.
        assert_eq!(log.trim(0, 8, future).await.expect("trim"), 4);
        assert_eq!(log.start_offset(0).await.expect("start"), 8);
        drop(log);
        let log = EmbeddedLog::open(&path, 1, 1).expect("reopen");
        assert_eq!(log.start_offset(0).await.expect("start"), 8);
        log.append(vec![record("k", 10)]).await.expect("append");
        assert_eq!(log.read(0, 0, 10).await.expect("read")[0].offset, 8);
    }

    fn now_ms() -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .expect("after 1970")
            .as_millis() as i64
    }
}
