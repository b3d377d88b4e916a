//! Contract of [`EventBus`].

use std::sync::Arc;
use std::time::Duration;

use crate::events::EventPayload;
use crate::ports::{BusMessage, EventBus, Subscription};
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
pub async fn every_subscriber_gets_every_event_in_order(s: Arc<dyn EventBus>) {
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
pub async fn late_subscriber_starts_now(s: Arc<dyn EventBus>) {
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
pub async fn publish_without_subscribers(s: Arc<dyn EventBus>) {
    s.publish(Arc::new(event(&tenant(), &conversation(), &["a"], 1)))
        .await
        .unwrap();
}

/// Expands the suite for a backend.
#[macro_export]
macro_rules! event_bus_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            $crate::ports::EventBus,
            bus,
            $make,
            [
                every_subscriber_gets_every_event_in_order,
                late_subscriber_starts_now,
                publish_without_subscribers,
            ]
        );
    };
}
