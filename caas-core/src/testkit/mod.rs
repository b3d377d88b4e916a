#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]
//! The contract suites of every port, as plain `pub async fn`s taking a
//! [`Backends`], and one macro, [`contract_suites!`](crate::contract_suites),
//! that opts a backend into the suite of every port it implements:
//!
//! ```ignore
//! // in a backend crate's tests: how to make a fresh set, and the ports to check
//! caas_core::contract_suites!(my_backends().await; tenants, users, messages, events);
//! ```
//!
//! The first argument is an expression (it may `.await`) that makes a fresh
//! [`Backends`] for each case; a backend of a few ports fills the others with
//! memory ones and names only its own. Each case uses its own random tenant, so
//! suites can run against one shared server. A case that needs a capability the
//! backend lacks says so by name and returns.

pub mod audit;
pub mod blobs;
pub mod bus;
pub mod conversations;
pub mod credentials;
pub mod events;
pub mod flags;
pub mod keys;
pub mod media;
pub mod messages;
pub mod presence;
pub mod ratelimit;
pub mod receipts;
pub mod revocations;
pub mod search;
pub mod tenants;
pub mod usage;
pub mod users;
pub mod webhooks;

use crate::ids::{ConversationId, TenantId, UserId};
#[cfg(doc)]
use crate::ports::Backends;
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

/// Runs the contract suite of each named port against a fresh [`Backends`] per
/// case: `contract_suites!(make; port, port, …)` with ports among `tenants`,
/// `users`, `conversations`, `messages` (with the event log it writes to),
/// `receipts`, `events`, `keys`, `audit`, `credentials`, `search`, `bus`,
/// `blobs`, `media`, `usage`, `flags`, `webhooks`, `presence`, `rate_limits`, `revocations`. Each port becomes a module of
/// `#[tokio::test]`s, one per case.
#[macro_export]
macro_rules! contract_suites {
    ($make:expr; $($port:ident),+ $(,)?) => {
        $( $crate::__contract_suite!($port, $make); )+
    };
}

/// The cases of each port's suite.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_suite {
    (tenants, $make:expr) => {
        $crate::__contract_cases!(
            tenants,
            tenants,
            $make,
            [
                create_then_get,
                create_twice_conflicts,
                update_replaces_and_never_creates,
                list_pages_by_id,
                find_by_credential,
            ]
        );
    };
    (users, $make:expr) => {
        $crate::__contract_cases!(
            users,
            users,
            $make,
            [
                upsert_creates_then_replaces,
                tenants_are_isolated,
                get_many_keeps_order,
                list_pages_by_id,
            ]
        );
    };
    (conversations, $make:expr) => {
        $crate::__contract_cases!(
            conversations,
            conversations,
            $make,
            [
                create_then_read,
                direct_is_unique_per_pair,
                members_put_and_remove,
                list_for_user,
                update_conversation,
                create_taken_id_conflicts,
                list_pages_in_id_order,
            ]
        );
    };
    (messages, $make:expr) => {
        $crate::__contract_cases!(
            messages,
            messages,
            $make,
            [
                seq_starts_at_one_and_is_gap_free,
                append_is_idempotent_per_sender,
                concurrent_appends_are_gap_free,
                history_pages,
                edit_delete_tombstone,
                reactions_and_pins,
                heads_and_counts,
                created_message_is_stored_and_logged,
                a_retry_logs_nothing,
                the_log_keeps_each_conversation_in_seq_order,
            ]
        );
    };
    (receipts, $make:expr) => {
        $crate::__contract_cases!(
            receipts,
            receipts,
            $make,
            [
                watermarks_only_move_forward,
                concurrent_advances_keep_the_max,
                list_by_user,
            ]
        );
    };
    (events, $make:expr) => {
        $crate::__contract_cases!(
            events,
            events,
            $make,
            [
                append_and_read_by_audience,
                events_round_trip,
                ephemeral_events_are_refused,
                concurrent_appends,
                scrub_removes_message_content,
                read_tenant_sees_every_audience,
            ]
        );
    };
    (keys, $make:expr) => {
        $crate::__contract_cases!(
            keys,
            keys,
            $make,
            [publish_and_claim, one_time_keys_are_handed_out_once,]
        );
    };
    (audit, $make:expr) => {
        $crate::__contract_cases!(
            audit,
            audit,
            $make,
            [append_and_list, records_form_a_hash_chain,]
        );
    };
    (credentials, $make:expr) => {
        $crate::__contract_cases!(
            credentials,
            credentials,
            $make,
            [
                logins,
                sessions_rotate_once,
                concurrent_rotations_have_one_winner,
                revoke_family,
            ]
        );
    };
    (search, $make:expr) => {
        $crate::__contract_cases!(
            search,
            search,
            $make,
            [
                messages_match_within_scope,
                reindex_and_remove,
                conversations_and_users,
                pages_continue_after_the_last_hit,
            ]
        );
    };
    (bus, $make:expr) => {
        $crate::__contract_cases!(
            bus,
            bus,
            $make,
            [
                every_subscriber_gets_every_event_in_order,
                late_subscriber_starts_now,
                publish_without_subscribers,
            ]
        );
    };
    (blobs, $make:expr) => {
        $crate::__contract_cases!(
            blobs,
            blobs,
            $make,
            [put_get_head_delete, put_replaces, presign_by_capability,]
        );
    };
    (presence, $make:expr) => {
        $crate::__contract_cases!(
            presence,
            presence,
            $make,
            [aggregates_devices_with_expiry, heartbeat_is_not_a_change,]
        );
    };
    (media, $make:expr) => {
        $crate::__contract_cases!(
            media,
            media,
            $make,
            [
                announce_then_complete,
                expired_uploads_are_listed_and_removed,
                share_and_delete,
                concurrent_shares,
                by_owner_pages,
            ]
        );
    };
    (flags, $make:expr) => {
        $crate::__contract_cases!(
            flags,
            flags,
            $make,
            [flag_list_and_resolve, concurrent_flags_all_count,]
        );
    };
    (webhooks, $make:expr) => {
        $crate::__contract_cases!(
            webhooks,
            webhooks,
            $make,
            [
                create_update_list_delete,
                due_skips_disabled_and_backing_off,
                one_holder_at_a_time,
                dead_letters_keep_and_replace,
                concurrent_claims_have_one_winner,
            ]
        );
    };
    (usage, $make:expr) => {
        $crate::__contract_cases!(
            usage,
            usage,
            $make,
            [
                counters_add_and_peaks_rise,
                active_users_count_once_a_month,
                concurrent_writers_all_count,
            ]
        );
    };
    (revocations, $make:expr) => {
        $crate::__contract_cases!(
            revocations,
            revocations,
            $make,
            [
                revoke_until_then_forget,
                the_latest_until_holds,
                concurrent_revocations,
            ]
        );
    };
    (rate_limits, $make:expr) => {
        $crate::__contract_cases!(
            rate_limits,
            ratelimit,
            $make,
            [follows_gcra, concurrent_checks_are_atomic,]
        );
    };
}

/// Expands one `#[tokio::test]` per case, in a module named for the port.
#[doc(hidden)]
#[macro_export]
macro_rules! __contract_cases {
    ($port:ident, $module:ident, $make:expr, [$($case:ident),* $(,)?]) => {
        mod $port {
            #[allow(unused_imports)]
            use super::*;
            $(
                #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $case() {
                    let backends: $crate::ports::Backends = $make;
                    $crate::testkit::$module::$case(backends).await;
                }
            )*
        }
    };
}
