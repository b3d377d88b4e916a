//! Server → client events: [`Event`] and `caas.v1.Event`, with the messages,
//! conversations, members and users they carry.

use caas_core::events::{Event, EventPayload};
use caas_core::ids::{ConversationId, Cursor, MessageId, Seq, UserId};
use caas_core::model;

use super::pb::event::Payload;
use super::values::{
    attachment_from, attachment_to, attributes_from, attributes_to, ciphertext_from, ciphertext_to,
    kind_from, kind_to, presence_to, receipt_from, receipt_to, required_presence, role_from,
    role_to, tenant_status_from, tenant_status_to,
};
use super::{id, ids, opt_id, pb, strs, time, ts};
use crate::ws::frames::WireEvent;

pub(super) fn message_to(m: &model::Message) -> pb::Message {
    pb::Message {
        tenant_id: m.tenant.to_string(),
        conversation_id: m.conversation.to_string(),
        id: m.id.to_string(),
        seq: m.seq.get(),
        sender: m.sender.to_string(),
        client_msg_id: m.client_msg_id.to_string(),
        body: m.body.clone(),
        ciphertext: m.ciphertext.as_ref().map(ciphertext_to),
        attachments: m.attachments.iter().map(attachment_to).collect(),
        reply_to: m.reply_to.as_ref().map(ToString::to_string),
        forwarded_from: m.forwarded_from.as_ref().map(|f| pb::ForwardRef {
            conversation_id: f.conversation_id.to_string(),
            message_id: f.message_id.to_string(),
        }),
        mentions: strs(&m.mentions),
        reactions: m
            .reactions
            .iter()
            .map(|(emoji, users)| (emoji.clone(), pb::UserList { users: strs(users) }))
            .collect(),
        edits: m
            .edits
            .iter()
            .map(|e| pb::MessageEdit {
                body: e.body.clone(),
                replaced_at: ts(e.replaced_at),
            })
            .collect(),
        edited_at: m.edited_at.map(ts),
        deleted: m.deleted.as_ref().map(|t| pb::Tombstone {
            deleted_by: t.deleted_by.to_string(),
            deleted_at: ts(t.deleted_at),
        }),
        pinned: m.pinned.as_ref().map(|p| pb::Pin {
            pinned_by: p.pinned_by.to_string(),
            pinned_at: ts(p.pinned_at),
        }),
        created_at: ts(m.created_at),
    }
}

pub(super) fn message_from(m: pb::Message) -> Result<model::Message, String> {
    Ok(model::Message {
        tenant: id(&m.tenant_id)?,
        conversation: id(&m.conversation_id)?,
        id: id(&m.id)?,
        seq: Seq(m.seq),
        sender: id(&m.sender)?,
        client_msg_id: id(&m.client_msg_id)?,
        body: m.body,
        ciphertext: m.ciphertext.map(ciphertext_from),
        attachments: m
            .attachments
            .into_iter()
            .map(attachment_from)
            .collect::<Result<_, _>>()?,
        reply_to: opt_id(m.reply_to.as_ref())?,
        forwarded_from: m
            .forwarded_from
            .map(|f| -> Result<_, String> {
                Ok(model::ForwardRef {
                    conversation_id: id(&f.conversation_id)?,
                    message_id: id(&f.message_id)?,
                })
            })
            .transpose()?,
        mentions: ids(&m.mentions)?,
        reactions: m
            .reactions
            .into_iter()
            .map(|(emoji, users)| Ok((emoji, ids(&users.users)?)))
            .collect::<Result<_, String>>()?,
        edits: m
            .edits
            .into_iter()
            .map(|e| model::Edit {
                body: e.body,
                replaced_at: time(e.replaced_at),
            })
            .collect(),
        edited_at: m.edited_at.map(time),
        deleted: m
            .deleted
            .map(|t| -> Result<_, String> {
                Ok(model::Tombstone {
                    deleted_by: id(&t.deleted_by)?,
                    deleted_at: time(t.deleted_at),
                })
            })
            .transpose()?,
        pinned: m
            .pinned
            .map(|p| -> Result<_, String> {
                Ok(model::Pin {
                    pinned_by: id(&p.pinned_by)?,
                    pinned_at: time(p.pinned_at),
                })
            })
            .transpose()?,
        created_at: time(m.created_at),
    })
}

fn conversation_to(c: &model::Conversation) -> pb::Conversation {
    pb::Conversation {
        tenant_id: c.tenant.to_string(),
        id: c.id.to_string(),
        kind: kind_to(c.kind).into(),
        name: c.name.clone(),
        attributes_json: attributes_to(&c.attributes),
        created_by: c.created_by.as_ref().map(ToString::to_string),
        direct_key: c.direct_key.clone(),
        created_at: ts(c.created_at),
    }
}

fn conversation_from(c: pb::Conversation) -> Result<model::Conversation, String> {
    Ok(model::Conversation {
        tenant: id(&c.tenant_id)?,
        id: id(&c.id)?,
        kind: kind_from(c.kind)?,
        name: c.name,
        attributes: attributes_from(&c.attributes_json)?,
        created_by: opt_id(c.created_by.as_ref())?,
        direct_key: c.direct_key,
        created_at: time(c.created_at),
    })
}

fn member_to(conversation: &ConversationId, m: &model::Member) -> pb::MemberChanged {
    pb::MemberChanged {
        conversation_id: conversation.to_string(),
        member: Some(pb::Member {
            conversation_id: m.conversation.to_string(),
            user_id: m.user.to_string(),
            role: role_to(m.role).into(),
            muted: m.muted,
            banned: m.banned,
            joined_at: ts(m.joined_at),
        }),
    }
}

fn member_from(m: pb::MemberChanged) -> Result<(ConversationId, model::Member), String> {
    let member = m.member.ok_or("member: missing")?;
    Ok((
        id(&m.conversation_id)?,
        model::Member {
            conversation: id(&member.conversation_id)?,
            user: id(&member.user_id)?,
            role: role_from(member.role)?,
            muted: member.muted,
            banned: member.banned,
            joined_at: time(member.joined_at),
        },
    ))
}

fn reaction_changed(
    conversation_id: &ConversationId,
    message_id: &MessageId,
    seq: Seq,
    user_id: &UserId,
    emoji: &str,
) -> pb::ReactionChanged {
    pb::ReactionChanged {
        conversation_id: conversation_id.to_string(),
        message_id: message_id.to_string(),
        seq: seq.get(),
        user_id: user_id.to_string(),
        emoji: emoji.to_owned(),
    }
}

fn payload_to(p: &EventPayload) -> Payload {
    match p {
        EventPayload::MessageCreated { message } => Payload::MessageCreated(message_to(message)),
        EventPayload::MessageEdited { message } => Payload::MessageEdited(message_to(message)),
        EventPayload::MessageDeleted {
            conversation_id,
            message_id,
            seq,
            deleted_by,
        } => Payload::MessageDeleted(pb::MessageDeleted {
            conversation_id: conversation_id.to_string(),
            message_id: message_id.to_string(),
            seq: seq.get(),
            deleted_by: deleted_by.to_string(),
        }),
        EventPayload::MessagePinned {
            conversation_id,
            message_id,
            seq,
            by,
            pinned,
        } => Payload::MessagePinned(pb::MessagePinned {
            conversation_id: conversation_id.to_string(),
            message_id: message_id.to_string(),
            seq: seq.get(),
            by: by.to_string(),
            pinned: *pinned,
        }),
        EventPayload::ReactionAdded {
            conversation_id,
            message_id,
            seq,
            user_id,
            emoji,
        } => Payload::ReactionAdded(reaction_changed(
            conversation_id,
            message_id,
            *seq,
            user_id,
            emoji,
        )),
        EventPayload::ReactionRemoved {
            conversation_id,
            message_id,
            seq,
            user_id,
            emoji,
        } => Payload::ReactionRemoved(reaction_changed(
            conversation_id,
            message_id,
            *seq,
            user_id,
            emoji,
        )),
        EventPayload::ReceiptUpdated {
            conversation_id,
            user_id,
            receipt,
            seq,
        } => Payload::ReceiptUpdated(pb::ReceiptUpdated {
            conversation_id: conversation_id.to_string(),
            user_id: user_id.to_string(),
            receipt: receipt_to(*receipt).into(),
            seq: seq.get(),
        }),
        EventPayload::ConversationCreated { conversation } => {
            Payload::ConversationCreated(conversation_to(conversation))
        }
        EventPayload::ConversationUpdated { conversation } => {
            Payload::ConversationUpdated(conversation_to(conversation))
        }
        EventPayload::MemberJoined {
            conversation_id,
            member,
        } => Payload::MemberJoined(member_to(conversation_id, member)),
        EventPayload::MemberLeft {
            conversation_id,
            user_id,
            by,
        } => Payload::MemberLeft(pb::MemberLeft {
            conversation_id: conversation_id.to_string(),
            user_id: user_id.to_string(),
            by: by.to_string(),
        }),
        EventPayload::MemberUpdated {
            conversation_id,
            member,
        } => Payload::MemberUpdated(member_to(conversation_id, member)),
        EventPayload::Typing {
            conversation_id,
            user_id,
            typing,
        } => Payload::Typing(pb::TypingEvent {
            conversation_id: conversation_id.to_string(),
            user_id: user_id.to_string(),
            typing: *typing,
        }),
        EventPayload::Presence {
            user_id,
            status,
            last_seen,
        } => Payload::Presence(pb::PresenceEvent {
            user_id: user_id.to_string(),
            status: presence_to(*status).into(),
            last_seen: last_seen.map(ts),
        }),
        EventPayload::CallSignal {
            conversation_id,
            from,
            from_device,
            to,
            signal,
        } => Payload::CallSignal(pb::CallSignalEvent {
            conversation_id: conversation_id.to_string(),
            from: from.to_string(),
            from_device: from_device.as_ref().map(ToString::to_string),
            to: to.as_ref().map(ToString::to_string),
            signal_json: signal.to_string(),
        }),
        EventPayload::UserUpdated { user } => Payload::UserUpdated(pb::User {
            tenant_id: user.tenant.to_string(),
            id: user.id.to_string(),
            name: user.name.clone(),
            attributes_json: attributes_to(&user.attributes),
            created_at: ts(user.created_at),
            updated_at: ts(user.updated_at),
        }),
        EventPayload::TenantUpdated { tenant_id, status } => {
            Payload::TenantUpdated(pb::TenantUpdated {
                tenant_id: tenant_id.to_string(),
                status: tenant_status_to(*status).into(),
            })
        }
        // A kind added to the core after this schema: its JSON form keeps it whole.
        other => Payload::OtherJson(serde_json::to_string(other).unwrap_or_default()),
    }
}

fn payload_from(p: Payload) -> Result<EventPayload, String> {
    Ok(match p {
        Payload::MessageCreated(m) => EventPayload::MessageCreated {
            message: message_from(m)?,
        },
        Payload::MessageEdited(m) => EventPayload::MessageEdited {
            message: message_from(m)?,
        },
        Payload::MessageDeleted(d) => EventPayload::MessageDeleted {
            conversation_id: id(&d.conversation_id)?,
            message_id: id(&d.message_id)?,
            seq: Seq(d.seq),
            deleted_by: id(&d.deleted_by)?,
        },
        Payload::MessagePinned(p) => EventPayload::MessagePinned {
            conversation_id: id(&p.conversation_id)?,
            message_id: id(&p.message_id)?,
            seq: Seq(p.seq),
            by: id(&p.by)?,
            pinned: p.pinned,
        },
        Payload::ReactionAdded(r) => EventPayload::ReactionAdded {
            conversation_id: id(&r.conversation_id)?,
            message_id: id(&r.message_id)?,
            seq: Seq(r.seq),
            user_id: id(&r.user_id)?,
            emoji: r.emoji,
        },
        Payload::ReactionRemoved(r) => EventPayload::ReactionRemoved {
            conversation_id: id(&r.conversation_id)?,
            message_id: id(&r.message_id)?,
            seq: Seq(r.seq),
            user_id: id(&r.user_id)?,
            emoji: r.emoji,
        },
        Payload::ReceiptUpdated(r) => EventPayload::ReceiptUpdated {
            conversation_id: id(&r.conversation_id)?,
            user_id: id(&r.user_id)?,
            receipt: receipt_from(r.receipt)?,
            seq: Seq(r.seq),
        },
        Payload::ConversationCreated(c) => EventPayload::ConversationCreated {
            conversation: conversation_from(c)?,
        },
        Payload::ConversationUpdated(c) => EventPayload::ConversationUpdated {
            conversation: conversation_from(c)?,
        },
        Payload::MemberJoined(m) => {
            let (conversation_id, member) = member_from(m)?;
            EventPayload::MemberJoined {
                conversation_id,
                member,
            }
        }
        Payload::MemberLeft(m) => EventPayload::MemberLeft {
            conversation_id: id(&m.conversation_id)?,
            user_id: id(&m.user_id)?,
            by: id(&m.by)?,
        },
        Payload::MemberUpdated(m) => {
            let (conversation_id, member) = member_from(m)?;
            EventPayload::MemberUpdated {
                conversation_id,
                member,
            }
        }
        Payload::Typing(t) => EventPayload::Typing {
            conversation_id: id(&t.conversation_id)?,
            user_id: id(&t.user_id)?,
            typing: t.typing,
        },
        Payload::Presence(p) => EventPayload::Presence {
            user_id: id(&p.user_id)?,
            status: required_presence(p.status)?,
            last_seen: p.last_seen.map(time),
        },
        Payload::CallSignal(c) => EventPayload::CallSignal {
            conversation_id: id(&c.conversation_id)?,
            from: id(&c.from)?,
            from_device: opt_id(c.from_device.as_ref())?,
            to: opt_id(c.to.as_ref())?,
            signal: serde_json::from_str(&c.signal_json)
                .map_err(|e| format!("signal_json: {e}"))?,
        },
        Payload::UserUpdated(u) => EventPayload::UserUpdated {
            user: model::User {
                tenant: id(&u.tenant_id)?,
                id: id(&u.id)?,
                name: u.name,
                attributes: attributes_from(&u.attributes_json)?,
                created_at: time(u.created_at),
                updated_at: time(u.updated_at),
            },
        },
        Payload::TenantUpdated(t) => EventPayload::TenantUpdated {
            tenant_id: id(&t.tenant_id)?,
            status: tenant_status_from(t.status)?,
        },
        Payload::OtherJson(json) => {
            serde_json::from_str(&json).map_err(|e| format!("other_json: {e}"))?
        }
    })
}

#[inline]
pub(super) fn event_to(e: &Event, cursor: Option<Cursor>) -> pb::Event {
    pb::Event {
        cursor: cursor.map(|c| c.0),
        at: ts(e.at),
        correlation_id: e.correlation_id.to_string(),
        kind: e.payload.kind().to_owned(),
        payload: Some(payload_to(&e.payload)),
    }
}

#[inline]
pub(super) fn event_from(e: pb::Event) -> Result<WireEvent, String> {
    let payload = e
        .payload
        .ok_or_else(|| format!("event `{}`: no payload", e.kind))?;
    Ok(WireEvent {
        cursor: e.cursor.map(Cursor),
        at: time(e.at),
        correlation_id: if e.correlation_id.is_empty() {
            None
        } else {
            Some(id(&e.correlation_id)?)
        },
        payload: payload_from(payload)?,
    })
}
