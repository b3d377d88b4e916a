use std::sync::Arc;

use async_trait::async_trait;
use caas_core::events::Announce;
use caas_core::ids::{ClientMsgId, ConversationId, Cursor, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Message, NewMessage, Pin};
use caas_core::ports::{Appended, Changed, ConversationHead, HistoryPage, MessageStore};
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{
    MessageRow, bound, limit, message_columns, message_doc, to_i64, to_u64, ts_from_i64, ts_to_i64,
};
use super::error::Ctx;
use super::events::{PreparedEvent, next_cursor, put_event};
use super::search::{self, Words};
use super::writer::Tx;
use super::{SqliteStore, stream_of};

/// Keeps a message's search entry in step with a write of its content, inside
/// that write's transaction.
fn sync_index(
    c: &Tx<'_, '_>,
    stream: i64,
    m: &Message,
    fresh: bool,
    words: Option<&Words>,
) -> Result<()> {
    // A sealed body cannot be indexed from the stored form: the caller's
    // `index_message` brings the plaintext.
    if search::sealed_live(m) {
        return Ok(());
    }
    search::put_own_message(c, stream, m.seq, &m.id, words, fresh)
}

fn by_client_msg_id(
    c: &Tx<'_, '_>,
    stream: i64,
    sender: &UserId,
    key: &ClientMsgId,
) -> Result<Option<MessageRow>> {
    let st = c.hot(concat!(
        "SELECT ",
        message_columns!(),
        " FROM messages m WHERE m.client_msg_id = ?1 AND m.stream = ?2 AND m.sender = ?3"
    ))?;
    let mut st = st.borrow_mut();
    st.query_row(
        params![key.as_str(), stream, sender.as_str()],
        MessageRow::read,
    )
    .optional()
    .ctx("look up client_msg_id")
}

/// A stored message for a read-modify-write in the writer.
fn load(
    c: &Connection,
    tenant: &TenantId,
    conv: &ConversationId,
    id: &MessageId,
) -> Result<(i64, Message)> {
    let missing = || Error::not_found(EntityKind::Message, id);
    let stream = stream_of(c, tenant, conv)?.ok_or_else(missing)?;
    let row = c
        .prepare_cached(concat!(
            "SELECT ",
            message_columns!(),
            " FROM messages m WHERE m.stream = ?1 AND m.id = ?2"
        ))
        .and_then(|mut s| {
            s.query_row(params![stream, id.as_str()], MessageRow::read)
                .optional()
        })
        .ctx("read message")?
        .ok_or_else(missing)?;
    Ok((stream, row.decode(tenant, conv)?))
}

/// Writes a changed message back; `content` when its searchable text may have
/// changed (edits, deletes).
fn save(c: &Tx<'_, '_>, stream: i64, m: &Message, content: bool) -> Result<()> {
    let doc = message_doc(m)?;
    let seq = to_i64(m.seq.get(), "seq")?;
    c.prepare_cached("UPDATE messages SET doc = ?3, pinned = ?4 WHERE stream = ?1 AND seq = ?2")
        .and_then(|mut s| s.execute(params![stream, seq, doc, m.pinned.is_some()]))
        .ctx("update message")?;
    if content {
        sync_index(c, stream, m, false, search::message_words(m).as_ref())?;
    }
    Ok(())
}

fn live(m: &mut Message) -> Result<&mut Message> {
    if m.is_deleted() {
        return Err(Error::conflict(format!("message `{}` was deleted", m.id)));
    }
    Ok(m)
}

fn decode_all(
    rows: Vec<MessageRow>,
    tenant: &TenantId,
    conv: &ConversationId,
) -> Result<Vec<Message>> {
    rows.iter().map(|r| r.decode(tenant, conv)).collect()
}

fn query_rows(c: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Vec<MessageRow>> {
    let mut stmt = c.prepare_cached(sql).ctx("read messages")?;
    stmt.query_map(p, MessageRow::read)
        .ctx("read messages")?
        .collect::<rusqlite::Result<Vec<_>>>()
        .ctx("read messages")
}

/// A message made ready for the writer on the caller's thread, so the writer
/// only runs SQL.
pub(super) struct Prepared {
    msg: Message,
    created_at: i64,
    doc: String,
    words: Option<Words>,
}

impl Prepared {
    pub(super) fn new(message: NewMessage) -> Result<Self> {
        let created_at = ts_to_i64(message.created_at, "created_at")?;
        let msg = message.into_message(Seq::ZERO);
        let doc = message_doc(&msg)?;
        let words = search::message_words(&msg);
        Ok(Self {
            msg,
            created_at,
            doc,
            words,
        })
    }
}

/// What [`insert`] did.
pub(super) enum Inserted<T> {
    /// Stored, with what `announce` made of it.
    Created(Message, T),
    /// A retry: the original, and nothing changed.
    Existing(Message),
}

/// The writer's half of an append. `announce` runs once the message has its
/// seq and before the message row is written (only a conversation's first
/// message has created its stream row by then); its value comes back with a
/// created message.
///
/// No savepoint (see `writer.rs`): the changes are single-row statements that
/// SQLite makes atomic, the insert first, since it alone can be refused (a taken
/// message id) or be a no-op (a retry).
pub(super) fn insert<T>(
    c: &Tx<'_, '_>,
    p: Prepared,
    announce: impl FnOnce(&Message) -> Result<T>,
) -> Result<Inserted<T>> {
    let Prepared {
        mut msg,
        created_at,
        doc,
        words,
    } = p;
    let (stream, seq) = c.next_seq(&msg.tenant, &msg.conversation)?;
    msg.seq = Seq(to_u64(seq, "seq")?);
    let announced = announce(&msg)?;
    // The seq comes from the stream's head inside this transaction. The insert is
    // also the idempotency check: the unique (client_msg_id, stream, sender) index
    // turns a retry into a no-op, and the primary key (stream, seq) makes a second
    // writer (or a bug) fail rather than store a duplicate seq.
    let inserted = c
        .hot(
            "INSERT INTO messages (stream, seq, id, sender, client_msg_id, doc)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (client_msg_id, stream, sender) DO NOTHING",
        )?
        .borrow_mut()
        .execute(params![
            stream,
            seq,
            msg.id.as_str(),
            msg.sender.as_str(),
            msg.client_msg_id.as_str(),
            doc
        ])
        .ctx("append message")?;
    if inserted == 0 {
        let original = by_client_msg_id(c, stream, &msg.sender, &msg.client_msg_id)?
            .ok_or_else(|| Error::internal("sqlite: a retried message vanished"))?;
        return Ok(Inserted::Existing(
            original.decode(&msg.tenant, &msg.conversation)?,
        ));
    }
    c.hot("UPDATE streams SET last_seq = ?2, last_activity = ?3 WHERE id = ?1")?
        .borrow_mut()
        .execute(params![stream, seq, created_at])
        .ctx("advance conversation head")?;
    sync_index(c, stream, &msg, true, words.as_ref())?;
    c.advanced(&msg.tenant, &msg.conversation, stream, seq);
    Ok(Inserted::Created(msg, announced))
}

#[async_trait]
impl MessageStore for SqliteStore {
    /// One writer command stores the message and logs its event: one commit
    /// (one fsync) per send, and no crash window between the two.
    async fn append(&self, message: NewMessage, announce: Announce) -> Result<Appended> {
        let prepared = Prepared::new(message)?;
        self.write_prechecked(move |c| {
            // The event needs the message's seq, so it is built here, before the
            // message row is written. A failure here fails this command alone,
            // unless the conversation's first message just created its stream
            // row: then the writer fails the whole batch rather than commit half
            // a command (see `writer.rs`).
            let inserted = insert(c, prepared, |m| {
                let event = Arc::new(announce.message_created(m));
                let prepared = PreparedEvent::new(&event)?;
                let cursor = next_cursor(c, event.tenant.as_str())?;
                Ok((event, prepared, cursor, Cursor(to_u64(cursor, "cursor")?)))
            })?;
            match inserted {
                Inserted::Existing(m) => Ok(Appended::Existing(m)),
                Inserted::Created(message, (event, prepared, at, cursor)) => {
                    put_event(c, event.tenant.as_str(), at, &prepared)?;
                    Ok(Appended::Created {
                        message,
                        event,
                        cursor,
                    })
                }
            }
        })
        .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>> {
        let (tenant, conv, id) = (tenant.clone(), conversation.clone(), id.clone());
        self.read(move |c| {
            let row = c
                .prepare_cached(concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM streams s JOIN messages m ON m.stream = s.id
                     WHERE s.tenant = ?1 AND s.conversation = ?2 AND m.id = ?3"
                ))
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), conv.as_str(), id.as_str()],
                        MessageRow::read,
                    )
                    .optional()
                })
                .ctx("get message")?;
            row.map(|r| r.decode(&tenant, &conv)).transpose()
        })
        .await
    }

    async fn edit(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message> {
        let (tenant, conv, id, body) = (
            tenant.clone(),
            conversation.clone(),
            id.clone(),
            body.to_owned(),
        );
        self.write(move |c| {
            let (stream, mut m) = load(c, &tenant, &conv, &id)?;
            let m_ref = live(&mut m)?;
            if m_ref.body.is_none() {
                return Err(Error::conflict("only plain-text messages can be edited"));
            }
            m_ref.apply_edit(body, at);
            save(c, stream, &m, true)?;
            Ok(m)
        })
        .await
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Changed<Message>> {
        let (tenant, conv, id, by) = (tenant.clone(), conversation.clone(), id.clone(), by.clone());
        self.write(move |c| {
            let (stream, mut m) = load(c, &tenant, &conv, &id)?;
            if m.is_deleted() {
                return Ok(Changed {
                    value: m,
                    changed: false,
                });
            }
            m.apply_delete(by, at);
            save(c, stream, &m, true)?;
            Ok(Changed {
                value: m,
                changed: true,
            })
        })
        .await
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
        let (tenant, conv, id, user, emoji) = (
            tenant.clone(),
            conversation.clone(),
            id.clone(),
            user.clone(),
            emoji.to_owned(),
        );
        self.write(move |c| {
            let (stream, mut m) = load(c, &tenant, &conv, &id)?;
            let changed = live(&mut m)?.apply_reaction(&user, &emoji, add);
            if changed {
                save(c, stream, &m, false)?;
            }
            Ok(Changed { value: m, changed })
        })
        .await
    }

    async fn pin(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        pin: Option<(&UserId, Timestamp)>,
    ) -> Result<Changed<Message>> {
        let (tenant, conv, id) = (tenant.clone(), conversation.clone(), id.clone());
        let pin = pin.map(|(by, at)| Pin {
            pinned_by: by.clone(),
            pinned_at: at,
        });
        self.write(move |c| {
            let (stream, mut m) = load(c, &tenant, &conv, &id)?;
            let target = live(&mut m)?;
            let changed = target.pinned.is_some() != pin.is_some();
            if changed {
                target.pinned = pin;
                save(c, stream, &m, false)?;
            }
            Ok(Changed { value: m, changed })
        })
        .await
    }

    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        page: HistoryPage,
        n: usize,
    ) -> Result<Vec<Message>> {
        let (tenant, conv) = (tenant.clone(), conversation.clone());
        self.read(move |c| {
            macro_rules! page {
                ($rest:literal) => {
                    concat!(
                        "SELECT ",
                        message_columns!(),
                        " FROM streams s JOIN messages m ON m.stream = s.id
                         WHERE s.tenant = ?1 AND s.conversation = ?2 ",
                        $rest
                    )
                };
            }
            let (t, cv, n) = (tenant.as_str(), conv.as_str(), limit(n));
            let rows = match page {
                HistoryPage::Latest => {
                    let mut rows =
                        query_rows(c, page!("ORDER BY m.seq DESC LIMIT ?3"), &[&t, &cv, &n])?;
                    rows.reverse();
                    rows
                }
                HistoryPage::Before(seq) => {
                    let seq = bound(seq.get());
                    let sql = page!("AND m.seq < ?3 ORDER BY m.seq DESC LIMIT ?4");
                    let mut rows = query_rows(c, sql, &[&t, &cv, &seq, &n])?;
                    rows.reverse();
                    rows
                }
                HistoryPage::After(seq) => {
                    let seq = bound(seq.get());
                    let sql = page!("AND m.seq > ?3 ORDER BY m.seq ASC LIMIT ?4");
                    query_rows(c, sql, &[&t, &cv, &seq, &n])?
                }
            };
            decode_all(rows, &tenant, &conv)
        })
        .await
    }

    async fn pinned(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Message>> {
        let (tenant, conv) = (tenant.clone(), conversation.clone());
        self.read(move |c| {
            let rows = query_rows(
                c,
                concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM streams s JOIN messages m ON m.stream = s.id
                     WHERE s.tenant = ?1 AND s.conversation = ?2 AND m.pinned = 1
                     ORDER BY m.seq"
                ),
                &[&tenant.as_str(), &conv.as_str()],
            )?;
            decode_all(rows, &tenant, &conv)
        })
        .await
    }

    async fn heads(
        &self,
        tenant: &TenantId,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationHead>> {
        let (tenant, convs) = (tenant.clone(), conversations.to_vec());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached("SELECT last_seq, last_activity FROM streams WHERE tenant = ?1 AND conversation = ?2")
                .ctx("read heads")?;
            convs
                .iter()
                .map(|conv| {
                    let row: Option<(i64, Option<i64>)> = stmt
                        .query_row(params![tenant.as_str(), conv.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                        .ctx("read heads")?;
                    let Some((seq, at)) = row else {
                        return Ok(ConversationHead::default());
                    };
                    Ok(ConversationHead {
                        last_seq: Seq(to_u64(seq, "seq")?),
                        last_activity: at.map(|a| ts_from_i64(a, "last_activity")).transpose()?,
                    })
                })
                .collect()
        })
        .await
    }

    async fn count_from_others(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        after: Seq,
    ) -> Result<u64> {
        let (tenant, conv, user) = (tenant.clone(), conversation.clone(), user.clone());
        let after = bound(after.get());
        self.read(move |c| {
            let n: i64 = c
                .prepare_cached(
                    "SELECT count(*) FROM streams s JOIN messages m ON m.stream = s.id
                     WHERE s.tenant = ?1 AND s.conversation = ?2 AND m.seq > ?3 AND m.sender <> ?4",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), conv.as_str(), after, user.as_str()],
                        |r| r.get(0),
                    )
                })
                .ctx("count unread")?;
            to_u64(n, "count")
        })
        .await
    }
}
