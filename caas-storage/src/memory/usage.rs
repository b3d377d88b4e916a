use std::collections::{BTreeMap, HashSet};
use std::sync::Mutex;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{UsageRow, UsageStore};

use super::{Map, poisoned};

/// Usage meters in memory.
#[derive(Debug, Default)]
pub struct MemoryUsageStore {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    values: Map<TenantId, BTreeMap<(u32, String), i64>>,
    active: Map<(TenantId, u32), HashSet<UserId>>,
}

#[async_trait]
impl UsageStore for MemoryUsageStore {
    async fn add(&self, tenant: &TenantId, day: u32, deltas: &[(String, i64)]) -> Result<()> {
        let mut inner = self.inner.lock().map_err(poisoned)?;
        let values = inner.values.entry(tenant.clone()).or_default();
        for (meter, delta) in deltas {
            let v = values.entry((day, meter.clone())).or_default();
            *v = v.saturating_add(*delta);
        }
        Ok(())
    }

    async fn raise(&self, tenant: &TenantId, day: u32, peaks: &[(String, i64)]) -> Result<()> {
        let mut inner = self.inner.lock().map_err(poisoned)?;
        let values = inner.values.entry(tenant.clone()).or_default();
        for (meter, value) in peaks {
            values
                .entry((day, meter.clone()))
                .and_modify(|v| *v = (*v).max(*value))
                .or_insert(*value);
        }
        Ok(())
    }

    async fn mark_active(&self, tenant: &TenantId, month: u32, user: &UserId) -> Result<bool> {
        let mut inner = self.inner.lock().map_err(poisoned)?;
        Ok(inner
            .active
            .entry((tenant.clone(), month))
            .or_default()
            .insert(user.clone()))
    }

    async fn active_users(&self, tenant: &TenantId, month: u32) -> Result<u64> {
        let inner = self.inner.lock().map_err(poisoned)?;
        Ok(inner
            .active
            .get(&(tenant.clone(), month))
            .map_or(0, |s| s.len() as u64))
    }

    async fn read(&self, tenant: &TenantId, from: u32, to: u32) -> Result<Vec<UsageRow>> {
        let inner = self.inner.lock().map_err(poisoned)?;
        let Some(values) = inner.values.get(tenant) else {
            return Ok(Vec::new());
        };
        Ok(values
            .range((from, String::new())..)
            .take_while(|((day, _), _)| *day <= to)
            .map(|((day, meter), value)| UsageRow {
                day: *day,
                meter: meter.clone(),
                value: *value,
            })
            .collect())
    }
}
