use std::sync::{Arc, RwLock};

use async_trait::async_trait;
use caas_core::ids::{BlobId, TenantId};
use caas_core::model::BlobMeta;
use caas_core::ports::{BlobCapabilities, BlobStore, UrlMethod};
use caas_core::time::Timestamp;
use caas_core::{Error, Result};

use crate::sha256_hex;

use super::{Map, poisoned};

/// A blob's metadata and bytes.
type Stored = (BlobMeta, Arc<Vec<u8>>);

/// Blobs in memory, up to `max_size` bytes each. It cannot mint URLs (nothing serves
/// them) and keeps nothing across restarts.
#[derive(Debug)]
pub struct MemoryBlobStore {
    blobs: RwLock<Map<(TenantId, BlobId), Stored>>,
    max_size: usize,
}

impl MemoryBlobStore {
    /// A store accepting blobs up to `max_size` bytes.
    pub fn new(max_size: usize) -> Self {
        Self {
            blobs: RwLock::default(),
            max_size,
        }
    }
}

impl Default for MemoryBlobStore {
    /// Blobs up to 16 MiB.
    fn default() -> Self {
        Self::new(16 * 1024 * 1024)
    }
}

#[async_trait]
impl BlobStore for MemoryBlobStore {
    fn capabilities(&self) -> BlobCapabilities {
        BlobCapabilities {
            presigned_urls: false,
            durable: false,
        }
    }

    async fn put(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        bytes: Vec<u8>,
        at: Timestamp,
    ) -> Result<BlobMeta> {
        if bytes.len() > self.max_size {
            return Err(Error::PayloadTooLarge {
                field: "blob".into(),
                size: bytes.len(),
                limit: self.max_size,
            });
        }
        let meta = BlobMeta {
            tenant: tenant.clone(),
            id: id.clone(),
            size: bytes.len() as u64,
            content_type: content_type.to_owned(),
            sha256: sha256_hex(&bytes),
            created_at: at,
        };
        let mut map = self.blobs.write().map_err(poisoned)?;
        map.insert(
            (tenant.clone(), id.clone()),
            (meta.clone(), Arc::new(bytes)),
        );
        Ok(meta)
    }

    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<(BlobMeta, Vec<u8>)>> {
        let map = self.blobs.read().map_err(poisoned)?;
        Ok(map
            .get(&(tenant.clone(), id.clone()))
            .map(|(m, b)| (m.clone(), b.as_ref().clone())))
    }

    async fn head(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<BlobMeta>> {
        let map = self.blobs.read().map_err(poisoned)?;
        Ok(map
            .get(&(tenant.clone(), id.clone()))
            .map(|(m, _)| m.clone()))
    }

    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool> {
        let mut map = self.blobs.write().map_err(poisoned)?;
        Ok(map.remove(&(tenant.clone(), id.clone())).is_some())
    }

    async fn presign(
        &self,
        _: &TenantId,
        _: &BlobId,
        _: UrlMethod,
        _: Timestamp,
    ) -> Result<String> {
        Err(Error::Unavailable {
            backend: "memory",
            context: "the memory blob store cannot mint URLs; use the fs or s3 store".into(),
            temporary: false,
            source: None,
        })
    }
}
