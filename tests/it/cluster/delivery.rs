//! Three node processes: what one node's client does reaches the others'
//! clients live, once, in order.

use std::time::Duration;

use caas::core::events::EventPayload;
use caas::core::ids::{ConversationId, Seq, UserId};
use caas_transport::client::Events;
use caas_transport::ws::frames::{CallSignalRequest, ReadRequest, Request, TypingRequest};
use futures_util::StreamExt;
use serde_json::{Value, json};

use super::harness::{Cluster, Servers, client, tenant};

const WAIT: Duration = Duration::from_secs(10);

/// A raw WebSocket reader of `base` for `token`: every `message.created` frame
/// of `conv`, as the seq it carries, counted as it comes (no client-side
/// deduplication or ordering to hide a repeat or a swap).
async fn raw_seqs(
    base: &str,
    token: &str,
    conv: ConversationId,
) -> tokio::sync::mpsc::UnboundedReceiver<u64> {
    let url = format!(
        "{}/v1/ws?access_token={token}",
        base.replace("http://", "ws://")
    );
    let (mut ws, _) = tokio_tungstenite::connect_async(url).await.unwrap();
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        while let Some(Ok(m)) = ws.next().await {
            let tokio_tungstenite::tungstenite::Message::Text(t) = m else {
                continue;
            };
            let v: Value = serde_json::from_str(&t).unwrap();
            let e = &v["event"];
            if v["type"] == "event"
                && e["kind"] == "message.created"
                && e["conversation_id"] == conv.as_str()
            {
                let _ = tx.send(e["seq"].as_u64().unwrap());
            }
        }
    });
    rx
}

/// The next event of `events` that `pick` accepts, within [`WAIT`].
async fn next_matching(events: &mut Events, what: &str, pick: impl Fn(&EventPayload) -> bool) {
    tokio::time::timeout(WAIT, async {
        loop {
            let e = events.next_event().await.expect("the client stays open");
            if pick(&e.payload) {
                return;
            }
        }
    })
    .await
    .unwrap_or_else(|_| panic!("{what} within {WAIT:?}"));
}

/// A sender on node A, members on nodes B and C: each member gets every
/// message live, exactly once, in `seq` order; typing, receipts, presence and
/// call signals cross nodes too.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_deliver_live_once_in_order_and_relay_signals() {
    let Some(servers) = Servers::provisioned() else {
        return;
    };
    let cluster = Cluster::start(3, &servers);
    let [a, b, c] = [0, 1, 2].map(|i| cluster.nodes[i].url());
    let t = tenant(&a, &cluster.operator_key, &["alice", "bob", "carol"]).await;
    let conv = t.conversation.clone();
    let mut bob_raw = raw_seqs(&b, &t.tokens["bob"], conv.clone()).await;
    let mut carol_raw = raw_seqs(&c, &t.tokens["carol"], conv.clone()).await;
    let (alice, mut alice_events) = client(&cluster.urls_from(0), &t.tokens["alice"]).await;
    let (bob, mut bob_events) = client(&cluster.urls_from(1), &t.tokens["bob"]).await;
    let (carol, mut carol_events) = client(&cluster.urls_from(2), &t.tokens["carol"]).await;

    const N: u64 = 40;
    for i in 1..=N {
        let sent = super::harness::send_once(&alice, &conv, &format!("m-{i}")).await;
        assert_eq!(
            sent,
            super::harness::Outcome::Acked {
                seq: i,
                duplicate: false
            }
        );
    }
    for (who, raw) in [("bob", &mut bob_raw), ("carol", &mut carol_raw)] {
        let mut seqs = Vec::new();
        while seqs.len() < N as usize {
            match tokio::time::timeout(WAIT, raw.recv()).await {
                Ok(Some(seq)) => seqs.push(seq),
                _ => panic!("{who} got {} of {N} messages live: {seqs:?}", seqs.len()),
            }
        }
        assert_eq!(
            seqs,
            (1..=N).collect::<Vec<_>>(),
            "{who}: once each, in order"
        );
        // Nothing more comes: no late repeat.
        let extra = tokio::time::timeout(Duration::from_millis(500), raw.recv()).await;
        assert!(
            !matches!(extra, Ok(Some(_))),
            "{who} got a message twice: {extra:?}"
        );
    }

    // Typing on node A reaches B and C.
    alice
        .request(Request::Typing(TypingRequest {
            conversation_id: conv.clone(),
            typing: true,
        }))
        .await
        .unwrap();
    let typing = |p: &EventPayload| matches!(p, EventPayload::Typing { .. });
    next_matching(&mut bob_events, "alice's typing on node B", typing).await;
    next_matching(&mut carol_events, "alice's typing on node C", typing).await;

    // A read receipt on node C reaches A and B.
    carol
        .request(Request::Read(ReadRequest {
            conversation_id: conv.clone(),
            seq: Seq(N),
            delivered_only: false,
        }))
        .await
        .unwrap();
    let receipt = |p: &EventPayload| matches!(p, EventPayload::ReceiptUpdated { .. });
    next_matching(&mut alice_events, "carol's receipt on node A", receipt).await;
    next_matching(&mut bob_events, "carol's receipt on node B", receipt).await;

    // A call signal from node B to alice on node A, and only to her.
    let offer = json!({"type": "offer", "sdp": "v=0"});
    bob.request(Request::CallSignal(CallSignalRequest {
        conversation_id: conv.clone(),
        to: Some(UserId::parse("alice").unwrap()),
        signal: offer.clone(),
    }))
    .await
    .unwrap();
    next_matching(
        &mut alice_events,
        "bob's call signal on node A",
        |p| matches!(p, EventPayload::CallSignal { signal, .. } if *signal == offer),
    )
    .await;
    let leaked = tokio::time::timeout(Duration::from_millis(500), async {
        loop {
            let e = carol_events.next_event().await;
            if matches!(
                e.as_ref().map(|e| &e.payload),
                Some(EventPayload::CallSignal { .. }) | None
            ) {
                return;
            }
        }
    })
    .await;
    assert!(leaked.is_err(), "a signal to alice reached carol");

    // Presence: node A sees bob (node B) and carol (node C) online.
    let presence: Value = reqwest::Client::new()
        .get(format!("{a}/v1/presence?users=bob,carol"))
        .bearer_auth(&t.tokens["alice"])
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = presence["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, ["online", "online"], "{presence}");
}
