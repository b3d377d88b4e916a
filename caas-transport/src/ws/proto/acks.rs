//! Server → client replies to frames: [`Ack`] and [`frames::ErrorFrame`].
//!
//! `caas.v1.AckResult` is one record whose fields each result shape fills in
//! part; which fields are set tells the shape back on decoding, as the JSON
//! form's fields do.

use caas_core::ids::{Cursor, Seq};
use caas_core::model::{Media, Presence, Receipt};

use super::events::{message_from, message_to};
use super::values::{presence_from, presence_to, required_presence};
use super::{id, ids, pb, strs, time, ts};
use crate::ws::frames::{
    self, Ack, AckResult, DoneResult, DownloadResult, EditedResult, ErrorBody, MediaResult,
    MessageRef, MessagesResult, PongResult, PresenceResult, PresencesResult, ReceiptResult,
    ReceiptsResult, SentResult, SyncedResult, TypingResult, UploadResult,
};

#[inline]
pub(super) fn ack_to(a: &Ack) -> pb::Ack {
    let (result, error) = match &a.outcome {
        Ok(r) => (Some(result_to(r)), None),
        Err(e) => (
            None,
            Some(pb::ErrorBody {
                code: e.code.clone(),
                message: e.message.clone(),
                retry_after_ms: e.retry_after_ms,
            }),
        ),
    };
    pb::Ack {
        r#ref: a.reference.clone(),
        ok: a.outcome.is_ok(),
        result,
        error,
    }
}

fn receipt_to(r: &Receipt) -> pb::Receipt {
    pb::Receipt {
        conversation_id: r.conversation.to_string(),
        user_id: r.user.to_string(),
        delivered: r.delivered.get(),
        read: r.read.get(),
        updated_at: ts(r.updated_at),
    }
}

fn receipt_from(r: pb::Receipt) -> Result<Receipt, String> {
    Ok(Receipt {
        conversation: id(&r.conversation_id)?,
        user: id(&r.user_id)?,
        delivered: Seq(r.delivered),
        read: Seq(r.read),
        updated_at: time(r.updated_at),
    })
}

fn presence_item_to(p: &Presence) -> pb::PresenceEvent {
    pb::PresenceEvent {
        user_id: p.user.to_string(),
        status: presence_to(p.status).into(),
        last_seen: p.last_seen.map(ts),
    }
}

fn presence_item_from(p: pb::PresenceEvent) -> Result<Presence, String> {
    Ok(Presence {
        user: id(&p.user_id)?,
        status: required_presence(p.status)?,
        last_seen: p.last_seen.map(time),
    })
}

fn result_to(r: &AckResult) -> pb::AckResult {
    let mut m = pb::AckResult::default();
    match r {
        AckResult::Sent(s) => {
            m.message_id = Some(s.message_id.to_string());
            m.conversation_id = Some(s.conversation_id.to_string());
            m.seq = Some(s.seq.get());
            m.created_at = Some(ts(s.created_at));
            m.duplicate = Some(s.duplicate);
        }
        AckResult::Edited(e) => {
            m.message_id = Some(e.message_id.to_string());
            m.seq = Some(e.seq.get());
            m.edited_at = Some(ts(e.edited_at));
        }
        AckResult::Receipt(r) => {
            m.conversation_id = Some(r.conversation_id.to_string());
            m.delivered = Some(r.delivered.get());
            m.read = Some(r.read.get());
        }
        AckResult::Synced(s) => {
            m.next_cursor = Some(s.next_cursor.0);
            m.has_more = Some(s.has_more);
            m.count = Some(s.count);
        }
        AckResult::Presence(p) => {
            m.status = presence_to(p.status).into();
            m.last_seen = p.last_seen.map(ts);
        }
        AckResult::Message(r) => {
            m.message_id = Some(r.message_id.to_string());
            m.seq = Some(r.seq.get());
        }
        AckResult::Typing(t) => m.forwarded = Some(t.forwarded),
        AckResult::Pong(p) => m.server_time = Some(ts(p.server_time)),
        AckResult::Messages(l) => {
            m.messages = Some(pb::MessageList {
                items: l.messages.iter().map(message_to).collect(),
            });
        }
        AckResult::Receipts(l) => {
            m.receipts = Some(pb::ReceiptList {
                items: l.receipts.iter().map(receipt_to).collect(),
            });
        }
        AckResult::Presences(l) => {
            m.presences = Some(pb::PresenceList {
                items: l.presences.iter().map(presence_item_to).collect(),
            });
        }
        AckResult::Upload(u) => {
            m.blob_id = Some(u.blob_id.to_string());
            m.upload_url = Some(u.upload_url.clone());
            m.upload_headers = u.upload_headers.clone().into_iter().collect();
            m.expires_at = Some(ts(u.expires_at));
        }
        AckResult::Download(d) => {
            m.url = Some(d.url.clone());
            m.expires_at = Some(ts(d.expires_at));
        }
        AckResult::Media(r) => m.media = Some(media_to(&r.media)),
        AckResult::Done(_) => {}
    }
    m
}

fn media_to(m: &Media) -> pb::Media {
    pb::Media {
        tenant: m.tenant.to_string(),
        id: m.id.to_string(),
        owner: m.owner.to_string(),
        conversation_id: m.conversation_id.to_string(),
        content_type: m.content_type.clone(),
        size: m.size,
        sha256: m.sha256.clone(),
        name: m.name.clone(),
        created_at: ts(m.created_at),
        expires_at: ts(m.expires_at),
        completed_at: m.completed_at.map(ts),
        shared_in: strs(&m.shared_in),
    }
}

fn media_from(m: pb::Media) -> Result<Media, String> {
    Ok(Media {
        tenant: id(&m.tenant)?,
        id: id(&m.id)?,
        owner: id(&m.owner)?,
        conversation_id: id(&m.conversation_id)?,
        content_type: m.content_type,
        size: m.size,
        sha256: m.sha256,
        name: m.name,
        created_at: time(m.created_at),
        expires_at: time(m.expires_at),
        completed_at: m.completed_at.map(time),
        shared_in: ids(&m.shared_in)?,
    })
}

/// The shape whose fields `r` sets, tried in the order of [`AckResult`]'s JSON
/// form: a shape matches only when its fields, and no others, are set.
fn result_from(r: pb::AckResult) -> Result<AckResult, String> {
    let msg = |r: &pb::AckResult| {
        r.message_id
            .as_deref()
            .map(id)
            .transpose()
            .map(|m| m.zip(r.seq.map(Seq)))
    };
    let set = [
        r.message_id.is_some(),
        r.conversation_id.is_some(),
        r.seq.is_some(),
        r.created_at.is_some(),
        r.edited_at.is_some(),
        r.duplicate.is_some(),
        r.delivered.is_some(),
        r.read.is_some(),
        presence_from(r.status).is_some(),
        r.last_seen.is_some(),
        r.forwarded.is_some(),
        r.next_cursor.is_some(),
        r.has_more.is_some(),
        r.count.is_some(),
        r.server_time.is_some(),
        r.messages.is_some(),
        r.receipts.is_some(),
        r.presences.is_some(),
        r.blob_id.is_some(),
        r.upload_url.is_some(),
        r.expires_at.is_some(),
        r.url.is_some(),
        r.media.is_some(),
    ];
    // Whether exactly these fields are set (the `optional` ones may be too).
    let shape = |required: &[usize], optional: &[usize]| {
        set.iter().enumerate().all(|(i, s)| {
            if required.contains(&i) {
                *s
            } else {
                !*s || optional.contains(&i)
            }
        })
    };
    let only = |required: &[usize]| shape(required, &[]);
    Ok(if only(&[0, 1, 2, 3, 5]) {
        let (message_id, seq) = msg(&r)?.ok_or("a send's result needs its message")?;
        AckResult::Sent(SentResult {
            message_id,
            conversation_id: id(r.conversation_id.as_deref().unwrap_or_default())?,
            seq,
            created_at: time(r.created_at.unwrap_or_default()),
            duplicate: r.duplicate.unwrap_or_default(),
        })
    } else if only(&[0, 2, 4]) {
        let (message_id, seq) = msg(&r)?.ok_or("an edit's result needs its message")?;
        AckResult::Edited(EditedResult {
            message_id,
            seq,
            edited_at: time(r.edited_at.unwrap_or_default()),
        })
    } else if only(&[1, 6, 7]) {
        AckResult::Receipt(ReceiptResult {
            conversation_id: id(r.conversation_id.as_deref().unwrap_or_default())?,
            delivered: Seq(r.delivered.unwrap_or_default()),
            read: Seq(r.read.unwrap_or_default()),
        })
    } else if only(&[11, 12, 13]) {
        AckResult::Synced(SyncedResult {
            next_cursor: Cursor(r.next_cursor.unwrap_or_default()),
            has_more: r.has_more.unwrap_or_default(),
            count: r.count.unwrap_or_default(),
        })
    } else if shape(&[8], &[9]) {
        AckResult::Presence(PresenceResult {
            status: required_presence(r.status)?,
            last_seen: r.last_seen.map(time),
        })
    } else if only(&[0, 2]) {
        let (message_id, seq) = msg(&r)?.ok_or("a message result needs its message")?;
        AckResult::Message(MessageRef { message_id, seq })
    } else if only(&[10]) {
        AckResult::Typing(TypingResult {
            forwarded: r.forwarded.unwrap_or_default(),
        })
    } else if only(&[14]) {
        AckResult::Pong(PongResult {
            server_time: time(r.server_time.unwrap_or_default()),
        })
    } else if only(&[15]) {
        let items = r.messages.map(|l| l.items).unwrap_or_default();
        AckResult::Messages(MessagesResult {
            messages: items
                .into_iter()
                .map(message_from)
                .collect::<Result<_, _>>()?,
        })
    } else if only(&[16]) {
        let items = r.receipts.map(|l| l.items).unwrap_or_default();
        AckResult::Receipts(ReceiptsResult {
            receipts: items
                .into_iter()
                .map(receipt_from)
                .collect::<Result<_, _>>()?,
        })
    } else if only(&[17]) {
        let items = r.presences.map(|l| l.items).unwrap_or_default();
        AckResult::Presences(PresencesResult {
            presences: items
                .into_iter()
                .map(presence_item_from)
                .collect::<Result<_, _>>()?,
        })
    } else if only(&[18, 19, 20]) {
        AckResult::Upload(UploadResult {
            blob_id: id(r.blob_id.as_deref().unwrap_or_default())?,
            upload_url: r.upload_url.unwrap_or_default(),
            upload_headers: r.upload_headers.into_iter().collect(),
            expires_at: time(r.expires_at.unwrap_or_default()),
        })
    } else if only(&[20, 21]) {
        AckResult::Download(DownloadResult {
            url: r.url.unwrap_or_default(),
            expires_at: time(r.expires_at.unwrap_or_default()),
        })
    } else if only(&[22]) {
        let media = r.media.ok_or("a media result needs its record")?;
        AckResult::Media(MediaResult {
            media: media_from(media)?,
        })
    } else if only(&[]) && r.upload_headers.is_empty() {
        AckResult::Done(DoneResult {})
    } else {
        return Err("an ack result with fields of no single request".into());
    })
}

#[inline]
pub(super) fn ack_from(a: pb::Ack) -> Result<Ack, String> {
    let outcome = match (a.ok, a.result, a.error) {
        (true, Some(r), None) => Ok(result_from(r)?),
        (false, None, Some(e)) => Err(ErrorBody {
            code: e.code,
            message: e.message,
            retry_after_ms: e.retry_after_ms,
        }),
        _ => return Err("an ack carries a result when ok, an error otherwise".into()),
    };
    Ok(Ack {
        reference: a.r#ref,
        outcome,
    })
}

#[inline]
pub(super) fn error_frame_to(e: &frames::ErrorFrame) -> pb::ErrorFrame {
    pb::ErrorFrame {
        r#ref: e.reference.clone(),
        code: e.code.clone(),
        message: e.message.clone(),
        retry_after_ms: e.retry_after_ms,
        resync: e.resync,
    }
}

#[inline]
pub(super) fn error_frame_from(e: pb::ErrorFrame) -> frames::ErrorFrame {
    frames::ErrorFrame {
        reference: e.r#ref,
        code: e.code,
        message: e.message,
        retry_after_ms: e.retry_after_ms,
        resync: e.resync,
    }
}
