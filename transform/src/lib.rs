//! The transform: reads the event log, validates each event against the schema of
//! its version, pseudonymises it, and writes it exactly once to the research lake
//! (Delta tables, one per kind of fact). Events it cannot transform go to the dead
//! letters in the raw zone. A `consent_withdrawn` event erases the participant (or,
//! in version 2, the ambassador) from every table and drops their later events.
//!
//! Exactly once: each lake commit records the log positions it covers (see
//! [`lake`]); a restart resumes from those, skips what a table already holds, and
//! drops a second copy of an event id seen at another position.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use deltalake::arrow::array::{AsArray, BooleanArray, RecordBatch, StringBuilder};
use deltalake::arrow::compute::{concat_batches, filter_record_batch};
use techmon_eventlog::event_ids::SeenIds;
use techmon_eventlog::person_keys::PersonKeys;
use techmon_eventlog::{EventLog, StoredRecord};
use techmon_lake::tables::{EVENT_TABLES, WITHHELD_COUNTS};
use techmon_service::audit::{AuditAction, AuditEntry, AuditLog};

pub mod batch;
mod config;
pub mod consent;
mod error;
mod identity;
pub mod lake;
mod maintenance;
pub mod metrics;
mod prepare;
pub mod pseudonym;
mod reading;
mod relink;
pub mod state;
pub mod tables;
mod withhold;

use config::load_key;
pub use config::{Config, KEY_ENV, replay_config, rotation_config};
pub use error::TransformError;
use prepare::{Outcome, Parsing, Prepared, PreparedRecord, prepare};
use reading::{AHEAD_PASSES, Ahead, Reading, RoundBounds};

use pseudonym::PseudonymKey;
use state::{DeadLetter, State, StateChanges};

/// Counts of one round or run.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Progress {
    pub read: usize,
    pub written: usize,
    pub dead_letters: usize,
    pub duplicates: usize,
    pub dropped_after_withdrawal: usize,
    pub erased_rows: u64,
    /// Participant references named by an event before their registration (each
    /// counted once): their rows carry the pseudonym of the hub's reference until the
    /// registration comes (hubs are asked to register first).
    pub unregistered_references: usize,
    /// Lake rows given their registration's pseudonym after it came.
    pub relinked_rows: u64,
    /// Lake rows taken out of the research tables when consent was taken back.
    pub withheld_rows: u64,
    /// Rows of events a later version of their plain-sheet row replaced: left out of
    /// the round, or deleted from the lake.
    pub replaced_rows: u64,
}

impl std::ops::AddAssign for Progress {
    fn add_assign(&mut self, o: Self) {
        self.read += o.read;
        self.written += o.written;
        self.dead_letters += o.dead_letters;
        self.duplicates += o.duplicates;
        self.dropped_after_withdrawal += o.dropped_after_withdrawal;
        self.erased_rows += o.erased_rows;
        self.unregistered_references += o.unregistered_references;
        self.relinked_rows += o.relinked_rows;
        self.withheld_rows += o.withheld_rows;
        self.replaced_rows += o.replaced_rows;
    }
}

/// What a round (or a redrive) has made so far.
struct RoundWork {
    /// Per table (as in [`EVENT_TABLES`]): its rows.
    rows: Vec<Vec<RecordBatch>>,
    changes: StateChanges,
    /// Participant references registered, or first named, in this round, with their
    /// pseudonyms.
    links: state::QuickMap<(String, String), String>,
    /// Pseudonyms that references first named in this round had until their
    /// registration in this round → the registration's: every row with one is in
    /// `rows`, and is given the registration's there, before it is written.
    relinks: state::QuickMap<String, String>,
    progress: Progress,
}

impl RoundWork {
    /// Leaves out of this round's rows those of the events replaced in it.
    fn drop_replaced(&mut self) -> Result<(), TransformError> {
        if self.changes.replaced.is_empty() {
            return Ok(());
        }
        for (table, batches) in EVENT_TABLES.iter().zip(&mut self.rows) {
            for batch in batches.iter_mut() {
                let ids = batch.column(0).as_string::<i32>();
                let keep: BooleanArray = ids
                    .iter()
                    .map(|id| {
                        let replaced = id
                            .and_then(|id| uuid::Uuid::parse_str(id).ok())
                            .is_some_and(|id| self.changes.replaced.contains_key(&id));
                        Some(!replaced)
                    })
                    .collect();
                if keep.true_count() == batch.num_rows() {
                    continue;
                }
                self.progress.replaced_rows += (batch.num_rows() - keep.true_count()) as u64;
                *batch =
                    filter_record_batch(batch, &keep).map_err(|source| TransformError::Rows {
                        table: table.name,
                        source,
                    })?;
            }
            batches.retain(|batch| batch.num_rows() > 0);
        }
        Ok(())
    }

    /// Gives this round's rows of the references registered in it the registration's
    /// pseudonym (see [`RoundWork::relinks`]).
    fn relink_rows(&mut self) -> Result<(), TransformError> {
        if self.relinks.is_empty() {
            return Ok(());
        }
        for (table, batches) in EVENT_TABLES.iter().zip(&mut self.rows) {
            let Some((column, "participant_pseudonym")) = table.person_column() else {
                continue;
            };
            for batch in batches.iter_mut() {
                let found = relink::relinks_held(batch.column(column), &self.relinks);
                if found == 0 {
                    continue;
                }
                self.progress.relinked_rows += found as u64;
                let mut columns = batch.columns().to_vec();
                columns[column] = Arc::new(relink::relinked(batch.column(column), &self.relinks));
                *batch = RecordBatch::try_new(batch.schema(), columns).map_err(|source| {
                    TransformError::Rows {
                        table: table.name,
                        source,
                    }
                })?;
            }
        }
        Ok(())
    }
}

impl Default for RoundWork {
    fn default() -> Self {
        Self {
            rows: vec![Vec::new(); EVENT_TABLES.len()],
            changes: StateChanges::default(),
            links: state::QuickMap::default(),
            relinks: state::QuickMap::default(),
            progress: Progress::default(),
        }
    }
}

pub struct Transform {
    log: Arc<dyn EventLog>,
    lake: lake::Lake,
    state: State,
    /// Shared with the threads that prepare records.
    key: Arc<PseudonymKey>,
    /// The keys of the personal fields sealed in the log (shared likewise).
    person_keys: Arc<PersonKeys>,
    /// Where erasures and withholdings are recorded (see [`Transform::with_audit`]).
    audit: Option<Arc<AuditLog>>,
    bounds: RoundBounds,
    poll: Duration,
    vacuum_interval: Duration,
    vacuum_retention: Duration,
    compact_interval: Duration,
    relink_interval: Duration,
    compact_target_file_bytes: u64,
    /// Per partition: the next offset to read.
    next: Vec<u64>,
    /// Per table, per partition: the last offset the table holds.
    held: HashMap<&'static str, Vec<Option<u64>>>,
    /// The last round's commits, still running, and when they started.
    in_flight: Option<(lake::Pending, Instant)>,
    ahead: Option<Ahead>,
    metrics: metrics::Metrics,
}

impl Transform {
    /// Opens the lake and the state, and finds where each partition resumes.
    pub async fn open(
        config: &Config,
        lake: &techmon_lake::LakeLocation,
        log: Arc<dyn EventLog>,
        topic: &str,
    ) -> Result<Self, TransformError> {
        let key = Arc::new(load_key(config)?);
        let person_keys = Arc::new(PersonKeys::open(&config.person_keys)?);
        let lake = lake::Lake::open(lake, topic).await?;
        let state = State::open(&config.raw)?;
        let partitions = log.partitions();
        let mut held: HashMap<&'static str, Vec<Option<u64>>> = EVENT_TABLES
            .iter()
            .map(|t| (t.name, vec![None; partitions as usize]))
            .collect();
        let mut next = vec![0; partitions as usize];
        for partition in 0..partitions {
            let positions = lake.positions(partition).await?;
            for (table, offset) in positions {
                if let Some(slots) = held.get_mut(table) {
                    slots[partition as usize] = offset;
                }
            }
            // Resume where the table that is furthest behind left off.
            next[partition as usize] = held
                .values()
                .map(|slots| slots[partition as usize].map_or(0, |o| o + 1))
                .min()
                .unwrap_or(0);
        }
        let mut transform = Self {
            log,
            lake,
            state,
            key,
            person_keys,
            audit: None,
            bounds: RoundBounds {
                records_per_partition: config.max_records_per_partition.max(1),
                records_per_read: config.records_per_read.max(1),
                bytes: config.max_round_bytes.max(1),
                latency: Duration::from_millis(config.max_round_ms),
            },
            poll: Duration::from_millis(config.poll_interval_ms),
            vacuum_interval: Duration::from_secs(config.vacuum_interval_minutes * 60),
            vacuum_retention: Duration::from_secs(config.vacuum_retention_hours * 3600),
            compact_interval: Duration::from_secs(config.compact_interval_minutes * 60),
            relink_interval: Duration::from_secs(config.relink_interval_minutes * 60),
            compact_target_file_bytes: config.compact_target_file_mib << 20,
            next,
            held,
            in_flight: None,
            ahead: None,
            metrics: metrics::Metrics::new(),
        };
        // Finish relinks and erasures a crash interrupted (relinks first: an erasure
        // of the registration's pseudonym must find the rows relinked to it).
        transform.relink().await?;
        transform.erase_pending().await?;
        // And the counts of people without consent, which follow the state: a crash
        // may have come between the two.
        transform.withhold_pending().await?;
        if transform.state.withheld_people().next().is_some() || transform.lake.counts_written() {
            transform.write_counts().await?;
        }
        Ok(transform)
    }

    /// The transform's metrics, to register where they are shown.
    pub fn metrics(&self) -> &metrics::Metrics {
        &self.metrics
    }

    /// The audit trail this transform writes to, if any.
    pub fn audit_log(&self) -> Option<Arc<AuditLog>> {
        self.audit.clone()
    }

    /// Records every erasure and withholding in `audit` (the service's audit trail).
    pub fn with_audit(mut self, audit: Arc<AuditLog>) -> Self {
        self.audit = Some(audit);
        self
    }

    /// An entry in the audit trail, if there is one: `detail` of `action`, with the
    /// rows changed; an entry that cannot be written is logged (the erasure stands).
    fn audit(&self, action: AuditAction, started: Instant, rows: u64, detail: String) {
        let Some(audit) = &self.audit else { return };
        let mut entry = AuditEntry::new(action, started);
        entry.user = Some("transform".into());
        entry.rows = Some(rows);
        entry.detail = Some(detail);
        if let Err(error) = audit.record(&entry) {
            tracing::error!(%error, "cannot write the audit trail");
        }
    }

    /// Ready while the event log and the lake answer.
    pub fn readiness(
        log: Arc<dyn EventLog>,
        lake: techmon_lake::LakeLocation,
    ) -> techmon_service::Readiness {
        Arc::new(move || {
            let (log, lake) = (Arc::clone(&log), lake.clone());
            Box::pin(async move {
                let unavailable = |code, what: &str, error: String| {
                    tracing::warn!(%error, "the {what} does not answer");
                    techmon_service::ApiError::unavailable(
                        5,
                        code,
                        format!("the {what} is unavailable"),
                    )
                };
                log.check_ready()
                    .await
                    .map_err(|e| unavailable("log_unavailable", "event log", e.to_string()))?;
                lake.open(EVENT_TABLES[0].name)
                    .await
                    .map(|_| ())
                    .map_err(|e| unavailable("lake_unavailable", "lake", e.to_string()))
            })
        })
    }

    /// Carries metrics over (a reopened transform counts on where the last one stopped).
    pub fn with_metrics(mut self, metrics: metrics::Metrics) -> Self {
        self.metrics = metrics;
        self
    }

    pub fn lake(&self) -> &lake::Lake {
        &self.lake
    }

    pub fn state(&self) -> &State {
        &self.state
    }

    /// Reads one round from every partition and starts its commit, after the last
    /// round's has landed (an idle round, [`Transform::catch_up`] and shutdown land
    /// it too). Returns what it did.
    pub async fn round(&mut self) -> Result<Progress, TransformError> {
        let mut work = RoundWork::default();
        let started = Instant::now();
        let (mut reading, mut parsings) = match self.ahead.take() {
            Some(ahead) if ahead.reading.start == self.next => {
                work.progress.read += ahead.parsings.iter().map(|p| p.records).sum::<usize>();
                (ahead.reading, ahead.parsings)
            }
            _ => (Reading::new(&self.next), VecDeque::new()),
        };
        let seen = self.seen_ids();
        while reading.goes_on(&self.bounds, started) {
            let records = reading.pass(&*self.log, &self.bounds).await?;
            work.progress.read += records.len();
            // Parsing this pass runs while the passes before it are transformed and the
            // next one read.
            parsings.push_back(Parsing::start(
                records,
                (&self.key, &self.person_keys),
                &seen,
            ));
            while parsings.len() > 1
                && let Some(parsed) = parsings.pop_front()
            {
                self.transform_parsed(parsed, &mut work).await?;
            }
        }
        // With more in the log, the next round's first passes are read now and parsed
        // while this round's last pass is transformed and its state written, which
        // takes one core. They look their ids up in the seen ones when they are
        // transformed, after this round's are among them.
        if reading.backlog {
            self.read_ahead(&reading.cursor).await;
        }
        for parsed in parsings {
            self.transform_parsed(parsed, &mut work).await?;
        }
        // The state applies this round's ids in place (a copy if this were kept).
        drop(seen);
        work.drop_replaced()?;
        work.relink_rows()?;
        let counts_changed = withhold::withhold_rows(&self.state, &mut work)?;
        let RoundWork {
            rows,
            mut changes,
            links: round_links,
            mut progress,
            ..
        } = work;
        let read_to = reading.read_to;
        changes.applied.clone_from(&read_to);
        if progress.read == 0 {
            self.land().await?;
            return Ok(progress);
        }
        // State first: links and withdrawals are derived deterministically from the
        // log, so a crash before the lake commits only repeats the same work.
        changes.links.extend(round_links);
        let withdrawn_now = changes.withdrawn.clone();
        let withhold_now = !changes.pending_withholds.is_empty();
        self.state.apply(changes)?;
        self.land().await?;
        if counts_changed {
            self.write_counts().await?;
        }
        // Before the versions that replace them are appended, so that no reader sees
        // both; a crash between the two repeats the round, whose versions come again.
        progress.replaced_rows += self.remove_replaced().await?;
        // Every table written covers every partition read in this round: what of it
        // belonged to the table is in this commit. A table can be ahead of the round
        // (the round resumed behind it, for another table): its position never moves
        // back, or rows it holds would be written again.
        let mut appends = Vec::new();
        for (table, batches) in EVENT_TABLES.iter().zip(rows) {
            if batches.is_empty() {
                continue;
            }
            let slots = self
                .held
                .get(table.name)
                .ok_or(TransformError::UnknownTable(table.name))?;
            let covers: Vec<(u32, u64)> = read_to
                .iter()
                .map(|(partition, last)| {
                    (
                        *partition,
                        slots[*partition as usize].map_or(*last, |held| held.max(*last)),
                    )
                })
                .collect();
            progress.written += batches.iter().map(RecordBatch::num_rows).sum::<usize>();
            appends.push(lake::Append {
                table,
                rows: batches,
                covers,
            });
        }
        // This round's commits run while the next round reads and parses.
        self.in_flight = Some((self.lake.start_appends(appends)?, Instant::now()));
        for (partition, last) in read_to {
            self.next[partition as usize] = last + 1;
            let end = self.log.end_offset(partition).await?;
            self.metrics
                .lag
                .with_label_values(&[&partition.to_string()])
                .set(end.saturating_sub(last + 1) as i64);
        }
        self.metrics.events_read.inc_by(progress.read as u64);
        self.metrics.rows_written.inc_by(progress.written as u64);
        self.metrics.duplicates.inc_by(progress.duplicates as u64);
        self.metrics
            .unregistered_references
            .inc_by(progress.unregistered_references as u64);
        if withhold_now {
            self.land().await?;
            progress.withheld_rows += self.withhold_pending().await?;
        }
        if !withdrawn_now.is_empty() {
            self.land().await?;
            // Rows still to be relinked to a withdrawn pseudonym go with it.
            progress.relinked_rows += self.relink().await?;
            progress.erased_rows += self.erase_pending().await?;
        }
        Ok(progress)
    }

    /// Reads the first passes of the round that starts at `cursor`, each parsed from
    /// when it is read, so that reading the next overlaps it. On a read error it keeps
    /// none: that round reads them again, and fails if the log still does.
    async fn read_ahead(&mut self, cursor: &[u64]) {
        let mut next = Reading::new(cursor);
        let mut parsings = VecDeque::new();
        let started = Instant::now();
        for _ in 0..AHEAD_PASSES {
            match next.pass(&*self.log, &self.bounds).await {
                Ok(records) if !records.is_empty() => {
                    parsings.push_back(Parsing::start(
                        records,
                        (&self.key, &self.person_keys),
                        &None,
                    ));
                }
                Ok(_) => {}
                Err(error) => {
                    tracing::debug!(%error, "reading the next round ahead failed");
                    return;
                }
            }
            if !next.backlog || !next.goes_on(&self.bounds, started) {
                break;
            }
        }
        if !parsings.is_empty() {
            self.ahead = Some(Ahead {
                reading: next,
                parsings,
            });
        }
    }

    /// Waits for the commits the last round started, and moves the positions of the
    /// tables that committed on (also when another failed).
    async fn land(&mut self) -> Result<(), TransformError> {
        let Some((pending, started)) = self.in_flight.take() else {
            return Ok(());
        };
        let committed = self.lake.finish_appends(pending).await;
        self.metrics
            .commit_seconds
            .observe(started.elapsed().as_secs_f64());
        for (table, covers) in committed.done {
            if let Some(slots) = self.held.get_mut(table) {
                for (partition, last) in covers {
                    slots[partition as usize] = Some(last);
                }
            }
        }
        committed.error.map_or(Ok(()), Err)
    }

    async fn transform_parsed(
        &self,
        parsing: Parsing,
        work: &mut RoundWork,
    ) -> Result<(), TransformError> {
        let seen = self.seen_ids();
        for prepared in parsing.finish().await {
            let mut prepared = prepared?;
            // Read ahead of the round before, a pass was prepared before that round's
            // ids were seen: it looks them up now.
            if let Some(seen) = &seen {
                for record in prepared.records.iter_mut() {
                    (record.seen_before).get_or_insert_with(|| seen.contains(record.event_id));
                }
            }
            self.transform_prepared(prepared, work, true)?;
        }
        Ok(())
    }

    /// Takes prepared records in the log's order: drops second copies and the events of
    /// withdrawn people, links registrations, and fills in each row's person.
    fn transform_prepared(
        &self,
        prepared: Prepared,
        work: &mut RoundWork,
        from_log: bool,
    ) -> Result<(), TransformError> {
        let Prepared { records, rows } = prepared;
        // Per table: the last offset of each partition it holds.
        let held: Vec<Option<&Vec<Option<u64>>>> =
            EVENT_TABLES.iter().map(|t| self.held.get(t.name)).collect();
        // Per table of these rows: which stay, and the pseudonyms for its person
        // column.
        let mut keep: Vec<Vec<bool>> = rows
            .iter()
            .map(|r| Vec::with_capacity(r.as_ref().map_or(0, batch::TableRows::len)))
            .collect();
        let mut persons: Vec<Option<StringBuilder>> = EVENT_TABLES
            .iter()
            .map(|t| t.person_column().map(|_| StringBuilder::new()))
            .collect();
        for record in records {
            let PreparedRecord {
                partition,
                offset,
                event_id,
                seen_before,
                outcome,
            } = record;
            let (table, subject) = match outcome {
                Outcome::Dead {
                    reason,
                    detail,
                    payload,
                } => {
                    work.progress.dead_letters += 1;
                    self.metrics
                        .dead_letters
                        .with_label_values(&[reason.as_str()])
                        .inc();
                    work.changes.dead_letters.push(DeadLetter {
                        partition,
                        offset,
                        event_id: Some(event_id),
                        reason,
                        detail,
                        dead_at: chrono::Utc::now(),
                        payload,
                    });
                    continue;
                }
                Outcome::Withdrawal { subject, shred } => {
                    work.changes.shred.extend(shred);
                    (None, subject)
                }
                Outcome::Row {
                    table,
                    subject,
                    replaces,
                } => {
                    if let Some(earlier) = replaces {
                        work.changes.replaced.insert(earlier, table);
                    }
                    (Some(table), subject)
                }
            };
            let replaced =
                self.state.is_replaced(event_id) || work.changes.replaced.contains_key(&event_id);
            let pseudonym = self.row_participant(
                event_id,
                from_log.then_some((partition, offset)),
                seen_before,
                table.is_none(),
                subject,
                work,
            );
            let Some(table) = table else { continue };
            if replaced && pseudonym.is_some() {
                work.progress.replaced_rows += 1;
            }
            let stays = pseudonym.is_some()
                && !replaced
                && !(from_log
                    && held[table]
                        .and_then(|slots| slots[partition as usize])
                        .is_some_and(|held| offset <= held));
            keep[table].push(stays);
            if let Some(column) = &mut persons[table] {
                // A row that goes gets a placeholder: the column may not hold nulls.
                match &pseudonym {
                    Some(Some(p)) if stays => column.append_value(p),
                    Some(None) if stays => column.append_null(),
                    _ => column.append_value(""),
                }
            }
        }
        for ((table, table_rows), (keep, persons)) in rows
            .into_iter()
            .enumerate()
            .zip(keep.into_iter().zip(persons))
        {
            let Some(table_rows) = table_rows else {
                continue;
            };
            let name = table_rows.table.name;
            let batch = table_rows.finish(persons.map(|mut b| Arc::new(b.finish()) as _))?;
            let batch = if keep.iter().all(|k| *k) {
                batch
            } else {
                filter_record_batch(&batch, &BooleanArray::from(keep)).map_err(|source| {
                    TransformError::Rows {
                        table: name,
                        source,
                    }
                })?
            };
            if batch.num_rows() > 0 {
                work.rows[table].push(batch);
            }
        }
        Ok(())
    }

    /// Decides whether a valid event counts, noting what it changes: `None` when it
    /// does not (a second copy, or about a withdrawn participant), else the pseudonym
    /// of its participant, if it has one. A withdrawal is noted and never counts.
    fn row_participant(
        &self,
        event_id: uuid::Uuid,
        position: Option<(u32, u64)>,
        seen_before: Option<bool>,
        withdrawal: bool,
        subject: tables::Subject,
        work: &mut RoundWork,
    ) -> Option<Option<String>> {
        let RoundWork {
            changes,
            links: round_links,
            relinks: round_relinks,
            progress,
            ..
        } = work;
        if !self
            .state
            .is_first_copy(event_id, position, seen_before, changes)
        {
            progress.duplicates += 1;
            return None;
        }
        let known = KnownNow {
            state: &self.state,
            links: round_links,
            withdrawn: &changes.withdrawn,
        };
        let decision = identity::decide(subject, withdrawal, &self.key, &known);
        progress.unregistered_references += usize::from(decision.unregistered);
        changes.withdrawn.extend(decision.also_withdrawn);
        if let (Some((provisional, at)), Some(pseudonym)) = (decision.relink, &decision.pseudonym) {
            match at {
                identity::RowsAt::Round => {
                    round_relinks.insert(provisional, pseudonym.clone());
                }
                identity::RowsAt::Lake => changes.relinks.push((provisional, pseudonym.clone())),
            }
        }
        if decision.verdict == identity::Verdict::Dropped {
            progress.dropped_after_withdrawal += 1;
            return None;
        }
        // A reference first named by its withdrawal stays withdrawn when its
        // registration comes.
        if let (Some(link), Some(pseudonym)) = (decision.link, &decision.pseudonym) {
            round_links.insert(link, pseudonym.clone());
        }
        if decision.verdict == identity::Verdict::Withdrawal {
            changes.withdrawn.extend(decision.pseudonym);
            return None;
        }
        Some(decision.pseudonym)
    }

    /// Deletes from the lake the rows of the events that later versions of their
    /// plain-sheet rows replaced; returns how many.
    async fn remove_replaced(&mut self) -> Result<u64, TransformError> {
        let mut removed = 0;
        for (table, ids) in self.state.pending_removals() {
            removed += self.lake.remove_events(&EVENT_TABLES[table], &ids).await?;
            self.state.mark_removed(&ids)?;
        }
        Ok(removed)
    }

    /// Takes the lake rows of people whose consent was taken back out of the research
    /// tables, after noting what the KPIs count of them (see [`consent`]).
    async fn withhold_pending(&mut self) -> Result<u64, TransformError> {
        let started = Instant::now();
        let pending = self.state.pending_withholds();
        if pending.is_empty() {
            return Ok(0);
        }
        let mut changed = 0;
        for (person, pseudonyms) in &pending {
            if !self.state.is_withdrawn(person) {
                let (attendances, profiles) = self.lake.person_rows(pseudonyms).await?;
                let mut withheld = self.state.withheld(person).cloned().unwrap_or_default();
                // None of the person's rows stays research.
                withheld.research.clear();
                withheld
                    .withheld
                    .extend(attendances.into_iter().map(|(_, attended)| attended));
                for (_, profile) in &profiles {
                    withheld.profile.merge(profile);
                }
                self.state.set_withheld(person, withheld)?;
                changed += self.lake.withhold(pseudonyms).await?;
            }
            self.state.mark_withheld(person)?;
        }
        self.write_counts().await?;
        tracing::info!(
            participants = pending.len(),
            rows = changed,
            "consent taken back: rows withheld from the research tables"
        );
        self.audit(
            AuditAction::Withhold,
            started,
            changed,
            format!(
                "consent taken back: rows of {} participant(s) withheld from the research tables",
                pending.len()
            ),
        );
        Ok(changed)
    }

    /// Rewrites the counts of people without research consent from the state.
    async fn write_counts(&mut self) -> Result<(), TransformError> {
        let counts = consent::counts(self.state.withheld_people(), self.state.training());
        let table = WITHHELD_COUNTS.name;
        let batch = consent::counts_batch(&counts)
            .map_err(|source| TransformError::Rows { table, source })?;
        self.lake.write_counts(batch).await
    }

    async fn erase_pending(&mut self) -> Result<u64, TransformError> {
        let started = Instant::now();
        let pending = self.state.pending_erasures();
        if !pending.is_empty() {
            // Their registrations at every hub, whose sealed fields go with them: noted
            // before the erasure, so that a crash after it still destroys them.
            let linked: Vec<String> = self
                .state
                .references_of(&pending)
                .into_iter()
                .map(|(hub, reference)| format!("participant:{hub}:{reference}"))
                .collect();
            self.state.note_shreds(&linked)?;
        }
        let erased = if pending.is_empty() {
            0
        } else {
            let erased = self.lake.erase(&pending).await?;
            self.state.mark_erased(&pending)?;
            tracing::info!(
                participants = pending.len(),
                rows = erased,
                "consent withdrawn: rows erased from the lake"
            );
            erased
        };
        let shreds = self.state.pending_shreds();
        if !shreds.is_empty() {
            for subject in &shreds {
                self.person_keys.shred(subject)?;
            }
            self.state.mark_shredded(&shreds)?;
            tracing::info!(
                keys = shreds.len(),
                "consent withdrawn: the person keys of the log's sealed fields destroyed"
            );
        }
        if !pending.is_empty() || !shreds.is_empty() {
            self.audit(
                AuditAction::Erasure,
                started,
                erased,
                format!(
                    "consent withdrawn: lake rows of {} participant(s) erased, {} person key(s) destroyed",
                    pending.len(),
                    shreds.len()
                ),
            );
        }
        Ok(erased)
    }

    /// Runs rounds until every partition is read to its end offset (as it was when
    /// called). For replays and tests.
    pub async fn catch_up(&mut self) -> Result<Progress, TransformError> {
        self.catch_up_reporting(|_, _, _| {}).await
    }

    /// [`Transform::catch_up`], calling `report(progress so far, records read, records
    /// to read)` after every round.
    pub async fn catch_up_reporting(
        &mut self,
        mut report: impl FnMut(&Progress, u64, u64),
    ) -> Result<Progress, TransformError> {
        let mut ends = Vec::new();
        for partition in 0..self.log.partitions() {
            ends.push(self.log.end_offset(partition).await?);
        }
        let start: u64 = self.next.iter().sum();
        let to_read = ends.iter().sum::<u64>().saturating_sub(start);
        let mut total = Progress::default();
        while self.next.iter().zip(&ends).any(|(next, end)| next < end) {
            total += self.round().await?;
            report(&total, self.next.iter().sum::<u64>() - start, to_read);
        }
        self.land().await?;
        Ok(total)
    }

    /// Sends the dead letters through the transform again (after a fix, such as support
    /// for their schema version): those that now transform are written to the lake
    /// and leave the dead letters; the others stay. Safe to repeat after a crash: an
    /// event its table already holds is not written again. Returns (redriven, still dead).
    pub async fn redrive(&mut self) -> Result<(usize, usize), TransformError> {
        self.land().await?;
        let letters = self.state.dead_letters()?;
        let records = letters
            .iter()
            .map(|letter| StoredRecord {
                partition: letter.partition,
                offset: letter.offset,
                key: String::new(),
                event_id: letter.event_id.unwrap_or_default(),
                timestamp_ms: 0,
                payload: letter.payload.clone().into_bytes(),
            })
            .collect();
        let mut work = RoundWork::default();
        // Not read from the log: judged by their ids, and not skipped for being behind
        // what the tables hold.
        let prepared = prepare(
            records,
            &self.key,
            &self.person_keys,
            self.seen_ids().as_deref(),
        )?;
        self.transform_prepared(prepared, &mut work, false)?;
        work.drop_replaced()?;
        let still_dead: HashSet<(u32, u64)> = work
            .changes
            .dead_letters
            .iter()
            .map(|letter| (letter.partition, letter.offset))
            .collect();
        let redriven: Vec<(u32, u64)> = letters
            .iter()
            .map(|letter| (letter.partition, letter.offset))
            .filter(|position| !still_dead.contains(position))
            .collect();
        work.relink_rows()?;
        let counts_changed = withhold::withhold_rows(&self.state, &mut work)?;
        let RoundWork {
            rows,
            mut changes,
            links: round_links,
            ..
        } = work;
        changes.dead_letters.clear();
        changes.links.extend(round_links);
        self.state.apply(changes)?;
        if counts_changed {
            self.write_counts().await?;
        }
        self.remove_replaced().await?;
        for (table, batches) in EVENT_TABLES.iter().zip(rows) {
            if batches.is_empty() {
                continue;
            }
            let name = table.name;
            let arrow = |source| TransformError::Rows {
                table: name,
                source,
            };
            let rows = concat_batches(&batches[0].schema(), &batches).map_err(arrow)?;
            let ids = rows.column(0).as_string::<i32>();
            let present = self
                .lake
                .event_ids_in(
                    name,
                    &ids.iter().flatten().map(str::to_string).collect::<Vec<_>>(),
                )
                .await?;
            let fresh: BooleanArray = ids
                .iter()
                .map(|id| Some(!id.is_some_and(|id| present.contains(id))))
                .collect();
            let fresh = filter_record_batch(&rows, &fresh).map_err(arrow)?;
            if fresh.num_rows() > 0 {
                self.lake.append(table, vec![fresh], Vec::new()).await?;
            }
        }
        self.state.remove_dead_letters(&redriven)?;
        self.withhold_pending().await?;
        self.relink().await?;
        self.erase_pending().await?;
        Ok((redriven.len(), still_dead.len()))
    }

    /// The ids of the events already transformed, where the log may hold a second copy
    /// of an event (looking an id up costs a cache miss or two, and holding them all
    /// 16 bytes each).
    fn seen_ids(&self) -> Option<Arc<SeenIds>> {
        (!self.log.holds_each_event_id_once()).then(|| self.state.seen_ids())
    }

    /// Runs rounds until `shutdown` completes, waiting `poll_interval_ms` when idle;
    /// compacts every `compact_interval_minutes`, and vacuums and trims the event log
    /// every `vacuum_interval_minutes`.
    pub async fn run(mut self, shutdown: impl Future<Output = ()>) -> Result<(), TransformError> {
        tokio::pin!(shutdown);
        let mut last_compaction = Instant::now();
        let mut last_vacuum = Instant::now();
        let mut last_relink = Instant::now();
        loop {
            // Compaction first: a vacuum due at the same moment then counts the files it
            // replaced among those to delete once older than the retention.
            if came_due(&mut last_compaction, self.compact_interval) {
                self.compact().await?;
            }
            if came_due(&mut last_vacuum, self.vacuum_interval) {
                self.vacuum(self.vacuum_retention).await?;
                self.trim_log().await?;
            }
            if came_due(&mut last_relink, self.relink_interval) {
                self.relink().await?;
            }
            let progress = tokio::select! {
                _ = &mut shutdown => return self.land().await,
                progress = self.round() => progress?,
            };
            if progress.read > 0 {
                tracing::info!(?progress, "transform round");
                continue;
            }
            tokio::select! {
                _ = &mut shutdown => return self.land().await,
                _ = tokio::time::sleep(self.poll) => {}
            }
        }
    }
}

/// Whether `interval` has passed since `last`; if so, `last` becomes now.
fn came_due(last: &mut Instant, interval: Duration) -> bool {
    let due = last.elapsed() >= interval;
    if due {
        *last = Instant::now();
    }
    due
}

/// What the identity rules know during a round: the state of the rounds before, and
/// this round's links and withdrawals so far.
struct KnownNow<'a> {
    state: &'a State,
    links: &'a state::QuickMap<(String, String), String>,
    withdrawn: &'a [String],
}

impl identity::Known for KnownNow<'_> {
    fn linked(&self, hub_id: &str, reference: &str) -> Option<String> {
        self.links
            .get(&(hub_id.to_string(), reference.to_string()))
            .cloned()
            .or_else(|| self.state.linked(hub_id, reference))
    }

    fn linked_before(&self, hub_id: &str, reference: &str) -> bool {
        self.state.linked(hub_id, reference).is_some()
    }

    fn is_withdrawn(&self, pseudonym: &str) -> bool {
        self.state.is_withdrawn(pseudonym) || self.withdrawn.iter().any(|p| p == pseudonym)
    }
}
