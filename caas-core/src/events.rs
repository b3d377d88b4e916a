//! Domain events: what happened, to whom it may be shown, and which request caused
//! it. The service publishes every event on the [`crate::ports::EventBus`]; durable
//! ones are also appended to the tenant's [`crate::ports::EventLog`] so clients can
//! catch up with `sync`. Typing, presence and call signals are ephemeral: published,
//! never logged or stored as messages.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::ids::{
    ConversationId, CorrelationId, Cursor, DeviceId, MessageId, Seq, TenantId, UserId,
};
use crate::model::{
    Conversation, Member, Message, PresenceStatus, ReceiptKind, TenantStatus, User,
};
use crate::time::Timestamp;

/// One domain event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Event {
    /// The tenant it happened in.
    pub tenant: TenantId,
    /// The request that caused it.
    pub correlation_id: CorrelationId,
    /// When.
    pub at: Timestamp,
    /// The users who may see it (the conversation's active members at the time, or
    /// the user themself). Transports deliver to exactly these users.
    #[cfg_attr(feature = "openapi", schema(value_type = Vec<String>))]
    pub audience: Arc<[UserId]>,
    /// What happened.
    pub payload: EventPayload,
}

/// What a message store needs to log the `message.created` event of a new
/// message in the same write as the message ([`crate::ports::MessageStore::append`]):
/// who may see it and which request caused it. The event itself needs the seq
/// the store assigns, so the store builds it with [`Announce::message_created`]
/// once the message has one; every backend logs the same event, built here.
#[derive(Debug, Clone, PartialEq)]
pub struct Announce {
    /// The users who may see the message (the conversation's active members).
    pub audience: Arc<[UserId]>,
    /// The request that sent it.
    pub correlation_id: CorrelationId,
}

impl Announce {
    /// The `message.created` event of `message`, as stored (with its seq), at the
    /// message's `created_at`.
    pub fn message_created(self, message: &Message) -> Event {
        Event {
            tenant: message.tenant.clone(),
            correlation_id: self.correlation_id,
            at: message.created_at,
            audience: self.audience,
            payload: EventPayload::MessageCreated {
                message: message.clone(),
            },
        }
    }
}

/// What happened. The `kind` tag is the name clients see (`message.created`, …).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(tag = "kind")]
#[non_exhaustive]
pub enum EventPayload {
    /// A message was stored.
    #[serde(rename = "message.created")]
    MessageCreated {
        /// The stored message.
        message: Message,
    },
    /// A message was edited.
    #[serde(rename = "message.edited")]
    MessageEdited {
        /// The message after the edit.
        message: Message,
    },
    /// A message was deleted (tombstoned).
    #[serde(rename = "message.deleted")]
    MessageDeleted {
        /// Its conversation.
        conversation_id: ConversationId,
        /// The message.
        message_id: MessageId,
        /// Its seq.
        seq: Seq,
        /// Who deleted it.
        deleted_by: UserId,
    },
    /// A message was pinned or unpinned.
    #[serde(rename = "message.pinned")]
    MessagePinned {
        /// Its conversation.
        conversation_id: ConversationId,
        /// The message.
        message_id: MessageId,
        /// Its seq.
        seq: Seq,
        /// Who changed the pin.
        by: UserId,
        /// Pinned (true) or unpinned.
        pinned: bool,
    },
    /// A reaction was added.
    #[serde(rename = "reaction.added")]
    ReactionAdded {
        /// Its conversation.
        conversation_id: ConversationId,
        /// The message.
        message_id: MessageId,
        /// Its seq.
        seq: Seq,
        /// Who reacted.
        user_id: UserId,
        /// The emoji.
        emoji: String,
    },
    /// A reaction was removed.
    #[serde(rename = "reaction.removed")]
    ReactionRemoved {
        /// Its conversation.
        conversation_id: ConversationId,
        /// The message.
        message_id: MessageId,
        /// Its seq.
        seq: Seq,
        /// Who unreacted.
        user_id: UserId,
        /// The emoji.
        emoji: String,
    },
    /// A member's watermark moved.
    #[serde(rename = "receipt.updated")]
    ReceiptUpdated {
        /// The conversation.
        conversation_id: ConversationId,
        /// The member.
        user_id: UserId,
        /// Delivered or read.
        receipt: ReceiptKind,
        /// The new watermark.
        seq: Seq,
    },
    /// A conversation was created.
    #[serde(rename = "conversation.created")]
    ConversationCreated {
        /// It.
        conversation: Conversation,
    },
    /// A conversation's name or attributes changed.
    #[serde(rename = "conversation.updated")]
    ConversationUpdated {
        /// It, after the change.
        conversation: Conversation,
    },
    /// A user joined or was added.
    #[serde(rename = "member.joined")]
    MemberJoined {
        /// The conversation.
        conversation_id: ConversationId,
        /// The new member.
        member: Member,
    },
    /// A member left, was removed or was banned.
    #[serde(rename = "member.left")]
    MemberLeft {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who left.
        user_id: UserId,
        /// Who removed them (themself when leaving).
        by: UserId,
    },
    /// A member's role, mute or ban changed.
    #[serde(rename = "member.updated")]
    MemberUpdated {
        /// The conversation.
        conversation_id: ConversationId,
        /// The member after the change.
        member: Member,
    },
    /// Someone is typing (ephemeral).
    #[serde(rename = "typing")]
    Typing {
        /// The conversation.
        conversation_id: ConversationId,
        /// Who.
        user_id: UserId,
        /// Started (true) or stopped.
        typing: bool,
    },
    /// A user's aggregated presence changed (ephemeral).
    #[serde(rename = "presence")]
    Presence {
        /// Who.
        user_id: UserId,
        /// The new status.
        status: PresenceStatus,
        /// Last activity.
        last_seen: Option<Timestamp>,
    },
    /// A WebRTC signal relayed to members (ephemeral).
    #[serde(rename = "call.signal")]
    CallSignal {
        /// The conversation.
        conversation_id: ConversationId,
        /// The sender.
        from: UserId,
        /// The sender's device.
        from_device: Option<DeviceId>,
        /// One recipient, or every other member when absent.
        to: Option<UserId>,
        /// The opaque offer/answer/ICE payload.
        signal: serde_json::Value,
    },
    /// A user's profile changed.
    #[serde(rename = "user.updated")]
    UserUpdated {
        /// The user after the change.
        user: User,
    },
    /// A tenant was created, changed, suspended or resumed.
    #[serde(rename = "tenant.updated")]
    TenantUpdated {
        /// The tenant.
        tenant_id: TenantId,
        /// Its status.
        status: TenantStatus,
    },
}

impl Event {
    /// Removes the content of the message this event carries, when it is one
    /// of `messages` (`message.created`, `message.edited`): body, ciphertext,
    /// attachments, edit history and mentions go; ids, seq, sender and times
    /// stay. Returns whether anything changed. What erasure does to the log.
    pub fn scrub_messages(&mut self, messages: &std::collections::HashSet<MessageId>) -> bool {
        let (EventPayload::MessageCreated { message } | EventPayload::MessageEdited { message }) =
            &mut self.payload
        else {
            return false;
        };
        if !messages.contains(&message.id) {
            return false;
        }
        let had = message.body.is_some()
            || message.ciphertext.is_some()
            || !message.attachments.is_empty()
            || !message.edits.is_empty()
            || !message.mentions.is_empty();
        message.body = None;
        message.ciphertext = None;
        message.attachments.clear();
        message.edits.clear();
        message.mentions.clear();
        had
    }
}

impl EventPayload {
    /// The name clients see, e.g. `message.created`.
    pub fn kind(&self) -> &'static str {
        match self {
            EventPayload::MessageCreated { .. } => "message.created",
            EventPayload::MessageEdited { .. } => "message.edited",
            EventPayload::MessageDeleted { .. } => "message.deleted",
            EventPayload::MessagePinned { .. } => "message.pinned",
            EventPayload::ReactionAdded { .. } => "reaction.added",
            EventPayload::ReactionRemoved { .. } => "reaction.removed",
            EventPayload::ReceiptUpdated { .. } => "receipt.updated",
            EventPayload::ConversationCreated { .. } => "conversation.created",
            EventPayload::ConversationUpdated { .. } => "conversation.updated",
            EventPayload::MemberJoined { .. } => "member.joined",
            EventPayload::MemberLeft { .. } => "member.left",
            EventPayload::MemberUpdated { .. } => "member.updated",
            EventPayload::Typing { .. } => "typing",
            EventPayload::Presence { .. } => "presence",
            EventPayload::CallSignal { .. } => "call.signal",
            EventPayload::UserUpdated { .. } => "user.updated",
            EventPayload::TenantUpdated { .. } => "tenant.updated",
        }
    }

    /// Ephemeral events are published but never logged for sync.
    pub fn is_ephemeral(&self) -> bool {
        matches!(
            self,
            EventPayload::Typing { .. }
                | EventPayload::Presence { .. }
                | EventPayload::CallSignal { .. }
        )
    }

    /// The conversation the event belongs to, if any.
    pub fn conversation_id(&self) -> Option<&ConversationId> {
        match self {
            EventPayload::MessageCreated { message } | EventPayload::MessageEdited { message } => {
                Some(&message.conversation)
            }
            EventPayload::ConversationCreated { conversation }
            | EventPayload::ConversationUpdated { conversation } => Some(&conversation.id),
            EventPayload::MessageDeleted {
                conversation_id, ..
            }
            | EventPayload::MessagePinned {
                conversation_id, ..
            }
            | EventPayload::ReactionAdded {
                conversation_id, ..
            }
            | EventPayload::ReactionRemoved {
                conversation_id, ..
            }
            | EventPayload::ReceiptUpdated {
                conversation_id, ..
            }
            | EventPayload::MemberJoined {
                conversation_id, ..
            }
            | EventPayload::MemberLeft {
                conversation_id, ..
            }
            | EventPayload::MemberUpdated {
                conversation_id, ..
            }
            | EventPayload::Typing {
                conversation_id, ..
            }
            | EventPayload::CallSignal {
                conversation_id, ..
            } => Some(conversation_id),
            EventPayload::Presence { .. }
            | EventPayload::UserUpdated { .. }
            | EventPayload::TenantUpdated { .. } => None,
        }
    }
}

/// An event as stored in a tenant's log, with its position.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LoggedEvent {
    /// Its position: strictly increasing within the tenant.
    pub cursor: Cursor,
    /// The event.
    pub event: Arc<Event>,
}
