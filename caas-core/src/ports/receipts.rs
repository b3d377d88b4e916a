use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{ConversationId, Seq, TenantId, UserId};
use crate::model::{Receipt, ReceiptKind};
use crate::time::Timestamp;

/// Where delivered/read watermarks live.
#[async_trait]
pub trait ReceiptStore: Send + Sync + std::fmt::Debug {
    /// Moves a watermark forward to `seq`; a lower or equal seq changes nothing.
    /// Moving `read` also moves `delivered` up to at least `seq`. Returns the receipt
    /// if anything moved, `None` if nothing did. Atomic per (conversation, user).
    async fn advance(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        kind: ReceiptKind,
        seq: Seq,
        at: Timestamp,
    ) -> Result<Option<Receipt>>;

    /// The member's receipt (zero watermarks if none was ever set).
    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Receipt>;

    /// Every receipt set in the conversation, in ascending user id order.
    async fn list(&self, tenant: &TenantId, conversation: &ConversationId) -> Result<Vec<Receipt>>;
}
