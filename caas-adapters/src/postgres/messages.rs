use std::sync::Arc;

use async_trait::async_trait;
use caas_core::events::Announce;
use caas_core::ids::{ConversationId, Cursor, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Message, NewMessage, Pin};
use caas_core::ports::{Appended, Changed, ConversationHead, HistoryPage, MessageStore};
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use tokio_postgres::types::ToSql;

use super::codec::{
    MessageRow, bound, get, limit, message_columns, message_doc, to_u64, ts_from_i64, ts_to_i64,
};
use super::events::{AudienceSet, event_doc};
use super::pool::Lease;
use super::search;
use super::writer::{AppendRow, Outcome};
use super::{PostgresStore, stream_of};

fn decode_all(
    rows: &[tokio_postgres::Row],
    tenant: &TenantId,
    conv: &ConversationId,
) -> Result<Vec<Message>> {
    rows.iter()
        .map(|r| MessageRow::read(r, 0)?.decode(tenant, conv))
        .collect()
}

/// A stored message, locked for a read-modify-write in the caller's transaction.
async fn load(
    c: &mut Lease<'_>,
    tenant: &TenantId,
    conv: &ConversationId,
    id: &MessageId,
) -> Result<(i64, Message)> {
    let missing = || Error::not_found(EntityKind::Message, id);
    let stream = stream_of(c, tenant, conv).await?.ok_or_else(missing)?;
    let row = c
        .query_opt(
            concat!(
                "SELECT ",
                message_columns!(),
                " FROM messages m WHERE m.stream = $1 AND m.id = $2 FOR UPDATE"
            ),
            &[&stream, &id.as_str()],
            "read message",
        )
        .await?
        .ok_or_else(missing)?;
    Ok((stream, MessageRow::read(&row, 0)?.decode(tenant, conv)?))
}

/// Writes a changed message back; `content` when its searchable text may have
/// changed (edits, deletes), which keeps its search entry in step in the same
/// transaction.
async fn save(c: &mut Lease<'_>, stream: i64, m: &Message, content: bool) -> Result<()> {
    let doc = message_doc(m)?;
    let seq = super::codec::to_i64(m.seq.get(), "seq")?;
    let pinned = m.pinned.is_some();
    if !content {
        c.execute(
            "UPDATE messages SET doc = $3, pinned = $4 WHERE stream = $1 AND seq = $2",
            &[&stream, &seq, &doc, &pinned],
            "update message",
        )
        .await?;
        return Ok(());
    }
    let caller = search::sealed_live(m);
    let words = search::message_words(m).map(|w| format!("{} \u{e000}{stream}", w.text));
    c.execute(
        "UPDATE messages SET doc = $3, pinned = $4, caller_words = $5,
             words = CASE WHEN $6::text IS NULL THEN NULL
                          ELSE array_to_tsvector(string_to_array($6::text, ' ')) END
         WHERE stream = $1 AND seq = $2",
        &[&stream, &seq, &doc, &pinned, &caller, &words],
        "update message",
    )
    .await?;
    if !caller {
        // Words the caller gave for a sealed body no longer apply.
        c.execute(
            "DELETE FROM search_extra WHERE stream = $1 AND message_id = $2",
            &[&stream, &m.id.as_str()],
            "unindex message",
        )
        .await?;
    }
    Ok(())
}

fn live(m: &mut Message) -> Result<&mut Message> {
    if m.is_deleted() {
        return Err(Error::conflict(format!("message `{}` was deleted", m.id)));
    }
    Ok(m)
}

impl PostgresStore {
    /// A read-modify-write of one message in a transaction; the message is
    /// remembered as indexed when its words may have changed.
    async fn modify<T>(
        &self,
        tenant: &TenantId,
        conv: &ConversationId,
        id: &MessageId,
        content: bool,
        change: impl FnOnce(&mut Message) -> Result<(bool, T)> + Send,
    ) -> Result<(Message, T)> {
        let mut c = self.conn().await?;
        c.begin().await?;
        let outcome = async {
            let (stream, mut m) = load(&mut c, tenant, conv, id).await?;
            let (changed, value) = change(&mut m)?;
            if changed {
                save(&mut c, stream, &m, content).await?;
            }
            Ok((m, value))
        }
        .await;
        let done = c.finish(outcome).await?;
        if content && !search::sealed_live(&done.0) {
            self.shared().remember_fresh(tenant, conv, id);
        }
        Ok(done)
    }
}

#[async_trait]
impl MessageStore for PostgresStore {
    /// Queued for the group-commit writer (see `writer.rs`): the message, its
    /// head advance, its search lexemes and its event go in one statement of a
    /// batch, under the conversation's and the tenant's head rows.
    async fn append(&self, message: NewMessage, announce: Announce) -> Result<Appended> {
        let created_at = ts_to_i64(message.created_at, "created_at")?;
        let msg = message.into_message(Seq::ZERO);
        let doc = message_doc(&msg)?;
        let caller_words = search::sealed_live(&msg);
        let words = search::message_words(&msg).map(|w| w.text);
        // The stored event carries seq 0 in its message; the row's msg_seq puts
        // the real one back on read.
        let event = announce.clone().message_created(&msg);
        let set = AudienceSet::new(&event.audience);
        let known = self.known_audience(&msg.tenant, &set.digest);
        let row = AppendRow {
            tenant: msg.tenant.as_str().to_owned(),
            conversation: msg.conversation.as_str().to_owned(),
            id: msg.id.as_str().to_owned(),
            sender: msg.sender.as_str().to_owned(),
            client_msg_id: msg.client_msg_id.as_str().to_owned(),
            created_at,
            doc,
            words,
            caller_words,
            event: event_doc(&event)?,
            audience: known,
            users: if known.is_some() {
                String::new()
            } else {
                set.joined.clone()
            },
            digest: set.digest.clone(),
        };
        match self.inner.writer.append(row).await? {
            Outcome::Created {
                seq,
                cursor,
                audience,
            } => {
                self.remember_audience(&msg.tenant, set, audience);
                let mut message = msg;
                message.seq = Seq(to_u64(seq, "seq")?);
                if !caller_words {
                    self.shared().remember_fresh(
                        &message.tenant,
                        &message.conversation,
                        &message.id,
                    );
                }
                let event = Arc::new(announce.message_created(&message));
                Ok(Appended::Created {
                    message,
                    event,
                    cursor: Cursor(to_u64(cursor, "cursor")?),
                })
            }
            Outcome::Existing { seq, id, doc } => {
                let row = MessageRow {
                    seq,
                    id,
                    sender: msg.sender.as_str().to_owned(),
                    client_msg_id: msg.client_msg_id.as_str().to_owned(),
                    doc,
                };
                Ok(Appended::Existing(
                    row.decode(&msg.tenant, &msg.conversation)?,
                ))
            }
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM streams s JOIN messages m ON m.stream = s.id
                     WHERE s.tenant = $1 AND s.conversation = $2 AND m.id = $3"
                ),
                &[&tenant.as_str(), &conversation.as_str(), &id.as_str()],
                "get message",
            )
            .await?;
        row.map(|r| MessageRow::read(&r, 0)?.decode(tenant, conversation))
            .transpose()
    }

    async fn edit(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message> {
        let body = body.to_owned();
        self.modify(tenant, conversation, id, true, move |m| {
            let m = live(m)?;
            if m.body.is_none() {
                return Err(Error::conflict("only plain-text messages can be edited"));
            }
            m.apply_edit(body, at);
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
        let by = by.clone();
        self.modify(tenant, conversation, id, true, move |m| {
            if m.is_deleted() {
                return Ok((false, false));
            }
            m.apply_delete(by, at);
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
        let (user, emoji) = (user.clone(), emoji.to_owned());
        self.modify(tenant, conversation, id, false, move |m| {
            let changed = live(m)?.apply_reaction(&user, &emoji, add);
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
        self.modify(tenant, conversation, id, false, move |m| {
            let target = live(m)?;
            let changed = target.pinned.is_some() != pin.is_some();
            if changed {
                target.pinned = pin;
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
        macro_rules! page {
            ($rest:literal) => {
                concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM streams s JOIN messages m ON m.stream = s.id
                     WHERE s.tenant = $1 AND s.conversation = $2 ",
                    $rest
                )
            };
        }
        let (t, cv, n) = (tenant.as_str(), conversation.as_str(), limit(n));
        let mut c = self.conn().await?;
        let (sql, seq, reverse): (&'static str, Option<i64>, bool) = match page {
            HistoryPage::Latest => (page!("ORDER BY m.seq DESC LIMIT $3"), None, true),
            HistoryPage::Before(seq) => (
                page!("AND m.seq < $4 ORDER BY m.seq DESC LIMIT $3"),
                Some(bound(seq.get())),
                true,
            ),
            HistoryPage::After(seq) => (
                page!("AND m.seq > $4 ORDER BY m.seq ASC LIMIT $3"),
                Some(bound(seq.get())),
                false,
            ),
        };
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&t, &cv, &n];
        if let Some(seq) = &seq {
            params.push(seq);
        }
        let mut rows = c.query(sql, &params, "read history").await?;
        if reverse {
            rows.reverse();
        }
        decode_all(&rows, tenant, conversation)
    }

    async fn pinned(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Message>> {
        let rows = self
            .conn()
            .await?
            .query(
                concat!(
                    "SELECT ",
                    message_columns!(),
                    " FROM streams s JOIN messages m ON m.stream = s.id
                     WHERE s.tenant = $1 AND s.conversation = $2 AND m.pinned
                     ORDER BY m.seq"
                ),
                &[&tenant.as_str(), &conversation.as_str()],
                "read pinned messages",
            )
            .await?;
        decode_all(&rows, tenant, conversation)
    }

    async fn heads(
        &self,
        tenant: &TenantId,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationHead>> {
        if conversations.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = conversations.iter().map(|c| c.as_str()).collect();
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT x.i, s.last_seq, s.last_activity
                 FROM unnest($2::text[]) WITH ORDINALITY AS x(conversation, i)
                 JOIN streams s ON s.tenant = $1 AND s.conversation = x.conversation",
                &[&tenant.as_str(), &ids],
                "read heads",
            )
            .await?;
        let mut heads = vec![ConversationHead::default(); conversations.len()];
        for r in &rows {
            let i: i64 = get(r, 0)?;
            let slot = usize::try_from(i)
                .ok()
                .and_then(|i| i.checked_sub(1))
                .and_then(|i| heads.get_mut(i))
                .ok_or_else(|| Error::internal("postgres: heads returned an unknown row"))?;
            let at: Option<i64> = get(r, 2)?;
            *slot = ConversationHead {
                last_seq: Seq(to_u64(get(r, 1)?, "seq")?),
                last_activity: at.map(|a| ts_from_i64(a, "last_activity")).transpose()?,
            };
        }
        Ok(heads)
    }

    async fn count_from_others(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        after: Seq,
    ) -> Result<u64> {
        let row = self
            .conn()
            .await?
            .query_one(
                "SELECT count(*) FROM streams s JOIN messages m ON m.stream = s.id
                 WHERE s.tenant = $1 AND s.conversation = $2 AND m.seq > $3 AND m.sender <> $4",
                &[
                    &tenant.as_str(),
                    &conversation.as_str(),
                    &bound(after.get()),
                    &user.as_str(),
                ],
                "count unread",
            )
            .await?;
        to_u64(get(&row, 0)?, "count")
    }
}
