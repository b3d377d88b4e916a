//! Search on FTS5.
//!
//! **Where index updates happen: in the writer's transaction.** Every write of a
//! message, conversation or user updates its search entry in the same transaction
//! as the write itself, so the index can never disagree with the data after a
//! crash: an acknowledged message is searchable, a deleted one is not, with no
//! window in between, no replay at startup, and no second commit per send. (The
//! alternative, indexing from the event stream after the commit, would need a
//! durable outbox and a replay to survive crashes, and would add a second write,
//! and a second wait, to every send.) BENCHMARKS.md has what it costs the writer.
//!
//! The service also calls [`SearchIndex::index_message`] after each committed write
//! (it does so for every backend). Here that call checks, on a read connection,
//! whether the entry is already current, which it is for this store's own
//! messages, so it costs one indexed read and no write. It writes only for words
//! the store cannot index by itself: bodies sealed at rest (only the caller has the
//! plaintext) and messages that another store holds. When this store holds the
//! message, the stored row decides over the caller's copy, so a late, stale call
//! cannot roll the index back.
//!
//! **Scope inside the query.** The caller's conversations become stream ids (only
//! those of the caller's tenant), and the query joins each hit to its stream and
//! keeps only those in scope, before ordering and `LIMIT`: nothing outside `within`
//! is ever read into a result. For scopes of up to 64 conversations the scope is
//! also part of the FTS5 match itself (each entry carries a word naming its
//! stream), so the cost follows the caller's conversations rather than every
//! match in the database.

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Conversation, Message, User};
use caas_core::ports::{MessageHit, SearchIndex, tokenize};
use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{MessageRow, from_json, id, limit, message_columns, to_i64, to_json, to_u64};
use super::error::Ctx;
use super::writer::{FTS_CONVERSATIONS, FTS_MESSAGES, FTS_USERS, FtsTable, Tx};
use super::{SqliteStore, stream_of};
use crate::SEALED_BODY_PREFIX;

/// Words ready for the FTS table: lowercased tokens separated by single spaces, and
/// a digest to tell whether an entry is already current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Words {
    text: String,
    digest: i64,
}

impl Words {
    /// `None` when the text has no word at all (nothing to find it by).
    fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut text = String::new();
        for t in texts {
            for w in tokenize(t) {
                if !text.is_empty() {
                    text.push(' ');
                }
                text.push_str(&w);
            }
        }
        if text.is_empty() {
            return None;
        }
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&d.as_ref()[..8]);
        Some(Self {
            text,
            digest: i64::from_be_bytes(first),
        })
    }
}

/// What a message is found by: its plain body, unless deleted, encrypted
/// end-to-end or sealed at rest (those are not indexed from the stored form).
pub(super) fn message_words(m: &Message) -> Option<Words> {
    if m.is_deleted() {
        return None;
    }
    let body = m.body.as_deref()?;
    if is_sealed(body) {
        return None;
    }
    Words::of([body])
}

fn is_sealed(body: &str) -> bool {
    body.starts_with(SEALED_BODY_PREFIX)
}

pub(super) fn conversation_words(c: &Conversation) -> Option<Words> {
    Words::of(c.name.as_deref())
}

pub(super) fn user_words(u: &User) -> Option<Words> {
    Words::of([u.name.as_str(), u.id.as_str()])
}

/// A message's entry: its FTS rowid, and the digest of caller-provided words.
fn entry(c: &Connection, stream: i64, message: &MessageId) -> Result<Option<(i64, Option<i64>)>> {
    c.prepare_cached("SELECT id, digest FROM search_messages WHERE message_id = ?1 AND stream = ?2")
        .and_then(|mut s| {
            s.query_row(params![message.as_str(), stream], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .ctx("read search entry")
}

fn drop_entry(c: &Tx<'_, '_>, row: i64) -> Result<()> {
    c.prepare_cached("DELETE FROM search_messages WHERE id = ?1")
        .and_then(|mut s| s.execute([row]))
        .ctx("unindex message")?;
    delete_fts(c, FTS_MESSAGES, row);
    Ok(())
}

/// Adds an entry under a new (larger) rowid; `false` if the id already has one.
fn add_entry(
    c: &Tx<'_, '_>,
    stream: i64,
    seq: Seq,
    message: &MessageId,
    digest: Option<i64>,
    text: &str,
) -> Result<bool> {
    let seq = to_i64(seq.get(), "seq")?;
    let st = c.hot(
        "INSERT INTO search_messages (stream, seq, message_id, digest) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (message_id, stream) DO NOTHING",
    )?;
    let n = st
        .borrow_mut()
        .execute(params![stream, seq, message.as_str(), digest])
        .ctx("index message")?;
    if n == 0 {
        return Ok(false);
    }
    let words = format!("{text} {}", scope_token(stream));
    insert_fts(c, FTS_MESSAGES, c.last_insert_rowid(), &words);
    Ok(true)
}

/// A word no text can contain (the core's tokenizer never keeps U+E000, a
/// private-use character), naming an entry's stream: small scopes become part of
/// the full-text query, so a search reads only the doclists of the caller's
/// conversations, not every match in every tenant.
fn scope_token(stream: i64) -> String {
    format!("\u{e000}{stream}")
}

/// Scopes up to this many conversations are matched inside FTS5; larger ones only
/// by the join. Each scope term costs a lookup in every segment and saves reading
/// every match of a common word in every tenant: a common word gets much faster
/// in a small scope while a rare one gets somewhat slower (BENCHMARKS.md, FTS).
/// Past a few dozen conversations the lookups cost more than they save.
const SCOPE_IN_MATCH_MAX: usize = 64;

/// Puts one of this store's own messages in step with its stored form, inside the
/// write that changed it. `fresh` for a new message, which has no entry yet.
pub(super) fn put_own_message(
    c: &Tx<'_, '_>,
    stream: i64,
    seq: Seq,
    message: &MessageId,
    words: Option<&Words>,
    fresh: bool,
) -> Result<()> {
    if !fresh && let Some((row, _)) = entry(c, stream, message)? {
        drop_entry(c, row)?;
    }
    let Some(w) = words else {
        return Ok(());
    };
    if !add_entry(c, stream, seq, message, None, &w.text)? {
        // The caller indexed this id before the store had it: the stored form wins.
        if let Some((row, _)) = entry(c, stream, message)? {
            drop_entry(c, row)?;
        }
        add_entry(c, stream, seq, message, None, &w.text)?;
    }
    Ok(())
}

/// Sets (or, for `None`, removes) an entry whose words come from the caller.
fn put_caller_message(
    c: &Tx<'_, '_>,
    stream: i64,
    seq: Seq,
    message: &MessageId,
    words: Option<&Words>,
) -> Result<()> {
    let existing = entry(c, stream, message)?;
    if let (Some(w), Some((_, Some(d)))) = (words, existing)
        && d == w.digest
    {
        return Ok(());
    }
    if let Some((row, _)) = existing {
        drop_entry(c, row)?;
    }
    if let Some(w) = words {
        add_entry(c, stream, seq, message, Some(w.digest), &w.text)?;
    }
    Ok(())
}

pub(super) fn put_conversation(c: &Tx<'_, '_>, stream: i64, words: Option<&Words>) -> Result<()> {
    let existing: Option<i64> = c
        .prepare_cached("SELECT digest FROM search_conversations WHERE stream = ?1")
        .and_then(|mut s| s.query_row([stream], |r| r.get(0)).optional())
        .ctx("read search entry")?;
    match (words, existing) {
        (Some(w), Some(d)) if d == w.digest => Ok(()),
        (Some(w), Some(_)) => {
            c.prepare_cached("UPDATE search_conversations SET digest = ?2 WHERE stream = ?1")
                .and_then(|mut s| s.execute(params![stream, w.digest]))
                .ctx("index conversation")?;
            replace_fts(c, FTS_CONVERSATIONS, stream, &w.text);
            Ok(())
        }
        (Some(w), None) => {
            c.prepare_cached("INSERT INTO search_conversations (stream, digest) VALUES (?1, ?2)")
                .and_then(|mut s| s.execute(params![stream, w.digest]))
                .ctx("index conversation")?;
            insert_fts(c, FTS_CONVERSATIONS, stream, &w.text);
            Ok(())
        }
        (None, Some(_)) => {
            c.prepare_cached("DELETE FROM search_conversations WHERE stream = ?1")
                .and_then(|mut s| s.execute([stream]))
                .ctx("unindex conversation")?;
            delete_fts(c, FTS_CONVERSATIONS, stream);
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

pub(super) fn put_user(
    c: &Tx<'_, '_>,
    tenant: &TenantId,
    user: &UserId,
    words: Option<&Words>,
) -> Result<()> {
    let existing: Option<(i64, i64)> = c
        .prepare_cached("SELECT id, digest FROM search_users WHERE tenant = ?1 AND user = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), user.as_str()], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })
            .optional()
        })
        .ctx("read search entry")?;
    match (words, existing) {
        (Some(w), Some((_, d))) if d == w.digest => Ok(()),
        (Some(w), Some((row, _))) => {
            c.prepare_cached("UPDATE search_users SET digest = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![row, w.digest]))
                .ctx("index user")?;
            replace_fts(c, FTS_USERS, row, &w.text);
            Ok(())
        }
        (Some(w), None) => {
            c.prepare_cached("INSERT INTO search_users (tenant, user, digest) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![tenant.as_str(), user.as_str(), w.digest]))
                .ctx("index user")?;
            insert_fts(c, FTS_USERS, c.last_insert_rowid(), &w.text);
            Ok(())
        }
        (None, Some((row, _))) => {
            c.prepare_cached("DELETE FROM search_users WHERE id = ?1")
                .and_then(|mut s| s.execute([row]))
                .ctx("unindex user")?;
            delete_fts(c, FTS_USERS, row);
            Ok(())
        }
        (None, None) => Ok(()),
    }
}

fn insert_fts(tx: &Tx<'_, '_>, table: &'static FtsTable, row: i64, words: &str) {
    tx.fts_insert(table, row, words.to_owned());
}

fn delete_fts(tx: &Tx<'_, '_>, table: &'static FtsTable, row: i64) {
    tx.fts_delete(table, row);
}

fn replace_fts(tx: &Tx<'_, '_>, table: &'static FtsTable, row: i64, words: &str) {
    delete_fts(tx, table, row);
    insert_fts(tx, table, row, words);
}

/// The FTS5 query for the core's matching rule: every query word is a prefix of
/// some word of the document. `None` for a query without words (matches nothing).
fn match_expr(query: &str) -> Option<String> {
    let terms: Vec<String> = tokenize(query)
        .map(|t| format!("\"{}\"*", t.replace('"', "\"\"")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" AND "))
}

/// The stream ids of the conversations in `within` that exist in this tenant.
fn scope(c: &Connection, tenant: &TenantId, within: &[ConversationId]) -> Result<Vec<i64>> {
    let ids: Vec<&str> = within.iter().map(|c| c.as_str()).collect();
    let json = to_json(&ids, "search scope")?;
    let mut stmt = c
        .prepare_cached(
            "SELECT id FROM streams
             WHERE tenant = ?1 AND conversation IN (SELECT value FROM json_each(?2))",
        )
        .ctx("resolve search scope")?;
    stmt.query_map(params![tenant.as_str(), json], |r| r.get(0))
        .ctx("resolve search scope")?
        .collect::<rusqlite::Result<Vec<i64>>>()
        .ctx("resolve search scope")
}

fn current_digest(c: &Connection, sql: &str, p: &[&dyn rusqlite::ToSql]) -> Result<Option<i64>> {
    c.prepare_cached(sql)
        .and_then(|mut s| s.query_row(p, |r| r.get(0)).optional())
        .ctx("read search entry")
}

/// A message as this store holds it, if it does.
fn stored_message(
    c: &Connection,
    stream: i64,
    id: &MessageId,
    tenant: &TenantId,
    conv: &ConversationId,
) -> Result<Option<Message>> {
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
        .ctx("read message")?;
    row.map(|r| r.decode(tenant, conv)).transpose()
}

/// Whether the stored body is sealed at rest (and the message not deleted): then
/// only the caller can provide its words.
pub(super) fn sealed_live(m: &Message) -> bool {
    !m.is_deleted() && m.body.as_deref().is_some_and(is_sealed)
}

/// Whether `index_message(m)` has anything to write, as seen from a read
/// connection (`want`: the digest of the words `m` would be indexed under).
fn needs_index_write(c: &Connection, m: &Message, want: Option<i64>) -> Result<bool> {
    let Some(stream) = stream_of(c, &m.tenant, &m.conversation)? else {
        return Ok(want.is_some());
    };
    if let Some(s) = stored_message(c, stream, &m.id, &m.tenant, &m.conversation)? {
        // This store's own messages are indexed by the writes that store them.
        if !sealed_live(&s) {
            return Ok(false);
        }
    }
    let have = entry(c, stream, &m.id)?.and_then(|(_, digest)| digest);
    Ok(have != want)
}

#[async_trait]
impl SearchIndex for SqliteStore {
    async fn index_message(&self, m: &Message) -> Result<()> {
        let words = message_words(m);
        let want = words.as_ref().map(|w| w.digest);
        let check = m.clone();
        if !self
            .read_short(move |c| needs_index_write(c, &check, want))
            .await?
        {
            return Ok(());
        }
        let given = m.clone();
        self.write(move |c| {
            let stream = c.stream(&given.tenant, &given.conversation)?;
            match stored_message(c, stream, &given.id, &given.tenant, &given.conversation)? {
                // The store's copy decides, unless it is sealed and only the caller
                // has the plaintext.
                Some(s) if !sealed_live(&s) => {
                    put_own_message(c, stream, s.seq, &s.id, message_words(&s).as_ref(), false)
                }
                Some(s) => put_caller_message(c, stream, s.seq, &s.id, words.as_ref()),
                None => put_caller_message(c, stream, given.seq, &given.id, words.as_ref()),
            }
        })
        .await
    }

    async fn remove_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<()> {
        let (tenant, conv, mid) = (tenant.clone(), conversation.clone(), id.clone());
        self.write(move |c| {
            let Some(stream) = stream_of(c, &tenant, &conv)? else {
                return Ok(());
            };
            match entry(c, stream, &mid)? {
                Some((row, _)) => drop_entry(c, row),
                None => Ok(()),
            }
        })
        .await
    }

    async fn index_conversation(&self, conversation: &Conversation) -> Result<()> {
        let words = conversation_words(conversation);
        let want = words.as_ref().map(|w| w.digest);
        let (tenant, conv) = (conversation.tenant.clone(), conversation.id.clone());
        let have = self
            .read(move |c| {
                current_digest(
                    c,
                    "SELECT sc.digest FROM streams s JOIN search_conversations sc ON sc.stream = s.id
                     WHERE s.tenant = ?1 AND s.conversation = ?2",
                    &[&tenant.as_str(), &conv.as_str()],
                )
            })
            .await?;
        if have == want {
            return Ok(());
        }
        let given = conversation.clone();
        self.write(move |c| {
            let stored: Option<String> = c
                .prepare_cached("SELECT doc FROM conversations WHERE tenant = ?1 AND id = ?2")
                .and_then(|mut s| {
                    s.query_row(params![given.tenant.as_str(), given.id.as_str()], |r| {
                        r.get(0)
                    })
                    .optional()
                })
                .ctx("read conversation")?;
            let words = match stored {
                Some(doc) => conversation_words(&from_json::<Conversation>(&doc, "conversation")?),
                None => words,
            };
            let stream = c.stream(&given.tenant, &given.id)?;
            put_conversation(c, stream, words.as_ref())
        })
        .await
    }

    async fn index_user(&self, user: &User) -> Result<()> {
        let words = user_words(user);
        let want = words.as_ref().map(|w| w.digest);
        let (tenant, uid) = (user.tenant.clone(), user.id.clone());
        let have = self
            .read(move |c| {
                current_digest(
                    c,
                    "SELECT digest FROM search_users WHERE tenant = ?1 AND user = ?2",
                    &[&tenant.as_str(), &uid.as_str()],
                )
            })
            .await?;
        if have == want {
            return Ok(());
        }
        let given = user.clone();
        self.write(move |c| {
            let words = match super::users::get_user(c, &given.tenant, &given.id)? {
                Some(stored) => user_words(&stored),
                None => words,
            };
            put_user(c, &given.tenant, &given.id, words.as_ref())
        })
        .await
    }

    async fn search_messages(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<(Seq, &ConversationId)>,
        n: usize,
    ) -> Result<Vec<MessageHit>> {
        let Some(expr) = match_expr(query) else {
            return Ok(Vec::new());
        };
        if within.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        let (tenant, within) = (tenant.clone(), within.to_vec());
        // The next page starts after the last hit in (seq descending,
        // conversation ascending) order; i64::MAX and "" when there is none.
        let (after_seq, after_conv) = match after {
            Some((seq, conv)) => (to_i64(seq.get(), "seq")?, conv.as_str().to_owned()),
            None => (i64::MAX, String::new()),
        };
        let first_page = after.is_none();
        self.read(move |c| {
            let streams = scope(c, &tenant, &within)?;
            if streams.is_empty() {
                return Ok(Vec::new());
            }
            let expr = if streams.len() <= SCOPE_IN_MATCH_MAX {
                let any: Vec<String> = streams
                    .iter()
                    .map(|s| format!("\"{}\"", scope_token(*s)))
                    .collect();
                format!("({expr}) AND ({})", any.join(" OR "))
            } else {
                expr
            };
            // CROSS JOIN fixes the order: the full-text match drives, each hit is
            // checked against the scope (again, for scopes already in the match),
            // and only hits in scope are joined to their conversation id and
            // ranked.
            let mut stmt = c
                .prepare_cached(
                    "SELECT sm.seq, s.conversation, sm.message_id
                     FROM search_messages_fts
                     CROSS JOIN search_messages sm ON sm.id = search_messages_fts.rowid
                     CROSS JOIN streams s ON s.id = sm.stream
                     WHERE search_messages_fts MATCH ?1
                       AND sm.stream IN (SELECT value FROM json_each(?2))
                       AND (?4 OR sm.seq < ?5 OR (sm.seq = ?5 AND s.conversation > ?6))
                     ORDER BY sm.seq DESC, s.conversation ASC
                     LIMIT ?3",
                )
                .ctx("search messages")?;
            let rows = stmt
                .query_map(
                    params![
                        expr,
                        to_json(&streams, "search scope")?,
                        limit(n),
                        first_page,
                        after_seq,
                        after_conv
                    ],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, String>(2)?,
                        ))
                    },
                )
                .ctx("search messages")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("search messages")?;
            rows.into_iter()
                .map(|(seq, conv, mid)| {
                    Ok(MessageHit {
                        conversation: id(&conv)?,
                        message_id: id(&mid)?,
                        seq: Seq(to_u64(seq, "seq")?),
                    })
                })
                .collect()
        })
        .await
    }

    async fn search_conversations(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<&ConversationId>,
        n: usize,
    ) -> Result<Vec<ConversationId>> {
        let Some(expr) = match_expr(query) else {
            return Ok(Vec::new());
        };
        if within.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        let (tenant, within) = (tenant.clone(), within.to_vec());
        let after = after.map_or_else(String::new, |a| a.as_str().to_owned());
        self.read(move |c| {
            let streams = scope(c, &tenant, &within)?;
            if streams.is_empty() {
                return Ok(Vec::new());
            }
            let mut stmt = c
                .prepare_cached(
                    "SELECT s.conversation
                     FROM search_conversations_fts
                     CROSS JOIN streams s ON s.id = search_conversations_fts.rowid
                     WHERE search_conversations_fts MATCH ?1
                       AND s.id IN (SELECT value FROM json_each(?2))
                       AND s.conversation > ?4
                     ORDER BY s.conversation
                     LIMIT ?3",
                )
                .ctx("search conversations")?;
            let rows = stmt
                .query_map(
                    params![expr, to_json(&streams, "search scope")?, limit(n), after],
                    |r| r.get::<_, String>(0),
                )
                .ctx("search conversations")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("search conversations")?;
            rows.iter().map(|s| id(s)).collect()
        })
        .await
    }

    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        after: Option<&UserId>,
        n: usize,
    ) -> Result<Vec<UserId>> {
        let Some(expr) = match_expr(query) else {
            return Ok(Vec::new());
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        let tenant = tenant.clone();
        let after = after.map_or_else(String::new, |a| a.as_str().to_owned());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT su.user
                     FROM search_users_fts
                     CROSS JOIN search_users su ON su.id = search_users_fts.rowid
                     WHERE search_users_fts MATCH ?1 AND su.tenant = ?2 AND su.user > ?4
                     ORDER BY su.user
                     LIMIT ?3",
                )
                .ctx("search users")?;
            let rows = stmt
                .query_map(params![expr, tenant.as_str(), limit(n), after], |r| {
                    r.get::<_, String>(0)
                })
                .ctx("search users")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("search users")?;
            rows.iter().map(|s| id(s)).collect()
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_core_tokens() {
        let w = Words::of(["Lunch at NOON? Café-Ünïcode"]).unwrap();
        assert_eq!(w.text, "lunch at noon café ünïcode");
        assert_eq!(Words::of(["!!! ..."]), None);
        assert_eq!(
            Words::of(["a b"]).unwrap().digest,
            Words::of(["A, B"]).unwrap().digest
        );
    }

    #[test]
    fn queries_are_prefix_conjunctions() {
        assert_eq!(
            match_expr("Lunch noon").as_deref(),
            Some("\"lunch\"* AND \"noon\"*")
        );
        assert_eq!(match_expr(" -- "), None);
    }

    #[test]
    fn sealed_bodies_are_not_indexed_from_the_stored_form() {
        assert!(is_sealed(&format!("{SEALED_BODY_PREFIX}abc")));
        assert!(!is_sealed("plain"));
    }
}
