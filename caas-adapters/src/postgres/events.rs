//! The event log behind `sync`.
//!
//! **Order.** A tenant's cursors are handed out under its `log_heads` row, which
//! the logging transaction holds until it commits. So cursors become visible in
//! the order they were given: once a reader sees cursor 12, cursor 11 is either
//! visible too or never will be (its transaction rolled back, and then no other
//! event has 11 either, since 12 was taken after 11's transaction ended). A
//! reader can page by "cursor above the last I saw" and never skip an event
//! that commits later. A message's event takes its cursor after its seq, in the
//! same transaction, and the next message of the conversation waits for that
//! transaction to end before it gets its seq: the log holds each conversation's
//! messages in seq order. The price is that one tenant's logging transactions
//! commit one after another; group commit makes one of them carry many events.
//!
//! **Audiences** are stored as sets: the sorted list of users, once per tenant
//! and distinct list (`audiences`), indexed by user (`audience_members`). A read
//! walks the user's sets, takes the first page of each set's events after the
//! cursor from `events_by_audience`, and merges them: a page costs about the
//! events it returns times the user's sets, however large the log is.

use std::collections::HashSet;
use std::sync::{Arc, PoisonError};

use async_trait::async_trait;
use caas_core::events::{Event, EventPayload, LoggedEvent};
use caas_core::ids::{CorrelationId, Cursor, MessageId, Seq, TenantId, UserId};
use caas_core::ports::EventLog;
use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use serde::Serialize;

use super::codec::{bound, from_json, get, id, limit, to_json, to_u64};
use super::{MAX_REMEMBERED, PostgresStore};

/// How many message events a scrub reads per query: it walks the tenant's
/// whole log, and a page bounds what it holds in memory at once.
const SCRUB_PAGE: usize = 1000;

/// An audience as stored: sorted, without duplicates, named by a digest.
pub(super) struct AudienceSet {
    pub(super) digest: String,
    /// The users, one per line (ids never contain a newline).
    pub(super) joined: String,
}

impl AudienceSet {
    pub(super) fn new(audience: &[UserId]) -> Self {
        let mut users: Vec<&str> = audience.iter().map(|u| u.as_str()).collect();
        users.sort_unstable();
        users.dedup();
        let joined = users.join("\n");
        let d = ring::digest::digest(&ring::digest::SHA256, joined.as_bytes());
        let digest = d.as_ref().iter().map(|b| format!("{b:02x}")).collect();
        Self { digest, joined }
    }
}

/// [`Event`]'s stored form: the same fields with an empty audience (the set
/// holds it).
#[derive(Serialize)]
struct EventDoc<'a> {
    tenant: &'a TenantId,
    correlation_id: &'a CorrelationId,
    at: Timestamp,
    audience: [UserId; 0],
    payload: &'a EventPayload,
}

pub(super) fn event_doc(event: &Event) -> Result<String> {
    to_json(
        &EventDoc {
            tenant: &event.tenant,
            correlation_id: &event.correlation_id,
            at: event.at,
            audience: [],
            payload: &event.payload,
        },
        "event",
    )
}

impl PostgresStore {
    pub(super) fn known_audience(&self, tenant: &TenantId, digest: &str) -> Option<i64> {
        self.shared()
            .audience_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&(tenant.clone(), digest.to_owned()))
            .copied()
    }

    pub(super) fn remember_audience(&self, tenant: &TenantId, set: AudienceSet, id: i64) {
        let mut ids = self
            .shared()
            .audience_ids
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if ids.len() >= MAX_REMEMBERED {
            ids.clear();
        }
        ids.insert((tenant.clone(), set.digest), id);
    }

    /// The users of the audience sets `ids`, from memory or the database.
    async fn audience_users(
        &self,
        c: &mut super::pool::Lease<'_>,
        ids: &[i64],
    ) -> Result<std::collections::HashMap<i64, Arc<[UserId]>>> {
        let mut found = std::collections::HashMap::new();
        let mut missing = Vec::new();
        {
            let known = self
                .shared()
                .audience_users
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            for id in ids {
                match known.get(id) {
                    Some(users) => {
                        found.insert(*id, users.clone());
                    }
                    None => missing.push(*id),
                }
            }
        }
        if missing.is_empty() {
            return Ok(found);
        }
        missing.sort_unstable();
        missing.dedup();
        let rows = c
            .query(
                "SELECT id, users FROM audiences WHERE id = ANY($1::bigint[])",
                &[&missing],
                "read audiences",
            )
            .await?;
        let mut known = self
            .shared()
            .audience_users
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        if known.len() >= MAX_REMEMBERED {
            known.clear();
        }
        for r in &rows {
            let set: i64 = get(r, 0)?;
            let joined: String = get(r, 1)?;
            let users: Arc<[UserId]> = joined
                .split('\n')
                .filter(|u| !u.is_empty())
                .map(id::<UserId>)
                .collect::<Result<Vec<_>>>()?
                .into();
            known.insert(set, users.clone());
            found.insert(set, users);
        }
        Ok(found)
    }

    /// Rows of `cur, doc, audience, msg_seq` as logged events, each with its
    /// set's users as its audience and a message's seq from `msg_seq`.
    async fn logged(
        &self,
        c: &mut super::pool::Lease<'_>,
        rows: &[tokio_postgres::Row],
    ) -> Result<Vec<LoggedEvent>> {
        let sets: Vec<i64> = rows
            .iter()
            .map(|r| get::<i64>(r, 2))
            .collect::<Result<_>>()?;
        let users = self.audience_users(c, &sets).await?;
        rows.iter()
            .map(|r| {
                let (cursor, doc, set, msg_seq): (i64, String, i64, Option<i64>) =
                    (get(r, 0)?, get(r, 1)?, get(r, 2)?, get(r, 3)?);
                let mut event: Event = from_json(&doc, "event")?;
                event.audience = users.get(&set).cloned().ok_or_else(|| {
                    Error::internal("postgres: an event's audience set is missing")
                })?;
                if let (Some(seq), EventPayload::MessageCreated { message }) =
                    (msg_seq, &mut event.payload)
                {
                    message.seq = Seq(to_u64(seq, "seq")?);
                }
                Ok(LoggedEvent {
                    cursor: Cursor(to_u64(cursor, "cursor")?),
                    event: Arc::new(event),
                })
            })
            .collect()
    }
}

#[async_trait]
impl EventLog for PostgresStore {
    async fn append(&self, event: Arc<Event>) -> Result<Cursor> {
        if event.payload.is_ephemeral() {
            return Err(Error::invalid(
                "event",
                format!("`{}` is ephemeral and not logged", event.payload.kind()),
            ));
        }
        let doc = event_doc(&event)?;
        let set = AudienceSet::new(&event.audience);
        let known = self.known_audience(&event.tenant, &set.digest);
        let users = if known.is_some() {
            ""
        } else {
            set.joined.as_str()
        };
        let row = self
            .conn()
            .await?
            .query_one(
                "SELECT o_cur, o_audience FROM caas_log($1, $2, $3, $4, $5)",
                &[&event.tenant.as_str(), &doc, &known, &set.digest, &users],
                "append event",
            )
            .await?;
        let (cursor, audience): (i64, i64) = (get(&row, 0)?, get(&row, 1)?);
        self.remember_audience(&event.tenant, set, audience);
        Ok(Cursor(to_u64(cursor, "cursor")?))
    }

    async fn read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: Cursor,
        n: usize,
    ) -> Result<Vec<LoggedEvent>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        // The first page of each of the user's sets, merged; only the page's
        // events are then read whole.
        let rows = c
            .query(
                "SELECT e.cur, e.doc, e.audience, e.msg_seq FROM (
                     SELECT x.cur FROM audience_members am
                     CROSS JOIN LATERAL (
                         SELECT ev.cur FROM events ev
                         WHERE ev.tenant = am.tenant AND ev.audience = am.audience AND ev.cur > $3
                         ORDER BY ev.cur LIMIT $4
                     ) x
                     WHERE am.tenant = $1 AND am.member = $2
                     ORDER BY x.cur LIMIT $4
                 ) page
                 JOIN events e ON e.tenant = $1 AND e.cur = page.cur
                 ORDER BY e.cur",
                &[&tenant.as_str(), &user.as_str(), &bound(after.0), &limit(n)],
                "read event log",
            )
            .await?;
        self.logged(&mut c, &rows).await
    }

    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Cursor,
        n: usize,
    ) -> Result<Vec<LoggedEvent>> {
        if n == 0 {
            return Ok(Vec::new());
        }
        let mut c = self.conn().await?;
        // A range of the primary key. Cursors become visible in order (see
        // **Order** above), so paging by cursor skips nothing here either.
        let rows = c
            .query(
                "SELECT cur, doc, audience, msg_seq FROM events
                 WHERE tenant = $1 AND cur > $2
                 ORDER BY cur LIMIT $3",
                &[&tenant.as_str(), &bound(after.0), &limit(n)],
                "read the tenant's event log",
            )
            .await?;
        self.logged(&mut c, &rows).await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Cursor> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT head FROM log_heads WHERE tenant = $1",
                &[&tenant.as_str()],
                "read event log head",
            )
            .await?;
        match row {
            Some(r) => Ok(Cursor(to_u64(get(&r, 0)?, "cursor")?)),
            None => Ok(Cursor(0)),
        }
    }

    /// Page by page through the tenant's message events, each page's scrubbed
    /// documents written back by one statement. Not one transaction: the log
    /// can be long, and a transaction held across it would hold back vacuum
    /// for the whole database. A scrub that fails part-way leaves some events
    /// scrubbed, which a retry (the scrub is idempotent) completes. Rows are not
    /// locked while read: nothing but a scrub rewrites a logged event, and two
    /// scrubs that both rewrite one event write the same document.
    async fn scrub_messages(
        &self,
        tenant: &TenantId,
        messages: &HashSet<MessageId>,
    ) -> Result<u64> {
        if messages.is_empty() {
            return Ok(0);
        }
        let t = tenant.as_str();
        let mut c = self.conn().await?;
        let (mut after, mut changed) = (0i64, 0u64);
        loop {
            // Only message events can change. Their compact JSON holds the
            // quoted kind, and a body's quotes are escaped, so the filter never
            // drops one; a false match is decoded and left alone.
            let rows = c
                .query(
                    "SELECT cur, doc FROM events
                     WHERE tenant = $1 AND cur > $2
                       AND (doc LIKE '%\"message.created\"%' OR doc LIKE '%\"message.edited\"%')
                     ORDER BY cur LIMIT $3",
                    &[&t, &after, &limit(SCRUB_PAGE)],
                    "read events to scrub",
                )
                .await?;
            let (mut curs, mut docs): (Vec<i64>, Vec<String>) = (Vec::new(), Vec::new());
            for r in &rows {
                let (cur, doc): (i64, String) = (get(r, 0)?, get(r, 1)?);
                after = cur;
                let mut event: Event = from_json(&doc, "event")?;
                if event.scrub_messages(messages) {
                    // The document is re-encoded as appends write it; the
                    // `audience` and `msg_seq` columns that reads combine with
                    // it stay as they are (a `message.created` document keeps
                    // the seq it was logged with; reads take `msg_seq`).
                    curs.push(cur);
                    docs.push(event_doc(&event)?);
                }
            }
            if !curs.is_empty() {
                changed += c
                    .execute(
                        "UPDATE events e SET doc = u.doc
                         FROM unnest($2::bigint[], $3::text[]) AS u(cur, doc)
                         WHERE e.tenant = $1 AND e.cur = u.cur",
                        &[&t, &curs, &docs],
                        "scrub events",
                    )
                    .await?;
            }
            if rows.len() < SCRUB_PAGE {
                return Ok(changed);
            }
        }
    }
}
