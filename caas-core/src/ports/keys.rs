use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{DeviceId, TenantId, UserId};
use crate::model::{DeviceKeys, KeyBundle};

/// Checks uploaded key material (the signed prekey's signature, key lengths).
/// caas-crypto provides the real one; without a verifier the service refuses to
/// publish keys rather than store unchecked ones.
pub trait KeyVerifier: Send + Sync + std::fmt::Debug {
    /// `Ok` if the keys are well formed and the signed prekey is signed by the
    /// identity key; [`crate::Error::InvalidArgument`] naming the field otherwise.
    fn verify(&self, keys: &DeviceKeys) -> Result<()>;
}

/// Where devices' public E2EE key material lives.
#[async_trait]
pub trait KeyDirectory: Send + Sync + std::fmt::Debug {
    /// Sets the device's identity keys and signed prekey, and adds its one-time
    /// prekeys to the pool (key ids already in the pool are ignored). Returns the
    /// pool's size afterwards.
    async fn publish(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        keys: &DeviceKeys,
    ) -> Result<usize>;

    /// One bundle per device of `user`, in ascending device id order. With
    /// `take_one_time`, each carries one one-time prekey taken from the device's
    /// pool (while it lasts); a one-time prekey is handed out at most once, even
    /// to concurrent claims. Without it, no bundle carries one and the pools are
    /// untouched.
    async fn claim(
        &self,
        tenant: &TenantId,
        user: &UserId,
        take_one_time: bool,
    ) -> Result<Vec<KeyBundle>>;

    /// How many one-time prekeys the device has left.
    async fn one_time_count(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<usize>;

    /// Forgets a device; returns whether it existed.
    async fn remove_device(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<bool>;
}
