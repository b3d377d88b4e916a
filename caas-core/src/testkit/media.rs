//! Contract of [`MediaStore`](crate::ports::MediaStore).

use std::sync::Arc;

use crate::Error;
use crate::ids::{BlobId, TenantId};
use crate::model::Media;
use crate::ports::Backends;
use crate::testkit::{conversation, t, tenant, user};
use crate::time::Timestamp;

fn blob(n: u32) -> BlobId {
    BlobId::parse(&format!("b_{n:04}")).unwrap()
}

fn pending(tn: &TenantId, id: BlobId, owner: &str, expires_at: Timestamp) -> Media {
    Media {
        tenant: tn.clone(),
        id,
        owner: user(owner),
        conversation_id: conversation(),
        content_type: "image/png".into(),
        size: 1234,
        sha256: Some("ab".repeat(32)),
        name: Some("cat.png".into()),
        created_at: t(0),
        expires_at,
        completed_at: None,
        shared_in: Vec::new(),
    }
}

/// An announced upload reads back pending, completes once, and stays in its
/// tenant; announcing an id twice conflicts.
pub async fn announce_then_complete(b: Backends) {
    let s = b.media;
    let tn = tenant();
    let m = pending(&tn, blob(1), "alice", t(100));
    s.announce(&m).await.unwrap();
    assert_eq!(s.get(&tn, &m.id).await.unwrap(), Some(m.clone()));
    assert!(matches!(s.announce(&m).await, Err(Error::Conflict { .. })));
    assert_eq!(s.get(&tenant(), &m.id).await.unwrap(), None);

    let sum = "cd".repeat(32);
    let done = s.complete(&tn, &m.id, &sum, t(10)).await.unwrap();
    assert_eq!(
        done,
        Media {
            completed_at: Some(t(10)),
            sha256: Some(sum.clone()),
            ..m.clone()
        }
    );
    // Completing again changes nothing, even past the deadline.
    let again = s
        .complete(&tn, &m.id, &"ef".repeat(32), t(500))
        .await
        .unwrap();
    assert_eq!(again.sha256, Some(sum.clone()));
    assert_eq!(again.completed_at, Some(t(10)));
    assert_eq!(s.get(&tn, &m.id).await.unwrap(), Some(done));
    assert!(matches!(
        s.complete(&tn, &blob(2), &sum, t(10)).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        s.complete(&tenant(), &m.id, &sum, t(10)).await,
        Err(Error::NotFound { .. })
    ));
}

/// A pending upload past its deadline cannot be completed; the cleanup lists
/// it (earliest deadline first) and removes it, but never a completed one.
pub async fn expired_uploads_are_listed_and_removed(b: Backends) {
    let s = b.media;
    let tn = tenant();
    let late = pending(&tn, blob(1), "alice", t(20));
    let early = pending(&tn, blob(2), "alice", t(10));
    let done = pending(&tn, blob(3), "alice", t(15));
    let open = pending(&tn, blob(4), "alice", t(1_000));
    let sum = "cd".repeat(32);
    for m in [&late, &early, &done, &open] {
        s.announce(m).await.unwrap();
    }
    s.complete(&tn, &done.id, &sum, t(5)).await.unwrap();
    assert!(matches!(
        s.complete(&tn, &early.id, &sum, t(10)).await,
        Err(Error::NotFound { .. })
    ));

    // Other tenants' uploads may be due too (a shared store): keep ours.
    let ours = |v: Vec<Media>| -> Vec<BlobId> {
        v.into_iter()
            .filter(|m| m.tenant == tn)
            .map(|m| m.id)
            .collect()
    };
    assert_eq!(
        ours(s.expired(t(20), 10_000).await.unwrap()),
        vec![early.id.clone(), late.id.clone()]
    );
    assert_eq!(
        ours(s.expired(t(12), 10_000).await.unwrap()),
        vec![early.id.clone()]
    );
    assert!(s.expired(t(20), 1).await.unwrap().len() <= 1);

    assert!(!s.remove_expired(&tn, &done.id, t(20)).await.unwrap());
    assert!(!s.remove_expired(&tn, &open.id, t(20)).await.unwrap());
    assert!(!s.remove_expired(&tn, &late.id, t(19)).await.unwrap());
    assert!(s.remove_expired(&tn, &late.id, t(20)).await.unwrap());
    assert!(!s.remove_expired(&tn, &late.id, t(20)).await.unwrap());
    assert!(s.remove_expired(&tn, &early.id, t(20)).await.unwrap());
    assert_eq!(
        ours(s.expired(t(2_000), 10_000).await.unwrap()),
        vec![open.id.clone()]
    );
    assert!(s.get(&tn, &done.id).await.unwrap().is_some());
    assert!(s.get(&tn, &late.id).await.unwrap().is_none());
}

/// Sharing records a conversation once, never the record's own; deleting
/// removes the record.
pub async fn share_and_delete(b: Backends) {
    let s = b.media;
    let tn = tenant();
    let m = pending(&tn, blob(1), "alice", t(100));
    s.announce(&m).await.unwrap();
    let (c2, c3) = (conversation(), conversation());
    s.share(&tn, &m.id, &m.conversation_id).await.unwrap();
    s.share(&tn, &m.id, &c2).await.unwrap();
    s.share(&tn, &m.id, &c3).await.unwrap();
    s.share(&tn, &m.id, &c2).await.unwrap();
    let got = s.get(&tn, &m.id).await.unwrap().unwrap();
    assert_eq!(got.shared_in, vec![c2.clone(), c3]);
    assert!(matches!(
        s.share(&tn, &blob(9), &c2).await,
        Err(Error::NotFound { .. })
    ));
    assert!(s.delete(&tn, &m.id).await.unwrap());
    assert!(!s.delete(&tn, &m.id).await.unwrap());
    assert_eq!(s.get(&tn, &m.id).await.unwrap(), None);
}

/// Concurrent shares of one upload are all kept.
pub async fn concurrent_shares(b: Backends) {
    let s = b.media;
    let tn = tenant();
    let m = pending(&tn, blob(1), "alice", t(100));
    s.announce(&m).await.unwrap();
    let convs: Vec<_> = (0..16).map(|_| conversation()).collect();
    let mut hs = Vec::new();
    for c in convs.clone() {
        let (s, tn, id) = (Arc::clone(&s), tn.clone(), m.id.clone());
        hs.push(tokio::spawn(
            async move { s.share(&tn, &id, &c).await.unwrap() },
        ));
    }
    for h in hs {
        h.await.unwrap();
    }
    let mut got = s.get(&tn, &m.id).await.unwrap().unwrap().shared_in;
    let mut want = convs;
    got.sort();
    want.sort();
    assert_eq!(got, want);
}

/// A user's uploads page in blob id order, without anyone else's.
pub async fn by_owner_pages(b: Backends) {
    let s = b.media;
    let tn = tenant();
    for n in [5, 1, 4, 2, 3] {
        s.announce(&pending(&tn, blob(n), "alice", t(100)))
            .await
            .unwrap();
    }
    s.announce(&pending(&tn, blob(6), "bob", t(100)))
        .await
        .unwrap();
    let other = tenant();
    s.announce(&pending(&other, blob(7), "alice", t(100)))
        .await
        .unwrap();

    let ids = |v: Vec<Media>| v.into_iter().map(|m| m.id).collect::<Vec<_>>();
    let alice = user("alice");
    let first = s.by_owner(&tn, &alice, None, 2).await.unwrap();
    assert_eq!(ids(first), vec![blob(1), blob(2)]);
    let rest = s.by_owner(&tn, &alice, Some(&blob(2)), 10).await.unwrap();
    assert_eq!(ids(rest), vec![blob(3), blob(4), blob(5)]);
    let bob = s.by_owner(&tn, &user("bob"), None, 10).await.unwrap();
    assert_eq!(ids(bob), vec![blob(6)]);
    assert!(
        s.by_owner(&tn, &user("carol"), None, 10)
            .await
            .unwrap()
            .is_empty()
    );
}
