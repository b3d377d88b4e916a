//! Redis 7 backends of the ports that every node of a platform must share:
//! presence, rate limits, the live event bus and session revocations, and a
//! read cache of conversations that a write on any node invalidates on all.
//!
//! One [`Redis`] holds the connection (one multiplexed connection that
//! reconnects by itself) and hands out each port; [`Redis::backends`] puts
//! them all on a [`Backends`]. What is stored where, and what each part
//! promises, is in the crate's README.

mod bus;
mod cache;
mod keys;
mod lua;
mod presence;
mod ratelimit;
mod revocations;

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use caas_core::Error;
use caas_core::ports::{Backends, ConversationStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

pub use bus::{BusStats, RedisBus, RedisSubscription};
pub use cache::{CacheStats, CachedConversations};
pub use presence::RedisPresenceStore;
pub use ratelimit::RedisRateLimitStore;
pub use revocations::RedisRevocations;

use keys::Keys;

/// How to reach Redis and how the ports behave around it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]` (default `redis://127.0.0.1:6379`).
    pub url: String,
    /// Put in front of every key and of the bus channel (default `caas:`), so
    /// several platforms (or test runs) can share one server.
    pub key_prefix: String,
    /// How long one connection attempt may take (default 1 s).
    pub connect_timeout: Duration,
    /// How long one command may take once connected (default 500 ms); past it
    /// the call answers [`Error::Unavailable`].
    pub command_timeout: Duration,
    /// Whether a rate-limit check that cannot reach Redis lets the request
    /// through (default `false`: it answers [`Error::Unavailable`], so an
    /// outage never silently lifts every limit).
    pub fail_open: bool,
    /// How long a user's presence record (their last seen time) is kept after
    /// their last report (default 30 days).
    pub presence_retention: Duration,
    /// The largest event accepted from the bus channel, in bytes (default
    /// 1 MiB); larger ones are skipped and counted.
    pub max_event_bytes: usize,
    /// Events buffered per local subscriber before it lags (default 16 384).
    pub bus_capacity: usize,
    /// How often the bus checks its subscription connection with a PING, to
    /// notice a connection that died without closing (default 5 s).
    pub bus_health_interval: Duration,
    /// Conversations the read cache holds at most (default 65 536).
    pub cache_capacity: usize,
    /// The longest a cached conversation is served (default 60 s), whatever
    /// else happens (see [`CachedConversations`]).
    pub cache_max_age: Duration,
    /// How long a write through the read cache keeps every node reading that
    /// conversation from the store if it cannot say it ended (its node died,
    /// or Redis failed just then); longer than any store write (default 30 s).
    pub cache_write_lease: Duration,
}

impl Default for RedisConfig {
    fn default() -> Self {
        Self {
            url: "redis://127.0.0.1:6379".into(),
            key_prefix: "caas:".into(),
            connect_timeout: Duration::from_secs(1),
            command_timeout: Duration::from_millis(500),
            fail_open: false,
            presence_retention: Duration::from_secs(30 * 86_400),
            max_event_bytes: crate::event_codec::DEFAULT_MAX_EVENT_BYTES,
            bus_capacity: 16_384,
            bus_health_interval: Duration::from_secs(5),
            cache_capacity: 65_536,
            cache_max_age: Duration::from_secs(60),
            cache_write_lease: Duration::from_secs(30),
        }
    }
}

impl RedisConfig {
    /// The defaults, at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            ..Self::default()
        }
    }
}

/// Why a Redis call failed: the cause inside [`Error::Unavailable`] or
/// [`Error::Internal`].
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// The client or the server reported an error (connection refused or
    /// lost, a script error, …).
    #[error(transparent)]
    Redis(#[from] redis::RedisError),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// Redis holds or returned something this adapter did not write.
    #[error("unexpected data: {0}")]
    Data(String),
    /// [`Redis::new`] was called outside a Tokio runtime.
    #[error("the Redis adapter needs a Tokio runtime")]
    NoRuntime,
}

const BACKEND: &str = "redis";

/// A temporary [`Error::Unavailable`] of the `redis` backend.
fn unavailable(context: impl Into<String>, cause: RedisError) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        context: context.into(),
        temporary: true,
        source: Some(Box::new(cause)),
    }
}

/// Data in Redis that this adapter did not write: reported, never panicked on.
fn corrupt(context: &str, what: impl Into<String>) -> Error {
    Error::Internal {
        context: format!("redis: {context}"),
        source: Some(Box::new(RedisError::Data(what.into()))),
    }
}

/// The connection to Redis, shared by every port made from it. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Redis {
    shared: Arc<Shared>,
}

#[derive(Debug)]
struct Shared {
    client: redis::Client,
    conn: ConnectionManager,
    config: RedisConfig,
    keys: Keys,
}

impl Redis {
    /// A connection to `config.url`, opened lazily: this does no I/O, so a node
    /// starts while Redis is down and its calls answer [`Error::Unavailable`]
    /// until Redis is back. Call it inside a Tokio runtime (the connection's
    /// driver is a task). [`Redis::ping`] checks the server answers.
    pub fn new(config: RedisConfig) -> caas_core::Result<Self> {
        let fail = |e: RedisError| Error::Unavailable {
            backend: BACKEND,
            context: "configure the Redis connection".into(),
            temporary: false,
            source: Some(Box::new(e)),
        };
        if tokio::runtime::Handle::try_current().is_err() {
            return Err(fail(RedisError::NoRuntime));
        }
        let client = redis::Client::open(config.url.as_str()).map_err(|e| fail(e.into()))?;
        // One attempt per call: while Redis is down a call fails within the
        // connect timeout instead of sleeping through a retry schedule, and the
        // next call tries again (that is how the ports recover by themselves).
        let manager = ConnectionManagerConfig::new()
            .set_connection_timeout(Some(config.connect_timeout))
            .set_response_timeout(Some(config.command_timeout))
            .set_number_of_retries(0);
        let conn = ConnectionManager::new_lazy_with_config(client.clone(), manager)
            .map_err(|e| fail(e.into()))?;
        let keys = Keys::new(&config.key_prefix);
        Ok(Self {
            shared: Arc::new(Shared {
                client,
                conn,
                config,
                keys,
            }),
        })
    }

    /// The configuration.
    pub fn config(&self) -> &RedisConfig {
        &self.shared.config
    }

    /// Whether Redis answers: for readiness probes.
    pub async fn ping(&self) -> caas_core::Result<()> {
        let mut conn = self.conn();
        self.run("ping", async move {
            redis::cmd("PING").query_async::<()>(&mut conn).await
        })
        .await
    }

    /// Presence in Redis.
    pub fn presence(&self) -> RedisPresenceStore {
        RedisPresenceStore::new(self.clone())
    }

    /// GCRA rate limits in Redis: one budget per key for every node.
    pub fn rate_limits(&self) -> RedisRateLimitStore {
        RedisRateLimitStore::new(self.clone())
    }

    /// The live event bus over Redis pub/sub. Each call makes a separate bus
    /// (with its own subscription connection once subscribed): make one per
    /// node.
    pub fn bus(&self) -> RedisBus {
        RedisBus::new(self.clone())
    }

    /// Session revocations in Redis, seen by every node.
    pub fn revocations(&self) -> RedisRevocations {
        RedisRevocations::new(self.clone())
    }

    /// `inner` behind a read cache of conversations and members that writes
    /// through any node invalidate on every node.
    pub fn cache_conversations(&self, inner: Arc<dyn ConversationStore>) -> CachedConversations {
        CachedConversations::new(self.clone(), inner)
    }

    /// `base` with presence, rate limits, the bus and revocations in Redis and
    /// its conversation store behind the cross-node read cache: what each node
    /// of a platform on shared stores runs on.
    pub fn backends(&self, base: Backends) -> Backends {
        Backends {
            presence: Arc::new(self.presence()),
            rate_limits: Arc::new(self.rate_limits()),
            bus: Arc::new(self.bus()),
            revocations: Arc::new(self.revocations()),
            conversations: Arc::new(self.cache_conversations(base.conversations.clone())),
            ..base
        }
    }

    fn conn(&self) -> ConnectionManager {
        self.shared.conn.clone()
    }

    fn keys(&self) -> &Keys {
        &self.shared.keys
    }

    /// Runs one exchange with Redis under the adapter's deadline (a connection
    /// attempt plus a command), mapping every failure to a temporary
    /// [`Error::Unavailable`].
    async fn run<T>(
        &self,
        what: &str,
        call: impl Future<Output = redis::RedisResult<T>>,
    ) -> caas_core::Result<T> {
        let budget = self.shared.config.connect_timeout + self.shared.config.command_timeout;
        match tokio::time::timeout(budget, call).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(e)) => Err(unavailable(what, e.into())),
            Err(_) => Err(unavailable(what, RedisError::Timeout(budget))),
        }
    }
}

/// A `u64` from its decimal form, as the scripts store them.
fn parse_u64(s: &str) -> Option<u64> {
    if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Whole milliseconds in `d`, rounded up (Redis expiries are in milliseconds),
/// at least 1.
fn ceil_millis(d: Duration) -> u64 {
    let ms = d.as_nanos().div_ceil(1_000_000);
    u64::try_from(ms).unwrap_or(u64::MAX).max(1)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_as_the_scripts_write_them() {
        assert_eq!(parse_u64("0"), Some(0));
        assert_eq!(parse_u64("18446744073709551615"), Some(u64::MAX));
        assert_eq!(parse_u64("18446744073709551616"), None);
        assert_eq!(parse_u64(""), None);
        assert_eq!(parse_u64("-1"), None);
        assert_eq!(parse_u64("+1"), None);
        assert_eq!(parse_u64("1e3"), None);
        assert_eq!(ceil_millis(Duration::from_nanos(1)), 1);
        assert_eq!(ceil_millis(Duration::from_millis(3)), 3);
        assert_eq!(ceil_millis(Duration::from_nanos(3_000_001)), 4);
        assert_eq!(ceil_millis(Duration::ZERO), 1);
    }

    #[test]
    fn new_needs_a_runtime_and_a_valid_url() {
        assert!(Redis::new(RedisConfig::default()).is_err());
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            assert!(Redis::new(RedisConfig::new("not a url")).is_err());
            assert!(Redis::new(RedisConfig::default()).is_ok());
        });
    }
}
