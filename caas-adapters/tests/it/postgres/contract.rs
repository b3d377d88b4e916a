//! Every port `PostgresStore` implements runs its contract suite against the
//! real server; each case uses a fresh tenant, so they share one database.

use super::support;

caas_core::contract_suites!(
    match support::store().await {
        Some(store) => store.backends(),
        None => return,
    };
    tenants, users, conversations, messages, receipts, events, keys, audit, credentials,
    search, media, usage, flags, webhooks);
