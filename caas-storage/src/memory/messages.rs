use std::collections::BTreeSet;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use caas_core::events::Announce;
use caas_core::ids::{ClientMsgId, ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Message, NewMessage, Pin};
use caas_core::ports::{Appended, Changed, ConversationHead, HistoryPage, MessageStore};
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};

use super::{Concurrent, Map, MemoryEventLog, poisoned};

/// Fixed-size chunks, so a long conversation never reallocates (and copies) one huge
/// vector as it grows.
const CHUNK: usize = 1024;

/// Messages in seq order: index `i` holds seq `i + 1`, which makes gap-freeness
/// structural.
#[derive(Debug, Default)]
struct Chunked {
    chunks: Vec<Vec<Message>>,
    len: usize,
}

impl Chunked {
    fn len(&self) -> usize {
        self.len
    }

    fn push(&mut self, m: Message) {
        if self.len.is_multiple_of(CHUNK) {
            self.chunks.push(Vec::with_capacity(CHUNK));
        }
        if let Some(last) = self.chunks.last_mut() {
            last.push(m);
            self.len += 1;
        }
    }

    fn get(&self, i: usize) -> Option<&Message> {
        self.chunks.get(i / CHUNK)?.get(i % CHUNK)
    }

    fn get_mut(&mut self, i: usize) -> Option<&mut Message> {
        self.chunks.get_mut(i / CHUNK)?.get_mut(i % CHUNK)
    }

    fn last(&self) -> Option<&Message> {
        self.len.checked_sub(1).and_then(|i| self.get(i))
    }

    fn range(&self, start: usize, end: usize) -> impl Iterator<Item = &Message> {
        (start..end.min(self.len)).filter_map(|i| self.get(i))
    }
}

/// One conversation's messages and their indexes.
#[derive(Debug, Default)]
struct Log {
    messages: Chunked,
    by_id: Map<MessageId, usize>,
    by_key: Map<(UserId, ClientMsgId), usize>,
    pinned: BTreeSet<usize>,
}

impl Log {
    fn index(&self, id: &MessageId) -> Result<usize> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| Error::not_found(EntityKind::Message, id))
    }

    fn at(&mut self, i: usize) -> Result<&mut Message> {
        self.messages
            .get_mut(i)
            .ok_or_else(|| Error::internal("message index out of step with the log"))
    }

    fn live(&mut self, id: &MessageId) -> Result<&mut Message> {
        let i = self.index(id)?;
        let m = self.at(i)?;
        if m.is_deleted() {
            return Err(Error::conflict(format!("message `{id}` was deleted")));
        }
        Ok(m)
    }
}

/// Messages in memory: one mutex per conversation, so sends to different
/// conversations never contend. A send logs its `message.created` event in the
/// [`MemoryEventLog`] it was built with, under the conversation's lock, so the
/// log holds each conversation's messages in seq order.
#[derive(Debug, Default)]
pub struct MemoryMessageStore {
    logs: Concurrent<(TenantId, ConversationId), Arc<Mutex<Log>>>,
    events: Arc<MemoryEventLog>,
}

impl MemoryMessageStore {
    /// A store that logs the events of new messages in `events` (the event log
    /// of the same [`caas_core::ports::Backends`]).
    pub fn with_event_log(events: Arc<MemoryEventLog>) -> Self {
        Self {
            logs: Concurrent::default(),
            events,
        }
    }

    /// The event log it writes to.
    pub fn event_log(&self) -> &Arc<MemoryEventLog> {
        &self.events
    }

    fn log(&self, tenant: &TenantId, conv: &ConversationId) -> Option<Arc<Mutex<Log>>> {
        self.logs
            .get(&(tenant.clone(), conv.clone()))
            .map(|l| l.clone())
    }

    fn log_or_new(&self, tenant: &TenantId, conv: &ConversationId) -> Arc<Mutex<Log>> {
        self.logs
            .entry((tenant.clone(), conv.clone()))
            .or_default()
            .clone()
    }

    fn with_log<T>(
        &self,
        tenant: &TenantId,
        conv: &ConversationId,
        id: &MessageId,
        f: impl FnOnce(&mut Log) -> Result<T>,
    ) -> Result<T> {
        let log = self
            .log(tenant, conv)
            .ok_or_else(|| Error::not_found(EntityKind::Message, id))?;
        let mut log = log.lock().map_err(poisoned)?;
        f(&mut log)
    }
}

#[async_trait]
impl MessageStore for MemoryMessageStore {
    async fn append(&self, message: NewMessage, announce: Announce) -> Result<Appended> {
        let log = self.log_or_new(&message.tenant, &message.conversation);
        let mut log = log.lock().map_err(poisoned)?;
        let key = (message.sender.clone(), message.client_msg_id.clone());
        if let Some(&i) = log.by_key.get(&key) {
            let original = log
                .messages
                .get(i)
                .cloned()
                .ok_or_else(|| Error::internal("idempotency index out of step"))?;
            return Ok(Appended::Existing(original));
        }
        let i = log.messages.len();
        let stored = message.into_message(Seq(i as u64 + 1));
        let event = Arc::new(announce.message_created(&stored));
        // Logged first: it is the step that can fail, and nothing is stored then.
        let cursor = self.events.append_now(event.clone())?;
        log.by_id.insert(stored.id.clone(), i);
        log.by_key.insert(key, i);
        log.messages.push(stored.clone());
        Ok(Appended::Created {
            message: stored,
            event,
            cursor,
        })
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>> {
        let Some(log) = self.log(tenant, conversation) else {
            return Ok(None);
        };
        let log = log.lock().map_err(poisoned)?;
        Ok(log
            .by_id
            .get(id)
            .and_then(|&i| log.messages.get(i).cloned()))
    }

    async fn edit(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message> {
        self.with_log(tenant, conversation, id, |log| {
            let m = log.live(id)?;
            if m.body.is_none() {
                return Err(Error::conflict("only plain-text messages can be edited"));
            }
            m.apply_edit(body.to_owned(), at);
            Ok(m.clone())
        })
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Changed<Message>> {
        self.with_log(tenant, conversation, id, |log| {
            let i = log.index(id)?;
            let m = log.at(i)?;
            if m.is_deleted() {
                return Ok(Changed {
                    value: m.clone(),
                    changed: false,
                });
            }
            m.apply_delete(by.clone(), at);
            let value = m.clone();
            log.pinned.remove(&i);
            Ok(Changed {
                value,
                changed: true,
            })
        })
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
        self.with_log(tenant, conversation, id, |log| {
            let m = log.live(id)?;
            let changed = m.apply_reaction(user, emoji, add);
            Ok(Changed {
                value: m.clone(),
                changed,
            })
        })
    }

    async fn pin(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        pin: Option<(&UserId, Timestamp)>,
    ) -> Result<Changed<Message>> {
        self.with_log(tenant, conversation, id, |log| {
            let i = log.index(id)?;
            let m = log.live(id)?;
            let changed = m.pinned.is_some() != pin.is_some();
            if changed {
                m.pinned = pin.map(|(by, at)| Pin {
                    pinned_by: by.clone(),
                    pinned_at: at,
                });
            }
            let value = m.clone();
            if pin.is_some() {
                log.pinned.insert(i);
            } else {
                log.pinned.remove(&i);
            }
            Ok(Changed { value, changed })
        })
    }

    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        page: HistoryPage,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let Some(log) = self.log(tenant, conversation) else {
            return Ok(Vec::new());
        };
        let log = log.lock().map_err(poisoned)?;
        let n = log.messages.len();
        // Seq s lives at index s - 1.
        let (start, end) = match page {
            HistoryPage::Latest => (n.saturating_sub(limit), n),
            HistoryPage::Before(s) => {
                let end = (s.get().saturating_sub(1) as usize).min(n);
                (end.saturating_sub(limit), end)
            }
            HistoryPage::After(s) => {
                let start = (s.get() as usize).min(n);
                (start, start.saturating_add(limit).min(n))
            }
        };
        Ok(log.messages.range(start, end).cloned().collect())
    }

    async fn pinned(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Message>> {
        let Some(log) = self.log(tenant, conversation) else {
            return Ok(Vec::new());
        };
        let log = log.lock().map_err(poisoned)?;
        Ok(log
            .pinned
            .iter()
            .filter_map(|&i| log.messages.get(i).cloned())
            .collect())
    }

    async fn heads(
        &self,
        tenant: &TenantId,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationHead>> {
        conversations
            .iter()
            .map(|c| {
                let Some(log) = self.log(tenant, c) else {
                    return Ok(ConversationHead::default());
                };
                let log = log.lock().map_err(poisoned)?;
                Ok(ConversationHead {
                    last_seq: Seq(log.messages.len() as u64),
                    last_activity: log.messages.last().map(|m| m.created_at),
                })
            })
            .collect()
    }

    async fn count_from_others(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        after: Seq,
    ) -> Result<u64> {
        let Some(log) = self.log(tenant, conversation) else {
            return Ok(0);
        };
        let log = log.lock().map_err(poisoned)?;
        let start = (after.get() as usize).min(log.messages.len());
        Ok(log
            .messages
            .range(start, log.messages.len())
            .filter(|m| &m.sender != user)
            .count() as u64)
    }
}
