//! Work that must not be lost: a consumer-group runner over the event topic.
//!
//! A [`Worker`] joins a named consumer group, so the topic's partitions are
//! shared among every worker of that group (on any node), and runs a handler
//! per event, one event at a time, in each partition's order. Its position is
//! committed only after the handler succeeded (or the event was dead-lettered),
//! so delivery is **at least once**: a worker that stops between the two (a
//! crash, a lost session, a rebalance) leaves the event to be handled again by
//! whoever owns the partition next. Handlers must be idempotent.
//!
//! A failing handler is retried with exponential backoff, up to
//! [`WorkerConfig::max_attempts`] times in all; then the record goes, as it
//! was, to the group's dead-letter topic with headers saying why, after how many
//! tries and where it came from ([`DeadLetter`]), and the partition moves on. A
//! record that is not an event (malformed or oversized) goes there at once.
//! [`replay_dead_letters`] puts dead letters back on their topic once the cause
//! is fixed.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use caas_core::events::Event;
use caas_core::{Error, Result};
use rdkafka::Message;
use rdkafka::consumer::{CommitMode, Consumer, StreamConsumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::message::{Header, Headers, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use tokio::sync::watch;

use super::{KafkaConfig, KafkaError, blocking, ensure_topic, partition_ids, unavailable};
use crate::event_codec;

/// How often a persisting client error is logged again.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// How a [`Worker`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerConfig {
    /// The consumer group: workers of one group share the partitions, and the
    /// group's committed positions are where a restarted worker resumes.
    pub group: String,
    /// Where events that keep failing go (default `<topic>.<group>.dlq`).
    pub dead_letter_topic: Option<String>,
    /// Handler runs per event before it is dead-lettered (default 5).
    pub max_attempts: u32,
    /// The wait after the first failure (default 100 ms), doubled after each
    /// further one up to [`WorkerConfig::max_backoff`] (default 5 s).
    pub min_backoff: Duration,
    /// The longest wait between two attempts.
    pub max_backoff: Duration,
}

impl WorkerConfig {
    /// The defaults, in consumer group `group`.
    pub fn new(group: impl Into<String>) -> Self {
        Self {
            group: group.into(),
            dead_letter_topic: None,
            max_attempts: 5,
            min_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(5),
        }
    }

    /// The dead-letter topic of this group on `kafka`'s event topic.
    pub fn dead_letter_topic_for(&self, kafka: &KafkaConfig) -> String {
        self.dead_letter_topic
            .clone()
            .unwrap_or_else(|| format!("{}.{}.dlq", kafka.topic, self.group))
    }
}

/// The headers a dead letter carries, beside the original key and payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeadLetter {
    /// Why it was given up on: the handler's last error, or why the record is
    /// not an event.
    pub reason: String,
    /// Handler runs it failed (0 for a record that is not an event).
    pub attempts: u32,
    /// The topic it was read from.
    pub topic: String,
    /// Its partition there.
    pub partition: i32,
    /// Its offset there.
    pub offset: i64,
    /// The consumer group that gave up on it.
    pub group: String,
}

/// Header names of a dead letter.
const H_REASON: &str = "caas-dlq-reason";
const H_ATTEMPTS: &str = "caas-dlq-attempts";
const H_TOPIC: &str = "caas-dlq-topic";
const H_PARTITION: &str = "caas-dlq-partition";
const H_OFFSET: &str = "caas-dlq-offset";
const H_GROUP: &str = "caas-dlq-group";
/// Set on a record that [`replay_dead_letters`] put back: `<dlq>/<partition>/<offset>`.
const H_REPLAYED_FROM: &str = "caas-replayed-from";

impl DeadLetter {
    /// The header names, in the order [`DeadLetter::headers`] writes them:
    /// reason, attempts, topic, partition, offset, group.
    pub const HEADER_NAMES: [&'static str; 6] = [
        H_REASON,
        H_ATTEMPTS,
        H_TOPIC,
        H_PARTITION,
        H_OFFSET,
        H_GROUP,
    ];

    /// The record headers that say all this.
    pub fn headers(&self) -> OwnedHeaders {
        let attempts = self.attempts.to_string();
        let partition = self.partition.to_string();
        let offset = self.offset.to_string();
        let values = [
            self.reason.as_str(),
            &attempts,
            &self.topic,
            &partition,
            &offset,
            &self.group,
        ];
        let mut h = OwnedHeaders::new_with_capacity(values.len());
        for (key, value) in Self::HEADER_NAMES.into_iter().zip(values) {
            h = h.insert(Header {
                key,
                value: Some(value),
            });
        }
        h
    }

    /// Reads the headers of a dead-letter record; `None` when any is missing or
    /// unreadable (a record this adapter did not write).
    pub fn from_message<M: Message>(message: &M) -> Option<Self> {
        let headers = message.headers()?;
        let get = |name: &str| -> Option<String> {
            headers
                .iter()
                .find(|h| h.key == name)
                .and_then(|h| h.value)
                .and_then(|v| std::str::from_utf8(v).ok())
                .map(str::to_owned)
        };
        Some(Self {
            reason: get(H_REASON)?,
            attempts: get(H_ATTEMPTS)?.parse().ok()?,
            topic: get(H_TOPIC)?,
            partition: get(H_PARTITION)?.parse().ok()?,
            offset: get(H_OFFSET)?.parse().ok()?,
            group: get(H_GROUP)?,
        })
    }
}

/// What a worker has done, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WorkerStats {
    /// Events its handler completed.
    pub processed: u64,
    /// Handler failures that were retried.
    pub retries: u64,
    /// Records sent to the dead-letter topic.
    pub dead_lettered: u64,
    /// Commits the broker refused or did not answer (the records concerned
    /// will be handled again).
    pub commit_failures: u64,
}

#[derive(Debug, Default)]
struct Counters {
    processed: AtomicU64,
    retries: AtomicU64,
    dead_lettered: AtomicU64,
    commit_failures: AtomicU64,
}

type BoxFuture = std::pin::Pin<Box<dyn Future<Output = Result<()>> + Send>>;
type Handler = Arc<dyn Fn(Arc<Event>) -> BoxFuture + Send + Sync>;

/// A running consumer-group member: see the module documentation. Dropping it
/// stops it at once (whatever it was doing is redone by the next owner of the
/// partition); [`Worker::stop`] lets the current event finish first.
#[derive(Debug)]
pub struct Worker {
    stop: watch::Sender<bool>,
    task: Option<tokio::task::JoinHandle<()>>,
    counters: Arc<Counters>,
    dead_letter_topic: String,
}

impl Worker {
    /// Joins `config.group` on `kafka`'s event topic and runs `handler` for
    /// every event of the partitions it is given, from the group's committed
    /// positions (from the oldest record kept for a new group). Creates the
    /// event and dead-letter topics when missing.
    ///
    /// The handler's error (or panic) counts as a failed attempt.
    pub async fn start<H, F>(kafka: KafkaConfig, config: WorkerConfig, handler: H) -> Result<Self>
    where
        H: Fn(Arc<Event>) -> F + Send + Sync + 'static,
        F: Future<Output = Result<()>> + Send + 'static,
    {
        let dead_letter_topic = config.dead_letter_topic_for(&kafka);
        for topic in [&kafka.topic, &dead_letter_topic] {
            ensure_topic(&kafka, topic, kafka.partitions)
                .await
                .map_err(|e| unavailable(format!("create the topic {topic}"), e))?;
        }
        let consumer: StreamConsumer = kafka
            .consumer_config(Some(&config.group))
            .create()
            .map_err(|e| unavailable("create a group consumer", e.into()))?;
        consumer
            .subscribe(&[kafka.topic.as_str()])
            .map_err(|e| unavailable("join the consumer group", e.into()))?;
        let producer: FutureProducer = kafka
            .producer_config()
            .create()
            .map_err(|e| unavailable("create the dead-letter producer", e.into()))?;
        let handler: Handler = Arc::new(move |e| -> BoxFuture { Box::pin(handler(e)) });
        let (stop, stop_rx) = watch::channel(false);
        let counters = Arc::new(Counters::default());
        let run = Run {
            kafka,
            config,
            dead_letter_topic: dead_letter_topic.clone(),
            consumer: Arc::new(consumer),
            producer,
            handler,
            stop: stop_rx,
            counters: counters.clone(),
            last_error_log: None,
        };
        Ok(Self {
            stop,
            task: Some(tokio::spawn(run.run())),
            counters,
            dead_letter_topic,
        })
    }

    /// What it has done so far.
    pub fn stats(&self) -> WorkerStats {
        WorkerStats {
            processed: self.counters.processed.load(Ordering::Relaxed),
            retries: self.counters.retries.load(Ordering::Relaxed),
            dead_lettered: self.counters.dead_lettered.load(Ordering::Relaxed),
            commit_failures: self.counters.commit_failures.load(Ordering::Relaxed),
        }
    }

    /// Where its dead letters go.
    pub fn dead_letter_topic(&self) -> &str {
        &self.dead_letter_topic
    }

    /// Stops once the current event is done (handled and committed, or left
    /// for the next owner), and leaves the group.
    pub async fn stop(mut self) {
        self.stop.send_replace(true);
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
        }
    }
}

/// One record as read, detached from the consumer.
struct Record {
    topic: String,
    partition: i32,
    offset: i64,
    key: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// The worker's task.
struct Run {
    kafka: KafkaConfig,
    config: WorkerConfig,
    dead_letter_topic: String,
    consumer: Arc<StreamConsumer>,
    producer: FutureProducer,
    handler: Handler,
    stop: watch::Receiver<bool>,
    counters: Arc<Counters>,
    last_error_log: Option<Instant>,
}

impl Run {
    async fn run(mut self) {
        let consumer = self.consumer.clone();
        loop {
            if *self.stop.borrow() {
                break;
            }
            let record = tokio::select! {
                _ = self.stop.changed() => break,
                m = consumer.recv() => match m {
                    Ok(m) => Record {
                        topic: m.topic().to_owned(),
                        partition: m.partition(),
                        offset: m.offset(),
                        key: m.key().map(<[u8]>::to_vec),
                        payload: m.payload().unwrap_or_default().to_vec(),
                    },
                    Err(RdKafkaError::PartitionEOF(_)) => continue,
                    Err(e) => {
                        self.client_error(&e);
                        continue;
                    }
                },
            };
            self.process(record).await;
        }
        // Leaving the group at once hands the partitions to the others rather
        // than after a session timeout; run off the runtime (it blocks).
        let consumer = self.consumer.clone();
        let _ = blocking(move || {
            consumer.unsubscribe();
            Ok(())
        })
        .await;
    }

    fn client_error(&mut self, e: &RdKafkaError) {
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
        {
            self.last_error_log = Some(now);
            tracing::warn!(error = %e, group = %self.config.group, "kafka worker: client error (it retries by itself)");
        }
    }

    async fn process(&mut self, record: Record) {
        let event = match event_codec::decode(&record.payload, self.kafka.max_event_bytes) {
            Ok(e) => Arc::new(e),
            Err(e) => {
                tracing::warn!(
                    why = %e, partition = record.partition, offset = record.offset,
                    "kafka worker: a record that is not an event; dead-lettering it"
                );
                let reason = format!("unreadable record: {e}");
                if self.dead_letter(&record, reason, 0).await {
                    self.commit(&record).await;
                }
                return;
            }
        };
        let mut backoff = self.config.min_backoff;
        let mut attempt = 0u32;
        loop {
            attempt += 1;
            // In a task of its own, so that a handler's panic is a failed
            // attempt rather than the end of the worker; stopped with the
            // worker if it is dropped meanwhile.
            let mut task = AbortOnDrop(tokio::spawn((self.handler)(event.clone())));
            let outcome = match (&mut task.0).await {
                Ok(r) => r,
                Err(e) => Err(Error::internal(format!("the handler panicked: {e}"))),
            };
            match outcome {
                Ok(()) => {
                    self.counters.processed.fetch_add(1, Ordering::Relaxed);
                    self.commit(&record).await;
                    return;
                }
                Err(e) if attempt >= self.config.max_attempts.max(1) => {
                    tracing::warn!(
                        error = %e, attempt, partition = record.partition, offset = record.offset,
                        "kafka worker: giving up on an event; dead-lettering it"
                    );
                    if self.dead_letter(&record, e.to_string(), attempt).await {
                        self.commit(&record).await;
                    }
                    return;
                }
                Err(e) => {
                    self.counters.retries.fetch_add(1, Ordering::Relaxed);
                    tracing::info!(error = %e, attempt, "kafka worker: handler failed; retrying in {backoff:?}");
                    if self.sleep_or_stop(backoff).await {
                        return;
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    /// Waits; `true` when asked to stop meanwhile.
    async fn sleep_or_stop(&mut self, d: Duration) -> bool {
        if *self.stop.borrow() {
            return true;
        }
        tokio::select! {
            _ = tokio::time::sleep(d) => *self.stop.borrow(),
            _ = self.stop.changed() => true,
        }
    }

    /// Sends `record` to the dead-letter topic, trying until the broker has it;
    /// `false` when asked to stop first (the record is then left uncommitted).
    async fn dead_letter(&mut self, record: &Record, reason: String, attempts: u32) -> bool {
        let letter = DeadLetter {
            reason,
            attempts,
            topic: record.topic.clone(),
            partition: record.partition,
            offset: record.offset,
            group: self.config.group.clone(),
        };
        let mut backoff = self.config.min_backoff;
        loop {
            let mut out = FutureRecord::to(&self.dead_letter_topic)
                .payload(&record.payload)
                .headers(letter.headers());
            if let Some(k) = &record.key {
                out = out.key(k);
            }
            match send(&self.producer, out, self.kafka.publish_timeout).await {
                Ok(()) => {
                    self.counters.dead_lettered.fetch_add(1, Ordering::Relaxed);
                    return true;
                }
                Err(e) => {
                    tracing::warn!(error = %e, "kafka worker: cannot write a dead letter; retrying in {backoff:?}");
                    if self.sleep_or_stop(backoff).await {
                        return false;
                    }
                    backoff = (backoff * 2).min(self.config.max_backoff);
                }
            }
        }
    }

    /// Commits the position after `record`. A failure only means the record
    /// will be handled again (at least once); it is counted and logged.
    async fn commit(&self, record: &Record) {
        let mut tpl = TopicPartitionList::with_capacity(1);
        let next = Offset::Offset(record.offset.saturating_add(1));
        if let Err(e) = tpl.add_partition_offset(&record.topic, record.partition, next) {
            tracing::warn!(error = %e, "kafka worker: cannot commit");
            self.counters
                .commit_failures
                .fetch_add(1, Ordering::Relaxed);
            return;
        }
        let consumer = self.consumer.clone();
        if let Err(e) = blocking(move || consumer.commit(&tpl, CommitMode::Sync)).await {
            tracing::warn!(error = %e, partition = record.partition, offset = record.offset,
                "kafka worker: commit failed; the event will be handled again");
            self.counters
                .commit_failures
                .fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// A task that ends when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Produces `record` and waits for the broker's acknowledgement.
async fn send(
    producer: &FutureProducer,
    record: FutureRecord<'_, Vec<u8>, Vec<u8>>,
    timeout: Duration,
) -> std::result::Result<(), KafkaError> {
    let delivery = producer.send_result(record).map_err(|(e, _)| e)?;
    let budget = timeout + Duration::from_millis(500);
    match tokio::time::timeout(budget, delivery).await {
        Ok(Ok(Ok(_))) => Ok(()),
        Ok(Ok(Err((e, _)))) => Err(e.into()),
        Ok(Err(_)) => Err(KafkaError::Setup("the producer was closed".into())),
        Err(_) => Err(KafkaError::Timeout(budget)),
    }
}

/// What [`replay_dead_letters`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Dead letters put back on their topic.
    pub replayed: u64,
}

/// Puts the dead letters of `worker.group` back on the topic they came from
/// (key and payload as they were, with a `caas-replayed-from` header), for its
/// workers to handle again once the cause is fixed. Replays what the
/// dead-letter topic holds when it is called, each letter once: its own
/// consumer group (`<group>.replay`) commits past each letter once the broker
/// has it back, so a second call replays only letters written since. A letter
/// that fails again is dead-lettered again.
///
/// The replayed records are new records: the live bus of every node delivers
/// them again too (clients ignore what they already have, by seq).
pub async fn replay_dead_letters(
    kafka: &KafkaConfig,
    worker: &WorkerConfig,
) -> Result<ReplayReport> {
    let dlq = worker.dead_letter_topic_for(kafka);
    ensure_topic(kafka, &dlq, kafka.partitions)
        .await
        .map_err(|e| unavailable(format!("create the topic {dlq}"), e))?;
    let group = format!("{}.replay", worker.group);
    let consumer: StreamConsumer = kafka
        .consumer_config(Some(&group))
        .create()
        .map_err(|e| unavailable("create the replay consumer", e.into()))?;
    let consumer = Arc::new(consumer);
    let producer: FutureProducer = kafka
        .producer_config()
        .create()
        .map_err(|e| unavailable("create the replay producer", e.into()))?;
    let timeout = kafka.request_timeout;

    // Where to start (the group's committed position, else the oldest letter)
    // and where to stop (the end as of now), per partition.
    let c = consumer.clone();
    let topic = dlq.clone();
    let ranges = blocking(move || {
        let mut ranges = Vec::new();
        let parts = partition_ids(&*c, &topic, timeout)?;
        let mut tpl = TopicPartitionList::with_capacity(parts.len());
        for &p in &parts {
            tpl.add_partition(&topic, p);
        }
        let committed = c.committed_offsets(tpl, timeout)?;
        for p in parts {
            let (low, high) = c.fetch_watermarks(&topic, p, timeout)?;
            let start = committed
                .find_partition(&topic, p)
                .and_then(|e| e.offset().to_raw())
                .filter(|&o| o >= low)
                .unwrap_or(low);
            if start < high {
                ranges.push((p, start, high));
            }
        }
        let mut assign = TopicPartitionList::with_capacity(ranges.len());
        for &(p, start, _) in &ranges {
            assign.add_partition_offset(&topic, p, Offset::Offset(start))?;
        }
        c.assign(&assign)?;
        Ok(ranges)
    })
    .await
    .map_err(|e| unavailable("read the dead-letter topic's offsets", e))?;

    let mut remaining: std::collections::BTreeMap<i32, i64> =
        ranges.iter().map(|&(p, _, high)| (p, high)).collect();
    let mut report = ReplayReport::default();
    // Each wait for the next letter is bounded: the letters are there already.
    let idle = timeout * 2;
    while !remaining.is_empty() {
        let m = match tokio::time::timeout(idle, consumer.recv()).await {
            Ok(Ok(m)) => m,
            Ok(Err(RdKafkaError::PartitionEOF(_))) => continue,
            Ok(Err(e)) => {
                tracing::debug!(error = %e, "kafka replay: client error");
                continue;
            }
            Err(_) => {
                return Err(unavailable(
                    format!("replay dead letters ({} done)", report.replayed),
                    KafkaError::Timeout(idle),
                ));
            }
        };
        let (p, offset) = (m.partition(), m.offset());
        let Some(&high) = remaining.get(&p) else {
            continue;
        };
        if offset >= high {
            // Written after the call began: left for the next one.
            remaining.remove(&p);
            continue;
        }
        let target = DeadLetter::from_message(&m)
            .map(|l| l.topic)
            .unwrap_or_else(|| kafka.topic.clone());
        let from = format!("{dlq}/{p}/{offset}");
        let payload = m.payload().unwrap_or_default().to_vec();
        let key = m.key().map(<[u8]>::to_vec);
        drop(m);
        let headers = OwnedHeaders::new().insert(Header {
            key: H_REPLAYED_FROM,
            value: Some(&from),
        });
        let mut out = FutureRecord::to(&target).payload(&payload).headers(headers);
        if let Some(k) = &key {
            out = out.key(k);
        }
        send(&producer, out, kafka.publish_timeout)
            .await
            .map_err(|e| unavailable(format!("replay the dead letter {from}"), e))?;
        report.replayed += 1;
        let mut tpl = TopicPartitionList::with_capacity(1);
        tpl.add_partition_offset(&dlq, p, Offset::Offset(offset.saturating_add(1)))
            .map_err(|e| unavailable("commit a replayed dead letter", e.into()))?;
        let c = consumer.clone();
        blocking(move || c.commit(&tpl, CommitMode::Sync))
            .await
            .map_err(|e| unavailable("commit a replayed dead letter", e))?;
        if offset.saturating_add(1) >= high {
            remaining.remove(&p);
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdkafka::Timestamp;
    use rdkafka::message::OwnedMessage;

    #[test]
    fn dead_letter_headers_round_trip() {
        let letter = DeadLetter {
            reason: "handler said no".into(),
            attempts: 3,
            topic: "caas.events".into(),
            partition: 2,
            offset: 41,
            group: "indexer".into(),
        };
        let msg = OwnedMessage::new(
            Some(b"{}".to_vec()),
            None,
            "dlq".into(),
            Timestamp::NotAvailable,
            0,
            0,
            Some(letter.headers()),
        );
        assert_eq!(DeadLetter::from_message(&msg), Some(letter));
        let bare = OwnedMessage::new(
            None,
            None,
            "dlq".into(),
            Timestamp::NotAvailable,
            0,
            0,
            None,
        );
        assert_eq!(DeadLetter::from_message(&bare), None);
    }

    #[test]
    fn default_dead_letter_topic_names_topic_and_group() {
        let k = KafkaConfig::new("127.0.0.1:1");
        assert_eq!(
            WorkerConfig::new("indexer").dead_letter_topic_for(&k),
            "caas.events.indexer.dlq"
        );
    }
}
