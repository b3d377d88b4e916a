//! Contract of [`ConversationStore`](crate::ports::ConversationStore).

use crate::ids::{TenantId, UserId};
use crate::model::{Conversation, ConversationKind, Member, Role};
use crate::ports::Backends;
use crate::ports::Created;
use crate::testkit::{conversation, t, tenant, user};

fn conv(tn: &TenantId, kind: ConversationKind, pair: Option<(&UserId, &UserId)>) -> Conversation {
    Conversation {
        tenant: tn.clone(),
        id: conversation(),
        kind,
        name: (kind != ConversationKind::Direct).then(|| "team".to_owned()),
        attributes: Default::default(),
        created_by: None,
        direct_key: pair.map(|(a, b)| Conversation::direct_key_of(a, b)),
        created_at: t(0),
    }
}

fn members(c: &Conversation, users: &[&str]) -> Vec<Member> {
    users
        .iter()
        .map(|u| Member::new(c.id.clone(), user(u), Role::Member, t(0)))
        .collect()
}

/// Create stores the conversation and its members.
pub async fn create_then_read(b: Backends) {
    let s = b.conversations;
    let tn = tenant();
    let c = conv(&tn, ConversationKind::Group, None);
    let ms = members(&c, &["bob", "alice"]);
    assert_eq!(s.create(&c, &ms).await.unwrap(), Created::New(c.clone()));
    assert_eq!(s.get(&tn, &c.id).await.unwrap(), Some(c.clone()));
    let got: Vec<_> = s
        .members(&tn, &c.id)
        .await
        .unwrap()
        .into_iter()
        .map(|m| m.user)
        .collect();
    assert_eq!(got, [user("alice"), user("bob")]);
    assert_eq!(
        s.member(&tn, &c.id, &user("bob")).await.unwrap(),
        Some(ms[0].clone())
    );
    assert_eq!(s.member(&tn, &c.id, &user("carol")).await.unwrap(), None);
    assert_eq!(
        s.get(&tenant(), &c.id).await.unwrap(),
        None,
        "another tenant sees nothing"
    );
}

/// A second direct conversation for the same pair returns the first, in either
/// order, and stores nothing, even when creates race.
pub async fn direct_is_unique_per_pair(b: Backends) {
    let s = b.conversations;
    let tn = tenant();
    let (a, b) = (user("alice"), user("bob"));
    let first = conv(&tn, ConversationKind::Direct, Some((&a, &b)));
    let mut handles = Vec::new();
    for i in 0..8 {
        let s = s.clone();
        let c = if i == 0 {
            first.clone()
        } else {
            conv(&tn, ConversationKind::Direct, Some((&b, &a)))
        };
        let ms = members(&c, &["alice", "bob"]);
        handles.push(tokio::spawn(
            async move { s.create(&c, &ms).await.unwrap() },
        ));
    }
    let mut winners = Vec::new();
    let mut ids = std::collections::BTreeSet::new();
    for h in handles {
        let r = h.await.unwrap();
        if r.is_new() {
            winners.push(r.clone());
        }
        ids.insert(r.into_inner().id);
    }
    assert_eq!(winners.len(), 1, "exactly one create stores");
    assert_eq!(ids.len(), 1, "every create returns the same conversation");
    let listed = s.list_for_user(&tn, &a).await.unwrap();
    assert_eq!(listed.len(), 1);
    // Another tenant's pair is independent.
    let other = conv(&tenant(), ConversationKind::Direct, Some((&a, &b)));
    assert!(
        s.create(&other, &members(&other, &["alice", "bob"]))
            .await
            .unwrap()
            .is_new()
    );
}

/// Members are upserted and removed; a missing conversation refuses members.
pub async fn members_put_and_remove(b: Backends) {
    let s = b.conversations;
    let tn = tenant();
    let c = conv(&tn, ConversationKind::Group, None);
    // Read before each write: a backend that caches must not serve stale lists.
    assert!(s.members(&tn, &c.id).await.unwrap().is_empty());
    s.create(&c, &members(&c, &["alice"])).await.unwrap();
    assert_eq!(s.members(&tn, &c.id).await.unwrap().len(), 1);
    let mut bob = Member::new(c.id.clone(), user("bob"), Role::Moderator, t(5));
    assert!(s.put_member(&tn, &bob).await.unwrap());
    assert_eq!(s.members(&tn, &c.id).await.unwrap().len(), 2);
    bob.muted = true;
    assert!(!s.put_member(&tn, &bob).await.unwrap());
    assert!(
        s.members(&tn, &c.id)
            .await
            .unwrap()
            .iter()
            .any(|m| m.user == user("bob") && m.muted)
    );
    assert_eq!(
        s.member(&tn, &c.id, &user("bob")).await.unwrap(),
        Some(bob.clone())
    );
    assert!(s.remove_member(&tn, &c.id, &user("bob")).await.unwrap());
    assert!(!s.remove_member(&tn, &c.id, &user("bob")).await.unwrap());
    assert_eq!(s.members(&tn, &c.id).await.unwrap().len(), 1);
    let ghost = Member::new(conversation(), user("x"), Role::Member, t(0));
    let err = s.put_member(&tn, &ghost).await.unwrap_err();
    assert!(matches!(err, crate::Error::NotFound { .. }), "{err:?}");
}

/// A user's conversations, by id, with their membership.
pub async fn list_for_user(b: Backends) {
    let s = b.conversations;
    let tn = tenant();
    let mut mine = Vec::new();
    for i in 0..3 {
        let c = conv(&tn, ConversationKind::Group, None);
        let who: &[&str] = if i == 1 { &["bob"] } else { &["alice", "bob"] };
        s.create(&c, &members(&c, who)).await.unwrap();
        if i != 1 {
            mine.push(c.id.clone());
        }
    }
    mine.sort();
    let got: Vec<_> = s
        .list_for_user(&tn, &user("alice"))
        .await
        .unwrap()
        .into_iter()
        .map(|(c, m)| {
            assert_eq!(m.user, user("alice"));
            c.id
        })
        .collect();
    assert_eq!(got, mine);
    assert!(
        s.list_for_user(&tenant(), &user("alice"))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Update replaces name and attributes; a missing one is not found.
pub async fn update_conversation(b: Backends) {
    let s = b.conversations;
    let tn = tenant();
    let mut c = conv(&tn, ConversationKind::Channel, None);
    // Read before each write: a backend that caches must not serve stale ones.
    assert_eq!(s.get(&tn, &c.id).await.unwrap(), None);
    s.create(&c, &members(&c, &["alice"])).await.unwrap();
    assert_eq!(s.get(&tn, &c.id).await.unwrap(), Some(c.clone()));
    c.name = Some("renamed".into());
    c.attributes
        .insert("public".into(), serde_json::json!(true));
    s.update(&c).await.unwrap();
    assert_eq!(s.get(&tn, &c.id).await.unwrap(), Some(c));
    let ghost = conv(&tn, ConversationKind::Group, None);
    assert!(matches!(
        s.update(&ghost).await,
        Err(crate::Error::NotFound { .. })
    ));
}

/// A taken conversation id is a conflict.
pub async fn create_taken_id_conflicts(b: Backends) {
    let s = b.conversations;
    let tn = tenant();
    let c = conv(&tn, ConversationKind::Group, None);
    s.create(&c, &members(&c, &["alice"])).await.unwrap();
    let err = s.create(&c, &members(&c, &["bob"])).await.unwrap_err();
    assert!(matches!(err, crate::Error::Conflict { .. }), "{err:?}");
    assert!(
        s.member(&tn, &c.id, &user("bob")).await.unwrap().is_none(),
        "a failed create stores no member"
    );
}

/// A tenant's conversations page in ascending id order, none skipped or
/// repeated, none of another tenant's; a page after the last id is empty.
pub async fn list_pages_in_id_order(b: Backends) {
    let s = b.conversations;
    let tn = tenant();
    let mut ids = Vec::new();
    for i in 0..5 {
        let c = if i == 2 {
            conv(
                &tn,
                ConversationKind::Direct,
                Some((&user("alice"), &user("bob"))),
            )
        } else {
            conv(&tn, ConversationKind::Group, None)
        };
        s.create(&c, &members(&c, &["alice", "bob"])).await.unwrap();
        ids.push(c.id);
    }
    ids.sort();
    let other = conv(&tenant(), ConversationKind::Group, None);
    s.create(&other, &members(&other, &["alice"]))
        .await
        .unwrap();

    let mut walked = Vec::new();
    let mut after = None;
    loop {
        let page = s.list(&tn, after.as_ref(), 2).await.unwrap();
        assert!(page.len() <= 2, "a page holds at most `limit`");
        for c in &page {
            assert_eq!(c.tenant, tn, "only the tenant's own conversations");
            assert_eq!(s.get(&tn, &c.id).await.unwrap().as_ref(), Some(c));
        }
        let Some(last) = page.last() else { break };
        after = Some(last.id.clone());
        walked.extend(page.into_iter().map(|c| c.id));
    }
    assert_eq!(walked, ids, "every conversation once, in id order");

    let all: Vec<_> = s
        .list(&tn, None, usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(all, ids, "an unbounded page is the whole list");
    let first = s.list(&tn, None, 2).await.unwrap();
    let first: Vec<_> = first.into_iter().map(|c| c.id).collect();
    assert_eq!(first, ids[..2]);
    let rest: Vec<_> = s
        .list(&tn, Some(&first[1]), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(rest, ids[2..], "after a page's last id: all the rest");
    assert!(s.list(&tn, Some(&ids[4]), 10).await.unwrap().is_empty());
    assert!(s.list(&tn, None, 0).await.unwrap().is_empty());
    let theirs: Vec<_> = s
        .list(&other.tenant, None, 10)
        .await
        .unwrap()
        .into_iter()
        .map(|c| c.id)
        .collect();
    assert_eq!(theirs, [other.id]);
}
