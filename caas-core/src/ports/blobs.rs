use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{BlobId, TenantId};
use crate::model::BlobMeta;
use crate::time::Timestamp;

/// What a blob store can do beyond the basics.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct BlobCapabilities {
    /// It can mint URLs for direct upload/download ([`BlobStore::presign`]).
    pub presigned_urls: bool,
    /// Data survives a process restart.
    pub durable: bool,
}

/// The direction of a presigned URL.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UrlMethod {
    /// Download.
    Get,
    /// Upload.
    Put,
}

/// Where media bytes live.
#[async_trait]
pub trait BlobStore: Send + Sync + std::fmt::Debug {
    /// What this backend supports.
    fn capabilities(&self) -> BlobCapabilities;

    /// Stores the bytes under `id` atomically (a reader sees all or nothing),
    /// replacing any earlier content, and returns the metadata with the checksum.
    /// [`crate::Error::PayloadTooLarge`] over the store's size limit.
    async fn put(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        bytes: Vec<u8>,
        at: Timestamp,
    ) -> Result<BlobMeta>;

    /// The metadata and bytes, or `None`. Content that no longer matches its
    /// checksum is an [`crate::Error::Internal`], never returned.
    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<(BlobMeta, Vec<u8>)>>;

    /// The metadata, or `None`.
    async fn head(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<BlobMeta>>;

    /// Removes the blob; returns whether it existed.
    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool>;

    /// A URL that lets its holder GET or PUT this blob until `expires_at`, for
    /// backends with [`BlobCapabilities::presigned_urls`]; others answer
    /// [`crate::Error::Unavailable`] (not temporary).
    async fn presign(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        method: UrlMethod,
        expires_at: Timestamp,
    ) -> Result<String>;
}
