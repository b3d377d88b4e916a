use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{BlobId, ConversationId, TenantId, UserId};
use crate::model::Media;
use crate::time::Timestamp;

/// Upload records: who announced which blob for which conversation, whether its
/// bytes arrived, and where it was shared. The bytes themselves are in the
/// [`crate::ports::BlobStore`]; a blob without a completed record here is never
/// handed out.
///
/// Every change is one atomic step on the stored record, so concurrent calls on
/// one node or many never lose each other's effect.
#[async_trait]
pub trait MediaStore: Send + Sync + std::fmt::Debug {
    /// Records an announced upload (pending: `completed_at` is `None`).
    /// [`crate::Error::Conflict`] if the tenant already has that blob id.
    async fn announce(&self, media: &Media) -> Result<()>;

    /// The record, or `None`.
    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<Media>>;

    /// Marks a pending upload complete at `at`, recording `sha256` (the checksum
    /// of the bytes that arrived), and returns the record. A completed one is
    /// returned as it is (completing twice is harmless).
    /// [`crate::Error::NotFound`] when there is no record, or when it is still
    /// pending and its deadline (`expires_at`) is at or before `at`: an expired
    /// upload can no longer be completed, only cleaned up.
    async fn complete(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        sha256: &str,
        at: Timestamp,
    ) -> Result<Media>;

    /// Adds `conversation` to the record's `shared_in`, unless it is the
    /// record's own conversation or already there. [`crate::Error::NotFound`]
    /// when there is no record.
    async fn share(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        conversation: &ConversationId,
    ) -> Result<()>;

    /// Removes the record; returns whether it existed.
    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool>;

    /// Pending uploads of any tenant whose deadline is at or before `now`,
    /// earliest deadline first, at most `limit`.
    async fn expired(&self, now: Timestamp, limit: usize) -> Result<Vec<Media>>;

    /// Removes the record only if it is still pending with its deadline at or
    /// before `now`; returns whether it did. The cleanup's delete, which can
    /// never remove an upload completed meanwhile.
    async fn remove_expired(&self, tenant: &TenantId, id: &BlobId, now: Timestamp) -> Result<bool>;

    /// The records `owner` uploaded, pending or complete, in blob id order after
    /// `after`, at most `limit`.
    async fn by_owner(
        &self,
        tenant: &TenantId,
        owner: &UserId,
        after: Option<&BlobId>,
        limit: usize,
    ) -> Result<Vec<Media>>;
}
