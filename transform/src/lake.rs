//! The research lake as the transform writes it: one Delta table per event table of
//! [`techmon_lake::tables`], under one root (a local folder or an object-store URL).
//! Each commit that adds rows carries, per log partition it covers, a Delta `txn`
//! action: application id `techmon:<topic>:<partition>`, version = the last log
//! offset covered. On start the transform resumes from these, so the lake, not a
//! consumer group, is the truth.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use deltalake::arrow::array::{Array, AsArray, RecordBatch};
use deltalake::arrow::compute::cast;
use deltalake::arrow::datatypes::DataType;
use deltalake::kernel::Transaction;
use deltalake::kernel::transaction::{CommitConflictError, CommitProperties, TransactionError};
use deltalake::protocol::SaveMode;
use deltalake::table::config::TablePropertiesExt as _;
use deltalake::writer::{DeltaWriter as _, RecordBatchWriter};
use deltalake::{DeltaTable, DeltaTableError, checkpoints};
use techmon_lake::tables::{EVENT_TABLES, Table, WITHHELD_COUNTS};
use techmon_lake::{LakeLocation, writer_properties};

use crate::TransformError;
use crate::consent::{Attended, Profile};

/// Rows for one table, and the log positions the commit covers.
pub struct Append {
    pub table: &'static Table,
    pub rows: Vec<RecordBatch>,
    /// (partition, last offset) the table holds after this commit.
    pub covers: Vec<(u32, u64)>,
}

/// Commits running in the background (see [`Lake::start_appends`]).
pub struct Pending(Vec<tokio::task::JoinHandle<TableCommit>>);

/// One table's commit: the table, what it covers, and its new version.
type TableCommit = (
    &'static str,
    Vec<(u32, u64)>,
    Result<DeltaTable, TransformError>,
);

/// What [`Lake::finish_appends`] found.
pub struct Committed {
    pub done: Vec<(&'static str, Vec<(u32, u64)>)>,
    pub error: Option<TransformError>,
}

/// One append's commit: rows as Parquet, and a `txn` action per covered partition.
async fn commit(
    current: DeltaTable,
    append: &Append,
    app_ids: Vec<String>,
) -> Result<DeltaTable, TransformError> {
    let table = append.table;
    let transactions: Vec<Transaction> = append
        .covers
        .iter()
        .zip(app_ids)
        .map(|((_, offset), app_id)| Transaction::new(app_id, *offset as i64))
        .collect();
    // Delta's own writer, not a DataFusion plan: the rows need no planning, and the
    // plan's repartitioning copied every row twice.
    let mut writer = RecordBatchWriter::for_table(&current)
        .map_err(|e| delta_error(table.name, e))?
        .with_writer_properties(writer_properties())
        .with_commit_properties(
            CommitProperties::default()
                .with_application_transactions(transactions)
                // Written one table at a time by `finish_appends`: each takes a lot of
                // memory for a moment, and the tables commit side by side.
                .with_create_checkpoint(false),
        );
    for batch in &append.rows {
        writer
            .write(batch.clone())
            .await
            .map_err(|e| delta_error(table.name, e))?;
    }
    let mut after = current;
    match writer.flush_and_commit(&mut after).await {
        Ok(_) => Ok(after),
        Err(DeltaTableError::Transaction {
            source: TransactionError::CommitConflict(CommitConflictError::ConcurrentTransaction),
        }) => Err(TransformError::PositionsTaken {
            table: table.name,
            partitions: append.covers.iter().map(|(p, _)| *p).collect(),
        }),
        Err(e) => Err(delta_error(table.name, e)),
    }
}

/// What one compaction of the lake did (see [`Lake::compact`]).
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Compaction {
    /// Small data files replaced.
    pub files_removed: u64,
    /// The files that replaced them.
    pub files_added: u64,
    /// Tables left as they were because another writer committed to them meanwhile
    /// (the next compaction tries again).
    pub tables_skipped: Vec<&'static str>,
}

/// Pseudonyms quoted for a SQL list; they are hexadecimal, so anything else is left
/// out. `None` when none is left.
fn quoted_pseudonyms(pseudonyms: &[String]) -> Option<String> {
    let list: Vec<String> = pseudonyms
        .iter()
        .filter(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_hexdigit()))
        .map(|p| format!("'{p}'"))
        .collect();
    (!list.is_empty()).then(|| list.join(", "))
}

pub struct Lake {
    root: url::Url,
    topic: String,
    tables: HashMap<&'static str, DeltaTable>,
    /// [`WITHHELD_COUNTS`]: no log positions, rewritten whole.
    counts: DeltaTable,
}

fn delta_error(table: &str, source: DeltaTableError) -> TransformError {
    TransformError::Lake {
        table: table.to_string(),
        source: Box::new(source),
    }
}

impl Lake {
    /// Opens the lake at `location` (a local folder is created when missing).
    pub async fn open(location: &LakeLocation, topic: &str) -> Result<Self, TransformError> {
        // The tables side by side: each is a few round trips to its folder or bucket.
        let opened = futures::future::try_join_all(EVENT_TABLES.iter().map(|table| async move {
            Ok::<_, TransformError>((table.name, location.create(table).await?))
        }))
        .await?;
        let counts = location.create(&WITHHELD_COUNTS).await?;
        Ok(Self {
            root: location.root().clone(),
            topic: topic.to_string(),
            tables: opened.into_iter().collect(),
            counts,
        })
    }

    /// Whether counts of people without research consent were ever written.
    pub fn counts_written(&self) -> bool {
        self.counts.version().is_some_and(|v| v > 0)
    }

    /// Replaces the counts of people without research consent, in one commit.
    pub async fn write_counts(&mut self, counts: RecordBatch) -> Result<(), TransformError> {
        let name = WITHHELD_COUNTS.name;
        self.counts = self
            .counts
            .clone()
            .write(vec![counts])
            .with_save_mode(SaveMode::Overwrite)
            .await
            .map_err(|e| delta_error(name, e))?;
        Ok(())
    }

    /// What the KPIs count of these people's rows (by pseudonym): their attendances and
    /// their registrations' profiles.
    pub async fn person_rows(
        &self,
        pseudonyms: &[String],
    ) -> Result<(Vec<(String, Attended)>, Vec<(String, Profile)>), TransformError> {
        let Some(list) = quoted_pseudonyms(pseudonyms) else {
            return Ok((Vec::new(), Vec::new()));
        };
        // Every column as text, per row.
        let rows_of = |batches: Vec<RecordBatch>,
                       table|
         -> Result<Vec<Vec<Option<String>>>, TransformError> {
            let mut out = Vec::new();
            for batch in batches {
                let columns = batch
                    .columns()
                    .iter()
                    .map(|c| cast(c, &DataType::Utf8))
                    .collect::<Result<Vec<_>, _>>()
                    .map_err(|source| TransformError::Rows { table, source })?;
                let columns: Vec<_> = columns.iter().map(|c| c.as_string::<i32>()).collect();
                out.extend((0..batch.num_rows()).map(|row| {
                    columns
                        .iter()
                        .map(|c| c.is_valid(row).then(|| c.value(row).to_string()))
                        .collect()
                }));
            }
            Ok(out)
        };
        let sql = format!(
            "SELECT participant_pseudonym, hub_id, school_year, activity_id, role \
             FROM lake_table WHERE participant_pseudonym IN ({list})"
        );
        let attendances = rows_of(self.query("attendances", &sql).await?, "attendances")?
            .into_iter()
            .map(|mut cells| {
                let mut take = |c: usize| cells.get_mut(c).and_then(Option::take);
                (
                    take(0).unwrap_or_default(),
                    Attended {
                        hub_id: take(1).unwrap_or_default(),
                        school_year: take(2).unwrap_or_default(),
                        activity_id: take(3).unwrap_or_default(),
                        role: take(4),
                    },
                )
            })
            .collect();
        let sql = format!(
            "SELECT participant_pseudonym, sector, groep, role \
             FROM lake_table WHERE participant_pseudonym IN ({list})"
        );
        let profiles = rows_of(self.query("participants", &sql).await?, "participants")?
            .into_iter()
            .map(|mut cells| {
                let mut take = |c: usize| cells.get_mut(c).and_then(Option::take);
                (
                    take(0).unwrap_or_default(),
                    Profile {
                        sector: take(1),
                        groep: take(2).and_then(|g| g.parse().ok()),
                        role: take(3),
                    },
                )
            })
            .collect();
        Ok((attendances, profiles))
    }

    /// Takes these people's rows (by pseudonym) out of the research tables, as their
    /// refused consent asks (see [`crate::consent::row_use`]): registrations,
    /// attendances and work-learning routes go; survey answers and profile choices
    /// stay without the person. Returns the rows changed.
    pub async fn withhold(&mut self, pseudonyms: &[String]) -> Result<u64, TransformError> {
        use crate::consent::{PersonRows, RowUse};
        let Some(list) = quoted_pseudonyms(pseudonyms) else {
            return Ok(0);
        };
        let mut changed = 0;
        for (table, column, current) in self.person_tables() {
            let predicate = format!("{column} IN ({list})");
            let Some(rows) = PersonRows::of(table.name) else {
                continue;
            };
            let after = match crate::consent::row_use(rows, Some(crate::consent::Consent::Refused))
            {
                RowUse::Research => continue,
                RowUse::Withheld | RowUse::Dropped => {
                    let (after, metrics) = current
                        .delete()
                        .with_predicate(predicate)
                        .await
                        .map_err(|e| delta_error(table.name, e))?;
                    changed += metrics.num_deleted_rows.unwrap_or(0) as u64;
                    after
                }
                RowUse::WithoutPerson => {
                    let (after, metrics) = current
                        .update()
                        .with_predicate(predicate)
                        .with_update(column, "CAST(NULL AS VARCHAR)")
                        .with_update("pseudonym_key_id", "CAST(NULL AS VARCHAR)")
                        .await
                        .map_err(|e| delta_error(table.name, e))?;
                    changed += metrics.num_updated_rows as u64;
                    after
                }
            };
            self.tables.insert(table.name, after);
        }
        Ok(changed)
    }

    pub fn root(&self) -> &url::Url {
        &self.root
    }

    fn app_id(&self, partition: u32) -> String {
        format!("techmon:{}:{partition}", self.topic)
    }

    /// The last log offset of `partition` each table holds, if any.
    pub async fn positions(
        &self,
        partition: u32,
    ) -> Result<HashMap<&'static str, Option<u64>>, TransformError> {
        let app_id = self.app_id(partition);
        let versions = self.tables.iter().map(|(name, table)| {
            let app_id = app_id.clone();
            async move {
                let version = table
                    .snapshot()
                    .map_err(|e| delta_error(name, e))?
                    .transaction_version(table.log_store().as_ref(), app_id)
                    .await
                    .map_err(|e| delta_error(name, e))?;
                Ok::<_, TransformError>((*name, version.map(|v| v as u64)))
            }
        });
        Ok(futures::future::try_join_all(versions)
            .await?
            .into_iter()
            .collect())
    }

    /// Appends rows to a table in one commit that records, for each (partition, last
    /// offset), that the table holds that partition up to that offset.
    pub async fn append(
        &mut self,
        table: &'static Table,
        rows: Vec<RecordBatch>,
        covers: Vec<(u32, u64)>,
    ) -> Result<(), TransformError> {
        let pending = self.start_appends(vec![Append {
            table,
            rows,
            covers,
        }])?;
        let committed = self.finish_appends(pending).await;
        committed.error.map_or(Ok(()), Err)
    }

    /// Starts commits to several tables in the background, each its own commit, side
    /// by side (encoding and compressing Parquet is most of a commit's time). The
    /// next commit to a table must wait for [`Lake::finish_appends`], as it builds
    /// on the version this one makes.
    pub fn start_appends(&self, appends: Vec<Append>) -> Result<Pending, TransformError> {
        let mut tasks = Vec::new();
        for append in appends {
            let current = self.latest(append.table.name)?;
            let app_ids: Vec<String> = append.covers.iter().map(|(p, _)| self.app_id(*p)).collect();
            tasks.push(tokio::spawn(async move {
                let written = commit(current, &append, app_ids).await;
                (append.table.name, append.covers, written)
            }));
        }
        Ok(Pending(tasks))
    }

    /// Waits for the commits [`Lake::start_appends`] started: the tables that
    /// committed, with what they cover, and the first error.
    pub async fn finish_appends(&mut self, pending: Pending) -> Committed {
        let mut committed = Committed {
            done: Vec::new(),
            error: None,
        };
        for task in pending.0 {
            let (name, covers, written) = match task.await {
                Ok(outcome) => outcome,
                Err(e) => std::panic::resume_unwind(e.into_panic()),
            };
            match written {
                Ok(table) => {
                    self.tables.insert(name, table);
                    committed.done.push((name, covers));
                }
                Err(e) => {
                    committed.error.get_or_insert(e);
                }
            }
        }
        for (name, _) in &committed.done {
            if let Err(e) = self.checkpoint_when_due(name).await {
                committed.error.get_or_insert(e);
            }
        }
        committed
    }

    /// Writes a checkpoint of a table at every `delta.checkpointInterval` versions (as
    /// Delta's own commits do), so readers need not replay every commit since the
    /// table began.
    async fn checkpoint_when_due(&self, name: &'static str) -> Result<(), TransformError> {
        let Some(table) = self.tables.get(name) else {
            return Ok(());
        };
        let snapshot = table.snapshot().map_err(|e| delta_error(name, e))?;
        let interval = snapshot.table_config().checkpoint_interval().get();
        if (snapshot.version() + 1) % interval == 0 {
            checkpoints::create_checkpoint(table, None)
                .await
                .map_err(|e| delta_error(name, e))?;
        }
        Ok(())
    }

    /// Deletes every row of these people (participants or ambassadors, by pseudonym)
    /// from the tables that hold pseudonyms.
    pub async fn erase(&mut self, pseudonyms: &[String]) -> Result<u64, TransformError> {
        if pseudonyms.is_empty() {
            return Ok(0);
        }
        let Some(list) = quoted_pseudonyms(pseudonyms) else {
            return Ok(0);
        };
        let mut deleted = 0;
        for (table, column, current) in self.person_tables() {
            let (after, metrics) = current
                .delete()
                .with_predicate(format!("{column} IN ({list})"))
                .await
                .map_err(|e| delta_error(table.name, e))?;
            deleted += metrics.num_deleted_rows.unwrap_or(0) as u64;
            self.tables.insert(table.name, after);
        }
        Ok(deleted)
    }

    /// Deletes the rows of these events from `table` (events a later version of their
    /// plain-sheet row replaced).
    pub async fn remove_events(
        &mut self,
        table: &'static Table,
        ids: &[uuid::Uuid],
    ) -> Result<u64, TransformError> {
        if ids.is_empty() {
            return Ok(0);
        }
        let list: Vec<String> = ids.iter().map(|id| format!("'{id}'")).collect();
        let (after, metrics) = self
            .latest(table.name)?
            .delete()
            .with_predicate(format!("event_id IN ({})", list.join(", ")))
            .await
            .map_err(|e| delta_error(table.name, e))?;
        self.tables.insert(table.name, after);
        Ok(metrics.num_deleted_rows.unwrap_or(0) as u64)
    }

    /// Gives the rows of a participant pseudonym its replacement (`(old, new)` pairs),
    /// in every table with participants' pseudonyms. Returns the rows changed, and
    /// whether every table was done: a table another writer (a compaction) changed
    /// meanwhile is left for the next time, and the pairs must stay pending.
    pub async fn relink(
        &mut self,
        relinks: &[(String, String)],
    ) -> Result<(u64, bool), TransformError> {
        if relinks.is_empty() {
            return Ok((0, true));
        }
        let relinks: Arc<crate::state::QuickMap<String, String>> =
            Arc::new(relinks.iter().cloned().collect());
        let (mut updated, mut complete) = (0, true);
        for (table, column, current) in self.person_tables() {
            if column != "participant_pseudonym" {
                continue;
            }
            match crate::relink::relink_table(current, column, &relinks).await {
                Ok((after, rows)) => {
                    updated += rows;
                    self.tables.insert(table.name, after);
                }
                Err(DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(_),
                }) => complete = false,
                Err(e) => return Err(delta_error(table.name, e)),
            }
        }
        Ok((updated, complete))
    }

    /// Rewrites, per table and school year, the data files smaller than
    /// `target_file_bytes` into files of about that size. Each round of the transform
    /// adds a file per table and school year, so a lake fed for months holds many small
    /// files, and a query opens every one. The rows, and the log positions the tables
    /// hold, stay as they were; the replaced files go with the next vacuum.
    pub async fn compact(&mut self, target_file_bytes: u64) -> Result<Compaction, TransformError> {
        let target =
            std::num::NonZeroU64::new(target_file_bytes).unwrap_or(std::num::NonZeroU64::MIN);
        let mut compaction = Compaction::default();
        for table in EVENT_TABLES {
            let current = self.latest(table.name)?;
            let compacted = current
                .optimize()
                .with_target_size(target)
                .with_writer_properties(writer_properties())
                .await;
            match compacted {
                Ok((after, metrics)) => {
                    compaction.files_removed += metrics.num_files_removed;
                    compaction.files_added += metrics.num_files_added;
                    self.tables.insert(table.name, after);
                }
                Err(DeltaTableError::Transaction {
                    source: TransactionError::CommitConflict(_),
                }) => compaction.tables_skipped.push(table.name),
                Err(e) => return Err(delta_error(table.name, e)),
            }
        }
        Ok(compaction)
    }

    /// A table's latest version as this process knows it.
    fn latest(&self, name: &'static str) -> Result<DeltaTable, TransformError> {
        self.tables
            .get(name)
            .cloned()
            .ok_or(TransformError::UnknownTable(name))
    }

    /// The tables with a person's pseudonym, with its column.
    fn person_tables(&self) -> Vec<(&'static Table, &'static str, DeltaTable)> {
        techmon_lake::tables::person_tables()
            .filter_map(|(table, column)| {
                self.tables
                    .get(table.name)
                    .map(|t| (table, column, t.clone()))
            })
            .collect()
    }

    /// Deletes the data files of old table versions that no current version needs and
    /// that are older than `retention`: after an erasure, the history must not keep the
    /// erased rows, and the files a compaction replaced only take space. Returns the
    /// files deleted.
    pub async fn vacuum(
        &mut self,
        retention: std::time::Duration,
    ) -> Result<usize, TransformError> {
        let retention = chrono::Duration::from_std(retention).unwrap_or(chrono::Duration::MAX);
        let mut deleted = 0;
        for table in EVENT_TABLES {
            let current = self.latest(table.name)?;
            let (after, metrics) = current
                .vacuum()
                .with_retention_period(retention)
                // The retention is the operator's choice here (erasure wants it short).
                .with_enforce_retention_duration(false)
                .await
                .map_err(|e| delta_error(table.name, e))?;
            deleted += metrics.files_deleted.len();
            self.tables.insert(table.name, after);
        }
        let (after, metrics) = self
            .counts
            .clone()
            .vacuum()
            .with_retention_period(retention)
            .with_enforce_retention_duration(false)
            .await
            .map_err(|e| delta_error(WITHHELD_COUNTS.name, e))?;
        deleted += metrics.files_deleted.len();
        self.counts = after;
        Ok(deleted)
    }

    /// Which of these event ids the table holds already.
    pub async fn event_ids_in(
        &self,
        table: &'static str,
        ids: &[String],
    ) -> Result<HashSet<String>, TransformError> {
        let mut present = HashSet::new();
        // Event ids are UUIDs: anything else cannot be in the table and is not quoted.
        let list: Vec<String> = ids
            .iter()
            .filter(|id| uuid::Uuid::try_parse(id).is_ok())
            .map(|id| format!("'{id}'"))
            .collect();
        if list.is_empty() {
            return Ok(present);
        }
        let sql = format!(
            "SELECT event_id FROM lake_table WHERE event_id IN ({})",
            list.join(", ")
        );
        let batches = self.query(table, &sql).await?;
        for batch in batches {
            let column = cast(batch.column(0), &DataType::Utf8)
                .map_err(|source| TransformError::Rows { table, source })?;
            let column = column.as_string::<i32>();
            present.extend((0..column.len()).map(|i| column.value(i).to_string()));
        }
        Ok(present)
    }

    /// `sql` over a table's latest version, named `lake_table`.
    async fn query(
        &self,
        table: &'static str,
        sql: &str,
    ) -> Result<Vec<RecordBatch>, TransformError> {
        let delta = self
            .tables
            .get(table)
            .ok_or(TransformError::UnknownTable(table))?;
        let query = |source| TransformError::Query { table, source };
        techmon_lake::session_over(delta, "lake_table")
            .await
            .map_err(query)?
            .sql(sql)
            .await
            .map_err(query)?
            .collect()
            .await
            .map_err(query)
    }

    /// The current version of each table that exists.
    pub fn versions(&self) -> Vec<(&'static str, u64)> {
        let mut out: Vec<_> = self
            .tables
            .iter()
            .filter_map(|(n, t)| t.version().map(|v| (*n, v)))
            .collect();
        out.sort();
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::batch::TableRows;
    use crate::tables::{Cell, Row};

    /// A new lake in a temporary folder, and its table `name`.
    async fn new_lake_with(name: &str) -> (tempfile::TempDir, Lake, &'static Table) {
        let dir = tempfile::tempdir().expect("temporary folder");
        let root = dir.path().to_str().expect("UTF-8 path");
        let location = LakeLocation::new(root, Default::default()).expect("a folder");
        let lake = Lake::open(&location, "events")
            .await
            .expect("open the lake");
        let table = EVENT_TABLES
            .iter()
            .find(|t| t.name == name)
            .expect("the table");
        (dir, lake, table)
    }

    #[tokio::test]
    async fn a_checkpoint_is_written_every_hundred_versions() {
        let (dir, mut lake, table) = new_lake_with("partner_events").await;
        let checkpoints = || {
            std::fs::read_dir(dir.path().join(table.name).join("_delta_log"))
                .expect("the table's log")
                .filter_map(|entry| entry.ok()?.file_name().into_string().ok())
                .filter(|name| name.contains(".checkpoint."))
                .collect::<Vec<_>>()
        };
        // Version 0 is the table's creation; appends make versions 1, 2, ...
        for offset in 1..=99u64 {
            let mut rows = TableRows::new(table);
            rows.push(Row(vec![
                uuid::Uuid::new_v4().to_string().into(),
                Cell::Text("hub".into()),
                Cell::Time(0),
                Cell::Text("2024/25".into()),
                Cell::Int(0),
                Cell::Int(offset as i64),
                Cell::Text("partner".into()),
                Cell::Text("joined".into()),
                Cell::Null,
                Cell::Null,
                Cell::Null,
                Cell::Int(2024),
            ]))
            .expect("a row that fits");
            let batch = rows.finish(None).expect("batch");
            lake.append(table, vec![batch], vec![(0, offset)])
                .await
                .expect("append");
            if offset == 98 {
                assert!(checkpoints().is_empty(), "no checkpoint before version 99");
            }
        }
        assert_eq!(
            checkpoints(),
            vec!["00000000000000000099.checkpoint.parquet".to_string()]
        );
    }

    /// A relink copies a file's other column chunks as they are and encodes the
    /// pseudonyms again: in the transform's own files (here one of two row groups) and
    /// in a compaction's (which writes text as Utf8View). The files' statistics follow
    /// the new pseudonyms.
    #[tokio::test]
    async fn a_relink_rewrites_only_the_pseudonyms_before_and_after_a_compaction() {
        use deltalake::arrow::array::{Int64Array, StringArray};
        use deltalake::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;

        let (dir, mut lake, table) = new_lake_with("attendances").await;
        // Pseudonyms p00 to p49 in turn, in two appends; the first fills two row groups.
        let pseudonym = |i: usize| format!("p{:02}", i % 50);
        let (first, all) = (
            techmon_lake::ROW_GROUP_ROWS + 1000,
            techmon_lake::ROW_GROUP_ROWS + 2000,
        );
        for (from, to) in [(0, first), (first, all)] {
            let mut rows = TableRows::new(table);
            for i in from..to {
                rows.push(Row(vec![
                    format!("event-{i:06}").into(),
                    Cell::Text("hub".into()),
                    Cell::Time(0),
                    Cell::Text("2024/25".into()),
                    Cell::Int(0),
                    Cell::Int(i as i64),
                    Cell::Text("act-1".into()),
                    Cell::Null,
                    Cell::Text("k1".into()),
                    Cell::Text("pupil".into()),
                    Cell::Int(2024),
                ]))
                .expect("a row that fits");
            }
            let pseudonyms: StringArray = (from..to).map(|i| Some(pseudonym(i))).collect();
            let batch = rows.finish(Some(Arc::new(pseudonyms))).expect("batch");
            lake.append(table, vec![batch], vec![(0, to as u64 - 1)])
                .await
                .expect("append");
        }
        // Every row is read back once, with its pseudonym relinked if `relinked` holds
        // it; returns the row groups of each file and the files' largest pseudonym.
        let check = |lake: &Lake, relinked: &'static [usize]| {
            let current = lake.latest(table.name).expect("the table");
            let snapshot = current.snapshot().expect("a snapshot");
            let mut seen = vec![false; all];
            let mut groups = Vec::new();
            let mut highest = Vec::new();
            for file in snapshot.log_data().iter() {
                let stats: serde_json::Value =
                    serde_json::from_str(&file.stats().expect("statistics")).expect("JSON");
                highest.push(stats["maxValues"]["participant_pseudonym"].clone());
                let path = dir.path().join(table.name).join(file.path().as_ref());
                let parquet = std::fs::File::open(path).expect("a data file");
                let reader = ParquetRecordBatchReaderBuilder::try_new(parquet).expect("Parquet");
                groups.push(reader.metadata().num_row_groups());
                for batch in reader.build().expect("reader") {
                    let batch = batch.expect("a batch");
                    let offsets = batch
                        .column_by_name("log_offset")
                        .and_then(|c| c.as_any().downcast_ref::<Int64Array>())
                        .expect("offsets");
                    // A compaction's files hold text as Utf8View.
                    let text = |name: &str| {
                        let column = batch.column_by_name(name).expect("the column");
                        cast(column, &DataType::Utf8).expect("as Utf8")
                    };
                    let (ids, people) = (text("event_id"), text("participant_pseudonym"));
                    let (ids, people) = (ids.as_string::<i32>(), people.as_string::<i32>());
                    for row in 0..batch.num_rows() {
                        let i = offsets.value(row) as usize;
                        assert!(!std::mem::replace(&mut seen[i], true), "row {i} twice");
                        assert_eq!(ids.value(row), format!("event-{i:06}"));
                        let want = if relinked.contains(&(i % 50)) {
                            format!("q{:02}", i % 50)
                        } else {
                            pseudonym(i)
                        };
                        assert_eq!(people.value(row), want, "row {i}");
                    }
                }
            }
            assert!(seen.iter().all(|s| *s), "every row read");
            (groups, highest)
        };
        let rows_of = |n: usize| (0..all).filter(|i| i % 50 == n).count() as u64;

        let relinks = [("p07".to_string(), "q07".to_string())];
        assert_eq!(
            lake.relink(&relinks).await.expect("relink"),
            (rows_of(7), true)
        );
        let (mut groups, highest) = check(&lake, &[7]);
        groups.sort();
        assert_eq!(groups, vec![1, 2], "the transform's files, relinked");
        assert_eq!(highest, vec![serde_json::json!("q07"); 2]);

        let compaction = lake.compact(1 << 30).await.expect("compact");
        assert_eq!((compaction.files_removed, compaction.files_added), (2, 1));
        let relinks = [("p08".to_string(), "q08".to_string())];
        assert_eq!(
            lake.relink(&relinks).await.expect("relink"),
            (rows_of(8), true)
        );
        let (groups, highest) = check(&lake, &[7, 8]);
        assert_eq!(groups.len(), 1, "the compaction's file, relinked");
        assert_eq!(highest, vec![serde_json::json!("q08")]);
    }
}
