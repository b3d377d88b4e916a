#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The contract suites of every port, as plain `pub async fn`s, and one macro per
//! port that turns its suite into `#[tokio::test]`s for a backend:
//!
//! ```ignore
//! // in a backend crate's tests:
//! caas_core::message_store_contract!(MemoryMessageStore::default());
//! ```
//!
//! The macro argument is an expression (it may `.await`) that makes a fresh backend
//! value; each case wraps it in an `Arc<dyn Port>`. Each case uses its own random
//! tenant, so suites can run against one shared server. A case that needs a
//! capability the backend lacks says so by name and returns.

pub mod audit;
pub mod blobs;
pub mod bus;
pub mod conversations;
pub mod credentials;
pub mod events;
pub mod journal;
pub mod keys;
pub mod messages;
pub mod presence;
pub mod ratelimit;
pub mod receipts;
pub mod search;
pub mod tenants;
pub mod users;

use crate::ids::{ConversationId, TenantId, UserId};
use crate::time::Timestamp;

/// A fresh random tenant id, so cases never see each other's data.
pub fn tenant() -> TenantId {
    TenantId::generate(Timestamp::from_millis(1_700_000_000_000))
}

/// A user id from a name.
pub fn user(name: &str) -> UserId {
    match UserId::parse(name) {
        Ok(u) => u,
        Err(e) => panic!("bad test user id {name}: {e}"),
    }
}

/// A fresh conversation id.
pub fn conversation() -> ConversationId {
    ConversationId::generate(Timestamp::from_millis(1_700_000_000_000))
}

/// A fixed instant for test data.
pub fn t(secs: u64) -> Timestamp {
    Timestamp::from_secs(1_700_000_000 + secs)
}

/// Expands one `#[tokio::test]` per case; used by the per-port macros.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($port:path, $module:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let backend: ::std::sync::Arc<dyn $port> = ::std::sync::Arc::new($make);
                $crate::testkit::$module::$case(backend).await;
            }
        )*
    };
}
