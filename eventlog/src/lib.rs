//! The event log: the source of truth of techmon. Hubs' events are appended here by
//! ingest and read by the transform. One trait, [`EventLog`], with two backends that
//! pass the same conformance suite (`tests/conformance.rs`):
//!
//! - [`embedded::EmbeddedLog`] (the default): a durable log in one local `redb`
//!   database, with partitions, offsets and committed consumer positions, so techmon
//!   runs with no server to install.
//! - [`kafka::KafkaLog`]: Apache Kafka (or any Kafka-protocol broker) through
//!   `rdkafka`, with an idempotent `acks=all` producer.
//!
//! Both place a record by the murmur2 hash of its key (Kafka's Java default), so one
//! subject's events stay in order in one partition.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use serde::Deserialize;
use uuid::Uuid;

pub mod embedded;
pub mod event_ids;
pub mod files;
#[cfg(feature = "kafka")]
pub mod kafka;
pub mod person_keys;
pub mod row_versions;

pub use row_versions::{LatestVersion, RowVersion};

/// A record to append: the event as JSON bytes, keyed by its subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogRecord {
    /// Keeps one subject's records in order (same key, same partition).
    pub key: String,
    /// The idempotency key: a second record with the same id is not stored.
    pub event_id: Uuid,
    /// The event as a JSON object whose top-level `event_id` is `event_id` (the Kafka
    /// backend reads the id back from there).
    pub payload: Vec<u8>,
    /// For a row of a plain sheet: the version of the row it is (see [`row_versions`]).
    pub version: Option<RowVersion>,
}

/// What became of one appended record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Appended {
    /// Durably stored at this position.
    Stored { partition: u32, offset: u64 },
    /// A record with this event id was stored before (or earlier in the same batch).
    Duplicate,
    /// Not stored: the row's latest version is no longer the one this record
    /// replaces (another record of the row was stored meanwhile, or earlier in the
    /// same batch). Made again over the latest, it may be stored.
    Outdated,
}

/// A record as read back from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredRecord {
    pub partition: u32,
    pub offset: u64,
    pub key: String,
    pub event_id: Uuid,
    /// Milliseconds since the Unix epoch at which the log stored the record.
    pub timestamp_ms: i64,
    pub payload: Vec<u8>,
}

/// Errors of the event log. `Unavailable` means a retry may help; the others do not.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("this build of techmon has no {backend} backend (cargo feature `{backend}`)")]
    NotBuilt { backend: &'static str },
    /// What the log needs is busy or did not answer in time, with no error of its own.
    #[error("event log unavailable ({backend}): {what}")]
    Unavailable { backend: &'static str, what: String },
    #[error("the embedded event log at {path} could not commit: {source}")]
    Commit {
        path: PathBuf,
        /// Shared by every append of the failed commit.
        #[source]
        source: Arc<redb::Error>,
    },
    #[error("event log ({backend}): its work on a blocking thread ended: {source}")]
    Blocking {
        backend: &'static str,
        #[source]
        source: tokio::task::JoinError,
    },
    #[error("embedded event log at {path}: {source}")]
    Embedded {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
    /// Kafka refused what was asked: a retry would be refused too.
    #[cfg(feature = "kafka")]
    #[error("kafka topic {topic}: {doing}: {source}")]
    Kafka {
        topic: String,
        doing: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    /// Kafka did not answer, or not in time.
    #[cfg(feature = "kafka")]
    #[error("kafka topic {topic} unavailable: {doing}: {source}")]
    KafkaUnavailable {
        topic: String,
        doing: String,
        #[source]
        source: Box<rdkafka::error::KafkaError>,
    },
    #[error("partition {partition} does not exist (the log has {partitions})")]
    NoSuchPartition { partition: u32, partitions: u32 },
    #[error(
        "the embedded log at {path} has {found} partitions, the configuration says {configured}"
    )]
    PartitionCountChanged {
        path: PathBuf,
        found: u32,
        configured: u32,
    },
    #[error("record at partition {partition} offset {offset} is corrupt: {reason}")]
    CorruptRecord {
        partition: u32,
        offset: u64,
        reason: String,
    },
    #[error("record {event_id} is not a JSON event with that event_id")]
    NotAnEvent { event_id: Uuid },
    #[error("person keys at {path}: {source}")]
    PersonKeys {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("record {event_id}: {reason}")]
    SealedFields { event_id: Uuid, reason: String },
    #[error("event id index at {path}: {source}")]
    EventIdIndex {
        path: PathBuf,
        #[source]
        source: Box<redb::Error>,
    },
}

impl LogError {
    /// Whether the caller may retry the same operation later with a chance of success.
    pub fn is_retryable(&self) -> bool {
        match self {
            LogError::Unavailable { .. } | LogError::Commit { .. } | LogError::Blocking { .. } => {
                true
            }
            #[cfg(feature = "kafka")]
            LogError::KafkaUnavailable { .. } => true,
            _ => false,
        }
    }
}

/// The event log's operations. Positions are "next offset to read", as in Kafka.
#[async_trait::async_trait]
pub trait EventLog: Send + Sync + 'static {
    /// Which backend this is, for logs and metrics.
    fn backend(&self) -> &'static str;

    /// Number of partitions of the topic.
    fn partitions(&self) -> u32;

    /// Whether the log never holds two records with the same event id, so a reader
    /// need not look for second copies.
    fn holds_each_event_id_once(&self) -> bool;

    /// Appends records; returns, in order, where each landed. Returns only after every
    /// stored record is durable (fsynced locally, or acknowledged by all in-sync Kafka
    /// replicas). On error, records of the batch may or may not have been stored; a
    /// retry of the same batch is safe because stored event ids come back as duplicates.
    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Appended>, LogError>;

    /// The latest stored version of each of these rows of plain sheets, in their order.
    async fn latest_versions(&self, rows: &[Uuid]) -> Result<Vec<Option<LatestVersion>>, LogError>;

    /// Reads up to `max` records of one partition from offset `from` on, in offset order.
    /// Returns fewer (or none) when the end of the partition is reached.
    async fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError>;

    /// The offset the next record appended to this partition will get.
    async fn end_offset(&self, partition: u32) -> Result<u64, LogError>;

    /// The first offset of this partition the log still holds (above 0 once retention
    /// deleted older records; the end offset when it holds none).
    async fn start_offset(&self, partition: u32) -> Result<u64, LogError>;

    /// Durably records a consumer group's positions (partition, next offset to read).
    async fn commit_positions(&self, group: &str, positions: &[(u32, u64)])
    -> Result<(), LogError>;

    /// A consumer group's committed position for a partition, if it committed one.
    async fn committed_position(
        &self,
        group: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError>;

    /// Succeeds when the log can take appends now.
    async fn check_ready(&self) -> Result<(), LogError>;

    /// How long this log keeps records (`log.retention_days`); `None`, for ever.
    fn retention(&self) -> Option<std::time::Duration> {
        None
    }

    /// Deletes the records of `partition` before offset `before` that were stored
    /// before `older_than_ms` (Unix milliseconds); returns how many. Where a broker
    /// deletes by its own rule (Kafka's `retention.ms`) this deletes nothing.
    async fn trim(
        &self,
        _partition: u32,
        _before: u64,
        _older_than_ms: i64,
    ) -> Result<u64, LogError> {
        Ok(0)
    }
}

/// The Kafka backend's settings (`[log.kafka]`), read whether or not this build has
/// the backend (feature `kafka`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]`
    pub brokers: String,
    /// Create the topic when it does not exist.
    pub create_topics: bool,
    pub replication_factor: i32,
    /// How long the producer keeps trying to deliver a record before the append fails.
    pub message_timeout_ms: u64,
    /// Time limit of metadata, offset and read requests.
    pub request_timeout_ms: u64,
    /// The local index of acknowledged event ids (see the module docs).
    pub event_id_index: PathBuf,
    /// Further librdkafka settings (e.g. `security.protocol`), passed through as given.
    #[serde(default)]
    pub librdkafka: BTreeMap<String, String>,
}

/// Which backend to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Backend {
    Embedded,
    Kafka,
}

/// Event log configuration (`[log]` in techmon's configuration).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub backend: Backend,
    /// Topic the hubs' events go to.
    pub topic: String,
    /// Partitions of the topic (created with this many when missing).
    pub partitions: u32,
    pub embedded: embedded::EmbeddedConfig,
    pub kafka: KafkaConfig,
    /// Days a record is kept (0: for ever). The embedded log deletes older records
    /// once the lake holds them; a Kafka topic techmon creates gets it as
    /// `retention.ms`, and the broker deletes them.
    pub retention_days: u64,
}

impl Config {
    fn retention(&self) -> Option<std::time::Duration> {
        (self.retention_days > 0)
            .then(|| std::time::Duration::from_secs(self.retention_days * 86_400))
    }
}

/// Opens the configured backend.
pub async fn open(config: &Config) -> Result<Arc<dyn EventLog>, LogError> {
    Ok(match config.backend {
        Backend::Embedded => Arc::new(
            embedded::EmbeddedLog::open(
                &config.embedded.path,
                config.partitions,
                config.embedded.cache_mib,
            )?
            .with_retention(config.retention()),
        ),
        #[cfg(feature = "kafka")]
        Backend::Kafka => Arc::new(
            kafka::KafkaLog::connect(
                &config.kafka,
                &config.topic,
                config.partitions,
                config.retention(),
            )
            .await?,
        ),
        #[cfg(not(feature = "kafka"))]
        Backend::Kafka => return Err(LogError::NotBuilt { backend: "kafka" }),
    })
}

fn check_partition(partition: u32, partitions: u32) -> Result<(), LogError> {
    if partition >= partitions {
        return Err(LogError::NoSuchPartition {
            partition,
            partitions,
        });
    }
    Ok(())
}

/// Refuses a batch with a record whose payload is not an event carrying the record's
/// id: what is read back must name the id that was deduplicated on.
fn check_events(records: &[LogRecord]) -> Result<(), LogError> {
    match records
        .iter()
        .find(|r| event_id_of(&r.payload) != Some(r.event_id))
    {
        Some(record) => Err(LogError::NotAnEvent {
            event_id: record.event_id,
        }),
        None => Ok(()),
    }
}

/// The top-level `event_id` of an event; its other fields are skipped unread.
pub fn event_id_of(payload: &[u8]) -> Option<Uuid> {
    #[derive(serde::Deserialize)]
    struct EventId {
        event_id: Uuid,
    }
    serde_json::from_slice::<EventId>(payload)
        .ok()
        .map(|e| e.event_id)
}

/// Kafka's default partitioner (murmur2 of the key bytes, as in the Java client), so a
/// key lands on the same partition number whichever backend or client wrote it.
pub fn partition_for(key: &str, partitions: u32) -> u32 {
    (murmur2(key.as_bytes()) & 0x7fff_ffff) % partitions
}

fn murmur2(data: &[u8]) -> u32 {
    const SEED: u32 = 0x9747_b28c;
    const M: u32 = 0x5bd1_e995;
    const R: u32 = 24;
    let mut h = SEED ^ data.len() as u32;
    let mut chunks = data.chunks_exact(4);
    for chunk in &mut chunks {
        let mut k = u32::from_le_bytes([chunk[0], chunk[1], chunk[2], chunk[3]]);
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h = h.wrapping_mul(M);
        h ^= k;
    }
    let rest = chunks.remainder();
    if rest.len() >= 3 {
        h ^= u32::from(rest[2]) << 16;
    }
    if rest.len() >= 2 {
        h ^= u32::from(rest[1]) << 8;
    }
    if !rest.is_empty() {
        h ^= u32::from(rest[0]);
        h = h.wrapping_mul(M);
    }
    h ^= h >> 13;
    h = h.wrapping_mul(M);
    h ^= h >> 15;
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn murmur2_matches_the_kafka_java_client() {
        // Reference values from Kafka's UtilsTest.testMurmur2.
        assert_eq!(murmur2(b"21") as i32, -973932308);
        assert_eq!(murmur2(b"foobar") as i32, -790332482);
        assert_eq!(murmur2(b"a-little-bit-long-string") as i32, -985981536);
        assert_eq!(murmur2(b"a-little-bit-longer-string") as i32, -1486304829);
        assert_eq!(
            murmur2(b"lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8") as i32,
            -58897971
        );
        assert_eq!(murmur2(b"abc") as i32, 479470107);
    }
}
