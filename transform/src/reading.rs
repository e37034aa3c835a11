//! Reading a round from the event log: passes over every open partition in turn,
//! within the round's bounds, and the passes of the next round read ahead.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use techmon_eventlog::{EventLog, StoredRecord};

use crate::TransformError;
use crate::prepare::Parsing;

/// Passes of the next round read ahead at the end of a round: parsing one took the
/// cores less long than the round's state takes to write, and they idled the rest.
pub(crate) const AHEAD_PASSES: usize = 3;

/// When a round stops reading and commits.
pub(crate) struct RoundBounds {
    pub(crate) records_per_partition: usize,
    pub(crate) records_per_read: usize,
    pub(crate) bytes: usize,
    pub(crate) latency: Duration,
}

/// What a round has read of each partition so far.
pub(crate) struct Reading {
    /// Per partition: where the round started reading.
    pub(crate) start: Vec<u64>,
    /// Per partition: the next offset to read.
    pub(crate) cursor: Vec<u64>,
    /// Per partition: the records read.
    pub(crate) taken: Vec<usize>,
    /// The partitions still read from.
    pub(crate) open: Vec<u32>,
    /// The partitions read, each with the last offset read.
    pub(crate) read_to: Vec<(u32, u64)>,
    pub(crate) bytes: usize,
    /// Whether the last pass filled a chunk of some partition: the log holds more.
    pub(crate) backlog: bool,
}

impl Reading {
    pub(crate) fn new(next: &[u64]) -> Self {
        Self {
            start: next.to_vec(),
            cursor: next.to_vec(),
            taken: vec![0; next.len()],
            open: (0..next.len() as u32).collect(),
            read_to: Vec::new(),
            bytes: 0,
            backlog: false,
        }
    }

    pub(crate) fn goes_on(&self, bounds: &RoundBounds, started: Instant) -> bool {
        !self.open.is_empty() && self.bytes < bounds.bytes && started.elapsed() < bounds.latency
    }

    /// Reads the next pass: `records_per_read` of every open partition, all at once.
    /// Every partition gets a pass in turn, so a round that ends at its byte or time
    /// bound has not starved the partitions read last. Nothing moves on unless every
    /// read succeeded.
    pub(crate) async fn pass(
        &mut self,
        log: &dyn EventLog,
        bounds: &RoundBounds,
    ) -> Result<Vec<StoredRecord>, TransformError> {
        let reads: Vec<(u32, usize)> = self
            .open
            .iter()
            .map(|&partition| {
                let taken = self.taken[partition as usize];
                (
                    partition,
                    (bounds.records_per_partition - taken).min(bounds.records_per_read),
                )
            })
            .collect();
        let batches =
            futures::future::try_join_all(reads.iter().map(|&(partition, want)| {
                log.read(partition, self.cursor[partition as usize], want)
            }))
            .await?;
        let mut records = Vec::with_capacity(batches.iter().map(Vec::len).sum());
        let mut still_open = Vec::new();
        self.backlog = false;
        for ((partition, want), batch) in reads.into_iter().zip(batches) {
            let p = partition as usize;
            let Some(last) = batch.last().map(|r| r.offset) else {
                continue;
            };
            self.cursor[p] = last + 1;
            self.taken[p] += batch.len();
            self.bytes += batch.iter().map(|r| r.payload.len()).sum::<usize>();
            match self.read_to.iter_mut().find(|(q, _)| *q == partition) {
                Some(entry) => entry.1 = last,
                None => self.read_to.push((partition, last)),
            }
            let full = batch.len() == want;
            self.backlog |= full;
            if full && self.taken[p] < bounds.records_per_partition {
                still_open.push(partition);
            }
            records.extend(batch);
        }
        self.open = still_open;
        Ok(records)
    }
}

/// The first passes of the next round, read and being parsed.
pub(crate) struct Ahead {
    pub(crate) reading: Reading,
    pub(crate) parsings: VecDeque<Parsing>,
}
