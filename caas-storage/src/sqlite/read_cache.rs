//! Per-conversation values as last read: a conversation and its members.
//!
//! Every send reads both (to authorize and to address the event); decoding the
//! members costs time per member, which dominated a large group's send, and the
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

/// What a cache may hold, in entries or (for member lists) members; a full cache
/// starts over, refilling from reads. Each cached member costs on the order of a
/// hundred bytes, so the member bound is what caps the cache's memory.
pub(super) const MAX_CONVERSATIONS: usize = 16 * 1024;
pub(super) const MAX_MEMBERS: usize = 256 * 1024;

type Key = (TenantId, ConversationId);

type Map<V> = HashMap<Key, (V, usize), foldhash::fast::RandomState>;

#[derive(Debug)]
pub(super) struct ReadCache<V> {
    generation: AtomicU64,
    lists: Mutex<Entries<V>>,
    capacity: usize,
}

#[derive(Debug)]
struct Entries<V> {
    map: Map<V>,
    /// The sum of the entries' weights.
    weight: usize,
}

impl<V: Clone> ReadCache<V> {
    /// A cache holding entries of at most `capacity` total weight.
    pub(super) fn new(capacity: usize) -> Self {
        Self {
            generation: AtomicU64::new(0),
            lists: Mutex::new(Entries {
                map: Map::default(),
                weight: 0,
            }),
            capacity,
        }
    }

    fn lists(&self) -> MutexGuard<'_, Entries<V>> {
        // Only map operations run under the lock; a poisoned map is still whole.
        self.lists.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The cached value, if any.
    pub(super) fn get(&self, tenant: &TenantId, conv: &ConversationId) -> Option<V> {
        self.lists()
            .map
            .get(&(tenant.clone(), conv.clone()))
            .map(|(v, _)| v.clone())
    }

    /// Taken before a read whose result may be [`ReadCache::fill`]ed.
    pub(super) fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Keeps `value` (counting `weight` against the capacity), read after
    /// `generation` was taken, unless a write happened since. A value heavier than
    /// the whole capacity is not kept.
    pub(super) fn fill(
        &self,
        tenant: &TenantId,
        conv: &ConversationId,
        generation: u64,
        value: V,
        weight: usize,
    ) {
        let weight = weight.max(1);
        if weight > self.capacity {
            return;
        }
        let mut lists = self.lists();
        // Checked under the lock: `invalidate` bumps before it takes the lock, so
        // a write that committed after the read began is seen here.
        if self.generation.load(Ordering::Acquire) != generation {
            return;
        }
        if lists.weight + weight > self.capacity {
            lists.map.clear();
            lists.weight = 0;
        }
        if let Some((_, old)) = lists
            .map
            .insert((tenant.clone(), conv.clone()), (value, weight))
        {
            lists.weight -= old;
        }
        lists.weight += weight;
    }

    /// Called after every committed (or failed) write of what is cached.
    pub(super) fn invalidate(&self, tenant: &TenantId, conv: &ConversationId) {
        self.generation.fetch_add(1, Ordering::AcqRel);
        let mut lists = self.lists();
        if let Some((_, weight)) = lists.map.remove(&(tenant.clone(), conv.clone())) {
            lists.weight -= weight;
        }
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
        let cache = ReadCache::<Arc<[Member]>>::new(3);
        let (t, c) = ids();
        let before = cache.generation();
        // A write commits and invalidates while the read is under way.
        cache.invalidate(&t, &c);
        cache.fill(&t, &c, before, Arc::from(vec![member(&c, "old")]), 1);
        assert!(cache.get(&t, &c).is_none());
        // A read that began after the write is kept, until the next write.
        let g = cache.generation();
        cache.fill(&t, &c, g, Arc::from(vec![member(&c, "new")]), 1);
        assert_eq!(cache.get(&t, &c).unwrap()[0].user.as_str(), "new");
        cache.invalidate(&t, &c);
        assert!(cache.get(&t, &c).is_none());
        // Bounded by weight: too heavy is not kept, and a full cache starts over.
        let g = cache.generation();
        cache.fill(&t, &c, g, Arc::from(vec![member(&c, "big")]), 4);
        assert!(cache.get(&t, &c).is_none());
        let other = ConversationId::parse("d").unwrap();
        cache.fill(&t, &c, g, Arc::from(vec![member(&c, "a")]), 2);
        cache.fill(&t, &other, g, Arc::from(vec![member(&other, "b")]), 2);
        assert!(cache.get(&t, &c).is_none(), "dropped to make room");
        assert!(cache.get(&t, &other).is_some());
    }
}
