//! Conversations and their member lists as last read, kept coherent across
//! nodes with `LISTEN`/`NOTIFY`.
//!
//! Every send reads both (to authorize it and to address its event); without a
//! cache that is two round trips per send. Every write to a conversation or its
//! members sends `NOTIFY caas_cache` with the conversation's key in the same
//! transaction, so the notification goes out exactly when the change commits;
//! each node listens on a connection of its own and drops the entry. The writing
//! node also drops it itself once its write committed, so its own reads see its
//! own writes at once.
//!
//! * A read fills the cache only if nothing was invalidated since the read
//!   began (a generation counter), so a read that raced a change never stores
//!   what the change replaced.
//! * While the listening connection is down (the server restarted, the network
//!   failed), notifications may be lost: the cache is off, and emptied when it
//!   comes back on.
//! * What it costs: another node's change is seen here once its notification
//!   arrives (it is sent when the change commits); until then a
//!   send here may still be authorized and addressed by the previous
//!   membership, as it would if it had started just before the change.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::Duration;

use caas_core::ids::{ConversationId, TenantId};
use caas_core::model::{Conversation, Member};
use futures_util::future::poll_fn;
use tokio_postgres::AsyncMessage;

use super::Shared;

/// The channel every node listens on.
pub(super) const CHANNEL: &str = "caas_cache";

/// Entries kept at most (conversations, and members over all lists); past it
/// the cache starts over.
const MAX_CONVERSATIONS: usize = 16 * 1024;
const MAX_MEMBERS: usize = 256 * 1024;

type Key = (TenantId, ConversationId);
type Map<V> = HashMap<Key, V, foldhash::fast::RandomState>;

#[derive(Debug, Default)]
pub(super) struct Caches {
    on: AtomicBool,
    generation: AtomicU64,
    conversations: Mutex<Map<Option<Conversation>>>,
    members: Mutex<(Map<Arc<[Member]>>, usize)>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Only map operations run under these locks; a poisoned map is still whole.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Caches {
    /// A cache that stays off (for stores configured without one).
    pub(super) fn new() -> Self {
        Self::default()
    }

    /// Taken before a read whose result may be filled in.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    fn usable(&self, generation: u64) -> bool {
        self.on.load(Ordering::Acquire) && self.generation() == generation
    }

    pub(super) fn conversation(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
    ) -> Option<Option<Conversation>> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.conversations)
            .get(&(tenant.clone(), id.clone()))
            .cloned()
    }

    pub(super) fn fill_conversation(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
        generation: u64,
        value: Option<Conversation>,
    ) {
        let mut map = lock(&self.conversations);
        // Checked under the lock: an invalidation takes it too.
        if !self.usable(generation) {
            return;
        }
        if map.len() >= MAX_CONVERSATIONS {
            map.clear();
        }
        map.insert((tenant.clone(), id.clone()), value);
    }

    pub(super) fn members(&self, tenant: &TenantId, id: &ConversationId) -> Option<Arc<[Member]>> {
        if !self.on.load(Ordering::Acquire) {
            return None;
        }
        lock(&self.members)
            .0
            .get(&(tenant.clone(), id.clone()))
            .cloned()
    }

    pub(super) fn fill_members(
        &self,
        tenant: &TenantId,
        id: &ConversationId,
        generation: u64,
        value: Arc<[Member]>,
    ) {
        let mut guard = lock(&self.members);
        if !self.usable(generation) || value.len() > MAX_MEMBERS {
            return;
        }
        let (map, weight) = &mut *guard;
        if *weight + value.len() + 1 > MAX_MEMBERS {
            map.clear();
            *weight = 0;
        }
        *weight += value.len() + 1;
        if let Some(old) = map.insert((tenant.clone(), id.clone()), value) {
            *weight = weight.saturating_sub(old.len() + 1);
        }
    }

    /// Drops what is cached of one conversation.
    pub(super) fn invalidate(&self, tenant: &TenantId, id: &ConversationId) {
        let key = (tenant.clone(), id.clone());
        let mut convs = lock(&self.conversations);
        let mut members = lock(&self.members);
        self.generation.fetch_add(1, Ordering::AcqRel);
        convs.remove(&key);
        if let Some(old) = members.0.remove(&key) {
            members.1 = members.1.saturating_sub(old.len() + 1);
        }
    }

    fn clear(&self) {
        let mut convs = lock(&self.conversations);
        let mut members = lock(&self.members);
        self.generation.fetch_add(1, Ordering::AcqRel);
        convs.clear();
        members.0.clear();
        members.1 = 0;
    }

    fn set_on(&self, on: bool) {
        // Emptied both ways: what was cached before may have missed changes.
        self.clear();
        self.on.store(on, Ordering::Release);
    }

    /// Whether the cache is in use (its listener is connected).
    pub(super) fn is_on(&self) -> bool {
        self.on.load(Ordering::Acquire)
    }

    /// Applies one notification's payload: `tenant\nconversation`.
    fn apply(&self, payload: &str) {
        let parsed = payload
            .split_once('\n')
            .and_then(|(t, c)| Some((TenantId::parse(t).ok()?, ConversationId::parse(c).ok()?)));
        match parsed {
            Some((t, c)) => self.invalidate(&t, &c),
            // Not ours to interpret: be safe.
            None => self.clear(),
        }
    }
}

/// The payload that invalidates a conversation everywhere.
pub(super) fn payload(tenant: &TenantId, id: &ConversationId) -> String {
    format!("{tenant}\n{id}")
}

/// Listens for invalidations for as long as the store lives, reconnecting with
/// a growing pause; the cache is on only while a listening connection is up.
pub(super) async fn listen(shared: Weak<Shared>) {
    let mut pause = Duration::from_millis(50);
    loop {
        let Some(s) = shared.upgrade() else {
            return;
        };
        let connected = s.pool.connect_raw().await;
        let (client, mut connection) = match connected {
            Ok(c) => c,
            Err(_) => {
                s.caches.set_on(false);
                drop(s);
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_secs(5));
                continue;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Option<String>>();
        let driver = tokio::spawn(async move {
            loop {
                match poll_fn(|cx| connection.poll_message(cx)).await {
                    Some(Ok(AsyncMessage::Notification(n))) => {
                        if tx.send(Some(n.payload().to_owned())).is_err() {
                            return;
                        }
                    }
                    Some(Ok(_)) => {}
                    Some(Err(_)) | None => {
                        let _ = tx.send(None);
                        return;
                    }
                }
            }
        });
        let listening = client.batch_execute(&format!("LISTEN {CHANNEL}")).await;
        if listening.is_ok() {
            s.caches.set_on(true);
            pause = Duration::from_millis(50);
            let caches = Arc::downgrade(&s);
            drop(s);
            while let Some(Some(p)) = rx.recv().await {
                match caches.upgrade() {
                    Some(s) => s.caches.apply(&p),
                    None => {
                        driver.abort();
                        return;
                    }
                }
            }
        } else {
            drop(s);
        }
        driver.abort();
        drop(client);
        if let Some(s) = shared.upgrade() {
            s.caches.set_on(false);
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(5));
    }
}
