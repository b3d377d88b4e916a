use async_trait::async_trait;

use crate::error::Result;
use crate::ids::TenantId;
use crate::model::Tenant;

/// Where tenants live.
#[async_trait]
pub trait TenantStore: Send + Sync + std::fmt::Debug {
    /// Stores a new tenant. [`crate::Error::Conflict`] if the id is taken; nothing
    /// is changed then.
    async fn create(&self, tenant: &Tenant) -> Result<()>;

    /// The tenant, or `None`.
    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>>;

    /// Replaces a stored tenant whole. [`crate::Error::NotFound`] if it does not
    /// exist (update never creates).
    async fn update(&self, tenant: &Tenant) -> Result<()>;

    /// Up to `limit` tenants with ids greater than `after`, in ascending id order.
    async fn list(&self, after: Option<&TenantId>, limit: usize) -> Result<Vec<Tenant>>;

    /// The tenant holding a credential whose stored hash is `hash` (expired ones
    /// included: the caller judges expiry), or `None`. This default scans every
    /// tenant; backends with an index on credential hashes should override it.
    async fn find_by_credential(&self, hash: &str) -> Result<Option<Tenant>> {
        let mut after: Option<TenantId> = None;
        loop {
            let page = self.list(after.as_ref(), 500).await?;
            if let Some(t) = page
                .iter()
                .find(|t| t.credentials.iter().any(|c| c.hash == hash))
            {
                return Ok(Some(t.clone()));
            }
            match page.last() {
                Some(last) => after = Some(last.id.clone()),
                None => return Ok(None),
            }
        }
    }
}
