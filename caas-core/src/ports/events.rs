use async_trait::async_trait;

use crate::error::Result;
use crate::events::{Event, LoggedEvent};
use crate::ids::{Cursor, MessageId, TenantId, UserId};

/// The per-tenant log of durable events, read per user by `sync`.
#[async_trait]
pub trait EventLog: Send + Sync + std::fmt::Debug {
    /// Appends a durable event and returns its cursor: strictly greater than every
    /// earlier cursor of the tenant (the first is 1). Ephemeral events are refused
    /// with [`crate::Error::InvalidArgument`].
    async fn append(&self, event: std::sync::Arc<Event>) -> Result<Cursor>;

    /// Up to `limit` events of the tenant whose audience includes `user`, with
    /// cursors above `after`, in ascending cursor order.
    async fn read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>>;

    /// Up to `limit` events of the tenant, whatever their audience, with
    /// cursors above `after`, in ascending cursor order: for consumers of the
    /// whole log (webhook delivery).
    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>>;

    /// The cursor of the tenant's newest event (0 when empty).
    async fn head(&self, tenant: &TenantId) -> Result<Cursor>;

    /// Removes the content of `messages` from the tenant's logged events: each
    /// event gets [`Event::scrub_messages`] and keeps its cursor and audience.
    /// For erasure, which is rare: it may read the tenant's whole log. Returns
    /// how many events changed.
    async fn scrub_messages(
        &self,
        tenant: &TenantId,
        messages: &std::collections::HashSet<MessageId>,
    ) -> Result<u64>;
}
