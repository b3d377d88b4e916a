use async_trait::async_trait;

use crate::error::Result;
use crate::ids::TenantId;
use crate::model::AuditRecord;

/// The append-only audit log of each tenant.
#[async_trait]
pub trait AuditStore: Send + Sync + std::fmt::Debug {
    /// Appends a record, setting its `position` (1, 2, 3… per tenant) and returning
    /// it. Records are never changed or removed.
    async fn append(&self, tenant: &TenantId, record: AuditRecord) -> Result<u64>;

    /// Up to `limit` records with positions above `after`, in ascending order.
    async fn list(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<AuditRecord>>;
}
