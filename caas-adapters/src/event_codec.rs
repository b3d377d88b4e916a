//! How every networked bus puts an [`Event`] on the wire: JSON, bounded in size
//! on both sides, so a bus on any broker refuses what the others refuse.

use caas_core::events::Event;
use caas_core::{Error, Result};

/// The largest event a bus carries unless configured otherwise.
pub const DEFAULT_MAX_EVENT_BYTES: usize = 1 << 20;

/// The bytes of `event`; [`Error::PayloadTooLarge`] over `limit`, refused at the
/// publisher, where the caller can see it, rather than skipped by every node.
pub fn encode(event: &Event, limit: usize) -> Result<Vec<u8>> {
    let payload =
        serde_json::to_vec(event).map_err(|e| Error::internal(format!("encode an event: {e}")))?;
    if payload.len() > limit {
        return Err(Error::PayloadTooLarge {
            field: "event".into(),
            size: payload.len(),
            limit,
        });
    }
    Ok(payload)
}

/// Why bytes from a broker are not an event.
#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    /// Over the configured limit; not parsed.
    #[error("{size} bytes, over the limit of {limit}")]
    TooLarge {
        /// Its size.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// Not an event this version understands (perhaps one a newer node wrote).
    #[error("not an event: {0}")]
    Malformed(#[from] serde_json::Error),
}

/// The event in `payload`, never a panic whatever the bytes.
pub fn decode(payload: &[u8], limit: usize) -> std::result::Result<Event, DecodeError> {
    if payload.len() > limit {
        return Err(DecodeError::TooLarge {
            size: payload.len(),
            limit,
        });
    }
    Ok(serde_json::from_slice(payload)?)
}

/// Where `event` goes on a broker whose routes are dot-separated words (NATS
/// subjects, AMQP topic routing keys): `<tenant>.<conversation>`. Ids may hold
/// dots, so each `.` inside an id is written `~`, which no id contains; an event
/// of no conversation has `!` (no id either) in its place. Distinct
/// (tenant, conversation) pairs thus never share a route.
pub fn route(event: &Event) -> String {
    fn word(out: &mut String, id: &str) {
        out.extend(id.chars().map(|c| if c == '.' { '~' } else { c }));
    }
    let conversation = event.payload.conversation_id();
    let mut out = String::with_capacity(
        event.tenant.as_str().len() + 1 + conversation.map_or(1, |c| c.as_str().len()),
    );
    word(&mut out, event.tenant.as_str());
    out.push('.');
    match conversation {
        Some(c) => word(&mut out, c.as_str()),
        None => out.push('!'),
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::testkit::{conversation, events::event, tenant};
    use proptest::prelude::*;

    #[test]
    fn round_trips_and_bounds_both_sides() {
        let e = event(&tenant(), &conversation(), &["alice", "bob"], 7);
        let bytes = encode(&e, DEFAULT_MAX_EVENT_BYTES).unwrap();
        assert_eq!(decode(&bytes, DEFAULT_MAX_EVENT_BYTES).unwrap(), e);
        assert!(matches!(
            encode(&e, bytes.len() - 1),
            Err(Error::PayloadTooLarge { size, limit, .. }) if size == bytes.len() && limit == bytes.len() - 1
        ));
        assert!(matches!(
            decode(&bytes, bytes.len() - 1),
            Err(DecodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn routes_are_two_words_without_wildcards() {
        let tn = caas_core::ids::TenantId::parse("acme.eu").unwrap();
        let c = caas_core::ids::ConversationId::parse("c.1:x@y").unwrap();
        let mut e = event(&tn, &c, &["a"], 1);
        assert_eq!(route(&e), "acme~eu.c~1:x@y");
        e.payload = caas_core::events::EventPayload::Presence {
            user_id: caas_core::testkit::user("a"),
            status: caas_core::model::PresenceStatus::Online,
            last_seen: None,
        };
        assert_eq!(route(&e), "acme~eu.!");
    }

    proptest! {
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..512)) {
            let _ = decode(&bytes, 256);
        }
    }
}
