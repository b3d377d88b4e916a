//! The `caas.v1.proto` sub-protocol: the prost messages generated at build time
//! from `proto/caas.v1.proto` (see `build.rs`), and their conversions to and from
//! the types of [`super::frames`] and the domain.
//!
//! The messages are crate-private: Rust users speak through [`super::frames`] and
//! the [client](crate::client); other languages generate code from the `.proto`.
//! Conversions are split by what they carry: [`requests`] (client → server),
//! [`acks`], [`events`], and the domain values both directions share in
//! [`values`].

use std::str::FromStr;

use caas_core::events::Event;
use caas_core::ids::Cursor;
use caas_core::time::Timestamp;
use prost::Message as _;

use super::codec::FrameError;
use super::frames::{self, Ack, ClientFrame, ServerFrame};

mod acks;
mod events;
mod requests;
mod values;

#[cfg(test)]
mod tests;

/// The messages of `proto/caas.v1.proto`, as prost-build writes them.
// prost-build makes every item `pub`; this private module keeps them crate-private.
// `ServerFrame`'s oneof holds an event inline: it is decoded once per frame and
// dropped at once, so boxing it would only add an allocation.
#[allow(unreachable_pub, clippy::large_enum_variant)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/caas.v1.rs"));
}

// ------------------------------------------------------------------ entry points
//
// The conversions these call live in other modules and have one caller each; they
// are `#[inline]` so that their messages (hundreds of bytes) are built in place in
// the frame rather than returned and copied, as when they shared this file.

/// Encodes a server's ack.
pub(crate) fn encode_ack(ack: &Ack) -> Vec<u8> {
    server_frame(pb::server_frame::Frame::Ack(acks::ack_to(ack)))
}

/// Encodes a server's error frame.
pub(crate) fn encode_error(e: &frames::ErrorFrame) -> Vec<u8> {
    server_frame(pb::server_frame::Frame::Error(acks::error_frame_to(e)))
}

/// Encodes an event frame.
pub(crate) fn encode_event(event: &Event, cursor: Option<Cursor>) -> Vec<u8> {
    server_frame(pb::server_frame::Frame::Event(pb::EventFrame {
        event: Some(events::event_to(event, cursor)),
    }))
}

#[inline]
fn server_frame(frame: pb::server_frame::Frame) -> Vec<u8> {
    pb::ServerFrame { frame: Some(frame) }.encode_to_vec()
}

/// Encodes a client's frame.
pub(crate) fn encode_client(frame: &ClientFrame) -> Vec<u8> {
    pb::ClientFrame {
        r#ref: frame.reference.clone(),
        request: Some(requests::request_to(&frame.request)),
    }
    .encode_to_vec()
}

/// Decodes a client's frame (on the server).
pub(crate) fn decode_client(bytes: &[u8]) -> Result<ClientFrame, FrameError> {
    let msg = pb::ClientFrame::decode(bytes).map_err(|e| FrameError::Malformed {
        reference: None,
        reason: format!("not a caas.v1.ClientFrame: {e}"),
    })?;
    let reference = msg.r#ref;
    let Some(request) = msg.request else {
        return Err(FrameError::Unknown {
            reference: Some(reference),
            kind: "(none or unknown field)".into(),
        });
    };
    match requests::request_from(request) {
        Ok(request) => Ok(ClientFrame { reference, request }),
        Err(reason) => Err(FrameError::Malformed {
            reference: Some(reference),
            reason,
        }),
    }
}

/// Decodes a server's frame (on the client).
pub(crate) fn decode_server(bytes: &[u8]) -> Result<ServerFrame, FrameError> {
    use pb::server_frame::Frame;
    let bad = |reason: String| FrameError::Malformed {
        reference: None,
        reason,
    };
    let msg = pb::ServerFrame::decode(bytes)
        .map_err(|e| bad(format!("not a caas.v1.ServerFrame: {e}")))?;
    match msg.frame {
        Some(Frame::Ack(a)) => Ok(ServerFrame::Ack(acks::ack_from(a).map_err(bad)?)),
        Some(Frame::Event(pb::EventFrame { event: Some(e) })) => Ok(ServerFrame::Event {
            event: events::event_from(e).map_err(bad)?,
        }),
        Some(Frame::Error(e)) => Ok(ServerFrame::Error(acks::error_frame_from(e))),
        Some(Frame::Event(pb::EventFrame { event: None })) | None => Err(FrameError::Unknown {
            reference: None,
            kind: "(empty or unknown server frame)".into(),
        }),
    }
}

// ------------------------------------------------------------------ helpers

/// Parses an id, naming the field (the id types' errors already do).
fn id<T: FromStr<Err = caas_core::Error>>(s: &str) -> Result<T, String> {
    s.parse::<T>().map_err(|e| e.to_string())
}

fn opt_id<T: FromStr<Err = caas_core::Error>>(s: Option<&String>) -> Result<Option<T>, String> {
    s.map(|s| id(s)).transpose()
}

fn ids<T: FromStr<Err = caas_core::Error>>(v: &[String]) -> Result<Vec<T>, String> {
    v.iter().map(|s| id(s)).collect()
}

fn strs<T: AsRef<str>>(v: &[T]) -> Vec<String> {
    v.iter().map(|s| s.as_ref().to_owned()).collect()
}

/// Times travel as nanoseconds since the Unix epoch.
#[inline]
fn ts(t: Timestamp) -> u64 {
    t.as_nanos()
}

#[inline]
fn time(n: u64) -> Timestamp {
    Timestamp::from_nanos(n)
}
