//! The event bus on RabbitMQ (AMQP 0-9-1).
//!
//! Every event is published to one durable topic exchange with the routing key
//! `<tenant>.<conversation>` (see [`event_codec::route`]), on a channel in
//! confirm mode: a publish returns once the broker has confirmed it (routed it
//! to every bound queue, or found none). Each [`RabbitMqBus`] (one per node)
//! consumes through a queue of its own: server-named, exclusive to its
//! connection (so it goes with the node), bound to the exchange with `#`. A
//! task reads it into a broadcast channel that every local
//! [`RabbitMqSubscription`] reads.
//!
//! A node's queue goes when its connection does, so a subscription that lost
//! its connection (the broker restarted, a network fault) may have missed
//! events: once its task has a queue again it sends
//! [`BusMessage::Lagged`]` { missed: 0 }` and its clients sync.
//!
//! A message the node cannot read (too large, not an event's JSON) is rejected
//! without requeueing, which the broker routes to the dead-letter exchange and
//! its durable queue; subscribers get `Lagged { missed: 1 }`.

mod listener;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use caas_core::events::Event;
use caas_core::ports::{BusMessage, EventBus, Subscription};
use caas_core::{Error, Result};
use lapin::options::{
    BasicPublishOptions, ConfirmSelectOptions, ExchangeDeclareOptions, QueueBindOptions,
    QueueDeclareOptions,
};
use lapin::types::{AMQPValue, FieldTable, ShortString};
use lapin::{
    BasicProperties, Channel, Confirmation, Connection, ConnectionProperties, ExchangeKind,
};
use tokio::sync::{broadcast, watch};

use crate::event_codec;

/// How to reach RabbitMQ and what the bus declares there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RabbitMqConfig {
    /// `amqp://user:password@host:port/vhost` (default
    /// `amqp://guest:guest@127.0.0.1:5672/%2f`).
    pub url: String,
    /// The topic exchange carrying the events (default `caas.bus`). The
    /// dead-letter exchange and queue are both named `<exchange>.dead`.
    /// Several platforms (or test runs) on one broker use names of their own.
    pub exchange: String,
    /// How long one connection attempt may take (default 1 s).
    pub connect_timeout: Duration,
    /// How long the broker may take to answer, a publish's confirm included
    /// (default 1 s); past it the call answers [`Error::Unavailable`].
    pub request_timeout: Duration,
    /// The AMQP heartbeat (whole seconds, at least 1; default 5 s): a
    /// connection that died without closing is noticed within about twice
    /// this.
    pub heartbeat: Duration,
    /// The largest event published or accepted from the queue, in bytes
    /// (default 1 MiB).
    pub max_event_bytes: usize,
    /// Events buffered per local subscriber before it lags (default 16 384).
    pub bus_capacity: usize,
    /// Unacknowledged deliveries the broker sends a node ahead (default 512).
    pub prefetch: u16,
    /// How long the dead-letter queue keeps a message (default 7 days).
    pub dead_letter_ttl: Duration,
    /// The most messages the dead-letter queue keeps; the oldest go first
    /// (default 10 000).
    pub dead_letter_max_length: u32,
}

impl Default for RabbitMqConfig {
    fn default() -> Self {
        Self {
            url: "amqp://guest:guest@127.0.0.1:5672/%2f".into(),
            exchange: "caas.bus".into(),
            connect_timeout: Duration::from_secs(1),
            request_timeout: Duration::from_secs(1),
            heartbeat: Duration::from_secs(5),
            max_event_bytes: event_codec::DEFAULT_MAX_EVENT_BYTES,
            bus_capacity: 16_384,
            prefetch: 512,
            dead_letter_ttl: Duration::from_secs(7 * 86_400),
            dead_letter_max_length: 10_000,
        }
    }
}

impl RabbitMqConfig {
    /// The defaults, at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }

    /// The dead-letter exchange, and the queue bound to it.
    pub fn dead_letter_name(&self) -> String {
        format!("{}.dead", self.exchange)
    }

    /// The URL with the heartbeat and the connect timeout applied.
    fn uri(&self) -> std::result::Result<lapin::uri::AMQPUri, RabbitMqError> {
        let mut uri: lapin::uri::AMQPUri = self
            .url
            .parse()
            .map_err(|e: String| RabbitMqError::Config(format!("`url`: {e}")))?;
        let heartbeat = u16::try_from(self.heartbeat.as_secs().max(1)).unwrap_or(u16::MAX);
        uri.query.heartbeat = Some(heartbeat);
        uri.query.connection_timeout = Some(
            u64::try_from(self.connect_timeout.as_millis())
                .unwrap_or(u64::MAX)
                .max(1),
        );
        Ok(uri)
    }

    fn check(&self) -> std::result::Result<(), RabbitMqError> {
        self.uri()?;
        // Names are AMQP short strings; `.dead` is appended to this one.
        if self.exchange.is_empty()
            || self.exchange.len() > 250
            || self.exchange.starts_with("amq.")
        {
            return Err(RabbitMqError::Config(
                "`exchange` must be 1 to 250 bytes and not start with `amq.`".into(),
            ));
        }
        if self.max_event_bytes == 0 || self.request_timeout.is_zero() || self.prefetch == 0 {
            return Err(RabbitMqError::Config(
                "`max_event_bytes`, `request_timeout` and `prefetch` must not be zero".into(),
            ));
        }
        Ok(())
    }
}

/// Why a RabbitMQ call failed: the cause inside [`Error::Unavailable`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RabbitMqError {
    /// The client or the broker reported an error (connection refused or
    /// lost, a channel closed by the broker, …).
    #[error(transparent)]
    Amqp(#[from] lapin::Error),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The broker refused to take a message (a negative confirm).
    #[error("the broker did not take the message (nack)")]
    Nacked,
    /// The configuration cannot work.
    #[error("invalid configuration: {0}")]
    Config(String),
}

const BACKEND: &str = "rabbitmq";

/// A temporary [`Error::Unavailable`] of the `rabbitmq` backend.
fn unavailable(context: impl Into<String>, cause: RabbitMqError) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        context: context.into(),
        temporary: true,
        source: Some(Box::new(cause)),
    }
}

/// What the bus has seen, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RabbitMqBusStats {
    /// Messages on the node's queue that were not events it can read (too
    /// large, or not an event's JSON): dead-lettered, and subscribers told to
    /// sync.
    pub garbage: u64,
    /// Times the consuming connection was established again after it broke.
    pub reconnects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    garbage: AtomicU64,
    reconnects: AtomicU64,
}

/// Declares what every connection of the bus relies on: the event exchange,
/// the dead-letter exchange and its queue. Idempotent (the same arguments each
/// time), so every node declares them whenever it connects.
async fn declare_topology(
    channel: &Channel,
    config: &RabbitMqConfig,
) -> std::result::Result<(), lapin::Error> {
    let durable = ExchangeDeclareOptions {
        durable: true,
        ..ExchangeDeclareOptions::default()
    };
    channel
        .exchange_declare(
            config.exchange.as_str().into(),
            ExchangeKind::Topic,
            durable,
            FieldTable::default(),
        )
        .await?;
    let dead = config.dead_letter_name();
    channel
        .exchange_declare(
            dead.as_str().into(),
            ExchangeKind::Fanout,
            durable,
            FieldTable::default(),
        )
        .await?;
    let mut args = FieldTable::default();
    let ttl_ms = u32::try_from(config.dead_letter_ttl.as_millis()).unwrap_or(u32::MAX);
    args.insert("x-message-ttl".into(), AMQPValue::LongUInt(ttl_ms));
    args.insert(
        "x-max-length".into(),
        AMQPValue::LongUInt(config.dead_letter_max_length),
    );
    channel
        .queue_declare(
            dead.as_str().into(),
            QueueDeclareOptions {
                durable: true,
                ..QueueDeclareOptions::default()
            },
            args,
        )
        .await?;
    channel
        .queue_bind(
            dead.as_str().into(),
            dead.as_str().into(),
            "".into(),
            QueueBindOptions::default(),
            FieldTable::default(),
        )
        .await?;
    Ok(())
}

/// An open connection: `uri`, bounded by `connect_timeout`.
async fn connect(
    config: &RabbitMqConfig,
    name: &str,
) -> std::result::Result<Connection, RabbitMqError> {
    let uri = config.uri()?;
    let properties = ConnectionProperties::default().with_connection_name(name.into());
    match tokio::time::timeout(
        config.connect_timeout,
        Connection::connect_uri(uri, properties),
    )
    .await
    {
        Ok(r) => Ok(r?),
        Err(_) => Err(RabbitMqError::Timeout(config.connect_timeout)),
    }
}

/// The publishing side: one connection and one channel in confirm mode,
/// opened on first use and again after it broke.
#[derive(Debug)]
struct Publisher {
    /// Kept for the channel's sake (dropping the last handle closes it).
    _connection: Connection,
    channel: Channel,
}

/// Fan-out to every node through one RabbitMQ topic exchange, events as JSON.
#[derive(Debug)]
pub struct RabbitMqBus {
    config: Arc<RabbitMqConfig>,
    publisher: tokio::sync::Mutex<Option<Publisher>>,
    tx: broadcast::Sender<BusMessage>,
    /// Whether the node's queue is bound and consumed now.
    live: watch::Sender<bool>,
    counters: Arc<Counters>,
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RabbitMqBus {
    /// A bus on `config.url`. No I/O here: the node starts even while the
    /// broker is down, and calls answer [`Error::Unavailable`] until it is up.
    /// Publishing opens one connection on first use, subscribing another (one
    /// queue for the whole node, however many subscriptions): make one bus per
    /// node. Use it inside a Tokio runtime.
    pub fn new(config: RabbitMqConfig) -> Result<Self> {
        config.check().map_err(|e| Error::Unavailable {
            backend: BACKEND,
            context: "configure the RabbitMQ connection".into(),
            temporary: false,
            source: Some(Box::new(e)),
        })?;
        let (tx, _) = broadcast::channel(config.bus_capacity.max(1));
        Ok(Self {
            config: Arc::new(config),
            publisher: tokio::sync::Mutex::new(None),
            tx,
            live: watch::Sender::new(false),
            counters: Arc::default(),
            listener: std::sync::Mutex::new(None),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RabbitMqConfig {
        &self.config
    }

    /// What the bus has seen so far.
    pub fn stats(&self) -> RabbitMqBusStats {
        RabbitMqBusStats {
            garbage: self.counters.garbage.load(Ordering::Relaxed),
            reconnects: self.counters.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Whether the broker answers (declaring the exchanges if missing): for
    /// readiness probes.
    pub async fn ping(&self) -> Result<()> {
        self.bounded("reach the broker", async {
            self.channel().await.map(|_| ())
        })
        .await
    }

    /// The publishing channel, opened (with the topology declared) if there
    /// is none or it broke.
    async fn channel(&self) -> std::result::Result<Channel, RabbitMqError> {
        let mut publisher = self.publisher.lock().await;
        if let Some(p) = publisher.as_ref()
            && p.channel.status().connected()
        {
            return Ok(p.channel.clone());
        }
        *publisher = None;
        let connection = connect(&self.config, "caas-bus-publisher").await?;
        let channel = connection.create_channel().await?;
        channel
            .confirm_select(ConfirmSelectOptions::default())
            .await?;
        declare_topology(&channel, &self.config).await?;
        *publisher = Some(Publisher {
            _connection: connection,
            channel: channel.clone(),
        });
        Ok(channel)
    }

    /// Starts the listener task on first use.
    fn start(&self) -> Result<()> {
        let mut listener = self
            .listener
            .lock()
            .map_err(|_| Error::internal("rabbitmq bus: listener lock poisoned"))?;
        if listener.is_none() {
            let task = listener::Listener {
                config: self.config.clone(),
                tx: self.tx.clone(),
                live: self.live.clone(),
                counters: self.counters.clone(),
            };
            *listener = Some(tokio::spawn(task.run()));
        }
        Ok(())
    }

    /// The whole budget of one call: a connection attempt and a request.
    fn budget(&self) -> Duration {
        self.config.connect_timeout + self.config.request_timeout
    }

    async fn bounded<T>(
        &self,
        what: &str,
        call: impl Future<Output = std::result::Result<T, RabbitMqError>>,
    ) -> Result<T> {
        let budget = self.budget();
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(what, e)),
            Err(_) => Err(unavailable(what, RabbitMqError::Timeout(budget))),
        }
    }
}

impl Drop for RabbitMqBus {
    fn drop(&mut self) {
        // The listener holds a sender of the channel and the node's queue:
        // stopping it closes every subscription, and the broker drops the
        // queue with its connection.
        if let Ok(mut l) = self.listener.lock()
            && let Some(task) = l.take()
        {
            task.abort();
        }
    }
}

/// The routing key of `event`: its route, cut to AMQP's 255 bytes (it only
/// informs bindings; every node binds `#`).
fn routing_key(event: &Event) -> ShortString {
    let mut key = event_codec::route(event);
    if key.len() > 255 {
        let mut end = 255;
        while !key.is_char_boundary(end) {
            end -= 1;
        }
        key.truncate(end);
    }
    key.into()
}

#[async_trait]
impl EventBus for RabbitMqBus {
    async fn publish(&self, event: Arc<Event>) -> Result<()> {
        let payload = event_codec::encode(&event, self.config.max_event_bytes)?;
        let key = routing_key(&event);
        let outcome = self
            .bounded("publish an event", async {
                let channel = self.channel().await?;
                // Not mandatory: with no node subscribed the broker drops it,
                // as the port says. Transient: the nodes' queues are not
                // durable, so persisting would only cost disk writes.
                let confirm = channel
                    .basic_publish(
                        self.config.exchange.as_str().into(),
                        key,
                        BasicPublishOptions::default(),
                        &payload,
                        BasicProperties::default()
                            .with_content_type("application/json".into())
                            .with_delivery_mode(1),
                    )
                    .await?
                    .await?;
                match confirm {
                    Confirmation::Ack(_) => Ok(()),
                    Confirmation::Nack(_) => Err(RabbitMqError::Nacked),
                    Confirmation::NotRequested => Err(RabbitMqError::Config(
                        "the publishing channel is not in confirm mode".into(),
                    )),
                }
            })
            .await;
        if outcome.is_err() {
            // The channel may be unusable now (or its state unknown after a
            // timeout): the next publish opens a fresh one.
            if let Ok(mut p) = self.publisher.try_lock() {
                *p = None;
            }
        }
        outcome
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        self.start()?;
        // Receiving before checking that the queue is consumed: every event
        // the listener reads from now on reaches this receiver.
        let rx = self.tx.subscribe();
        let mut live = self.live.subscribe();
        let wait = self.budget() + self.config.request_timeout;
        match tokio::time::timeout(wait, live.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(Box::new(RabbitMqSubscription { rx })),
            Ok(Err(_)) => Err(Error::internal("rabbitmq bus: listener stopped")),
            Err(_) => Err(unavailable(
                "bind the node's queue",
                RabbitMqError::Timeout(wait),
            )),
        }
    }
}

/// One node's view of the bus: events in publish order per publisher, and a
/// [`BusMessage::Lagged`] wherever some may be missing.
#[derive(Debug)]
pub struct RabbitMqSubscription {
    rx: broadcast::Receiver<BusMessage>,
}

#[async_trait]
impl Subscription for RabbitMqSubscription {
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
    fn checks_and_names() {
        let c = RabbitMqConfig::default();
        assert!(c.check().is_ok());
        assert_eq!(c.dead_letter_name(), "caas.bus.dead");
        let uri = c.uri().unwrap();
        assert_eq!(uri.query.heartbeat, Some(5));
        assert_eq!(uri.query.connection_timeout, Some(1000));
        for bad in [
            RabbitMqConfig::new("http://nope"),
            RabbitMqConfig {
                exchange: "amq.topic".into(),
                ..RabbitMqConfig::default()
            },
            RabbitMqConfig {
                exchange: String::new(),
                ..RabbitMqConfig::default()
            },
        ] {
            assert!(bad.check().is_err(), "{bad:?}");
        }
    }

    #[test]
    fn routing_keys_fit_in_a_short_string() {
        use caas_core::ids::{ConversationId, TenantId};
        let long = "t".repeat(128);
        let e = caas_core::testkit::events::event(
            &TenantId::parse(&long).unwrap(),
            &ConversationId::parse(&"c".repeat(128)).unwrap(),
            &["a"],
            1,
        );
        assert_eq!(routing_key(&e).as_str().len(), 255);
    }
}
