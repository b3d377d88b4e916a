use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use caas_core::ids::TenantId;
use caas_core::model::Tenant;
use caas_core::ports::TenantStore;
use caas_core::{EntityKind, Error, Result};

use super::poisoned;

/// Tenants in memory.
#[derive(Debug, Default)]
pub struct MemoryTenantStore {
    tenants: RwLock<BTreeMap<TenantId, Tenant>>,
}

#[async_trait]
impl TenantStore for MemoryTenantStore {
    async fn create(&self, tenant: &Tenant) -> Result<()> {
        let mut map = self.tenants.write().map_err(poisoned)?;
        if map.contains_key(&tenant.id) {
            return Err(Error::conflict(format!("tenant `{}` exists", tenant.id)));
        }
        map.insert(tenant.id.clone(), tenant.clone());
        Ok(())
    }

    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>> {
        Ok(self.tenants.read().map_err(poisoned)?.get(id).cloned())
    }

    async fn update(&self, tenant: &Tenant) -> Result<()> {
        let mut map = self.tenants.write().map_err(poisoned)?;
        match map.get_mut(&tenant.id) {
            Some(slot) => {
                *slot = tenant.clone();
                Ok(())
            }
            None => Err(Error::not_found(EntityKind::Tenant, &tenant.id)),
        }
    }

    async fn list(&self, after: Option<&TenantId>, limit: usize) -> Result<Vec<Tenant>> {
        let map = self.tenants.read().map_err(poisoned)?;
        let start = after.map_or(Bound::Unbounded, |a| Bound::Excluded(a.clone()));
        Ok(map
            .range((start, Bound::Unbounded))
            .take(limit)
            .map(|(_, t)| t.clone())
            .collect())
    }
}
