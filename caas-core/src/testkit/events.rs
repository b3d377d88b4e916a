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

/// Scrubbing takes the content of the named messages out of the logged events
/// (a send's `message.created`, an edit's `message.edited`), keeps their
/// cursors, ids and seqs, and leaves other messages and tenants alone.
pub async fn scrub_removes_message_content(b: Backends) {
    use crate::testkit::messages::{announce, new_message};
    let tn = tenant();
    let c = conversation();
    let mut ids = Vec::new();
    for (who, key, body) in [
        ("alice", "k1", "secret one"),
        ("bob", "k2", "bob's words"),
        ("alice", "k3", "secret two"),
    ] {
        let m = new_message(&tn, &c, who, key, body);
        ids.push(m.id.clone());
        b.messages.append(m, announce()).await.unwrap();
    }
    let mut edited = b.messages.get(&tn, &c, &ids[2]).await.unwrap().unwrap();
    edited.apply_edit("secret three".into(), t(50));
    b.events
        .append(Arc::new(Event {
            tenant: tn.clone(),
            correlation_id: CorrelationId::generate(t(50)),
            at: t(50),
            audience: vec![user("alice"), user("bob")].into(),
            payload: EventPayload::MessageEdited { message: edited },
        }))
        .await
        .unwrap();
    let other = tenant();
    let theirs = new_message(&other, &c, "alice", "k1", "secret elsewhere");
    b.messages.append(theirs, announce()).await.unwrap();

    let before = b
        .events
        .read(&tn, &user("bob"), Cursor(0), 100)
        .await
        .unwrap();
    let alice: std::collections::HashSet<_> = [ids[0].clone(), ids[2].clone()].into();
    assert_eq!(b.events.scrub_messages(&tn, &alice).await.unwrap(), 3);
    assert_eq!(b.events.scrub_messages(&tn, &alice).await.unwrap(), 0);

    let after = b
        .events
        .read(&tn, &user("bob"), Cursor(0), 100)
        .await
        .unwrap();
    assert_eq!(after.len(), before.len());
    for (was, now) in before.iter().zip(&after) {
        assert_eq!(was.cursor, now.cursor);
        let (EventPayload::MessageCreated { message: m0 }
        | EventPayload::MessageEdited { message: m0 }) = &was.event.payload
        else {
            panic!("a message event");
        };
        let (EventPayload::MessageCreated { message: m1 }
        | EventPayload::MessageEdited { message: m1 }) = &now.event.payload
        else {
            panic!("a message event");
        };
        assert_eq!((&m0.id, m0.seq), (&m1.id, m1.seq));
        if alice.contains(&m1.id) {
            assert_eq!((&m1.body, m1.edits.len()), (&None, 0), "{m1:?}");
        } else {
            assert_eq!(m1.body.as_deref(), Some("bob's words"));
        }
    }
    let elsewhere = b
        .events
        .read(&other, &user("alice"), Cursor(0), 10)
        .await
        .unwrap();
    let EventPayload::MessageCreated { message } = &elsewhere[0].event.payload else {
        panic!("a message event");
    };
    assert_eq!(message.body.as_deref(), Some("secret elsewhere"));
}

/// A whole-tenant read returns every event of the tenant in cursor order,
/// with its full audience, whoever it was for, and pages by cursor.
pub async fn read_tenant_sees_every_audience(b: Backends) {
    let s = b.events;
    let tn = tenant();
    let c = conversation();
    let (mut cursors, mut appended) = (Vec::new(), Vec::new());
    for (n, aud) in [
        (1, &["alice", "bob"][..]),
        (2, &["bob"][..]),
        (3, &["carol"][..]),
    ] {
        let e = event(&tn, &c, aud, n);
        cursors.push(s.append(Arc::new(e.clone())).await.unwrap());
        appended.push(e);
    }
    s.append(Arc::new(event(&tenant(), &c, &["alice"], 9)))
        .await
        .unwrap();
    let all = s.read_tenant(&tn, Cursor(0), 10).await.unwrap();
    assert_eq!(
        all.iter().map(|e| e.cursor).collect::<Vec<_>>(),
        cursors,
        "every event of the tenant, in cursor order"
    );
    let read: Vec<Event> = all.iter().map(|e| Event::clone(&e.event)).collect();
    assert_eq!(read, appended);
    let page = s.read_tenant(&tn, cursors[0], 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].cursor, cursors[1]);
    assert!(s.read_tenant(&tn, cursors[2], 10).await.unwrap().is_empty());
    assert!(
        s.read_tenant(&tenant(), Cursor(0), 10)
            .await
            .unwrap()
            .is_empty()
    );
}
