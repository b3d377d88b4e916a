//! Contract of [`SearchIndex`](crate::ports::SearchIndex).

use crate::ids::{ConversationId, Seq, TenantId};
use crate::model::{Conversation, ConversationKind, Message, User};
use crate::ports::Backends;
use crate::testkit::{conversation, messages::new_message, t, tenant, user};

fn msg(tn: &TenantId, c: &ConversationId, seq: u64, body: &str) -> Message {
    new_message(tn, c, "alice", &format!("k{seq}"), body).into_message(Seq(seq))
}

/// Word-prefix, case-insensitive, all terms; only within the given conversations,
/// newest first; never another tenant's.
pub async fn messages_match_within_scope(b: Backends) {
    let s = b.search;
    let tn = tenant();
    let (c1, c2) = (conversation(), conversation());
    s.index_message(&msg(&tn, &c1, 1, "Lunch at noon?"))
        .await
        .unwrap();
    s.index_message(&msg(&tn, &c1, 2, "lunchtime moved to one"))
        .await
        .unwrap();
    s.index_message(&msg(&tn, &c2, 1, "secret lunch plans"))
        .await
        .unwrap();
    s.index_message(&msg(&tenant(), &c1, 3, "lunch elsewhere"))
        .await
        .unwrap();
    let hits = s
        .search_messages(&tn, "LUNCH", std::slice::from_ref(&c1), None, 10)
        .await
        .unwrap();
    assert_eq!(hits.iter().map(|h| h.seq.get()).collect::<Vec<_>>(), [2, 1]);
    assert!(hits.iter().all(|h| h.conversation == c1));
    let both = s
        .search_messages(&tn, "lunch", &[c1.clone(), c2.clone()], None, 10)
        .await
        .unwrap();
    assert_eq!(both.len(), 3);
    assert_eq!(
        s.search_messages(&tn, "lunch noon", std::slice::from_ref(&c1), None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    assert!(
        s.search_messages(&tn, "unch", std::slice::from_ref(&c1), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.search_messages(&tn, "lunch", &[], None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.search_messages(&tn, "lunch", &[c1, c2], None, 1)
            .await
            .unwrap()
            .len(),
        1
    );
}

/// Re-indexing replaces; deleted, encrypted and removed messages are not found.
pub async fn reindex_and_remove(b: Backends) {
    let s = b.search;
    let tn = tenant();
    let c = conversation();
    let mut m = msg(&tn, &c, 1, "old words");
    s.index_message(&m).await.unwrap();
    m.apply_edit("new words".into(), t(5));
    s.index_message(&m).await.unwrap();
    let within = std::slice::from_ref(&c);
    assert!(
        s.search_messages(&tn, "old", within, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.search_messages(&tn, "new", within, None, 10)
            .await
            .unwrap()
            .len(),
        1
    );
    m.apply_delete(user("alice"), t(6));
    s.index_message(&m).await.unwrap();
    assert!(
        s.search_messages(&tn, "new", within, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let m2 = msg(&tn, &c, 2, "gone soon");
    s.index_message(&m2).await.unwrap();
    s.remove_message(&tn, &c, &m2.id).await.unwrap();
    assert!(
        s.search_messages(&tn, "gone", within, None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Conversations by name within scope; users by name or id within the tenant.
pub async fn conversations_and_users(b: Backends) {
    let s = b.search;
    let tn = tenant();
    let conv = |name: &str| Conversation {
        tenant: tn.clone(),
        id: conversation(),
        kind: ConversationKind::Group,
        name: Some(name.into()),
        attributes: Default::default(),
        created_by: None,
        direct_key: None,
        created_at: t(0),
    };
    let (a, b) = (conv("Rust Hackers"), conv("rustaceans"));
    s.index_conversation(&a).await.unwrap();
    s.index_conversation(&b).await.unwrap();
    let got = s
        .search_conversations(&tn, "rust", &[a.id.clone(), b.id.clone()], None, 10)
        .await
        .unwrap();
    assert_eq!(got.len(), 2);
    assert_eq!(
        s.search_conversations(&tn, "rust", std::slice::from_ref(&a.id), None, 10)
            .await
            .unwrap(),
        vec![a.id.clone()]
    );
    let u = |id: &str, name: &str| User {
        tenant: tn.clone(),
        id: user(id),
        name: name.into(),
        attributes: Default::default(),
        created_at: t(0),
        updated_at: t(0),
    };
    s.index_user(&u("u1", "Grace Hopper")).await.unwrap();
    s.index_user(&u("u2", "Ada Lovelace")).await.unwrap();
    assert_eq!(
        s.search_users(&tn, "hop", None, 10).await.unwrap(),
        vec![user("u1")]
    );
    assert_eq!(
        s.search_users(&tn, "u2", None, 10).await.unwrap(),
        vec![user("u2")]
    );
    s.index_user(&u("u1", "Grace Brewster")).await.unwrap();
    assert!(
        s.search_users(&tn, "hopper", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(
        s.search_users(&tenant(), "ada", None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

/// Pages follow each search's order without gaps or repeats: the next page
/// starts after the last hit of the previous one.
pub async fn pages_continue_after_the_last_hit(b: Backends) {
    let s = b.search;
    let tn = tenant();
    let convs: Vec<ConversationId> = (0..3).map(|_| conversation()).collect();
    for c in &convs {
        for seq in 1..=4 {
            s.index_message(&msg(&tn, c, seq, "standup notes"))
                .await
                .unwrap();
        }
    }
    let mut expected: Vec<(u64, ConversationId)> = convs
        .iter()
        .flat_map(|c| (1..=4).map(move |seq| (seq, c.clone())))
        .collect();
    expected.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
    let mut got = Vec::new();
    let mut after = None;
    loop {
        let page = s
            .search_messages(
                &tn,
                "standup",
                &convs,
                after.as_ref().map(|(s, c)| (*s, c)),
                5,
            )
            .await
            .unwrap();
        assert!(page.len() <= 5);
        got.extend(page.iter().map(|h| (h.seq.get(), h.conversation.clone())));
        match page.last() {
            Some(last) if page.len() == 5 => after = Some((last.seq, last.conversation.clone())),
            _ => break,
        }
    }
    assert_eq!(got, expected);

    for (i, c) in convs.iter().enumerate() {
        s.index_conversation(&Conversation {
            tenant: tn.clone(),
            id: c.clone(),
            kind: ConversationKind::Group,
            name: Some(format!("standup {i}")),
            attributes: Default::default(),
            created_by: Some(user("alice")),
            direct_key: None,
            created_at: t(0),
        })
        .await
        .unwrap();
    }
    let mut sorted = convs.clone();
    sorted.sort();
    let first = s
        .search_conversations(&tn, "standup", &convs, None, 2)
        .await
        .unwrap();
    let rest = s
        .search_conversations(&tn, "standup", &convs, first.last(), 2)
        .await
        .unwrap();
    assert_eq!([first, rest].concat(), sorted);

    for name in ["ann", "bea", "cyd"] {
        s.index_user(&User {
            tenant: tn.clone(),
            id: user(name),
            name: format!("{name} standup"),
            attributes: Default::default(),
            created_at: t(0),
            updated_at: t(0),
        })
        .await
        .unwrap();
    }
    let first = s.search_users(&tn, "standup", None, 2).await.unwrap();
    let rest = s
        .search_users(&tn, "standup", first.last(), 2)
        .await
        .unwrap();
    assert_eq!(
        [first, rest].concat(),
        [user("ann"), user("bea"), user("cyd")]
    );
}
