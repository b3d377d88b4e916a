//! Contract of [`EventLog`](crate::ports::EventLog).

use std::sync::Arc;

use crate::events::{Event, EventPayload};
use crate::ids::{ConversationId, CorrelationId, Cursor, Seq, TenantId, UserId};
use crate::model::ReceiptKind;
use crate::ports::Backends;
use crate::testkit::{conversation, t, tenant, user};

/// A small durable event for `audience`.
pub fn event(tn: &TenantId, conv: &ConversationId, audience: &[&str], n: u64) -> Event {
    Event {
        tenant: tn.clone(),
        correlation_id: CorrelationId::generate(t(0)),
        at: t(n),
        audience: audience
            .iter()
            .map(|u| user(u))
            .collect::<Vec<UserId>>()
            .into(),
        payload: EventPayload::ReceiptUpdated {
            conversation_id: conv.clone(),
            user_id: user("x"),
            receipt: ReceiptKind::Read,
            seq: Seq(n),
        },
    }
}

/// Cursors increase; each user reads only events addressed to them, in order.
pub async fn append_and_read_by_audience(b: Backends) {
    let s = b.events;
    let tn = tenant();
    let c = conversation();
    assert_eq!(s.head(&tn).await.unwrap(), Cursor(0));
    let mut cursors = Vec::new();
    for (n, aud) in [
        (1, &["alice", "bob"][..]),
        (2, &["bob"][..]),
        (3, &["alice"][..]),
        (4, &["alice", "bob"][..]),
    ] {
        cursors.push(s.append(Arc::new(event(&tn, &c, aud, n))).await.unwrap());
    }
    assert!(cursors.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(s.head(&tn).await.unwrap(), cursors[3]);
    let seqs = |v: Vec<crate::events::LoggedEvent>| {
        v.into_iter()
            .map(|e| match &e.event.payload {
                EventPayload::ReceiptUpdated { seq, .. } => seq.get(),
                _ => 0,
            })
            .collect::<Vec<_>>()
    };
    assert_eq!(
        seqs(s.read(&tn, &user("alice"), Cursor(0), 10).await.unwrap()),
        [1, 3, 4]
    );
    assert_eq!(
        seqs(s.read(&tn, &user("bob"), Cursor(0), 10).await.unwrap()),
        [1, 2, 4]
    );
    assert_eq!(
        seqs(s.read(&tn, &user("alice"), cursors[0], 1).await.unwrap()),
        [3]
    );
    assert_eq!(
        seqs(s.read(&tn, &user("alice"), cursors[3], 10).await.unwrap()),
        Vec::<u64>::new()
    );
    assert!(
        s.read(&tn, &user("carol"), Cursor(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.read(&tenant(), &user("alice"), Cursor(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// The event reads back equal to what was appended.
pub async fn events_round_trip(b: Backends) {
    let s = b.events;
    let tn = tenant();
    let e = event(&tn, &conversation(), &["alice"], 9);
    let cur = s.append(Arc::new(e.clone())).await.unwrap();
    let got = s.read(&tn, &user("alice"), Cursor(0), 10).await.unwrap();
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].cursor, cur);
    assert_eq!(*got[0].event, e);
}

/// Ephemeral events are refused.
pub async fn ephemeral_events_are_refused(b: Backends) {
    let s = b.events;
    let tn = tenant();
    let mut e = event(&tn, &conversation(), &["alice"], 1);
    e.payload = EventPayload::Typing {
        conversation_id: conversation(),
        user_id: user("a"),
        typing: true,
    };
    assert!(matches!(
        s.append(Arc::new(e)).await,
        Err(crate::Error::InvalidArgument { .. })
    ));
    assert_eq!(s.head(&tn).await.unwrap(), Cursor(0));
}

/// Concurrent appends get distinct cursors and all are read back in cursor order.
pub async fn concurrent_appends(b: Backends) {
    let s = b.events;
    let tn = tenant();
    let c = conversation();
    let mut hs = Vec::new();
    for w in 0..4u64 {
        let (s, tn, c) = (s.clone(), tn.clone(), c.clone());
        hs.push(tokio::spawn(async move {
            let mut v = Vec::new();
            for i in 0..25 {
                v.push(
                    s.append(Arc::new(event(&tn, &c, &["alice"], w * 100 + i)))
                        .await
                        .unwrap(),
                );
            }
            v
        }));
    }
    let mut all = Vec::new();
    for h in hs {
        all.extend(h.await.unwrap());
    }
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 100);
    let read: Vec<_> = s
        .read(&tn, &user("alice"), Cursor(0), 1000)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.cursor)
        .collect();
    assert_eq!(read, all);
}
