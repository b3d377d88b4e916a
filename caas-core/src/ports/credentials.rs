use async_trait::async_trait;
use serde::{Deserialize, Serialize};

use crate::error::Result;
use crate::ids::{DeviceId, TenantId, UserId};
use crate::time::Timestamp;

/// A user's password login (for tenants that enable password auth).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PasswordLogin {
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// The password hash in PHC format (Argon2id); never the password.
    pub phc: String,
    /// The TOTP second factor, once enrolled.
    pub totp: Option<TotpFactor>,
    /// When it last changed.
    pub updated_at: Timestamp,
}

/// A TOTP second factor.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TotpFactor {
    /// The shared secret, base32 (it must be readable to check codes).
    pub secret_base32: String,
    /// Whether a first code confirmed the enrolment; only confirmed factors are
    /// required at login.
    pub confirmed: bool,
    /// The last accepted time step, so a code is never accepted twice.
    pub last_step: Option<u64>,
}

/// Where a refresh token is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SessionStatus {
    /// May be exchanged once.
    Active,
    /// Already exchanged; presenting it again is reuse.
    Rotated,
    /// Revoked with its family (logout or detected reuse).
    Revoked,
}

/// The stored record of one refresh token: only its hash, never the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSession {
    /// The tenant.
    pub tenant: TenantId,
    /// The token's hash: the lookup key.
    pub hash: String,
    /// Every token descended from one login shares a family.
    pub family: String,
    /// 0 for the login's token, +1 per rotation.
    pub generation: u32,
    /// Whose session it is.
    pub user: UserId,
    /// The device, if the login named one.
    pub device: Option<DeviceId>,
    /// When it was issued.
    pub issued_at: Timestamp,
    /// From this time on it is refused.
    pub expires_at: Timestamp,
    /// Lifecycle state.
    pub status: SessionStatus,
}

/// Password logins and refresh-token sessions.
#[async_trait]
pub trait CredentialStore: Send + Sync + std::fmt::Debug {
    /// Stores a new login. [`crate::Error::Conflict`] if the user already has one.
    async fn create_login(&self, login: &PasswordLogin) -> Result<()>;

    /// Replaces an existing login (re-hash, TOTP changes).
    /// [`crate::Error::NotFound`] if there is none.
    async fn update_login(&self, login: &PasswordLogin) -> Result<()>;

    /// The user's login, or `None`.
    async fn login(&self, tenant: &TenantId, user: &UserId) -> Result<Option<PasswordLogin>>;

    /// Stores a new session (a login's first refresh token).
    async fn insert_session(&self, session: &RefreshSession) -> Result<()>;

    /// The session with this token hash, or `None`.
    async fn session(&self, tenant: &TenantId, hash: &str) -> Result<Option<RefreshSession>>;

    /// Atomically: if the session `old_hash` is active, marks it rotated, stores
    /// `next` and returns `true`; otherwise changes nothing and returns `false`. Of
    /// concurrent rotations of one token, exactly one succeeds.
    async fn rotate_session(
        &self,
        tenant: &TenantId,
        old_hash: &str,
        next: &RefreshSession,
    ) -> Result<bool>;

    /// Revokes every session of the family; returns how many were not yet revoked.
    async fn revoke_family(&self, tenant: &TenantId, family: &str) -> Result<u64>;
}
