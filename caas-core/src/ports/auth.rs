//! The cryptography behind credentials, as two small ports, so the core checks
//! and issues credentials (the auth use cases of [`crate::service`]) without
//! doing any cryptography of its own. caas-crypto implements both
//! (`caas_crypto::ports`, feature `core`).

use std::time::Duration;

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{DeviceId, TenantId, UserId};
use crate::time::Timestamp;

/// What a verified access token says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AccessClaims {
    /// The tenant.
    pub tenant: TenantId,
    /// The user.
    pub user: UserId,
    /// The device it was minted for, if any.
    pub device: Option<DeviceId>,
    /// Granted scopes, seen by policies as `subject.roles`.
    pub scopes: Vec<String>,
    /// The password session (refresh family) it was minted for (the `sid`
    /// claim), so revoking the session refuses it ([`crate::ports::Revocations`]);
    /// `None` for tokens a tenant server minted.
    pub session: Option<String>,
    /// When it stops being accepted (its expiry plus the tolerated clock skew).
    pub valid_until: Timestamp,
}

/// A secret made for a caller: the text to show once, and the form to store.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedSecret {
    /// Shown to the caller once; never stored or logged.
    pub secret: String,
    /// What is stored and looked up ([`Authority::secret_hash`] of `secret`).
    pub hash: String,
}

impl std::fmt::Debug for IssuedSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedSecret")
            .field("hash", &self.hash)
            .finish_non_exhaustive()
    }
}

/// Tokens, secrets and one-time codes: cheap operations, called inline.
pub trait Authority: Send + Sync + std::fmt::Debug {
    /// An access token for `user` of `tenant` (on `device`), valid `ttl` from `now`,
    /// naming the password session it belongs to, if any (verified back as
    /// [`AccessClaims::session`]).
    fn mint_access_token(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: Option<&DeviceId>,
        session: Option<&str>,
        ttl: Duration,
        now: Timestamp,
    ) -> Result<String>;

    /// Checks an access token's signature, issuer, audience and times at `now`;
    /// [`crate::Error::Unauthenticated`] naming what failed otherwise.
    fn verify_access_token(&self, token: &str, now: Timestamp) -> Result<AccessClaims>;

    /// The public keys that verify access tokens, as a JWKS document.
    fn public_keys(&self) -> Result<String>;

    /// The stored form of a presented secret (a tenant secret or the operator
    /// key); [`crate::Error::Unauthenticated`] when it is not one.
    fn secret_hash(&self, secret: &str) -> Result<String>;

    /// Whether `hash` is the operator key's stored form (compared in constant
    /// time).
    fn is_operator(&self, hash: &str) -> bool;

    /// A fresh tenant secret.
    fn new_tenant_secret(&self) -> Result<IssuedSecret>;

    /// A fresh refresh token.
    fn new_refresh_token(&self) -> Result<IssuedSecret>;

    /// A fresh webhook signing secret. It is kept as is: signing needs it.
    fn new_webhook_secret(&self) -> Result<String>;

    /// The signature header of a webhook delivery of `body` at `timestamp`
    /// (unix seconds): `t=<timestamp>,v1=<hex HMAC-SHA-256 of "{t}.{body}">`,
    /// one `v1` per secret.
    fn sign_webhook(&self, secrets: &[&str], timestamp: i64, body: &[u8]) -> Result<String>;

    /// The stored form of a presented refresh token; `None` when it is not one.
    fn refresh_token_hash(&self, token: &str) -> Option<String>;

    /// A fresh TOTP secret (base32) and its `otpauth://` URI for `account`.
    fn new_totp(&self, issuer: &str, account: &str) -> Result<(String, String)>;

    /// The time step at which `code` is valid for `secret_base32` at `now`, if it
    /// is one and is later than `last_step` (a code is accepted once).
    fn verify_totp(
        &self,
        secret_base32: &str,
        code: &str,
        now: Timestamp,
        last_step: Option<u64>,
    ) -> Result<Option<u64>>;
}

/// The outcome of [`PasswordHasher::verify`].
#[derive(Clone, PartialEq, Eq)]
pub enum PasswordCheck {
    /// Not the password.
    Wrong,
    /// The password; its stored hash is current.
    Valid,
    /// The password; store this hash (current parameters) in place of the old.
    Rehashed(String),
}

impl std::fmt::Debug for PasswordCheck {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            PasswordCheck::Wrong => "Wrong",
            PasswordCheck::Valid => "Valid",
            PasswordCheck::Rehashed(_) => "Rehashed(..)",
        })
    }
}

/// Hashes and checks passwords. Slow by design (it is what makes guessing
/// costly), so implementations run it off the async workers and bound how many
/// run at once, answering [`crate::Error::Unavailable`] when saturated.
#[async_trait]
pub trait PasswordHasher: Send + Sync + std::fmt::Debug {
    /// A PHC string for `password`.
    async fn hash(&self, password: &str) -> Result<String>;

    /// Checks `password` against a stored PHC string.
    async fn verify(&self, password: &str, phc: &str) -> Result<PasswordCheck>;
}
