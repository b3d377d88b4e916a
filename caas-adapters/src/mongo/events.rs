//! The event log behind `sync`.
//!
//! **Order.** A tenant's cursors come from its `log_heads` document, advanced
//! by `findOneAndUpdate` `$inc` inside the transaction that inserts the event.
//! A concurrent logging transaction of the same tenant conflicts on that
//! document and runs again once the first has committed or aborted (see
//! `txn.rs`). So cursors become visible in the order they were handed out: once
//! a reader sees cursor 12, cursor 11 is visible too or never will be, and a
//! reader paging by "cursor above the last I saw" never skips an event that
//! commits later. A message's event is logged in its append's transaction,
//! after its seq was taken, so within a conversation the log is in seq order.
//!
//! **Audiences** are stored natively, as an array of user ids (a multikey
//! index on `(tenant, audience, cursor)` serves a user's pages); the rest of
//! the event is its JSON with an empty audience, so the users are not stored
//! twice.

use std::collections::HashSet;
use std::sync::Arc;

use async_trait::async_trait;
use caas_core::events::{Event, LoggedEvent};
use caas_core::ids::{Cursor, MessageId, TenantId, UserId};
use caas_core::ports::EventLog;
use caas_core::{Error, Result};
use mongodb::bson::Document;
use mongodb::options::ReturnDocument;

use super::MongoStore;
use super::codec::{body, check_size, get_i64, get_str, id, page_limit, to_i64, to_json, to_u64};
use super::names::{EVENTS, LOG_HEADS};
use super::txn::{Abort, OnDuplicate};

/// The command, filter and update documents of the event log, as pure
/// functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{TenantId, UserId};
    use mongodb::bson::{Document, doc};

    use super::super::codec::bound;
    use super::super::names::EVENTS;

    /// `findOneAndUpdate` (upsert, returning the new document) of the tenant's
    /// log head: the next cursor.
    pub(crate) fn next_cursor(tenant: &TenantId) -> (Document, Document) {
        (
            doc! { "_id": tenant.as_str() },
            doc! { "$inc": { "head": 1_i64 } },
        )
    }

    /// The tenant's log head document.
    pub(crate) fn head(tenant: &TenantId) -> Document {
        doc! { "_id": tenant.as_str() }
    }

    /// A page of `user`'s events after `after`, and its order (served by the
    /// `events_audience` index).
    pub(crate) fn read(tenant: &TenantId, user: &UserId, after: u64) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "audience": user.as_str(),
                "cursor": { "$gt": bound(after) },
            },
            doc! { "cursor": 1 },
        )
    }

    /// A page of every event of the tenant after `after`, whatever its
    /// audience, and its order (served by the `events_cursor` index).
    pub(crate) fn read_tenant(tenant: &TenantId, after: u64) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "cursor": { "$gt": bound(after) } },
            doc! { "cursor": 1 },
        )
    }

    /// A page of the tenant's message events after `after` (by `cursor`), for
    /// a scrub, and its order (served by the `events_cursor` index). Only
    /// `message.created` and `message.edited` events can change; their JSON
    /// holds the quoted kind, and a body's quotes are escaped, so the pattern
    /// never drops one (a false match is decoded and left alone).
    pub(crate) fn scrub_page(tenant: &TenantId, after: i64) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "cursor": { "$gt": after },
                "doc": { "$regex": r#""message\.(created|edited)""# },
            },
            doc! { "cursor": 1 },
        )
    }

    /// The `update_one` of a scrubbed event's JSON body: matched only while the
    /// body is still `old_doc`, so of two scrubs rewriting one event only one
    /// counts it. The audience array and the cursor stay.
    pub(crate) fn replace_body(
        tenant: &TenantId,
        cursor: i64,
        old_doc: &str,
        new_doc: &str,
    ) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "cursor": cursor, "doc": old_doc },
            doc! { "$set": { "doc": new_doc } },
        )
    }

    /// The `createIndexes` command of `events`: one event per cursor and
    /// tenant, and a user's pages.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": EVENTS,
            "indexes": [
                {
                    "key": { "tenant": 1, "cursor": 1 },
                    "name": "events_cursor",
                    "unique": true,
                },
                {
                    "key": { "tenant": 1, "audience": 1, "cursor": 1 },
                    "name": "events_audience",
                },
            ],
        }
    }
}

/// The event's JSON as stored: everything but its audience.
fn event_json(event: &Event) -> Result<String> {
    let without_audience = Event {
        audience: Arc::from(Vec::<UserId>::new()),
        ..event.clone()
    };
    to_json(&without_audience, "event")
}

/// The size an event's document will have, about (its strings summed, with
/// a few bytes of framing per audience entry).
pub(super) fn event_size(event: &Event) -> Result<usize> {
    Ok(event_json(event)?.len()
        + event.tenant.as_str().len()
        + event
            .audience
            .iter()
            .map(|u| u.as_str().len() + 16)
            .sum::<usize>())
}

/// An event as stored at `cursor`.
pub(super) fn event_document(event: &Event, cursor: u64) -> Result<Document> {
    let audience: Vec<&str> = event.audience.iter().map(|u| u.as_str()).collect();
    Ok(mongodb::bson::doc! {
        "tenant": event.tenant.as_str(),
        "cursor": to_i64(cursor, "cursor")?,
        "audience": audience,
        "doc": event_json(event)?,
    })
}

/// A stored event back, with its audience.
fn decode(d: &Document, tenant: &TenantId) -> Result<LoggedEvent> {
    let mut event: Event = body(d, "event")?;
    if &event.tenant != tenant {
        return Err(Error::internal(
            "mongo: a stored event's body names another tenant",
        ));
    }
    let audience = d
        .get_array("audience")
        .map_err(|_| Error::internal("mongo: a stored event has no audience array"))?;
    event.audience = audience
        .iter()
        .map(|u| {
            u.as_str()
                .ok_or_else(|| Error::internal("mongo: a stored audience holds a non-string"))
                .and_then(id::<UserId>)
        })
        .collect::<Result<Vec<_>>>()?
        .into();
    Ok(LoggedEvent {
        cursor: Cursor(to_u64(get_i64(d, "cursor", "event")?, "cursor")?),
        event: Arc::new(event),
    })
}

/// How many message events a scrub reads per `find`: it walks the tenant's
/// whole log, and a page bounds what it holds in memory at once.
const SCRUB_PAGE: usize = 1000;

/// A stored event with the content of `messages` removed: its cursor, its body
/// as stored and the scrubbed body, or `None` when the event does not change.
fn scrubbed(
    d: &Document,
    tenant: &TenantId,
    messages: &HashSet<MessageId>,
) -> Result<Option<(i64, String, String)>> {
    let old = get_str(d, "doc", "event")?;
    let mut event: Event = body(d, "event")?;
    if &event.tenant != tenant {
        return Err(Error::internal(
            "mongo: a stored event's body names another tenant",
        ));
    }
    if !event.scrub_messages(messages) {
        return Ok(None);
    }
    // The body holds no audience (the native array does), so encoding it as
    // an append does keeps it that way.
    Ok(Some((
        get_i64(d, "cursor", "event")?,
        old.to_owned(),
        event_json(&event)?,
    )))
}

#[async_trait]
impl EventLog for MongoStore {
    async fn append(&self, event: Arc<Event>) -> Result<Cursor> {
        if event.payload.is_ephemeral() {
            return Err(Error::invalid(
                "event",
                format!("`{}` is ephemeral and not logged", event.payload.kind()),
            ));
        }
        check_size("event", event_size(&event)?)?;
        let (events, log_heads) = (self.coll(EVENTS), self.coll(LOG_HEADS));
        self.transaction("append event", OnDuplicate::Retry, |s| {
            let (events, log_heads, event) = (events.clone(), log_heads.clone(), event.clone());
            Box::pin(async move {
                let (filter, update) = commands::next_cursor(&event.tenant);
                let head = log_heads
                    .find_one_and_update(filter, update)
                    .upsert(true)
                    .return_document(ReturnDocument::After)
                    .session(&mut *s)
                    .await?
                    .ok_or_else(|| {
                        Error::internal("mongo: the log head upsert returned nothing")
                    })?;
                let cursor = to_u64(get_i64(&head, "head", "log head")?, "cursor")?;
                events
                    .insert_one(event_document(&event, cursor)?)
                    .session(&mut *s)
                    .await?;
                Ok::<_, Abort>(Cursor(cursor))
            })
        })
        .await
    }

    async fn read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: Cursor,
        n: usize,
    ) -> Result<Vec<LoggedEvent>> {
        // MongoDB reads a limit of 0 as "no limit".
        if n == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::read(tenant, user, after.0);
        self.find_all("read event log", EVENTS, filter, sort, page_limit(n))
            .await?
            .iter()
            .map(|d| decode(d, tenant))
            .collect()
    }

    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Cursor,
        n: usize,
    ) -> Result<Vec<LoggedEvent>> {
        // MongoDB reads a limit of 0 as "no limit".
        if n == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::read_tenant(tenant, after.0);
        self.find_all(
            "read the tenant's event log",
            EVENTS,
            filter,
            sort,
            page_limit(n),
        )
        .await?
        .iter()
        .map(|d| decode(d, tenant))
        .collect()
    }

    async fn head(&self, tenant: &TenantId) -> Result<Cursor> {
        let found = self
            .bounded(
                "read event log head",
                self.coll(LOG_HEADS).find_one(commands::head(tenant)),
            )
            .await?;
        match found {
            Some(d) => Ok(Cursor(to_u64(get_i64(&d, "head", "log head")?, "cursor")?)),
            None => Ok(Cursor(0)),
        }
    }

    /// Page by page through the tenant's message events, each scrubbed one
    /// written back by its own conditional update. Not one transaction: the log
    /// can be long and MongoDB bounds a transaction's time. A scrub that fails
    /// part-way leaves some events scrubbed, which a retry (the scrub is
    /// idempotent) completes.
    async fn scrub_messages(
        &self,
        tenant: &TenantId,
        messages: &HashSet<MessageId>,
    ) -> Result<u64> {
        if messages.is_empty() {
            return Ok(0);
        }
        let coll = self.coll(EVENTS);
        let (mut after, mut changed) = (0i64, 0u64);
        loop {
            let (filter, sort) = commands::scrub_page(tenant, after);
            let page = self
                .find_all(
                    "read events to scrub",
                    EVENTS,
                    filter,
                    sort,
                    page_limit(SCRUB_PAGE),
                )
                .await?;
            for d in &page {
                after = get_i64(d, "cursor", "event")?;
                let Some((cursor, old, new)) = scrubbed(d, tenant, messages)? else {
                    continue;
                };
                let (filter, update) = commands::replace_body(tenant, cursor, &old, &new);
                let done = self
                    .bounded("scrub event", coll.update_one(filter, update))
                    .await?;
                changed += done.matched_count;
            }
            if page.len() < SCRUB_PAGE {
                return Ok(changed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::*;
    use caas_core::events::EventPayload;
    use caas_core::ids::{ConversationId, CorrelationId, Seq};
    use caas_core::model::ReceiptKind;
    use caas_core::time::Timestamp;
    use mongodb::bson::doc;

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn u(s: &str) -> UserId {
        UserId::parse(s).unwrap()
    }

    fn message() -> caas_core::model::Message {
        let mut m = caas_core::testkit::messages::new_message(
            &t(),
            &ConversationId::parse("general").unwrap(),
            "alice",
            "k1",
            "secret",
        )
        .into_message(Seq(2));
        m.mentions = vec![u("bob")];
        m
    }

    fn sample() -> Event {
        Event {
            tenant: t(),
            correlation_id: CorrelationId::generate(Timestamp::from_secs(1)),
            at: Timestamp::from_secs(5),
            audience: vec![u("bob"), u("alice")].into(),
            payload: EventPayload::ReceiptUpdated {
                conversation_id: ConversationId::parse("general").unwrap(),
                user_id: u("bob"),
                receipt: ReceiptKind::Read,
                seq: Seq(3),
            },
        }
    }

    #[test]
    fn the_cursor_comes_from_an_increment_of_the_tenant_log_head() {
        assert_eq!(
            next_cursor(&t()),
            (doc! { "_id": "acme" }, doc! { "$inc": { "head": 1_i64 } })
        );
        assert_eq!(head(&t()), doc! { "_id": "acme" });
    }

    #[test]
    fn a_user_reads_their_audience_in_cursor_order() {
        assert_eq!(
            read(&t(), &u("alice"), 12),
            (
                doc! { "tenant": "acme", "audience": "alice", "cursor": { "$gt": 12_i64 } },
                doc! { "cursor": 1 }
            )
        );
        assert_eq!(
            read(&t(), &u("alice"), u64::MAX)
                .0
                .get_document("cursor")
                .unwrap(),
            &doc! { "$gt": i64::MAX }
        );
    }

    #[test]
    fn a_whole_tenant_read_takes_every_audience_in_cursor_order() {
        assert_eq!(
            read_tenant(&t(), 12),
            (
                doc! { "tenant": "acme", "cursor": { "$gt": 12_i64 } },
                doc! { "cursor": 1 }
            )
        );
        assert_eq!(
            read_tenant(&t(), u64::MAX).0,
            doc! { "tenant": "acme", "cursor": { "$gt": i64::MAX } }
        );
    }

    #[test]
    fn a_scrub_pages_through_message_events_and_replaces_only_the_body() {
        let (filter, sort) = scrub_page(&t(), 7);
        assert_eq!(
            filter,
            doc! {
                "tenant": "acme",
                "cursor": { "$gt": 7_i64 },
                "doc": { "$regex": "\"message\\.(created|edited)\"" },
            }
        );
        assert_eq!(sort, doc! { "cursor": 1 });
        assert_eq!(
            replace_body(&t(), 9, "old", "new"),
            (
                doc! { "tenant": "acme", "cursor": 9_i64, "doc": "old" },
                doc! { "$set": { "doc": "new" } }
            )
        );
    }

    /// What the scrub's pattern relies on: a message event's JSON holds its
    /// kind quoted, and a body quoting a kind does not (its quotes are escaped).
    #[test]
    fn message_events_hold_their_quoted_kind_and_bodies_never_do() {
        let mut m = message();
        m.body = Some("say \"message.created\" or \"message.edited\"".into());
        let created = event_json(&Event {
            payload: EventPayload::MessageCreated { message: m.clone() },
            ..sample()
        })
        .unwrap();
        assert_eq!(
            created.matches("\"message.created\"").count(),
            1,
            "{created}"
        );
        assert!(!created.contains("\"message.edited\""), "{created}");
        let edited = event_json(&Event {
            payload: EventPayload::MessageEdited { message: m },
            ..sample()
        })
        .unwrap();
        assert_eq!(edited.matches("\"message.edited\"").count(), 1, "{edited}");
        let receipt = event_json(&sample()).unwrap();
        assert!(!receipt.contains("\"message."), "{receipt}");
    }

    #[test]
    fn a_scrubbed_event_keeps_its_cursor_and_audience_and_loses_the_content() {
        let m = message();
        let e = Event {
            payload: EventPayload::MessageCreated { message: m.clone() },
            ..sample()
        };
        let d = event_document(&e, 4).unwrap();
        let other: HashSet<MessageId> = [MessageId::parse("m-other").unwrap()].into();
        assert_eq!(scrubbed(&d, &t(), &other).unwrap(), None);
        let ids: HashSet<MessageId> = [m.id.clone()].into();
        let (cursor, old, new) = scrubbed(&d, &t(), &ids).unwrap().unwrap();
        assert_eq!((cursor, old.as_str()), (4, d.get_str("doc").unwrap()));
        // The update sets only the body; the stored audience array stays.
        let mut after = d.clone();
        after.insert("doc", new);
        let back = decode(&after, &t()).unwrap();
        assert_eq!(back.cursor, Cursor(4));
        assert_eq!(back.event.audience, e.audience);
        let EventPayload::MessageCreated { message } = &back.event.payload else {
            panic!("a message event");
        };
        assert_eq!((&message.id, message.seq), (&m.id, m.seq));
        assert_eq!((&message.body, message.mentions.len()), (&None, 0));
        // Scrubbed once, nothing is left to change.
        assert_eq!(scrubbed(&after, &t(), &ids).unwrap(), None);
        let other_tenant = TenantId::parse("other").unwrap();
        assert_eq!(
            scrubbed(&d, &other_tenant, &ids).unwrap_err().code(),
            "internal"
        );
    }

    #[test]
    fn the_log_indexes_are_unique_per_cursor_and_serve_audience_reads() {
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "events",
                "indexes": [
                    { "key": { "tenant": 1, "cursor": 1 }, "name": "events_cursor", "unique": true },
                    { "key": { "tenant": 1, "audience": 1, "cursor": 1 }, "name": "events_audience" },
                ],
            }
        );
    }

    #[test]
    fn events_are_stored_with_a_native_audience_and_round_trip() {
        let e = sample();
        let d = event_document(&e, 9).unwrap();
        assert_eq!(d.get_str("tenant").unwrap(), "acme");
        assert_eq!(d.get_i64("cursor").unwrap(), 9);
        assert_eq!(
            d.get_array("audience").unwrap(),
            &vec![
                mongodb::bson::Bson::from("bob"),
                mongodb::bson::Bson::from("alice")
            ]
        );
        // The JSON body leaves the audience out: it is stored once.
        let json = d.get_str("doc").unwrap();
        assert!(!json.contains("alice"), "{json}");
        let back = decode(&d, &t()).unwrap();
        assert_eq!(back.cursor, Cursor(9));
        assert_eq!(*back.event, e);
        let other = TenantId::parse("other").unwrap();
        assert_eq!(decode(&d, &other).unwrap_err().code(), "internal");
    }

    #[test]
    fn an_event_over_the_document_limit_is_refused_by_size() {
        let mut e = sample();
        e.audience = (0..1000)
            .map(|i| u(&format!("user{i}")))
            .collect::<Vec<_>>()
            .into();
        let small = event_size(&sample()).unwrap();
        let large = event_size(&e).unwrap();
        assert!(large > small + 1000 * 5, "{small} {large}");
    }
}
