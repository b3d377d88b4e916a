use std::collections::{BTreeMap, HashSet};
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{TenantId, UserId};
use caas_core::model::User;
use caas_core::ports::UserStore;

use super::poisoned;

/// Users in memory.
#[derive(Debug, Default)]
pub struct MemoryUserStore {
    users: RwLock<BTreeMap<(TenantId, UserId), User>>,
}

#[async_trait]
impl UserStore for MemoryUserStore {
    async fn upsert(&self, user: &User) -> Result<User> {
        let mut map = self.users.write().map_err(poisoned)?;
        let key = (user.tenant.clone(), user.id.clone());
        let mut stored = user.clone();
        if let Some(old) = map.get(&key) {
            stored.created_at = old.created_at;
        }
        map.insert(key, stored.clone());
        Ok(stored)
    }

    async fn get(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        let map = self.users.read().map_err(poisoned)?;
        Ok(map.get(&(tenant.clone(), id.clone())).cloned())
    }

    async fn get_many(&self, tenant: &TenantId, ids: &[UserId]) -> Result<Vec<User>> {
        let map = self.users.read().map_err(poisoned)?;
        let mut seen = HashSet::new();
        Ok(ids
            .iter()
            .filter(|id| seen.insert(*id))
            .filter_map(|id| map.get(&(tenant.clone(), id.clone())).cloned())
            .collect())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<User>> {
        let map = self.users.read().map_err(poisoned)?;
        let start = match after {
            Some(a) => Bound::Excluded((tenant.clone(), a.clone())),
            None => Bound::Unbounded,
        };
        Ok(map
            .range((start, Bound::Unbounded))
            .skip_while(|((t, _), _)| t < tenant)
            .take_while(|((t, _), _)| t == tenant)
            .take(limit)
            .map(|(_, u)| u.clone())
            .collect())
    }
}
