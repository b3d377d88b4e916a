//! The event bus on NATS JetStream.
//!
//! Every event is published to one durable stream, on the subject
//! `<prefix>.ev.<tenant>.<conversation>` (see [`event_codec::route`]), and a
//! publish returns only once JetStream has stored it (its ack). Each
//! [`NatsBus`] (one per node) reads the whole stream through one ephemeral
//! pull consumer of its own, which starts after the stream's last message when
//! the bus first subscribes, and hands every event to each local
//! [`NatsSubscription`] through a broadcast channel.
//!
//! Because the stream keeps what it stored (within its retention limits), a
//! node whose consumer broke (the server restarted, the connection dropped)
//! makes a new consumer that starts right after the last message it read: it
//! gets what was published meanwhile, in order, and its subscribers are told
//! of a gap ([`BusMessage::Lagged`]) only when there is one (the messages were
//! already gone, or the stream itself was lost and made anew).
//!
//! Messages on the stream that are not events this node can read (too large,
//! not an event's JSON) are copied to the dead-letter stream, terminated on
//! the consumer, counted, and reported to subscribers as `Lagged { missed: 1 }`.

mod listener;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use async_nats::jetstream;
use async_nats::jetstream::context::PublishErrorKind;
use async_trait::async_trait;
use caas_core::events::Event;
use caas_core::ports::{BusMessage, EventBus, Subscription};
use caas_core::{Error, Result};
use tokio::sync::{broadcast, watch};

use crate::event_codec;

/// How to reach NATS and how the stream behind the bus is kept.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NatsConfig {
    /// `nats://[user:password@]host:port` (default `nats://127.0.0.1:4222`).
    pub url: String,
    /// The stream holding the events (default `CAAS_BUS`); the dead-letter
    /// stream is this name with `_DEAD` appended. Several platforms (or test
    /// runs) on one server use names of their own.
    pub stream: String,
    /// The first words of every subject (default `caas.bus`): events go to
    /// `<prefix>.ev.<tenant>.<conversation>`, dead letters to `<prefix>.dead`.
    pub subject_prefix: String,
    /// How long one connection attempt may take (default 1 s).
    pub connect_timeout: Duration,
    /// How long the server may take to answer a request, a publish's ack
    /// included (default 1 s); past it the call answers [`Error::Unavailable`].
    pub request_timeout: Duration,
    /// The largest event published or accepted from the stream, in bytes
    /// (default 1 MiB, also NATS's default `max_payload`).
    pub max_event_bytes: usize,
    /// Events buffered per local subscriber before it lags (default 16 384).
    pub bus_capacity: usize,
    /// How often the connection and the consumer are checked (client PINGs and
    /// the consumer's idle heartbeats; default 1 s): a connection that died
    /// without closing is noticed within about twice this.
    pub health_interval: Duration,
    /// How long the stream keeps an event (default 15 min): the window in
    /// which a node whose consumer broke gets what it missed. Sync recovers
    /// anything older from the event log.
    pub max_age: Duration,
    /// The most bytes the stream keeps; the oldest events go first (default
    /// 1 GiB).
    pub max_bytes: u64,
    /// How long the dead-letter stream keeps a message (default 7 days).
    pub dead_letter_max_age: Duration,
    /// The most bytes the dead-letter stream keeps (default 64 MiB).
    pub dead_letter_max_bytes: u64,
    /// Keep both streams in memory rather than on disk (default `false`): an
    /// acknowledged event then survives a node's reconnection but not a restart
    /// of the server.
    pub memory_storage: bool,
    /// Replicas of each stream in a JetStream cluster (default 1).
    pub replicas: usize,
}

impl Default for NatsConfig {
    fn default() -> Self {
        Self {
            url: "nats://127.0.0.1:4222".into(),
            stream: "CAAS_BUS".into(),
            subject_prefix: "caas.bus".into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            max_event_bytes: event_codec::DEFAULT_MAX_EVENT_BYTES,
            bus_capacity: 16_384,
            health_interval: Duration::from_secs(1),
            max_age: Duration::from_secs(15 * 60),
            max_bytes: 1 << 30,
            dead_letter_max_age: Duration::from_secs(7 * 86_400),
            dead_letter_max_bytes: 64 << 20,
            memory_storage: false,
            replicas: 1,
        }
    }
}

impl NatsConfig {
    /// The defaults, at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    fn check(&self) -> std::result::Result<(), NatsError> {
        let bad = |what: &str| Err(NatsError::Config(what.into()));
        let name_ok = |s: &str| {
            !s.is_empty()
                && s.len() <= 200
                && !s
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '.' | '*' | '>' | '/' | '\\'))
        };
        if !name_ok(&self.stream) {
            return bad(
                "`stream` must be a non-empty name without `.`, `*`, `>`, `/`, `\\` or spaces",
            );
        }
        if !self.subject_prefix.split('.').all(|w| {
            !w.is_empty()
                && !w
                    .chars()
                    .any(|c| c.is_whitespace() || matches!(c, '*' | '>'))
        }) {
            return bad("`subject_prefix` must be dot-separated words without `*`, `>` or spaces");
        }
        if self.max_event_bytes == 0 || self.request_timeout.is_zero() {
            return bad("`max_event_bytes` and `request_timeout` must not be zero");
        }
        Ok(())
    }

    fn stream_config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: self.stream.clone(),
            description: Some("caas: the live event bus".into()),
            subjects: vec![format!("{}.ev.>", self.subject_prefix)],
            retention: jetstream::stream::RetentionPolicy::Limits,
            discard: jetstream::stream::DiscardPolicy::Old,
            max_age: self.max_age,
            max_bytes: i64::try_from(self.max_bytes).unwrap_or(i64::MAX),
            max_messages: -1,
            storage: self.storage(),
            num_replicas: self.replicas.max(1),
            // Nothing here retries a publish, so deduplication is only needed
            // for the dead letters (below); keep its memory small.
            duplicate_window: Duration::from_secs(1).min(self.max_age),
            ..Default::default()
        }
    }

    fn dead_letter_config(&self) -> jetstream::stream::Config {
        jetstream::stream::Config {
            name: format!("{}_DEAD", self.stream),
            description: Some("caas: bus messages no node could read".into()),
            subjects: vec![self.dead_letter_subject()],
            retention: jetstream::stream::RetentionPolicy::Limits,
            discard: jetstream::stream::DiscardPolicy::Old,
            max_age: self.dead_letter_max_age,
            max_bytes: i64::try_from(self.dead_letter_max_bytes).unwrap_or(i64::MAX),
            max_messages: -1,
            storage: self.storage(),
            num_replicas: self.replicas.max(1),
            // Every node dead-letters the same message: one copy is kept.
            duplicate_window: Duration::from_secs(120).min(self.dead_letter_max_age),
            ..Default::default()
        }
    }

    fn storage(&self) -> jetstream::stream::StorageType {
        if self.memory_storage {
            jetstream::stream::StorageType::Memory
        } else {
            jetstream::stream::StorageType::File
        }
    }

    fn subject(&self, event: &Event) -> String {
        format!("{}.ev.{}", self.subject_prefix, event_codec::route(event))
    }

    /// Where unreadable messages are copied.
    pub fn dead_letter_subject(&self) -> String {
        format!("{}.dead", self.subject_prefix)
    }

    /// The name of the dead-letter stream.
    pub fn dead_letter_stream(&self) -> String {
        format!("{}_DEAD", self.stream)
    }
}

/// Why a NATS call failed: the cause inside [`Error::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NatsError {
    /// The client or the server reported an error.
    #[error("{0}")]
    Nats(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The client is not connected to a server now (it is reconnecting).
    #[error("not connected to the NATS server")]
    Disconnected,
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
}

impl NatsError {
    fn client<E: std::fmt::Display>(e: E) -> Self {
        NatsError::Nats(e.to_string())
    }
}

const BACKEND: &str = "nats";

/// A temporary [`Error::Unavailable`] of the `nats` backend.
fn unavailable(context: impl Into<String>, cause: NatsError) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        context: context.into(),
        temporary: true,
        source: Some(Box::new(cause)),
    }
}

/// What the bus has seen, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NatsBusStats {
    /// Messages on the stream that were not events this node can read (too
    /// large, or not an event's JSON): dead-lettered, and subscribers told to
    /// sync.
    pub garbage: u64,
    /// Of those, the ones whose copy to the dead-letter stream failed (they
    /// stay on the event stream until its retention drops them).
    pub dead_letter_failures: u64,
    /// Times the consumer was made again after it broke (a lost connection, a
    /// restarted server).
    pub reconnects: u64,
    /// Events the stream no longer had when this node came back for them,
    /// reported to subscribers as `Lagged { missed }`; plus one per time the
    /// stream was found made anew (its content lost).
    pub missed: u64,
}

#[derive(Debug, Default)]
struct Counters {
    garbage: AtomicU64,
    dead_letter_failures: AtomicU64,
    reconnects: AtomicU64,
    missed: AtomicU64,
}

/// The client's connection as the bus follows it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Link {
    connected: bool,
    /// Incremented each time the client (re)connects.
    generation: u64,
}

#[derive(Debug)]
struct Shared {
    client: async_nats::Client,
    js: jetstream::Context,
    config: NatsConfig,
    link: watch::Receiver<Link>,
    /// Whether both streams are known to exist (cleared when a publish finds
    /// the event stream missing).
    streams_ready: AtomicBool,
    counters: Counters,
}

impl Shared {
    /// Returns once the client is connected; [`NatsError::Disconnected`]
    /// after `connect_timeout`.
    async fn connected(&self) -> std::result::Result<(), NatsError> {
        if self.client.connection_state() == async_nats::connection::State::Connected {
            return Ok(());
        }
        let mut link = self.link.clone();
        match tokio::time::timeout(self.config.connect_timeout, link.wait_for(|l| l.connected))
            .await
        {
            Ok(Ok(_)) => Ok(()),
            _ => Err(NatsError::Disconnected),
        }
    }

    /// Creates the event and dead-letter streams if missing; an existing
    /// stream's settings are left as they are. Returns the event stream.
    async fn ensure_streams(&self) -> std::result::Result<jetstream::stream::Stream, NatsError> {
        self.js
            .get_or_create_stream(self.config.dead_letter_config())
            .await
            .map_err(NatsError::client)?;
        let stream = self
            .js
            .get_or_create_stream(self.config.stream_config())
            .await
            .map_err(NatsError::client)?;
        self.streams_ready.store(true, Ordering::Release);
        Ok(stream)
    }
}

/// Fan-out to every node through one JetStream stream, events as JSON.
#[derive(Debug)]
pub struct NatsBus {
    shared: Arc<Shared>,
    tx: broadcast::Sender<BusMessage>,
    /// Whether the consumer is open and the client connected.
    live: watch::Sender<bool>,
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl NatsBus {
    /// A bus on `config.url`. The connection is made in the background: this
    /// returns at once even while the server is down, and calls answer
    /// [`Error::Unavailable`] until it is up. Call it inside a Tokio runtime.
    /// Each bus has its own connection and (once subscribed) its own
    /// consumer: make one per node. The streams are created on first use if
    /// missing.
    pub async fn connect(config: NatsConfig) -> Result<Self> {
        let fail = |e: NatsError| Error::Unavailable {
            backend: BACKEND,
            context: "configure the NATS connection".into(),
            temporary: false,
            source: Some(Box::new(e)),
        };
        config.check().map_err(fail)?;
        let (link_tx, link) = watch::channel(Link::default());
        let link_tx = Arc::new(link_tx);
        let options = async_nats::ConnectOptions::new()
            .name("caas-bus")
            .connection_timeout(config.connect_timeout)
            .request_timeout(Some(config.request_timeout))
            .ping_interval(config.health_interval.max(Duration::from_millis(100)))
            .retry_on_initial_connect()
            .max_reconnects(None)
            .reconnect_delay_callback(|attempts| {
                let exp = u32::try_from(attempts.min(6)).unwrap_or(6);
                (listener::MIN_BACKOFF * 2u32.pow(exp)).min(listener::MAX_BACKOFF)
            })
            .event_callback(move |event| {
                let link = link_tx.clone();
                async move {
                    match event {
                        async_nats::Event::Connected => {
                            link.send_modify(|l| {
                                l.connected = true;
                                l.generation += 1;
                            });
                            tracing::debug!("nats bus: connected");
                        }
                        async_nats::Event::Disconnected => {
                            link.send_modify(|l| l.connected = false);
                            tracing::warn!("nats bus: connection lost; reconnecting");
                        }
                        other => tracing::debug!(event = %other, "nats bus: client event"),
                    }
                }
            });
        let client = options
            .connect(config.url.as_str())
            .await
            .map_err(|e| fail(NatsError::client(e)))?;
        let js = jetstream::ContextBuilder::new()
            .timeout(config.request_timeout)
            // Concurrent publishes wait for a slot rather than fail.
            .backpressure_on_inflight(true)
            .build(client.clone());
        let (tx, _) = broadcast::channel(config.bus_capacity.max(1));
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                js,
                config,
                link,
                streams_ready: AtomicBool::new(false),
                counters: Counters::default(),
            }),
            tx,
            live: watch::Sender::new(false),
            listener: std::sync::Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &NatsConfig {
        &self.shared.config
    }

    /// What the bus has seen so far.
    pub fn stats(&self) -> NatsBusStats {
        let c = &self.shared.counters;
        NatsBusStats {
            garbage: c.garbage.load(Ordering::Relaxed),
            dead_letter_failures: c.dead_letter_failures.load(Ordering::Relaxed),
            reconnects: c.reconnects.load(Ordering::Relaxed),
            missed: c.missed.load(Ordering::Relaxed),
        }
    }

    /// Whether the server answers and both streams exist (creating them if
    /// missing): for readiness probes.
    pub async fn ping(&self) -> Result<()> {
        self.bounded("check the streams", async {
            self.shared.ensure_streams().await.map(|_| ())
        })
        .await
    }

    /// Starts the listener task on first use.
    fn start(&self) -> Result<()> {
        let mut listener = self
            .listener
            .lock()
            .map_err(|_| Error::internal("nats bus: listener lock poisoned"))?;
        if listener.is_none() {
            let task =
                listener::Listener::new(self.shared.clone(), self.tx.clone(), self.live.clone());
            *listener = Some(tokio::spawn(task.run()));
        }
        Ok(())
    }

    /// The whole budget of one call: a connection attempt and a request.
    fn budget(&self) -> Duration {
        self.shared.config.connect_timeout + self.shared.config.request_timeout
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = std::result::Result<T, NatsError>>,
    ) -> Result<T> {
        let budget = self.budget();
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(what, e)),
            Err(_) => Err(unavailable(what, NatsError::Timeout(budget))),
        }
    }
}

impl Drop for NatsBus {
    fn drop(&mut self) {
        // The listener holds a sender of the channel: stopping it closes every
        // subscription. Its consumer goes when the server sees it inactive.
        if let Ok(mut l) = self.listener.lock()
            && let Some(task) = l.take()
        {
            task.abort();
        }
    }
}

#[async_trait]
impl EventBus for NatsBus {
    async fn publish(&self, event: Arc<Event>) -> Result<()> {
        let config = &self.shared.config;
        let payload = event_codec::encode(&event, config.max_event_bytes)?;
        let subject = config.subject(&event);
        let size = payload.len();
        let shared = &self.shared;
        self.bounded("publish an event", async move {
            // A client that is reconnecting would queue the message and send
            // it later: wait for the connection instead (within the budget),
            // so an `unavailable` publish is not delivered behind the caller's
            // back (unless the link drops at this very moment).
            shared.connected().await?;
            if !shared.streams_ready.load(Ordering::Acquire) {
                shared.ensure_streams().await?;
            }
            let sent = shared.js.publish(subject, payload.into()).await;
            let acked = match sent {
                Ok(ack) => ack.await,
                Err(e) => Err(e),
            };
            match acked {
                Ok(_) => Ok(Ok(())),
                Err(e) => match e.kind() {
                    PublishErrorKind::MaxPayloadExceeded => Ok(Err(Error::PayloadTooLarge {
                        field: "event".into(),
                        size,
                        limit: shared.client.server_info().max_payload,
                    })),
                    PublishErrorKind::StreamNotFound => {
                        // Deleted, or lost with a server's storage: made again
                        // by the next call.
                        shared.streams_ready.store(false, Ordering::Release);
                        Err(NatsError::client(e))
                    }
                    PublishErrorKind::TimedOut => Err(NatsError::Timeout(config.request_timeout)),
                    _ => Err(NatsError::client(e)),
                },
            }
        })
        .await?
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        self.start()?;
        // Receiving before checking that the consumer is open: every event it
        // reads from now on reaches this receiver.
        let rx = self.tx.subscribe();
        let mut live = self.live.subscribe();
        let wait = self.budget();
        match tokio::time::timeout(wait, live.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(Box::new(NatsSubscription { rx })),
            Ok(Err(_)) => Err(Error::internal("nats bus: listener stopped")),
            Err(_) => Err(unavailable(
                "open the bus consumer",
                NatsError::Timeout(wait),
            )),
        }
    }
}

/// One node's view of the bus: events in stream order, and a
/// [`BusMessage::Lagged`] wherever some are missing.
#[derive(Debug)]
pub struct NatsSubscription {
    rx: broadcast::Receiver<BusMessage>,
}

#[async_trait]
impl Subscription for NatsSubscription {
    async fn next(&mut self) -> Option<BusMessage> {
        match self.rx.recv().await {
            Ok(m) => Some(m),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(BusMessage::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_checks() {
        let c = NatsConfig::default();
        assert!(c.check().is_ok());
        assert_eq!(c.stream_config().subjects, ["caas.bus.ev.>"]);
        assert_eq!(c.dead_letter_subject(), "caas.bus.dead");
        assert_eq!(c.dead_letter_stream(), "CAAS_BUS_DEAD");
        for bad in ["", "a.b", "a b", "a*", "a>"] {
            let c = NatsConfig {
                stream: bad.into(),
                ..NatsConfig::default()
            };
            assert!(c.check().is_err(), "{bad:?}");
        }
        for bad in ["", "a..b", ".a", "a.", "a.*", "a.>", "a b"] {
            let c = NatsConfig {
                subject_prefix: bad.into(),
                ..NatsConfig::default()
            };
            assert!(c.check().is_err(), "{bad:?}");
        }
    }
}
