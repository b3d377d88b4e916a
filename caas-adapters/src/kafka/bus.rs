//! The live event bus on the event topic.
//!
//! Every node reads every partition, on its own: the bus's consumer assigns
//! itself all of the topic's partitions without joining a consumer group, so
//! no node waits for a group rebalance, a node joining or leaving disturbs no
//! other, and each node sees every event (fan-out, as the port asks). The
//! first [`EventBus::subscribe`] fixes the starting positions at each
//! partition's end, read from the broker, before it returns: an event
//! published after that has a higher offset and reaches the subscription. A
//! node that filters events by the users it holds connections for does so
//! above the bus.
//!
//! Each bus keeps one consumer and a task reading it into a local broadcast
//! channel that every [`KafkaSubscription`] of the node reads. The broker keeps
//! the events, so a broker that is away for a while loses nothing: librdkafka
//! reconnects and the task resumes from its positions. What it cannot resume
//! is a log that lost records under it (its topic deleted and created again):
//! a periodic check of the broker's offsets against the task's positions
//! notices, restarts at the oldest record kept and sends every subscriber a
//! [`BusMessage::Lagged`]. The same check picks up partitions added to the
//! topic, from their start. (A broker that keeps nothing across a restart is
//! not survivable this way: librdkafka 2.12.1's consumer crashes on the
//! metadata Tansu then returns; see the crate's README.)

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use caas_core::events::Event;
use caas_core::ports::{BusMessage, EventBus, Subscription};
use caas_core::{Error, Result};
use rdkafka::Message;
use rdkafka::consumer::{Consumer, StreamConsumer};
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::producer::{FutureProducer, FutureRecord, Producer};
use rdkafka::topic_partition_list::{Offset, TopicPartitionList};
use rdkafka::types::RDKafkaErrorCode;
use tokio::sync::{broadcast, watch};

use super::{
    KafkaConfig, KafkaError, blocking, ensure_topic, event_key, partition_ids, unavailable,
};
use crate::event_codec;

/// The shortest and longest wait between two attempts to start reading.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);
/// How often a persisting client error is logged again.
const ERROR_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// What the bus has seen, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Records on the topic that were not events this adapter can read (too
    /// large, or not an event's JSON): skipped, and subscribers told to sync.
    pub garbage: u64,
    /// Times the bus found the log behind its positions (records it had not
    /// read are gone) and restarted at the oldest record kept, telling
    /// subscribers to sync.
    pub resets: u64,
    /// Times the broker answered again after the bus had seen errors.
    pub recoveries: u64,
}

#[derive(Debug, Default)]
struct Counters {
    garbage: AtomicU64,
    resets: AtomicU64,
    recoveries: AtomicU64,
}

/// Fan-out to every node through one topic, events as JSON keyed by
/// conversation, published by an idempotent producer with `acks=all`.
pub struct KafkaBus {
    config: Arc<KafkaConfig>,
    /// Replaced when librdkafka declares it unusable (a fatal error).
    producer: RwLock<FutureProducer>,
    /// Since when every publish has failed, if the last one did.
    failing_since: std::sync::Mutex<Option<Instant>>,
    /// Whether a background check that the topic exists is running.
    ensuring_topic: Arc<AtomicBool>,
    tx: broadcast::Sender<BusMessage>,
    /// Whether the listener has its starting positions.
    live: watch::Sender<bool>,
    counters: Arc<Counters>,
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for KafkaBus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaBus")
            .field("bootstrap_servers", &self.config.bootstrap_servers)
            .field("topic", &self.config.topic)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

impl KafkaBus {
    /// A bus on the broker(s) of `config`: creates the event topic when it is
    /// missing, and the producer. Subscribing starts the reader.
    pub async fn connect(config: KafkaConfig) -> Result<Self> {
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(setup_error("the Kafka adapter needs a Tokio runtime"));
        }
        ensure_topic(&config, &config.topic, config.partitions)
            .await
            .map_err(|e| unavailable(format!("create the topic {}", config.topic), e))?;
        let producer = make_producer(&config)?;
        let (tx, _) = broadcast::channel(config.bus_capacity.max(1));
        Ok(Self {
            config: Arc::new(config),
            producer: RwLock::new(producer),
            failing_since: std::sync::Mutex::new(None),
            ensuring_topic: Arc::default(),
            tx,
            live: watch::Sender::new(false),
            counters: Arc::default(),
            listener: std::sync::Mutex::new(None),
        })
    }

    /// The configuration it runs with.
    pub fn config(&self) -> &KafkaConfig {
        &self.config
    }

    /// What the bus has seen so far.
    pub fn stats(&self) -> BusStats {
        BusStats {
            garbage: self.counters.garbage.load(Ordering::Relaxed),
            resets: self.counters.resets.load(Ordering::Relaxed),
            recoveries: self.counters.recoveries.load(Ordering::Relaxed),
        }
    }

    fn producer(&self) -> Result<FutureProducer> {
        self.producer
            .read()
            .map(|p| p.clone())
            .map_err(|_| Error::internal("kafka bus: producer lock poisoned"))
    }

    /// After a failed publish: replaces a producer that librdkafka gave up on,
    /// or that has failed every publish for three publish timeouts (an
    /// idempotent producer can wait for ever for a producer id that a broker
    /// restarted without its state will not give back; a new producer asks
    /// afresh), and makes sure the topic still exists (a broker that lost it
    /// answers no publish until it is created again).
    fn after_failure(&self, failed: &FutureProducer) {
        let fatal = failed.client().fatal_error();
        let stale = match self.failing_since.lock() {
            Ok(mut since) => {
                let now = Instant::now();
                let first = *since.get_or_insert(now);
                let stale = now.duration_since(first) >= self.config.publish_timeout * 3;
                if stale || fatal.is_some() {
                    *since = Some(now);
                }
                stale
            }
            Err(_) => false,
        };
        if fatal.is_some() || stale {
            tracing::warn!(fatal = ?fatal, "kafka bus: the producer keeps failing; making a new one");
            match make_producer(&self.config) {
                Ok(p) => {
                    if let Ok(mut slot) = self.producer.write() {
                        *slot = p;
                    }
                }
                Err(e) => tracing::warn!(error = %e, "kafka bus: cannot make a producer"),
            }
        }
        if !self.ensuring_topic.swap(true, Ordering::AcqRel) {
            let config = self.config.clone();
            let flag = self.ensuring_topic.clone();
            tokio::spawn(async move {
                if let Err(e) = ensure_topic(&config, &config.topic, config.partitions).await {
                    tracing::debug!(error = %e, "kafka bus: cannot check the topic");
                }
                flag.store(false, Ordering::Release);
            });
        }
    }

    /// Starts the listener task on first use.
    fn start(&self) -> Result<()> {
        let mut listener = self
            .listener
            .lock()
            .map_err(|_| Error::internal("kafka bus: listener lock poisoned"))?;
        if listener.is_none() {
            let consumer: StreamConsumer = self
                .config
                .consumer_config(None)
                .create()
                .map_err(|e| setup_error(format!("create the bus consumer: {e}")))?;
            let task = Listener {
                config: self.config.clone(),
                consumer: Arc::new(consumer),
                tx: self.tx.clone(),
                live: self.live.clone(),
                counters: self.counters.clone(),
                positions: BTreeMap::new(),
                troubled: false,
                last_error_log: None,
            };
            *listener = Some(tokio::spawn(task.run()));
        }
        Ok(())
    }
}

fn setup_error(what: impl Into<String>) -> Error {
    Error::Unavailable {
        backend: super::BACKEND,
        context: "configure the Kafka client".into(),
        temporary: false,
        source: Some(Box::new(KafkaError::Setup(what.into()))),
    }
}

fn make_producer(config: &KafkaConfig) -> Result<FutureProducer> {
    config
        .producer_config()
        .create()
        .map_err(|e| setup_error(format!("create the producer: {e}")))
}

impl Drop for KafkaBus {
    fn drop(&mut self) {
        // The listener holds a sender of the channel: stopping it closes every
        // subscription, as a dropped in-process bus does.
        if let Ok(mut l) = self.listener.lock()
            && let Some(task) = l.take()
        {
            task.abort();
        }
    }
}

#[async_trait]
impl EventBus for KafkaBus {
    async fn publish(&self, event: Arc<Event>) -> Result<()> {
        let payload = event_codec::encode(&event, self.config.max_event_bytes)?;
        let key = event_key(&event);
        let producer = self.producer()?;
        let record = FutureRecord::to(&self.config.topic)
            .key(&key)
            .payload(&payload);
        let delivery = match producer.send_result(record) {
            Ok(d) => d,
            Err((e, _)) => {
                // The local queue is full (the broker is slow or away).
                self.after_failure(&producer);
                return Err(unavailable("publish an event", e.into()));
            }
        };
        // librdkafka gives up at `message.timeout.ms` (the publish timeout);
        // the margin only covers its timer's granularity.
        let budget = self.config.publish_timeout + Duration::from_millis(500);
        match tokio::time::timeout(budget, delivery).await {
            Ok(Ok(Ok(_))) => {
                if let Ok(mut since) = self.failing_since.lock() {
                    *since = None;
                }
                Ok(())
            }
            Ok(Ok(Err((e, _)))) => {
                self.after_failure(&producer);
                Err(unavailable("publish an event", e.into()))
            }
            Ok(Err(_)) => Err(unavailable(
                "publish an event",
                KafkaError::Setup("the producer was closed".into()),
            )),
            Err(_) => {
                self.after_failure(&producer);
                Err(unavailable("publish an event", KafkaError::Timeout(budget)))
            }
        }
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        self.start()?;
        // Receiving before checking that the positions are fixed: every event
        // the listener reads from now on reaches this receiver.
        let rx = self.tx.subscribe();
        let mut live = self.live.subscribe();
        let wait = self.config.request_timeout * 3;
        match tokio::time::timeout(wait, live.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(Box::new(KafkaSubscription { rx })),
            Ok(Err(_)) => Err(Error::internal("kafka bus: listener stopped")),
            Err(_) => Err(unavailable(
                "start reading the event topic",
                KafkaError::Timeout(wait),
            )),
        }
    }
}

/// One node's view of the bus: one conversation's events in publish order,
/// and a [`BusMessage::Lagged`] wherever some may be missing.
#[derive(Debug)]
pub struct KafkaSubscription {
    rx: broadcast::Receiver<BusMessage>,
}

#[async_trait]
impl Subscription for KafkaSubscription {
    async fn next(&mut self) -> Option<BusMessage> {
        match self.rx.recv().await {
            Ok(m) => Some(m),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(BusMessage::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The task that owns the bus's consumer.
struct Listener {
    config: Arc<KafkaConfig>,
    consumer: Arc<StreamConsumer>,
    tx: broadcast::Sender<BusMessage>,
    live: watch::Sender<bool>,
    counters: Arc<Counters>,
    /// The next offset to deliver, per partition.
    positions: BTreeMap<i32, i64>,
    /// Whether the client has reported errors since it last worked.
    troubled: bool,
    last_error_log: Option<Instant>,
}

impl Listener {
    async fn run(mut self) {
        let mut backoff = MIN_BACKOFF;
        loop {
            match self.establish().await {
                Ok(()) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "kafka bus: cannot start reading; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                }
            }
        }
        self.live.send_replace(true);
        let mut health =
            tokio::time::interval(self.config.health_interval.max(Duration::from_millis(10)));
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        let consumer = self.consumer.clone();
        loop {
            tokio::select! {
                m = consumer.recv() => match m {
                    Ok(m) => {
                        self.recovered();
                        self.positions.insert(m.partition(), m.offset().saturating_add(1));
                        self.deliver(m.payload().unwrap_or_default(), m.partition(), m.offset());
                    }
                    Err(RdKafkaError::PartitionEOF(_)) => self.recovered(),
                    Err(e) => self.client_error(&e),
                },
                _ = health.tick() => self.check().await,
            }
        }
    }

    /// Ensures the topic, then assigns every partition at its current end.
    async fn establish(&mut self) -> std::result::Result<(), KafkaError> {
        ensure_topic(&self.config, &self.config.topic, self.config.partitions).await?;
        let consumer = self.consumer.clone();
        let topic = self.config.topic.clone();
        let timeout = self.config.request_timeout;
        let positions = blocking(move || {
            let mut positions = BTreeMap::new();
            for p in partition_ids(&*consumer, &topic, timeout)? {
                let (_, high) = consumer.fetch_watermarks(&topic, p, timeout)?;
                positions.insert(p, high);
            }
            consumer.assign(&assignment(&topic, &positions)?)?;
            Ok(positions)
        })
        .await?;
        self.positions = positions;
        Ok(())
    }

    fn recovered(&mut self) {
        if self.troubled {
            self.troubled = false;
            self.counters.recoveries.fetch_add(1, Ordering::Relaxed);
            tracing::info!("kafka bus: the broker answers again");
        }
    }

    fn client_error(&mut self, e: &RdKafkaError) {
        if e.rdkafka_error_code() == Some(RDKafkaErrorCode::AutoOffsetReset) {
            // librdkafka moved a position the log no longer had (to the
            // oldest record kept): what lay between is lost to this node.
            self.reset("the broker no longer had a read position");
            return;
        }
        self.troubled = true;
        let now = Instant::now();
        if self
            .last_error_log
            .is_none_or(|t| now.duration_since(t) >= ERROR_LOG_INTERVAL)
        {
            self.last_error_log = Some(now);
            tracing::warn!(error = %e, "kafka bus: client error (it retries by itself)");
        }
    }

    fn reset(&self, why: &str) {
        self.counters.resets.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(
            why,
            "kafka bus: events may be lost to this node; subscribers told to sync"
        );
        let _ = self.tx.send(BusMessage::Lagged { missed: 0 });
    }

    /// Compares the broker's partitions and offsets with the positions: a
    /// partition whose end is behind the next offset to read lost records (its
    /// topic was created again, perhaps by a broker that kept nothing across a
    /// restart): it restarts at its oldest record, and subscribers are told to
    /// sync. A partition that appeared is read from its start. A missing topic
    /// is created again.
    async fn check(&mut self) {
        let consumer = self.consumer.clone();
        let topic = self.config.topic.clone();
        let timeout = self.config.request_timeout;
        let marks = blocking(move || {
            let mut marks = BTreeMap::new();
            for p in partition_ids(&*consumer, &topic, timeout)? {
                marks.insert(p, consumer.fetch_watermarks(&topic, p, timeout)?);
            }
            Ok(marks)
        })
        .await;
        let marks = match marks {
            Ok(m) => m,
            Err(e) => {
                if matches!(
                    e.code(),
                    Some(
                        RDKafkaErrorCode::UnknownTopicOrPartition
                            | RDKafkaErrorCode::UnknownTopic
                            | RDKafkaErrorCode::UnknownPartition
                    )
                ) && let Err(e) =
                    ensure_topic(&self.config, &self.config.topic, self.config.partitions).await
                {
                    tracing::debug!(error = %e, "kafka bus: cannot create the topic again");
                }
                if let KafkaError::Client(e) = &e {
                    self.client_error(e);
                } else {
                    self.troubled = true;
                }
                return;
            }
        };
        self.recovered();
        let mut lost = false;
        let mut changed = false;
        for (&p, &(low, high)) in &marks {
            match self.positions.get_mut(&p) {
                Some(next) if high < *next => {
                    *next = low;
                    lost = true;
                    changed = true;
                }
                Some(_) => {}
                None => {
                    self.positions.insert(p, low);
                    changed = true;
                }
            }
        }
        let before = self.positions.len();
        self.positions.retain(|p, _| marks.contains_key(p));
        if self.positions.len() != before {
            lost = true;
            changed = true;
        }
        if !changed {
            return;
        }
        let reassigned = assignment(&self.config.topic, &self.positions)
            .and_then(|tpl| self.consumer.assign(&tpl));
        if let Err(e) = reassigned {
            tracing::warn!(error = %e, "kafka bus: cannot read the topic's new partitions");
            return;
        }
        if lost {
            self.reset("the log is behind this node's positions (recreated or truncated)");
        } else {
            tracing::info!(
                partitions = self.positions.len(),
                "kafka bus: the topic has new partitions; reading them from their start"
            );
        }
    }

    fn deliver(&self, payload: &[u8], partition: i32, offset: i64) {
        let message = match event_codec::decode(payload, self.config.max_event_bytes) {
            Ok(e) => BusMessage::Event(Arc::new(e)),
            Err(e) => {
                let why = e.to_string();
                // Perhaps an event a newer node wrote: its audience must sync.
                self.counters.garbage.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(
                    why,
                    partition,
                    offset,
                    "kafka bus: skipped a record that is not an event"
                );
                BusMessage::Lagged { missed: 1 }
            }
        };
        // An error only means no subscriber is listening now.
        let _ = self.tx.send(message);
    }
}

/// Every partition of `positions`, each at its offset.
fn assignment(
    topic: &str,
    positions: &BTreeMap<i32, i64>,
) -> std::result::Result<TopicPartitionList, RdKafkaError> {
    let mut tpl = TopicPartitionList::with_capacity(positions.len());
    for (&p, &offset) in positions {
        tpl.add_partition_offset(topic, p, Offset::Offset(offset))?;
    }
    Ok(tpl)
}
