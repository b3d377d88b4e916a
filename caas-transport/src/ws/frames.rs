//! The frames of the WebSocket protocol as Rust types, shared by the server and the
//! [client](crate::client). Their serde form is the `caas.v1.json` sub-protocol;
//! `proto/caas.v1.proto` is the same messages for `caas.v1.proto`.
//!
//! Client → server: a [`ClientFrame`] (a [`Request`] plus the client-chosen `ref`).
//! Server → client: an [`Ack`] for every request, an `event` frame for every domain
//! event the user may see, and an [`ErrorFrame`] for a frame that could not be
//! read. See the crate README for the JSON shapes.

use caas_core::events::{Event, EventPayload};
use caas_core::ids::{ClientMsgId, ConversationId, CorrelationId, Cursor, MessageId, Seq, UserId};
use caas_core::model::{Attachment, Ciphertext, PresenceStatus};
use caas_core::time::Timestamp;
use serde::{Deserialize, Serialize};

/// The sub-protocol of JSON text frames.
pub const JSON_PROTOCOL: &str = "caas.v1.json";
/// The sub-protocol of protobuf binary frames.
pub const PROTO_PROTOCOL: &str = "caas.v1.proto";
/// Longest `ref` a client may choose, in bytes.
pub const MAX_REF_LEN: usize = 64;

/// How frames are encoded on a connection, chosen by the sub-protocol.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Codec {
    /// `caas.v1.json`: UTF-8 JSON in text frames. Also used when the client names
    /// no sub-protocol.
    #[default]
    Json,
    /// `caas.v1.proto`: protobuf in binary frames (`proto/caas.v1.proto`).
    Proto,
}

impl Codec {
    /// The sub-protocol name.
    pub fn protocol(self) -> &'static str {
        match self {
            Codec::Json => JSON_PROTOCOL,
            Codec::Proto => PROTO_PROTOCOL,
        }
    }

    /// The codec of a sub-protocol name.
    pub fn from_protocol(name: &str) -> Option<Self> {
        match name {
            JSON_PROTOCOL => Some(Codec::Json),
            PROTO_PROTOCOL => Some(Codec::Proto),
            _ => None,
        }
    }
}

/// A client → server frame.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClientFrame {
    /// Chosen by the client (1 to [`MAX_REF_LEN`] bytes); the ack echoes it.
    #[serde(rename = "ref")]
    pub reference: String,
    /// What to do.
    #[serde(flatten)]
    pub request: Request,
}

/// What a client asks for; the JSON `type` tag names the variant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Request {
    /// Send a message (idempotent on `client_msg_id`).
    Send(SendRequest),
    /// Edit one's message.
    Edit(EditRequest),
    /// Delete (tombstone) a message.
    Delete(DeleteRequest),
    /// Add a reaction.
    React(ReactionRequest),
    /// Remove a reaction.
    Unreact(ReactionRequest),
    /// Move the read (or delivered) watermark.
    Read(ReadRequest),
    /// Started or stopped typing.
    Typing(TypingRequest),
    /// Set this device's presence.
    Presence(PresenceRequest),
    /// Relay a WebRTC signal to conversation members.
    CallSignal(CallSignalRequest),
    /// Catch up: the durable events after a cursor arrive as `event` frames carrying
    /// their `cursor`, then the ack with `next_cursor` and `has_more`.
    Sync(SyncRequest),
    /// Liveness check; the ack carries the server time.
    Ping(PingRequest),
}

impl Request {
    /// The JSON `type` of the request.
    pub fn kind(&self) -> &'static str {
        match self {
            Request::Send(_) => "send",
            Request::Edit(_) => "edit",
            Request::Delete(_) => "delete",
            Request::React(_) => "react",
            Request::Unreact(_) => "unreact",
            Request::Read(_) => "read",
            Request::Typing(_) => "typing",
            Request::Presence(_) => "presence",
            Request::CallSignal(_) => "call_signal",
            Request::Sync(_) => "sync",
            Request::Ping(_) => "ping",
        }
    }
}

/// `send`: the ack's result has `message_id`, `conversation_id`, `seq`,
/// `created_at` and `duplicate` (true for a retry of the same `client_msg_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The idempotency key.
    pub client_msg_id: ClientMsgId,
    /// Plain text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// Or an E2EE payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<Ciphertext>,
    /// Blob references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The message replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// Mentioned members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
}

impl SendRequest {
    /// A plain text message.
    pub fn text(
        conversation_id: ConversationId,
        client_msg_id: ClientMsgId,
        body: impl Into<String>,
    ) -> Self {
        Self {
            conversation_id,
            client_msg_id,
            body: Some(body.into()),
            ciphertext: None,
            attachments: Vec::new(),
            reply_to: None,
            mentions: Vec::new(),
        }
    }
}

/// `edit`: the result has `message_id`, `seq` and `edited_at`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
    /// The new body.
    pub body: String,
}

/// `delete`: the result has `message_id` and `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeleteRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
}

/// `react` / `unreact`: the result has `message_id` and `seq`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReactionRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
    /// The emoji.
    pub emoji: String,
}

/// `read`: the result has `conversation_id`, `delivered` and `read` (the
/// watermarks after the call).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReadRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The new watermark.
    pub seq: Seq,
    /// Move only the delivered watermark.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub delivered_only: bool,
}

/// `typing`: the result has `forwarded` (false when the connection's typing
/// throttle swallowed it).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Started (default) or stopped.
    #[serde(default = "yes")]
    pub typing: bool,
}

fn yes() -> bool {
    true
}

/// `presence`: the result has the user's aggregated `status` and `last_seen`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceRequest {
    /// This device's status.
    pub status: PresenceStatus,
}

/// `call_signal`: the result is empty.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallSignalRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// One member, or every other member when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub to: Option<UserId>,
    /// The opaque offer/answer/ICE payload.
    pub signal: serde_json::Value,
}

/// `sync`: the result has `next_cursor`, `has_more` and `count`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct SyncRequest {
    /// Events after this cursor (0, everything, when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub since: Option<Cursor>,
    /// At most this many (the server caps it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
}

/// `ping`: the result has `server_time`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct PingRequest {}

/// The acknowledgement of one request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ack {
    /// The request's `ref`.
    #[serde(rename = "ref")]
    pub reference: String,
    /// Whether it succeeded.
    pub ok: bool,
    /// What it produced (when `ok`); each request's doc lists its fields.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub result: Option<AckResult>,
    /// Why it failed (when not `ok`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ErrorBody>,
}

/// The result of a request: one flat record, each request filling its own fields
/// (so the same shape serves JSON and protobuf).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AckResult {
    /// The message sent, edited, deleted or reacted to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message_id: Option<MessageId>,
    /// The conversation.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub conversation_id: Option<ConversationId>,
    /// The message's seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub seq: Option<Seq>,
    /// When the message was stored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Timestamp>,
    /// When the message was edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// A send that repeated an earlier `client_msg_id` (the original is returned).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub duplicate: Option<bool>,
    /// The delivered watermark after a `read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delivered: Option<Seq>,
    /// The read watermark after a `read`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub read: Option<Seq>,
    /// The aggregated presence after a `presence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<PresenceStatus>,
    /// The user's last activity after a `presence`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
    /// Whether a `typing` went out (false: throttled).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded: Option<bool>,
    /// Where the next `sync` starts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_cursor: Option<Cursor>,
    /// Whether more events wait after this `sync` page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub has_more: Option<bool>,
    /// How many events this `sync` page sent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<u32>,
    /// The server's clock, on `ping`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server_time: Option<Timestamp>,
}

/// Why a request failed: an `api.md` error code and a human-readable message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// `forbidden`, `not_found`, `invalid_argument`, `rate_limited`, …
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// For `rate_limited`: when a retry can succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
}

/// A frame the server could not act on (malformed, unknown, oversized, over the
/// rate), or a notice to the whole connection (`resync`). The connection stays open.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorFrame {
    /// The frame's `ref`, when it could be read.
    #[serde(rename = "ref", default, skip_serializing_if = "Option::is_none")]
    pub reference: Option<String>,
    /// An `api.md` error code.
    pub code: String,
    /// What went wrong.
    pub message: String,
    /// For `rate_limited`: when the next frame will be accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retry_after_ms: Option<u64>,
    /// Set when live events were lost for this connection: `sync` from the last
    /// cursor to catch up.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub resync: bool,
}

/// One domain event as a client receives it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
pub struct WireEvent {
    /// Its position in the tenant's log: set on events sent in answer to `sync`,
    /// absent on live ones.
    #[serde(default)]
    pub cursor: Option<Cursor>,
    /// When it happened.
    pub at: Timestamp,
    /// The request that caused it.
    #[serde(default)]
    pub correlation_id: Option<CorrelationId>,
    /// What happened (`kind` names it).
    #[serde(flatten)]
    pub payload: EventPayload,
}

/// A server → client frame, as the client decodes it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerFrame {
    /// The acknowledgement of a request.
    Ack(Ack),
    /// A domain event.
    Event {
        /// The event.
        event: WireEvent,
    },
    /// A frame the server could not act on, or a notice.
    Error(ErrorFrame),
}

/// The JSON of an event frame, borrowed from the event (the server encodes each
/// event once per node, not once per recipient).
#[derive(Serialize)]
#[serde(tag = "type", rename = "event")]
pub(crate) struct EventFrameRef<'a> {
    pub(crate) event: EventRef<'a>,
}

/// What a client sees of an event, on every front door (a WebSocket `event`
/// frame, a REST `sync` item): the payload's fields with `kind` first, then the
/// conversation and seq of message events (so every message event names both at
/// the top level, as the others already do), then time, cause and cursor. Never
/// the audience (who else received it) nor the tenant: this is the one place
/// that decides, so every front door shows the same.
#[derive(Serialize)]
pub(crate) struct EventRef<'a> {
    #[serde(flatten)]
    payload: &'a EventPayload,
    #[serde(skip_serializing_if = "Option::is_none")]
    conversation_id: Option<&'a ConversationId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    seq: Option<Seq>,
    at: Timestamp,
    correlation_id: &'a CorrelationId,
    #[serde(skip_serializing_if = "Option::is_none")]
    cursor: Option<Cursor>,
}

impl<'a> EventRef<'a> {
    pub(crate) fn new(event: &'a Event, cursor: Option<Cursor>) -> Self {
        let (conversation_id, seq) = match &event.payload {
            EventPayload::MessageCreated { message } | EventPayload::MessageEdited { message } => {
                (Some(&message.conversation), Some(message.seq))
            }
            _ => (None, None),
        };
        Self {
            payload: &event.payload,
            conversation_id,
            seq,
            at: event.at,
            correlation_id: &event.correlation_id,
            cursor,
        }
    }
}

/// Tags server frames the server writes from owned values.
#[derive(Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub(crate) enum OutFrameRef<'a> {
    Ack(&'a Ack),
    Error(&'a ErrorFrame),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_api_md_send_example_parses() {
        let f: ClientFrame = serde_json::from_str(
            r#"{"type":"send","ref":"7","conversation_id":"c_1","client_msg_id":"m-42","body":"hi"}"#,
        )
        .unwrap();
        assert_eq!(f.reference, "7");
        let Request::Send(s) = &f.request else {
            panic!("{f:?}")
        };
        assert_eq!(s.body.as_deref(), Some("hi"));
        let back = serde_json::to_value(&f).unwrap();
        assert_eq!(back["type"], "send");
        assert_eq!(back["ref"], "7");
    }

    #[test]
    fn unknown_fields_and_types_are_refused() {
        assert!(
            serde_json::from_str::<ClientFrame>(
                r#"{"type":"send","ref":"7","conversation_id":"c_1","client_msg_id":"m","bdy":"x"}"#
            )
            .is_err()
        );
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"dance","ref":"7"}"#).is_err());
        assert!(serde_json::from_str::<ClientFrame>(r#"{"type":"ping"}"#).is_err());
        let ping: ClientFrame = serde_json::from_str(r#"{"type":"ping","ref":"1"}"#).unwrap();
        assert_eq!(ping.request, Request::Ping(PingRequest {}));
        let typing: ClientFrame =
            serde_json::from_str(r#"{"type":"typing","ref":"1","conversation_id":"c"}"#).unwrap();
        assert!(matches!(
            typing.request,
            Request::Typing(TypingRequest { typing: true, .. })
        ));
    }

    #[test]
    fn acks_and_errors_round_trip() {
        let ack = Ack {
            reference: "7".into(),
            ok: true,
            result: Some(AckResult {
                seq: Some(Seq(18)),
                ..AckResult::default()
            }),
            error: None,
        };
        let json = serde_json::to_string(&OutFrameRef::Ack(&ack)).unwrap();
        assert_eq!(
            json,
            r#"{"type":"ack","ref":"7","ok":true,"result":{"seq":18}}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerFrame>(&json).unwrap(),
            ServerFrame::Ack(ack)
        );
    }
}
