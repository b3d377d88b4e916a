//! Scrubbing beyond the contract: a log longer than one of the scrub's pages,
//! with the scrubbed messages on both sides of page boundaries.

use std::collections::HashSet;
use std::sync::Arc;

use caas_core::events::{Event, EventPayload};
use caas_core::ids::{ConversationId, CorrelationId, Cursor, MessageId, Seq};
use caas_core::ports::EventLog;
use caas_core::testkit::messages::new_message;
use caas_core::testkit::{t, tenant, user};

use super::support;

#[tokio::test]
async fn a_scrub_reaches_every_page_of_the_log() {
    let Some(store) = support::store().await else {
        return;
    };
    let tn = tenant();
    let conv = ConversationId::parse("c").unwrap();
    let mut ids: Vec<MessageId> = Vec::new();
    for n in 1..=2300u64 {
        let m = new_message(&tn, &conv, "alice", &format!("k{n}"), "words").into_message(Seq(n));
        ids.push(m.id.clone());
        store
            .append(Arc::new(Event {
                tenant: tn.clone(),
                correlation_id: CorrelationId::generate(t(n)),
                at: t(n),
                audience: vec![user("alice")].into(),
                payload: EventPayload::MessageCreated { message: m },
            }))
            .await
            .unwrap();
    }
    // Cursors 1, 1000, 1001 and 2300: the first and last of pages.
    let gone: HashSet<MessageId> = [0, 999, 1000, 2299]
        .iter()
        .map(|&i| ids[i].clone())
        .collect();
    assert_eq!(store.scrub_messages(&tn, &gone).await.unwrap(), 4);
    let mut after = Cursor(0);
    let mut seen = 0;
    loop {
        let page = store.read(&tn, &user("alice"), after, 500).await.unwrap();
        let Some(last) = page.last() else { break };
        after = last.cursor;
        for e in &page {
            let EventPayload::MessageCreated { message } = &e.event.payload else {
                panic!("a message event");
            };
            let expected = if gone.contains(&message.id) {
                None
            } else {
                Some("words")
            };
            assert_eq!(message.body.as_deref(), expected, "{}", e.cursor.0);
            seen += 1;
        }
    }
    assert_eq!(seen, 2300);
}
