use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{ConversationId, MessageId, TenantId};
use crate::model::{Flag, FlagResolution};

/// Messages members reported, for moderators to review.
#[async_trait]
pub trait FlagStore: Send + Sync + std::fmt::Debug {
    /// Records a flag, open. One per reporter and message: a repeat keeps the
    /// first (its reason and time) and returns `false`.
    async fn flag(&self, flag: &Flag) -> Result<bool>;

    /// The conversation's open flags, oldest first (then by message id and
    /// reporter), at most `limit`.
    async fn open_flags(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        limit: usize,
    ) -> Result<Vec<Flag>>;

    /// Settles every open flag of a message with `resolution`; returns how
    /// many it settled (0 when none was open).
    async fn resolve(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
        resolution: &FlagResolution,
    ) -> Result<u64>;
}
