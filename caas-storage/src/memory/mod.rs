//! Every caas-core port in memory.
//!
//! Locks are `std::sync` ones, held only for a few map operations and never across
//! an `.await`: that is cheaper than an async mutex and cannot deadlock a runtime
//! (the reasoning of mini-redis's `db.rs`).

mod audit;
mod blobs;
mod bus;
mod conversations;
mod credentials;
mod events;
mod flags;
mod keys;
mod media;
mod messages;
mod presence;
mod ratelimit;
mod receipts;
mod revocations;
mod search;
mod tenants;
mod usage;
mod users;
mod webhooks;

use std::sync::Arc;

use caas_core::ports::Backends;
use caas_core::time::{Clock, SystemClock};

pub use audit::MemoryAuditStore;
pub use blobs::MemoryBlobStore;
pub use bus::{MemoryBus, MemorySubscription};
pub use conversations::MemoryConversationStore;
pub use credentials::MemoryCredentialStore;
pub use events::MemoryEventLog;
pub use flags::MemoryFlagStore;
pub use keys::MemoryKeyDirectory;
pub use media::MemoryMediaStore;
pub use messages::MemoryMessageStore;
pub use presence::MemoryPresenceStore;
pub use ratelimit::MemoryRateLimitStore;
pub use receipts::MemoryReceiptStore;
pub use revocations::MemoryRevocations;
pub use search::MemorySearchIndex;
pub use tenants::MemoryTenantStore;
pub use usage::MemoryUsageStore;
pub use users::MemoryUserStore;
pub use webhooks::MemoryWebhookStore;

/// Every port in memory, on the system clock.
pub fn backends() -> Backends {
    backends_with_clock(Arc::new(SystemClock::new()))
}

/// Every port in memory, on the given clock (a `ManualClock` in tests).
pub fn backends_with_clock(clock: Arc<dyn Clock>) -> Backends {
    let events = Arc::new(MemoryEventLog::default());
    Backends {
        tenants: Arc::new(MemoryTenantStore::default()),
        users: Arc::new(MemoryUserStore::default()),
        conversations: Arc::new(MemoryConversationStore::default()),
        messages: Arc::new(MemoryMessageStore::with_event_log(events.clone())),
        receipts: Arc::new(MemoryReceiptStore::default()),
        events,
        credentials: Arc::new(MemoryCredentialStore::default()),
        revocations: Arc::new(MemoryRevocations::default()),
        keys: Arc::new(MemoryKeyDirectory::default()),
        audit: Arc::new(MemoryAuditStore::default()),
        bus: Arc::new(MemoryBus::default()),
        blobs: Arc::new(MemoryBlobStore::default()),
        media: Arc::new(MemoryMediaStore::default()),
        usage: Arc::new(MemoryUsageStore::default()),
        flags: Arc::new(MemoryFlagStore::default()),
        shredder: Arc::new(caas_core::ports::NoShredding),
        webhooks: Arc::new(MemoryWebhookStore::default()),
        search: Arc::new(MemorySearchIndex::default()),
        presence: Arc::new(MemoryPresenceStore::default()),
        rate_limits: Arc::new(MemoryRateLimitStore::default()),
        clock,
    }
}

/// Hash maps keyed by client-chosen ids: foldhash is several times faster than
/// SipHash here and still randomly seeded per map, which keeps hash flooding hard.
type Map<K, V> = std::collections::HashMap<K, V, foldhash::quality::RandomState>;

/// The concurrent form of [`Map`].
type Concurrent<K, V> = dashmap::DashMap<K, V, foldhash::quality::RandomState>;

/// A poisoned lock means a thread panicked mid-update; report it instead of
/// panicking again.
fn poisoned<T>(_: T) -> caas_core::Error {
    caas_core::Error::internal("memory store lock poisoned by an earlier panic")
}

#[cfg(test)]
mod contract {
    //! Every memory backend runs its port's contract suite.
    caas_core::contract_suites!(crate::memory::backends();
        tenants, users, conversations, messages, receipts, events, keys, audit,
        credentials, search, bus, blobs, media, usage, flags, webhooks, presence, rate_limits, revocations);
}
