//! Contract of [`RateLimitStore`](crate::ports::RateLimitStore).

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::ports::Backends;
use crate::ratelimit::{Quota, RateKey};
use crate::testkit::{t, tenant};

/// The stored state follows GCRA: burst, then refill, with keys independent.
pub async fn follows_gcra(b: Backends) {
    let s = b.rate_limits;
    let tn = tenant();
    let k = RateKey::new(&tn, "alice", "search");
    let q = Quota::per_minute(3);
    for _ in 0..3 {
        assert!(s.check(&k, &q, t(0)).await.unwrap().is_allowed());
    }
    assert!(!s.check(&k, &q, t(0)).await.unwrap().is_allowed());
    assert!(
        s.check(&RateKey::new(&tn, "bob", "search"), &q, t(0))
            .await
            .unwrap()
            .is_allowed()
    );
    assert!(
        s.check(&RateKey::new(&tenant(), "alice", "search"), &q, t(0))
            .await
            .unwrap()
            .is_allowed()
    );
    assert!(s.check(&k, &q, t(20)).await.unwrap().is_allowed());
    assert!(!s.check(&k, &q, t(20)).await.unwrap().is_allowed());
}

/// Concurrent checks of one key let through exactly the burst.
pub async fn concurrent_checks_are_atomic(b: Backends) {
    let s = b.rate_limits;
    let k = RateKey::new(&tenant(), "alice", "message.send");
    let q = Quota::per_minute(10);
    let allowed = Arc::new(AtomicU32::new(0));
    let mut hs = Vec::new();
    for _ in 0..40 {
        let (s, k, allowed) = (s.clone(), k.clone(), allowed.clone());
        hs.push(tokio::spawn(async move {
            if s.check(&k, &q, t(0)).await.unwrap().is_allowed() {
                allowed.fetch_add(1, Ordering::SeqCst);
            }
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(allowed.load(Ordering::SeqCst), 10);
}
