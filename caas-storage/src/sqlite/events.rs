use std::sync::Arc;

use async_trait::async_trait;
use caas_core::events::{Event, LoggedEvent};
use caas_core::ids::{Cursor, TenantId, UserId};
use caas_core::ports::EventLog;
use caas_core::{Error, Result};
use rusqlite::{Connection, params};

use super::SqliteStore;
use super::codec::{bound, from_json, limit, to_json, to_u64};
use super::error::Ctx;
use super::writer::Tx;

fn head(c: &Connection, tenant: &str) -> Result<i64> {
    // MAX over the primary key's prefix is one b-tree seek.
    c.prepare_cached("SELECT COALESCE(MAX(cursor), 0) FROM events WHERE tenant = ?1")
        .and_then(|mut s| s.query_row([tenant], |r| r.get(0)))
        .ctx("read event log head")
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

/// The writer's second half: the event row and its audience rows. Without a
/// savepoint (see `writer.rs`): the event row is new by construction (the single
/// writer picked its cursor) and the audience rows ignore duplicates, so nothing
/// can refuse a write after the first.
pub(super) fn put_event(
    c: &Tx<'_, '_>,
    tenant: &str,
    cursor: i64,
    doc: &str,
    audience: &[UserId],
) -> Result<()> {
    c.hot("INSERT INTO events (tenant, cursor, doc) VALUES (?1, ?2, ?3)")?
        .borrow_mut()
        .execute(params![tenant, cursor, doc])
        .ctx("append event")?;
    let add = c.hot(
        "INSERT INTO event_audience (tenant, user, cursor) VALUES (?1, ?2, ?3)
         ON CONFLICT DO NOTHING",
    )?;
    let mut add = add.borrow_mut();
    for user in audience {
        add.execute(params![tenant, user.as_str(), cursor])
            .ctx("append event audience")?;
    }
    Ok(())
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
        let doc = to_json(&*event, "event")?;
        self.write_prechecked(move |c| {
            let tenant = event.tenant.as_str();
            let cursor = next_cursor(c, tenant)?;
            let logged = Cursor(to_u64(cursor, "cursor")?);
            put_event(c, tenant, cursor, &doc, &event.audience)?;
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
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT e.cursor, e.doc FROM event_audience a
                     JOIN events e ON e.tenant = a.tenant AND e.cursor = a.cursor
                     WHERE a.tenant = ?1 AND a.user = ?2 AND a.cursor > ?3
                     ORDER BY a.cursor LIMIT ?4",
                )
                .ctx("read event log")?;
            let rows = stmt
                .query_map(
                    params![tenant.as_str(), user.as_str(), after, limit(n)],
                    |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)),
                )
                .ctx("read event log")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("read event log")?;
            rows.into_iter()
                .map(|(cursor, doc)| {
                    Ok(LoggedEvent {
                        cursor: Cursor(to_u64(cursor, "cursor")?),
                        event: Arc::new(from_json(&doc, "event")?),
                    })
                })
                .collect()
        })
        .await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Cursor> {
        let tenant = tenant.clone();
        self.read(move |c| Ok(Cursor(to_u64(head(c, tenant.as_str())?, "cursor")?)))
            .await
    }
}
