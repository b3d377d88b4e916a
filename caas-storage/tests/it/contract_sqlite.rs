//! Every port `SqliteStore` implements runs its contract suite, each case on a fresh
//! database file.

use caas_storage::sqlite::SqliteStore;

fn fresh() -> SqliteStore {
    SqliteStore::open_temp().unwrap()
}

mod tenants {
    use super::*;
    caas_core::tenant_store_contract!(fresh());
}
mod users {
    use super::*;
    caas_core::user_store_contract!(fresh());
}
mod conversations {
    use super::*;
    caas_core::conversation_store_contract!(fresh());
}
mod messages {
    use super::*;
    caas_core::message_store_contract!(fresh());
}
mod receipts {
    use super::*;
    caas_core::receipt_store_contract!(fresh());
}
mod events {
    use super::*;
    caas_core::event_log_contract!(fresh());
}
mod keys {
    use super::*;
    caas_core::key_directory_contract!(fresh());
}
mod audit {
    use super::*;
    caas_core::audit_store_contract!(fresh());
}
mod credentials {
    use super::*;
    caas_core::credential_store_contract!(fresh());
}
mod search {
    use super::*;
    caas_core::search_index_contract!(fresh());
}
mod journal {
    use super::*;
    caas_core::message_journal_contract!(fresh());
}
