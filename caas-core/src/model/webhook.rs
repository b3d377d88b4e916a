use std::fmt;

use serde::{Deserialize, Serialize};

use crate::ids::{Cursor, TenantId, WebhookId};
use crate::time::Timestamp;

/// A tenant's webhook endpoint: where chosen event kinds are delivered, signed,
/// and how far delivery has come in the tenant's event log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookEndpoint {
    /// The tenant.
    pub tenant: TenantId,
    /// The endpoint.
    pub id: WebhookId,
    /// Where deliveries are POSTed (`https://…`, or `http://…` where the
    /// platform allows it).
    pub url: String,
    /// The event kinds delivered (`message.created`, …, `push.requested`), or
    /// `*` for all.
    pub kinds: Vec<String>,
    /// The signing secrets, newest first: every delivery is signed with each
    /// one that has not expired, so a receiver may switch after a rotation.
    pub secrets: Vec<WebhookSecret>,
    /// A disabled endpoint receives nothing and keeps its place in the log.
    pub disabled: bool,
    /// When it was created.
    pub created_at: Timestamp,
    /// When its configuration last changed.
    pub updated_at: Timestamp,
    /// How far delivery has come.
    pub progress: WebhookProgress,
}

impl WebhookEndpoint {
    /// Whether deliveries of `kind` go to this endpoint.
    pub fn wants(&self, kind: &str) -> bool {
        self.kinds.iter().any(|k| k == "*" || k == kind)
    }

    /// The endpoint with its progress left out: what stores keep as its
    /// configuration, beside the progress they keep on its own (so each has
    /// one place).
    pub fn configuration(&self) -> WebhookEndpoint {
        WebhookEndpoint {
            progress: WebhookProgress::default(),
            ..self.clone()
        }
    }

    /// The secrets that still sign at `now`.
    pub fn signing_secrets(&self, now: Timestamp) -> impl Iterator<Item = &WebhookSecret> {
        self.secrets
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|at| at > now))
    }
}

/// One signing secret of an endpoint. Its `Debug` shows no secret.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WebhookSecret {
    /// The secret (`whsec_…`), shown to the tenant once, when it is made.
    pub secret: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// When it stops signing; `None` for the current secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_at: Option<Timestamp>,
}

impl fmt::Debug for WebhookSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSecret")
            .field("created_at", &self.created_at)
            .field("expires_at", &self.expires_at)
            .finish_non_exhaustive()
    }
}

/// Where an endpoint's delivery stands. Stored, so a node that takes over (or
/// restarts) continues where the last one stopped and keeps its backoff.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookProgress {
    /// Every event of the tenant's log up to this cursor was delivered or
    /// dead-lettered.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub cursor: Cursor,
    /// Failed attempts at the event after `cursor`.
    pub attempts: u32,
    /// No attempt before this time (backoff after a failure).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_at: Option<Timestamp>,
    /// Why the last attempt failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_error: Option<String>,
}

/// A delivery given up after every attempt failed, kept for replay. It names
/// the logged event rather than holding its body, so a replay sends what the
/// log holds then (an erased user's text stays erased).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeadLetter {
    /// The tenant.
    pub tenant: TenantId,
    /// The endpoint.
    pub webhook_id: WebhookId,
    /// The delivery's id, as sent in `caas-event-id` (one per endpoint).
    pub id: String,
    /// The logged event it was made from.
    #[cfg_attr(feature = "openapi", schema(value_type = u64))]
    pub cursor: Cursor,
    /// The delivery's kind.
    pub kind: String,
    /// How many attempts failed.
    pub attempts: u32,
    /// Why the last one failed.
    pub last_error: String,
    /// When it was given up.
    pub failed_at: Timestamp,
}
