//! PostgreSQL restarted (or killed) under load: no acknowledged message is
//! lost, seqs stay gap-free, and the store recovers by itself. The server is a
//! private one the test makes, starts and stops on its own port and data dir.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use caas_adapters::postgres::{PostgresConfig, PostgresStore};
use caas_core::events::Announce;
use caas_core::ids::{ClientMsgId, ConversationId, CorrelationId, MessageId, Seq};
use caas_core::model::NewMessage;
use caas_core::ports::{HistoryPage, MessageStore};
use caas_core::testkit::{conversation, t, tenant, user};

use super::support::PrivateServer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_acked_message_is_lost_when_the_server_restarts_mid_load() {
    let Some(server) = tokio::task::spawn_blocking(PrivateServer::start)
        .await
        .unwrap()
    else {
        return;
    };
    let server = Arc::new(server);
    let store = PostgresStore::connect(PostgresConfig {
        pool_size: 6,
        connect_timeout: Duration::from_secs(2),
        statement_timeout: Duration::from_secs(3),
        ..PostgresConfig::new(server.url())
    })
    .await
    .unwrap();
    let tn = tenant();
    let convs: Vec<ConversationId> = (0..4).map(|_| conversation()).collect();
    let stop = Arc::new(AtomicBool::new(false));
    let failures = Arc::new(AtomicU64::new(0));
    let mut senders = Vec::new();
    for w in 0..16u32 {
        let (store, tn, convs, stop, failures) = (
            store.clone(),
            tn.clone(),
            convs.clone(),
            stop.clone(),
            failures.clone(),
        );
        senders.push(tokio::spawn(async move {
            let mut acked: Vec<(String, ConversationId, Seq)> = Vec::new();
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let key = format!("w{w}-{i}");
                let conv = convs[(i as usize + w as usize) % convs.len()].clone();
                let id = MessageId::generate(t(0));
                let deadline = Instant::now() + Duration::from_secs(60);
                // A client retries the same client_msg_id until it is acked.
                loop {
                    let m = NewMessage {
                        tenant: tn.clone(),
                        conversation: conv.clone(),
                        id: id.clone(),
                        sender: user(&format!("w{w}")),
                        client_msg_id: ClientMsgId::parse(&key).unwrap(),
                        body: Some("survive".into()),
                        ciphertext: None,
                        attachments: vec![],
                        reply_to: None,
                        forwarded_from: None,
                        mentions: vec![],
                        created_at: t(1),
                    };
                    let announce = Announce {
                        audience: Arc::from(vec![user("reader")]),
                        correlation_id: CorrelationId::generate(t(0)),
                    };
                    match store.append(m, announce).await {
                        Ok(a) => {
                            acked.push((key.clone(), conv.clone(), a.message().seq));
                            break;
                        }
                        Err(e) => {
                            assert!(e.is_retryable(), "not retryable: {e:?}");
                            failures.fetch_add(1, Ordering::Relaxed);
                            assert!(Instant::now() < deadline, "no recovery: {e}");
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    }
                }
                i += 1;
            }
            acked
        }));
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    // A crash (no checkpoint, connections cut), then a clean restart.
    for immediate in [true, false] {
        let s = server.clone();
        tokio::task::spawn_blocking(move || {
            s.stop(immediate);
            std::thread::sleep(Duration::from_millis(300));
            s.pg_ctl_start();
        })
        .await
        .unwrap();
        tokio::time::sleep(Duration::from_millis(700)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut acked = Vec::new();
    for s in senders {
        acked.extend(s.await.unwrap());
    }
    assert!(
        failures.load(Ordering::Relaxed) > 0,
        "the restarts should have failed some calls"
    );
    assert!(acked.len() > 50, "too little load: {}", acked.len());
    let mut by_conv: BTreeMap<ConversationId, BTreeMap<String, Seq>> = BTreeMap::new();
    for (key, conv, seq) in &acked {
        by_conv
            .entry(conv.clone())
            .or_default()
            .insert(key.clone(), *seq);
    }
    for conv in &convs {
        let stored = store
            .history(&tn, conv, HistoryPage::After(Seq(0)), 1_000_000)
            .await
            .unwrap();
        let seqs: Vec<u64> = stored.iter().map(|m| m.seq.get()).collect();
        assert_eq!(
            seqs,
            (1..=stored.len() as u64).collect::<Vec<_>>(),
            "gap-free"
        );
        let keys: BTreeMap<&str, Seq> = stored
            .iter()
            .map(|m| (m.client_msg_id.as_str(), m.seq))
            .collect();
        assert_eq!(keys.len(), stored.len(), "one message per client id");
        for (key, seq) in by_conv.get(conv).into_iter().flatten() {
            assert_eq!(
                keys.get(key.as_str()),
                Some(seq),
                "acked {key} lost or moved"
            );
        }
    }
    drop(store);
}
