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
use crate::{
    Appended, EventLog, LogError, LogRecord, StoredRecord, check_events, check_partition,
    partition_for,
};

/// (partition, offset) → (key, event id, stored at ms, payload).
const RECORDS: TableDefinition<(u32, u64), StoredValue> = TableDefinition::new("records");
type StoredValue = (&'static str, u128, i64, &'static [u8]);
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
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| err(redb::StorageError::Io(e).into()))?;
        }
        let db = Database::builder()
            .set_cache_size(cache_mib * 1024 * 1024)
            .create(path)
            .map_err(|e| err(e.into()))?;
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
            txn.open_table(RECORDS).map_err(|e| err(e.into()))?;
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
        })
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
            .map_err(|e| LogError::Unavailable {
                backend: "embedded",
                reason: e.to_string(),
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
                    for (_, reply) in group {
                        let _ = reply.send(Err(LogError::Unavailable {
                            backend: "embedded",
                            reason: e.to_string(),
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
            let mut records = txn.open_table(RECORDS)?;
            let mut heads = txn.open_table(HEADS)?;
            let mut next: Vec<u64> = (0..self.partitions)
                .map(|p| Ok(heads.get(p)?.map_or(0, |v| v.value())))
                .collect::<Result<_, redb::Error>>()?;
            for (batch, _) in group {
                let mut outcome = Vec::with_capacity(batch.len());
                for record in batch {
                    if seen.contains(record.event_id) || !in_group.insert(record.event_id) {
                        outcome.push(Appended::Duplicate);
                        continue;
                    }
                    let partition = partition_for(&record.key, self.partitions);
                    let offset = next[partition as usize];
                    next[partition as usize] += 1;
                    let value = (
                        record.key.as_str(),
                        record.event_id.as_u128(),
                        now_ms,
                        record.payload.as_slice(),
                    );
                    records.insert((partition, offset), value)?;
                    new_ids.push(record.event_id);
                    outcome.push(Appended::Stored { partition, offset });
                }
                results.push(outcome);
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
            reason: "the writer thread has stopped".into(),
        };
        let (reply, answer) = oneshot::channel();
        self.appends
            .as_ref()
            .ok_or_else(unavailable)?
            .send((records, reply))
            .map_err(|_| unavailable())?;
        answer.await.map_err(|_| unavailable())?
    }

    async fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        check_partition(partition, self.partitions)?;
        self.blocking(move |db| {
            let txn = db.begin_read()?;
            let table = txn.open_table(RECORDS)?;
            let mut out = Vec::new();
            for entry in table
                .range((partition, from)..(partition, u64::MAX))?
                .take(max)
            {
                let (pos, value) = entry?;
                let (partition, offset) = pos.value();
                let (key, id, timestamp_ms, payload) = value.value();
                out.push(StoredRecord {
                    partition,
                    offset,
                    key: key.to_string(),
                    event_id: Uuid::from_u128(id),
                    timestamp_ms,
                    payload: payload.to_vec(),
                });
            }
            Ok(out)
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
