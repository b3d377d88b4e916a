//! Per-conversation order on top of exactly-once: each conversation's messages
//! reach the application in `seq` order, and an edit, reaction, pin or deletion
//! never overtakes the message it refers to.
//!
//! Live events can arrive out of order in two ways: after a (re)connection the
//! catch-up `sync` runs beside live delivery, so a live event can overtake the
//! older ones the sync is still bringing; and concurrent senders publish through
//! different tasks, so the live copies of one conversation's messages can cross.
//! The server's `seq` is gap-free per conversation, so a `message.created` beyond
//! the last delivered seq + 1 is known to have something missing before it.
//!
//! The rules, and why they hold:
//!
//! - While a sync runs, every live durable event is held and released (through
//!   dedupe) when it completes: the sync brings the log in order, so its copies
//!   come first and the live copies that duplicate them are dropped.
//! - Outside a sync, a live event that needs a seq not yet delivered (a message
//!   beyond last + 1, an edit of a message not yet seen) is held, together with
//!   every later durable event of its conversation, and the session starts a
//!   gap-filling sync. The missing message, live or from the sync, releases them.
//! - A gap can be one the user may never fill: messages sent before they joined,
//!   or while they were away from the conversation. Every durable event is logged
//!   before it is published, and seqs are logged in order, so a sync that began
//!   after an event was held brings everything before it that the user may see.
//!   Once such a sync completes, the event is released whatever is still missing:
//!   nothing is held forever.
//! - Sync copies are never held: the log is in seq order, and a gap in it is one
//!   the user is not allowed to fill.
//! - Ephemeral events (typing, presence, call signals) are never logged, so no
//!   sync can bring them; they pass at once.
//! - A conversation seen for the first time has no known last seq: its first
//!   event is delivered at once and tracking starts from it.
//!
//! What is held is bounded ([`MAX_HELD`]): past it, memory wins over order and
//! everything held is released in order, with a resync to fill what it skipped.

use std::collections::{HashMap, VecDeque};

use caas_core::events::EventPayload;
use caas_core::ids::ConversationId;

use crate::ws::frames::WireEvent;

/// Most live events held at once, over all conversations.
pub(crate) const MAX_HELD: usize = 4096;

/// Decides whether an event is new (the dedupe), remembering it if so.
pub(crate) type Admit<'a> = dyn FnMut(&WireEvent) -> bool + 'a;

#[derive(Debug)]
pub(crate) struct Order {
    /// Conversation → the highest `message.created` seq delivered.
    last: HashMap<ConversationId, u64>,
    /// Held live events by conversation (`None`: events of no conversation, held
    /// only while a sync runs), each queue in the order it will be released.
    held: HashMap<Option<ConversationId>, VecDeque<Held>>,
    held_len: usize,
    limit: usize,
    /// Syncs begun so far: a held event remembers the count, so that a later
    /// completed sync is known to cover it.
    begun: u64,
    syncing: bool,
    /// `begun` as of the last completed sync.
    covered: u64,
    /// Arrival numbers, so conversations are released in the order they waited.
    arrivals: u64,
    /// Held events were released past their gaps, which a sync should fill.
    resync: bool,
}

#[derive(Debug)]
struct Held {
    event: WireEvent,
    /// The seq that must be delivered before it.
    need: Option<u64>,
    /// Syncs begun when it was held.
    at: u64,
    arrival: u64,
}

impl Default for Order {
    fn default() -> Self {
        Self::with_limit(MAX_HELD)
    }
}

impl Order {
    /// Holding at most `limit` events.
    pub(crate) fn with_limit(limit: usize) -> Self {
        Self {
            last: HashMap::new(),
            held: HashMap::new(),
            held_len: 0,
            limit: limit.max(1),
            begun: 0,
            syncing: false,
            covered: 0,
            arrivals: 0,
            resync: false,
        }
    }

    /// An event from the server: what may be delivered now is pushed to `out`
    /// (each through `admit`), the rest is held.
    pub(crate) fn offer(
        &mut self,
        event: WireEvent,
        admit: &mut Admit<'_>,
        out: &mut Vec<WireEvent>,
    ) {
        if event.payload.is_ephemeral() {
            out.push(event);
            return;
        }
        let key = event.payload.conversation_id().cloned();
        let need = need(&event.payload);
        if event.cursor.is_some() {
            emit(event, &mut self.last, admit, out);
            return;
        }
        let queued = self.held.get(&key).is_some_and(|q| !q.is_empty());
        let last = key.as_ref().and_then(|c| self.last.get(c)).copied();
        if !self.syncing && !queued && met(need, last) {
            emit(event, &mut self.last, admit, out);
            return;
        }
        self.hold(key.clone(), event, need);
        if !self.syncing {
            // The newcomer may be the missing message.
            self.release(&key, 0, admit, out);
        }
        if self.held_len > self.limit {
            self.flush(admit, out);
            self.resync = true;
        }
    }

    /// A sync begins (its later pages are part of it).
    pub(crate) fn begin(&mut self) {
        self.begun += 1;
        self.syncing = true;
        self.resync = false;
    }

    /// The running sync reached the end of the log: held events are released in
    /// order, and past their gaps when it covers them. Call before the dedupe
    /// forgets, so live copies of what the sync brought are still recognised.
    pub(crate) fn complete(&mut self, admit: &mut Admit<'_>, out: &mut Vec<WireEvent>) {
        self.syncing = false;
        self.covered = self.begun;
        let covered = self.covered;
        for key in self.keys_by_arrival() {
            // Queue order is seq order, so whatever sits before an event the sync
            // covers was logged before it, and is covered too.
            let forced = self.held.get(&key).map_or(0, |q| {
                q.iter().rposition(|h| h.at < covered).map_or(0, |i| i + 1)
            });
            self.release(&key, forced, admit, out);
        }
    }

    /// The running sync was refused: nothing will fill the gaps soon, so what is
    /// held is released in order rather than kept.
    pub(crate) fn abort(&mut self, admit: &mut Admit<'_>, out: &mut Vec<WireEvent>) {
        self.syncing = false;
        self.flush(admit, out);
    }

    /// Releases everything held, in order, gaps or not.
    pub(crate) fn flush(&mut self, admit: &mut Admit<'_>, out: &mut Vec<WireEvent>) {
        for key in self.keys_by_arrival() {
            let n = self.held.get(&key).map_or(0, VecDeque::len);
            self.release(&key, n, admit, out);
        }
    }

    /// Whether the session should start a sync (when none runs): to fill a gap,
    /// or to release what arrived during the last one with a gap still open.
    pub(crate) fn wants_sync(&self) -> bool {
        !self.syncing && (self.held_len > 0 || self.resync)
    }

    /// Events held.
    #[cfg(test)]
    pub(crate) fn held(&self) -> usize {
        self.held_len
    }

    /// Releases from the front of `key`'s queue while the front's need is met;
    /// the first `forced` go whatever they need.
    fn release(
        &mut self,
        key: &Option<ConversationId>,
        mut forced: usize,
        admit: &mut Admit<'_>,
        out: &mut Vec<WireEvent>,
    ) {
        let Some(q) = self.held.get_mut(key) else {
            return;
        };
        while let Some(front) = q.front() {
            let known = front
                .event
                .payload
                .conversation_id()
                .and_then(|c| self.last.get(c))
                .copied();
            if forced == 0 && !met(front.need, known) {
                break;
            }
            forced = forced.saturating_sub(1);
            if let Some(h) = q.pop_front() {
                self.held_len -= 1;
                emit(h.event, &mut self.last, admit, out);
            }
        }
        if q.is_empty() {
            self.held.remove(key);
        }
    }

    fn hold(&mut self, key: Option<ConversationId>, event: WireEvent, need: Option<u64>) {
        self.arrivals += 1;
        let created = created_seq(&event.payload);
        let q = self.held.entry(key).or_default();
        // A message goes before everything that needs it or a later one, so the
        // queue front is always the first thing that can be released.
        let at = created
            .and_then(|s| q.iter().position(|h| h.need.is_some_and(|n| n >= s)))
            .unwrap_or(q.len());
        q.insert(
            at,
            Held {
                event,
                need,
                at: self.begun,
                arrival: self.arrivals,
            },
        );
        self.held_len += 1;
    }

    fn keys_by_arrival(&self) -> Vec<Option<ConversationId>> {
        let mut keys: Vec<_> = self
            .held
            .iter()
            .map(|(k, q)| (q.iter().map(|h| h.arrival).min().unwrap_or(0), k.clone()))
            .collect();
        keys.sort_unstable_by_key(|(a, _)| *a);
        keys.into_iter().map(|(_, k)| k).collect()
    }
}

/// Delivers `event` unless it is a duplicate, tracking the last seq.
fn emit(
    event: WireEvent,
    last: &mut HashMap<ConversationId, u64>,
    admit: &mut Admit<'_>,
    out: &mut Vec<WireEvent>,
) {
    if !admit(&event) {
        return;
    }
    if let EventPayload::MessageCreated { message } = &event.payload {
        let seq = message.seq.get();
        last.entry(message.conversation.clone())
            .and_modify(|l| *l = (*l).max(seq))
            .or_insert(seq);
    }
    out.push(event);
}

fn met(need: Option<u64>, last: Option<u64>) -> bool {
    match (need, last) {
        (Some(n), Some(l)) => n <= l,
        _ => true,
    }
}

fn created_seq(payload: &EventPayload) -> Option<u64> {
    match payload {
        EventPayload::MessageCreated { message } => Some(message.seq.get()),
        _ => None,
    }
}

/// The seq that must have been delivered before `payload` makes sense: the
/// previous message for a new one, the message itself for what changes it.
/// Receipts name a watermark, not a message the reader must have, so they only
/// wait behind what is already held.
fn need(payload: &EventPayload) -> Option<u64> {
    match payload {
        EventPayload::MessageCreated { message } => Some(message.seq.get().saturating_sub(1)),
        EventPayload::MessageEdited { message } => Some(message.seq.get()),
        EventPayload::MessageDeleted { seq, .. }
        | EventPayload::MessagePinned { seq, .. }
        | EventPayload::ReactionAdded { seq, .. }
        | EventPayload::ReactionRemoved { seq, .. } => Some(seq.get()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::dedupe::Dedupe;
    use caas_core::ids::{ClientMsgId, Cursor, MessageId, Seq, TenantId, UserId};
    use caas_core::model::NewMessage;
    use caas_core::time::Timestamp;
    use proptest::prelude::*;

    fn conv(c: &str) -> ConversationId {
        ConversationId::parse(c).unwrap()
    }

    fn message(c: &str, seq: u64) -> caas_core::model::Message {
        NewMessage {
            tenant: TenantId::parse("t").unwrap(),
            conversation: conv(c),
            id: MessageId::parse(&format!("m_{seq}")).unwrap(),
            sender: UserId::parse("alice").unwrap(),
            client_msg_id: ClientMsgId::parse(&format!("k-{seq}")).unwrap(),
            body: Some(format!("m{seq}")),
            ciphertext: None,
            attachments: vec![],
            reply_to: None,
            forwarded_from: None,
            mentions: vec![],
            created_at: Timestamp::from_secs(seq),
        }
        .into_message(Seq(seq))
    }

    fn event(payload: EventPayload, cursor: Option<u64>) -> WireEvent {
        WireEvent {
            cursor: cursor.map(Cursor),
            at: Timestamp::from_secs(1),
            correlation_id: None,
            payload,
        }
    }

    fn live(c: &str, seq: u64) -> WireEvent {
        event(
            EventPayload::MessageCreated {
                message: message(c, seq),
            },
            None,
        )
    }

    /// A sync copy, its cursor standing in for its log position.
    fn synced(c: &str, seq: u64) -> WireEvent {
        event(
            EventPayload::MessageCreated {
                message: message(c, seq),
            },
            Some(seq),
        )
    }

    fn edit(c: &str, seq: u64) -> WireEvent {
        let mut m = message(c, seq);
        m.apply_edit("edited".into(), Timestamp::from_secs(100 + seq));
        event(EventPayload::MessageEdited { message: m }, None)
    }

    fn typing(c: &str) -> WireEvent {
        event(
            EventPayload::Typing {
                conversation_id: conv(c),
                user_id: UserId::parse("alice").unwrap(),
                typing: true,
            },
            None,
        )
    }

    /// What reaches the application, as `kind conversation seq` labels.
    fn label(e: &WireEvent) -> String {
        match &e.payload {
            EventPayload::MessageCreated { message } => {
                format!("{} {}", message.conversation.as_str(), message.seq.get())
            }
            EventPayload::MessageEdited { message } => format!(
                "edit {} {}",
                message.conversation.as_str(),
                message.seq.get()
            ),
            other => other.kind().to_owned(),
        }
    }

    /// The order module driven as the session drives it, with the real dedupe.
    struct Client {
        order: Order,
        dedupe: Dedupe,
        started: u64,
        cursor: Cursor,
        out: Vec<WireEvent>,
    }

    impl Client {
        fn new(limit: usize) -> Self {
            Self {
                order: Order::with_limit(limit),
                dedupe: Dedupe::default(),
                started: 0,
                cursor: Cursor(0),
                out: Vec::new(),
            }
        }

        fn offer(&mut self, e: WireEvent) {
            let (dedupe, cursor) = (&mut self.dedupe, self.cursor);
            self.order
                .offer(e, &mut |e| dedupe.admit(e, cursor), &mut self.out);
        }

        fn begin(&mut self) {
            self.started = self.dedupe.begin();
            self.order.begin();
        }

        fn complete(&mut self, cursor: u64) {
            self.cursor = Cursor(self.cursor.0.max(cursor));
            let (dedupe, cursor) = (&mut self.dedupe, self.cursor);
            self.order
                .complete(&mut |e| dedupe.admit(e, cursor), &mut self.out);
            self.dedupe.complete(self.started);
        }

        fn taken(&mut self) -> Vec<String> {
            self.out.drain(..).map(|e| label(&e)).collect()
        }
    }

    fn labels(c: &str, seqs: impl IntoIterator<Item = u64>) -> Vec<String> {
        seqs.into_iter().map(|s| format!("{c} {s}")).collect()
    }

    #[test]
    fn a_live_event_does_not_overtake_the_catch_up() {
        // The issue: 10 delivered, the connection drops, live 15 arrives while the
        // catch-up brings 11..14, then 16.
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 10));
        cl.begin();
        cl.offer(live("c", 15));
        assert_eq!(cl.order.held(), 1);
        for s in 11..=14 {
            cl.offer(synced("c", s));
        }
        cl.complete(14);
        cl.offer(live("c", 16));
        assert_eq!(cl.taken(), labels("c", 10..=16));
        assert!(!cl.order.wants_sync());
    }

    #[test]
    fn a_live_copy_the_catch_up_also_brings_is_delivered_once() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 10));
        cl.begin();
        cl.offer(live("c", 15));
        cl.offer(live("c", 12));
        for s in 11..=15 {
            cl.offer(synced("c", s));
        }
        cl.complete(15);
        cl.offer(live("c", 16));
        assert_eq!(cl.taken(), labels("c", 10..=16));
    }

    #[test]
    fn an_out_of_order_live_pair_is_put_in_order() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 10));
        cl.offer(live("c", 12));
        assert_eq!(cl.taken(), labels("c", [10]));
        assert!(cl.order.wants_sync(), "a gap-filling sync");
        cl.offer(live("c", 11));
        assert_eq!(cl.taken(), labels("c", [11, 12]));
        assert!(!cl.order.wants_sync());
    }

    #[test]
    fn a_gap_the_sync_fills_releases_what_waited() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 10));
        cl.offer(live("c", 12));
        cl.begin();
        cl.offer(synced("c", 11));
        cl.offer(synced("c", 12));
        cl.complete(12);
        assert_eq!(cl.taken(), labels("c", 10..=12));
        assert_eq!(cl.order.held(), 0);
    }

    #[test]
    fn an_unfillable_gap_is_released_after_a_covering_sync() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 10));
        cl.offer(live("c", 13));
        cl.offer(live("c", 14));
        assert_eq!(cl.taken(), labels("c", [10]));
        cl.begin();
        cl.complete(0);
        assert_eq!(cl.taken(), labels("c", [13, 14]), "11 and 12 are not ours");
        assert!(!cl.order.wants_sync());

        // Held during a sync, a gap waits for one that began after it arrived.
        cl.begin();
        cl.offer(live("c", 17));
        cl.complete(0);
        assert!(cl.taken().is_empty());
        assert!(cl.order.wants_sync(), "one more sync covers it");
        cl.begin();
        cl.complete(0);
        assert_eq!(cl.taken(), labels("c", [17]));
    }

    #[test]
    fn an_edit_never_overtakes_its_message() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 10));
        cl.offer(live("c", 12));
        cl.offer(edit("c", 12));
        cl.offer(edit("c", 10));
        assert_eq!(cl.taken(), labels("c", [10]));
        cl.offer(live("c", 11));
        assert_eq!(cl.taken(), ["c 11", "c 12", "edit c 12", "edit c 10"]);

        // The edit's live copy can also cross its message's.
        cl.offer(edit("c", 13));
        assert!(cl.taken().is_empty());
        cl.offer(live("c", 13));
        assert_eq!(cl.taken(), ["c 13", "edit c 13"]);
    }

    #[test]
    fn ephemeral_events_are_never_held() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 10));
        cl.offer(live("c", 12));
        cl.offer(typing("c"));
        assert_eq!(cl.taken(), ["c 10", "typing"]);
        cl.begin();
        cl.offer(typing("c"));
        assert_eq!(cl.taken(), ["typing"]);
        assert_eq!(cl.order.held(), 1);
    }

    #[test]
    fn events_of_no_conversation_wait_for_the_sync_only() {
        let mut cl = Client::new(MAX_HELD);
        let tenant = event(
            EventPayload::TenantUpdated {
                tenant_id: TenantId::parse("t").unwrap(),
                status: caas_core::model::TenantStatus::Active,
            },
            None,
        );
        cl.offer(tenant.clone());
        assert_eq!(cl.taken(), ["tenant.updated"]);
        let later = WireEvent {
            at: Timestamp::from_secs(2),
            ..tenant
        };
        cl.begin();
        cl.offer(later);
        assert!(cl.taken().is_empty());
        cl.complete(0);
        assert_eq!(cl.taken(), ["tenant.updated"]);
    }

    #[test]
    fn conversations_do_not_wait_for_each_other() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("a", 1));
        cl.offer(live("b", 1));
        cl.offer(live("a", 3));
        cl.offer(live("b", 2));
        assert_eq!(cl.taken(), ["a 1", "b 1", "b 2"]);
        cl.offer(live("a", 2));
        assert_eq!(cl.taken(), ["a 2", "a 3"]);
    }

    #[test]
    fn past_the_bound_held_events_go_in_order_and_a_resync_follows() {
        let mut cl = Client::new(3);
        cl.offer(live("c", 1));
        for s in [5, 3, 4] {
            cl.offer(live("c", s));
        }
        assert_eq!(cl.order.held(), 3);
        cl.offer(live("c", 6));
        assert_eq!(cl.order.held(), 0);
        assert_eq!(cl.taken(), labels("c", [1, 3, 4, 5, 6]));
        assert!(cl.order.wants_sync());
        cl.begin();
        assert!(!cl.order.wants_sync());
    }

    #[test]
    fn a_refused_sync_releases_what_is_held_in_order() {
        let mut cl = Client::new(MAX_HELD);
        cl.offer(live("c", 1));
        cl.begin();
        cl.offer(live("c", 4));
        cl.offer(live("c", 3));
        let (dedupe, cursor) = (&mut cl.dedupe, cl.cursor);
        cl.order
            .abort(&mut |e| dedupe.admit(e, cursor), &mut cl.out);
        assert_eq!(cl.taken(), labels("c", [1, 3, 4]));
        assert!(!cl.order.wants_sync());
    }

    /// One step of the simulated server and client.
    #[derive(Debug, Clone)]
    enum Step {
        /// The server stores the next message and publishes it.
        Log,
        /// One published live copy arrives (which one: an index into those in
        /// flight, so copies cross).
        Live(usize),
        /// The running sync delivers its next copy or, at the end of its page,
        /// reads another page from the log as it is now.
        SyncPage,
        /// A sync starts if none runs (a reconnection or a checkpoint).
        Begin,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => Just(Step::Log),
            4 => any::<usize>().prop_map(Step::Live),
            3 => Just(Step::SyncPage),
            1 => Just(Step::Begin),
        ]
    }

    /// The simulated sync: copies of `next..=end` in log order.
    struct Run {
        next: u64,
        end: u64,
        /// Syncs begun, this one included.
        begun: u64,
    }

    proptest! {
        /// Whatever the interleaving of live copies (in any order) and sync pages
        /// (in log order, each reading the log as it is then), the conversation's
        /// messages reach the application in seq order, each once. The one limit
        /// on the interleaving is the dedupe's: a live copy arrives before a sync
        /// that began after it was published completes (it forgets what such a
        /// sync covers).
        #[test]
        fn any_interleaving_delivers_each_message_once_in_seq_order(
            n in 2u64..40,
            steps in proptest::collection::vec(step(), 0..200),
        ) {
            let mut cl = Client::new(MAX_HELD);
            // The conversation is known: message 1 came with the first catch-up.
            cl.begin();
            cl.offer(synced("c", 1));
            cl.complete(1);
            let mut logged = 1;
            let mut begun = 1;
            // Published live copies: (seq, syncs begun when it was logged).
            let mut in_flight: Vec<(u64, u64)> = Vec::new();
            let mut run: Option<Run> = None;
            let mut steps = steps.into_iter();
            loop {
                // As the session does: a wanted sync starts at once.
                if run.is_none() && cl.order.wants_sync() {
                    cl.begin();
                    begun += 1;
                    run = Some(Run { next: cl.cursor.0 + 1, end: logged, begun });
                }
                let step = match steps.next() {
                    Some(s) => s,
                    // The steps ran out: let the rest happen in a plain order.
                    None if logged < n => Step::Log,
                    None if !in_flight.is_empty() => Step::Live(0),
                    None if run.is_some() => Step::SyncPage,
                    None => break,
                };
                match step {
                    Step::Log if logged < n => {
                        logged += 1;
                        in_flight.push((logged, begun));
                    }
                    Step::Live(i) if !in_flight.is_empty() => {
                        let (s, _) = in_flight.remove(i % in_flight.len());
                        cl.offer(live("c", s));
                    }
                    Step::SyncPage => {
                        if let Some(r) = run.as_mut() {
                            let overdue = in_flight.iter().rposition(|(_, at)| *at < r.begun);
                            if r.next <= r.end {
                                cl.offer(synced("c", r.next));
                                r.next += 1;
                            } else if r.end < logged {
                                r.end = logged;
                            } else if let Some(i) = overdue {
                                let (s, _) = in_flight.remove(i);
                                cl.offer(live("c", s));
                            } else {
                                cl.complete(r.end);
                                run = None;
                            }
                        }
                    }
                    Step::Begin if run.is_none() => {
                        cl.begin();
                        begun += 1;
                        run = Some(Run { next: cl.cursor.0 + 1, end: logged, begun });
                    }
                    _ => {}
                }
            }
            prop_assert_eq!(cl.order.held(), 0);
            prop_assert_eq!(cl.taken(), labels("c", 1..=n));
        }
    }
}
