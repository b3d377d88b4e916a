//! Contract of [`MessageStore`](crate::ports::MessageStore).

use std::collections::BTreeSet;

use crate::events::{Announce, EventPayload};
use crate::ids::{ClientMsgId, ConversationId, CorrelationId, Cursor, MessageId, Seq, TenantId};
use crate::model::NewMessage;
use crate::ports::Backends;
use crate::ports::{Appended, HistoryPage};
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

/// What the service tells the store about a new message's event: here, that
/// alice and bob may see it.
pub fn announce() -> Announce {
    announce_to(&["alice", "bob"])
}

/// An [`Announce`] for these users.
pub fn announce_to(names: &[&str]) -> Announce {
    Announce {
        audience: names.iter().map(|n| user(n)).collect(),
        correlation_id: CorrelationId::generate(t(0)),
    }
}

fn seq_time(key: &str) -> u64 {
    key.bytes().map(u64::from).sum()
}

/// Seqs start at 1 and are gap-free per conversation, independent across
/// conversations and tenants.
pub async fn seq_starts_at_one_and_is_gap_free(b: Backends) {
    let s = b.messages;
    let tn = tenant();
    let (c1, c2) = (conversation(), conversation());
    for i in 1..=5u64 {
        let m = s
            .append(
                new_message(&tn, &c1, "alice", &format!("k{i}"), "x"),
                announce(),
            )
            .await
            .unwrap();
        assert!(matches!(m, Appended::Created { .. }));
        assert_eq!(m.message().seq, Seq(i));
    }
    let other = s
        .append(new_message(&tn, &c2, "alice", "k1", "x"), announce())
        .await
        .unwrap();
    assert_eq!(other.message().seq, Seq(1));
    let other_tenant = s
        .append(new_message(&tenant(), &c1, "alice", "k9", "x"), announce())
        .await
        .unwrap();
    assert_eq!(other_tenant.message().seq, Seq(1));
}

/// A retry with the same (sender, client_msg_id) returns the original unchanged;
/// another sender may use the same key.
pub async fn append_is_idempotent_per_sender(b: Backends) {
    let s = b.messages;
    let tn = tenant();
    let c = conversation();
    let first = s
        .append(new_message(&tn, &c, "alice", "same", "one"), announce())
        .await
        .unwrap();
    let again = s
        .append(new_message(&tn, &c, "alice", "same", "two"), announce())
        .await
        .unwrap();
    let Appended::Existing(orig) = again else {
        panic!("a retry must return the existing message")
    };
    assert_eq!(&orig, first.message());
    assert_eq!(orig.body.as_deref(), Some("one"));
    let bob = s
        .append(new_message(&tn, &c, "bob", "same", "bob's"), announce())
        .await
        .unwrap();
    assert!(matches!(bob, Appended::Created { .. }));
    assert_eq!(bob.message().seq, Seq(2));
}

/// Concurrent appends (with retries among them) never share a seq, never leave a
/// gap and never store a duplicate.
pub async fn concurrent_appends_are_gap_free(b: Backends) {
    let s = b.messages;
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
                        .append(
                            new_message(&tn, &c, &format!("u{w}"), &key, "x"),
                            announce(),
                        )
                        .await
                        .unwrap();
                    got.push((
                        key.clone(),
                        r.message().seq,
                        matches!(r, Appended::Created { .. }),
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
pub async fn history_pages(b: Backends) {
    let s = b.messages;
    let tn = tenant();
    let c = conversation();
    for i in 1..=10 {
        s.append(
            new_message(&tn, &c, "alice", &format!("k{i}"), &format!("m{i}")),
            announce(),
        )
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
pub async fn edit_delete_tombstone(b: Backends) {
    let s = b.messages;
    let tn = tenant();
    let c = conversation();
    let m = s
        .append(new_message(&tn, &c, "alice", "k", "one"), announce())
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
pub async fn reactions_and_pins(b: Backends) {
    let s = b.messages;
    let tn = tenant();
    let c = conversation();
    let m = s
        .append(new_message(&tn, &c, "alice", "k", "one"), announce())
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
pub async fn heads_and_counts(b: Backends) {
    let s = b.messages;
    let tn = tenant();
    let (c1, c2) = (conversation(), conversation());
    for (i, who) in ["alice", "bob", "alice", "carol"].iter().enumerate() {
        s.append(
            new_message(&tn, &c1, who, &format!("k{i}"), "x"),
            announce(),
        )
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

/// A created message is in the history with its seq, and its `message.created`
/// event ([`Announce::message_created`]) is in the log at the returned cursor for
/// exactly its audience, in the same write.
pub async fn created_message_is_stored_and_logged(b: Backends) {
    let (s, events) = (b.messages, b.events);
    let (tn, c) = (tenant(), conversation());
    let announce = announce_to(&["alice", "bob"]);
    let out = s
        .append(
            new_message(&tn, &c, "alice", "k1", "hello"),
            announce.clone(),
        )
        .await
        .unwrap();
    let Appended::Created {
        message,
        event,
        cursor,
    } = out
    else {
        panic!("a first append is created");
    };
    assert_eq!(message.seq, Seq(1));
    assert_eq!(*event, announce.message_created(&message));
    assert!(matches!(&event.payload, EventPayload::MessageCreated { message: m } if *m == message));
    let history = s.history(&tn, &c, HistoryPage::Latest, 10).await.unwrap();
    assert_eq!(history, vec![message.clone()]);
    assert_eq!(events.head(&tn).await.unwrap(), cursor);
    for (who, sees) in [("alice", true), ("bob", true), ("carol", false)] {
        let log = events.read(&tn, &user(who), Cursor(0), 10).await.unwrap();
        assert_eq!(log.len(), usize::from(sees), "{who}");
        if sees {
            assert_eq!(log[0].cursor, cursor);
            assert_eq!(*log[0].event, *event);
        }
    }
}

/// A retry returns the original message and logs nothing more.
pub async fn a_retry_logs_nothing(b: Backends) {
    let (s, events) = (b.messages, b.events);
    let (tn, c) = (tenant(), conversation());
    let first = s
        .append(
            new_message(&tn, &c, "alice", "same", "one"),
            announce_to(&["alice"]),
        )
        .await
        .unwrap();
    let Appended::Created { message, .. } = first else {
        panic!("a first append is created");
    };
    let again = s
        .append(
            new_message(&tn, &c, "alice", "same", "two"),
            announce_to(&["alice"]),
        )
        .await
        .unwrap();
    assert_eq!(again, Appended::Existing(message));
    let log = events
        .read(&tn, &user("alice"), Cursor(0), 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "the retry logged nothing");
}

/// Under concurrent senders, the log holds each conversation's
/// `message.created` events in seq order (what clients catching up rely on),
/// with increasing cursors.
pub async fn the_log_keeps_each_conversation_in_seq_order(b: Backends) {
    let (s, events) = (b.messages, b.events);
    let tn = tenant();
    let convs = [conversation(), conversation()];
    let mut tasks = Vec::new();
    for w in 0..4u32 {
        let (s, tn, convs) = (s.clone(), tn.clone(), convs.clone());
        tasks.push(tokio::spawn(async move {
            for i in 0..10u32 {
                let c = &convs[(i % 2) as usize];
                let key = format!("w{w}-{i}");
                s.append(
                    new_message(&tn, c, &format!("u{w}"), &key, "x"),
                    announce_to(&["alice"]),
                )
                .await
                .unwrap();
            }
        }));
    }
    for task in tasks {
        task.await.unwrap();
    }
    let log = events
        .read(&tn, &user("alice"), Cursor(0), 1000)
        .await
        .unwrap();
    assert_eq!(log.len(), 40);
    assert!(log.windows(2).all(|w| w[0].cursor < w[1].cursor));
    for c in &convs {
        let seqs: Vec<u64> = log
            .iter()
            .filter_map(|l| match &l.event.payload {
                EventPayload::MessageCreated { message } if message.conversation == *c => {
                    Some(message.seq.get())
                }
                _ => None,
            })
            .collect();
        assert_eq!(seqs, (1..=20).collect::<Vec<u64>>(), "seq order in the log");
    }
}
