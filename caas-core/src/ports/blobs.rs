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

/// A direct upload: PUT the body to `url` with exactly these `headers` (a store
/// may make their values part of the signature).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PresignedUpload {
    /// The URL: absolute, or a path the gateway serves (starting with `/`).
    pub url: String,
    /// The headers the request must carry, with their values.
    pub headers: Vec<(String, String)>,
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

    /// A URL for a direct upload of exactly `size` bytes of `content_type`,
    /// valid until `expires_at`. The default is [`BlobStore::presign`] for PUT
    /// with the content type to send; stores that can bind the type and length
    /// into the signature do.
    async fn presign_upload(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        size: u64,
        expires_at: Timestamp,
    ) -> Result<PresignedUpload> {
        let _ = size;
        let url = self.presign(tenant, id, UrlMethod::Put, expires_at).await?;
        Ok(PresignedUpload {
            url,
            headers: vec![("content-type".to_owned(), content_type.to_owned())],
        })
    }

    /// Finishes a direct upload: the stored blob's metadata once it is checked to
    /// be `size` bytes of `content_type`. [`crate::Error::NotFound`] when nothing
    /// arrived, [`crate::Error::InvalidArgument`] when what arrived differs. The default
    /// reads the metadata a [`BlobStore::put`] recorded; stores whose uploads
    /// bypass `put` record it here.
    async fn complete_upload(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        size: u64,
        at: Timestamp,
    ) -> Result<BlobMeta> {
        let _ = at;
        let meta = self
            .head(tenant, id)
            .await?
            .ok_or_else(|| crate::Error::not_found(crate::EntityKind::Blob, id))?;
        if meta.size != size {
            return Err(crate::Error::invalid(
                "size",
                format!("the upload is {} bytes, not {size}", meta.size),
            ));
        }
        if meta.content_type != content_type {
            return Err(crate::Error::invalid(
                "content_type",
                format!(
                    "the upload is `{}`, not `{content_type}`",
                    meta.content_type
                ),
            ));
        }
        Ok(meta)
    }

    /// For stores whose URLs the gateway serves (paths starting with `/`):
    /// checks a request for such a URL — `path` and `query` as received, `now`
    /// the current time — and names the blob it grants `method` on.
    /// [`crate::Error::Unauthenticated`] for a wrong, expired or other-method
    /// signature. The default, for stores whose URLs point elsewhere or that mint
    /// none, is [`crate::Error::NotFound`].
    fn verify_url(
        &self,
        method: UrlMethod,
        path: &str,
        query: &str,
        now: Timestamp,
    ) -> Result<(TenantId, BlobId)> {
        let _ = (method, query, now);
        Err(crate::Error::not_found(crate::EntityKind::Blob, path))
    }
}
