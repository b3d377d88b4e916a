//! Per-conversation values as last read: a conversation and its members.
//!
//! Every send reads both (to authorize and to address the event); decoding the
//! members costs ~2 µs a member, which dominated a 100-member send, and the
//! conversation's read costs a page read after every commit. The cache is
//! coherent because every write to this database goes through this store (one
//! process owns the file): a write drops its conversation's entry once
//! committed and bumps a generation, and a read fills the cache only if no
//! write happened since the read began, so a read that raced a write never
//! stores what the write replaced.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use caas_core::ids::{ConversationId, TenantId};

/// Conversations kept at most; a full cache starts over (it refills from reads).
const MAX_CONVERSATIONS: usize = 16 * 1024;

type Key = (TenantId, ConversationId);

type Map<V> = HashMap<Key, V, foldhash::fast::RandomState>;

#[derive(Debug)]
pub(super) struct ReadCache<V> {
    generation: AtomicU64,
    lists: Mutex<Map<V>>,
}

impl<V> Default for ReadCache<V> {
    fn default() -> Self {
        Self {
            generation: AtomicU64::new(0),
            lists: Mutex::new(Map::default()),
        }
    }
}

impl<V: Clone> ReadCache<V> {
    fn lists(&self) -> MutexGuard<'_, Map<V>> {
        // Only map operations run under the lock; a poisoned map is still whole.
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value, if any.
    pub(super) fn get(&self, tenant: &TenantId, conv: &ConversationId) -> Option<V> {
        self.lists().get(&(tenant.clone(), conv.clone())).cloned()
    }

    /// Taken before a read whose result may be [`ReadCache::fill`]ed.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `value`, read after `generation` was taken, unless a write happened
    /// since.
    pub(super) fn fill(&self, tenant: &TenantId, conv: &ConversationId, generation: u64, value: V) {
        let mut lists = self.lists();
        // Checked under the lock: `invalidate` bumps before it takes the lock, so
        // a write that committed after the read began is seen here.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if lists.len() >= MAX_CONVERSATIONS {
            lists.clear();
        }
        lists.insert((tenant.clone(), conv.clone()), value);
    }

    /// Called after every committed (or failed) write of what is cached.
    pub(super) fn invalidate(&self, tenant: &TenantId, conv: &ConversationId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        self.lists().remove(&(tenant.clone(), conv.clone()));
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use caas_core::model::{Member, Role};
    use caas_core::time::Timestamp;

    fn ids() -> (TenantId, ConversationId) {
        (
            TenantId::parse("t").unwrap(),
            ConversationId::parse("c").unwrap(),
        )
    }

    fn member(c: &ConversationId, u: &str) -> Member {
        Member::new(
            c.clone(),
            caas_core::ids::UserId::parse(u).unwrap(),
            Role::Member,
            Timestamp::from_secs(1),
        )
    }

    #[test]
    fn a_read_that_raced_a_write_is_not_kept() {
        let cache = ReadCache::<Arc<[Member]>>::default();
        let (t, c) = ids();
        let before = cache.generation();
        // A write commits and invalidates while the read is under way.
        cache.invalidate(&t, &c);
        cache.fill(&t, &c, before, Arc::from(vec![member(&c, "old")]));
        assert!(cache.get(&t, &c).is_none());
        // A read that began after the write is kept, until the next write.
        let g = cache.generation();
        cache.fill(&t, &c, g, Arc::from(vec![member(&c, "new")]));
        assert_eq!(cache.get(&t, &c).unwrap()[0].user.as_str(), "new");
        cache.invalidate(&t, &c);
        assert!(cache.get(&t, &c).is_none());
    }
}
