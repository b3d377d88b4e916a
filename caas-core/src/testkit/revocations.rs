//! Contract of [`Revocations`](crate::ports::Revocations).

use std::sync::Arc;

use crate::ports::Backends;
use crate::testkit::{t, tenant};

/// A revoked family is refused until its `until`, and only in its own tenant.
pub async fn revoke_until_then_forget(b: Backends) {
    let s = b.revocations;
    let tn = tenant();
    assert!(!s.is_revoked(&tn, "rf_a", t(0)).await.unwrap());
    s.revoke(&tn, "rf_a", t(0), t(100)).await.unwrap();
    assert!(s.is_revoked(&tn, "rf_a", t(0)).await.unwrap());
    assert!(s.is_revoked(&tn, "rf_a", t(99)).await.unwrap());
    assert!(!s.is_revoked(&tn, "rf_a", t(100)).await.unwrap());
    assert!(!s.is_revoked(&tn, "rf_b", t(0)).await.unwrap());
    assert!(!s.is_revoked(&tenant(), "rf_a", t(0)).await.unwrap());
}

/// Revoking again is idempotent, and the latest `until` holds whatever the order.
pub async fn the_latest_until_holds(b: Backends) {
    let s = b.revocations;
    let tn = tenant();
    s.revoke(&tn, "rf_x", t(0), t(200)).await.unwrap();
    s.revoke(&tn, "rf_x", t(0), t(200)).await.unwrap();
    s.revoke(&tn, "rf_x", t(0), t(50)).await.unwrap();
    assert!(s.is_revoked(&tn, "rf_x", t(150)).await.unwrap());
    s.revoke(&tn, "rf_x", t(0), t(300)).await.unwrap();
    assert!(s.is_revoked(&tn, "rf_x", t(250)).await.unwrap());
    assert!(!s.is_revoked(&tn, "rf_x", t(300)).await.unwrap());
}

/// Concurrent revocations of many families are all kept.
pub async fn concurrent_revocations(b: Backends) {
    let s = b.revocations;
    let tn = tenant();
    let mut hs = Vec::new();
    for i in 0..20 {
        let (s, tn) = (Arc::clone(&s), tn.clone());
        hs.push(tokio::spawn(async move {
            s.revoke(&tn, &format!("rf_{i}"), t(0), t(60))
                .await
                .unwrap();
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    for i in 0..20 {
        assert!(s.is_revoked(&tn, &format!("rf_{i}"), t(0)).await.unwrap());
    }
}
