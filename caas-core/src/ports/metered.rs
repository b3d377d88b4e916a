//! Store and bus timings (feature `metrics`), as decorators: each wraps a port
//! and is itself an implementation of the same trait, so any backend gets timed
//! without knowing about metrics. They record into the `metrics` facade; the
//! host installs the recorder (the gateway's `/metrics` is one).

use std::sync::Arc;
use std::time::Instant;

use crate::Result;
use crate::events::{Announce, Event, LoggedEvent};
use crate::ids::{ConversationId, Cursor, MessageId, Seq, TenantId, UserId};
use crate::model::{Conversation, Member, Message, NewMessage};
use crate::ports::{
    Appended, Backends, Changed, ConversationHead, ConversationStore, Created, EventBus, EventLog,
    HistoryPage, MessageStore, Subscription,
};
use crate::time::Timestamp;
use async_trait::async_trait;

/// Wraps the hot ports of `backends` (messages, conversations, the event log and
/// the bus) so each call records `caas_store_duration_seconds{port, op, outcome}`.
pub fn metered(mut backends: Backends) -> Backends {
    metrics::describe_histogram!(
        "caas_store_duration_seconds",
        metrics::Unit::Seconds,
        "store and bus call latency by port and operation"
    );
    backends.messages = Arc::new(Metered {
        inner: backends.messages,
        port: "messages",
    });
    backends.conversations = Arc::new(Metered {
        inner: backends.conversations,
        port: "conversations",
    });
    backends.events = Arc::new(Metered {
        inner: backends.events,
        port: "event_log",
    });
    backends.bus = Arc::new(Metered {
        inner: backends.bus,
        port: "bus",
    });
    backends
}

#[derive(Debug)]
struct Metered<T: ?Sized> {
    inner: Arc<T>,
    port: &'static str,
}

impl<T: ?Sized> Metered<T> {
    async fn time<R>(
        &self,
        op: &'static str,
        f: impl std::future::Future<Output = Result<R>>,
    ) -> Result<R> {
        let start = Instant::now();
        let r = f.await;
        let outcome = if r.is_ok() { "ok" } else { "error" };
        metrics::histogram!("caas_store_duration_seconds", "port" => self.port, "op" => op, "outcome" => outcome).record(start.elapsed().as_secs_f64());
        r
    }
}

#[async_trait]
impl MessageStore for Metered<dyn MessageStore> {
    async fn append(&self, m: NewMessage, announce: Announce) -> Result<Appended> {
        self.time("append", self.inner.append(m, announce)).await
    }
    async fn get(
        &self,
        t: &TenantId,
        c: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>> {
        self.time("get", self.inner.get(t, c, id)).await
    }
    async fn edit(
        &self,
        t: &TenantId,
        c: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message> {
        self.time("edit", self.inner.edit(t, c, id, body, at)).await
    }
    async fn delete(
        &self,
        t: &TenantId,
        c: &ConversationId,
        id: &MessageId,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Changed<Message>> {
        self.time("delete", self.inner.delete(t, c, id, by, at))
            .await
    }
    async fn react(
        &self,
        t: &TenantId,
        c: &ConversationId,
        id: &MessageId,
        u: &UserId,
        emoji: &str,
        add: bool,
    ) -> Result<Changed<Message>> {
        self.time("react", self.inner.react(t, c, id, u, emoji, add))
            .await
    }
    async fn pin(
        &self,
        t: &TenantId,
        c: &ConversationId,
        id: &MessageId,
        pin: Option<(&UserId, Timestamp)>,
    ) -> Result<Changed<Message>> {
        self.time("pin", self.inner.pin(t, c, id, pin)).await
    }
    async fn history(
        &self,
        t: &TenantId,
        c: &ConversationId,
        page: HistoryPage,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.time("history", self.inner.history(t, c, page, limit))
            .await
    }
    async fn pinned(&self, t: &TenantId, c: &ConversationId) -> Result<Vec<Message>> {
        self.time("pinned", self.inner.pinned(t, c)).await
    }
    async fn heads(&self, t: &TenantId, cs: &[ConversationId]) -> Result<Vec<ConversationHead>> {
        self.time("heads", self.inner.heads(t, cs)).await
    }
    async fn count_from_others(
        &self,
        t: &TenantId,
        c: &ConversationId,
        u: &UserId,
        after: Seq,
    ) -> Result<u64> {
        self.time(
            "count_from_others",
            self.inner.count_from_others(t, c, u, after),
        )
        .await
    }
}

#[async_trait]
impl ConversationStore for Metered<dyn ConversationStore> {
    async fn create(&self, c: &Conversation, m: &[Member]) -> Result<Created<Conversation>> {
        self.time("create", self.inner.create(c, m)).await
    }
    async fn get(&self, t: &TenantId, id: &ConversationId) -> Result<Option<Conversation>> {
        self.time("get", self.inner.get(t, id)).await
    }
    async fn update(&self, c: &Conversation) -> Result<()> {
        self.time("update", self.inner.update(c)).await
    }
    async fn member(&self, t: &TenantId, c: &ConversationId, u: &UserId) -> Result<Option<Member>> {
        self.time("member", self.inner.member(t, c, u)).await
    }
    async fn members(&self, t: &TenantId, c: &ConversationId) -> Result<Vec<Member>> {
        self.time("members", self.inner.members(t, c)).await
    }
    async fn put_member(&self, t: &TenantId, m: &Member) -> Result<bool> {
        self.time("put_member", self.inner.put_member(t, m)).await
    }
    async fn remove_member(&self, t: &TenantId, c: &ConversationId, u: &UserId) -> Result<bool> {
        self.time("remove_member", self.inner.remove_member(t, c, u))
            .await
    }
    async fn list_for_user(&self, t: &TenantId, u: &UserId) -> Result<Vec<(Conversation, Member)>> {
        self.time("list_for_user", self.inner.list_for_user(t, u))
            .await
    }
    async fn list(
        &self,
        t: &TenantId,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        self.time("list", self.inner.list(t, after, limit)).await
    }
}

#[async_trait]
impl EventLog for Metered<dyn EventLog> {
    async fn append(&self, e: Arc<Event>) -> Result<Cursor> {
        self.time("append", self.inner.append(e)).await
    }
    async fn read(
        &self,
        t: &TenantId,
        u: &UserId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        self.time("read", self.inner.read(t, u, after, limit)).await
    }
    async fn read_tenant(
        &self,
        t: &TenantId,
        after: Cursor,
        limit: usize,
    ) -> Result<Vec<LoggedEvent>> {
        self.time("read_tenant", self.inner.read_tenant(t, after, limit))
            .await
    }
    async fn head(&self, t: &TenantId) -> Result<Cursor> {
        self.time("head", self.inner.head(t)).await
    }
    async fn scrub_messages(
        &self,
        t: &TenantId,
        messages: &std::collections::HashSet<crate::ids::MessageId>,
    ) -> Result<u64> {
        self.time("scrub", self.inner.scrub_messages(t, messages))
            .await
    }
}

#[async_trait]
impl EventBus for Metered<dyn EventBus> {
    async fn publish(&self, e: Arc<Event>) -> Result<()> {
        self.time("publish", self.inner.publish(e)).await
    }
    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        self.inner.subscribe().await
    }
}
