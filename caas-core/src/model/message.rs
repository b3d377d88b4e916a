use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::ids::{BlobId, ClientMsgId, ConversationId, MessageId, Seq, TenantId, UserId};
use crate::time::Timestamp;

/// How many earlier bodies an edited message keeps (the oldest are dropped).
pub const MAX_EDIT_HISTORY: usize = 10;

/// How many different emoji one message can carry.
pub const MAX_DISTINCT_REACTIONS: usize = 32;

/// An opaque end-to-end encrypted payload; the server never sees its plaintext.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ciphertext {
    /// The client's scheme name (e.g. `x3dh-dr-v1`).
    pub algorithm: String,
    /// The payload, base64 as the client sent it.
    pub data: String,
}

/// A reference to a stored blob.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Attachment {
    /// The blob.
    pub blob_id: BlobId,
    /// Its MIME type.
    pub content_type: String,
    /// Its size in bytes.
    pub size: u64,
    /// Optional file name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
}

/// Where a forwarded message came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ForwardRef {
    /// The original conversation.
    pub conversation_id: ConversationId,
    /// The original message.
    pub message_id: MessageId,
}

/// One earlier version of an edited message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Edit {
    /// The body before the edit.
    pub body: String,
    /// When that body was replaced.
    pub replaced_at: Timestamp,
}

/// A deleted message's tombstone; content is gone, the seq stays.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Tombstone {
    /// Who deleted it.
    pub deleted_by: UserId,
    /// When.
    pub deleted_at: Timestamp,
}

/// A pin on a message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Pin {
    /// Who pinned it.
    pub pinned_by: UserId,
    /// When.
    pub pinned_at: Timestamp,
}

/// A message about to be stored: everything but the seq, which the store assigns.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewMessage {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation.
    pub conversation: ConversationId,
    /// A fresh id (used only if the message is new).
    pub id: MessageId,
    /// The sender.
    pub sender: UserId,
    /// The sender's idempotency key.
    pub client_msg_id: ClientMsgId,
    /// Plain text.
    pub body: Option<String>,
    /// Or an E2EE payload.
    pub ciphertext: Option<Ciphertext>,
    /// Blob references.
    pub attachments: Vec<Attachment>,
    /// The message replied to (same conversation).
    pub reply_to: Option<MessageId>,
    /// The original of a forward.
    pub forwarded_from: Option<ForwardRef>,
    /// Mentioned members.
    pub mentions: Vec<UserId>,
    /// When it was sent.
    pub created_at: Timestamp,
}

impl NewMessage {
    /// The stored form with its seq.
    pub fn into_message(self, seq: Seq) -> Message {
        Message {
            tenant: self.tenant,
            conversation: self.conversation,
            id: self.id,
            seq,
            sender: self.sender,
            client_msg_id: self.client_msg_id,
            body: self.body,
            ciphertext: self.ciphertext,
            attachments: self.attachments,
            reply_to: self.reply_to,
            forwarded_from: self.forwarded_from,
            mentions: self.mentions,
            reactions: BTreeMap::new(),
            edits: Vec::new(),
            edited_at: None,
            deleted: None,
            pinned: None,
            created_at: self.created_at,
        }
    }
}

/// A stored message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Message {
    /// The tenant.
    pub tenant: TenantId,
    /// The conversation.
    pub conversation: ConversationId,
    /// Server-assigned id.
    pub id: MessageId,
    /// Position in the conversation: gap-free from 1.
    pub seq: Seq,
    /// The sender.
    pub sender: UserId,
    /// The sender's idempotency key.
    pub client_msg_id: ClientMsgId,
    /// Plain text (absent when deleted or encrypted).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    /// E2EE payload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ciphertext: Option<Ciphertext>,
    /// Blob references.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub attachments: Vec<Attachment>,
    /// The message replied to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reply_to: Option<MessageId>,
    /// The original of a forward.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub forwarded_from: Option<ForwardRef>,
    /// Mentioned members.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub mentions: Vec<UserId>,
    /// Emoji → users who reacted with it (sorted, each user once).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub reactions: BTreeMap<String, Vec<UserId>>,
    /// Earlier bodies, oldest first.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub edits: Vec<Edit>,
    /// When it was last edited.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edited_at: Option<Timestamp>,
    /// Set when deleted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<Tombstone>,
    /// Set when pinned.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pinned: Option<Pin>,
    /// When it was sent.
    pub created_at: Timestamp,
}

impl Message {
    /// Whether it has been deleted.
    pub fn is_deleted(&self) -> bool {
        self.deleted.is_some()
    }

    /// Replaces the body, keeping the old one in the history.
    pub fn apply_edit(&mut self, body: String, at: Timestamp) {
        if let Some(old) = self.body.replace(body) {
            // Bounded, so repeated edits cannot grow a message (and every event
            // and row that carries it) without limit.
            if self.edits.len() >= MAX_EDIT_HISTORY {
                self.edits.remove(0);
            }
            self.edits.push(Edit {
                body: old,
                replaced_at: at,
            });
        }
        self.edited_at = Some(at);
    }

    /// Turns the message into a tombstone: every piece of content goes, the seq stays.
    pub fn apply_delete(&mut self, by: UserId, at: Timestamp) {
        self.body = None;
        self.ciphertext = None;
        self.attachments.clear();
        self.edits.clear();
        self.mentions.clear();
        self.reactions.clear();
        self.pinned = None;
        self.deleted = Some(Tombstone {
            deleted_by: by,
            deleted_at: at,
        });
    }

    /// Adds or removes `user`'s `emoji`; returns whether anything changed.
    pub fn apply_reaction(&mut self, user: &UserId, emoji: &str, add: bool) -> bool {
        if add
            && !self.reactions.contains_key(emoji)
            && self.reactions.len() >= MAX_DISTINCT_REACTIONS
        {
            return false;
        }
        if add {
            let users = self.reactions.entry(emoji.to_owned()).or_default();
            match users.binary_search(user) {
                Ok(_) => false,
                Err(i) => {
                    users.insert(i, user.clone());
                    true
                }
            }
        } else {
            let Some(users) = self.reactions.get_mut(emoji) else {
                return false;
            };
            let Ok(i) = users.binary_search(user) else {
                return false;
            };
            users.remove(i);
            if users.is_empty() {
                self.reactions.remove(emoji);
            }
            true
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn msg() -> Message {
        NewMessage {
            tenant: TenantId::parse("t").unwrap(),
            conversation: ConversationId::parse("c").unwrap(),
            id: MessageId::parse("m").unwrap(),
            sender: UserId::parse("a").unwrap(),
            client_msg_id: ClientMsgId::parse("k").unwrap(),
            body: Some("one".into()),
            ciphertext: None,
            attachments: vec![],
            reply_to: None,
            forwarded_from: None,
            mentions: vec![UserId::parse("b").unwrap()],
            created_at: Timestamp::from_secs(1),
        }
        .into_message(Seq(1))
    }

    #[test]
    fn edit_keeps_history_in_order() {
        let mut m = msg();
        m.apply_edit("two".into(), Timestamp::from_secs(2));
        m.apply_edit("three".into(), Timestamp::from_secs(3));
        assert_eq!(m.body.as_deref(), Some("three"));
        let old: Vec<_> = m.edits.iter().map(|e| e.body.as_str()).collect();
        assert_eq!(old, ["one", "two"]);
        assert_eq!(m.edited_at, Some(Timestamp::from_secs(3)));
    }

    #[test]
    fn delete_removes_all_content() {
        let mut m = msg();
        m.apply_edit("two".into(), Timestamp::from_secs(2));
        let b = UserId::parse("b").unwrap();
        m.apply_reaction(&b, "x", true);
        m.apply_delete(b.clone(), Timestamp::from_secs(4));
        assert!(
            m.body.is_none()
                && m.edits.is_empty()
                && m.reactions.is_empty()
                && m.mentions.is_empty()
        );
        assert_eq!(m.seq, Seq(1));
        assert_eq!(m.deleted.as_ref().map(|t| &t.deleted_by), Some(&b));
    }

    #[test]
    fn reactions_are_sets() {
        let mut m = msg();
        let a = UserId::parse("a").unwrap();
        let b = UserId::parse("b").unwrap();
        assert!(m.apply_reaction(&b, "+1", true));
        assert!(!m.apply_reaction(&b, "+1", true));
        assert!(m.apply_reaction(&a, "+1", true));
        assert_eq!(m.reactions["+1"], vec![a.clone(), b.clone()]);
        assert!(m.apply_reaction(&a, "+1", false));
        assert!(!m.apply_reaction(&a, "+1", false));
        assert!(m.apply_reaction(&b, "+1", false));
        assert!(m.reactions.is_empty());
    }

    #[test]
    fn edit_history_and_distinct_reactions_are_bounded() {
        let mut m = msg();
        for i in 0..(MAX_EDIT_HISTORY + 5) {
            m.apply_edit(format!("v{i}"), Timestamp::from_secs(i as u64 + 2));
        }
        assert_eq!(m.edits.len(), MAX_EDIT_HISTORY);
        assert_eq!(m.edits[0].body, "v4", "the oldest bodies go first");
        let a = UserId::parse("a").unwrap();
        for i in 0..MAX_DISTINCT_REACTIONS {
            assert!(m.apply_reaction(&a, &format!("e{i}"), true));
        }
        assert!(!m.apply_reaction(&a, "one-too-many", true));
        assert!(
            m.apply_reaction(&UserId::parse("b").unwrap(), "e0", true),
            "an existing emoji still takes more users"
        );
        assert_eq!(m.reactions.len(), MAX_DISTINCT_REACTIONS);
    }
}
