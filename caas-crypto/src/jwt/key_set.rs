//! Verification of access tokens against the set of live keys.

use std::fmt;

use super::jws::{DEFAULT_MAX_TOKEN_LEN, Unverified};
use super::{Claims, Jwks, VerificationKey};
use crate::error::echo;
use crate::{Error, Result};

/// What an access token must satisfy besides its signature.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Validation {
    pub(crate) issuer: String,
    pub(crate) audience: String,
    pub(crate) leeway_secs: u64,
    pub(crate) max_token_len: usize,
}

impl Validation {
    /// Default clock-skew allowance for `exp` and `nbf`.
    pub const DEFAULT_LEEWAY_SECS: u64 = 30;

    /// Require `iss == issuer` and `audience` in `aud`, with the default
    /// leeway and size limit.
    pub fn new(issuer: impl Into<String>, audience: impl Into<String>) -> Self {
        Validation {
            issuer: issuer.into(),
            audience: audience.into(),
            leeway_secs: Self::DEFAULT_LEEWAY_SECS,
            max_token_len: DEFAULT_MAX_TOKEN_LEN,
        }
    }

    /// Sets the clock-skew allowance applied to `exp` and `nbf`.
    pub fn with_leeway(mut self, secs: u64) -> Self {
        self.leeway_secs = secs;
        self
    }

    /// Sets the size limit checked before any decoding.
    pub fn with_max_token_len(mut self, len: usize) -> Self {
        self.max_token_len = len;
        self
    }
}

/// The verification keys live at one time, looked up by `kid`.
///
/// Rotation: add the new key, start signing with it, and remove the old one
/// once the longest token lifetime has passed; tokens signed by either verify
/// in between.
#[derive(Clone, Default)]
pub struct KeySet {
    keys: Vec<VerificationKey>,
}

impl KeySet {
    /// An empty set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds `key`, returning the key it replaced if one had the same `kid`.
    pub fn insert(&mut self, key: VerificationKey) -> Option<VerificationKey> {
        match self.keys.iter_mut().find(|k| k.kid() == key.kid()) {
            Some(slot) => Some(std::mem::replace(slot, key)),
            None => {
                self.keys.push(key);
                None
            }
        }
    }

    /// Removes the key with this id.
    pub fn remove(&mut self, kid: &str) -> Option<VerificationKey> {
        let pos = self.keys.iter().position(|k| k.kid().as_str() == kid)?;
        Some(self.keys.remove(pos))
    }

    /// The key with this id.
    pub fn get(&self, kid: &str) -> Option<&VerificationKey> {
        self.keys.iter().find(|k| k.kid().as_str() == kid)
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.keys.len()
    }

    /// Whether the set is empty.
    pub fn is_empty(&self) -> bool {
        self.keys.is_empty()
    }

    /// The Ed25519 keys of a JWKS document. Keys of other types (RSA, EC,
    /// encryption keys) are skipped, as JWT libraries do; a malformed Ed25519
    /// key is an error.
    pub fn from_jwks(jwks: &Jwks) -> Result<Self> {
        let mut set = KeySet::new();
        for jwk in jwks.keys.iter().filter(|k| k.is_ed25519()) {
            set.insert(VerificationKey::from_jwk(jwk)?);
        }
        Ok(set)
    }

    /// The public (Ed25519) keys as a JWKS document; HS256 keys are left out.
    pub fn jwks(&self) -> Jwks {
        Jwks {
            keys: self
                .keys
                .iter()
                .filter_map(VerificationKey::to_jwk)
                .collect(),
        }
    }

    /// Verifies an access token at time `now` (unix seconds) and returns its
    /// claims.
    ///
    /// Rejects, in this order: oversized tokens, malformed structure or
    /// header, algorithms other than HS256/EdDSA (including `none`), a missing
    /// or unknown `kid`, an algorithm different from the key's (so an HS256
    /// token can never be checked against an Ed25519 public key used as an
    /// HMAC secret), a bad signature, malformed claims, and then expiry,
    /// not-before, issuer and audience.
    pub fn verify(&self, token: &str, validation: &Validation, now: i64) -> Result<Claims> {
        let unverified = Unverified::parse(token, validation.max_token_len)?;
        let kid = unverified.kid.as_deref().ok_or(Error::MissingKeyId)?;
        let key = self
            .get(kid)
            .ok_or_else(|| Error::UnknownKey { kid: echo(kid) })?;
        let payload = unverified.verify(key)?;
        let claims: Claims =
            serde_json::from_slice(&payload).map_err(|e| Error::malformed("token claims", e))?;
        claims.validate(validation, now)?;
        Ok(claims)
    }
}

impl fmt::Debug for KeySet {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_list().entries(self.keys.iter()).finish()
    }
}
