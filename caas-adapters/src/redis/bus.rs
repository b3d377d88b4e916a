//! The live event bus over Redis pub/sub.
//!
//! Pub/sub rather than streams: events are durable in the event log already
//! and `sync` recovers whatever a client missed, so the bus only has to carry
//! the live path fast and say when it may have dropped something. Pub/sub does
//! exactly that (no storage, no trimming, no consumer groups to clean up after
//! nodes that left); a stream would keep a second copy of every event in
//! memory for a replay that the event log already offers.
//!
//! Each bus keeps one subscription connection (separate from the command
//! connection, as Redis requires) and a task reading it into a local broadcast
//! channel that every [`RedisSubscription`] of the node reads. When that
//! connection breaks (Redis restarted, a network fault, or Redis dropped a
//! subscriber that fell too far behind) the task reconnects with backoff and,
//! once subscribed again, sends every subscriber a [`BusMessage::Lagged`]:
//! events published meanwhile are lost to this node, and its clients must sync.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use caas_core::events::Event;
use caas_core::ports::{BusMessage, EventBus, Subscription};
use caas_core::{Error, Result};
use futures_util::StreamExt;
use tokio::sync::{broadcast, watch};

use super::{Redis, RedisError, unavailable};
use crate::event_codec;

/// The shortest and longest wait between two reconnection attempts.
const MIN_BACKOFF: Duration = Duration::from_millis(50);
const MAX_BACKOFF: Duration = Duration::from_secs(2);

/// What the bus has seen, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BusStats {
    /// Messages on the channel that were not events this adapter can read (too
    /// large, or not an event's JSON): skipped, and subscribers told to sync.
    pub garbage: u64,
    /// Times the subscription connection was established again after it broke.
    pub reconnects: u64,
}

#[derive(Debug, Default)]
struct Counters {
    garbage: AtomicU64,
    reconnects: AtomicU64,
}

/// Fan-out to every node through one Redis pub/sub channel
/// (`<prefix>bus`), events as JSON.
#[derive(Debug)]
pub struct RedisBus {
    redis: Redis,
    channel: String,
    tx: broadcast::Sender<BusMessage>,
    /// Whether the subscription connection is subscribed now.
    live: watch::Sender<bool>,
    counters: Arc<Counters>,
    listener: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl RedisBus {
    pub(super) fn new(redis: Redis) -> Self {
        let (tx, _) = broadcast::channel(redis.config().bus_capacity.max(1));
        Self {
            channel: redis.keys().bus_channel(),
            redis,
            tx,
            live: watch::Sender::new(false),
            counters: Arc::default(),
            listener: std::sync::Mutex::new(None),
        }
    }

    /// What the bus has seen so far.
    pub fn stats(&self) -> BusStats {
        BusStats {
            garbage: self.counters.garbage.load(Ordering::Relaxed),
            reconnects: self.counters.reconnects.load(Ordering::Relaxed),
        }
    }

    /// Starts the listener task on first use.
    fn start(&self) -> Result<()> {
        let mut listener = self
            .listener
            .lock()
            .map_err(|_| Error::internal("redis bus: listener lock poisoned"))?;
        if listener.is_none() {
            let task = Listener {
                client: self.redis.shared.client.clone(),
                channel: self.channel.clone(),
                tx: self.tx.clone(),
                live: self.live.clone(),
                counters: self.counters.clone(),
                connect_timeout: self.redis.config().connect_timeout,
                command_timeout: self.redis.config().command_timeout,
                health_interval: self.redis.config().bus_health_interval,
                max_event_bytes: self.redis.config().max_event_bytes,
            };
            *listener = Some(tokio::spawn(task.run()));
        }
        Ok(())
    }
}

impl Drop for RedisBus {
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
impl EventBus for RedisBus {
    async fn publish(&self, event: Arc<Event>) -> Result<()> {
        let payload = event_codec::encode(&event, self.redis.config().max_event_bytes)?;
        let mut conn = self.redis.conn();
        let channel = self.channel.clone();
        self.redis
            .run("publish an event", async move {
                redis::cmd("PUBLISH")
                    .arg(channel)
                    .arg(payload)
                    .query_async::<u64>(&mut conn)
                    .await
            })
            .await
            .map(|_| ())
    }

    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        self.start()?;
        // Receiving before checking that the channel is subscribed: every event
        // the listener reads from now on reaches this receiver.
        let rx = self.tx.subscribe();
        let mut live = self.live.subscribe();
        let wait = self.redis.config().connect_timeout + self.redis.config().command_timeout;
        match tokio::time::timeout(wait, live.wait_for(|l| *l)).await {
            Ok(Ok(_)) => Ok(Box::new(RedisSubscription { rx })),
            Ok(Err(_)) => Err(Error::internal("redis bus: listener stopped")),
            Err(_) => Err(unavailable(
                "subscribe to the bus channel",
                RedisError::Timeout(wait),
            )),
        }
    }
}

/// One node's view of the bus: events in publish order per publisher, and a
/// [`BusMessage::Lagged`] wherever some may be missing.
#[derive(Debug)]
pub struct RedisSubscription {
    rx: broadcast::Receiver<BusMessage>,
}

#[async_trait]
impl Subscription for RedisSubscription {
    async fn next(&mut self) -> Option<BusMessage> {
        match self.rx.recv().await {
            Ok(m) => Some(m),
            Err(broadcast::error::RecvError::Lagged(missed)) => Some(BusMessage::Lagged { missed }),
            Err(broadcast::error::RecvError::Closed) => None,
        }
    }
}

/// The task that owns the subscription connection.
struct Listener {
    client: redis::Client,
    channel: String,
    tx: broadcast::Sender<BusMessage>,
    live: watch::Sender<bool>,
    counters: Arc<Counters>,
    connect_timeout: Duration,
    command_timeout: Duration,
    health_interval: Duration,
    max_event_bytes: usize,
}

impl Listener {
    async fn run(self) {
        let mut backoff = MIN_BACKOFF;
        let mut was_live = false;
        loop {
            let pubsub = match self.connect().await {
                Ok(p) => p,
                Err(e) => {
                    tracing::warn!(error = %e, "redis bus: cannot subscribe; retrying in {backoff:?}");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(MAX_BACKOFF);
                    continue;
                }
            };
            backoff = MIN_BACKOFF;
            self.live.send_replace(true);
            if was_live {
                self.counters.reconnects.fetch_add(1, Ordering::Relaxed);
                tracing::info!("redis bus: subscribed again; subscribers told to sync");
                let _ = self.tx.send(BusMessage::Lagged { missed: 0 });
            }
            was_live = true;
            self.listen(pubsub).await;
            self.live.send_replace(false);
            tracing::warn!("redis bus: subscription connection lost; reconnecting");
        }
    }

    async fn connect(&self) -> std::result::Result<redis::aio::PubSub, RedisError> {
        let attempt = async {
            let mut pubsub = self.client.get_async_pubsub().await?;
            pubsub.subscribe(&self.channel).await?;
            Ok::<_, redis::RedisError>(pubsub)
        };
        let budget = self.connect_timeout + self.command_timeout;
        match tokio::time::timeout(budget, attempt).await {
            Ok(r) => r.map_err(RedisError::from),
            Err(_) => Err(RedisError::Timeout(budget)),
        }
    }

    /// Reads the channel until the connection fails (closed, or no answer to a
    /// health PING).
    async fn listen(&self, pubsub: redis::aio::PubSub) {
        let (mut sink, mut stream) = pubsub.split();
        let mut health = tokio::time::interval(self.health_interval.max(Duration::from_millis(10)));
        health.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        health.tick().await;
        loop {
            tokio::select! {
                msg = stream.next() => match msg {
                    Some(m) => self.deliver(m.get_payload_bytes()),
                    None => return,
                },
                _ = health.tick() => {
                    let ping = tokio::time::timeout(self.command_timeout, sink.ping::<redis::Value>());
                    if !matches!(ping.await, Ok(Ok(_))) {
                        return;
                    }
                }
            }
        }
    }

    fn deliver(&self, payload: &[u8]) {
        let event = event_codec::decode(payload, self.max_event_bytes);
        let message = match event {
            Ok(e) => BusMessage::Event(Arc::new(e)),
            Err(e) => {
                let why = e.to_string();
                // Perhaps an event a newer node wrote: its audience must sync.
                self.counters.garbage.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(why, "redis bus: skipped a message that is not an event");
                BusMessage::Lagged { missed: 1 }
            }
        };
        // An error only means no subscriber is listening now.
        let _ = self.tx.send(message);
    }
}
