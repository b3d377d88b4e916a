//! Search: the `SearchIndex` port on three collections, so every node of a
//! cluster on one database searches one index.
//!
//! **Matching follows the core, not MongoDB's text search.** A `$text` index
//! splits and stems words by its own language rules and cannot match prefixes,
//! so it would fail the port's contract. Instead each entry stores `w`: the
//! distinct tokens of its text as [`caas_core::ports::tokenize`] makes them
//! (lowercase, letters and digits), in a multikey-indexed array. A query is
//! tokenized the same way, and each query word becomes the condition
//! `{ w: { $regex: "^word" } }`: some word of the entry starts with it. All
//! of them are ANDed, with the tenant and the caller's scope (`$in`), so a
//! match outside the scope is never returned. A case-sensitive regex anchored
//! at the start is a prefix search the server answers from the index on
//! `(tenant, w)` (its bounds are the range of strings with that prefix); the
//! case needs no regex option because both sides are lowercase already.
//! Query words are regex-escaped (`commands::escape_regex`), though the
//! core's tokens are letters and digits (and the marks lowercasing may add)
//! and never hold a metacharacter. A query with no word matches nothing, as
//! in the other backends.
//!
//! **What is indexed.** A message by its plain body — a deleted message, one
//! encrypted end to end (no body) and one whose body is sealed at rest (the
//! stored form, not words) are removed from the index instead, as in the
//! `postgres` module; a conversation by its name; a user by name and id. An
//! entry with no word at all is removed, since nothing could find it.
//!
//! **Entries** have a deterministic `_id` (`{t, c, m}`, `{t, c}`, `{t, u}`,
//! built in one place, as the heads' ids are), and indexing is a
//! `replaceOne` with upsert on it, so indexing the same id again replaces the
//! entry and two nodes indexing it at once leave one (MongoDB retries an
//! upsert that lost a race on `_id` itself; were one refused anyway, the
//! service counts an index failure). Beside `_id`, each entry keeps its
//! keys as native fields for filtering and sorting.
//!
//! **Order and pages.** Message hits come highest seq first, then by
//! conversation id (BSON compares strings bytewise, as Rust compares ids);
//! the next page is a keyset condition on that pair. Conversations and users
//! come by id, the next page after the given id.
//!
//! Not verified against a live server here, like the rest of this module: the
//! documents each operation sends are checked by the unit tests below.

use std::collections::BTreeSet;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Conversation, Message, User};
use caas_core::ports::{MessageHit, SearchIndex, tokenize};
use caas_storage::SEALED_BODY_PREFIX;
use mongodb::bson::Document;

use super::MongoStore;
use super::codec::{check_size, get_i64, get_str, id, page_limit, to_i64, to_u64};
use super::names::{SEARCH_CONVERSATIONS, SEARCH_MESSAGES, SEARCH_USERS};

/// The command, filter and replacement documents of search, as pure
/// functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{ConversationId, MessageId, TenantId, UserId};
    use mongodb::bson::{Bson, Document, doc};

    use super::super::names::{SEARCH_CONVERSATIONS, SEARCH_MESSAGES, SEARCH_USERS};

    /// `s` with every ASCII punctuation character escaped by a backslash, so
    /// a regex reads it literally. In PCRE (MongoDB's regex engine) a
    /// backslash before a character that is not an ASCII letter or digit
    /// always means that character itself, so escaping all ASCII punctuation
    /// covers every metacharacter (`\ ^ $ . | ? * + ( ) [ ] { }`, and `#`
    /// and `-` in the modes and classes that give them meaning). Letters,
    /// digits and every non-ASCII character are left as they are: a backslash
    /// before a letter would make it a class such as `\d`. The server still
    /// computes index bounds from a prefix written this way.
    pub(crate) fn escape_regex(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for ch in s.chars() {
            if ch.is_ascii_punctuation() {
                out.push('\\');
            }
            out.push(ch);
        }
        out
    }

    /// The `$and` conditions of a query: for each word, some word of the
    /// entry starts with it. `None` for no words: a query without words
    /// matches nothing (an empty `$and` is refused by the server, and no
    /// condition at all would match everything).
    pub(crate) fn matching(words: &[String]) -> Option<Bson> {
        if words.is_empty() {
            return None;
        }
        let conditions: Vec<Document> = words
            .iter()
            .map(|w| doc! { "w": { "$regex": format!("^{}", escape_regex(w)) } })
            .collect();
        Some(Bson::from(conditions))
    }

    /// The `_id` of a message's entry (one field order, always built here).
    pub(crate) fn message_entry_id(
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Document {
        doc! { "t": tenant.as_str(), "c": conversation.as_str(), "m": message.as_str() }
    }

    /// A message's entry, the replacement of a `replaceOne` (upsert) whose
    /// filter is `{ _id: message_entry_id(…) }`.
    pub(crate) fn message_entry(
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
        seq: i64,
        words: &[String],
    ) -> (Document, Document) {
        let key = message_entry_id(tenant, conversation, message);
        (
            doc! { "_id": key.clone() },
            doc! {
                "_id": key,
                "tenant": tenant.as_str(),
                "conversation": conversation.as_str(),
                "id": message.as_str(),
                "seq": seq,
                "w": words,
            },
        )
    }

    /// The filter removing a message's entry.
    pub(crate) fn remove_message(
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
    ) -> Document {
        doc! { "_id": message_entry_id(tenant, conversation, message) }
    }

    /// The `_id` of a conversation's entry.
    pub(crate) fn conversation_entry_id(
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Document {
        doc! { "t": tenant.as_str(), "c": conversation.as_str() }
    }

    /// A conversation's entry: the filter and the replacement of its upsert.
    pub(crate) fn conversation_entry(
        tenant: &TenantId,
        conversation: &ConversationId,
        words: &[String],
    ) -> (Document, Document) {
        let key = conversation_entry_id(tenant, conversation);
        (
            doc! { "_id": key.clone() },
            doc! {
                "_id": key,
                "tenant": tenant.as_str(),
                "conversation": conversation.as_str(),
                "w": words,
            },
        )
    }

    /// The `_id` of a user's entry.
    pub(crate) fn user_entry_id(tenant: &TenantId, user: &UserId) -> Document {
        doc! { "t": tenant.as_str(), "u": user.as_str() }
    }

    /// A user's entry: the filter and the replacement of its upsert.
    pub(crate) fn user_entry(
        tenant: &TenantId,
        user: &UserId,
        words: &[String],
    ) -> (Document, Document) {
        let key = user_entry_id(tenant, user);
        (
            doc! { "_id": key.clone() },
            doc! {
                "_id": key,
                "tenant": tenant.as_str(),
                "id": user.as_str(),
                "w": words,
            },
        )
    }

    /// A `find` of search: filter, sort and projection.
    pub(crate) type Find = (Document, Document, Document);

    /// Messages of `within` matching every word, highest seq first, then by
    /// conversation id; with `after` (a seq and conversation), only those
    /// after it in that order. `None` when nothing can match (no words, or
    /// an empty scope).
    pub(crate) fn search_messages(
        tenant: &TenantId,
        words: &[String],
        within: &[ConversationId],
        after: Option<(u64, &ConversationId)>,
    ) -> Option<Find> {
        if within.is_empty() {
            return None;
        }
        let ids: Vec<&str> = within.iter().map(|c| c.as_str()).collect();
        let mut filter = doc! {
            "tenant": tenant.as_str(),
            "conversation": { "$in": ids },
            "$and": matching(words)?,
        };
        if let Some((seq, conversation)) = after {
            // No stored seq passes i64::MAX, so an `after` above it leaves
            // every entry after it: no condition.
            if let Ok(seq) = i64::try_from(seq) {
                filter.insert(
                    "$or",
                    vec![
                        doc! { "seq": { "$lt": seq } },
                        doc! { "seq": seq, "conversation": { "$gt": conversation.as_str() } },
                    ],
                );
            }
        }
        Some((
            filter,
            doc! { "seq": -1, "conversation": 1 },
            doc! { "_id": 0, "conversation": 1, "id": 1, "seq": 1 },
        ))
    }

    /// Conversations of `within` whose name matches every word, by id; with
    /// `after`, only ids above it. `None` when nothing can match.
    pub(crate) fn search_conversations(
        tenant: &TenantId,
        words: &[String],
        within: &[ConversationId],
        after: Option<&ConversationId>,
    ) -> Option<Find> {
        if within.is_empty() {
            return None;
        }
        let ids: Vec<&str> = within.iter().map(|c| c.as_str()).collect();
        let mut scope = doc! { "$in": ids };
        if let Some(after) = after {
            scope.insert("$gt", after.as_str());
        }
        Some((
            doc! {
                "tenant": tenant.as_str(),
                "conversation": scope,
                "$and": matching(words)?,
            },
            doc! { "conversation": 1 },
            doc! { "_id": 0, "conversation": 1 },
        ))
    }

    /// Users of the tenant whose name or id matches every word, by id; with
    /// `after`, only ids above it. `None` when nothing can match.
    pub(crate) fn search_users(
        tenant: &TenantId,
        words: &[String],
        after: Option<&UserId>,
    ) -> Option<Find> {
        let mut filter = doc! { "tenant": tenant.as_str() };
        if let Some(after) = after {
            filter.insert("id", doc! { "$gt": after.as_str() });
        }
        filter.insert("$and", matching(words)?);
        Some((filter, doc! { "id": 1 }, doc! { "_id": 0, "id": 1 }))
    }

    /// The `createIndexes` commands of the three collections: each has its
    /// words (multikey, for prefix matches) and its order (for walking a
    /// scope or the tenant in result order, when that is cheaper than
    /// matching first). The entries' own keys are their `_id`s.
    pub(crate) fn create_indexes() -> [Document; 3] {
        [
            doc! {
                "createIndexes": SEARCH_MESSAGES,
                "indexes": [
                    { "key": { "tenant": 1, "w": 1 }, "name": "search_messages_words" },
                    {
                        "key": { "tenant": 1, "conversation": 1, "seq": -1 },
                        "name": "search_messages_order",
                    },
                ],
            },
            doc! {
                "createIndexes": SEARCH_CONVERSATIONS,
                "indexes": [
                    { "key": { "tenant": 1, "w": 1 }, "name": "search_conversations_words" },
                    {
                        "key": { "tenant": 1, "conversation": 1 },
                        "name": "search_conversations_order",
                    },
                ],
            },
            doc! {
                "createIndexes": SEARCH_USERS,
                "indexes": [
                    { "key": { "tenant": 1, "w": 1 }, "name": "search_users_words" },
                    { "key": { "tenant": 1, "id": 1 }, "name": "search_users_order" },
                ],
            },
        ]
    }
}

/// The distinct tokens of `texts`, sorted: what an entry is found by.
fn words<'a>(texts: impl IntoIterator<Item = &'a str>) -> Vec<String> {
    let set: BTreeSet<String> = texts.into_iter().flat_map(tokenize).collect();
    set.into_iter().collect()
}

/// The distinct tokens of a query, in the query's order.
fn query_words(text: &str) -> Vec<String> {
    let mut seen = BTreeSet::new();
    tokenize(text).filter(|w| seen.insert(w.clone())).collect()
}

/// What a message is found by: its plain body's words; none when it is
/// deleted, encrypted end to end or sealed at rest.
fn message_words(m: &Message) -> Vec<String> {
    match m.body.as_deref() {
        Some(body) if !m.is_deleted() && !body.starts_with(SEALED_BODY_PREFIX) => words([body]),
        _ => Vec::new(),
    }
}

/// What a conversation is found by: the words of its name.
fn conversation_words(c: &Conversation) -> Vec<String> {
    words(c.name.as_deref())
}

/// What a user is found by: the words of its name and of its id.
fn user_words(u: &User) -> Vec<String> {
    words([u.name.as_str(), u.id.as_str()])
}

/// `PayloadTooLarge` when an entry would not fit in one document. Its size
/// is estimated from its keys (stored twice: in `_id` and as fields) and its
/// words with BSON's framing of each array element (type, index as a key,
/// length, terminator). Bodies the service accepts are far below this; the
/// check keeps an oversized one from being sent.
fn check_entry(keys: &[&str], words: &[String]) -> Result<()> {
    let keys: usize = keys.iter().map(|k| 2 * k.len()).sum();
    let words: usize = words.iter().map(|w| w.len() + 16).sum();
    check_size("search entry", keys + words)
}

/// What indexing one entity sends: the upsert of its entry, or the removal
/// of its entry when it has no words.
#[derive(Debug, Clone, PartialEq)]
enum Write {
    /// `replaceOne` (upsert): the filter on `_id`, and the entry.
    Upsert(Document, Document),
    /// `deleteOne`: the filter on `_id`.
    Remove(Document),
}

/// The write indexing a message.
fn message_write(m: &Message) -> Result<Write> {
    let words = message_words(m);
    if words.is_empty() {
        return Ok(Write::Remove(commands::remove_message(
            &m.tenant,
            &m.conversation,
            &m.id,
        )));
    }
    check_entry(
        &[m.tenant.as_str(), m.conversation.as_str(), m.id.as_str()],
        &words,
    )?;
    let seq = to_i64(m.seq.get(), "seq")?;
    let (filter, entry) = commands::message_entry(&m.tenant, &m.conversation, &m.id, seq, &words);
    Ok(Write::Upsert(filter, entry))
}

/// The write indexing a conversation.
fn conversation_write(c: &Conversation) -> Result<Write> {
    let words = conversation_words(c);
    let (filter, entry) = commands::conversation_entry(&c.tenant, &c.id, &words);
    if words.is_empty() {
        return Ok(Write::Remove(filter));
    }
    check_entry(&[c.tenant.as_str(), c.id.as_str()], &words)?;
    Ok(Write::Upsert(filter, entry))
}

/// The write indexing a user.
fn user_write(u: &User) -> Result<Write> {
    let words = user_words(u);
    let (filter, entry) = commands::user_entry(&u.tenant, &u.id, &words);
    if words.is_empty() {
        return Ok(Write::Remove(filter));
    }
    check_entry(&[u.tenant.as_str(), u.id.as_str()], &words)?;
    Ok(Write::Upsert(filter, entry))
}

/// A search to run: the `find` and its page size (`None`: no limit). `None`
/// when nothing can match: a page of 0 (which MongoDB would read as "no
/// limit"), a query without words, an empty scope.
type Search = Option<(commands::Find, Option<i64>)>;

/// The search of [`SearchIndex::search_messages`].
fn message_search(
    tenant: &TenantId,
    query: &str,
    within: &[ConversationId],
    after: Option<(Seq, &ConversationId)>,
    limit: usize,
) -> Search {
    if limit == 0 {
        return None;
    }
    let after = after.map(|(seq, c)| (seq.get(), c));
    let find = commands::search_messages(tenant, &query_words(query), within, after)?;
    Some((find, page_limit(limit)))
}

/// The search of [`SearchIndex::search_conversations`].
fn conversation_search(
    tenant: &TenantId,
    query: &str,
    within: &[ConversationId],
    after: Option<&ConversationId>,
    limit: usize,
) -> Search {
    if limit == 0 {
        return None;
    }
    let find = commands::search_conversations(tenant, &query_words(query), within, after)?;
    Some((find, page_limit(limit)))
}

/// The search of [`SearchIndex::search_users`].
fn user_search(tenant: &TenantId, query: &str, after: Option<&UserId>, limit: usize) -> Search {
    if limit == 0 {
        return None;
    }
    let find = commands::search_users(tenant, &query_words(query), after)?;
    Some((find, page_limit(limit)))
}

/// A message hit back from its entry.
fn decode_hit(d: &Document) -> Result<MessageHit> {
    Ok(MessageHit {
        conversation: id(get_str(d, "conversation", "search entry")?)?,
        message_id: id(get_str(d, "id", "search entry")?)?,
        seq: Seq(to_u64(get_i64(d, "seq", "search entry")?, "seq")?),
    })
}

/// A conversation hit back from its entry.
fn decode_conversation(d: &Document) -> Result<ConversationId> {
    id(get_str(d, "conversation", "search entry")?)
}

/// A user hit back from its entry.
fn decode_user(d: &Document) -> Result<UserId> {
    id(get_str(d, "id", "search entry")?)
}

impl MongoStore {
    /// Sends one indexing write.
    async fn write_entry(&self, context: &str, collection: &str, write: Write) -> Result<()> {
        let coll = self.coll(collection);
        match write {
            Write::Upsert(filter, entry) => {
                self.bounded(context, coll.replace_one(filter, entry).upsert(true))
                    .await?;
            }
            Write::Remove(filter) => {
                self.bounded(context, coll.delete_one(filter)).await?;
            }
        }
        Ok(())
    }

    /// Runs a search and decodes each hit.
    async fn search<T>(
        &self,
        context: &str,
        collection: &str,
        search: Search,
        decode: fn(&Document) -> Result<T>,
    ) -> Result<Vec<T>> {
        let Some(((filter, sort, projection), limit)) = search else {
            return Ok(Vec::new());
        };
        self.find_projected(context, collection, filter, sort, projection, limit)
            .await?
            .iter()
            .map(decode)
            .collect()
    }
}

#[async_trait]
impl SearchIndex for MongoStore {
    async fn index_message(&self, m: &Message) -> Result<()> {
        self.write_entry("index message", SEARCH_MESSAGES, message_write(m)?)
            .await
    }

    async fn remove_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<()> {
        let filter = commands::remove_message(tenant, conversation, id);
        self.write_entry("unindex message", SEARCH_MESSAGES, Write::Remove(filter))
            .await
    }

    async fn index_conversation(&self, c: &Conversation) -> Result<()> {
        self.write_entry(
            "index conversation",
            SEARCH_CONVERSATIONS,
            conversation_write(c)?,
        )
        .await
    }

    async fn index_user(&self, u: &User) -> Result<()> {
        self.write_entry("index user", SEARCH_USERS, user_write(u)?)
            .await
    }

    async fn search_messages(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<(Seq, &ConversationId)>,
        limit: usize,
    ) -> Result<Vec<MessageHit>> {
        self.search(
            "search messages",
            SEARCH_MESSAGES,
            message_search(tenant, query, within, after, limit),
            decode_hit,
        )
        .await
    }

    async fn search_conversations(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<ConversationId>> {
        self.search(
            "search conversations",
            SEARCH_CONVERSATIONS,
            conversation_search(tenant, query, within, after, limit),
            decode_conversation,
        )
        .await
    }

    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        self.search(
            "search users",
            SEARCH_USERS,
            user_search(tenant, query, after, limit),
            decode_user,
        )
        .await
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::*;
    use caas_core::ids::ClientMsgId;
    use caas_core::model::ConversationKind;
    use caas_core::time::Timestamp;
    use mongodb::bson::{Bson, doc};

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn c(s: &str) -> ConversationId {
        ConversationId::parse(s).unwrap()
    }

    fn strings(words: &[&str]) -> Vec<String> {
        words.iter().map(|w| (*w).to_owned()).collect()
    }

    fn message(body: Option<&str>) -> Message {
        Message {
            tenant: t(),
            conversation: c("general"),
            id: MessageId::parse("m1").unwrap(),
            seq: Seq(7),
            sender: UserId::parse("alice").unwrap(),
            client_msg_id: ClientMsgId::parse("k1").unwrap(),
            body: body.map(str::to_owned),
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
        }
    }

    /// What a PCRE-style reading of an escaped pattern gives back: each
    /// backslash dropped and the character after it taken literally.
    fn unescape(p: &str) -> String {
        let mut out = String::new();
        let mut chars = p.chars();
        while let Some(ch) = chars.next() {
            if ch == '\\' {
                let next = chars.next().unwrap();
                assert!(
                    next.is_ascii_punctuation(),
                    "escaped a non-punctuation character: {next:?}"
                );
                out.push(next);
            } else {
                assert!(
                    !ch.is_ascii_punctuation(),
                    "left a metacharacter unescaped: {ch:?} in {p:?}"
                );
                out.push(ch);
            }
        }
        out
    }

    #[test]
    fn regex_metacharacters_are_escaped_and_nothing_else() {
        assert_eq!(escape_regex("lunch"), "lunch");
        assert_eq!(escape_regex("a.b*c"), r"a\.b\*c");
        assert_eq!(
            escape_regex(r"\^$.|?*+()[]{}#-/"),
            r"\\\^\$\.\|\?\*\+\(\)\[\]\{\}\#\-\/"
        );
        // Letters and digits are never escaped: `\d`, `\w`, `\1` would be
        // classes and back-references.
        assert_eq!(escape_regex("d1w2"), "d1w2");
        // Unicode passes through unchanged, combining marks included.
        assert_eq!(escape_regex("café"), "café");
        assert_eq!(escape_regex("日本語"), "日本語");
        assert_eq!(escape_regex("i\u{307}"), "i\u{307}");
        assert_eq!(escape_regex("ü.ö"), r"ü\.ö");
        for s in [
            "",
            "a",
            r"(a|b)+\z",
            "x{2,}y",
            "é^ü$",
            "[^]]",
            "\u{1F600}.*",
        ] {
            assert_eq!(unescape(&escape_regex(s)), s, "{s:?}");
        }
    }

    #[test]
    fn every_query_word_is_an_anchored_prefix_condition() {
        assert_eq!(matching(&[]), None);
        assert_eq!(
            matching(&strings(&["lunch", "noon"])),
            Some(Bson::from(vec![
                doc! { "w": { "$regex": "^lunch" } },
                doc! { "w": { "$regex": "^noon" } },
            ]))
        );
        // Unicode words are matched as they are, by code point.
        assert_eq!(
            matching(&strings(&["ünïcode"])),
            Some(Bson::from(vec![doc! { "w": { "$regex": "^ünïcode" } }]))
        );
        // Were a token ever to hold a metacharacter, it is still a literal
        // prefix.
        assert_eq!(
            matching(&strings(&["a.b"])),
            Some(Bson::from(vec![doc! { "w": { "$regex": r"^a\.b" } }]))
        );
    }

    #[test]
    fn query_words_are_the_core_tokens_once_each_in_order() {
        assert_eq!(
            query_words("LUNCH at noon, lunch!"),
            strings(&["lunch", "at", "noon"])
        );
        assert_eq!(query_words("Café-Ünïcode"), strings(&["café", "ünïcode"]));
        assert!(query_words(" -- ?! ").is_empty());
        // Regex syntax in user text is only separators to the tokenizer.
        assert_eq!(
            query_words(r"^a.* (b|c) [d] \e"),
            strings(&["a", "b", "c", "d", "e"])
        );
    }

    #[test]
    fn entries_hold_distinct_sorted_lowercase_tokens() {
        assert_eq!(
            message_words(&message(Some("Lunch at NOON? Café-Ünïcode lunch"))),
            strings(&["at", "café", "lunch", "noon", "ünïcode"])
        );
        assert!(message_words(&message(Some("!!! ..."))).is_empty());
        let user = User {
            tenant: t(),
            id: UserId::parse("grace.h").unwrap(),
            name: "Grace Hopper".into(),
            attributes: Default::default(),
            created_at: Timestamp::from_secs(1),
            updated_at: Timestamp::from_secs(1),
        };
        assert_eq!(user_words(&user), strings(&["grace", "h", "hopper"]));
        let mut conv = Conversation {
            tenant: t(),
            id: c("general"),
            kind: ConversationKind::Group,
            name: Some("Rust Hackers".into()),
            attributes: Default::default(),
            created_by: None,
            direct_key: None,
            created_at: Timestamp::from_secs(1),
        };
        assert_eq!(conversation_words(&conv), strings(&["hackers", "rust"]));
        conv.name = None;
        assert!(conversation_words(&conv).is_empty());
    }

    #[test]
    fn deleted_encrypted_and_sealed_messages_have_no_words() {
        let mut deleted = message(Some("hello"));
        deleted.apply_delete(UserId::parse("alice").unwrap(), Timestamp::from_secs(2));
        assert!(message_words(&deleted).is_empty());
        // A tombstone is enough, even beside a body a caller left in place.
        let mut tombstoned = message(Some("hello"));
        tombstoned.deleted = deleted.deleted.clone();
        assert!(message_words(&tombstoned).is_empty());
        // Encrypted end to end: a ciphertext and no body.
        assert!(message_words(&message(None)).is_empty());
        let sealed = format!("{SEALED_BODY_PREFIX}c2VjcmV0");
        assert!(message_words(&message(Some(&sealed))).is_empty());
        // An edit re-indexes the new body only.
        let mut edited = message(Some("old words"));
        edited.apply_edit("new words".into(), Timestamp::from_secs(3));
        assert_eq!(message_words(&edited), strings(&["new", "words"]));
    }

    #[test]
    fn entries_are_upserted_on_a_deterministic_id() {
        let m = MessageId::parse("m1").unwrap();
        let (filter, entry) = message_entry(&t(), &c("general"), &m, 7, &strings(&["hi", "you"]));
        let key = doc! { "t": "acme", "c": "general", "m": "m1" };
        assert_eq!(filter, doc! { "_id": key.clone() });
        assert_eq!(
            entry,
            doc! {
                "_id": key.clone(),
                "tenant": "acme",
                "conversation": "general",
                "id": "m1",
                "seq": 7_i64,
                "w": ["hi", "you"],
            }
        );
        // Embedded-document equality compares field order too: one order.
        let id = message_entry_id(&t(), &c("general"), &m);
        let keys: Vec<&String> = id.keys().collect();
        assert_eq!(keys, ["t", "c", "m"]);
        // Removing uses the same key.
        assert_eq!(remove_message(&t(), &c("general"), &m), doc! { "_id": key });
        // The seq is an int64, as the sort and the keyset compare it.
        assert!(matches!(entry.get("seq"), Some(Bson::Int64(7))));

        let (filter, entry) = conversation_entry(&t(), &c("general"), &strings(&["rust"]));
        assert_eq!(filter, doc! { "_id": { "t": "acme", "c": "general" } });
        assert_eq!(
            entry,
            doc! {
                "_id": { "t": "acme", "c": "general" },
                "tenant": "acme",
                "conversation": "general",
                "w": ["rust"],
            }
        );

        let u = UserId::parse("u1").unwrap();
        let (filter, entry) = user_entry(&t(), &u, &strings(&["grace", "u1"]));
        assert_eq!(filter, doc! { "_id": { "t": "acme", "u": "u1" } });
        assert_eq!(
            entry,
            doc! {
                "_id": { "t": "acme", "u": "u1" },
                "tenant": "acme",
                "id": "u1",
                "w": ["grace", "u1"],
            }
        );
    }

    #[test]
    fn message_search_filters_scope_inside_and_sorts_by_seq_then_conversation() {
        let words = strings(&["lunch", "noon"]);
        let within = [c("general"), c("random")];
        let (filter, sort, projection) = search_messages(&t(), &words, &within, None).unwrap();
        assert_eq!(
            filter,
            doc! {
                "tenant": "acme",
                "conversation": { "$in": ["general", "random"] },
                "$and": [
                    { "w": { "$regex": "^lunch" } },
                    { "w": { "$regex": "^noon" } },
                ],
            }
        );
        assert_eq!(sort, doc! { "seq": -1, "conversation": 1 });
        let sort_keys: Vec<&String> = sort.keys().collect();
        assert_eq!(sort_keys, ["seq", "conversation"]);
        assert_eq!(
            projection,
            doc! { "_id": 0, "conversation": 1, "id": 1, "seq": 1 }
        );
        // Nothing can match: no words, or no conversation in scope.
        assert_eq!(search_messages(&t(), &[], &within, None), None);
        assert_eq!(search_messages(&t(), &words, &[], None), None);
    }

    #[test]
    fn the_next_message_page_starts_after_the_last_hit() {
        let words = strings(&["standup"]);
        let within = [c("a"), c("b")];
        let last = c("a");
        let (filter, sort, _) = search_messages(&t(), &words, &within, Some((4, &last))).unwrap();
        assert_eq!(
            filter,
            doc! {
                "tenant": "acme",
                "conversation": { "$in": ["a", "b"] },
                "$and": [{ "w": { "$regex": "^standup" } }],
                "$or": [
                    { "seq": { "$lt": 4_i64 } },
                    { "seq": 4_i64, "conversation": { "$gt": "a" } },
                ],
            }
        );
        assert_eq!(sort, doc! { "seq": -1, "conversation": 1 });
        // Past anything storable, every entry comes after: no condition.
        let (filter, _, _) =
            search_messages(&t(), &words, &within, Some((u64::MAX, &last))).unwrap();
        assert!(!filter.contains_key("$or"));
        let (filter, _, _) =
            search_messages(&t(), &words, &within, Some((i64::MAX as u64, &last))).unwrap();
        assert!(filter.contains_key("$or"));
    }

    #[test]
    fn conversation_search_is_scoped_and_pages_by_id() {
        let words = strings(&["rust"]);
        let within = [c("b"), c("a")];
        assert_eq!(
            search_conversations(&t(), &words, &within, None).unwrap(),
            (
                doc! {
                    "tenant": "acme",
                    "conversation": { "$in": ["b", "a"] },
                    "$and": [{ "w": { "$regex": "^rust" } }],
                },
                doc! { "conversation": 1 },
                doc! { "_id": 0, "conversation": 1 },
            )
        );
        let after = c("a");
        let (filter, _, _) = search_conversations(&t(), &words, &within, Some(&after)).unwrap();
        assert_eq!(
            filter,
            doc! {
                "tenant": "acme",
                "conversation": { "$in": ["b", "a"], "$gt": "a" },
                "$and": [{ "w": { "$regex": "^rust" } }],
            }
        );
        assert_eq!(search_conversations(&t(), &[], &within, None), None);
        assert_eq!(search_conversations(&t(), &words, &[], None), None);
    }

    #[test]
    fn user_search_is_per_tenant_and_pages_by_id() {
        let words = strings(&["hop"]);
        assert_eq!(
            search_users(&t(), &words, None).unwrap(),
            (
                doc! { "tenant": "acme", "$and": [{ "w": { "$regex": "^hop" } }] },
                doc! { "id": 1 },
                doc! { "_id": 0, "id": 1 },
            )
        );
        let after = UserId::parse("ann").unwrap();
        let (filter, _, _) = search_users(&t(), &words, Some(&after)).unwrap();
        assert_eq!(
            filter,
            doc! {
                "tenant": "acme",
                "id": { "$gt": "ann" },
                "$and": [{ "w": { "$regex": "^hop" } }],
            }
        );
        assert_eq!(search_users(&t(), &[], None), None);
    }

    #[test]
    fn indexes_cover_words_and_each_order() {
        assert_eq!(
            create_indexes(),
            [
                doc! {
                    "createIndexes": "search_messages",
                    "indexes": [
                        { "key": { "tenant": 1, "w": 1 }, "name": "search_messages_words" },
                        { "key": { "tenant": 1, "conversation": 1, "seq": -1 }, "name": "search_messages_order" },
                    ],
                },
                doc! {
                    "createIndexes": "search_conversations",
                    "indexes": [
                        { "key": { "tenant": 1, "w": 1 }, "name": "search_conversations_words" },
                        { "key": { "tenant": 1, "conversation": 1 }, "name": "search_conversations_order" },
                    ],
                },
                doc! {
                    "createIndexes": "search_users",
                    "indexes": [
                        { "key": { "tenant": 1, "w": 1 }, "name": "search_users_words" },
                        { "key": { "tenant": 1, "id": 1 }, "name": "search_users_order" },
                    ],
                },
            ]
        );
    }

    #[test]
    fn hits_decode_and_corrupt_entries_are_internal_errors() {
        let d = doc! { "conversation": "general", "id": "m1", "seq": 7_i64 };
        assert_eq!(
            decode_hit(&d).unwrap(),
            MessageHit {
                conversation: c("general"),
                message_id: MessageId::parse("m1").unwrap(),
                seq: Seq(7),
            }
        );
        for bad in [
            doc! { "conversation": "general", "id": "m1" },
            doc! { "conversation": "general", "id": "m1", "seq": -1_i64 },
            doc! { "conversation": 3, "id": "m1", "seq": 7_i64 },
        ] {
            assert_eq!(decode_hit(&bad).unwrap_err().code(), "internal", "{bad}");
        }
    }

    #[test]
    fn indexing_writes_upsert_entries_with_words_and_remove_the_rest() {
        let m = message(Some("Hello there"));
        let Write::Upsert(filter, entry) = message_write(&m).unwrap() else {
            panic!("a plain message is upserted");
        };
        assert_eq!(
            filter,
            doc! { "_id": { "t": "acme", "c": "general", "m": "m1" } }
        );
        assert_eq!(entry.get_array("w").unwrap().len(), 2);
        // No words, deleted, encrypted: the entry is removed, by the same key.
        let removal = Write::Remove(filter);
        assert_eq!(message_write(&message(Some("?!"))).unwrap(), removal);
        assert_eq!(message_write(&message(None)).unwrap(), removal);
        let mut deleted = m.clone();
        deleted.apply_delete(UserId::parse("bob").unwrap(), Timestamp::from_secs(9));
        assert_eq!(message_write(&deleted).unwrap(), removal);
        // A seq the store cannot hold is refused, not wrapped.
        let mut huge = m;
        huge.seq = Seq(u64::MAX);
        assert_eq!(message_write(&huge).unwrap_err().code(), "invalid_argument");

        let mut conv = Conversation {
            tenant: t(),
            id: c("general"),
            kind: ConversationKind::Group,
            name: None,
            attributes: Default::default(),
            created_by: None,
            direct_key: None,
            created_at: Timestamp::from_secs(1),
        };
        assert_eq!(
            conversation_write(&conv).unwrap(),
            Write::Remove(doc! { "_id": { "t": "acme", "c": "general" } })
        );
        conv.name = Some("Ops".into());
        assert!(matches!(
            conversation_write(&conv).unwrap(),
            Write::Upsert(..)
        ));
        let user = User {
            tenant: t(),
            id: UserId::parse("u1").unwrap(),
            name: String::new(),
            attributes: Default::default(),
            created_at: Timestamp::from_secs(1),
            updated_at: Timestamp::from_secs(1),
        };
        // A user always has words: its id.
        let Write::Upsert(_, entry) = user_write(&user).unwrap() else {
            panic!("a user is upserted");
        };
        assert_eq!(entry.get_array("w").unwrap(), &vec![Bson::from("u1")]);
    }

    #[test]
    fn oversized_entries_are_refused_before_sending() {
        assert!(check_entry(&["acme", "general", "m1"], &strings(&["hi"])).is_ok());
        let many: Vec<String> = (0..1_000_000).map(|i| format!("w{i}")).collect();
        let err = check_entry(&["acme"], &many).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
    }

    #[test]
    fn nothing_is_sent_for_a_search_that_cannot_match() {
        let within = [c("general")];
        assert_eq!(message_search(&t(), "lunch", &within, None, 0), None);
        assert_eq!(message_search(&t(), "?!", &within, None, 10), None);
        assert_eq!(message_search(&t(), "lunch", &[], None, 10), None);
        assert_eq!(conversation_search(&t(), "rust", &within, None, 0), None);
        assert_eq!(conversation_search(&t(), "", &within, None, 10), None);
        assert_eq!(user_search(&t(), "ada", None, 0), None);
        assert_eq!(user_search(&t(), " ", None, 10), None);
        let (_, limit) = message_search(&t(), "lunch", &within, None, 10).unwrap();
        assert_eq!(limit, Some(10));
        // A page size past what BSON holds means no limit, never a negative one.
        let (_, limit) = user_search(&t(), "ada", None, usize::MAX).unwrap();
        assert_eq!(limit, None);
    }

    /// A small reading of the documents this module sends, with MongoDB's
    /// meaning for exactly the operators they use (top-level fields ANDed,
    /// `$and`, `$or`, equality, `$in`, `$lt`, `$gt`, a condition on an array
    /// field holding when any element satisfies it, and anchored regexes of
    /// escaped literals), so the tests can run the commands on a collection
    /// kept in memory. An operator or pattern outside that set fails the test.
    mod server {
        use std::cmp::Ordering;

        use mongodb::bson::{Bson, Document};

        use super::super::{Search, Write};

        /// The values a condition on `value` is checked against: an array's
        /// elements (and the array itself, for equality), else the value.
        fn candidates(value: Option<&Bson>) -> Vec<&Bson> {
            match value {
                Some(Bson::Array(items)) => items.iter().chain(value).collect(),
                Some(v) => vec![v],
                None => vec![],
            }
        }

        /// The order of two values of one type (MongoDB compares values of
        /// different types by type first; these tests never need that).
        fn compare(a: &Bson, b: &Bson) -> Option<Ordering> {
            match (a, b) {
                (Bson::Int64(a), Bson::Int64(b)) => Some(a.cmp(b)),
                (Bson::String(a), Bson::String(b)) => Some(a.as_bytes().cmp(b.as_bytes())),
                _ => None,
            }
        }

        /// The literal prefix of `^` and an escaped literal; anything else
        /// panics.
        fn prefix(pattern: &str) -> String {
            let rest = pattern.strip_prefix('^').expect("an anchored pattern");
            let mut out = String::new();
            let mut chars = rest.chars();
            while let Some(ch) = chars.next() {
                if ch == '\\' {
                    let next = chars.next().expect("a complete escape");
                    assert!(next.is_ascii_punctuation(), "escape of {next:?}");
                    out.push(next);
                } else {
                    assert!(!ch.is_ascii_punctuation(), "bare {ch:?} in {pattern:?}");
                    out.push(ch);
                }
            }
            out
        }

        fn operator(value: Option<&Bson>, op: &str, arg: &Bson) -> bool {
            let values = candidates(value);
            match op {
                "$in" => {
                    let set = arg.as_array().expect("$in takes an array");
                    values.iter().any(|v| set.contains(v))
                }
                "$gt" => values
                    .iter()
                    .any(|v| compare(v, arg) == Some(Ordering::Greater)),
                "$lt" => values
                    .iter()
                    .any(|v| compare(v, arg) == Some(Ordering::Less)),
                "$regex" => {
                    let p = prefix(arg.as_str().expect("a string pattern"));
                    values
                        .iter()
                        .any(|v| v.as_str().is_some_and(|s| s.starts_with(&p)))
                }
                other => panic!("operator {other} is not modelled"),
            }
        }

        /// Whether `d` matches `filter`.
        pub(super) fn matches(filter: &Document, d: &Document) -> bool {
            filter.iter().all(|(key, cond)| match key.as_str() {
                "$and" => cond
                    .as_array()
                    .expect("$and takes an array")
                    .iter()
                    .all(|f| matches(f.as_document().expect("a filter"), d)),
                "$or" => cond
                    .as_array()
                    .expect("$or takes an array")
                    .iter()
                    .any(|f| matches(f.as_document().expect("a filter"), d)),
                op if op.starts_with('$') => panic!("operator {op} is not modelled"),
                field => match cond {
                    Bson::Document(ops) if ops.keys().all(|k| k.starts_with('$')) => {
                        ops.iter().all(|(op, arg)| operator(d.get(field), op, arg))
                    }
                    _ => candidates(d.get(field)).contains(&cond),
                },
            })
        }

        /// A collection: its documents.
        #[derive(Default)]
        pub(super) struct Collection(Vec<Document>);

        impl Collection {
            /// `replaceOne` with upsert on an `_id` filter, or `deleteOne`.
            pub(super) fn write(&mut self, write: Write) {
                match write {
                    Write::Upsert(filter, entry) => {
                        assert_eq!(filter.keys().collect::<Vec<_>>(), ["_id"]);
                        assert_eq!(filter.get("_id"), entry.get("_id"));
                        match self.0.iter().position(|d| matches(&filter, d)) {
                            Some(i) => self.0[i] = entry,
                            None => self.0.push(entry),
                        }
                    }
                    Write::Remove(filter) => {
                        if let Some(i) = self.0.iter().position(|d| matches(&filter, d)) {
                            self.0.remove(i);
                        }
                    }
                }
            }

            /// `find` with filter, sort, projection and limit.
            pub(super) fn find(&self, search: Search) -> Vec<Document> {
                let Some(((filter, sort, projection), limit)) = search else {
                    return Vec::new();
                };
                let mut found: Vec<&Document> =
                    self.0.iter().filter(|d| matches(&filter, d)).collect();
                found.sort_by(|a, b| {
                    sort.iter()
                        .map(|(key, dir)| {
                            let o = compare(
                                a.get(key).expect("a sort key"),
                                b.get(key).expect("a sort key"),
                            )
                            .expect("comparable sort keys");
                            if dir.as_i32() == Some(-1) {
                                o.reverse()
                            } else {
                                o
                            }
                        })
                        .find(|o| o.is_ne())
                        .unwrap_or(Ordering::Equal)
                });
                if let Some(n) = limit {
                    found.truncate(usize::try_from(n).unwrap());
                }
                found
                    .into_iter()
                    .map(|d| {
                        d.iter()
                            .filter(|(k, _)| projection.get_i32(k.as_str()).is_ok_and(|v| v == 1))
                            .map(|(k, v)| (k.clone(), v.clone()))
                            .collect()
                    })
                    .collect()
            }
        }
    }

    /// The collections of a store, run in memory by [`server`].
    #[derive(Default)]
    struct Fake {
        messages: server::Collection,
        conversations: server::Collection,
        users: server::Collection,
    }

    /// The same operations, through the same writes and searches as the
    /// store sends, and the hits decoded the same way, on a memory index and
    /// on the fake collections, must give the same answers: the memory index
    /// is the reference backend of the port's contract.
    #[tokio::test]
    async fn the_documents_sent_find_what_the_memory_index_finds() {
        use caas_storage::memory::MemorySearchIndex;

        const WORDS: [&str; 12] = [
            "Lunch",
            "lunchtime",
            "LUNAR",
            "noon",
            "Café",
            "CAFÉTÉRIA",
            "naïve",
            "日本",
            "日本語",
            "x1",
            "x10",
            "straße",
        ];
        let mut rng = fastrand::Rng::with_seed(0x5eed_cafe);
        let tenants = [t(), TenantId::parse("other").unwrap()];
        let convs = [c("c1"), c("c2"), c("c3"), c("c4")];
        let people = ["ann", "bea", "cyd", "dan", "eve", "fay"];
        let memory = MemorySearchIndex::default();
        let mut fake = Fake::default();

        let text = |rng: &mut fastrand::Rng, n: usize| {
            (0..n)
                .map(|_| WORDS[rng.usize(..WORDS.len())])
                .collect::<Vec<_>>()
                .join(if rng.bool() { " " } else { ", " })
        };
        for round in 0..300_u64 {
            let tenant = tenants[rng.usize(..2)].clone();
            match rng.u8(..10) {
                0..=6 => {
                    let conv = convs[rng.usize(..convs.len())].clone();
                    let n = rng.u64(1..30);
                    let n_words = rng.usize(0..4);
                    let mut m = message(Some(&text(&mut rng, n_words)));
                    m.tenant = tenant;
                    m.conversation = conv;
                    m.id = MessageId::parse(&format!("m{n}")).unwrap();
                    m.seq = Seq(n);
                    match rng.u8(..10) {
                        0 => m.body = None,
                        1 => m.apply_delete(
                            UserId::parse("ann").unwrap(),
                            Timestamp::from_secs(round),
                        ),
                        _ => {}
                    }
                    if rng.u8(..10) == 0 {
                        memory
                            .remove_message(&m.tenant, &m.conversation, &m.id)
                            .await
                            .unwrap();
                        fake.messages.write(Write::Remove(commands::remove_message(
                            &m.tenant,
                            &m.conversation,
                            &m.id,
                        )));
                    } else {
                        memory.index_message(&m).await.unwrap();
                        fake.messages.write(message_write(&m).unwrap());
                    }
                }
                7..=8 => {
                    let n_words = rng.usize(0..3);
                    let name = text(&mut rng, n_words);
                    let conv = Conversation {
                        tenant,
                        id: convs[rng.usize(..convs.len())].clone(),
                        kind: ConversationKind::Group,
                        name: (!name.is_empty() || rng.bool()).then_some(name),
                        attributes: Default::default(),
                        created_by: None,
                        direct_key: None,
                        created_at: Timestamp::from_secs(round),
                    };
                    memory.index_conversation(&conv).await.unwrap();
                    fake.conversations.write(conversation_write(&conv).unwrap());
                }
                _ => {
                    let n_words = rng.usize(0..3);
                    let user = User {
                        tenant,
                        id: UserId::parse(people[rng.usize(..people.len())]).unwrap(),
                        name: text(&mut rng, n_words),
                        attributes: Default::default(),
                        created_at: Timestamp::from_secs(round),
                        updated_at: Timestamp::from_secs(round),
                    };
                    memory.index_user(&user).await.unwrap();
                    fake.users.write(user_write(&user).unwrap());
                }
            }
        }

        let mut hits_seen = 0;
        for _ in 0..400 {
            let tenant = tenants[rng.usize(..2)].clone();
            // Prefixes of the vocabulary's words, in any case, one to two of
            // them, some with punctuation around.
            let query: String = (0..rng.usize(1..3))
                .map(|_| {
                    let word: Vec<char> = WORDS[rng.usize(..WORDS.len())].chars().collect();
                    let cut: String = word[..rng.usize(1..=word.len())].iter().collect();
                    let cased = if rng.bool() {
                        cut.to_uppercase()
                    } else {
                        cut.to_lowercase()
                    };
                    if rng.bool() {
                        format!("({cased}.*")
                    } else {
                        cased
                    }
                })
                .collect::<Vec<_>>()
                .join(" ");
            let within: Vec<ConversationId> =
                convs.iter().filter(|_| rng.bool()).cloned().collect();
            let limit = rng.usize(1..5);

            // Every page of messages, each starting after the last hit.
            let mut after: Option<(Seq, ConversationId)> = None;
            loop {
                let a = after.as_ref().map(|(s, c)| (*s, c));
                let want = memory
                    .search_messages(&tenant, &query, &within, a, limit)
                    .await
                    .unwrap();
                let got: Vec<MessageHit> = fake
                    .messages
                    .find(message_search(&tenant, &query, &within, a, limit))
                    .iter()
                    .map(|d| decode_hit(d).unwrap())
                    .collect();
                assert_eq!(got, want, "messages {query:?} in {within:?} after {a:?}");
                hits_seen += got.len();
                match got.last() {
                    Some(last) if got.len() == limit => {
                        after = Some((last.seq, last.conversation.clone()));
                    }
                    _ => break,
                }
            }

            let mut after: Option<ConversationId> = None;
            loop {
                let want = memory
                    .search_conversations(&tenant, &query, &within, after.as_ref(), limit)
                    .await
                    .unwrap();
                let got: Vec<ConversationId> = fake
                    .conversations
                    .find(conversation_search(
                        &tenant,
                        &query,
                        &within,
                        after.as_ref(),
                        limit,
                    ))
                    .iter()
                    .map(|d| decode_conversation(d).unwrap())
                    .collect();
                assert_eq!(got, want, "conversations {query:?} in {within:?}");
                hits_seen += got.len();
                match got.last() {
                    Some(last) if got.len() == limit => after = Some(last.clone()),
                    _ => break,
                }
            }

            let mut after: Option<UserId> = None;
            loop {
                let want = memory
                    .search_users(&tenant, &query, after.as_ref(), limit)
                    .await
                    .unwrap();
                let got: Vec<UserId> = fake
                    .users
                    .find(user_search(&tenant, &query, after.as_ref(), limit))
                    .iter()
                    .map(|d| decode_user(d).unwrap())
                    .collect();
                assert_eq!(got, want, "users {query:?}");
                hits_seen += got.len();
                match got.last() {
                    Some(last) if got.len() == limit => after = Some(last.clone()),
                    _ => break,
                }
            }
        }
        // The comparison means something only if searches found things.
        assert!(hits_seen > 500, "{hits_seen}");
    }
}
