use std::collections::BTreeMap;
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use caas_core::ids::{BlobId, ConversationId, TenantId, UserId};
use caas_core::model::Media;
use caas_core::ports::MediaStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};

use super::{Map, poisoned};

/// Upload records in memory, per tenant in blob id order. Listing expired
/// uploads scans every record: a test and single-process store, where pending
/// uploads are few.
#[derive(Debug, Default)]
pub struct MemoryMediaStore {
    records: RwLock<Map<TenantId, BTreeMap<BlobId, Media>>>,
}

fn missing(id: &BlobId) -> Error {
    Error::not_found(EntityKind::Blob, id)
}

#[async_trait]
impl MediaStore for MemoryMediaStore {
    async fn announce(&self, media: &Media) -> Result<()> {
        let mut map = self.records.write().map_err(poisoned)?;
        let tenant = map.entry(media.tenant.clone()).or_default();
        if tenant.contains_key(&media.id) {
            return Err(Error::conflict(format!("blob `{}` exists", media.id)));
        }
        tenant.insert(media.id.clone(), media.clone());
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<Media>> {
        let map = self.records.read().map_err(poisoned)?;
        Ok(map.get(tenant).and_then(|t| t.get(id)).cloned())
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        sha256: &str,
        at: Timestamp,
    ) -> Result<Media> {
        let mut map = self.records.write().map_err(poisoned)?;
        let m = map
            .get_mut(tenant)
            .and_then(|t| t.get_mut(id))
            .ok_or_else(|| missing(id))?;
        if m.completed_at.is_none() {
            if m.expires_at <= at {
                return Err(missing(id));
            }
            m.completed_at = Some(at);
            m.sha256 = Some(sha256.to_owned());
        }
        Ok(m.clone())
    }

    async fn share(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        conversation: &ConversationId,
    ) -> Result<()> {
        let mut map = self.records.write().map_err(poisoned)?;
        let m = map
            .get_mut(tenant)
            .and_then(|t| t.get_mut(id))
            .ok_or_else(|| missing(id))?;
        if m.conversations().all(|c| c != conversation) {
            m.shared_in.push(conversation.clone());
        }
        Ok(())
    }

    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool> {
        let mut map = self.records.write().map_err(poisoned)?;
        Ok(map.get_mut(tenant).and_then(|t| t.remove(id)).is_some())
    }

    async fn expired(&self, now: Timestamp, limit: usize) -> Result<Vec<Media>> {
        let map = self.records.read().map_err(poisoned)?;
        let mut due: Vec<Media> = map
            .values()
            .flat_map(BTreeMap::values)
            .filter(|m| m.completed_at.is_none() && m.expires_at <= now)
            .cloned()
            .collect();
        due.sort_by_key(|m| m.expires_at);
        due.truncate(limit);
        Ok(due)
    }

    async fn remove_expired(&self, tenant: &TenantId, id: &BlobId, now: Timestamp) -> Result<bool> {
        let mut map = self.records.write().map_err(poisoned)?;
        let Some(records) = map.get_mut(tenant) else {
            return Ok(false);
        };
        match records.get(id) {
            Some(m) if m.completed_at.is_none() && m.expires_at <= now => {
                records.remove(id);
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    async fn by_owner(
        &self,
        tenant: &TenantId,
        owner: &UserId,
        after: Option<&BlobId>,
        limit: usize,
    ) -> Result<Vec<Media>> {
        let map = self.records.read().map_err(poisoned)?;
        let Some(records) = map.get(tenant) else {
            return Ok(Vec::new());
        };
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(records
            .range::<BlobId, _>((from, Bound::Unbounded))
            .map(|(_, m)| m)
            .filter(|m| &m.owner == owner)
            .take(limit)
            .cloned()
            .collect())
    }
}
