//! [`EncryptedEventLog`]: the event log with the bodies its events carry sealed
//! at rest.

use std::sync::Arc;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::events::{Event, LoggedEvent};
use caas_core::ids::{Cursor, MessageId, TenantId, UserId};
use caas_core::ports::EventLog;

use super::{BodyKeys, Sealer};

/// An [`EventLog`] that seals the message body of the events it appends
/// (`message.edited`; a send's `message.created` is logged by the message store
/// from the already sealed message) and opens every body it reads.
#[derive(Debug, Clone)]
pub struct EncryptedEventLog {
    inner: Arc<dyn EventLog>,
    sealer: Sealer,
}

impl EncryptedEventLog {
    /// Wraps `inner`, with keys from `keys`.
    pub fn new(inner: Arc<dyn EventLog>, keys: Arc<dyn BodyKeys>) -> Self {
        Self {
            inner,
            sealer: Sealer { keys },
        }
    }

    async fn open(&self, logged: Vec<LoggedEvent>) -> Result<Vec<LoggedEvent>> {
        let mut out = Vec::with_capacity(logged.len());
        for l in logged {
            out.push(LoggedEvent {
                cursor: l.cursor,
                event: self.sealer.event(l.event, false).await?,
            });
        }
        Ok(out)
    }
}

#[async_trait]
impl EventLog for EncryptedEventLog {
    async fn append(&self, event: Arc<Event>) -> Result<Cursor> {
        let sealed = self.sealer.event(event, true).await?;
        self.inner.append(sealed).await
    }

    async fn read(
        &self,
        tenant: &TenantId,
        user: &UserId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        let logged = self.inner.read(tenant, user, after, limit).await?;
        self.open(logged).await
    }

    async fn read_tenant(
        &self,
        tenant: &TenantId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        let logged = self.inner.read_tenant(tenant, after, limit).await?;
        self.open(logged).await
    }

    async fn head(&self, tenant: &TenantId) -> Result<Cursor> {
        self.inner.head(tenant).await
    }

    /// Scrubbing removes the sealed bodies whole: nothing to open.
    async fn scrub_messages(
        &self,
        tenant: &TenantId,
        messages: &std::collections::HashSet<MessageId>,
    ) -> Result<u64> {
        self.inner.scrub_messages(tenant, messages).await
    }
}
