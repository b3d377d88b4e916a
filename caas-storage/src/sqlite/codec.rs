//! Between domain values and SQLite columns: integers, ids and JSON documents.
//!
//! Each table keeps as columns only what a query filters or orders on; the rest of
//! a value is one JSON document, so adding a field to a model type needs no
//! migration.

use std::str::FromStr;

use caas_core::ids::{ClientMsgId, ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Message, MessageColumns, message_document, message_from_document};
use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// A u64 (seq, cursor, position, timestamp) as SQLite's i64.
pub(super) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(what, "too large for the store (max 2^63 - 1)"))
}

/// A stored i64 back to u64; a negative one means the row is corrupt.
pub(super) fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::internal(format!("sqlite: stored {what} is negative")))
}

pub(super) fn ts_to_i64(t: Timestamp, what: &str) -> Result<i64> {
    to_i64(t.as_nanos(), what)
}

pub(super) fn ts_from_i64(v: i64, what: &str) -> Result<Timestamp> {
    to_u64(v, what).map(Timestamp::from_nanos)
}

/// A u64 bound of a range query (`seq > ?`): past i64::MAX nothing is stored, so
/// saturating keeps the query's meaning.
pub(super) fn bound(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A page size for `LIMIT`; usize::MAX means no limit.
pub(super) fn limit(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// An id read back from a column; one that no longer parses means corruption.
pub(super) fn id<T: FromStr<Err = Error>>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|e| Error::internal(format!("sqlite: stored id `{s}` is invalid: {e}")))
}

pub(super) fn to_json<T: Serialize + ?Sized>(v: &T, what: &str) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal {
        context: format!("sqlite: encoding {what}"),
        source: Some(Box::new(e)),
    })
}

pub(super) fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Internal {
        context: format!("sqlite: stored {what} does not decode"),
        source: Some(Box::new(e)),
    })
}

/// The columns of a message row; the rest of the message is its document
/// ([`caas_core::model::message_document`]).
#[derive(Debug)]
pub(super) struct MessageRow {
    pub(super) seq: i64,
    pub(super) id: String,
    pub(super) sender: String,
    pub(super) client_msg_id: String,
    pub(super) doc: String,
}

/// The columns every message query selects (table alias `m`), in the order
/// [`MessageRow::read`] takes them; a macro so queries are `concat!`ed at compile
/// time rather than formatted on every call.
macro_rules! message_columns {
    () => {
        "m.seq, m.id, m.sender, m.client_msg_id, m.doc"
    };
}
pub(super) use message_columns;

impl MessageRow {
    pub(super) fn read(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            seq: row.get(0)?,
            id: row.get(1)?,
            sender: row.get(2)?,
            client_msg_id: row.get(3)?,
            doc: row.get(4)?,
        })
    }

    pub(super) fn decode(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Message> {
        let columns = MessageColumns {
            tenant: tenant.clone(),
            conversation: conversation.clone(),
            id: id::<MessageId>(&self.id)?,
            seq: Seq(to_u64(self.seq, "seq")?),
            sender: id::<UserId>(&self.sender)?,
            client_msg_id: id::<ClientMsgId>(&self.client_msg_id)?,
        };
        message_from_document(columns, &self.doc).map_err(|e| Error::Internal {
            context: "sqlite: stored message does not decode".into(),
            source: Some(Box::new(e)),
        })
    }
}

/// The JSON document of a message (everything but its key columns).
pub(super) fn message_doc(m: &Message) -> Result<String> {
    message_document(m).map_err(|e| Error::Internal {
        context: "sqlite: encoding message".into(),
        source: Some(Box::new(e)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::ids::BlobId;
    use caas_core::model::{Attachment, Ciphertext, Edit, ForwardRef, Pin, Tombstone};

    #[test]
    fn message_docs_round_trip_every_field() {
        let t = |s| Timestamp::from_secs(s);
        let u = |s| UserId::parse(s).unwrap();
        let m = Message {
            tenant: TenantId::parse("t").unwrap(),
            conversation: ConversationId::parse("c").unwrap(),
            id: MessageId::parse("m").unwrap(),
            seq: Seq(7),
            sender: u("alice"),
            client_msg_id: ClientMsgId::parse("k").unwrap(),
            body: Some("hi".into()),
            ciphertext: Some(Ciphertext {
                algorithm: "x".into(),
                data: "y".into(),
            }),
            attachments: vec![Attachment {
                blob_id: BlobId::parse("b").unwrap(),
                content_type: "image/png".into(),
                size: 3,
                name: Some("a.png".into()),
            }],
            reply_to: Some(MessageId::parse("m0").unwrap()),
            forwarded_from: Some(ForwardRef {
                conversation_id: ConversationId::parse("c2").unwrap(),
                message_id: MessageId::parse("m2").unwrap(),
            }),
            mentions: vec![u("bob")],
            reactions: [("👍".to_owned(), vec![u("bob")])].into_iter().collect(),
            edits: vec![Edit {
                body: "old".into(),
                replaced_at: t(2),
            }],
            edited_at: Some(t(2)),
            deleted: Some(Tombstone {
                deleted_by: u("mod"),
                deleted_at: t(3),
            }),
            pinned: Some(Pin {
                pinned_by: u("bob"),
                pinned_at: t(4),
            }),
            created_at: t(1),
        };
        let row = MessageRow {
            seq: 7,
            id: "m".into(),
            sender: "alice".into(),
            client_msg_id: "k".into(),
            doc: message_doc(&m).unwrap(),
        };
        assert_eq!(row.decode(&m.tenant, &m.conversation).unwrap(), m);
    }

    #[test]
    fn out_of_range_integers_are_refused() {
        assert!(to_i64(u64::MAX, "seq").is_err());
        assert!(to_u64(-1, "seq").is_err());
        assert_eq!(limit(usize::MAX), i64::MAX);
    }
}
