//! Compact JWS/JWT access tokens: HS256 with a per-tenant secret and EdDSA
//! (Ed25519) with the platform key, key ids and rotation, and JWKS publishing.
//!
//! This is a deliberately small JOSE subset (two algorithms, compact
//! serialization only): every extra algorithm or header is attack surface.

mod claims;
mod jwks;
pub mod jws;
mod key_set;
mod keys;

pub use claims::Claims;
pub use jwks::{Jwk, Jwks, MAX_JWKS_LEN};
pub use key_set::{KeySet, Validation};
pub use keys::{Algorithm, MIN_HMAC_KEY_LEN, SigningKey, VerificationKey};

use crate::{Error, Result};

impl SigningKey {
    /// Signs `claims` into a compact JWT carrying this key's `kid`.
    pub fn sign_claims(&self, claims: &Claims) -> Result<String> {
        let payload = serde_json::to_vec(claims).map_err(|e| Error::malformed("claims", e))?;
        jws::sign(self, &payload)
    }
}

#[cfg(test)]
mod tests;
