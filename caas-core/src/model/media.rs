use serde::{Deserialize, Serialize};

use crate::ids::{BlobId, ConversationId, TenantId, UserId};
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

/// An upload: announced by a member for a conversation, then completed once its
/// bytes arrived and matched what was announced. The bytes live in the blob
/// store under the same id; this record is what authorizes their use.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Media {
    /// The tenant.
    pub tenant: TenantId,
    /// The blob.
    pub id: BlobId,
    /// Who uploads it; only they complete or delete it.
    pub owner: UserId,
    /// The conversation it was uploaded into.
    pub conversation_id: ConversationId,
    /// The announced MIME type.
    pub content_type: String,
    /// The announced size in bytes.
    pub size: u64,
    /// The announced hex SHA-256, when the uploader gave one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// An optional file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// When it was announced.
    pub created_at: Timestamp,
    /// The upload deadline: an upload not completed by then is removed.
    pub expires_at: Timestamp,
    /// When it was completed; `None` while the upload is pending.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_at: Option<Timestamp>,
    /// Conversations it was attached to besides its own, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub shared_in: Vec<ConversationId>,
}

impl Media {
    /// Whether its bytes arrived and were checked.
    pub fn is_complete(&self) -> bool {
        self.completed_at.is_some()
    }

    /// Every conversation whose participants may download it: its own, then
    /// those it was shared in.
    pub fn conversations(&self) -> impl Iterator<Item = &ConversationId> {
        std::iter::once(&self.conversation_id).chain(self.shared_in.iter())
    }
}
