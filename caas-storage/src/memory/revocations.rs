use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::ports::Revocations;
use caas_core::time::Timestamp;

use super::Concurrent;

/// Revoked sessions in memory: enough for one process, whose tokens only it
/// checks.
///
/// Every 1 024 revocations the entries whose `until` has passed are dropped, so
/// the map holds about one access-token lifetime's worth of logouts.
#[derive(Debug, Default)]
pub struct MemoryRevocations {
    until: Concurrent<(TenantId, String), Timestamp>,
    writes: AtomicU64,
}

/// How many revocations between two sweeps.
const SWEEP_EVERY: u64 = 1024;

#[async_trait]
impl Revocations for MemoryRevocations {
    async fn revoke(
        &self,
        tenant: &TenantId,
        family: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<()> {
        if (self.writes.fetch_add(1, Ordering::Relaxed) + 1).is_multiple_of(SWEEP_EVERY) {
            // No shard guard is held here: `retain` locks every shard in turn.
            self.until.retain(|_, u| *u > now);
        }
        let mut entry = self
            .until
            .entry((tenant.clone(), family.to_owned()))
            .or_insert(until);
        if *entry < until {
            *entry = until;
        }
        Ok(())
    }

    async fn is_revoked(&self, tenant: &TenantId, family: &str, now: Timestamp) -> Result<bool> {
        Ok(self
            .until
            .get(&(tenant.clone(), family.to_owned()))
            .is_some_and(|u| *u > now))
    }
}
