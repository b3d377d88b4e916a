use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use caas_core::events::{Event, LoggedEvent};
use caas_core::ids::{Cursor, MessageId, TenantId, UserId};
use caas_core::ports::EventLog;
use caas_core::{Error, Result};

use super::{Concurrent, Map, poisoned};

/// One tenant's log: events in cursor order (cursor = index + 1) and, per user, the
/// cursors of the events they may see, so a read never scans others' events.
#[derive(Debug, Default)]
struct TenantLog {
    events: Vec<Arc<Event>>,
    by_user: Map<UserId, Vec<u64>>,
}

/// The sync log in memory.
#[derive(Debug, Default)]
pub struct MemoryEventLog {
    tenants: Concurrent<TenantId, Arc<Mutex<TenantLog>>>,
}

impl MemoryEventLog {
    /// [`EventLog::append`] without the async wrapper, for the message store that
    /// logs under its own lock.
    pub(super) fn append_now(&self, event: Arc<Event>) -> Result<Cursor> {
        if event.payload.is_ephemeral() {
            return Err(Error::invalid(
                "event",
                format!("`{}` is ephemeral and not logged", event.payload.kind()),
            ));
        }
        let log = self
            .tenants
            .entry(event.tenant.clone())
            .or_default()
            .clone();
        let mut log = log.lock().map_err(poisoned)?;
        let cursor = log.events.len() as u64 + 1;
        for u in event.audience.iter() {
            log.by_user.entry(u.clone()).or_default().push(cursor);
        }
        log.events.push(event);
        Ok(Cursor(cursor))
    }
}

#[async_trait]
impl EventLog for MemoryEventLog {
    async fn append(&self, event: Arc<Event>) -> Result<Cursor> {
        self.append_now(event)
    }

    async fn read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        let Some(log) = self.tenants.get(tenant).map(|l| l.clone()) else {
            return Ok(Vec::new());
        };
        let log = log.lock().map_err(poisoned)?;
        let Some(cursors) = log.by_user.get(user) else {
            return Ok(Vec::new());
        };
        let start = cursors.partition_point(|c| *c <= after.0);
        Ok(cursors[start..]
            .iter()
            .take(limit)
            .filter_map(|&c| {
                let event = log.events.get(usize::try_from(c - 1).ok()?)?.clone();
                Some(LoggedEvent {
                    cursor: Cursor(c),
                    event,
                })
            })
            .collect())
    }

    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        let Some(log) = self.tenants.get(tenant).map(|l| l.clone()) else {
            return Ok(Vec::new());
        };
        let log = log.lock().map_err(poisoned)?;
        let start = usize::try_from(after.0).unwrap_or(usize::MAX);
        Ok(log
            .events
            .iter()
            .enumerate()
            .skip(start)
            .take(limit)
            .map(|(i, event)| LoggedEvent {
                cursor: Cursor(i as u64 + 1),
                event: event.clone(),
            })
            .collect())
    }

    async fn head(&self, tenant: &TenantId) -> Result<Cursor> {
        let Some(log) = self.tenants.get(tenant).map(|l| l.clone()) else {
            return Ok(Cursor(0));
        };
        let log = log.lock().map_err(poisoned)?;
        Ok(Cursor(log.events.len() as u64))
    }

    async fn scrub_messages(
        &self,
        tenant: &TenantId,
        messages: &std::collections::HashSet<MessageId>,
    ) -> Result<u64> {
        let Some(log) = self.tenants.get(tenant).map(|l| l.clone()) else {
            return Ok(0);
        };
        let mut log = log.lock().map_err(poisoned)?;
        let mut changed = 0;
        for event in &mut log.events {
            let mut scrubbed = Event::clone(event);
            if scrubbed.scrub_messages(messages) {
                *event = Arc::new(scrubbed);
                changed += 1;
            }
        }
        Ok(changed)
    }
}
