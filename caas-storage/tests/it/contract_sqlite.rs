//! Every port `SqliteStore` implements runs its contract suite, each case on a fresh
//! database file.

use caas_core::ports::Backends;
use caas_storage::sqlite::SqliteStore;

fn fresh() -> Backends {
    SqliteStore::open_temp().unwrap().backends()
}

caas_core::contract_suites!(fresh();
    tenants, users, conversations, messages, receipts, events, keys, audit, credentials,
    search, revocations, media, usage, flags, webhooks);
