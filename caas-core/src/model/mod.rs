//! The chat domain's data: what is stored and what events carry. Plain data with
//! serde; the rules about who may change it live in [`crate::policy`] and
//! [`crate::service`].

mod audit;
mod conversation;
mod flag;
mod keys;
mod media;
mod message;
mod message_document;
mod presence;
mod receipt;
mod tenant;
mod user;
mod webhook;

pub use audit::{AuditRecord, AuditVerification, ChainBreak, ChainCheck};
pub use conversation::{Conversation, ConversationKind, Member, Role};
pub use flag::{Flag, FlagResolution};
pub use keys::{DeviceKeys, KeyBundle, OneTimePrekey, SignedPrekey};
pub use media::{BlobMeta, Media};
pub use message::{
    Attachment, Ciphertext, Edit, ForwardRef, MAX_DISTINCT_REACTIONS, MAX_EDIT_HISTORY, Message,
    NewMessage, Pin, Tombstone,
};
pub use message_document::{MessageColumns, message_document, message_from_document};
pub use presence::{Presence, PresenceStatus};
pub use receipt::{Receipt, ReceiptKind};
pub use tenant::{
    BillingState, MAX_BLOCKED_WORD_BYTES, MAX_BLOCKLIST, MAX_MEDIA_TYPES, MAX_RETENTION_DAYS,
    MediaSettings, PolicySource, RetentionPolicy, Tenant, TenantCredential, TenantSettings,
    TenantStatus, UsageQuotas,
};
pub use user::User;
pub use webhook::{DeadLetter, WebhookEndpoint, WebhookProgress, WebhookSecret};

/// Free-form attributes of users and conversations, usable in policy conditions
/// (strings, integers, booleans and lists of them).
pub type Attributes = std::collections::BTreeMap<String, serde_json::Value>;
