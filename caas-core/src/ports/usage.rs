use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{TenantId, UserId};

/// One stored meter value: a tenant's `meter` on `day`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UsageRow {
    /// Days since the Unix epoch (UTC).
    pub day: u32,
    /// The meter's name (`messages`, `api_calls`, …).
    pub meter: String,
    /// Its value that day: a sum for counters, a maximum for peaks.
    pub value: i64,
}

/// Usage meters per tenant and day, and the users active per month: what
/// `GET /v1/usage`, quotas and invoices read. Writers batch their deltas, so a
/// call carries many; every call is atomic per counter and concurrent calls
/// from many nodes all count.
#[async_trait]
pub trait UsageStore: Send + Sync + std::fmt::Debug {
    /// Adds each `(meter, delta)` to the tenant's counter of `day` (a missing
    /// counter starts at 0; deltas may be negative).
    async fn add(&self, tenant: &TenantId, day: u32, deltas: &[(String, i64)]) -> Result<()>;

    /// Raises each `(meter, value)` of `day` to `value` if it is higher (peaks,
    /// such as concurrent connections).
    async fn raise(&self, tenant: &TenantId, day: u32, values: &[(String, i64)]) -> Result<()>;

    /// Records that `user` was active in `month` (`YYYYMM`); returns whether
    /// this was their first activity that month.
    async fn mark_active(&self, tenant: &TenantId, month: u32, user: &UserId) -> Result<bool>;

    /// How many users were active in `month`.
    async fn active_users(&self, tenant: &TenantId, month: u32) -> Result<u64>;

    /// Every stored value of days `from..=to`, by day then meter name.
    async fn read(&self, tenant: &TenantId, from: u32, to: u32) -> Result<Vec<UsageRow>>;
}
