//! The Kafka backend: an idempotent `acks=all` producer keyed by subject, topics
//! created when missing, consumer-group positions committed to the broker.
//!
//! A Kafka record is the event as the hub sent it, keyed by subject, and nothing else:
//! the event id is read back from the event's own `event_id` rather than sent again in
//! a header (a header costs every record bytes, and brokers that keep headers apart,
//! such as tansu, a row of their own).
//!
//! Kafka has no idempotency across producer sessions, so the event ids this producer
//! had acknowledged are kept in a local `redb` index. An id is recorded only after the
//! broker acknowledged its record: a crash between the two can leave one extra copy in
//! the topic, which the transform drops by event id.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::message::Message;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use redb::Database;
use uuid::Uuid;

use crate::event_ids::SeenIds;
use crate::row_versions::{LatestVersion, Versions};
use crate::{
    Appended, EventLog, KafkaConfig, LogError, LogRecord, StoredRecord, check_events,
    check_partition, event_id_of,
};

pub struct KafkaLog {
    topic: String,
    partitions: u32,
    config: KafkaConfig,
    producer: FutureProducer,
    reader: Arc<Mutex<BaseConsumer>>,
    groups: Arc<Mutex<HashMap<String, Arc<BaseConsumer>>>>,
    /// The local index of acknowledged event ids (see the module docs).
    index: Arc<Database>,
    ids: Arc<Mutex<ProducedIds>>,
    /// Applied by the broker (the topic's `retention.ms`), not by [`EventLog::trim`].
    retention: Option<Duration>,
}

impl KafkaLog {
    /// Connects, creates the topic if configured and missing (keeping records for
    /// `retention`, or for ever), and opens the id index.
    pub async fn connect(
        config: &KafkaConfig,
        topic: &str,
        partitions: u32,
        retention: Option<Duration>,
    ) -> Result<Self, LogError> {
        let base = client_config(config);
        let producer: FutureProducer = base
            .clone()
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("partitioner", "murmur2_random")
            .set("message.timeout.ms", config.message_timeout_ms.to_string())
            .set("linger.ms", "5")
            .create()
            .map_err(refused(topic, "creating the producer"))?;
        let reader: BaseConsumer = consumer_config(&base, "techmon-reader")
            .create()
            .map_err(refused(topic, "creating the reader"))?;
        let index = open_index(&config.event_id_index)?;
        let seen = SeenIds::load(&index).map_err(|e| LogError::EventIdIndex {
            path: config.event_id_index.clone(),
            source: Box::new(e),
        })?;
        let log = Self {
            topic: topic.to_string(),
            partitions,
            config: config.clone(),
            producer,
            reader: Arc::new(Mutex::new(reader)),
            groups: Arc::default(),
            index: Arc::new(index),
            ids: Arc::new(Mutex::new(ProducedIds {
                seen,
                in_flight: HashSet::new(),
                rows_in_flight: HashSet::new(),
            })),
            retention,
        };
        if config.create_topics {
            log.create_topic(&base).await?;
        }
        Ok(log)
    }

    fn timeout(&self) -> Duration {
        Duration::from_millis(self.config.request_timeout_ms)
    }

    /// The partition's first offset still held and the offset of its next record.
    async fn watermarks(&self, partition: u32) -> Result<(u64, u64), LogError> {
        check_partition(partition, self.partitions)?;
        let reader = self.reader.clone();
        let topic = self.topic.clone();
        let timeout = self.timeout();
        self.blocking(move || {
            let reader = reader.lock().unwrap_or_else(|p| p.into_inner());
            let (low, high) = reader
                .fetch_watermarks(&topic, partition as i32, timeout)
                .map_err(unavailable(&topic, "reading the watermarks"))?;
            Ok((low.max(0) as u64, high.max(0) as u64))
        })
        .await
    }

    fn unavailable(&self, doing: impl Into<String>) -> impl FnOnce(KafkaError) -> LogError {
        unavailable(&self.topic, doing)
    }

    async fn create_topic(&self, base: &ClientConfig) -> Result<(), LogError> {
        let admin: AdminClient<DefaultClientContext> = base
            .create()
            .map_err(self.unavailable("creating the admin client"))?;
        let retention_ms = self.retention.map(|r| r.as_millis().to_string());
        let mut topic = NewTopic::new(
            &self.topic,
            self.partitions as i32,
            TopicReplication::Fixed(self.config.replication_factor),
        );
        if let Some(retention_ms) = &retention_ms {
            topic = topic.set("retention.ms", retention_ms);
        }
        let options = AdminOptions::new().operation_timeout(Some(self.timeout()));
        let results = admin
            .create_topics([&topic], &options)
            .await
            .map_err(self.unavailable("creating the topic"))?;
        for result in results {
            match result {
                Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
                Err((_, code)) => {
                    return Err(self.unavailable("creating the topic")(KafkaError::AdminOp(
                        code,
                    )));
                }
            }
        }
        Ok(())
    }

    fn group_consumer(&self, group: &str) -> Result<Arc<BaseConsumer>, LogError> {
        let mut groups = self.groups.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(consumer) = groups.get(group) {
            return Ok(consumer.clone());
        }
        let consumer: BaseConsumer = consumer_config(&client_config(&self.config), group)
            .create()
            .map_err(self.unavailable(format!("creating a consumer for group {group}")))?;
        let consumer = Arc::new(consumer);
        groups.insert(group.to_string(), consumer.clone());
        Ok(consumer)
    }

    async fn blocking<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T, LogError> + Send + 'static,
    ) -> Result<T, LogError> {
        tokio::task::spawn_blocking(f)
            .await
            .map_err(|source| LogError::Blocking {
                backend: "kafka",
                source,
            })?
    }

    async fn produce(&self, record: &LogRecord) -> Result<(u32, u64), LogError> {
        let message = FutureRecord::to(&self.topic)
            .key(record.key.as_str())
            .payload(record.payload.as_slice());
        // The producer's own message timeout bounds the wait.
        match self.producer.send(message, Duration::from_secs(0)).await {
            Ok(delivery) => Ok((delivery.partition as u32, delivery.offset as u64)),
            Err((e, _)) => Err(self
                .unavailable(format!("producing event {}", record.event_id))(
                e
            )),
        }
    }
}

fn client_config(config: &KafkaConfig) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", &config.brokers)
        .set("socket.timeout.ms", config.request_timeout_ms.to_string())
        .set("log_level", "4");
    for (key, value) in &config.librdkafka {
        c.set(key, value);
    }
    c
}

fn consumer_config(base: &ClientConfig, group: &str) -> ClientConfig {
    let mut c = base.clone();
    c.set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "true")
        // Reads stop at the end of a partition: do not wait long for more data there.
        .set("fetch.wait.max.ms", "50")
        .set("auto.offset.reset", "earliest");
    c
}

fn open_index(path: &Path) -> Result<Database, LogError> {
    let err = |e: redb::Error| LogError::EventIdIndex {
        path: path.to_path_buf(),
        source: Box::new(e),
    };
    crate::files::open_or_create_database(path, None).map_err(err)
}

/// The ids the broker acknowledged, and those being sent right now.
#[derive(Debug, Default)]
struct ProducedIds {
    seen: SeenIds,
    in_flight: HashSet<Uuid>,
    /// The plain sheets' rows of which a version is being sent right now.
    rows_in_flight: HashSet<Uuid>,
}

/// Removes ids from the in-flight set when an append ends, however it ends.
struct InFlight<'a> {
    ids: &'a Mutex<ProducedIds>,
    claimed: Vec<Uuid>,
    rows: Vec<Uuid>,
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
        for id in &self.claimed {
            ids.in_flight.remove(id);
        }
        for row in &self.rows {
            ids.rows_in_flight.remove(row);
        }
    }
}

#[async_trait::async_trait]
impl EventLog for KafkaLog {
    fn backend(&self) -> &'static str {
        "kafka"
    }

    /// A producer that crashed after the broker's acknowledgement, before recording
    /// the id, sends the record again; so may another producer of the topic.
    fn holds_each_event_id_once(&self) -> bool {
        false
    }

    fn partitions(&self) -> u32 {
        self.partitions
    }

    async fn append(&self, records: Vec<LogRecord>) -> Result<Vec<Appended>, LogError> {
        check_events(&records)?;
        // Claim the ids this batch will send; an id another batch is sending right now
        // makes this append fail as retryable, so the id is never sent twice at once.
        let mut claimed = InFlight {
            ids: &self.ids,
            claimed: Vec::new(),
            rows: Vec::new(),
        };
        let mut outcome = vec![Appended::Duplicate; records.len()];
        let mut to_send = Vec::new();
        {
            let mut ids = self.ids.lock().unwrap_or_else(|p| p.into_inner());
            let busy = |what: String| LogError::Unavailable {
                backend: "kafka",
                what: format!(
                    "topic {}: {what} is being appended by another request",
                    self.topic
                ),
            };
            let rows: Vec<Uuid> = records
                .iter()
                .filter_map(|r| r.version.map(|v| v.row))
                .collect();
            let latest = crate::row_versions::latest(&self.index, &rows).map_err(|e| {
                LogError::EventIdIndex {
                    path: self.config.event_id_index.clone(),
                    source: Box::new(e),
                }
            })?;
            let latest: HashMap<Uuid, Option<Uuid>> = rows
                .into_iter()
                .zip(latest)
                .map(|(row, latest)| (row, latest.map(|l| l.event_id)))
                .collect();
            let mut in_batch = HashSet::new();
            let mut rows_in_batch = HashSet::new();
            for (i, record) in records.iter().enumerate() {
                if ids.seen.contains(record.event_id) || in_batch.contains(&record.event_id) {
                    continue;
                }
                if let Some(version) = &record.version {
                    // A version another request is sending may become the latest: made
                    // again after it, this one is made over the latest.
                    if latest.get(&version.row).copied().flatten() != version.replaces
                        || !rows_in_batch.insert(version.row)
                        || !ids.rows_in_flight.insert(version.row)
                    {
                        outcome[i] = Appended::Outdated;
                        continue;
                    }
                    claimed.rows.push(version.row);
                }
                in_batch.insert(record.event_id);
                if !ids.in_flight.insert(record.event_id) {
                    return Err(busy(format!("event {}", record.event_id)));
                }
                claimed.claimed.push(record.event_id);
                to_send.push(i);
            }
        }
        let sent =
            futures::future::join_all(to_send.iter().map(|&i| self.produce(&records[i]))).await;

        let mut stored = Vec::new();
        let mut first_error = None;
        for (&i, result) in to_send.iter().zip(sent) {
            match result {
                Ok((partition, offset)) => {
                    outcome[i] = Appended::Stored { partition, offset };
                    stored.push((records[i].event_id, records[i].version));
                }
                Err(e) => {
                    first_error.get_or_insert(e);
                }
            }
        }
        // Record what the broker acknowledged even when part of the batch failed, so a
        // retry reports those records as duplicates instead of sending them again.
        let (db, ids, path) = (
            self.index.clone(),
            self.ids.clone(),
            self.config.event_id_index.clone(),
        );
        self.blocking(move || {
            let mut ids = ids.lock().unwrap_or_else(|p| p.into_inner());
            let stored_ids: Vec<Uuid> = stored.iter().map(|(id, _)| *id).collect();
            let mut record = || -> Result<(), redb::Error> {
                let txn = db.begin_write()?;
                ids.seen.record(&txn, &stored_ids)?;
                let mut versions = Versions::open(&txn)?;
                for (event_id, version) in &stored {
                    if let Some(version) = version {
                        versions.store(*event_id, version)?;
                    }
                }
                drop(versions);
                Ok(txn.commit()?)
            };
            record().map_err(|e| {
                ids.seen.forget(&stored_ids);
                LogError::EventIdIndex {
                    path,
                    source: Box::new(e),
                }
            })
        })
        .await?;
        drop(claimed);
        match first_error {
            Some(e) => Err(e),
            None => Ok(outcome),
        }
    }

    async fn latest_versions(&self, rows: &[Uuid]) -> Result<Vec<Option<LatestVersion>>, LogError> {
        let (db, rows, path) = (
            self.index.clone(),
            rows.to_vec(),
            self.config.event_id_index.clone(),
        );
        self.blocking(move || {
            crate::row_versions::latest(&db, &rows).map_err(|e| LogError::EventIdIndex {
                path,
                source: Box::new(e),
            })
        })
        .await
    }

    async fn read(
        &self,
        partition: u32,
        from: u64,
        max: usize,
    ) -> Result<Vec<StoredRecord>, LogError> {
        check_partition(partition, self.partitions)?;
        let end = self.end_offset(partition).await?;
        if from >= end || max == 0 {
            return Ok(vec![]);
        }
        let reader = self.reader.clone();
        let topic = self.topic.clone();
        let timeout = self.timeout();
        let want = max.min((end - from) as usize);
        self.blocking(move || {
            let reader = reader.lock().unwrap_or_else(|p| p.into_inner());
            let mut assignment = TopicPartitionList::new();
            assignment
                .add_partition_offset(&topic, partition as i32, Offset::Offset(from as i64))
                .map_err(refused(&topic, "naming the partition to read"))?;
            reader
                .assign(&assignment)
                .map_err(refused(&topic, "assigning the partition to read"))?;
            let deadline = Instant::now() + timeout;
            let mut out = Vec::with_capacity(want);
            while out.len() < want {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(LogError::Unavailable {
                        backend: "kafka",
                        what: format!(
                            "topic {topic} partition {partition}: read from offset {from} timed out"
                        ),
                    });
                }
                match reader.poll(left) {
                    None => {}
                    Some(Err(KafkaError::PartitionEOF(_))) => break,
                    Some(Err(e)) => {
                        return Err(unavailable(
                            &topic,
                            format!("reading partition {partition}"),
                        )(e));
                    }
                    Some(Ok(message)) => {
                        let offset = message.offset() as u64;
                        let corrupt = |reason: &str| LogError::CorruptRecord {
                            partition,
                            offset,
                            reason: reason.to_string(),
                        };
                        let payload = message.payload().unwrap_or_default();
                        let event_id = event_id_of(payload)
                            .ok_or_else(|| corrupt("not an event with an event_id"))?;
                        let key = message
                            .key()
                            .map(|k| String::from_utf8_lossy(k).into_owned())
                            .unwrap_or_default();
                        out.push(StoredRecord {
                            partition,
                            offset,
                            key,
                            event_id,
                            timestamp_ms: message.timestamp().to_millis().unwrap_or(0),
                            payload: payload.to_vec(),
                        });
                    }
                }
            }
            Ok(out)
        })
        .await
    }

    async fn end_offset(&self, partition: u32) -> Result<u64, LogError> {
        Ok(self.watermarks(partition).await?.1)
    }

    async fn start_offset(&self, partition: u32) -> Result<u64, LogError> {
        Ok(self.watermarks(partition).await?.0)
    }

    fn retention(&self) -> Option<Duration> {
        self.retention
    }

    async fn commit_positions(
        &self,
        group: &str,
        positions: &[(u32, u64)],
    ) -> Result<(), LogError> {
        let mut list = TopicPartitionList::new();
        for (partition, offset) in positions {
            check_partition(*partition, self.partitions)?;
            list.add_partition_offset(
                &self.topic,
                *partition as i32,
                Offset::Offset(*offset as i64),
            )
            .map_err(refused(&self.topic, "naming the positions to commit"))?;
        }
        let consumer = self.group_consumer(group)?;
        let topic = self.topic.clone();
        self.blocking(move || {
            consumer
                .commit(&list, CommitMode::Sync)
                .map_err(unavailable(&topic, "committing positions"))
        })
        .await
    }

    async fn committed_position(
        &self,
        group: &str,
        partition: u32,
    ) -> Result<Option<u64>, LogError> {
        check_partition(partition, self.partitions)?;
        let mut list = TopicPartitionList::new();
        list.add_partition(&self.topic, partition as i32);
        let consumer = self.group_consumer(group)?;
        let topic = self.topic.clone();
        let timeout = self.timeout();
        self.blocking(move || {
            let committed = consumer
                .committed_offsets(list, timeout)
                .map_err(unavailable(&topic, "reading positions"))?;
            Ok(committed
                .find_partition(&topic, partition as i32)
                .and_then(|p| match p.offset() {
                    Offset::Offset(o) if o >= 0 => Some(o as u64),
                    _ => None,
                }))
        })
        .await
    }

    async fn check_ready(&self) -> Result<(), LogError> {
        let producer = self.producer.clone();
        let topic = self.topic.clone();
        let timeout = self.timeout();
        self.blocking(move || {
            producer
                .client()
                .fetch_metadata(Some(&topic), timeout)
                .map(|_| ())
                .map_err(unavailable(&topic, "reading the topic's metadata"))
        })
        .await
    }
}

/// Kafka refused `doing`: asking again would be refused too.
fn refused(topic: &str, doing: impl Into<String>) -> impl FnOnce(KafkaError) -> LogError {
    let (topic, doing) = (topic.to_string(), doing.into());
    move |source| LogError::Kafka {
        topic,
        doing,
        source: Box::new(source),
    }
}

/// Kafka did not answer `doing` (in time): asking again later may succeed.
fn unavailable(topic: &str, doing: impl Into<String>) -> impl FnOnce(KafkaError) -> LogError {
    let (topic, doing) = (topic.to_string(), doing.into());
    move |source| LogError::KafkaUnavailable {
        topic,
        doing,
        source: Box::new(source),
    }
}

impl Drop for KafkaLog {
    fn drop(&mut self) {
        // Deliver what is queued; appends only return after delivery anyway.
        let _ = self.producer.flush(Duration::from_secs(5));
    }
}
