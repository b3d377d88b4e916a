use super::Concurrent;
use async_trait::async_trait;
use caas_core::Result;
use caas_core::ports::RateLimitStore;
use caas_core::ratelimit::{self, Decision, Quota, RateKey};
use caas_core::time::Timestamp;

/// GCRA state in memory: one `u64` per key, updated under the map's shard lock so
/// concurrent checks of one key are serialized.
#[derive(Debug, Default)]
pub struct MemoryRateLimitStore {
    tats: Concurrent<RateKey, u64>,
}

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
        let mut entry = self.tats.entry(key.clone()).or_insert(0);
        let stored = (*entry != 0).then_some(*entry);
        let d = ratelimit::check(quota, stored, now);
        if let Decision::Allow { new_tat, .. } = d {
            *entry = new_tat;
        }
        Ok(d)
    }
}
