use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{TenantId, UserId};
use crate::model::User;

/// Where users live.
#[async_trait]
pub trait UserStore: Send + Sync + std::fmt::Debug {
    /// Creates or replaces a user. On replace, the stored `created_at` is kept and
    /// everything else is taken from `user`. Returns the user as stored.
    async fn upsert(&self, user: &User) -> Result<User>;

    /// The user, or `None`.
    async fn get(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>>;

    /// The users among `ids` that exist, in the order of `ids` (duplicates once).
    async fn get_many(&self, tenant: &TenantId, ids: &[UserId]) -> Result<Vec<User>>;

    /// Up to `limit` users with ids greater than `after`, in ascending id order.
    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<User>>;
}
