use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::ratelimit::Quota;
use crate::time::Timestamp;

/// A host application's isolated space.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tenant {
    /// Its id.
    pub id: TenantId,
    /// Display name.
    pub name: String,
    /// Active or suspended.
    pub status: TenantStatus,
    /// Limits, policies and switches.
    pub settings: TenantSettings,
    /// Hashes of the tenant server's secrets (never the secrets themselves).
    #[serde(default)]
    pub credentials: Vec<TenantCredential>,
    /// When it was created.
    pub created_at: Timestamp,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// Whether a tenant may operate.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum TenantStatus {
    /// Normal operation.
    Active,
    /// Every operation inside the tenant is refused (rule `tenant-suspended`).
    Suspended,
}

/// The hash of one tenant secret. Hashing and checking are the transport's job (with
/// caas-crypto); the core only stores them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantCredential {
    /// A short public id of the secret, to tell rotations apart.
    pub key_id: String,
    /// The stored hash.
    pub hash: String,
    /// When it was created.
    pub created_at: Timestamp,
    /// After this the secret no longer works (set on rotation: the grace period).
    pub expires_at: Option<Timestamp>,
}

/// A policy document in the format it was written in, kept as text so load errors
/// can name the line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "format", content = "text", rename_all = "snake_case")]
pub enum PolicySource {
    /// JSON text.
    Json(String),
    /// TOML text.
    Toml(String),
}

/// Per-tenant configuration. Every field has a platform default.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct TenantSettings {
    /// Rate-limit overrides by action name (`message.send`, `media.upload`, …).
    pub limits: BTreeMap<String, Quota>,
    /// The tenant's policy document; `None` means the platform's default set.
    pub policy: Option<PolicySource>,
    /// Largest message body or ciphertext in bytes (default 16 KiB).
    pub max_message_bytes: Option<usize>,
    /// Largest conversation (default 10 000 members).
    pub max_members: Option<usize>,
    /// Whether end users may register and log in with passwords.
    pub password_auth: bool,
    /// Words refused in message text: a send or an edit whose body holds one
    /// of them as a word (matched as search matches words: case-insensitively,
    /// whole words) answers `invalid_argument` and stores nothing. At most
    /// [`MAX_BLOCKLIST`] words of up to [`MAX_BLOCKED_WORD_BYTES`] bytes, each
    /// a single word.
    pub blocklist: Vec<String>,
    /// What members may upload.
    pub media: MediaSettings,
    /// The tenant's plan quotas.
    pub quotas: UsageQuotas,
    /// What the payment provider last said about the tenant.
    pub billing: BillingState,
    /// How long messages are kept, per conversation kind.
    pub retention: RetentionPolicy,
}

/// How many days messages are kept, per conversation kind; unset keeps them
/// for ever. A scheduled job tombstones older ones (their seq stays) and takes
/// their text out of the event log and search. 1 to 36 500 days.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct RetentionPolicy {
    /// Direct conversations.
    pub direct_days: Option<u32>,
    /// Groups.
    pub group_days: Option<u32>,
    /// Channels.
    pub channel_days: Option<u32>,
}

impl RetentionPolicy {
    /// The days kept in a conversation of `kind`, if limited.
    pub fn days(&self, kind: super::ConversationKind) -> Option<u32> {
        match kind {
            super::ConversationKind::Direct => self.direct_days,
            super::ConversationKind::Group => self.group_days,
            super::ConversationKind::Channel => self.channel_days,
        }
    }

    /// Whether any kind is limited.
    pub fn is_set(&self) -> bool {
        self.direct_days.is_some() || self.group_days.is_some() || self.channel_days.is_some()
    }
}

/// The longest retention a policy may name, in days (100 years).
pub const MAX_RETENTION_DAYS: u32 = 36_500;

/// The tenant's standing with the payment provider, kept by its webhooks.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct BillingState {
    /// The plan subscribed to (a name of the platform's plan catalog).
    pub plan: Option<String>,
    /// Whether the tenant is suspended because a payment failed (a paid
    /// invoice lifts that suspension, and only that one).
    pub payment_failed: bool,
}

/// Plan quotas: past one, the operations that would add to it answer
/// `quota_exceeded` until the next month (or a higher quota). Unset is
/// unlimited.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct UsageQuotas {
    /// Messages sent per calendar month (UTC).
    pub messages_per_month: Option<u64>,
    /// Bytes of completed uploads kept at once.
    pub media_bytes: Option<u64>,
}

/// A tenant's upload limits.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(default, deny_unknown_fields)]
pub struct MediaSettings {
    /// Largest upload in bytes; at most the platform's limit (16 MiB unless the
    /// operator changed it), which also applies when this is unset.
    pub max_bytes: Option<u64>,
    /// The content types accepted, as `type/subtype` or `type/*`; empty accepts
    /// every well-formed type. At most [`MAX_MEDIA_TYPES`] entries.
    pub content_types: Vec<String>,
}

/// The most entries of [`MediaSettings::content_types`].
pub const MAX_MEDIA_TYPES: usize = 100;

/// The most words a tenant's blocklist holds.
pub const MAX_BLOCKLIST: usize = 1_000;

/// The longest word of a blocklist, in bytes.
pub const MAX_BLOCKED_WORD_BYTES: usize = 64;
