use async_trait::async_trait;

use std::sync::Arc;

use crate::error::Result;
use crate::events::{Announce, Event};
use crate::ids::{ConversationId, Cursor, MessageId, Seq, TenantId, UserId};
use crate::model::{Message, NewMessage};
use crate::time::Timestamp;

/// The outcome of [`MessageStore::append`].
#[derive(Debug, Clone, PartialEq)]
pub enum Appended {
    /// Stored now with a fresh seq, and its `message.created` event logged.
    Created {
        /// The stored message.
        message: Message,
        /// Its `message.created` event, as logged (to publish on the bus).
        event: Arc<Event>,
        /// Where the event sits in the tenant's log.
        cursor: Cursor,
    },
    /// A retry: the message first stored under this client_msg_id, unchanged;
    /// nothing was logged.
    Existing(Message),
}

impl Appended {
    /// The message either way.
    pub fn message(&self) -> &Message {
        match self {
            Appended::Created { message, .. } | Appended::Existing(message) => message,
        }
    }
}

/// A message after a change that may have been a no-op.
#[derive(Debug, Clone, PartialEq)]
pub struct Changed<T> {
    /// The value after the call.
    pub value: T,
    /// Whether the call changed it.
    pub changed: bool,
}

/// Which slice of history to read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HistoryPage {
    /// The newest messages.
    Latest,
    /// The newest messages with seq below this one.
    Before(Seq),
    /// The oldest messages with seq above this one.
    After(Seq),
}

/// The newest position of a conversation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ConversationHead {
    /// The seq of the newest message (0 when empty).
    pub last_seq: Seq,
    /// When the newest message was sent.
    pub last_activity: Option<Timestamp>,
}

/// Where messages live.
#[async_trait]
pub trait MessageStore: Send + Sync + std::fmt::Debug {
    /// Stores a message, assigning the next seq of its conversation (1 for the first;
    /// gap-free and strictly increasing), atomically with the idempotency check:
    /// if `(tenant, conversation, sender, client_msg_id)` was stored before, the
    /// original is returned as [`Appended::Existing`] and nothing changes. Concurrent
    /// appends never share a seq and never store a duplicate.
    ///
    /// A created message's `message.created` event
    /// ([`Announce::message_created`]) is appended to the tenant's
    /// [`EventLog`](super::EventLog) in the same atomic write: both are durable
    /// (as far as the backend promises durability) when this returns, or neither
    /// is stored. So the store that holds messages holds the event log too, and
    /// within a conversation the log's order is the seq order.
    async fn append(&self, message: NewMessage, announce: Announce) -> Result<Appended>;

    /// The message, or `None`.
    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>>;

    /// Replaces the body, keeping the previous one in the edit history.
    /// [`crate::Error::NotFound`] if absent; [`crate::Error::Conflict`] if deleted
    /// or if it has no plain body (encrypted messages are replaced, not edited).
    async fn edit(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message>;

    /// Tombstones the message (content removed, seq kept). Deleting a deleted
    /// message changes nothing. [`crate::Error::NotFound`] if absent.
    async fn delete(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Changed<Message>>;

    /// Adds (or removes) `user`'s `emoji` reaction; a repeat is a no-op.
    /// [`crate::Error::Conflict`] on a deleted message.
    async fn react(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        user: &UserId,
        emoji: &str,
        add: bool,
    ) -> Result<Changed<Message>>;

    /// Pins (`Some(by, at)`) or unpins (`None`); a repeat is a no-op.
    /// [`crate::Error::Conflict`] on a deleted message.
    async fn pin(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        pin: Option<(&UserId, Timestamp)>,
    ) -> Result<Changed<Message>>;

    /// Up to `limit` messages of the page, in ascending seq order.
    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        page: HistoryPage,
        limit: usize,
    ) -> Result<Vec<Message>>;

    /// The pinned messages, in ascending seq order.
    async fn pinned(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Message>>;

    /// The heads of `conversations`, in the same order (zero for unknown ones).
    async fn heads(
        &self,
        tenant: &TenantId,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationHead>>;

    /// How many messages with seq above `after` were sent by someone other than
    /// `user` (tombstones included: they still hold their seq).
    async fn count_from_others(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        after: Seq,
    ) -> Result<u64>;
}
