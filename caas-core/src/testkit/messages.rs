//! Contract of [`MessageStore`].

use std::collections::BTreeSet;
use std::sync::Arc;

use crate::ids::{ClientMsgId, ConversationId, MessageId, Seq, TenantId};
use crate::model::NewMessage;
use crate::ports::{Appended, HistoryPage, MessageStore};
use crate::testkit::{conversation, t, tenant, user};

/// A text message for tests.
pub fn new_message(
    tn: &TenantId,
    conv: &ConversationId,
    sender: &str,
    key: &str,
    body: &str,
) -> NewMessage {
    NewMessage {
        tenant: tn.clone(),
        conversation: conv.clone(),
        id: MessageId::generate(t(0)),
        sender: user(sender),
        client_msg_id: ClientMsgId::parse(key).unwrap(),
        body: Some(body.into()),
        ciphertext: None,
        attachments: vec![],
        reply_to: None,
        forwarded_from: None,
        mentions: vec![],
        created_at: t(seq_time(key)),
    }
}

fn seq_time(key: &str) -> u64 {
    key.bytes().map(u64::from).sum()
}

/// Seqs start at 1 and are gap-free per conversation, independent across
/// conversations and tenants.
pub async fn seq_starts_at_one_and_is_gap_free(s: Arc<dyn MessageStore>) {
    let tn = tenant();
    let (c1, c2) = (conversation(), conversation());
    for i in 1..=5u64 {
        let m = s
            .append(new_message(&tn, &c1, "alice", &format!("k{i}"), "x"))
            .await
            .unwrap();
        assert!(matches!(m, Appended::Created(_)));
        assert_eq!(m.message().seq, Seq(i));
    }
    let other = s
        .append(new_message(&tn, &c2, "alice", "k1", "x"))
        .await
        .unwrap();
    assert_eq!(other.message().seq, Seq(1));
    let other_tenant = s
        .append(new_message(&tenant(), &c1, "alice", "k9", "x"))
        .await
        .unwrap();
    assert_eq!(other_tenant.message().seq, Seq(1));
}

/// A retry with the same (sender, client_msg_id) returns the original unchanged;
/// another sender may use the same key.
pub async fn append_is_idempotent_per_sender(s: Arc<dyn MessageStore>) {
    let tn = tenant();
    let c = conversation();
    let first = s
        .append(new_message(&tn, &c, "alice", "same", "one"))
        .await
        .unwrap();
    let again = s
        .append(new_message(&tn, &c, "alice", "same", "two"))
        .await
        .unwrap();
    let Appended::Existing(orig) = again else {
        panic!("a retry must return the existing message")
    };
    assert_eq!(&orig, first.message());
    assert_eq!(orig.body.as_deref(), Some("one"));
    let bob = s
        .append(new_message(&tn, &c, "bob", "same", "bob's"))
        .await
        .unwrap();
    assert!(matches!(bob, Appended::Created(_)));
    assert_eq!(bob.message().seq, Seq(2));
}

/// Concurrent appends (with retries among them) never share a seq, never leave a
/// gap and never store a duplicate.
pub async fn concurrent_appends_are_gap_free(s: Arc<dyn MessageStore>) {
    let tn = tenant();
    let c = conversation();
    let mut handles = Vec::new();
    for w in 0..8 {
        let (s, tn, c) = (s.clone(), tn.clone(), c.clone());
        handles.push(tokio::spawn(async move {
            let mut got = Vec::new();
            for i in 0..25 {
                // Every key is sent twice, the second a retry.
                let key = format!("w{w}-{i}");
                for _ in 0..2 {
                    let r = s
                        .append(new_message(&tn, &c, &format!("u{w}"), &key, "x"))
                        .await
                        .unwrap();
                    got.push((
                        key.clone(),
                        r.message().seq,
                        matches!(r, Appended::Created(_)),
                    ));
                }
            }
            got
        }));
    }
    let mut seqs = BTreeSet::new();
    let mut by_key = std::collections::BTreeMap::new();
    for h in handles {
        for (key, seq, created) in h.await.unwrap() {
            if created {
                assert!(seqs.insert(seq), "seq {seq} assigned twice");
            }
            let prev = by_key.insert(key, seq);
            assert!(prev.is_none_or(|p| p == seq), "a retry got a different seq");
        }
    }
    assert_eq!(seqs.len(), 200);
    assert_eq!(
        seqs.iter().copied().collect::<Vec<_>>(),
        (1..=200).map(Seq).collect::<Vec<_>>()
    );
    let all = s
        .history(&tn, &c, HistoryPage::After(Seq(0)), 1000)
        .await
        .unwrap();
    assert_eq!(all.len(), 200);
}

/// History pages are ascending and bounded.
pub async fn history_pages(s: Arc<dyn MessageStore>) {
    let tn = tenant();
    let c = conversation();
    for i in 1..=10 {
        s.append(new_message(
            &tn,
            &c,
            "alice",
            &format!("k{i}"),
            &format!("m{i}"),
        ))
        .await
        .unwrap();
    }
    let seqs =
        |v: Vec<crate::model::Message>| v.into_iter().map(|m| m.seq.get()).collect::<Vec<_>>();
    assert_eq!(
        seqs(s.history(&tn, &c, HistoryPage::Latest, 3).await.unwrap()),
        [8, 9, 10]
    );
    assert_eq!(
        seqs(
            s.history(&tn, &c, HistoryPage::Before(Seq(5)), 3)
                .await
                .unwrap()
        ),
        [2, 3, 4]
    );
    assert_eq!(
        seqs(
            s.history(&tn, &c, HistoryPage::Before(Seq(2)), 3)
                .await
                .unwrap()
        ),
        [1]
    );
    assert_eq!(
        seqs(
            s.history(&tn, &c, HistoryPage::After(Seq(7)), 10)
                .await
                .unwrap()
        ),
        [8, 9, 10]
    );
    assert!(
        s.history(&tn, &c, HistoryPage::After(Seq(10)), 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.history(&tenant(), &c, HistoryPage::Latest, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Edits keep history; deleted messages are immutable tombstones.
pub async fn edit_delete_tombstone(s: Arc<dyn MessageStore>) {
    let tn = tenant();
    let c = conversation();
    let m = s
        .append(new_message(&tn, &c, "alice", "k", "one"))
        .await
        .unwrap()
        .message()
        .clone();
    let e = s.edit(&tn, &c, &m.id, "two", t(10)).await.unwrap();
    assert_eq!(e.body.as_deref(), Some("two"));
    assert_eq!(e.edits.len(), 1);
    assert_eq!(e.edits[0].body, "one");
    assert_eq!(s.get(&tn, &c, &m.id).await.unwrap(), Some(e));
    let d = s.delete(&tn, &c, &m.id, &user("mod"), t(11)).await.unwrap();
    assert!(
        d.changed && d.value.is_deleted() && d.value.body.is_none() && d.value.edits.is_empty()
    );
    assert_eq!(d.value.seq, m.seq);
    let again = s.delete(&tn, &c, &m.id, &user("mod"), t(12)).await.unwrap();
    assert!(!again.changed);
    assert!(matches!(
        s.edit(&tn, &c, &m.id, "three", t(13)).await,
        Err(crate::Error::Conflict { .. })
    ));
    assert!(matches!(
        s.react(&tn, &c, &m.id, &user("bob"), "x", true).await,
        Err(crate::Error::Conflict { .. })
    ));
    let ghost = MessageId::generate(t(0));
    assert!(matches!(
        s.edit(&tn, &c, &ghost, "x", t(1)).await,
        Err(crate::Error::NotFound { .. })
    ));
    assert!(matches!(
        s.delete(&tn, &c, &ghost, &user("a"), t(1)).await,
        Err(crate::Error::NotFound { .. })
    ));
}

/// Reactions are sets per emoji; pins toggle; repeats report no change.
pub async fn reactions_and_pins(s: Arc<dyn MessageStore>) {
    let tn = tenant();
    let c = conversation();
    let m = s
        .append(new_message(&tn, &c, "alice", "k", "one"))
        .await
        .unwrap()
        .message()
        .clone();
    assert!(
        s.react(&tn, &c, &m.id, &user("bob"), "👍", true)
            .await
            .unwrap()
            .changed
    );
    assert!(
        !s.react(&tn, &c, &m.id, &user("bob"), "👍", true)
            .await
            .unwrap()
            .changed
    );
    let r = s
        .react(&tn, &c, &m.id, &user("alice"), "👍", true)
        .await
        .unwrap();
    assert_eq!(r.value.reactions["👍"], vec![user("alice"), user("bob")]);
    assert!(
        s.react(&tn, &c, &m.id, &user("bob"), "👍", false)
            .await
            .unwrap()
            .changed
    );
    assert!(
        !s.react(&tn, &c, &m.id, &user("bob"), "👍", false)
            .await
            .unwrap()
            .changed
    );
    let p = s
        .pin(&tn, &c, &m.id, Some((&user("bob"), t(3))))
        .await
        .unwrap();
    assert!(p.changed && p.value.pinned.is_some());
    assert!(
        !s.pin(&tn, &c, &m.id, Some((&user("bob"), t(4))))
            .await
            .unwrap()
            .changed
    );
    assert_eq!(s.pinned(&tn, &c).await.unwrap().len(), 1);
    assert!(s.pin(&tn, &c, &m.id, None).await.unwrap().changed);
    assert!(s.pinned(&tn, &c).await.unwrap().is_empty());
}

/// Heads and unread counting from others.
pub async fn heads_and_counts(s: Arc<dyn MessageStore>) {
    let tn = tenant();
    let (c1, c2) = (conversation(), conversation());
    for (i, who) in ["alice", "bob", "alice", "carol"].iter().enumerate() {
        s.append(new_message(&tn, &c1, who, &format!("k{i}"), "x"))
            .await
            .unwrap();
    }
    let heads = s.heads(&tn, &[c2.clone(), c1.clone()]).await.unwrap();
    assert_eq!(heads[0].last_seq, Seq(0));
    assert_eq!(heads[0].last_activity, None);
    assert_eq!(heads[1].last_seq, Seq(4));
    assert!(heads[1].last_activity.is_some());
    assert_eq!(
        s.count_from_others(&tn, &c1, &user("alice"), Seq(0))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.count_from_others(&tn, &c1, &user("alice"), Seq(2))
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        s.count_from_others(&tn, &c1, &user("dave"), Seq(1))
            .await
            .unwrap(),
        3
    );
    assert_eq!(
        s.count_from_others(&tn, &c1, &user("dave"), Seq(4))
            .await
            .unwrap(),
        0
    );
}

/// Expands the suite for a backend.
#[macro_export]
macro_rules! message_store_contract {
    ($make:expr) => {
        $crate::__contract_cases!(
            $crate::ports::MessageStore,
            messages,
            $make,
            [
                seq_starts_at_one_and_is_gap_free,
                append_is_idempotent_per_sender,
                concurrent_appends_are_gap_free,
                history_pages,
                edit_delete_tombstone,
                reactions_and_pins,
                heads_and_counts,
            ]
        );
    };
}
