//! The ports: every trait the core needs from the outside world.
//!
//! Each is an async trait usable as `Arc<dyn Port>`, so a host can mix backends
//! chosen at run time ([`Backends`]). The doc comment of each method is its
//! contract (atomicity, ordering, idempotency); the `testkit` feature holds the
//! same contract as executable suites that every backend runs.
//!
//! All methods take the tenant explicitly and a backend must never return data of a
//! tenant other than the one asked for.

mod audit;
mod auth;
mod blobs;
mod bus;
mod conversations;
mod credentials;
mod events;
mod flags;
mod keys;
mod media;
mod messages;
#[cfg(feature = "metrics")]
pub mod metered;
mod presence;
mod ratelimit;
mod receipts;
mod revocations;
mod search;
mod shredding;
mod tenants;
mod usage;
mod users;
mod webhooks;

use std::sync::Arc;

pub use audit::AuditStore;
pub use auth::{AccessClaims, Authority, IssuedSecret, PasswordCheck, PasswordHasher};
pub use blobs::{BlobCapabilities, BlobStore, PresignedUpload, UrlMethod};
pub use bus::{BusMessage, EventBus, Subscription};
pub use conversations::{ConversationStore, Created};
pub use credentials::{CredentialStore, PasswordLogin, RefreshSession, SessionStatus, TotpFactor};
pub use events::EventLog;
pub use flags::FlagStore;
pub use keys::{KeyDirectory, KeyVerifier};
pub use media::MediaStore;
pub use messages::{Appended, Changed, ConversationHead, HistoryPage, MessageStore};
pub use presence::{PresenceChange, PresenceStore};
pub use ratelimit::RateLimitStore;
pub use receipts::ReceiptStore;
pub use revocations::Revocations;
pub use search::{MessageHit, SearchIndex, tokenize};
pub use shredding::{NoShredding, Shredder};
pub use tenants::TenantStore;
pub use usage::{UsageRow, UsageStore};
pub use users::UserStore;
pub use webhooks::{
    WebhookOutcome, WebhookRequest, WebhookSender, WebhookStore, is_public_address,
};

use crate::time::Clock;

/// One backend for every port: what a [`crate::service::Caas`] runs on.
#[derive(Debug, Clone)]
pub struct Backends {
    /// Tenants.
    pub tenants: Arc<dyn TenantStore>,
    /// Users.
    pub users: Arc<dyn UserStore>,
    /// Conversations and members.
    pub conversations: Arc<dyn ConversationStore>,
    /// Messages; a send stores the message and logs its event in one write, so
    /// this is the same store as `events`.
    pub messages: Arc<dyn MessageStore>,
    /// Receipt watermarks.
    pub receipts: Arc<dyn ReceiptStore>,
    /// The per-tenant event log behind `sync`.
    pub events: Arc<dyn EventLog>,
    /// Password logins and refresh sessions (password auth).
    pub credentials: Arc<dyn CredentialStore>,
    /// Revoked sessions, whose access tokens are refused before they expire.
    pub revocations: Arc<dyn Revocations>,
    /// E2EE public key material.
    pub keys: Arc<dyn KeyDirectory>,
    /// The audit log.
    pub audit: Arc<dyn AuditStore>,
    /// Fan-out of events to every node.
    pub bus: Arc<dyn EventBus>,
    /// Media bytes.
    pub blobs: Arc<dyn BlobStore>,
    /// Upload records: what each blob is, whose, and where it may be used.
    pub media: Arc<dyn MediaStore>,
    /// Usage meters per tenant.
    pub usage: Arc<dyn UsageStore>,
    /// Messages reported for review.
    pub flags: Arc<dyn FlagStore>,
    /// Webhook endpoints, their delivery progress and dead letters.
    pub webhooks: Arc<dyn WebhookStore>,
    /// Full-text search.
    pub search: Arc<dyn SearchIndex>,
    /// Destroys a user's data keys on erasure, where bodies are sealed at rest
    /// ([`NoShredding`] where they are not).
    pub shredder: Arc<dyn Shredder>,
    /// Presence with expiry.
    pub presence: Arc<dyn PresenceStore>,
    /// Rate-limit state.
    pub rate_limits: Arc<dyn RateLimitStore>,
    /// The time.
    pub clock: Arc<dyn Clock>,
}
