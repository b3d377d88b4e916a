//! The node's live connections by tenant, user and device, and the non-blocking
//! hand-off of frames to them.
//!
//! Fan-out never awaits a connection: it appends to the connection's bounded
//! outbox, and a connection whose outbox is full is told to close (slow
//! consumer) instead of slowing everyone else. The locks are std locks because
//! they are never held across an `.await`: dispatch takes the registry's for
//! reading, connects and disconnects take it briefly for writing.
//!
//! The outbox is a plain deque behind a mutex rather than a channel: it holds no
//! memory while empty (a channel allocates its first block of slots up front),
//! and most connections are idle most of the time.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU8, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use axum::extract::ws::Message;
use caas_core::Principal;
use caas_core::events::Event;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::PresenceStatus;
use tokio::sync::Notify;

use super::codec::{self, Encoded};
use super::frames::Codec;

/// Why a connection closes, and how.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CloseReason {
    /// The close code to send; `None` when the peer closed first or the socket is
    /// gone (then there is nothing to say).
    pub(crate) code: Option<u16>,
    /// The close frame's reason (at most 123 bytes on the wire).
    pub(crate) reason: &'static str,
    /// Whether the frames already queued go out before the close frame. False
    /// when the client is the problem (slow, idle): waiting on it would only
    /// hold the connection longer.
    pub(crate) drain: bool,
}

impl CloseReason {
    pub(crate) const PEER_CLOSED: Self = Self {
        code: None,
        reason: "closed by the client",
        drain: false,
    };
    pub(crate) const GONE: Self = Self {
        code: None,
        reason: "connection lost",
        drain: false,
    };
    pub(crate) const SLOW_CONSUMER: Self = Self {
        code: Some(4008),
        reason: "slow consumer: outbound queue full; reconnect and sync",
        drain: false,
    };
    pub(crate) const FLOOD: Self = Self {
        code: Some(1008),
        reason: "flood: too many frames over the rate limit",
        drain: true,
    };
    pub(crate) const TOO_BIG: Self = Self {
        code: Some(1009),
        reason: "message over the size limit",
        drain: true,
    };
    pub(crate) const PROTOCOL_ERROR: Self = Self {
        code: Some(1002),
        reason: "protocol error",
        drain: false,
    };
    pub(crate) const INVALID_UTF8: Self = Self {
        code: Some(1007),
        reason: "text frame is not valid UTF-8",
        drain: false,
    };
    pub(crate) const IDLE: Self = Self {
        code: Some(1001),
        reason: "idle timeout",
        drain: false,
    };
    pub(crate) const TOKEN_EXPIRED: Self = Self {
        code: Some(4001),
        reason: "access token expired; reconnect with a fresh one",
        drain: true,
    };
    pub(crate) const RESTART: Self = Self {
        code: Some(1012),
        reason: "service restart",
        drain: true,
    };
    pub(crate) const BUS_CLOSED: Self = Self {
        code: Some(1011),
        reason: "event bus closed",
        drain: true,
    };
}

/// What the registry knows about one live connection.
#[derive(Debug)]
pub(crate) struct ConnHandle {
    pub(crate) id: u64,
    pub(crate) tenant: TenantId,
    pub(crate) user: UserId,
    pub(crate) device: Option<DeviceId>,
    pub(crate) codec: Codec,
    /// The verified principal, for the presence heartbeat.
    pub(crate) principal: Principal,
    /// Most frames the outbox holds before the connection counts as slow.
    capacity: usize,
    outbox: Mutex<Outbox>,
    /// Wakes the connection's task: the outbox went from empty to not, or a
    /// close was asked. One waiter (the connection), so a stored permit is
    /// never lost.
    wake: Notify,
    status: AtomicU8,
}

/// What a connection's task has to do, by [`ConnHandle::next`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Next {
    /// Close, for this reason.
    Close(CloseReason),
    /// Write the queued frames.
    Write,
    /// Nothing: wait for the socket, the outbox or a timer.
    Wait,
}

/// What waits for a connection's socket.
#[derive(Debug, Default)]
struct Outbox {
    frames: VecDeque<Message>,
    close: Option<CloseReason>,
}

/// An emptied outbox larger than this gives its memory back, so a connection
/// that once took a burst does not hold the burst's buffer while idle.
const OUTBOX_KEEP: usize = 8;

fn status_to_u8(s: PresenceStatus) -> u8 {
    match s {
        PresenceStatus::Offline => 0,
        PresenceStatus::Away => 1,
        PresenceStatus::Online => 2,
    }
}

fn status_from_u8(v: u8) -> PresenceStatus {
    match v {
        0 => PresenceStatus::Offline,
        1 => PresenceStatus::Away,
        _ => PresenceStatus::Online,
    }
}

impl ConnHandle {
    fn outbox(&self) -> std::sync::MutexGuard<'_, Outbox> {
        // Nothing panics while holding it; a poisoned lock still holds a
        // consistent deque.
        self.outbox
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Asks the connection to close; the first reason wins.
    pub(crate) fn close(&self, reason: CloseReason) {
        let mut o = self.outbox();
        if o.close.is_none() {
            o.close = Some(reason);
            drop(o);
            self.wake.notify_one();
        }
    }

    /// The reason the connection is closing, once it is.
    pub(crate) fn close_reason(&self) -> Option<CloseReason> {
        self.outbox().close.clone()
    }

    /// Resolves once a frame was queued or a close asked since the last time it
    /// resolved (at once if that happened while nobody waited). The connection's
    /// task checks [`ConnHandle::take`] and [`ConnHandle::close_reason`] before
    /// waiting, so nothing slips between the check and the wait.
    pub(crate) async fn woken(&self) {
        self.wake.notified().await;
    }

    /// The oldest queued frame.
    pub(crate) fn take(&self) -> Option<Message> {
        let mut o = self.outbox();
        let frame = o.frames.pop_front();
        if o.frames.is_empty() && o.frames.capacity() > OUTBOX_KEEP {
            o.frames = VecDeque::new();
        }
        frame
    }

    /// What the connection's task has to do now (one lock for both questions).
    pub(crate) fn next(&self) -> Next {
        let o = self.outbox();
        match &o.close {
            Some(reason) => Next::Close(reason.clone()),
            None if o.frames.is_empty() => Next::Wait,
            None => Next::Write,
        }
    }

    /// The presence this connection reported (online until it says otherwise).
    pub(crate) fn status(&self) -> PresenceStatus {
        status_from_u8(self.status.load(Ordering::Relaxed))
    }

    pub(crate) fn set_status(&self, s: PresenceStatus) {
        self.status.store(status_to_u8(s), Ordering::Relaxed);
    }

    /// Queues a frame without waiting; a full outbox closes the connection.
    /// Returns whether the frame was queued.
    fn offer(&self, frame: Message) -> bool {
        let mut o = self.outbox();
        if o.close.is_some() {
            // Already closing: its task is on the way out (or draining what
            // it has).
            return false;
        }
        if o.frames.len() >= self.capacity {
            o.close = Some(CloseReason::SLOW_CONSUMER);
            drop(o);
            metrics::counter!("caas_ws_slow_consumer_closes_total").increment(1);
            self.wake.notify_one();
            return false;
        }
        let was_empty = o.frames.is_empty();
        o.frames.push_back(frame);
        drop(o);
        if was_empty {
            self.wake.notify_one();
        }
        true
    }
}

/// The socket library's message for an encoded frame.
pub(crate) fn message(e: Encoded) -> Message {
    match e {
        Encoded::Text(s) => Message::Text(s.into()),
        Encoded::Binary(b) => Message::Binary(b.into()),
    }
}

/// Why a connection could not be registered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TooManyConnections {
    pub(crate) limit: usize,
}

type Users = HashMap<UserId, Vec<Arc<ConnHandle>>>;

/// The node's connections.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    tenants: RwLock<HashMap<TenantId, Users>>,
    next_id: AtomicU64,
    live: AtomicUsize,
    drained: Notify,
}

/// What a new connection brings to [`Registry::register`].
#[derive(Debug)]
pub(crate) struct NewConnection {
    pub(crate) principal: Principal,
    pub(crate) tenant: TenantId,
    pub(crate) user: UserId,
    pub(crate) device: Option<DeviceId>,
    pub(crate) codec: Codec,
    /// Most frames queued for the socket before the connection counts as slow.
    pub(crate) capacity: usize,
}

impl Registry {
    /// Registers a connection unless its user already has `max_per_user`.
    pub(crate) fn register(
        self: &Arc<Self>,
        new: NewConnection,
        max_per_user: usize,
    ) -> Result<Registration, TooManyConnections> {
        let handle = Arc::new(ConnHandle {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            tenant: new.tenant,
            user: new.user,
            device: new.device,
            codec: new.codec,
            principal: new.principal,
            capacity: new.capacity.max(1),
            outbox: Mutex::new(Outbox::default()),
            wake: Notify::new(),
            status: AtomicU8::new(status_to_u8(PresenceStatus::Online)),
        });
        {
            let mut tenants = self
                .tenants
                .write()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            let conns = tenants
                .entry(handle.tenant.clone())
                .or_default()
                .entry(handle.user.clone())
                .or_default();
            if conns.len() >= max_per_user {
                return Err(TooManyConnections {
                    limit: max_per_user,
                });
            }
            conns.push(handle.clone());
        }
        self.live.fetch_add(1, Ordering::AcqRel);
        metrics::gauge!("caas_ws_connections").increment(1.0);
        Ok(Registration {
            registry: self.clone(),
            handle,
            listed: true,
        })
    }

    /// Removes a connection; returns whether it was the last of its user's device.
    fn unregister(&self, handle: &ConnHandle) -> bool {
        let mut tenants = self
            .tenants
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(users) = tenants.get_mut(&handle.tenant) else {
            return true;
        };
        let mut last = true;
        if let Some(conns) = users.get_mut(&handle.user) {
            conns.retain(|c| c.id != handle.id);
            last = !conns.iter().any(|c| c.device == handle.device);
            if conns.is_empty() {
                users.remove(&handle.user);
            }
        }
        if users.is_empty() {
            tenants.remove(&handle.tenant);
        }
        last
    }

    /// Connections registered and not yet finished (including those draining).
    pub(crate) fn live(&self) -> usize {
        self.live.load(Ordering::Acquire)
    }

    /// Waits until no connection is left.
    pub(crate) async fn drained(&self) {
        loop {
            let notified = self.drained.notified();
            if self.live() == 0 {
                return;
            }
            notified.await;
        }
    }

    fn each(&self, mut f: impl FnMut(&Arc<ConnHandle>)) {
        let tenants = self
            .tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for users in tenants.values() {
            for conns in users.values() {
                conns.iter().for_each(&mut f);
            }
        }
    }

    /// Hands an event to the connections of every user in its audience, encoded
    /// once per codec. Returns how many connections got it.
    pub(crate) fn dispatch(&self, event: &Event) -> usize {
        let tenants = self
            .tenants
            .read()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(users) = tenants.get(&event.tenant) else {
            return 0;
        };
        let mut json: Option<Message> = None;
        let mut proto: Option<Message> = None;
        let mut delivered = 0;
        for user in event.audience.iter() {
            let Some(conns) = users.get(user) else {
                continue;
            };
            for c in conns {
                let slot = match c.codec {
                    Codec::Json => &mut json,
                    Codec::Proto => &mut proto,
                };
                // Cloning a message clones a reference-counted buffer, not the bytes.
                let frame = slot
                    .get_or_insert_with(|| message(codec::encode_event(c.codec, event, None)))
                    .clone();
                if c.offer(frame) {
                    delivered += 1;
                }
            }
        }
        metrics::counter!("caas_ws_deliveries_total").increment(delivered as u64);
        delivered
    }

    /// Tells every connection that live events were lost (the node's bus
    /// subscription lagged), so its client syncs.
    pub(crate) fn resync_all(&self, missed: u64) {
        // `missed` is 0 when the bus cannot count them (a broken connection to
        // a shared bus).
        let detail = if missed == 0 {
            "live events may have been lost on this node; sync from your cursor".to_owned()
        } else {
            format!("{missed} live events were lost on this node; sync from your cursor")
        };
        let notice = crate::problem::ApiError::unavailable(detail)
            .without_retry_after()
            .into_error_frame(None, true);
        let json = message(codec::encode_error(Codec::Json, &notice));
        let proto = message(codec::encode_error(Codec::Proto, &notice));
        self.each(|c| {
            c.offer(match c.codec {
                Codec::Json => json.clone(),
                Codec::Proto => proto.clone(),
            });
        });
    }

    /// Asks every connection to close.
    pub(crate) fn close_all(&self, reason: &CloseReason) {
        self.each(|c| c.close(reason.clone()));
    }

    /// One principal and status per connected device, for the presence heartbeat:
    /// the most present status of the device's connections.
    pub(crate) fn devices(&self) -> Vec<(Principal, PresenceStatus)> {
        let mut out: HashMap<(TenantId, UserId, Option<DeviceId>), (Principal, PresenceStatus)> =
            HashMap::new();
        self.each(|c| {
            let key = (c.tenant.clone(), c.user.clone(), c.device.clone());
            let status = c.status();
            out.entry(key)
                .and_modify(|e| e.1 = e.1.max(status))
                .or_insert_with(|| (c.principal.clone(), status));
        });
        out.into_values().collect()
    }
}

/// A connection's place in the registry. Dropping it ends the connection's life
/// for [`Registry::drained`].
#[derive(Debug)]
pub(crate) struct Registration {
    registry: Arc<Registry>,
    handle: Arc<ConnHandle>,
    listed: bool,
}

impl Registration {
    pub(crate) fn handle(&self) -> &Arc<ConnHandle> {
        &self.handle
    }

    /// Stops fan-out to this connection; returns whether it was the last of its
    /// user's device (time to report the device offline).
    pub(crate) fn unlist(&mut self) -> bool {
        if !self.listed {
            return false;
        }
        self.listed = false;
        self.registry.unregister(&self.handle)
    }
}

impl Drop for Registration {
    fn drop(&mut self) {
        self.unlist();
        self.registry.live.fetch_sub(1, Ordering::AcqRel);
        metrics::gauge!("caas_ws_connections").decrement(1.0);
        self.registry.drained.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::ids::CorrelationId;
    use caas_core::time::Timestamp;

    fn conn(r: &Arc<Registry>, user: &str, device: Option<&str>, cap: usize) -> Registration {
        let tenant = TenantId::parse("t").unwrap();
        let user = UserId::parse(user).unwrap();
        r.register(
            NewConnection {
                principal: Principal::user(tenant.clone(), user.clone()),
                tenant,
                user,
                device: device.map(|d| DeviceId::parse(d).unwrap()),
                codec: Codec::Json,
                capacity: cap,
            },
            2,
        )
        .unwrap()
    }

    fn event(to: &[&str]) -> Event {
        Event {
            tenant: TenantId::parse("t").unwrap(),
            correlation_id: CorrelationId::parse("r").unwrap(),
            at: Timestamp::from_secs(1),
            audience: to.iter().map(|u| UserId::parse(u).unwrap()).collect(),
            payload: caas_core::events::EventPayload::Typing {
                conversation_id: caas_core::ids::ConversationId::parse("c").unwrap(),
                user_id: UserId::parse("x").unwrap(),
                typing: true,
            },
        }
    }

    #[test]
    fn dispatch_reaches_the_audience_and_closes_a_full_queue() {
        let r = Arc::new(Registry::default());
        let a = conn(&r, "alice", None, 8);
        let b = conn(&r, "bob", None, 1);
        assert_eq!(r.dispatch(&event(&["alice", "bob"])), 2);
        assert!(a.handle().take().is_some());
        assert!(a.handle().take().is_none());
        // Bob's queue of one is full and nobody reads it: he is closed, Alice is not.
        assert_eq!(r.dispatch(&event(&["alice", "bob"])), 1);
        assert_eq!(b.handle().close_reason(), Some(CloseReason::SLOW_CONSUMER));
        assert_eq!(a.handle().close_reason(), None);
        assert_eq!(r.dispatch(&event(&["carol"])), 0);
    }

    #[tokio::test]
    async fn the_outbox_keeps_order_wakes_its_task_and_gives_memory_back() {
        let r = Arc::new(Registry::default());
        let a = conn(&r, "alice", None, 64);
        let h = a.handle().clone();
        assert_eq!(h.next(), Next::Wait);
        for n in 0..40 {
            assert_eq!(r.dispatch(&event(&["alice"])), 1, "frame {n}");
        }
        // The first frame stored a wake-up for the (not yet waiting) task.
        tokio::time::timeout(std::time::Duration::from_secs(1), h.woken())
            .await
            .unwrap();
        let mut n = 0;
        while h.take().is_some() {
            n += 1;
        }
        assert_eq!(n, 40);
        assert_eq!(h.outbox().frames.capacity(), 0, "a drained burst is freed");
        // A close wakes the task too, and refuses later frames.
        h.close(CloseReason::RESTART);
        tokio::time::timeout(std::time::Duration::from_secs(1), h.woken())
            .await
            .unwrap();
        assert_eq!(r.dispatch(&event(&["alice"])), 0);
        assert_eq!(h.next(), Next::Close(CloseReason::RESTART));
        // The first reason stands.
        h.close(CloseReason::IDLE);
        assert_eq!(h.close_reason(), Some(CloseReason::RESTART));
    }

    #[test]
    fn limits_per_user_and_last_device() {
        let r = Arc::new(Registry::default());
        let mut one = conn(&r, "alice", Some("phone"), 1);
        let mut two = conn(&r, "alice", Some("phone"), 1);
        let tenant = TenantId::parse("t").unwrap();
        let alice = UserId::parse("alice").unwrap();
        let third = r.register(
            NewConnection {
                principal: Principal::user(tenant.clone(), alice.clone()),
                tenant,
                user: alice,
                device: None,
                codec: Codec::Json,
                capacity: 1,
            },
            2,
        );
        assert_eq!(third.unwrap_err(), TooManyConnections { limit: 2 });
        assert_eq!(r.live(), 2);
        assert!(!one.unlist(), "the phone still has a connection");
        assert!(two.unlist(), "the last one of the phone");
        drop((one, two));
        assert_eq!(r.live(), 0);
    }
}
