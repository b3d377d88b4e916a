//! The event log behind `sync`.
//!
//! Each event names its audience as a *set*: the sorted list of users, stored
//! once per tenant and distinct list (`audiences`) and indexed by user
//! (`audience_members`). A conversation's members form the same set message
//! after message, so logging a message to 100 members writes one event row, not
//! 100 audience rows scattered over ~100 pages of a per-user index. The event's
//! stored document leaves the audience out; reads put the set's users back.
//!
//! A user's events are those of their sets: a read walks the user's sets through
//! `events_by_audience (tenant, audience, cursor)` within a window of cursors
//! after the one asked for, widening it until the page is full or the log ends,
//! so a page costs about the events it returns however large the log is.
//! Events logged by schema version 1 kept one `event_audience` row per user;
//! reads still consult those.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use async_trait::async_trait;
use caas_core::events::{Event, EventPayload, LoggedEvent};
use caas_core::ids::{CorrelationId, Cursor, MessageId, TenantId, UserId};
use caas_core::ports::EventLog;
use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use rusqlite::{Connection, OptionalExtension, params};
use serde::Serialize;

use super::SqliteStore;
use super::codec::{bound, from_json, limit, to_json, to_u64};
use super::error::Ctx;
use super::writer::Tx;

/// The first window of cursors a read scans; it quadruples until the page is
/// full or the log's head is reached.
const FIRST_WINDOW: i64 = 1024;

fn head(c: &Connection, tenant: &str) -> Result<i64> {
    // MAX over the primary key's prefix is one b-tree seek.
    c.prepare_cached("SELECT COALESCE(MAX(cursor), 0) FROM events WHERE tenant = ?1")
        .and_then(|mut s| s.query_row([tenant], |r| r.get(0)))
        .ctx("read event log head")
}

/// An event made ready for the writer on the caller's thread: its document
/// (without the audience) and its audience as a set.
pub(super) struct PreparedEvent {
    doc: String,
    audience: AudienceSet,
}

/// An audience as stored: sorted, without duplicates, named by a digest.
struct AudienceSet {
    digest: String,
    users: Vec<UserId>,
    json: String,
}

impl AudienceSet {
    fn new(audience: &[UserId]) -> Result<Self> {
        let mut users = audience.to_vec();
        users.sort();
        users.dedup();
        let mut joined = String::with_capacity(users.iter().map(|u| u.as_str().len() + 1).sum());
        for u in &users {
            // Ids cannot contain a newline, so distinct lists never join alike.
            joined.push_str(u.as_str());
            joined.push('\n');
        }
        Ok(Self {
            digest: crate::sha256_hex(joined.as_bytes()),
            json: to_json(&users, "audience")?,
            users,
        })
    }
}

/// [`Event`]'s stored form: the same fields, with the audience empty for events
/// that name an audience set (it is stored there instead).
#[derive(Serialize)]
struct EventDoc<'a> {
    tenant: &'a TenantId,
    correlation_id: &'a CorrelationId,
    at: Timestamp,
    audience: &'a [UserId],
    payload: &'a EventPayload,
}

/// The stored document of `event` with `audience` in place of its own.
fn event_doc(event: &Event, audience: &[UserId]) -> Result<String> {
    to_json(
        &EventDoc {
            tenant: &event.tenant,
            correlation_id: &event.correlation_id,
            at: event.at,
            audience,
            payload: &event.payload,
        },
        "event",
    )
}

impl PreparedEvent {
    pub(super) fn new(event: &Event) -> Result<Self> {
        Ok(Self {
            doc: event_doc(event, &[])?,
            audience: AudienceSet::new(&event.audience)?,
        })
    }
}

/// The writer's first half of logging an event: its cursor (a read, no change).
pub(super) fn next_cursor(c: &Tx<'_, '_>, tenant: &str) -> Result<i64> {
    Ok(
        c.hot("SELECT COALESCE(MAX(cursor), 0) FROM events WHERE tenant = ?1")?
            .borrow_mut()
            .query_row([tenant], |r| r.get::<_, i64>(0))
            .ctx("read event log head")?
            + 1,
    )
}

/// The id of `set` in `tenant`, stored now if it is new.
fn audience_id(c: &Tx<'_, '_>, tenant: &str, set: &AudienceSet) -> Result<i64> {
    let known: Option<i64> = c
        .hot("SELECT id FROM audiences WHERE tenant = ?1 AND digest = ?2")?
        .borrow_mut()
        .query_row(params![tenant, set.digest], |r| r.get(0))
        .optional()
        .ctx("find audience")?;
    if let Some(id) = known {
        return Ok(id);
    }
    let id: i64 = c
        .prepare_cached("SELECT COALESCE(MAX(id), 0) + 1 FROM audiences WHERE tenant = ?1")
        .and_then(|mut s| s.query_row([tenant], |r| r.get(0)))
        .ctx("number audience")?;
    c.prepare_cached("INSERT INTO audiences (tenant, id, digest, users) VALUES (?1, ?2, ?3, ?4)")
        .and_then(|mut s| s.execute(params![tenant, id, set.digest, set.json]))
        .ctx("store audience")?;
    let mut add = c
        .prepare_cached("INSERT INTO audience_members (tenant, user, audience) VALUES (?1, ?2, ?3)")
        .ctx("store audience")?;
    for user in &set.users {
        add.execute(params![tenant, user.as_str(), id])
            .ctx("store audience")?;
    }
    Ok(id)
}

/// The writer's second half: the event row, after its audience set. Without a
/// savepoint (see `writer.rs`): the set is found or stored under a fresh id and
/// the event row is new by construction (the single writer picked its cursor),
/// so nothing can refuse a write after the first.
pub(super) fn put_event(
    c: &Tx<'_, '_>,
    tenant: &str,
    cursor: i64,
    event: &PreparedEvent,
) -> Result<()> {
    let audience = audience_id(c, tenant, &event.audience)?;
    c.hot("INSERT INTO events (tenant, cursor, doc, audience) VALUES (?1, ?2, ?3, ?4)")?
        .borrow_mut()
        .execute(params![tenant, cursor, event.doc, audience])
        .ctx("append event")?;
    Ok(())
}

/// One row of a read: the cursor, the document and the audience set (none for
/// events logged before sets, whose document holds the audience).
type Row = (i64, String, Option<i64>);

/// Whether the file holds events logged by schema version 1. Nothing writes
/// `event_audience` any more, so a file without such rows at open never gets
/// any, and its reads skip that query.
pub(super) fn has_legacy_audiences(c: &Connection) -> Result<bool> {
    c.query_row("SELECT EXISTS (SELECT 1 FROM event_audience)", [], |r| {
        r.get(0)
    })
    .ctx("look for version 1 events")
}

fn read_rows(
    c: &Connection,
    legacy: bool,
    tenant: &str,
    user: &str,
    after: i64,
    n: usize,
) -> Result<Vec<Row>> {
    let mut rows: Vec<Row> = Vec::new();
    // Version 1 events: one row per user, already in cursor order.
    if legacy {
        let mut legacy = c
            .prepare_cached(
                "SELECT e.cursor, e.doc FROM event_audience a
                 JOIN events e ON e.tenant = a.tenant AND e.cursor = a.cursor
                 WHERE a.tenant = ?1 AND a.user = ?2 AND a.cursor > ?3
                 ORDER BY a.cursor LIMIT ?4",
            )
            .ctx("read event log")?;
        let found = legacy
            .query_map(params![tenant, user, after, limit(n)], |r| {
                Ok((r.get(0)?, r.get(1)?, None))
            })
            .ctx("read event log")?;
        for row in found {
            rows.push(row.ctx("read event log")?);
        }
    }
    let head = head(c, tenant)?;
    // The plan is forced: the user's sets first, then each set's events in the
    // window by `events_by_audience`. Left to itself the planner walks the whole
    // window by the primary key and probes each event's set, reading (and
    // caching) every event of the window.
    let mut windowed = c
        .prepare_cached(
            "SELECT e.cursor, e.doc, e.audience FROM audience_members m
             CROSS JOIN events e INDEXED BY events_by_audience
                 ON e.tenant = m.tenant AND e.audience = m.audience
                 AND e.cursor > ?3 AND e.cursor <= ?4
             WHERE m.tenant = ?1 AND m.user = ?2
             ORDER BY e.cursor LIMIT ?5",
        )
        .ctx("read event log")?;
    let (mut from, mut width, mut found) = (after, FIRST_WINDOW, 0usize);
    while found < n && from < head {
        let to = from.saturating_add(width);
        let page = windowed
            .query_map(params![tenant, user, from, to, limit(n - found)], |r| {
                Ok((r.get(0)?, r.get(1)?, Some(r.get(2)?)))
            })
            .ctx("read event log")?;
        for row in page {
            rows.push(row.ctx("read event log")?);
            found += 1;
        }
        from = to;
        width = width.saturating_mul(4);
    }
    // The two kinds never share a cursor; together, the first `n` are the page.
    rows.sort_unstable_by_key(|r| r.0);
    rows.truncate(n);
    Ok(rows)
}

/// The writer's scrub of `tenant`'s log: every event carrying one of `messages`
/// loses that message's content ([`Event::scrub_messages`]) and is written back
/// under the same cursor. Returns how many events changed.
fn scrub_rows(c: &Tx<'_, '_>, tenant: &str, messages: &HashSet<MessageId>) -> Result<u64> {
    // Only message events can change. Their compact JSON always holds the
    // quoted kind, and a body's quotes are escaped, so the filter never drops
    // one; a false match is decoded and left alone below.
    let mut select = c
        .prepare(
            "SELECT cursor, doc FROM events WHERE tenant = ?1
             AND (doc LIKE '%\"message.created\"%' OR doc LIKE '%\"message.edited\"%')",
        )
        .ctx("read events to scrub")?;
    let rows = select
        .query_map([tenant], |r| {
            Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?))
        })
        .ctx("read events to scrub")?;
    // The new documents are collected before any is written: updating rows of a
    // table a statement is still walking leaves that walk undefined in SQLite.
    // Only the scrubbed events are kept, so this holds the erased messages'
    // events, not the log.
    let mut changed: Vec<(i64, String)> = Vec::new();
    for row in rows {
        let (cursor, doc) = row.ctx("read events to scrub")?;
        let mut event: Event = from_json(&doc, "event")?;
        if event.scrub_messages(messages) {
            // The document keeps the audience it had: empty for events that name
            // a set, the users themselves for those logged by schema version 1,
            // whose reads take it from the document.
            let audience = event.audience.clone();
            changed.push((cursor, event_doc(&event, &audience)?));
        }
    }
    drop(select);
    let mut update = c
        .prepare("UPDATE events SET doc = ?1 WHERE tenant = ?2 AND cursor = ?3")
        .ctx("scrub event")?;
    for (cursor, doc) in &changed {
        update
            .execute(params![doc, tenant, cursor])
            .ctx("scrub event")?;
    }
    u64::try_from(changed.len()).map_err(|_| Error::internal("sqlite: too many scrubbed events"))
}

/// Rows as logged events, each with its audience: a set's users (read once per
/// set) or, for version 1 events, the users in the document.
fn logged(c: &Connection, tenant: &str, rows: Vec<Row>) -> Result<Vec<LoggedEvent>> {
    let mut sets: HashMap<i64, Arc<[UserId]>> = HashMap::new();
    rows.into_iter()
        .map(|(cursor, doc, set)| {
            let mut event: Event = from_json(&doc, "event")?;
            if let Some(id) = set {
                event.audience = match sets.get(&id) {
                    Some(users) => users.clone(),
                    None => {
                        let users = audience_users(c, tenant, id)?;
                        sets.insert(id, users.clone());
                        users
                    }
                };
            }
            Ok(LoggedEvent {
                cursor: Cursor(to_u64(cursor, "cursor")?),
                event: Arc::new(event),
            })
        })
        .collect()
}

/// The users of audience set `id`.
fn audience_users(c: &Connection, tenant: &str, id: i64) -> Result<Arc<[UserId]>> {
    let json: String = c
        .prepare_cached("SELECT users FROM audiences WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![tenant, id], |r| r.get(0)))
        .ctx("read audience")?;
    Ok(from_json::<Vec<UserId>>(&json, "audience")?.into())
}

#[async_trait]
impl EventLog for SqliteStore {
    async fn append(&self, event: Arc<Event>) -> Result<Cursor> {
        if event.payload.is_ephemeral() {
            return Err(Error::invalid(
                "event",
                format!("`{}` is ephemeral and not logged", event.payload.kind()),
            ));
        }
        let prepared = PreparedEvent::new(&event)?;
        self.write_prechecked(move |c| {
            let tenant = event.tenant.as_str();
            let cursor = next_cursor(c, tenant)?;
            let logged = Cursor(to_u64(cursor, "cursor")?);
            put_event(c, tenant, cursor, &prepared)?;
            Ok(logged)
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
        let (tenant, user) = (tenant.clone(), user.clone());
        let after = bound(after.0);
        let legacy = self.inner.legacy_audiences;
        self.read(move |c| {
            let rows = read_rows(c, legacy, tenant.as_str(), user.as_str(), after, n)?;
            logged(c, tenant.as_str(), rows)
        })
        .await
    }

    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Cursor,
        n: usize,
    ) -> Result<Vec<LoggedEvent>> {
        let tenant = tenant.clone();
        let after = bound(after.0);
        self.read(move |c| {
            // Events logged by schema version 1 have no set; their documents
            // carry their audience.
            let mut select = c
                .prepare_cached(
                    "SELECT cursor, doc, audience FROM events
                     WHERE tenant = ?1 AND cursor > ?2 ORDER BY cursor LIMIT ?3",
                )
                .ctx("read event log")?;
            let rows = select
                .query_map(params![tenant.as_str(), after, limit(n)], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                })
                .ctx("read event log")?
                .collect::<rusqlite::Result<Vec<Row>>>()
                .ctx("read event log")?;
            logged(c, tenant.as_str(), rows)
        })
        .await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Cursor> {
        let tenant = tenant.clone();
        self.read(move |c| Ok(Cursor(to_u64(head(c, tenant.as_str())?, "cursor")?)))
            .await
    }

    async fn scrub_messages(
        &self,
        tenant: &TenantId,
        messages: &HashSet<MessageId>,
    ) -> Result<u64> {
        if messages.is_empty() {
            return Ok(0);
        }
        let (tenant, messages) = (tenant.clone(), messages.clone());
        // One write (under its savepoint): the scrub commits whole or not at
        // all. It holds the writer while it scans the tenant's message events,
        // which erasure, being rare, can afford.
        let changed = self
            .write(move |c| scrub_rows(c, tenant.as_str(), &messages))
            .await?;
        // The scrubbed text must not live on in the WAL or the search index's
        // old segments either. Best effort: the scrub itself has committed.
        if changed > 0
            && let Err(e) = self.checkpoint_truncate().await
        {
            tracing::warn!(error = %e, "after a scrub, the WAL or the search index could not be compacted yet");
        }
        Ok(changed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::ids::ConversationId;
    use caas_core::model::ReceiptKind;

    fn event(tenant: &TenantId, audience: &[&str], n: u64) -> Event {
        Event {
            tenant: tenant.clone(),
            correlation_id: CorrelationId::parse("r").unwrap(),
            at: Timestamp::from_secs(n),
            audience: audience
                .iter()
                .map(|u| UserId::parse(u).unwrap())
                .collect::<Vec<_>>()
                .into(),
            payload: EventPayload::ReceiptUpdated {
                conversation_id: ConversationId::parse("c").unwrap(),
                user_id: UserId::parse("x").unwrap(),
                receipt: ReceiptKind::Read,
                seq: caas_core::ids::Seq(n),
            },
        }
    }

    fn count(store: &SqliteStore, sql: &str) -> i64 {
        let c = Connection::open(store.path()).unwrap();
        c.query_row(sql, [], |r| r.get(0)).unwrap()
    }

    #[tokio::test]
    async fn one_audience_set_per_distinct_list_and_reads_restore_it() {
        let store = SqliteStore::open_temp().unwrap();
        let t = TenantId::parse("t").unwrap();
        for n in 1..=50 {
            // The same members in any order and with repeats are one set.
            let aud: &[&str] = if n % 2 == 0 {
                &["bob", "alice", "bob"]
            } else {
                &["alice", "bob"]
            };
            EventLog::append(&store, Arc::new(event(&t, aud, n)))
                .await
                .unwrap();
        }
        store
            .append(Arc::new(event(&t, &["carol"], 51)))
            .await
            .unwrap();
        assert_eq!(count(&store, "SELECT count(*) FROM audiences"), 2);
        assert_eq!(count(&store, "SELECT count(*) FROM audience_members"), 3);
        let bob = UserId::parse("bob").unwrap();
        let page = EventLog::read(&store, &t, &bob, Cursor(10), 5)
            .await
            .unwrap();
        let cursors: Vec<u64> = page.iter().map(|e| e.cursor.0).collect();
        assert_eq!(cursors, [11, 12, 13, 14, 15]);
        assert_eq!(page[0].event.audience.len(), 2, "{:?}", page[0].event);
        let carol = UserId::parse("carol").unwrap();
        let hers = EventLog::read(&store, &t, &carol, Cursor(0), 10)
            .await
            .unwrap();
        assert_eq!(hers.len(), 1);
        assert_eq!(*hers[0].event, event(&t, &["carol"], 51));
    }

    #[tokio::test]
    async fn a_sparse_audience_is_found_across_windows() {
        let store = SqliteStore::open_temp().unwrap();
        let t = TenantId::parse("t").unwrap();
        // Dave is addressed once every 1 500 events: reads must widen the window.
        let total = 5 * 1500;
        for n in 1..=total {
            let aud: &[&str] = if n % 1500 == 0 { &["dave"] } else { &["erin"] };
            EventLog::append(&store, Arc::new(event(&t, aud, n)))
                .await
                .unwrap();
        }
        let dave = UserId::parse("dave").unwrap();
        let all = EventLog::read(&store, &t, &dave, Cursor(0), 100)
            .await
            .unwrap();
        let cursors: Vec<u64> = all.iter().map(|e| e.cursor.0).collect();
        assert_eq!(cursors, [1500, 3000, 4500, 6000, 7500]);
        let after = EventLog::read(&store, &t, &dave, Cursor(3000), 2)
            .await
            .unwrap();
        assert_eq!(
            after.iter().map(|e| e.cursor.0).collect::<Vec<_>>(),
            [4500, 6000]
        );
    }

    #[tokio::test]
    async fn events_logged_before_audience_sets_are_still_read() {
        let dir = crate::temp::TempDir::new("caas-events-v1").unwrap();
        let path = dir.path().join("caas.db");
        {
            // A version 1 database with one event for alice and bob.
            let c = Connection::open(&path).unwrap();
            super::super::schema::migrate_with(&c, &super::super::schema::MIGRATIONS[..1]).unwrap();
            let old = event(&TenantId::parse("t").unwrap(), &["alice", "bob"], 1);
            c.execute(
                "INSERT INTO events (tenant, cursor, doc) VALUES ('t', 1, ?1)",
                [serde_json::to_string(&old).unwrap()],
            )
            .unwrap();
            c.execute_batch(
                "INSERT INTO event_audience (tenant, user, cursor) VALUES ('t', 'alice', 1), ('t', 'bob', 1);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, Default::default()).unwrap();
        let t = TenantId::parse("t").unwrap();
        store
            .append(Arc::new(event(&t, &["alice"], 2)))
            .await
            .unwrap();
        let alice = UserId::parse("alice").unwrap();
        let page = EventLog::read(&store, &t, &alice, Cursor(0), 10)
            .await
            .unwrap();
        assert_eq!(page.iter().map(|e| e.cursor.0).collect::<Vec<_>>(), [1, 2]);
        assert_eq!(page[0].event.audience.len(), 2);
        let bob = UserId::parse("bob").unwrap();
        assert_eq!(
            EventLog::read(&store, &t, &bob, Cursor(0), 10)
                .await
                .unwrap()
                .len(),
            1
        );
    }

    #[tokio::test]
    async fn scrub_keeps_the_audience_of_events_logged_before_audience_sets() {
        use caas_core::testkit::messages::new_message;
        let dir = crate::temp::TempDir::new("caas-events-scrub-v1").unwrap();
        let path = dir.path().join("caas.db");
        let t = TenantId::parse("t").unwrap();
        let msg = new_message(
            &t,
            &ConversationId::parse("c").unwrap(),
            "alice",
            "k",
            "gone",
        )
        .into_message(caas_core::ids::Seq(1));
        let old = Event {
            payload: EventPayload::MessageCreated {
                message: msg.clone(),
            },
            ..event(&t, &["alice", "bob"], 1)
        };
        {
            // A version 1 row: the audience lives in the document.
            let c = Connection::open(&path).unwrap();
            super::super::schema::migrate_with(&c, &super::super::schema::MIGRATIONS[..1]).unwrap();
            c.execute(
                "INSERT INTO events (tenant, cursor, doc) VALUES ('t', 1, ?1)",
                [serde_json::to_string(&old).unwrap()],
            )
            .unwrap();
            c.execute_batch(
                "INSERT INTO event_audience (tenant, user, cursor) VALUES ('t', 'alice', 1), ('t', 'bob', 1);",
            )
            .unwrap();
        }
        let store = SqliteStore::open(&path, Default::default()).unwrap();
        let ids: HashSet<MessageId> = [msg.id.clone()].into();
        assert_eq!(store.scrub_messages(&t, &ids).await.unwrap(), 1);
        let alice = UserId::parse("alice").unwrap();
        let page = EventLog::read(&store, &t, &alice, Cursor(0), 10)
            .await
            .unwrap();
        assert_eq!(page.len(), 1);
        assert_eq!(page[0].event.audience.len(), 2);
        let EventPayload::MessageCreated { message } = &page[0].event.payload else {
            panic!("a message event");
        };
        assert_eq!((message.body.as_deref(), &message.id), (None, &msg.id));
    }
}
