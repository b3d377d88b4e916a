use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use caas_core::ids::{TenantId, WebhookId};
use caas_core::model::{DeadLetter, WebhookEndpoint, WebhookProgress};
use caas_core::ports::WebhookStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};

use super::poisoned;

/// An endpoint and who holds its delivery lease until when.
#[derive(Debug)]
struct Row {
    endpoint: WebhookEndpoint,
    lease: Option<(String, Timestamp)>,
    /// Dead letters by id.
    letters: BTreeMap<String, DeadLetter>,
}

/// Webhook endpoints in memory, ordered by tenant and id.
#[derive(Debug, Default)]
pub struct MemoryWebhookStore {
    rows: Mutex<BTreeMap<(TenantId, WebhookId), Row>>,
}

fn key(tenant: &TenantId, id: &WebhookId) -> (TenantId, WebhookId) {
    (tenant.clone(), id.clone())
}

#[async_trait]
impl WebhookStore for MemoryWebhookStore {
    async fn create(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let mut rows = self.rows.lock().map_err(poisoned)?;
        let k = key(&endpoint.tenant, &endpoint.id);
        if rows.contains_key(&k) {
            return Err(Error::conflict(format!("webhook `{}` exists", endpoint.id)));
        }
        rows.insert(
            k,
            Row {
                endpoint: endpoint.clone(),
                lease: None,
                letters: BTreeMap::new(),
            },
        );
        Ok(())
    }

    async fn update(&self, endpoint: &WebhookEndpoint, expected: Timestamp) -> Result<()> {
        let mut rows = self.rows.lock().map_err(poisoned)?;
        let row = rows
            .get_mut(&key(&endpoint.tenant, &endpoint.id))
            .ok_or_else(|| Error::not_found(EntityKind::Webhook, &endpoint.id))?;
        if row.endpoint.updated_at != expected {
            return Err(Error::conflict(format!(
                "webhook `{}` changed meanwhile",
                endpoint.id
            )));
        }
        let progress = row.endpoint.progress.clone();
        row.endpoint = WebhookEndpoint {
            progress,
            created_at: row.endpoint.created_at,
            ..endpoint.clone()
        };
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        let rows = self.rows.lock().map_err(poisoned)?;
        Ok(rows.get(&key(tenant, id)).map(|r| r.endpoint.clone()))
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<WebhookEndpoint>> {
        let rows = self.rows.lock().map_err(poisoned)?;
        Ok(rows
            .iter()
            .filter(|((t, _), _)| t == tenant)
            .map(|(_, r)| r.endpoint.clone())
            .collect())
    }

    async fn delete(&self, tenant: &TenantId, id: &WebhookId) -> Result<bool> {
        let mut rows = self.rows.lock().map_err(poisoned)?;
        Ok(rows.remove(&key(tenant, id)).is_some())
    }

    async fn due(
        &self,
        now: Timestamp,
        after: Option<&(TenantId, WebhookId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, WebhookId)>> {
        use std::ops::Bound;
        let rows = self.rows.lock().map_err(poisoned)?;
        let from = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(rows
            .range((from, Bound::Unbounded))
            .filter(|(_, r)| {
                !r.endpoint.disabled && r.endpoint.progress.retry_at.is_none_or(|at| at <= now)
            })
            .map(|(k, _)| k.clone())
            .take(limit)
            .collect())
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<WebhookEndpoint>> {
        let mut rows = self.rows.lock().map_err(poisoned)?;
        let Some(row) = rows.get_mut(&key(tenant, id)) else {
            return Ok(None);
        };
        let free = match &row.lease {
            None => true,
            Some((h, at)) => h == holder || *at <= now,
        };
        if !free {
            return Ok(None);
        }
        row.lease = Some((holder.to_owned(), until));
        Ok(Some(row.endpoint.clone()))
    }

    async fn progress(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool> {
        let mut rows = self.rows.lock().map_err(poisoned)?;
        let Some(row) = rows.get_mut(&key(tenant, id)) else {
            return Ok(false);
        };
        if row.lease.as_ref().is_none_or(|(h, _)| h != holder) {
            return Ok(false);
        }
        row.endpoint.progress = progress.clone();
        Ok(true)
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let mut rows = self.rows.lock().map_err(poisoned)?;
        // A letter of a deleted endpoint has nowhere to go.
        if let Some(row) = rows.get_mut(&key(&letter.tenant, &letter.webhook_id)) {
            row.letters.insert(letter.id.clone(), letter.clone());
        }
        Ok(())
    }

    async fn dead_letters(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        let rows = self.rows.lock().map_err(poisoned)?;
        let mut letters: Vec<DeadLetter> = rows
            .get(&key(tenant, id))
            .map(|r| r.letters.values().cloned().collect())
            .unwrap_or_default();
        letters.sort_by(|a, b| (a.cursor, &a.id).cmp(&(b.cursor, &b.id)));
        letters.truncate(limit);
        Ok(letters)
    }

    async fn remove_dead_letter(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        letter: &str,
    ) -> Result<bool> {
        let mut rows = self.rows.lock().map_err(poisoned)?;
        let Some(row) = rows.get_mut(&key(tenant, id)) else {
            return Ok(false);
        };
        Ok(row.letters.remove(letter).is_some())
    }
}
