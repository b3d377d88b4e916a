//! The requests of the API that more than one front door makes, as typed
//! values with their JSON form (the `caas.v1.json` WebSocket frames embed them
//! after `type` and `ref`; REST handlers build them from paths, queries and
//! bodies). What each one does is in [`crate::dispatch`].

use caas_core::ids::{BlobId, ConversationId, MessageId, Seq, UserId};
use serde::{Deserialize, Serialize};

/// `pin` / `unpin` a message (moderators, per policy): the result is the message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// The message.
    pub message_id: MessageId,
}

/// `pins`: the conversation's pinned messages, in seq order (members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PinsRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
}

/// `receipts`: every member's delivered and read watermarks (members).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ReceiptsRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
}

/// `presence_of`: the aggregated presence of up to 200 users of the tenant.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PresenceQuery {
    /// Whose presence.
    pub users: Vec<UserId>,
}

/// `history`: a page of a conversation's messages, ascending seq (members).
/// Either `before_seq` (older than it; the newest page when neither is given)
/// or `after_seq` (newer than it); `cursor` continues a page in its direction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HistoryRequest {
    /// The conversation.
    pub conversation_id: ConversationId,
    /// Messages older than this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub before_seq: Option<Seq>,
    /// Messages newer than this seq.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after_seq: Option<Seq>,
    /// At most this many (1 to the server's page limit; 50 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `forward`: copies a message into another conversation the caller may send
/// to; the copy names where it came from. `client_msg_id` makes it idempotent
/// (a retry returns the first copy); without one every call makes a new copy.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ForwardRequest {
    /// The source conversation.
    pub conversation_id: ConversationId,
    /// The message forwarded.
    pub message_id: MessageId,
    /// Where to.
    pub to_conversation_id: ConversationId,
    /// The idempotency key of the copy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_msg_id: Option<caas_core::ids::ClientMsgId>,
}

/// `conversations`: the caller's conversations, newest activity first, with
/// unread counts.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConversationsRequest {
    /// At most this many (50 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `search_messages`, `search_conversations`, `search_users`: only what the
/// caller may read, a page at a time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SearchRequest {
    /// The words; each must be a prefix of a word of a match.
    pub q: String,
    /// At most this many (20 when absent).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cursor: Option<String>,
}

/// `media_upload` (also `media:request-upload`): announces an upload into a
/// conversation (members); the result says where to PUT the bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaUploadRequest {
    /// The conversation it is for.
    pub conversation_id: ConversationId,
    /// Its MIME type.
    pub content_type: String,
    /// Its exact size in bytes.
    pub size: u64,
    /// Its hex SHA-256, checked on completion.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// A file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// `media_complete`, `media_url`, `media_delete` (also `media:upload-complete`,
/// `media:get-download-url`, `media:delete`): one upload by id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MediaRequest {
    /// The upload.
    pub blob_id: BlobId,
}

/// The default page sizes.
pub(crate) const DEFAULT_PAGE: u32 = 50;
/// The default page size of searches.
pub(crate) const DEFAULT_SEARCH_PAGE: u32 = 20;
