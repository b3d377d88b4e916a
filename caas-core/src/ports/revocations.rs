use async_trait::async_trait;

use crate::error::Result;
use crate::ids::TenantId;
use crate::time::Timestamp;

/// Revoked sessions, so an access token minted for a session (its `sid`,
/// [`crate::ports::AccessClaims::session`]) is refused on every node once the
/// session is logged out or its refresh family is revoked, not only when the
/// token expires.
///
/// An entry only needs to outlive the tokens it refuses: `until` is the latest
/// time any of them is still accepted, after which the entry may be forgotten.
#[async_trait]
pub trait Revocations: Send + Sync + std::fmt::Debug {
    /// Refuses every access token of session `family` of `tenant` from `now` until
    /// `until`. Idempotent; of several revocations of one family the latest
    /// `until` holds (a revocation never shortens another). Entries whose `until`
    /// is past may be forgotten at any time.
    async fn revoke(
        &self,
        tenant: &TenantId,
        family: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<()>;

    /// Whether session `family` of `tenant` is revoked at `now` (revoked with an
    /// `until` later than `now`). Sees every [`Revocations::revoke`] that returned
    /// before it was called, on any node sharing the store.
    async fn is_revoked(&self, tenant: &TenantId, family: &str, now: Timestamp) -> Result<bool>;
}
