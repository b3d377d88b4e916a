use std::sync::Arc;

use async_trait::async_trait;

use crate::error::Result;
use crate::events::Event;
use crate::ids::{CorrelationId, Cursor, UserId};
use crate::model::{Message, NewMessage};

/// The outcome of [`MessageJournal::append_announced`].
#[derive(Debug, Clone, PartialEq)]
pub enum Journaled {
    /// A retry: the message first stored under this client_msg_id, unchanged;
    /// nothing was logged.
    Existing(Message),
    /// Stored with a fresh seq, and its `message.created` event logged.
    Created {
        /// The stored message.
        message: Message,
        /// Its `message.created` event, as logged (to publish on the bus).
        event: Arc<Event>,
        /// Where the event sits in the tenant's log.
        cursor: Cursor,
    },
}

/// A store that holds both the messages and the event log can append a message
/// and log its `message.created` event in one atomic write: one commit (one
/// fsync) per send instead of two, and no crash between the two that would leave
/// a stored message missing from `sync`.
///
/// Optional: [`Backends::journal`](super::Backends::journal). When it is set it
/// must be the same store as [`Backends::messages`](super::Backends::messages)
/// and [`Backends::events`](super::Backends::events); the service then sends
/// through it, and through those two ports otherwise.
#[async_trait]
pub trait MessageJournal: Send + Sync + std::fmt::Debug {
    /// [`MessageStore::append`](super::MessageStore::append), and when the
    /// message is created (not a retry), [`EventLog::append`](super::EventLog::append)
    /// of its `message.created` event (for `audience`, with `correlation_id`, at
    /// the message's `created_at`) in the same atomic write. Both are durable
    /// when this returns, or neither is stored.
    async fn append_announced(
        &self,
        message: NewMessage,
        audience: Arc<[UserId]>,
        correlation_id: CorrelationId,
    ) -> Result<Journaled>;
}
