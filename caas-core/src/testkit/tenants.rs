//! Contract of [`TenantStore`](crate::ports::TenantStore).

use crate::model::{Tenant, TenantSettings, TenantStatus};
use crate::ports::Backends;
use crate::testkit::{t, tenant};

fn sample() -> Tenant {
    Tenant {
        id: tenant(),
        name: "acme".into(),
        status: TenantStatus::Active,
        settings: TenantSettings::default(),
        credentials: vec![],
        created_at: t(0),
        updated_at: t(0),
    }
}

/// A created tenant reads back equal; an unknown one is `None`.
pub async fn create_then_get(b: Backends) {
    let s = b.tenants;
    let x = sample();
    s.create(&x).await.unwrap();
    assert_eq!(s.get(&x.id).await.unwrap(), Some(x));
    assert_eq!(s.get(&tenant()).await.unwrap(), None);
}

/// Creating a taken id is a conflict and changes nothing.
pub async fn create_twice_conflicts(b: Backends) {
    let s = b.tenants;
    let x = sample();
    s.create(&x).await.unwrap();
    let mut y = x.clone();
    y.name = "other".into();
    let err = s.create(&y).await.unwrap_err();
    assert!(matches!(err, crate::Error::Conflict { .. }), "{err:?}");
    assert_eq!(s.get(&x.id).await.unwrap().unwrap().name, "acme");
}

/// Update replaces; updating a missing tenant is not found and creates nothing.
pub async fn update_replaces_and_never_creates(b: Backends) {
    let s = b.tenants;
    let mut x = sample();
    s.create(&x).await.unwrap();
    x.status = TenantStatus::Suspended;
    x.settings.max_members = Some(5);
    s.update(&x).await.unwrap();
    assert_eq!(s.get(&x.id).await.unwrap(), Some(x));
    let ghost = sample();
    let err = s.update(&ghost).await.unwrap_err();
    assert!(matches!(err, crate::Error::NotFound { .. }), "{err:?}");
    assert_eq!(s.get(&ghost.id).await.unwrap(), None);
}

/// Listing pages by ascending id.
pub async fn list_pages_by_id(b: Backends) {
    let s = b.tenants;
    let mut ids = Vec::new();
    for _ in 0..5 {
        let x = sample();
        ids.push(x.id.clone());
        s.create(&x).await.unwrap();
    }
    ids.sort();
    // Other cases may have created tenants concurrently: check order and that ours
    // appear in sequence when paging from just before our first.
    let all = s.list(None, 10_000).await.unwrap();
    assert!(all.windows(2).all(|w| w[0].id < w[1].id));
    let mine: Vec<_> = all
        .iter()
        .filter(|x| ids.contains(&x.id))
        .map(|x| x.id.clone())
        .collect();
    assert_eq!(mine, ids);
    let page = s.list(Some(&ids[1]), 1).await.unwrap();
    assert_eq!(page.len(), 1);
    assert!(page[0].id > ids[1]);
}

/// A tenant is found by the hash of any of its credentials, and only by those.
pub async fn find_by_credential(b: Backends) {
    let s = b.tenants;
    let mut x = sample();
    let hash = format!("h-{}", x.id);
    x.credentials.push(crate::model::TenantCredential {
        key_id: "k1".into(),
        hash: hash.clone(),
        created_at: t(0),
        expires_at: None,
    });
    s.create(&x).await.unwrap();
    s.create(&sample()).await.unwrap();
    assert_eq!(
        s.find_by_credential(&hash).await.unwrap().map(|t| t.id),
        Some(x.id.clone())
    );
    assert_eq!(s.find_by_credential("no-such-hash").await.unwrap(), None);
}
