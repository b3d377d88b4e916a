//! Server → client replies to frames: [`Ack`] and [`frames::ErrorFrame`].

use caas_core::ids::{Cursor, Seq};

use super::values::{presence_from, presence_to};
use super::{opt_id, pb, time, ts};
use crate::ws::frames::{self, Ack, AckResult, ErrorBody};

#[inline]
pub(super) fn ack_to(a: &Ack) -> pb::Ack {
    pb::Ack {
        r#ref: a.reference.clone(),
        ok: a.ok,
        result: a.result.as_ref().map(|r| pb::AckResult {
            message_id: r.message_id.as_ref().map(ToString::to_string),
            conversation_id: r.conversation_id.as_ref().map(ToString::to_string),
            seq: r.seq.map(Seq::get),
            created_at: r.created_at.map(ts),
            edited_at: r.edited_at.map(ts),
            duplicate: r.duplicate,
            delivered: r.delivered.map(Seq::get),
            read: r.read.map(Seq::get),
            status: r
                .status
                .map_or(pb::PresenceStatus::Unspecified, presence_to)
                .into(),
            last_seen: r.last_seen.map(ts),
            forwarded: r.forwarded,
            next_cursor: r.next_cursor.map(|c| c.0),
            has_more: r.has_more,
            count: r.count,
            server_time: r.server_time.map(ts),
        }),
        error: a.error.as_ref().map(|e| pb::ErrorBody {
            code: e.code.clone(),
            message: e.message.clone(),
            retry_after_ms: e.retry_after_ms,
        }),
    }
}

#[inline]
pub(super) fn ack_from(a: pb::Ack) -> Result<Ack, String> {
    let result = match a.result {
        None => None,
        Some(r) => Some(AckResult {
            message_id: opt_id(r.message_id.as_ref())?,
            conversation_id: opt_id(r.conversation_id.as_ref())?,
            seq: r.seq.map(Seq),
            created_at: r.created_at.map(time),
            edited_at: r.edited_at.map(time),
            duplicate: r.duplicate,
            delivered: r.delivered.map(Seq),
            read: r.read.map(Seq),
            status: presence_from(r.status),
            last_seen: r.last_seen.map(time),
            forwarded: r.forwarded,
            next_cursor: r.next_cursor.map(Cursor),
            has_more: r.has_more,
            count: r.count,
            server_time: r.server_time.map(time),
        }),
    };
    Ok(Ack {
        reference: a.r#ref,
        ok: a.ok,
        result,
        error: a.error.map(|e| ErrorBody {
            code: e.code,
            message: e.message,
            retry_after_ms: e.retry_after_ms,
        }),
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
