//! Contract of [`EventBus`](crate::ports::EventBus).

use std::sync::Arc;
use std::time::Duration;

use crate::events::EventPayload;
use crate::ports::Backends;
use crate::ports::{BusMessage, Subscription};
use crate::testkit::{conversation, events::event, tenant};

async fn next_seq(sub: &mut Box<dyn Subscription>) -> u64 {
    match tokio::time::timeout(Duration::from_secs(10), sub.next()).await {
        Ok(Some(BusMessage::Event(e))) => match &e.payload {
            EventPayload::ReceiptUpdated { seq, .. } => seq.get(),
            other => panic!("unexpected event {other:?}"),
        },
        Ok(other) => panic!("expected an event, got {other:?}"),
        Err(_) => panic!("no event within 10 s"),
    }
}

/// Every subscriber gets every event published after it subscribed, in order.
pub async fn every_subscriber_gets_every_event_in_order(b: Backends) {
    let s = b.bus;
    let tn = tenant();
    let c = conversation();
    let mut a = s.subscribe().await.unwrap();
    let mut b = s.subscribe().await.unwrap();
    for n in 1..=20 {
        s.publish(Arc::new(event(&tn, &c, &["alice"], n)))
            .await
            .unwrap();
    }
    for sub in [&mut a, &mut b] {
        // A shared bus may carry other cases' events: skip other tenants.
        let mut got = Vec::new();
        while got.len() < 20 {
            let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("event within 10 s");
            if let Some(BusMessage::Event(e)) = msg
                && e.tenant == tn
            {
                got.push(match &e.payload {
                    EventPayload::ReceiptUpdated { seq, .. } => seq.get(),
                    _ => 0,
                });
            }
        }
        assert_eq!(got, (1..=20).collect::<Vec<_>>());
    }
}

/// A subscriber does not get events published before it subscribed.
pub async fn late_subscriber_starts_now(b: Backends) {
    let s = b.bus;
    let tn = tenant();
    let c = conversation();
    s.publish(Arc::new(event(&tn, &c, &["a"], 1)))
        .await
        .unwrap();
    let mut sub = s.subscribe().await.unwrap();
    s.publish(Arc::new(event(&tn, &c, &["a"], 2)))
        .await
        .unwrap();
    loop {
        let n = next_seq(&mut sub).await;
        if n == 2 {
            break;
        }
        assert_ne!(n, 1, "an event from before the subscription arrived");
    }
}

/// Publishing with no subscriber succeeds.
pub async fn publish_without_subscribers(b: Backends) {
    let s = b.bus;
    s.publish(Arc::new(event(&tenant(), &conversation(), &["a"], 1)))
        .await
        .unwrap();
}
