use serde::{Deserialize, Serialize};

use crate::ids::{BlobId, TenantId};
use crate::time::Timestamp;

/// What a blob store knows about a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BlobMeta {
    /// The tenant.
    pub tenant: TenantId,
    /// The blob.
    pub id: BlobId,
    /// Size in bytes.
    pub size: u64,
    /// MIME type.
    pub content_type: String,
    /// Hex SHA-256 of the content, computed by the store, checked on read.
    pub sha256: String,
    /// When it was stored.
    pub created_at: Timestamp,
}
