use serde::{Deserialize, Serialize};

use crate::ids::{ConversationId, MessageId, TenantId, UserId};
use crate::time::Timestamp;

/// A member's report of a message for moderators to review.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Flag {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message reported.
    pub message_id: MessageId,
    /// Who reported it (one flag per reporter and message).
    pub reporter: UserId,
    /// Why, in the reporter's words.
    pub reason: String,
    /// When.
    pub created_at: Timestamp,
    /// How a moderator settled it; `None` while open.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resolution: Option<FlagResolution>,
}

/// How a flag was settled.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct FlagResolution {
    /// The moderator.
    pub by: UserId,
    /// When.
    pub at: Timestamp,
    /// What was done: `dismissed` or `deleted`.
    pub action: String,
}
