//! A message as a row-and-document store keeps it: its key columns (tenant,
//! conversation, id, seq, sender, client id) apart, everything else as one JSON
//! document, so adding a field to [`Message`] needs no migration. One form for
//! every such backend (SQLite, PostgreSQL), so their documents stay the same.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::{Attachment, Ciphertext, Edit, ForwardRef, Message, Pin, Tombstone};
use crate::ids::{ClientMsgId, ConversationId, MessageId, Seq, TenantId, UserId};
use crate::time::Timestamp;

/// The key columns a store keeps beside a message's document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageColumns {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation.
    pub conversation: ConversationId,
    /// The message.
    pub id: MessageId,
    /// Its place in the conversation.
    pub seq: Seq,
    /// Who sent it.
    pub sender: UserId,
    /// The sender's idempotency key.
    pub client_msg_id: ClientMsgId,
}

/// Everything of a message but its key columns (tenant and conversation live in the
/// stream row; id, seq, sender and client_msg_id are columns). Field names and skip
/// rules match `Message`'s serde form.
#[derive(Debug, Deserialize)]
struct MessageDoc {
    #[serde(default)]
    body: Option<String>,
    #[serde(default)]
    ciphertext: Option<Ciphertext>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    #[serde(default)]
    reply_to: Option<MessageId>,
    #[serde(default)]
    forwarded_from: Option<ForwardRef>,
    #[serde(default)]
    mentions: Vec<UserId>,
    #[serde(default)]
    reactions: BTreeMap<String, Vec<UserId>>,
    #[serde(default)]
    edits: Vec<Edit>,
    #[serde(default)]
    edited_at: Option<Timestamp>,
    #[serde(default)]
    deleted: Option<Tombstone>,
    #[serde(default)]
    pinned: Option<Pin>,
    created_at: Timestamp,
}

/// The borrowed twin of [`MessageDoc`] for writing, so encoding copies nothing.
#[derive(Serialize)]
struct MessageDocRef<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<&'a String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ciphertext: Option<&'a Ciphertext>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    attachments: &'a [Attachment],
    #[serde(skip_serializing_if = "Option::is_none")]
    reply_to: Option<&'a MessageId>,
    #[serde(skip_serializing_if = "Option::is_none")]
    forwarded_from: Option<&'a ForwardRef>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    mentions: &'a [UserId],
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    reactions: &'a BTreeMap<String, Vec<UserId>>,
    #[serde(skip_serializing_if = "<[_]>::is_empty")]
    edits: &'a [Edit],
    #[serde(skip_serializing_if = "Option::is_none")]
    edited_at: Option<Timestamp>,
    #[serde(skip_serializing_if = "Option::is_none")]
    deleted: Option<&'a Tombstone>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pinned: Option<&'a Pin>,
    created_at: Timestamp,
}

/// The JSON document of a message: everything but its [`MessageColumns`].
pub fn message_document(m: &Message) -> serde_json::Result<String> {
    serde_json::to_string(&MessageDocRef {
        body: m.body.as_ref(),
        ciphertext: m.ciphertext.as_ref(),
        attachments: &m.attachments,
        reply_to: m.reply_to.as_ref(),
        forwarded_from: m.forwarded_from.as_ref(),
        mentions: &m.mentions,
        reactions: &m.reactions,
        edits: &m.edits,
        edited_at: m.edited_at,
        deleted: m.deleted.as_ref(),
        pinned: m.pinned.as_ref(),
        created_at: m.created_at,
    })
}

/// The message of `columns` and the `doc` [`message_document`] wrote.
pub fn message_from_document(columns: MessageColumns, doc: &str) -> serde_json::Result<Message> {
    let doc: MessageDoc = serde_json::from_str(doc)?;
    Ok(Message {
        tenant: columns.tenant,
        conversation: columns.conversation,
        id: columns.id,
        seq: columns.seq,
        sender: columns.sender,
        client_msg_id: columns.client_msg_id,
        body: doc.body,
        ciphertext: doc.ciphertext,
        attachments: doc.attachments,
        reply_to: doc.reply_to,
        forwarded_from: doc.forwarded_from,
        mentions: doc.mentions,
        reactions: doc.reactions,
        edits: doc.edits,
        edited_at: doc.edited_at,
        deleted: doc.deleted,
        pinned: doc.pinned,
        created_at: doc.created_at,
    })
}
