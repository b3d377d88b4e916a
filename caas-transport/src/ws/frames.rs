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
use caas_core::model::{Attachment, Ciphertext, Message, Presence, PresenceStatus, Receipt};
use caas_core::time::Timestamp;
use serde::{Deserialize, Serialize};

pub use crate::requests::{
    MediaRequest, MediaUploadRequest, PinRequest, PinsRequest, PresenceQuery, ReceiptsRequest,
};

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
    /// Pin a message.
    Pin(PinRequest),
    /// Unpin a message.
    Unpin(PinRequest),
    /// The conversation's pinned messages.
    Pins(PinsRequest),
    /// Move the read (or delivered) watermark.
    Read(ReadRequest),
    /// Every member's receipt.
    Receipts(ReceiptsRequest),
    /// Started or stopped typing.
    Typing(TypingRequest),
    /// Set this device's presence.
    Presence(PresenceRequest),
    /// Other users' presence.
    PresenceOf(PresenceQuery),
    /// Relay a WebRTC signal to conversation members.
    CallSignal(CallSignalRequest),
    /// Catch up: the durable events after a cursor arrive as `event` frames carrying
    /// their `cursor`, then the ack with `next_cursor` and `has_more`.
    Sync(SyncRequest),
    /// Liveness check; the ack carries the server time.
    Ping(PingRequest),
    /// Announce an upload; the ack says where to PUT the bytes.
    #[serde(alias = "media:request-upload")]
    MediaUpload(MediaUploadRequest),
    /// Complete an upload; the ack carries the completed record.
    #[serde(alias = "media:upload-complete")]
    MediaComplete(MediaRequest),
    /// A download URL for an upload.
    #[serde(alias = "media:get-download-url")]
    MediaUrl(MediaRequest),
    /// Delete an upload.
    #[serde(alias = "media:delete")]
    MediaDelete(MediaRequest),
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
            Request::Pin(_) => "pin",
            Request::Unpin(_) => "unpin",
            Request::Pins(_) => "pins",
            Request::Read(_) => "read",
            Request::Receipts(_) => "receipts",
            Request::Typing(_) => "typing",
            Request::Presence(_) => "presence",
            Request::PresenceOf(_) => "presence_of",
            Request::CallSignal(_) => "call_signal",
            Request::Sync(_) => "sync",
            Request::Ping(_) => "ping",
            Request::MediaUpload(_) => "media_upload",
            Request::MediaComplete(_) => "media_complete",
            Request::MediaUrl(_) => "media_url",
            Request::MediaDelete(_) => "media_delete",
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

/// The acknowledgement of one request: what it produced, or why it failed;
/// never both, never neither. On the wire (JSON) it is
/// `{"ref", "ok": true, "result": {…}}` or `{"ref", "ok": false, "error": {…}}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(try_from = "AckWire")]
pub struct Ack {
    /// The request's `ref`.
    pub reference: String,
    /// The result, or the error.
    pub outcome: Result<AckResult, ErrorBody>,
}

impl Ack {
    /// Whether the request succeeded.
    pub fn ok(&self) -> bool {
        self.outcome.is_ok()
    }
}

// Written field by field rather than through `AckWire`, which would copy every
// ack the server sends.
impl Serialize for Ack {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeStruct;
        let mut m = s.serialize_struct("Ack", 3)?;
        m.serialize_field("ref", &self.reference)?;
        match &self.outcome {
            Ok(result) => {
                m.serialize_field("ok", &true)?;
                m.serialize_field("result", result)?;
            }
            Err(error) => {
                m.serialize_field("ok", &false)?;
                m.serialize_field("error", error)?;
            }
        }
        m.end()
    }
}

/// The JSON form of an [`Ack`], as read.
#[derive(Deserialize)]
struct AckWire {
    #[serde(rename = "ref")]
    reference: String,
    ok: bool,
    #[serde(default)]
    result: Option<AckResult>,
    #[serde(default)]
    error: Option<ErrorBody>,
}

impl TryFrom<AckWire> for Ack {
    type Error = String;

    fn try_from(w: AckWire) -> Result<Self, String> {
        let outcome = match (w.ok, w.result, w.error) {
            (true, Some(r), None) => Ok(r),
            (false, None, Some(e)) => Err(e),
            _ => return Err("an ack carries a result when ok, an error otherwise".into()),
        };
        Ok(Ack {
            reference: w.reference,
            outcome,
        })
    }
}

/// What a request produced. Each request has one shape, named after what it
/// answers; the JSON form is the shape's fields alone (the request's `ref`
/// tells which), and each shape's fields tell it apart from the others.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum AckResult {
    /// `send`: the stored message.
    Sent(SentResult),
    /// `edit`.
    Edited(EditedResult),
    /// `read`: the watermarks after the call.
    Receipt(ReceiptResult),
    /// `sync`: where the next page starts.
    Synced(SyncedResult),
    /// `presence`: the user's aggregated presence after the call.
    Presence(PresenceResult),
    /// `delete`, `react`, `unreact`, `pin`, `unpin`: the message changed.
    Message(MessageRef),
    /// `typing`: whether it went out.
    Typing(TypingResult),
    /// `ping`: the server's clock.
    Pong(PongResult),
    /// `pins`: the pinned messages.
    Messages(MessagesResult),
    /// `receipts`: every member's receipt.
    Receipts(ReceiptsResult),
    /// `presence_of`: the users' presence.
    Presences(PresencesResult),
    /// `media_upload`: where to put the bytes.
    Upload(UploadResult),
    /// `media_url`: where to get the bytes.
    Download(DownloadResult),
    /// `media_complete`: the completed upload.
    Media(MediaResult),
    /// `call_signal`, `media_delete`: done (`{}`).
    Done(DoneResult),
}

/// The result of `send`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SentResult {
    /// The message.
    pub message_id: MessageId,
    /// Its conversation.
    pub conversation_id: ConversationId,
    /// Its seq.
    pub seq: Seq,
    /// When it was stored.
    pub created_at: Timestamp,
    /// A retry of an earlier `client_msg_id`: this is the original.
    pub duplicate: bool,
}

/// The result of `edit`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EditedResult {
    /// The message.
    pub message_id: MessageId,
    /// Its seq.
    pub seq: Seq,
    /// When it was edited.
    pub edited_at: Timestamp,
}

/// The result of `read`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptResult {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The delivered watermark after the call.
    pub delivered: Seq,
    /// The read watermark after the call.
    pub read: Seq,
}

/// The result of `sync`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyncedResult {
    /// Where the next `sync` starts.
    pub next_cursor: Cursor,
    /// Whether more events wait after this page.
    pub has_more: bool,
    /// How many events this page sent.
    pub count: u32,
}

/// The result of `presence`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceResult {
    /// The user's best status over their devices.
    pub status: PresenceStatus,
    /// The user's last activity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_seen: Option<Timestamp>,
}

/// The message a request changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessageRef {
    /// The message.
    pub message_id: MessageId,
    /// Its seq.
    pub seq: Seq,
}

/// The result of `typing`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TypingResult {
    /// False when the connection's typing throttle swallowed it.
    pub forwarded: bool,
}

/// The result of `ping`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PongResult {
    /// The server's clock.
    pub server_time: Timestamp,
}

/// The result of `pins`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MessagesResult {
    /// In seq order.
    pub messages: Vec<Message>,
}

/// The result of `receipts`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsResult {
    /// One per member who has one.
    pub receipts: Vec<Receipt>,
}

/// The result of `presence_of`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresencesResult {
    /// In the order asked.
    pub presences: Vec<Presence>,
}

/// The result of `media_upload` (and of `POST /v1/media/uploads`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct UploadResult {
    /// The upload's id: complete it, attach it to messages, download it.
    #[schema(value_type = String)]
    pub blob_id: caas_core::ids::BlobId,
    /// PUT the bytes here, with `upload_headers`.
    pub upload_url: String,
    /// Headers the PUT must carry, with their values.
    pub upload_headers: std::collections::BTreeMap<String, String>,
    /// When the URL stops working; an upload not completed by then is removed.
    #[schema(value_type = String)]
    pub expires_at: Timestamp,
}

/// The result of `media_url` (and of `GET /v1/media/{blob_id}/url`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DownloadResult {
    /// GET the bytes here.
    pub url: String,
    /// When it stops working.
    #[schema(value_type = String)]
    pub expires_at: Timestamp,
}

/// The result of `media_complete`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaResult {
    /// The completed upload.
    pub media: caas_core::model::Media,
}

/// The result of requests that produce nothing but success.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DoneResult {}

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
// Events are most frames and are moved on once decoded: boxing them would add
// an allocation to every one to save stack space in a value that lives briefly.
#[allow(clippy::large_enum_variant)]
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
            outcome: Ok(AckResult::Typing(TypingResult { forwarded: true })),
        };
        let json = serde_json::to_string(&OutFrameRef::Ack(&ack)).unwrap();
        assert_eq!(
            json,
            r#"{"type":"ack","ref":"7","ok":true,"result":{"forwarded":true}}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerFrame>(&json).unwrap(),
            ServerFrame::Ack(ack)
        );
        let failed = Ack {
            reference: "8".into(),
            outcome: Err(ErrorBody {
                code: "forbidden".into(),
                message: "no".into(),
                retry_after_ms: None,
            }),
        };
        let json = serde_json::to_string(&OutFrameRef::Ack(&failed)).unwrap();
        assert_eq!(
            json,
            r#"{"type":"ack","ref":"8","ok":false,"error":{"code":"forbidden","message":"no"}}"#
        );
        assert_eq!(
            serde_json::from_str::<ServerFrame>(&json).unwrap(),
            ServerFrame::Ack(failed)
        );
        // What an ack cannot say is refused.
        for impossible in [
            r#"{"type":"ack","ref":"9","ok":true}"#,
            r#"{"type":"ack","ref":"9","ok":false,"result":{}}"#,
            r#"{"type":"ack","ref":"9","ok":true,"result":{},"error":{"code":"x","message":"y"}}"#,
            r#"{"type":"ack","ref":"9","ok":true,"result":{"seq":1}}"#,
        ] {
            assert!(
                serde_json::from_str::<ServerFrame>(impossible).is_err(),
                "{impossible}"
            );
        }
    }
}
