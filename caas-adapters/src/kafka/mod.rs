//! A durable event log on a Kafka-protocol broker (librdkafka through the
//! `rdkafka` crate): the live [`KafkaBus`] that fans every event out to every
//! node, and the [`Worker`] that runs work which must not be lost in a consumer
//! group, with manual commits, bounded retries and a dead-letter topic.
//!
//! One topic carries the events, keyed by conversation so that one
//! conversation's events stay in one partition and so in order. What each part
//! promises, and how the cluster can use it, is in the crate's README.

mod bus;
mod worker;

use std::time::Duration;

use caas_core::Error;
use caas_core::events::Event;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::error::KafkaError as RdKafkaError;
use rdkafka::types::RDKafkaErrorCode;

pub use bus::{BusStats, KafkaBus, KafkaSubscription};
pub use worker::{
    DeadLetter, ReplayReport, Worker, WorkerConfig, WorkerStats, replay_dead_letters,
};

const BACKEND: &str = "kafka";

/// What went wrong talking to the broker.
#[derive(Debug, thiserror::Error)]
pub enum KafkaError {
    /// librdkafka reported an error (broker unreachable, a timeout, a refused
    /// request, …).
    #[error(transparent)]
    Client(#[from] RdKafkaError),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The broker or the configuration is not what this adapter needs.
    #[error("{0}")]
    Setup(String),
    /// A blocking librdkafka call could not be run off the async runtime.
    #[error("a blocking client call did not finish: {0}")]
    Join(String),
}

impl KafkaError {
    /// librdkafka's error code, when there is one.
    fn code(&self) -> Option<RDKafkaErrorCode> {
        match self {
            KafkaError::Client(e) => e.rdkafka_error_code(),
            _ => None,
        }
    }
}

fn unavailable(context: impl Into<String>, cause: KafkaError) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        context: context.into(),
        temporary: true,
        source: Some(Box::new(cause)),
    }
}

/// How to reach the broker and how the bus and workers behave around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KafkaConfig {
    /// `host:port[,host:port…]` of the broker(s).
    pub bootstrap_servers: String,
    /// The topic that carries the events (default `caas.events`), created with
    /// [`KafkaConfig::partitions`] partitions when missing.
    pub topic: String,
    /// Partitions of the event topic when this adapter creates it (default 6).
    /// Fixed for the life of the topic: nodes read the partition list when their
    /// bus starts.
    pub partitions: i32,
    /// Replicas of each partition when this adapter creates a topic (default 1;
    /// 3 on a production cluster, so that `acks=all` means three copies).
    pub replication_factor: i32,
    /// How long a publish may wait for the broker's acknowledgement (default
    /// 5 s); past it the call answers [`Error::Unavailable`].
    pub publish_timeout: Duration,
    /// How long one metadata, offsets, commit or admin request may take
    /// (default 5 s).
    pub request_timeout: Duration,
    /// The consumer-group session timeout (default 6 s): a worker that stops
    /// answering loses its partitions after this long. librdkafka's default
    /// (45 s) makes every group join wait about half of it.
    pub session_timeout: Duration,
    /// How long the broker may hold a fetch open waiting for data (default
    /// 10 ms): the floor of publish-to-delivery latency when traffic is light.
    pub fetch_wait: Duration,
    /// The largest event accepted, in bytes (default 1 MiB): larger ones are
    /// refused on publish and skipped (and dead-lettered by workers) on receipt.
    pub max_event_bytes: usize,
    /// Events buffered per local subscriber before it lags (default 16 384).
    pub bus_capacity: usize,
    /// How often the bus checks the broker's offsets against its own positions
    /// (default 1 s), to notice a log that lost events (a topic deleted and
    /// created again) and tell subscribers to sync.
    pub health_interval: Duration,
    /// Further librdkafka properties for every client (security settings,
    /// `client.id`, …), applied last.
    pub client_settings: Vec<(String, String)>,
}

impl Default for KafkaConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".into(),
            topic: "caas.events".into(),
            partitions: 6,
            replication_factor: 1,
            publish_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(5),
            session_timeout: Duration::from_secs(6),
            fetch_wait: Duration::from_millis(10),
            max_event_bytes: crate::event_codec::DEFAULT_MAX_EVENT_BYTES,
            bus_capacity: 16_384,
            health_interval: Duration::from_secs(1),
            client_settings: Vec::new(),
        }
    }
}

impl KafkaConfig {
    /// The defaults, on the broker(s) at `bootstrap_servers`.
    pub fn new(bootstrap_servers: impl Into<String>) -> Self {
        Self {
            bootstrap_servers: bootstrap_servers.into(),
            ..Self::default()
        }
    }

    /// Settings every client shares.
    fn base(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("socket.timeout.ms", ms(self.request_timeout).to_string())
            // librdkafka reports through `tracing` (the crate's feature), not
            // its own stderr logger.
            .set("log.connection.close", "false");
        c
    }

    fn with_overrides(&self, mut c: ClientConfig) -> ClientConfig {
        for (k, v) in &self.client_settings {
            c.set(k, v);
        }
        c
    }

    /// An idempotent producer that answers only once every in-sync replica has
    /// the record.
    fn producer_config(&self) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("linger.ms", "0")
            // A publish fails (and the caller hears `unavailable`) rather than
            // waiting for a broker longer than this.
            .set("message.timeout.ms", ms(self.publish_timeout).to_string())
            .set("message.max.bytes", message_max_bytes(self.max_event_bytes));
        self.with_overrides(c)
    }

    /// A consumer; `group` for the group runner, `None` for the bus's own
    /// assignment of every partition.
    fn consumer_config(&self, group: Option<&str>) -> ClientConfig {
        let mut c = self.base();
        c.set("enable.auto.commit", "false")
            .set("enable.auto.offset.store", "false")
            .set("fetch.wait.max.ms", ms(self.fetch_wait).to_string())
            .set("session.timeout.ms", ms(self.session_timeout).to_string())
            .set(
                "heartbeat.interval.ms",
                (ms(self.session_timeout) / 3).max(1).to_string(),
            )
            // A position the log no longer has (its records were deleted, or
            // the topic was created again) restarts at the oldest record kept:
            // the bus tells subscribers to sync, and a worker misses nothing
            // the broker still holds.
            .set("auto.offset.reset", "earliest")
            .set(
                "fetch.message.max.bytes",
                message_max_bytes(self.max_event_bytes),
            );
        match group {
            Some(g) => {
                c.set("group.id", g);
            }
            None => {
                // librdkafka wants a group id even for a consumer that only
                // assigns partitions; it never joins or commits to it.
                c.set("group.id", "caas-bus-unused");
            }
        }
        self.with_overrides(c)
    }

    fn admin_config(&self) -> ClientConfig {
        self.with_overrides(self.base())
    }
}

fn ms(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX).max(1)
}

/// Room for one event and the record's framing, so that the event bound, not
/// the client's, decides what is refused.
fn message_max_bytes(max_event_bytes: usize) -> String {
    max_event_bytes
        .saturating_add(64 * 1024)
        .min(1_000_000_000)
        .to_string()
}

/// The record key of an event: its conversation (so one conversation's events
/// share a partition and keep their order), or its tenant for events outside
/// any conversation.
fn event_key(event: &Event) -> String {
    match event.payload.conversation_id() {
        Some(c) => format!("{}/{}", event.tenant.as_str(), c.as_str()),
        None => event.tenant.as_str().to_owned(),
    }
}

/// Creates `topic` with `partitions` partitions unless it exists.
async fn ensure_topic(
    config: &KafkaConfig,
    topic: &str,
    partitions: i32,
) -> Result<(), KafkaError> {
    let admin: AdminClient<DefaultClientContext> = config.admin_config().create()?;
    let replication = TopicReplication::Fixed(config.replication_factor);
    let new = NewTopic::new(topic, partitions.max(1), replication);
    let opts = AdminOptions::new()
        .request_timeout(Some(config.request_timeout))
        .operation_timeout(Some(config.request_timeout));
    let budget = config.request_timeout + config.request_timeout;
    let results = tokio::time::timeout(budget, admin.create_topics([&new], &opts))
        .await
        .map_err(|_| KafkaError::Timeout(budget))??;
    for r in results {
        match r {
            Ok(_) | Err((_, RDKafkaErrorCode::TopicAlreadyExists)) => {}
            Err((name, code)) => {
                return Err(KafkaError::Setup(format!(
                    "cannot create topic {name}: {code}"
                )));
            }
        }
    }
    Ok(())
}

/// Runs a blocking librdkafka call (metadata, offsets, commits) off the async
/// runtime's threads.
async fn blocking<T, F>(f: F) -> Result<T, KafkaError>
where
    T: Send + 'static,
    F: FnOnce() -> Result<T, RdKafkaError> + Send + 'static,
{
    match tokio::task::spawn_blocking(f).await {
        Ok(r) => r.map_err(KafkaError::from),
        Err(e) => Err(KafkaError::Join(e.to_string())),
    }
}

/// The partitions of `topic` as the broker reports them now.
fn partition_ids<C>(consumer: &C, topic: &str, timeout: Duration) -> Result<Vec<i32>, RdKafkaError>
where
    C: rdkafka::consumer::Consumer,
{
    let md = consumer.fetch_metadata(Some(topic), timeout)?;
    let Some(t) = md.topics().iter().find(|t| t.name() == topic) else {
        return Err(RdKafkaError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    };
    if let Some(e) = t.error() {
        return Err(RdKafkaError::MetadataFetch(e.into()));
    }
    let mut ids: Vec<i32> = t.partitions().iter().map(|p| p.id()).collect();
    if ids.is_empty() {
        return Err(RdKafkaError::MetadataFetch(
            RDKafkaErrorCode::UnknownTopicOrPartition,
        ));
    }
    ids.sort_unstable();
    Ok(ids)
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::testkit::{conversation, events::event, tenant};

    #[test]
    fn one_conversation_one_key() {
        let tn = tenant();
        let c = conversation();
        let a = event(&tn, &c, &["a"], 1);
        let b = event(&tn, &c, &["b"], 2);
        let other = event(&tn, &conversation(), &["a"], 1);
        assert_eq!(event_key(&a), event_key(&b));
        assert_ne!(event_key(&a), event_key(&other));
        assert!(event_key(&a).starts_with(tn.as_str()));
    }

    #[test]
    fn settings_that_matter_are_set() {
        let cfg = KafkaConfig {
            client_settings: vec![("client.id".into(), "n1".into())],
            ..KafkaConfig::new("127.0.0.1:1")
        };
        let p = cfg.producer_config();
        assert_eq!(p.get("acks"), Some("all"));
        assert_eq!(p.get("enable.idempotence"), Some("true"));
        assert_eq!(p.get("linger.ms"), Some("0"));
        assert_eq!(p.get("message.timeout.ms"), Some("5000"));
        assert_eq!(p.get("client.id"), Some("n1"));
        let c = cfg.consumer_config(Some("g"));
        assert_eq!(c.get("session.timeout.ms"), Some("6000"));
        assert_eq!(c.get("fetch.wait.max.ms"), Some("10"));
        assert_eq!(c.get("enable.auto.commit"), Some("false"));
        assert_eq!(c.get("group.id"), Some("g"));
    }
}
