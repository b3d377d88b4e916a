use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{ConversationId, TenantId, UserId};
use crate::model::{Conversation, Member};

/// The outcome of a create that may find an existing twin.
#[derive(Debug, Clone, PartialEq)]
pub enum Created<T> {
    /// Stored now.
    New(T),
    /// Already there; nothing was stored.
    Existing(T),
}

impl<T> Created<T> {
    /// The value either way.
    pub fn into_inner(self) -> T {
        match self {
            Created::New(t) | Created::Existing(t) => t,
        }
    }

    /// Whether it was stored now.
    pub fn is_new(&self) -> bool {
        matches!(self, Created::New(_))
    }
}

/// Where conversations and their members live.
#[async_trait]
pub trait ConversationStore: Send + Sync + std::fmt::Debug {
    /// Stores a conversation with its first members, atomically (all or nothing).
    ///
    /// For a direct conversation (`direct_key` set) the key is unique per tenant: if
    /// one exists, it is returned as [`Created::Existing`] and nothing is stored,
    /// even when two creates race. A taken id is [`crate::Error::Conflict`].
    async fn create(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<Created<Conversation>>;

    /// The conversation, or `None`.
    async fn get(&self, tenant: &TenantId, id: &ConversationId) -> Result<Option<Conversation>>;

    /// Replaces a stored conversation's name and attributes.
    /// [`crate::Error::NotFound`] if it does not exist.
    async fn update(&self, conversation: &Conversation) -> Result<()>;

    /// One membership record (banned members included), or `None`.
    async fn member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>>;

    /// Every membership record (banned included), in ascending user id order.
    async fn members(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Member>>;

    /// Inserts or replaces a membership record; returns whether it was new.
    /// [`crate::Error::NotFound`] if the conversation does not exist.
    async fn put_member(&self, tenant: &TenantId, member: &Member) -> Result<bool>;

    /// Removes a membership record; returns whether there was one.
    async fn remove_member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<bool>;

    /// Every conversation `user` has a membership record in (banned included), with
    /// that record, in ascending conversation id order.
    async fn list_for_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<(Conversation, Member)>>;

    /// The tenant's conversations in ascending id order, after `after` (from the
    /// start when `None`), at most `limit`. For jobs that walk every
    /// conversation (retention); not a user-facing list.
    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>>;
}
