use std::sync::Mutex;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::model::AuditRecord;
use caas_core::ports::AuditStore;

use super::{Map, poisoned};

/// The audit log in memory.
#[derive(Debug, Default)]
pub struct MemoryAuditStore {
    logs: Mutex<Map<TenantId, Vec<AuditRecord>>>,
}

#[async_trait]
impl AuditStore for MemoryAuditStore {
    async fn append(&self, tenant: &TenantId, mut record: AuditRecord) -> Result<u64> {
        let mut logs = self.logs.lock().map_err(poisoned)?;
        let log = logs.entry(tenant.clone()).or_default();
        let previous = log.last().map(|r| r.hash.as_str()).unwrap_or_default();
        record.seal(log.len() as u64 + 1, previous);
        let pos = record.position;
        log.push(record);
        Ok(pos)
    }

    async fn list(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        let logs = self.logs.lock().map_err(poisoned)?;
        let start = usize::try_from(after).unwrap_or(usize::MAX);
        Ok(logs
            .get(tenant)
            .map(|l| l.iter().skip(start).take(limit).cloned().collect())
            .unwrap_or_default())
    }
}
