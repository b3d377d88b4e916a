//! Client → server: [`Request`] and `caas.v1.ClientFrame`'s `request` oneof.

use caas_core::ids::{Cursor, Seq};

use super::pb::client_frame::Request as Msg;
use super::values::{
    attachment_from, attachment_to, ciphertext_from, ciphertext_to, presence_to, required_presence,
};
use super::{id, ids, opt_id, pb, strs};
use crate::ws::frames::{self, Request};

#[inline]
pub(super) fn request_to(r: &Request) -> Msg {
    match r {
        Request::Send(s) => Msg::Send(pb::SendRequest {
            conversation_id: s.conversation_id.to_string(),
            client_msg_id: s.client_msg_id.to_string(),
            body: s.body.clone(),
            ciphertext: s.ciphertext.as_ref().map(ciphertext_to),
            attachments: s.attachments.iter().map(attachment_to).collect(),
            reply_to: s.reply_to.as_ref().map(ToString::to_string),
            mentions: strs(&s.mentions),
        }),
        Request::Edit(e) => Msg::Edit(pb::EditRequest {
            conversation_id: e.conversation_id.to_string(),
            message_id: e.message_id.to_string(),
            body: e.body.clone(),
        }),
        Request::Delete(d) => Msg::Delete(pb::DeleteRequest {
            conversation_id: d.conversation_id.to_string(),
            message_id: d.message_id.to_string(),
        }),
        Request::React(r) => Msg::React(reaction_to(r)),
        Request::Unreact(r) => Msg::Unreact(reaction_to(r)),
        Request::Read(r) => Msg::Read(pb::ReadRequest {
            conversation_id: r.conversation_id.to_string(),
            seq: r.seq.get(),
            delivered_only: r.delivered_only,
        }),
        // Always sent, though absent means true: peers decode either the same way.
        Request::Typing(t) => Msg::Typing(pb::TypingRequest {
            conversation_id: t.conversation_id.to_string(),
            typing: Some(t.typing),
        }),
        Request::Presence(p) => Msg::Presence(pb::PresenceRequest {
            status: presence_to(p.status).into(),
        }),
        Request::CallSignal(c) => Msg::CallSignal(pb::CallSignalRequest {
            conversation_id: c.conversation_id.to_string(),
            to: c.to.as_ref().map(ToString::to_string),
            signal_json: c.signal.to_string(),
        }),
        Request::Sync(s) => Msg::Sync(pb::SyncRequest {
            since: s.since.map(|c| c.0),
            limit: s.limit,
        }),
        Request::Ping(_) => Msg::Ping(pb::PingRequest {}),
        Request::Pin(p) => Msg::Pin(pin_to(p)),
        Request::Unpin(p) => Msg::Unpin(pin_to(p)),
        Request::Pins(p) => Msg::Pins(pb::PinsRequest {
            conversation_id: p.conversation_id.to_string(),
        }),
        Request::Receipts(r) => Msg::Receipts(pb::ReceiptsRequest {
            conversation_id: r.conversation_id.to_string(),
        }),
        Request::PresenceOf(q) => Msg::PresenceOf(pb::PresenceQuery {
            users: strs(&q.users),
        }),
        Request::MediaUpload(u) => Msg::MediaUpload(pb::MediaUploadRequest {
            conversation_id: u.conversation_id.to_string(),
            content_type: u.content_type.clone(),
            size: u.size,
            sha256: u.sha256.clone(),
            name: u.name.clone(),
        }),
        Request::MediaComplete(m) => Msg::MediaComplete(media_to(m)),
        Request::MediaUrl(m) => Msg::MediaUrl(media_to(m)),
        Request::MediaDelete(m) => Msg::MediaDelete(media_to(m)),
    }
}

fn media_to(m: &frames::MediaRequest) -> pb::MediaRequest {
    pb::MediaRequest {
        blob_id: m.blob_id.to_string(),
    }
}

fn media_from(m: pb::MediaRequest) -> Result<frames::MediaRequest, String> {
    Ok(frames::MediaRequest {
        blob_id: id(&m.blob_id)?,
    })
}

fn pin_to(p: &frames::PinRequest) -> pb::PinRequest {
    pb::PinRequest {
        conversation_id: p.conversation_id.to_string(),
        message_id: p.message_id.to_string(),
    }
}

fn pin_from(p: pb::PinRequest) -> Result<frames::PinRequest, String> {
    Ok(frames::PinRequest {
        conversation_id: id(&p.conversation_id)?,
        message_id: id(&p.message_id)?,
    })
}

fn reaction_to(r: &frames::ReactionRequest) -> pb::ReactionRequest {
    pb::ReactionRequest {
        conversation_id: r.conversation_id.to_string(),
        message_id: r.message_id.to_string(),
        emoji: r.emoji.clone(),
    }
}

fn reaction_from(r: pb::ReactionRequest) -> Result<frames::ReactionRequest, String> {
    Ok(frames::ReactionRequest {
        conversation_id: id(&r.conversation_id)?,
        message_id: id(&r.message_id)?,
        emoji: r.emoji,
    })
}

/// The request, or why it is malformed (an invalid id, enum value or JSON text).
#[inline]
pub(super) fn request_from(r: Msg) -> Result<Request, String> {
    Ok(match r {
        Msg::Send(s) => Request::Send(frames::SendRequest {
            conversation_id: id(&s.conversation_id)?,
            client_msg_id: id(&s.client_msg_id)?,
            body: s.body,
            ciphertext: s.ciphertext.map(ciphertext_from),
            attachments: s
                .attachments
                .into_iter()
                .map(attachment_from)
                .collect::<Result<_, _>>()?,
            reply_to: opt_id(s.reply_to.as_ref())?,
            mentions: ids(&s.mentions)?,
        }),
        Msg::Edit(e) => Request::Edit(frames::EditRequest {
            conversation_id: id(&e.conversation_id)?,
            message_id: id(&e.message_id)?,
            body: e.body,
        }),
        Msg::Delete(d) => Request::Delete(frames::DeleteRequest {
            conversation_id: id(&d.conversation_id)?,
            message_id: id(&d.message_id)?,
        }),
        Msg::React(r) => Request::React(reaction_from(r)?),
        Msg::Unreact(r) => Request::Unreact(reaction_from(r)?),
        Msg::Read(r) => Request::Read(frames::ReadRequest {
            conversation_id: id(&r.conversation_id)?,
            seq: Seq(r.seq),
            delivered_only: r.delivered_only,
        }),
        Msg::Typing(t) => Request::Typing(frames::TypingRequest {
            conversation_id: id(&t.conversation_id)?,
            typing: t.typing.unwrap_or(true),
        }),
        Msg::Presence(p) => Request::Presence(frames::PresenceRequest {
            status: required_presence(p.status)?,
        }),
        Msg::CallSignal(c) => Request::CallSignal(frames::CallSignalRequest {
            conversation_id: id(&c.conversation_id)?,
            to: opt_id(c.to.as_ref())?,
            signal: serde_json::from_str(&c.signal_json)
                .map_err(|e| format!("signal_json: {e}"))?,
        }),
        Msg::Sync(s) => Request::Sync(frames::SyncRequest {
            since: s.since.map(Cursor),
            limit: s.limit,
        }),
        Msg::Ping(_) => Request::Ping(frames::PingRequest {}),
        Msg::Pin(p) => Request::Pin(pin_from(p)?),
        Msg::Unpin(p) => Request::Unpin(pin_from(p)?),
        Msg::Pins(p) => Request::Pins(frames::PinsRequest {
            conversation_id: id(&p.conversation_id)?,
        }),
        Msg::Receipts(r) => Request::Receipts(frames::ReceiptsRequest {
            conversation_id: id(&r.conversation_id)?,
        }),
        Msg::PresenceOf(q) => Request::PresenceOf(frames::PresenceQuery {
            users: ids(&q.users)?,
        }),
        Msg::MediaUpload(u) => Request::MediaUpload(frames::MediaUploadRequest {
            conversation_id: id(&u.conversation_id)?,
            content_type: u.content_type,
            size: u.size,
            sha256: u.sha256,
            name: u.name,
        }),
        Msg::MediaComplete(m) => Request::MediaComplete(media_from(m)?),
        Msg::MediaUrl(m) => Request::MediaUrl(media_from(m)?),
        Msg::MediaDelete(m) => Request::MediaDelete(media_from(m)?),
    })
}
