use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{TenantId, UserId};

/// Crypto-shredding: where stored bodies are sealed under per-user data keys,
/// destroying a user's keys makes everything sealed under them unreadable,
/// in the live store and in every backup of it. Erasure calls it.
#[async_trait]
pub trait Shredder: Send + Sync + std::fmt::Debug {
    /// Destroys every data key of `user` in `tenant`; from then on bodies
    /// sealed under them read as absent. Returns how many live keys it
    /// destroyed (0 on a repeat). A later seal for the user makes a new key.
    async fn shred_user(&self, tenant: &TenantId, user: &UserId) -> Result<u64>;
}

/// Backends that store bodies in clear: nothing to shred (erasure removes the
/// text itself).
#[derive(Debug, Default, Clone, Copy)]
pub struct NoShredding;

#[async_trait]
impl Shredder for NoShredding {
    async fn shred_user(&self, _: &TenantId, _: &UserId) -> Result<u64> {
        Ok(0)
    }
}
