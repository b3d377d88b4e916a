//! Search on `tsvector` and GIN.
//!
//! **Matching follows the core, not PostgreSQL's text search configuration.**
//! Documents and queries are split by [`caas_core::ports::tokenize`] in Rust;
//! a document's lexemes are stored verbatim with `array_to_tsvector` (no parser,
//! no dictionary, no stemming, no positions), and a query becomes
//! `'word1':* & 'word2':*`: every query word a prefix of some word of the
//! document, which is the port's rule. The query is built from the core's
//! tokens, which are letters and digits only, so no user text can ever be
//! query syntax, and it is passed as a parameter. (`websearch_to_tsquery` was
//! the other candidate: it also never fails on user text, but it cannot match
//! prefixes and it splits and normalizes words by the server's parser and
//! locale rather than by the core's rule, so it would fail the search
//! contract.)
//!
//! **Where entries live.** A message this store holds carries its lexemes on
//! its own row (`messages.words`), written by the same statement that stores,
//! edits or deletes it, so the index never disagrees with the data and a send
//! costs no second write. Words only the caller can give (messages another
//! store holds, bodies sealed at rest) go to `search_extra`; a search reads
//! both. The service's `index_message` after each send is then a check, and
//! for a message this node just wrote not even that (`Shared::fresh`).
//!
//! **Scope inside the query.** The caller's conversations become stream ids of
//! the caller's tenant, and only entries of those streams are returned, before
//! ordering and `LIMIT`. For scopes of up to 64 conversations the scope is also
//! part of the GIN match (each message's lexemes include one naming its
//! stream), so the index returns only the caller's conversations' matches
//! rather than every match in every tenant.

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Conversation, Message, User};
use caas_core::ports::{MessageHit, SearchIndex, tokenize};

use super::codec::{MessageRow, get, id, limit, message_columns, to_i64, to_u64};
use super::pool::Lease;
use super::{PostgresStore, stream, stream_of};
use caas_storage::SEALED_BODY_PREFIX;

/// The longest lexeme PostgreSQL stores is 2047 bytes: longer words are cut (at
/// a character boundary), in documents and queries alike.
const MAX_LEXEME: usize = 2046;

/// Scopes up to this many conversations are matched inside the GIN index;
/// larger ones only by the stream filter.
const SCOPE_IN_MATCH_MAX: usize = 64;

fn cut(word: &str) -> &str {
    if word.len() <= MAX_LEXEME {
        return word;
    }
    let mut end = MAX_LEXEME;
    while !word.is_char_boundary(end) {
        end -= 1;
    }
    &word[..end]
}

/// A document's lexemes: the core's tokens, each once, separated by single
/// spaces (tokens never contain one), and a digest to tell whether an entry is
/// already current.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Words {
    pub(super) text: String,
    pub(super) digest: i64,
}

impl Words {
    /// `None` when the text has no word at all (nothing to find it by).
    fn of<'a>(texts: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let mut words: Vec<String> = texts
            .into_iter()
            .flat_map(tokenize)
            .map(|w| cut(&w).to_owned())
            .collect();
        words.sort_unstable();
        words.dedup();
        if words.is_empty() {
            return None;
        }
        let text = words.join(" ");
        let d = ring::digest::digest(&ring::digest::SHA256, text.as_bytes());
        let mut first = [0u8; 8];
        first.copy_from_slice(&d.as_ref()[..8]);
        Some(Self {
            text,
            digest: i64::from_be_bytes(first),
        })
    }
}

fn is_sealed(body: &str) -> bool {
    body.starts_with(SEALED_BODY_PREFIX)
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

/// Whether the stored body is sealed at rest (and the message not deleted): then
/// only the caller can provide its words.
pub(super) fn sealed_live(m: &Message) -> bool {
    !m.is_deleted() && m.body.as_deref().is_some_and(is_sealed)
}

pub(super) fn conversation_words(c: &Conversation) -> Option<Words> {
    Words::of(c.name.as_deref())
}

pub(super) fn user_words(u: &User) -> Option<Words> {
    Words::of([u.name.as_str(), u.id.as_str()])
}

/// The tsquery text for the core's rule, or `None` for a query without words
/// (it matches nothing). Lexemes are letters and digits only, so quoting them
/// cannot go wrong.
fn query(text: &str) -> Option<String> {
    let terms: Vec<String> = tokenize(text)
        .map(|t| format!("'{}':*", cut(&t).replace('\'', "''")))
        .collect();
    (!terms.is_empty()).then(|| terms.join(" & "))
}

/// The lexeme naming a stream: U+E000 (a private-use character, never part of
/// a core token) and the id; `caas_append` writes the same.
fn scope_lexeme(stream: i64) -> String {
    format!("'\u{e000}{stream}'")
}

/// Sets (or, for `None`, removes) a caller-given entry.
async fn put_caller(
    c: &mut Lease<'_>,
    stream: i64,
    seq: i64,
    message: &MessageId,
    words: Option<&Words>,
) -> Result<()> {
    match words {
        None => {
            c.execute(
                "DELETE FROM search_extra WHERE stream = $1 AND message_id = $2",
                &[&stream, &message.as_str()],
                "unindex message",
            )
            .await?;
        }
        Some(w) => {
            let lexemes = format!("{} \u{e000}{stream}", w.text);
            c.execute(
                "INSERT INTO search_extra (stream, message_id, seq, digest, words)
                 VALUES ($1, $2, $3, $4, array_to_tsvector(string_to_array($5::text, ' ')))
                 ON CONFLICT (stream, message_id) DO UPDATE
                 SET seq = excluded.seq, digest = excluded.digest, words = excluded.words
                 WHERE search_extra.digest <> excluded.digest OR search_extra.seq <> excluded.seq",
                &[&stream, &message.as_str(), &seq, &w.digest, &lexemes],
                "index message",
            )
            .await?;
        }
    }
    Ok(())
}

/// The stream ids of the conversations in `within` that exist in this tenant.
async fn scope(
    c: &mut Lease<'_>,
    tenant: &TenantId,
    within: &[ConversationId],
) -> Result<Vec<i64>> {
    let ids: Vec<&str> = within.iter().map(|c| c.as_str()).collect();
    let rows = c
        .query(
            "SELECT id FROM streams WHERE tenant = $1 AND conversation = ANY($2::text[])",
            &[&tenant.as_str(), &ids],
            "resolve search scope",
        )
        .await?;
    rows.iter().map(|r| get(r, 0)).collect()
}

#[async_trait]
impl SearchIndex for PostgresStore {
    async fn index_message(&self, m: &Message) -> Result<()> {
        if self.shared().take_fresh(&m.tenant, &m.conversation, &m.id) {
            return Ok(());
        }
        let words = message_words(m);
        let mut c = self.conn().await?;
        c.begin().await?;
        let outcome = async {
            let stream = stream(&mut c, &m.tenant, &m.conversation).await?;
            let stored = c
                .query_opt(
                    concat!(
                        "SELECT m.caller_words, m.words IS NOT NULL, ",
                        message_columns!(),
                        " FROM messages m WHERE m.stream = $1 AND m.id = $2 FOR UPDATE"
                    ),
                    &[&stream, &m.id.as_str()],
                    "read message",
                )
                .await?;
            let Some(row) = stored else {
                let seq = to_i64(m.seq.get(), "seq")?;
                return put_caller(&mut c, stream, seq, &m.id, words.as_ref()).await;
            };
            let (caller, indexed): (bool, bool) = (get(&row, 0)?, get(&row, 1)?);
            let own = MessageRow::read(&row, 2)?;
            if caller {
                return put_caller(&mut c, stream, own.seq, &m.id, words.as_ref()).await;
            }
            // The store's copy decides; its writes keep its entry current, unless
            // `remove_message` took it out.
            if !indexed {
                let stored = own.decode(&m.tenant, &m.conversation)?;
                if let Some(w) = message_words(&stored) {
                    let lexemes = format!("{} \u{e000}{stream}", w.text);
                    c.execute(
                        "UPDATE messages SET words = array_to_tsvector(string_to_array($3::text, ' '))
                         WHERE stream = $1 AND seq = $2",
                        &[&stream, &own.seq, &lexemes],
                        "index message",
                    )
                    .await?;
                }
            }
            Ok(())
        }
        .await;
        c.finish(outcome).await
    }

    async fn remove_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<()> {
        self.shared().take_fresh(tenant, conversation, id);
        let mut c = self.conn().await?;
        let Some(stream) = stream_of(&mut c, tenant, conversation).await? else {
            return Ok(());
        };
        c.query(
            "WITH own AS (
                 UPDATE messages SET words = NULL
                 WHERE stream = $1 AND id = $2 AND words IS NOT NULL
             ), given AS (
                 DELETE FROM search_extra WHERE stream = $1 AND message_id = $2
             )
             SELECT 1",
            &[&stream, &id.as_str()],
            "unindex message",
        )
        .await?;
        Ok(())
    }

    async fn index_conversation(&self, conversation: &Conversation) -> Result<()> {
        let words = conversation_words(conversation).map(|w| w.text);
        // A conversation this store holds was indexed by the write that stored it.
        self.conn()
            .await?
            .execute(
                "INSERT INTO search_conversations (tenant, conversation, words)
                 SELECT $1, $2, CASE WHEN $3::text IS NULL THEN NULL
                                     ELSE array_to_tsvector(string_to_array($3::text, ' ')) END
                 WHERE NOT EXISTS (SELECT 1 FROM conversations WHERE tenant = $1 AND id = $2)
                 ON CONFLICT (tenant, conversation) DO UPDATE SET words = excluded.words",
                &[
                    &conversation.tenant.as_str(),
                    &conversation.id.as_str(),
                    &words,
                ],
                "index conversation",
            )
            .await?;
        Ok(())
    }

    async fn index_user(&self, user: &User) -> Result<()> {
        let words = user_words(user).map(|w| w.text);
        self.conn()
            .await?
            .execute(
                "INSERT INTO search_users (tenant, uid, words)
                 SELECT $1, $2, CASE WHEN $3::text IS NULL THEN NULL
                                     ELSE array_to_tsvector(string_to_array($3::text, ' ')) END
                 WHERE NOT EXISTS (SELECT 1 FROM users WHERE tenant = $1 AND id = $2)
                 ON CONFLICT (tenant, uid) DO UPDATE SET words = excluded.words",
                &[&user.tenant.as_str(), &user.id.as_str(), &words],
                "index user",
            )
            .await?;
        Ok(())
    }

    async fn search_messages(
        &self,
        tenant: &TenantId,
        text: &str,
        within: &[ConversationId],
        after: Option<(Seq, &ConversationId)>,
        n: usize,
    ) -> Result<Vec<MessageHit>> {
        let Some(q) = query(text) else {
            return Ok(Vec::new());
        };
        if within.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        // The next page starts after the last hit in (seq descending,
        // conversation ascending) order.
        let (after_seq, after_conv) = match after {
            Some((seq, conv)) => (to_i64(seq.get(), "seq")?, conv.as_str().to_owned()),
            None => (i64::MAX, String::new()),
        };
        let first_page = after.is_none();
        let mut c = self.conn().await?;
        let streams = scope(&mut c, tenant, within).await?;
        if streams.is_empty() {
            return Ok(Vec::new());
        }
        let q = if streams.len() <= SCOPE_IN_MATCH_MAX {
            let any: Vec<String> = streams.iter().map(|s| scope_lexeme(*s)).collect();
            format!("({q}) & ({})", any.join(" | "))
        } else {
            q
        };
        let rows = c
            .query(
                "SELECT seq, conversation, message_id FROM (
                     SELECT m.seq, s.conversation, m.id AS message_id
                     FROM messages m JOIN streams s ON s.id = m.stream
                     WHERE m.words @@ $1::text::tsquery AND m.stream = ANY($2::bigint[])
                       AND ($4 OR m.seq < $5 OR (m.seq = $5 AND s.conversation > $6))
                     UNION ALL
                     SELECT e.seq, s.conversation, e.message_id
                     FROM search_extra e JOIN streams s ON s.id = e.stream
                     WHERE e.words @@ $1::text::tsquery AND e.stream = ANY($2::bigint[])
                       AND ($4 OR e.seq < $5 OR (e.seq = $5 AND s.conversation > $6))
                 ) hits
                 ORDER BY seq DESC, conversation ASC
                 LIMIT $3",
                &[
                    &q,
                    &streams,
                    &limit(n),
                    &first_page,
                    &after_seq,
                    &after_conv,
                ],
                "search messages",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(MessageHit {
                    seq: Seq(to_u64(get(r, 0)?, "seq")?),
                    conversation: id(&get::<String>(r, 1)?)?,
                    message_id: id(&get::<String>(r, 2)?)?,
                })
            })
            .collect()
    }

    async fn search_conversations(
        &self,
        tenant: &TenantId,
        text: &str,
        within: &[ConversationId],
        after: Option<&ConversationId>,
        n: usize,
    ) -> Result<Vec<ConversationId>> {
        let Some(q) = query(text) else {
            return Ok(Vec::new());
        };
        if within.is_empty() || n == 0 {
            return Ok(Vec::new());
        }
        let ids: Vec<&str> = within.iter().map(|c| c.as_str()).collect();
        let after = after.map_or("", |a| a.as_str());
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT conversation FROM search_conversations
                 WHERE tenant = $1 AND conversation = ANY($2::text[]) AND conversation > $3
                   AND words @@ $4::text::tsquery
                 ORDER BY conversation LIMIT $5",
                &[&tenant.as_str(), &ids, &after, &q, &limit(n)],
                "search conversations",
            )
            .await?;
        rows.iter().map(|r| id(&get::<String>(r, 0)?)).collect()
    }

    async fn search_users(
        &self,
        tenant: &TenantId,
        text: &str,
        after: Option<&UserId>,
        n: usize,
    ) -> Result<Vec<UserId>> {
        let Some(q) = query(text) else {
            return Ok(Vec::new());
        };
        if n == 0 {
            return Ok(Vec::new());
        }
        let after = after.map_or("", |a| a.as_str());
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT uid FROM search_users
                 WHERE tenant = $1 AND uid > $2 AND words @@ $3::text::tsquery
                 ORDER BY uid LIMIT $4",
                &[&tenant.as_str(), &after, &q, &limit(n)],
                "search users",
            )
            .await?;
        rows.iter().map(|r| id(&get::<String>(r, 0)?)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_the_core_tokens_once_each() {
        let w = Words::of(["Lunch at NOON? Café-Ünïcode lunch"]).unwrap();
        assert_eq!(w.text, "at café lunch noon ünïcode");
        assert_eq!(Words::of(["!!! ..."]), None);
        assert_eq!(
            Words::of(["a b"]).unwrap().digest,
            Words::of(["B, a"]).unwrap().digest
        );
    }

    #[test]
    fn queries_are_prefix_conjunctions_of_plain_lexemes() {
        assert_eq!(query("Lunch noon").as_deref(), Some("'lunch':* & 'noon':*"));
        assert_eq!(query(" -- "), None);
        // Query syntax in user text is only separators to the tokenizer.
        assert_eq!(
            query("a'b & !c | d:* (e) \\f").as_deref(),
            Some("'a':* & 'b':* & 'c':* & 'd':* & 'e':* & 'f':*")
        );
    }

    #[test]
    fn long_words_are_cut_at_a_character_boundary() {
        let long = "é".repeat(2000);
        let w = Words::of([long.as_str()]).unwrap();
        assert!(w.text.len() <= MAX_LEXEME);
        assert!(w.text.chars().all(|c| c == 'é'));
    }
}
