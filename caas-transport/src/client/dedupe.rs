//! Exactly-once delivery on top of at-least-once: the same event can reach a
//! client live and again from `sync` (after a reconnect, or when a live copy
//! races the catch-up), so each durable event is remembered until a completed
//! sync has moved the cursor past it.
//!
//! Live events carry no cursor (the bus does not know log positions), so they are
//! recognised by identity: `(conversation, seq)` for a new message, and for other
//! events a hash of their time, cause and content. Every durable event is logged
//! before it is published, so once a sync that started after an event was
//! received has completed, the cursor covers that event and it can be forgotten;
//! [`Dedupe::complete`] does that by generation.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};

use caas_core::events::EventPayload;
use caas_core::ids::Cursor;

use crate::ws::frames::WireEvent;

#[derive(Debug, Default)]
pub(crate) struct Dedupe {
    /// Event identity → the generation it was seen in.
    seen: HashMap<u64, u64>,
    generation: u64,
}

impl Dedupe {
    /// Whether `event` is new (and remembers it). Ephemeral events (typing,
    /// presence, call signals) are never replayed, so they always pass.
    pub(crate) fn admit(&mut self, event: &WireEvent, synced: Cursor) -> bool {
        if event.payload.is_ephemeral() {
            return true;
        }
        if event.cursor.is_some_and(|c| c <= synced) {
            return false;
        }
        let key = identity(event);
        if self.seen.contains_key(&key) {
            return false;
        }
        self.seen.insert(key, self.generation);
        true
    }

    /// A sync starts: events seen from now on belong to a new generation.
    pub(crate) fn begin(&mut self) -> u64 {
        self.generation += 1;
        self.generation
    }

    /// The sync begun at `started` reached the end of the log: everything seen
    /// before it began is behind the cursor now.
    pub(crate) fn complete(&mut self, started: u64) {
        self.seen.retain(|_, g| *g >= started);
    }

    /// Events remembered.
    pub(crate) fn len(&self) -> usize {
        self.seen.len()
    }
}

fn identity(event: &WireEvent) -> u64 {
    let mut h = DefaultHasher::new();
    match &event.payload {
        EventPayload::MessageCreated { message } => {
            ("message.created", &message.conversation, message.seq).hash(&mut h);
        }
        other => {
            other.kind().hash(&mut h);
            event.at.as_nanos().hash(&mut h);
            event
                .correlation_id
                .as_ref()
                .map(|c| c.as_str())
                .hash(&mut h);
            // Serializing a payload of plain data cannot fail; if it ever did, the
            // kind, time and cause above still tell most events apart.
            serde_json::to_vec(other).unwrap_or_default().hash(&mut h);
        }
    }
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::ids::{ConversationId, CorrelationId, Seq, UserId};
    use caas_core::model::ReceiptKind;
    use caas_core::time::Timestamp;

    fn receipt(seq: u64, cursor: Option<u64>) -> WireEvent {
        WireEvent {
            cursor: cursor.map(Cursor),
            at: Timestamp::from_secs(seq),
            correlation_id: Some(CorrelationId::parse("r").unwrap()),
            payload: EventPayload::ReceiptUpdated {
                conversation_id: ConversationId::parse("c").unwrap(),
                user_id: UserId::parse("bob").unwrap(),
                receipt: ReceiptKind::Read,
                seq: Seq(seq),
            },
        }
    }

    #[test]
    fn live_then_synced_copies_pass_once_and_are_forgotten_after_a_sync() {
        let mut d = Dedupe::default();
        assert!(d.admit(&receipt(1, None), Cursor(0)), "live");
        let started = d.begin();
        assert!(!d.admit(&receipt(1, Some(5)), Cursor(0)), "its sync copy");
        assert!(
            d.admit(&receipt(2, Some(6)), Cursor(0)),
            "missed while away"
        );
        assert!(!d.admit(&receipt(2, None), Cursor(0)), "its late live copy");
        d.complete(started);
        assert_eq!(d.len(), 1, "only what the sync itself saw is kept");
        assert!(
            !d.admit(&receipt(2, Some(6)), Cursor(6)),
            "behind the cursor"
        );
    }
}
