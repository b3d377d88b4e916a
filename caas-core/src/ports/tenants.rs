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
}
