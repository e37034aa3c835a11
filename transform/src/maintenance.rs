//! Scheduled maintenance of the lake and the log, beside the rounds: relinking rows
//! sent before their registration, vacuuming old table versions, trimming the log
//! past its retention, compacting small files.

use std::time::Duration;

use crate::{Transform, TransformError, lake};

impl Transform {
    /// Gives the rows of references named before their registration, in a round
    /// before it, the registration's pseudonym. Scheduled maintenance, like the
    /// compaction: it rewrites the files holding such rows.
    pub async fn relink(&mut self) -> Result<u64, TransformError> {
        // The rows of the round in flight are relinked too.
        self.land().await?;
        let pending = self.state.pending_relinks();
        if pending.is_empty() {
            return Ok(0);
        }
        let (relinked, complete) = self.lake.relink(&pending).await?;
        let olds: Vec<String> = pending.into_iter().map(|(old, _)| old).collect();
        if !complete {
            // Redone next time: a table done already has none of the old left.
            tracing::info!(
                participants = olds.len(),
                "relink left for later: another writer changed a table meanwhile"
            );
            return Ok(relinked);
        }
        self.state.mark_relinked(&olds)?;
        tracing::info!(
            participants = olds.len(),
            rows = relinked,
            "events sent before their registration linked to it"
        );
        Ok(relinked)
    }

    /// Vacuums the history of the lake's tables (see [`lake::Lake::vacuum`]).
    pub async fn vacuum(&mut self, retention: Duration) -> Result<usize, TransformError> {
        self.land().await?;
        let deleted = self.lake.vacuum(retention).await?;
        tracing::info!(files = deleted, "vacuumed the history of the lake's tables");
        Ok(deleted)
    }

    /// Deletes the records of the event log older than its retention that every lake
    /// table has read (see [`EventLog::trim`]), and the dead letters older than it;
    /// returns how many records (none on Kafka, whose broker deletes them by the
    /// topic's `retention.ms`). A log kept for ever keeps both.
    pub async fn trim_log(&mut self) -> Result<u64, TransformError> {
        let Some(retention) = self.log.retention() else {
            return Ok(0);
        };
        // Once landed, every record before `next` is in the lake (or was nobody's).
        self.land().await?;
        let older_than = std::time::SystemTime::now()
            .checked_sub(retention)
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |t| t.as_millis() as i64);
        let mut deleted = 0;
        for (partition, before) in self.next.iter().enumerate() {
            deleted += self.log.trim(partition as u32, *before, older_than).await?;
        }
        // The dead letters keep their events in the raw zone: they go by the same rule.
        let expired: Vec<(u32, u64)> = match chrono::TimeDelta::from_std(retention)
            .ok()
            .and_then(|r| chrono::Utc::now().checked_sub_signed(r))
        {
            Some(cutoff) => self
                .state
                .dead_letters()?
                .iter()
                .filter(|letter| letter.dead_at < cutoff)
                .map(|letter| (letter.partition, letter.offset))
                .collect(),
            None => Vec::new(),
        };
        self.state.remove_dead_letters(&expired)?;
        if deleted > 0 || !expired.is_empty() {
            tracing::info!(
                records = deleted,
                dead_letters = expired.len(),
                retention_days = retention.as_secs() / 86_400,
                "deleted the event log's records and dead letters past its retention"
            );
        }
        Ok(deleted)
    }

    /// Rewrites the lake's small data files into larger ones (see
    /// [`lake::Lake::compact`]).
    pub async fn compact(&mut self) -> Result<lake::Compaction, TransformError> {
        self.land().await?;
        let compaction = self.lake.compact(self.compact_target_file_bytes).await?;
        tracing::info!(
            files_removed = compaction.files_removed,
            files_added = compaction.files_added,
            tables_skipped = ?compaction.tables_skipped,
            "compacted the lake's small files"
        );
        Ok(compaction)
    }
}
