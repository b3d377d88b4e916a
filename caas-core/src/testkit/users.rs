//! Contract of [`UserStore`](crate::ports::UserStore).

use crate::ids::TenantId;
use crate::model::User;
use crate::ports::Backends;
use crate::testkit::{t, tenant, user};

fn sample(tenant: &TenantId, id: &str, name: &str) -> User {
    User {
        tenant: tenant.clone(),
        id: user(id),
        name: name.into(),
        attributes: [("team".to_owned(), serde_json::json!("red"))]
            .into_iter()
            .collect(),
        created_at: t(1),
        updated_at: t(1),
    }
}

/// Upsert creates, then replaces while keeping `created_at`.
pub async fn upsert_creates_then_replaces(b: Backends) {
    let s = b.users;
    let tn = tenant();
    let a = sample(&tn, "alice", "Alice");
    assert_eq!(s.upsert(&a).await.unwrap(), a);
    let mut b = sample(&tn, "alice", "Alice B");
    b.created_at = t(50);
    b.updated_at = t(50);
    let stored = s.upsert(&b).await.unwrap();
    assert_eq!(stored.name, "Alice B");
    assert_eq!(stored.created_at, t(1));
    assert_eq!(stored.updated_at, t(50));
    assert_eq!(s.get(&tn, &user("alice")).await.unwrap(), Some(stored));
}

/// Users of one tenant are invisible from another.
pub async fn tenants_are_isolated(b: Backends) {
    let s = b.users;
    let (t1, t2) = (tenant(), tenant());
    s.upsert(&sample(&t1, "alice", "A")).await.unwrap();
    assert_eq!(s.get(&t2, &user("alice")).await.unwrap(), None);
    assert!(s.get_many(&t2, &[user("alice")]).await.unwrap().is_empty());
    assert!(s.list(&t2, None, 10).await.unwrap().is_empty());
}

/// get_many returns the existing ones in the asked order, once each.
pub async fn get_many_keeps_order(b: Backends) {
    let s = b.users;
    let tn = tenant();
    for n in ["a", "b", "c"] {
        s.upsert(&sample(&tn, n, n)).await.unwrap();
    }
    let got = s
        .get_many(&tn, &[user("c"), user("zz"), user("a"), user("c")])
        .await
        .unwrap();
    let ids: Vec<_> = got.iter().map(|u| u.id.as_str()).collect();
    assert_eq!(ids, ["c", "a"]);
}

/// Listing pages by ascending id.
pub async fn list_pages_by_id(b: Backends) {
    let s = b.users;
    let tn = tenant();
    for n in ["d", "b", "a", "c"] {
        s.upsert(&sample(&tn, n, n)).await.unwrap();
    }
    let first: Vec<_> = s
        .list(&tn, None, 2)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(first, [user("a"), user("b")]);
    let next: Vec<_> = s
        .list(&tn, Some(&user("b")), 10)
        .await
        .unwrap()
        .into_iter()
        .map(|u| u.id)
        .collect();
    assert_eq!(next, [user("c"), user("d")]);
}
