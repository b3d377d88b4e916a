use super::Concurrent;
use async_trait::async_trait;
use caas_core::Result;
use caas_core::ports::RateLimitStore;
use caas_core::ratelimit::{self, Decision, Quota, RateKey};
use caas_core::time::Timestamp;

/// GCRA state in memory: one `u64` per key, updated under the map's shard lock so
/// concurrent checks of one key are serialized.
///
/// Keys come from the network (client addresses, user ids of login attempts), so
/// the map is swept: a key whose theoretical arrival time has passed is exactly as
/// good as an absent one, and every 4 096 new keys those are dropped.
#[derive(Debug, Default)]
pub struct MemoryRateLimitStore {
    tats: Concurrent<RateKey, u64>,
    new_keys: std::sync::atomic::AtomicU64,
}

/// How many new keys between two sweeps.
pub(super) const SWEEP_EVERY: u64 = 4096;

#[async_trait]
impl RateLimitStore for MemoryRateLimitStore {
    async fn check(&self, key: &RateKey, quota: &Quota, now: Timestamp) -> Result<Decision> {
        if let Some(mut tat) = self.tats.get_mut(key) {
            let d = ratelimit::check(quota, Some(*tat), now);
            if let Decision::Allow { new_tat, .. } = d {
                *tat = new_tat;
            }
            return Ok(d);
        }
        let n = self
            .new_keys
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed)
            + 1;
        if n.is_multiple_of(SWEEP_EVERY) {
            // No shard guard is held here: `retain` locks every shard in turn.
            let now = now.as_nanos();
            self.tats.retain(|_, tat| *tat > now);
        }
        let mut entry = self.tats.entry(key.clone()).or_insert(0);
        let stored = (*entry != 0).then_some(*entry);
        let d = ratelimit::check(quota, stored, now);
        if let Decision::Allow { new_tat, .. } = d {
            *entry = new_tat;
        }
        Ok(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_core::testkit::{t, tenant};

    #[tokio::test]
    async fn spent_keys_are_swept() {
        let s = MemoryRateLimitStore::default();
        let q = Quota::per_second(10);
        let tn = tenant();
        for i in 0..SWEEP_EVERY {
            s.check(
                &RateKey::new(&tn, format!("ip{i}"), "edge.request"),
                &q,
                t(0),
            )
            .await
            .unwrap();
        }
        assert_eq!(
            s.tats.len() as u64,
            SWEEP_EVERY,
            "keys inside their window are kept"
        );
        // An hour later every earlier key has refilled: the next sweep drops them.
        for i in 0..SWEEP_EVERY {
            s.check(
                &RateKey::new(&tn, format!("late{i}"), "edge.request"),
                &q,
                t(3600),
            )
            .await
            .unwrap();
        }
        assert!(
            (s.tats.len() as u64) < SWEEP_EVERY + 1,
            "{} keys kept",
            s.tats.len()
        );
        // A key still inside its window is kept, and still limited.
        let hot = RateKey::new(&tn, "hot", "edge.request");
        for _ in 0..10 {
            s.check(&hot, &q, t(3600)).await.unwrap();
        }
        assert!(!s.check(&hot, &q, t(3600)).await.unwrap().is_allowed());
    }
}
