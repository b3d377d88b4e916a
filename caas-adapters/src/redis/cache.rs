//! A read cache of conversations and their members, correct across nodes.
//!
//! Each conversation has a version in Redis: a random token that every write
//! replaces. A cached entry carries the token that was current before it was
//! read from the store, and is served only while Redis still holds that token,
//! which each cached read checks with one script call. So the check is
//! synchronous where pub/sub invalidation would not be: a write replaces the
//! token after its store write and before it returns, and any read on any node
//! that starts after that sees the new token and reads the store. A member
//! removed on one node is never authorized from another node's cached list.
//!
//! * A write first takes a lease (a sorted set of writer ids, scored by when
//!   their lease ends, in Redis's clock) and replaces the token; while any
//!   lease runs, reads go to the store and cache nothing. If Redis cannot be
//!   reached the write is refused before anything changes.
//! * After the store write it drops its lease and replaces the token again. If
//!   that fails (Redis lost just then) or the node dies first, the lease makes
//!   every node read through until it ends
//!   ([`super::RedisConfig::cache_write_lease`], longer than any store write),
//!   and the token replaced at the start has already outdated every entry
//!   cached before the write. The write answers [`caas_core::Error::Unavailable`]
//!   (it was stored), and the node retries the release before its next call.
//! * Tokens are random, not counters, so a Redis that restarts empty can never
//!   hand a stale entry its old version back; a missing token is created by the
//!   first reader, and tokens expire a day after their last write.
//! * When Redis cannot be reached, reads go to the store and nothing is cached;
//!   [`super::RedisConfig::cache_max_age`] bounds any entry's life regardless.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use caas_core::ids::{ConversationId, TenantId, UserId};
use caas_core::model::{Conversation, Member};
use caas_core::ports::{ConversationStore, Created};
use caas_core::{Error, Result};

use super::lua::{CACHE_BEGIN_SCRIPT, CACHE_END_SCRIPT, CACHE_READ_SCRIPT};
use super::{Redis, ceil_millis};

/// How long a version token lives after it was last set.
const VERSION_TTL: Duration = Duration::from_secs(86_400);

type Key = (TenantId, ConversationId);

#[derive(Debug, Clone)]
struct Entry {
    token: Arc<str>,
    at: Instant,
    conversation: Option<Option<Conversation>>,
    members: Option<Arc<[Member]>>,
}

/// How the cache has done, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CacheStats {
    /// Reads served from the cache.
    pub hits: u64,
    /// Reads that went to the store and filled the cache.
    pub misses: u64,
    /// Reads that went to the store uncached: Redis could not be reached, or a
    /// write of the conversation was in progress.
    pub bypasses: u64,
}

/// A [`ConversationStore`] decorator caching `get` and `members` (what every
/// send reads), invalidated on every node by writes through any node. See the
/// module documentation for the scheme and its guarantees.
#[derive(Debug)]
pub struct CachedConversations {
    redis: Redis,
    inner: Arc<dyn ConversationStore>,
    entries: Mutex<HashMap<Key, Entry>>,
    /// Writes whose end could not be recorded: (conversation, writer id).
    pending: Mutex<HashSet<(Key, String)>>,
    hits: AtomicU64,
    misses: AtomicU64,
    bypasses: AtomicU64,
}

fn new_token() -> String {
    format!("{:032x}", fastrand::u128(..))
}

impl CachedConversations {
    pub(super) fn new(redis: Redis, inner: Arc<dyn ConversationStore>) -> Self {
        Self {
            redis,
            inner,
            entries: Mutex::default(),
            pending: Mutex::default(),
            hits: AtomicU64::new(0),
            misses: AtomicU64::new(0),
            bypasses: AtomicU64::new(0),
        }
    }

    /// How the cache has done so far.
    pub fn stats(&self) -> CacheStats {
        CacheStats {
            hits: self.hits.load(Ordering::Relaxed),
            misses: self.misses.load(Ordering::Relaxed),
            bypasses: self.bypasses.load(Ordering::Relaxed),
        }
    }

    /// The conversation's current token (created when missing), and whether a
    /// write of it is in progress.
    async fn token(&self, key: &Key) -> Result<(Arc<str>, bool)> {
        let keys = self.redis.keys();
        let mut call = CACHE_READ_SCRIPT.key(keys.conversation_version(&key.0, &key.1));
        call.key(keys.conversation_writers(&key.0, &key.1))
            .arg(new_token())
            .arg(VERSION_TTL.as_secs());
        let mut conn = self.redis.conn();
        let (token, busy): (String, u64) = self
            .redis
            .run("read a conversation's cache version", async move {
                call.invoke_async(&mut conn).await
            })
            .await?;
        Ok((Arc::from(token), busy > 0))
    }

    /// Starts a write: takes `writer`'s lease and replaces the token.
    async fn begin(&self, key: &Key, writer: &str) -> Result<()> {
        let keys = self.redis.keys();
        let mut call = CACHE_BEGIN_SCRIPT.key(keys.conversation_version(&key.0, &key.1));
        call.key(keys.conversation_writers(&key.0, &key.1))
            .arg(writer)
            .arg(ceil_millis(self.redis.config().cache_write_lease))
            .arg(new_token())
            .arg(VERSION_TTL.as_secs());
        let mut conn = self.redis.conn();
        self.redis
            .run("start a conversation write", async move {
                call.invoke_async::<()>(&mut conn).await
            })
            .await
    }

    /// Ends a write: drops `writer`'s lease and replaces the token, so every
    /// cached copy anywhere is stale. Idempotent.
    async fn end(&self, key: &Key, writer: &str) -> Result<()> {
        let keys = self.redis.keys();
        let mut call = CACHE_END_SCRIPT.key(keys.conversation_version(&key.0, &key.1));
        call.key(keys.conversation_writers(&key.0, &key.1))
            .arg(writer)
            .arg(new_token())
            .arg(VERSION_TTL.as_secs());
        let mut conn = self.redis.conn();
        self.redis
            .run("invalidate a cached conversation", async move {
                call.invoke_async::<()>(&mut conn).await
            })
            .await
    }

    fn forget(&self, key: &Key) {
        if let Ok(mut e) = self.entries.lock() {
            e.remove(key);
        }
    }

    /// Retries the write ends a failure left behind. Called only after Redis
    /// just answered, so an outage does not make every call wait on them.
    /// Returns whether it recorded any.
    async fn flush_pending(&self) -> bool {
        let ends: Vec<(Key, String)> = match self.pending.lock() {
            Ok(p) if !p.is_empty() => p.iter().cloned().collect(),
            _ => return false,
        };
        let mut any = false;
        for (key, writer) in ends {
            if self.end(&key, &writer).await.is_ok() {
                any = true;
                self.forget(&key);
                if let Ok(mut p) = self.pending.lock() {
                    p.remove(&(key, writer));
                }
            }
        }
        any
    }

    /// A write through the decorator: a lease and a new token before the store
    /// write (or nothing is written), the lease dropped and a new token after.
    async fn write<T>(
        &self,
        key: Key,
        write: impl std::future::Future<Output = Result<T>>,
    ) -> Result<T> {
        let writer = new_token();
        self.begin(&key, &writer).await?;
        self.flush_pending().await;
        self.forget(&key);
        let result = write.await;
        self.forget(&key);
        // Also after a failed write: a timeout may still have been applied.
        if let Err(e) = self.end(&key, &writer).await {
            if let Ok(mut p) = self.pending.lock() {
                p.insert((key, writer));
            }
            if result.is_ok() {
                return Err(Error::Unavailable {
                    backend: "redis",
                    context: "the change was stored, but the caches of other nodes could not \
                              be told; they read through until the write's lease ends"
                        .into(),
                    temporary: true,
                    source: Some(Box::new(e)),
                });
            }
        }
        result
    }

    /// A cached read: `pick` takes the wanted part of a valid entry, `fill`
    /// reads the store and `put` records it.
    async fn read<T: Clone>(
        &self,
        key: Key,
        pick: impl Fn(&Entry) -> Option<T>,
        fill: impl std::future::Future<Output = Result<T>>,
        put: impl Fn(&mut Entry, T),
    ) -> Result<T> {
        let mut checked = self.token(&key).await;
        if checked.is_ok() && self.flush_pending().await {
            // A write of ours just ended: read the token it left.
            checked = self.token(&key).await;
        }
        let token = match checked {
            Ok((token, false)) => token,
            Ok((_, true)) => {
                self.bypasses.fetch_add(1, Ordering::Relaxed);
                return fill.await;
            }
            Err(e) => {
                self.bypasses.fetch_add(1, Ordering::Relaxed);
                tracing::debug!(error = %e, "conversation cache bypassed: Redis unavailable");
                return fill.await;
            }
        };
        let max_age = self.redis.config().cache_max_age;
        if let Ok(entries) = self.entries.lock()
            && let Some(e) = entries.get(&key)
            && e.token == token
            && e.at.elapsed() < max_age
            && let Some(v) = pick(e)
        {
            self.hits.fetch_add(1, Ordering::Relaxed);
            return Ok(v);
        }
        self.misses.fetch_add(1, Ordering::Relaxed);
        let value = fill.await?;
        if let Ok(mut entries) = self.entries.lock() {
            if entries.len() >= self.redis.config().cache_capacity && !entries.contains_key(&key) {
                // A full sweep is cheaper than tracking recency on every read,
                // and a miss is one store read.
                entries.clear();
            }
            let entry = entries.entry(key).or_insert_with(|| Entry {
                token: token.clone(),
                at: Instant::now(),
                conversation: None,
                members: None,
            });
            if entry.token != token || entry.at.elapsed() >= max_age {
                *entry = Entry {
                    token,
                    at: Instant::now(),
                    conversation: None,
                    members: None,
                };
            }
            put(entry, value.clone());
        }
        Ok(value)
    }
}

#[async_trait]
impl ConversationStore for CachedConversations {
    async fn create(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<Created<Conversation>> {
        // A cached "no such conversation" must not outlive its creation.
        let key = (conversation.tenant.clone(), conversation.id.clone());
        self.write(key, self.inner.create(conversation, members))
            .await
    }

    async fn get(&self, tenant: &TenantId, id: &ConversationId) -> Result<Option<Conversation>> {
        self.read(
            (tenant.clone(), id.clone()),
            |e| e.conversation.clone(),
            self.inner.get(tenant, id),
            |e, v| e.conversation = Some(v),
        )
        .await
    }

    async fn update(&self, conversation: &Conversation) -> Result<()> {
        let key = (conversation.tenant.clone(), conversation.id.clone());
        self.write(key, self.inner.update(conversation)).await
    }

    async fn member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>> {
        self.inner.member(tenant, conversation, user).await
    }

    async fn members(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Member>> {
        let shared = self
            .read(
                (tenant.clone(), conversation.clone()),
                |e| e.members.clone(),
                async {
                    let m = self.inner.members(tenant, conversation).await?;
                    Ok(Arc::<[Member]>::from(m))
                },
                |e, v| e.members = Some(v),
            )
            .await?;
        Ok(shared.to_vec())
    }

    async fn put_member(&self, tenant: &TenantId, member: &Member) -> Result<bool> {
        let key = (tenant.clone(), member.conversation.clone());
        self.write(key, self.inner.put_member(tenant, member)).await
    }

    async fn remove_member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<bool> {
        let key = (tenant.clone(), conversation.clone());
        self.write(key, self.inner.remove_member(tenant, conversation, user))
            .await
    }

    async fn list_for_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<(Conversation, Member)>> {
        self.inner.list_for_user(tenant, user).await
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        // A walk reads each conversation once: nothing to gain from caching it.
        self.inner.list(tenant, after, limit).await
    }
}
