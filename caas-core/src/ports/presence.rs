use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{DeviceId, TenantId, UserId};
use crate::model::{Presence, PresenceStatus};
use crate::time::Timestamp;

/// A user's aggregated presence before and after a change.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresenceChange {
    /// The aggregated status before.
    pub before: PresenceStatus,
    /// The aggregate after.
    pub after: Presence,
}

impl PresenceChange {
    /// Whether the aggregated status changed (worth telling others).
    pub fn changed(&self) -> bool {
        self.before != self.after.status
    }
}

/// Presence per device with expiry; read aggregated per user.
#[async_trait]
pub trait PresenceStore: Send + Sync + std::fmt::Debug {
    /// Sets a device's status until `now + ttl` (a heartbeat renews it). The user's
    /// status is the best of their unexpired devices; `last_seen` is the latest
    /// report of any device.
    async fn set(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        status: PresenceStatus,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<PresenceChange>;

    /// Marks a device offline now.
    async fn clear(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<PresenceChange>;

    /// The aggregated presence of each of `users` at `now`, in the same order
    /// (offline with no `last_seen` for users never seen).
    async fn get(
        &self,
        tenant: &TenantId,
        users: &[UserId],
        now: Timestamp,
    ) -> Result<Vec<Presence>>;
}
