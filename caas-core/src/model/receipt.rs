use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, Seq, UserId};
use crate::time::Timestamp;

/// Which watermark a receipt moves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(rename_all = "snake_case")]
pub enum ReceiptKind {
    /// Reached one of the member's devices.
    Delivered,
    /// Seen by the member. Reading also counts as delivery.
    Read,
}

/// A member's watermarks in a conversation. Both only move forward, and `read`
/// never exceeds `delivered`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Receipt {
    /// The conversation.
    pub conversation: ConversationId,
    /// The member.
    pub user: UserId,
    /// Every message up to this seq reached the member.
    pub delivered: Seq,
    /// Every message up to this seq was read.
    pub read: Seq,
    /// When either last moved.
    pub updated_at: Timestamp,
}
