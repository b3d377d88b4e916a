//! Messages and conversation heads.
//!
//! **Append.** One transaction takes the next seq from the conversation's head
//! document (`findOneAndUpdate` with `$inc`, upserted for the first message),
//! takes the next cursor from the tenant's log head the same way, inserts the
//! message and inserts its `message.created` event. A concurrent append of the
//! same conversation conflicts on the head and runs again once this one has
//! committed or aborted (see `txn.rs`), so seqs are unique and gap-free, and
//! nothing of an aborted append remains. The idempotency check is a lookup
//! before the transaction; a twin stored in between is caught by the unique
//! index on `(tenant, conversation, sender, client_msg_id)`, and the twin is
//! returned.
//!
//! **Changes** (edit, delete, react, pin) are compare-and-set updates of one
//! document: the update's filter names the JSON body that was read, so of two
//! concurrent changes one matches and the other reads again.

use std::collections::HashMap;
use std::sync::Arc;

use async_trait::async_trait;
use caas_core::events::Announce;
use caas_core::ids::{ConversationId, Cursor, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Message, NewMessage, Pin};
use caas_core::ports::{Appended, Changed, ConversationHead, HistoryPage, MessageStore};
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use mongodb::bson::Document;
use mongodb::options::ReturnDocument;

use super::codec::{
    body, check_size, get_i64, get_str, id, page_limit, to_json, to_u64, ts_to_i64,
};
use super::events::{self, event_size};
use super::names::{EVENTS, HEADS, LOG_HEADS, MESSAGES};
use super::txn::{Abort, OnDuplicate};
use super::{MongoStore, error};

/// The command, filter and update documents of every message operation, as
/// pure functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{ConversationId, TenantId, UserId};
    use caas_core::ports::HistoryPage;
    use mongodb::bson::{Document, doc};

    use super::super::codec::bound;
    use super::super::names::MESSAGES;

    /// The `_id` of a conversation's head document. Always built here, so the
    /// field order (which embedded-document equality depends on) never varies.
    pub(crate) fn head_id(tenant: &TenantId, conversation: &ConversationId) -> Document {
        doc! { "t": tenant.as_str(), "c": conversation.as_str() }
    }

    /// `findOneAndUpdate` (upsert, returning the new document) of the head:
    /// the next seq, and the newest message's time.
    pub(crate) fn next_seq(
        tenant: &TenantId,
        conversation: &ConversationId,
        at_nanos: i64,
    ) -> (Document, Document) {
        (
            doc! { "_id": head_id(tenant, conversation) },
            doc! {
                "$inc": { "last_seq": 1_i64 },
                "$set": { "last_activity": at_nanos },
            },
        )
    }

    /// The idempotency key of a send, as a filter (backed by the unique index
    /// `messages_client_msg_id`).
    pub(crate) fn sent_before(
        tenant: &TenantId,
        conversation: &ConversationId,
        sender: &UserId,
        client_msg_id: &str,
    ) -> Document {
        doc! {
            "tenant": tenant.as_str(),
            "conversation": conversation.as_str(),
            "sender": sender.as_str(),
            "client_msg_id": client_msg_id,
        }
    }

    /// One message by id.
    pub(crate) fn by_id(tenant: &TenantId, conversation: &ConversationId, id: &str) -> Document {
        doc! {
            "tenant": tenant.as_str(),
            "conversation": conversation.as_str(),
            "id": id,
        }
    }

    /// A compare-and-set of a message: matches only while its body is still
    /// the one read (`old_doc`), so a concurrent change is never overwritten.
    pub(crate) fn replace_if_unchanged(
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &str,
        old_doc: &str,
        new_doc: &str,
        pinned: bool,
    ) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "conversation": conversation.as_str(),
                "id": id,
                "doc": old_doc,
            },
            doc! { "$set": { "doc": new_doc, "pinned": pinned } },
        )
    }

    /// A history page: the filter, the sort, and whether the result comes
    /// newest first (and must be reversed into ascending seq order).
    pub(crate) fn history(
        tenant: &TenantId,
        conversation: &ConversationId,
        page: HistoryPage,
    ) -> (Document, Document, bool) {
        let mut filter = doc! {
            "tenant": tenant.as_str(),
            "conversation": conversation.as_str(),
        };
        match page {
            HistoryPage::Latest => (filter, doc! { "seq": -1 }, true),
            HistoryPage::Before(seq) => {
                filter.insert("seq", doc! { "$lt": bound(seq.get()) });
                (filter, doc! { "seq": -1 }, true)
            }
            HistoryPage::After(seq) => {
                filter.insert("seq", doc! { "$gt": bound(seq.get()) });
                (filter, doc! { "seq": 1 }, false)
            }
        }
    }

    /// The pinned messages of a conversation, and their order.
    pub(crate) fn pinned(tenant: &TenantId, conversation: &ConversationId) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "conversation": conversation.as_str(),
                "pinned": true,
            },
            doc! { "seq": 1 },
        )
    }

    /// The head documents of `conversations`.
    pub(crate) fn heads(tenant: &TenantId, conversations: &[ConversationId]) -> Document {
        let ids: Vec<Document> = conversations.iter().map(|c| head_id(tenant, c)).collect();
        doc! { "_id": { "$in": ids } }
    }

    /// Messages above `after` sent by anyone but `user` (tombstones included).
    pub(crate) fn from_others(
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        after: u64,
    ) -> Document {
        doc! {
            "tenant": tenant.as_str(),
            "conversation": conversation.as_str(),
            "seq": { "$gt": bound(after) },
            "sender": { "$ne": user.as_str() },
        }
    }

    /// The `createIndexes` command of `messages`: seqs unique per
    /// conversation (and the order of every page), the idempotency key, ids.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": MESSAGES,
            "indexes": [
                {
                    "key": { "tenant": 1, "conversation": 1, "seq": 1 },
                    "name": "messages_seq",
                    "unique": true,
                },
                {
                    "key": { "tenant": 1, "conversation": 1, "sender": 1, "client_msg_id": 1 },
                    "name": "messages_client_msg_id",
                    "unique": true,
                },
                {
                    "key": { "tenant": 1, "conversation": 1, "id": 1 },
                    "name": "messages_id",
                    "unique": true,
                },
            ],
        }
    }
}

/// A message as stored: its key fields natively, the whole of it as JSON.
pub(super) fn message_document(m: &Message, json: &str) -> Result<Document> {
    Ok(mongodb::bson::doc! {
        "tenant": m.tenant.as_str(),
        "conversation": m.conversation.as_str(),
        "seq": super::codec::to_i64(m.seq.get(), "seq")?,
        "id": m.id.as_str(),
        "sender": m.sender.as_str(),
        "client_msg_id": m.client_msg_id.as_str(),
        "pinned": m.pinned.is_some(),
        "doc": json,
    })
}

/// The size a message document will have, about (its strings summed).
fn message_size(m: &Message, json: &str) -> usize {
    json.len()
        + m.tenant.as_str().len()
        + m.conversation.as_str().len()
        + m.id.as_str().len()
        + m.sender.as_str().len()
        + m.client_msg_id.as_str().len()
}

/// A stored message back; the native key fields must agree with the body.
fn decode(d: &Document, tenant: &TenantId, conversation: &ConversationId) -> Result<Message> {
    let m: Message = body(d, "message")?;
    if &m.tenant != tenant || &m.conversation != conversation {
        return Err(Error::internal(
            "mongo: a stored message's body names another conversation",
        ));
    }
    Ok(m)
}

fn live(m: &mut Message) -> Result<&mut Message> {
    if m.is_deleted() {
        return Err(Error::conflict(format!("message `{}` was deleted", m.id)));
    }
    Ok(m)
}

/// Compare-and-set rounds of one change before giving up (each lost round
/// means another change of the same message landed).
const MAX_CHANGE_ROUNDS: u32 = 64;

impl MongoStore {
    /// A read-modify-write of one message, as a compare-and-set on its body.
    async fn modify<T: Send>(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        mid: &MessageId,
        mut change: impl FnMut(&mut Message) -> Result<(bool, T)> + Send,
    ) -> Result<(Message, T)> {
        let coll = self.coll(MESSAGES);
        for round in 0..MAX_CHANGE_ROUNDS {
            let found = self
                .bounded(
                    "read message",
                    coll.find_one(commands::by_id(tenant, conversation, mid.as_str())),
                )
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::Message, mid))?;
            let old = get_str(&found, "doc", "message")?;
            let mut m = decode(&found, tenant, conversation)?;
            let (changed, value) = change(&mut m)?;
            if !changed {
                return Ok((m, value));
            }
            let new = to_json(&m, "message")?;
            check_size("message", message_size(&m, &new))?;
            let (filter, update) = commands::replace_if_unchanged(
                tenant,
                conversation,
                mid.as_str(),
                old,
                &new,
                m.pinned.is_some(),
            );
            let done = self
                .bounded("update message", coll.update_one(filter, update))
                .await?;
            if done.matched_count == 1 {
                return Ok((m, value));
            }
            tokio::time::sleep(super::txn::backoff(round)).await;
        }
        Err(Error::Unavailable {
            backend: error::BACKEND,
            context: format!("update message `{mid}`: too many concurrent changes"),
            temporary: true,
            source: None,
        })
    }

    /// The message first stored under this send's idempotency key, if any.
    async fn sent_before(&self, m: &Message) -> Result<Option<Message>> {
        let found = self
            .bounded(
                "look up client_msg_id",
                self.coll(MESSAGES).find_one(commands::sent_before(
                    &m.tenant,
                    &m.conversation,
                    &m.sender,
                    m.client_msg_id.as_str(),
                )),
            )
            .await?;
        found
            .map(|d| decode(&d, &m.tenant, &m.conversation))
            .transpose()
    }

    /// Every message `find` returns, in the order asked.
    async fn messages(
        &self,
        context: &str,
        tenant: &TenantId,
        conversation: &ConversationId,
        filter: Document,
        sort: Document,
        limit: Option<i64>,
    ) -> Result<Vec<Message>> {
        self.find_all(context, MESSAGES, filter, sort, limit)
            .await?
            .iter()
            .map(|d| decode(d, tenant, conversation))
            .collect()
    }
}

/// Rounds of an append whose transaction a unique index refused.
const MAX_APPEND_CONFLICTS: u32 = 3;

/// What an append's transaction stored.
struct Stored {
    message: Message,
    event: Arc<caas_core::events::Event>,
    cursor: u64,
}

#[async_trait]
impl MessageStore for MongoStore {
    async fn append(&self, message: NewMessage, announce: Announce) -> Result<Appended> {
        let created_at = ts_to_i64(message.created_at, "created_at")?;
        let draft = message.into_message(Seq::ZERO);
        // Sized before anything is sent; the seq the transaction sets adds at
        // most a few digits.
        let json = to_json(&draft, "message")?;
        check_size("message", message_size(&draft, &json))?;
        check_size(
            "event",
            event_size(&announce.clone().message_created(&draft))?,
        )?;
        let (messages, events, heads, log_heads) = (
            self.coll(MESSAGES),
            self.coll(EVENTS),
            self.coll(HEADS),
            self.coll(LOG_HEADS),
        );
        let mut conflicts = 0;
        loop {
            if let Some(existing) = self.sent_before(&draft).await? {
                return Ok(Appended::Existing(existing));
            }
            let outcome = self
                .transaction("append message", OnDuplicate::Report, |s| {
                    let (messages, events, heads, log_heads) = (
                        messages.clone(),
                        events.clone(),
                        heads.clone(),
                        log_heads.clone(),
                    );
                    let (mut m, announce) = (draft.clone(), announce.clone());
                    Box::pin(async move {
                        let (filter, update) =
                            commands::next_seq(&m.tenant, &m.conversation, created_at);
                        let head = heads
                            .find_one_and_update(filter, update)
                            .upsert(true)
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?
                            .ok_or_else(|| {
                                Error::internal("mongo: the head upsert returned nothing")
                            })?;
                        m.seq = Seq(to_u64(get_i64(&head, "last_seq", "head")?, "seq")?);
                        let (filter, update) = events::commands::next_cursor(&m.tenant);
                        let log_head = log_heads
                            .find_one_and_update(filter, update)
                            .upsert(true)
                            .return_document(ReturnDocument::After)
                            .session(&mut *s)
                            .await?
                            .ok_or_else(|| {
                                Error::internal("mongo: the log head upsert returned nothing")
                            })?;
                        let cursor = to_u64(get_i64(&log_head, "head", "log head")?, "cursor")?;
                        let json = to_json(&m, "message")?;
                        messages
                            .insert_one(message_document(&m, &json)?)
                            .session(&mut *s)
                            .await?;
                        let event = Arc::new(announce.message_created(&m));
                        events
                            .insert_one(events::event_document(&event, cursor)?)
                            .session(&mut *s)
                            .await?;
                        Ok::<_, Abort>(Stored {
                            message: m,
                            event,
                            cursor,
                        })
                    })
                })
                .await;
            match outcome {
                Ok(Stored {
                    message,
                    event,
                    cursor,
                }) => {
                    return Ok(Appended::Created {
                        message,
                        event,
                        cursor: Cursor(cursor),
                    });
                }
                // A unique index refused a write: a retry of this send that
                // committed after the lookup (found at the top of the loop),
                // or a racing first upsert of a head (run again).
                Err(Error::Conflict { .. }) if conflicts < MAX_APPEND_CONFLICTS => {
                    conflicts += 1;
                }
                Err(e) => return Err(e),
            }
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>> {
        let found = self
            .bounded(
                "get message",
                self.coll(MESSAGES)
                    .find_one(commands::by_id(tenant, conversation, id.as_str())),
            )
            .await?;
        found.map(|d| decode(&d, tenant, conversation)).transpose()
    }

    async fn edit(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message> {
        self.modify(tenant, conversation, id, |m| {
            let m = live(m)?;
            if m.body.is_none() {
                return Err(Error::conflict("only plain-text messages can be edited"));
            }
            m.apply_edit(body.to_owned(), at);
            Ok((true, ()))
        })
        .await
        .map(|(m, ())| m)
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Changed<Message>> {
        self.modify(tenant, conversation, id, |m| {
            if m.is_deleted() {
                return Ok((false, false));
            }
            m.apply_delete(by.clone(), at);
            Ok((true, true))
        })
        .await
        .map(|(value, changed)| Changed { value, changed })
    }

    async fn react(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        user: &UserId,
        emoji: &str,
        add: bool,
    ) -> Result<Changed<Message>> {
        self.modify(tenant, conversation, id, |m| {
            let changed = live(m)?.apply_reaction(user, emoji, add);
            Ok((changed, changed))
        })
        .await
        .map(|(value, changed)| Changed { value, changed })
    }

    async fn pin(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        pin: Option<(&UserId, Timestamp)>,
    ) -> Result<Changed<Message>> {
        let pin = pin.map(|(by, at)| Pin {
            pinned_by: by.clone(),
            pinned_at: at,
        });
        self.modify(tenant, conversation, id, |m| {
            let target = live(m)?;
            let changed = target.pinned.is_some() != pin.is_some();
            if changed {
                target.pinned = pin.clone();
            }
            Ok((changed, changed))
        })
        .await
        .map(|(value, changed)| Changed { value, changed })
    }

    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        page: HistoryPage,
        n: usize,
    ) -> Result<Vec<Message>> {
        // MongoDB reads a limit of 0 as "no limit".
        if n == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort, newest_first) = commands::history(tenant, conversation, page);
        let mut found = self
            .messages(
                "read history",
                tenant,
                conversation,
                filter,
                sort,
                page_limit(n),
            )
            .await?;
        if newest_first {
            found.reverse();
        }
        Ok(found)
    }

    async fn pinned(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Message>> {
        let (filter, sort) = commands::pinned(tenant, conversation);
        self.messages(
            "read pinned messages",
            tenant,
            conversation,
            filter,
            sort,
            None,
        )
        .await
    }

    async fn heads(
        &self,
        tenant: &TenantId,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationHead>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let found = self
            .find_all(
                "read heads",
                HEADS,
                commands::heads(tenant, conversations),
                Document::new(),
                None,
            )
            .await?;
        let mut by_conversation = HashMap::with_capacity(found.len());
        for d in &found {
            let key = d
                .get_document("_id")
                .map_err(|_| Error::internal("mongo: a head's _id is not a document"))?;
            let conversation: ConversationId = id(get_str(key, "c", "head")?)?;
            let last_activity = match d.get("last_activity") {
                None | Some(mongodb::bson::Bson::Null) => None,
                Some(_) => Some(Timestamp::from_nanos(to_u64(
                    get_i64(d, "last_activity", "head")?,
                    "last_activity",
                )?)),
            };
            by_conversation.insert(
                conversation,
                ConversationHead {
                    last_seq: Seq(to_u64(get_i64(d, "last_seq", "head")?, "seq")?),
                    last_activity,
                },
            );
        }
        Ok(conversations
            .iter()
            .map(|c| by_conversation.get(c).copied().unwrap_or_default())
            .collect())
    }

    async fn count_from_others(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        after: Seq,
    ) -> Result<u64> {
        self.bounded(
            "count unread",
            self.coll(MESSAGES).count_documents(commands::from_others(
                tenant,
                conversation,
                user,
                after.get(),
            )),
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::*;
    use mongodb::bson::doc;

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn c() -> ConversationId {
        ConversationId::parse("general").unwrap()
    }

    #[test]
    fn the_seq_comes_from_an_increment_of_the_conversation_head() {
        let (filter, update) = next_seq(&t(), &c(), 42);
        assert_eq!(filter, doc! { "_id": { "t": "acme", "c": "general" } });
        assert_eq!(
            update,
            doc! { "$inc": { "last_seq": 1_i64 }, "$set": { "last_activity": 42_i64 } }
        );
        // An int64 increment, so a head upserted by it holds an int64 seq.
        assert!(matches!(
            update.get_document("$inc").unwrap().get("last_seq"),
            Some(mongodb::bson::Bson::Int64(1))
        ));
    }

    #[test]
    fn the_head_id_has_one_field_order() {
        // Embedded-document equality compares field order too.
        let id = head_id(&t(), &c());
        let keys: Vec<&String> = id.keys().collect();
        assert_eq!(keys, ["t", "c"]);
        assert_eq!(
            heads(&t(), &[c(), ConversationId::parse("random").unwrap()]),
            doc! { "_id": { "$in": [
                { "t": "acme", "c": "general" },
                { "t": "acme", "c": "random" },
            ] } }
        );
    }

    #[test]
    fn the_idempotency_lookup_is_the_unique_index_key() {
        let alice = UserId::parse("alice").unwrap();
        let filter = sent_before(&t(), &c(), &alice, "k1");
        assert_eq!(
            filter,
            doc! { "tenant": "acme", "conversation": "general", "sender": "alice", "client_msg_id": "k1" }
        );
        let indexes = create_indexes();
        let specs = indexes.get_array("indexes").unwrap();
        let key = specs
            .iter()
            .filter_map(|s| s.as_document())
            .find(|s| {
                s.get_str("name")
                    .is_ok_and(|n| n == "messages_client_msg_id")
            })
            .unwrap();
        let fields: Vec<&String> = key.get_document("key").unwrap().keys().collect();
        let filter_fields: Vec<&String> = filter.keys().collect();
        assert_eq!(fields, filter_fields);
        assert!(key.get_bool("unique").unwrap());
    }

    #[test]
    fn unique_indexes_cover_seq_idempotency_and_id() {
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "messages",
                "indexes": [
                    { "key": { "tenant": 1, "conversation": 1, "seq": 1 }, "name": "messages_seq", "unique": true },
                    { "key": { "tenant": 1, "conversation": 1, "sender": 1, "client_msg_id": 1 }, "name": "messages_client_msg_id", "unique": true },
                    { "key": { "tenant": 1, "conversation": 1, "id": 1 }, "name": "messages_id", "unique": true },
                ],
            }
        );
    }

    #[test]
    fn history_pages_filter_and_sort_by_seq() {
        let base = doc! { "tenant": "acme", "conversation": "general" };
        assert_eq!(
            history(&t(), &c(), HistoryPage::Latest),
            (base.clone(), doc! { "seq": -1 }, true)
        );
        assert_eq!(
            history(&t(), &c(), HistoryPage::Before(Seq(10))),
            (
                doc! { "tenant": "acme", "conversation": "general", "seq": { "$lt": 10_i64 } },
                doc! { "seq": -1 },
                true
            )
        );
        assert_eq!(
            history(&t(), &c(), HistoryPage::After(Seq(10))),
            (
                doc! { "tenant": "acme", "conversation": "general", "seq": { "$gt": 10_i64 } },
                doc! { "seq": 1 },
                false
            )
        );
        // A bound past what can be stored still means "everything above/below".
        let (f, _, _) = history(&t(), &c(), HistoryPage::Before(Seq(u64::MAX)));
        assert_eq!(f.get_document("seq").unwrap(), &doc! { "$lt": i64::MAX });
    }

    #[test]
    fn changes_are_compare_and_set_on_the_body() {
        let (filter, update) = replace_if_unchanged(&t(), &c(), "m1", "{old}", "{new}", true);
        assert_eq!(
            filter,
            doc! { "tenant": "acme", "conversation": "general", "id": "m1", "doc": "{old}" }
        );
        assert_eq!(update, doc! { "$set": { "doc": "{new}", "pinned": true } });
    }

    #[test]
    fn pinned_and_unread_queries() {
        assert_eq!(
            pinned(&t(), &c()),
            (
                doc! { "tenant": "acme", "conversation": "general", "pinned": true },
                doc! { "seq": 1 }
            )
        );
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(
            from_others(&t(), &c(), &bob, 3),
            doc! {
                "tenant": "acme",
                "conversation": "general",
                "seq": { "$gt": 3_i64 },
                "sender": { "$ne": "bob" },
            }
        );
    }

    #[test]
    fn a_message_document_keeps_its_keys_native_and_round_trips() {
        let m = caas_core::model::Message {
            tenant: t(),
            conversation: c(),
            id: MessageId::parse("m1").unwrap(),
            seq: Seq(7),
            sender: UserId::parse("alice").unwrap(),
            client_msg_id: caas_core::ids::ClientMsgId::parse("k1").unwrap(),
            body: Some("hi".into()),
            ciphertext: None,
            attachments: vec![],
            reply_to: None,
            forwarded_from: None,
            mentions: vec![],
            reactions: Default::default(),
            edits: vec![],
            edited_at: None,
            deleted: None,
            pinned: None,
            created_at: Timestamp::from_secs(1),
        };
        let json = to_json(&m, "message").unwrap();
        let d = message_document(&m, &json).unwrap();
        assert_eq!(
            d,
            doc! {
                "tenant": "acme",
                "conversation": "general",
                "seq": 7_i64,
                "id": "m1",
                "sender": "alice",
                "client_msg_id": "k1",
                "pinned": false,
                "doc": json.clone(),
            }
        );
        assert_eq!(decode(&d, &t(), &c()).unwrap(), m);
        // A body that names another conversation is corruption, not data.
        let other = ConversationId::parse("other").unwrap();
        assert_eq!(decode(&d, &t(), &other).unwrap_err().code(), "internal");
    }
}
