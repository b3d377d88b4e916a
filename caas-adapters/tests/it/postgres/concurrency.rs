//! Several nodes (stores with pools of their own) writing into the same
//! conversations at once, with retries of the same `client_msg_id` from any
//! node and appends that must fail: seqs stay gap-free, each client id is
//! stored once, and `sync` readers never skip an event.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use caas_adapters::postgres::PostgresStore;
use caas_core::events::{Announce, EventPayload};
use caas_core::ids::{
    ClientMsgId, ConversationId, CorrelationId, Cursor, MessageId, Seq, TenantId,
};
use caas_core::model::NewMessage;
use caas_core::ports::{Appended, EventLog, HistoryPage, MessageStore};
use caas_core::testkit::{conversation, t, tenant, user};
use proptest::prelude::*;

use super::support;

fn message(
    tn: &TenantId,
    conv: &ConversationId,
    sender: &str,
    key: &str,
    id: MessageId,
) -> NewMessage {
    NewMessage {
        tenant: tn.clone(),
        conversation: conv.clone(),
        id,
        sender: user(sender),
        client_msg_id: ClientMsgId::parse(key).unwrap(),
        body: Some(format!("hello {key}")),
        ciphertext: None,
        attachments: vec![],
        reply_to: None,
        forwarded_from: None,
        mentions: vec![],
        created_at: t(1),
    }
}

fn announce() -> Announce {
    Announce {
        audience: Arc::from(vec![user("reader")]),
        correlation_id: CorrelationId::generate(t(0)),
    }
}

/// What one writer did for one key: the seq and id it was answered with.
type Answers = Vec<(String, ConversationId, Seq, MessageId)>;

async fn node(url: &str) -> PostgresStore {
    PostgresStore::connect(caas_adapters::postgres::PostgresConfig {
        pool_size: 3,
        ..support::config(url)
    })
    .await
    .unwrap()
}

async fn scenario(
    url: String,
    nodes: usize,
    writers: usize,
    per_writer: usize,
    convs: usize,
    retry_pct: u32,
    seed: u64,
) {
    let stores: Vec<PostgresStore> = {
        let mut v = Vec::new();
        for _ in 0..nodes {
            v.push(node(&url).await);
        }
        v
    };
    let tn = tenant();
    let conversations: Vec<ConversationId> = (0..convs).map(|_| conversation()).collect();
    // A reader follows the log while the writers write, as `sync` does.
    let done = Arc::new(AtomicBool::new(false));
    let reader = {
        let (store, tn, done) = (stores[0].clone(), tn.clone(), done.clone());
        tokio::spawn(async move {
            let mut seen = Vec::new();
            let mut after = Cursor(0);
            loop {
                let finished = done.load(Ordering::Acquire);
                let page = EventLog::read(&store, &tn, &user("reader"), after, 7)
                    .await
                    .unwrap();
                if let Some(last) = page.last() {
                    after = last.cursor;
                }
                let empty = page.is_empty();
                seen.extend(page);
                if finished && empty {
                    return seen;
                }
            }
        })
    };
    let mut tasks = Vec::new();
    for w in 0..writers {
        let stores = stores.clone();
        let (tn, conversations) = (tn.clone(), conversations.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(seed ^ (w as u64 * 7919));
            let mut answers: Answers = Vec::new();
            let mut conflicts = 0usize;
            let sender = format!("w{w}");
            for i in 0..per_writer {
                let conv = conversations[rng.usize(..conversations.len())].clone();
                let key = format!("{sender}-{i}");
                let id = MessageId::generate(t(0));
                let tries = if rng.u32(..100) < retry_pct { 3 } else { 1 };
                // A retry may reach any node, even while the first try is in flight.
                let mut sends = Vec::new();
                for _ in 0..tries {
                    let s = stores[rng.usize(..stores.len())].clone();
                    let m = message(&tn, &conv, &sender, &key, id.clone());
                    sends.push(tokio::spawn(async move {
                        MessageStore::append(&s, m, announce()).await
                    }));
                }
                for s in sends {
                    let got = s.await.unwrap().unwrap();
                    let m = got.message();
                    answers.push((key.clone(), conv.clone(), m.seq, m.id.clone()));
                }
                // Now and then an append that must fail (a taken message id
                // under a new key): it rolls back and must leave no gap.
                if rng.u32(..100) < 10 {
                    let s = &stores[rng.usize(..stores.len())];
                    let bad = message(&tn, &conv, &sender, &format!("{key}-dup"), id.clone());
                    let err = MessageStore::append(s, bad, announce()).await.unwrap_err();
                    assert!(matches!(err, caas_core::Error::Conflict { .. }), "{err:?}");
                    conflicts += 1;
                }
            }
            (answers, conflicts)
        }));
    }
    let mut answers: Answers = Vec::new();
    for t in tasks {
        answers.extend(t.await.unwrap().0);
    }
    done.store(true, Ordering::Release);
    let followed = reader.await.unwrap();

    // Every answer for a key names the same message.
    let mut by_key: BTreeMap<String, (ConversationId, Seq, MessageId)> = BTreeMap::new();
    for (key, conv, seq, id) in &answers {
        let first = by_key
            .entry(key.clone())
            .or_insert((conv.clone(), *seq, id.clone()));
        assert_eq!(
            first,
            &(conv.clone(), *seq, id.clone()),
            "key {key} answered two ways"
        );
    }
    let store = &stores[0];
    let mut total = 0;
    for conv in &conversations {
        let all = store
            .history(&tn, conv, HistoryPage::After(Seq(0)), 100_000)
            .await
            .unwrap();
        let seqs: Vec<u64> = all.iter().map(|m| m.seq.get()).collect();
        assert_eq!(
            seqs,
            (1..=all.len() as u64).collect::<Vec<_>>(),
            "gap-free seqs"
        );
        let keys: BTreeSet<&str> = all.iter().map(|m| m.client_msg_id.as_str()).collect();
        assert_eq!(keys.len(), all.len(), "one stored message per client id");
        for m in &all {
            let (c, seq, id) = &by_key[m.client_msg_id.as_str()];
            assert_eq!((c, *seq, id), (conv, m.seq, &m.id));
        }
        total += all.len();
    }
    assert_eq!(
        total,
        by_key.len(),
        "every acknowledged key is stored, once"
    );

    // The log: one event per message, cursors increasing, each conversation in
    // seq order, and a reader that followed it live saw exactly the same.
    let log = EventLog::read(store, &tn, &user("reader"), Cursor(0), 100_000)
        .await
        .unwrap();
    assert_eq!(log.len(), total);
    assert!(log.windows(2).all(|w| w[0].cursor < w[1].cursor));
    for conv in &conversations {
        let seqs: Vec<u64> = log
            .iter()
            .filter_map(|l| match &l.event.payload {
                EventPayload::MessageCreated { message } if message.conversation == *conv => {
                    Some(message.seq.get())
                }
                _ => None,
            })
            .collect();
        assert_eq!(
            seqs,
            (1..=seqs.len() as u64).collect::<Vec<_>>(),
            "seq order in the log"
        );
    }
    let live: Vec<u64> = followed.iter().map(|l| l.cursor.0).collect();
    let after: Vec<u64> = log.iter().map(|l| l.cursor.0).collect();
    assert_eq!(live, after, "a live reader skipped or repeated an event");
    assert_eq!(
        EventLog::head(store, &tn).await.unwrap(),
        log.last().map_or(Cursor(0), |l| l.cursor)
    );
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 6, ..ProptestConfig::default() })]

    /// Writers on separate pools (nodes), retries across nodes, rolled-back
    /// appends: gap-free seqs, one message per client id, a log in seq order
    /// that a live reader follows without skipping.
    #[test]
    fn concurrent_nodes_keep_seqs_gap_free_and_keys_unique(
        nodes in 2usize..4,
        writers in 2usize..7,
        per_writer in 5usize..25,
        convs in 1usize..4,
        retry_pct in 0u32..60,
        seed in any::<u64>(),
    ) {
        let Some(url) = support::url() else { return Ok(()) };
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(scenario(url, nodes, writers, per_writer, convs, retry_pct, seed));
    }
}

/// The same retry racing itself inside one node's batch and across nodes: one
/// message, and every caller is answered with it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_key_sent_many_times_at_once_is_stored_once() {
    let Some(url) = support::url() else { return };
    let (a, b) = (node(&url).await, node(&url).await);
    let (tn, conv) = (tenant(), conversation());
    let id = MessageId::generate(t(0));
    let mut sends = Vec::new();
    for i in 0..40 {
        let s = if i % 2 == 0 { a.clone() } else { b.clone() };
        let m = message(&tn, &conv, "alice", "same", id.clone());
        sends.push(tokio::spawn(async move {
            MessageStore::append(&s, m, announce()).await.unwrap()
        }));
    }
    let mut created = 0;
    for s in sends {
        match s.await.unwrap() {
            Appended::Created { message, .. } => {
                created += 1;
                assert_eq!(message.seq, Seq(1));
            }
            Appended::Existing(m) => assert_eq!((m.seq, m.id), (Seq(1), id.clone())),
        }
    }
    assert_eq!(created, 1);
    assert_eq!(a.heads(&tn, &[conv]).await.unwrap()[0].last_seq, Seq(1));
}

/// Concurrent sends on one node share transactions (group commit).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_batches() {
    let Some(url) = support::url() else { return };
    let store = node(&url).await;
    let tn = tenant();
    let convs: Vec<ConversationId> = (0..8).map(|_| conversation()).collect();
    let before = store.writer_stats();
    let mut sends = Vec::new();
    for i in 0..400 {
        let s = store.clone();
        let m = message(
            &tn,
            &convs[i % 8],
            "alice",
            &format!("k{i}"),
            MessageId::generate(t(0)),
        );
        sends.push(tokio::spawn(async move {
            MessageStore::append(&s, m, announce()).await.unwrap()
        }));
    }
    for s in sends {
        s.await.unwrap();
    }
    let after = store.writer_stats();
    assert_eq!(after.appends - before.appends, 400);
    assert!(
        after.batches - before.batches < 200,
        "400 concurrent appends took {} batches",
        after.batches - before.batches
    );
}
