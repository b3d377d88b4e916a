use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use crate::model::{Conversation, Message, User};

/// One message found by a search.
#[derive(Debug, Clone, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MessageHit {
    /// The conversation.
    pub conversation: ConversationId,
    /// The message.
    pub message_id: MessageId,
    /// Its seq.
    pub seq: Seq,
}

/// Full-text search. A query is words; a document matches when every word of the
/// query is a prefix of one of its words, case-insensitively (ASCII and Unicode
/// lowercase). Indexing the same id again replaces the earlier entry.
#[async_trait]
pub trait SearchIndex: Send + Sync + std::fmt::Debug {
    /// Indexes (or re-indexes) a message's plain body. Deleted and encrypted
    /// messages are removed from the index instead.
    async fn index_message(&self, message: &Message) -> Result<()>;

    /// Removes a message.
    async fn remove_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<()>;

    /// Indexes a conversation's name.
    async fn index_conversation(&self, conversation: &Conversation) -> Result<()>;

    /// Indexes a user's name.
    async fn index_user(&self, user: &User) -> Result<()>;

    /// Up to `limit` matching messages, only from `within`, in the order highest
    /// seq first, then conversation id; with `after` (the seq and conversation of
    /// the last hit of a page), only those that come after it in this order (the
    /// next page). The filter is applied inside the
    /// search, so a message outside `within` is never returned.
    async fn search_messages(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<(Seq, &ConversationId)>,
        limit: usize,
    ) -> Result<Vec<MessageHit>>;

    /// Up to `limit` conversations from `within` whose name matches, by id; with
    /// `after`, only ids above it.
    async fn search_conversations(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<ConversationId>>;

    /// Up to `limit` users of the tenant whose name or id matches, by id; with
    /// `after`, only ids above it.
    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>>;
}

/// Splits text into lowercase words, the way every backend must for matching.
pub fn tokenize(text: &str) -> impl Iterator<Item = String> + '_ {
    text.split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
}
