//! Signing and verification keys for compact JWS: HS256 (per-tenant secret)
//! and EdDSA over Ed25519 (the platform key).

use std::fmt;

use ring::hmac;
use ring::signature::{self, Ed25519KeyPair, KeyPair as _};
use zeroize::Zeroizing;

use crate::error::echo;
use crate::{Error, KeyId, Result};

/// A JWS algorithm this crate signs and verifies.
///
/// There is deliberately no `none` and no RSA/ECDSA: a token naming anything
/// else is rejected before any key is looked at.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Algorithm {
    /// HMAC-SHA-256 with a shared secret (RFC 7518 §3.2).
    Hs256,
    /// Ed25519 signatures (RFC 8037).
    EdDsa,
}

impl Algorithm {
    /// The `alg` header value.
    pub fn as_str(self) -> &'static str {
        match self {
            Algorithm::Hs256 => "HS256",
            Algorithm::EdDsa => "EdDSA",
        }
    }

    /// Parses an `alg` header value; `none` and everything else is rejected.
    pub(crate) fn parse(alg: &str) -> Result<Self> {
        // Exact, case-sensitive match (RFC 7515 §4.1.1): "hs256" or "None" are
        // not aliases, they are attacks on lenient parsers.
        match alg {
            "HS256" => Ok(Algorithm::Hs256),
            "EdDSA" => Ok(Algorithm::EdDsa),
            other => Err(Error::UnsupportedAlgorithm { alg: echo(other) }),
        }
    }
}

impl fmt::Display for Algorithm {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Shortest HS256 secret accepted: RFC 7518 §3.2 requires at least the hash
/// output size, 256 bits.
pub const MIN_HMAC_KEY_LEN: usize = 32;

/// A key that signs tokens. The secret half never leaves it except through
/// [`SigningKey::expose_ed25519_seed`], for persisting the platform key.
pub struct SigningKey {
    kid: KeyId,
    inner: Signer,
}

enum Signer {
    Hs256(hmac::Key),
    EdDsa {
        pair: Ed25519KeyPair,
        seed: Zeroizing<[u8; 32]>,
    },
}

impl SigningKey {
    /// An HS256 key from a shared secret of at least [`MIN_HMAC_KEY_LEN`] bytes.
    pub fn hs256(kid: KeyId, secret: &[u8]) -> Result<Self> {
        Ok(SigningKey {
            kid,
            inner: Signer::Hs256(hmac_key(secret)?),
        })
    }

    /// A fresh random Ed25519 key.
    pub fn generate_ed25519(kid: KeyId) -> Result<Self> {
        let seed = Zeroizing::new(crate::random::array::<32>()?);
        Self::ed25519_from_seed(kid, &seed)
    }

    /// An Ed25519 key from its 32-byte seed (the RFC 8037 `d` value).
    pub fn ed25519_from_seed(kid: KeyId, seed: &[u8; 32]) -> Result<Self> {
        let pair = Ed25519KeyPair::from_seed_unchecked(seed).map_err(|_| Error::InvalidKey {
            reason: "Ed25519 seed rejected",
        })?;
        Ok(SigningKey {
            kid,
            inner: Signer::EdDsa {
                pair,
                seed: Zeroizing::new(*seed),
            },
        })
    }

    /// The Ed25519 seed, for storing the platform key; `None` for HS256 keys.
    pub fn expose_ed25519_seed(&self) -> Option<&[u8; 32]> {
        match &self.inner {
            Signer::EdDsa { seed, .. } => Some(seed),
            Signer::Hs256(_) => None,
        }
    }

    /// The key id written into each token's `kid` header.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The key's algorithm.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Signer::Hs256(_) => Algorithm::Hs256,
            Signer::EdDsa { .. } => Algorithm::EdDsa,
        }
    }

    /// The matching verification key (for HS256 this holds the same secret).
    pub fn verification_key(&self) -> VerificationKey {
        let inner = match &self.inner {
            Signer::Hs256(key) => Verifier::Hs256(key.clone()),
            Signer::EdDsa { pair, .. } => {
                let mut public = [0u8; 32];
                public.copy_from_slice(pair.public_key().as_ref());
                Verifier::EdDsa(public)
            }
        };
        VerificationKey {
            kid: self.kid.clone(),
            inner,
        }
    }

    pub(crate) fn sign(&self, message: &[u8]) -> Vec<u8> {
        match &self.inner {
            Signer::Hs256(key) => hmac::sign(key, message).as_ref().to_vec(),
            Signer::EdDsa { pair, .. } => pair.sign(message).as_ref().to_vec(),
        }
    }
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.kid)
            .field("alg", &self.algorithm())
            .finish_non_exhaustive()
    }
}

/// A key that verifies tokens: an HS256 secret or an Ed25519 public key.
#[derive(Clone)]
pub struct VerificationKey {
    kid: KeyId,
    inner: Verifier,
}

#[derive(Clone)]
enum Verifier {
    Hs256(hmac::Key),
    EdDsa([u8; 32]),
}

impl VerificationKey {
    /// An HS256 verification key (the shared secret).
    pub fn hs256(kid: KeyId, secret: &[u8]) -> Result<Self> {
        Ok(VerificationKey {
            kid,
            inner: Verifier::Hs256(hmac_key(secret)?),
        })
    }

    /// An Ed25519 public key (the RFC 8037 `x` value).
    pub fn ed25519(kid: KeyId, public: [u8; 32]) -> Self {
        VerificationKey {
            kid,
            inner: Verifier::EdDsa(public),
        }
    }

    /// The key id.
    pub fn kid(&self) -> &KeyId {
        &self.kid
    }

    /// The only algorithm this key accepts.
    pub fn algorithm(&self) -> Algorithm {
        match self.inner {
            Verifier::Hs256(_) => Algorithm::Hs256,
            Verifier::EdDsa(_) => Algorithm::EdDsa,
        }
    }

    /// The Ed25519 public key; `None` for HS256 keys, which are never public.
    pub fn ed25519_public(&self) -> Option<&[u8; 32]> {
        match &self.inner {
            Verifier::EdDsa(public) => Some(public),
            Verifier::Hs256(_) => None,
        }
    }

    pub(crate) fn verify(&self, message: &[u8], sig: &[u8]) -> Result<()> {
        match &self.inner {
            // ring compares the tag in constant time.
            Verifier::Hs256(key) => hmac::verify(key, message, sig),
            Verifier::EdDsa(public) => {
                signature::UnparsedPublicKey::new(&signature::ED25519, public).verify(message, sig)
            }
        }
        .map_err(|_| Error::BadSignature)
    }
}

impl fmt::Debug for VerificationKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("VerificationKey");
        d.field("kid", &self.kid).field("alg", &self.algorithm());
        if let Verifier::EdDsa(public) = &self.inner {
            d.field("x", &crate::base64url::encode(public));
        }
        d.finish_non_exhaustive()
    }
}

fn hmac_key(secret: &[u8]) -> Result<hmac::Key> {
    if secret.len() < MIN_HMAC_KEY_LEN {
        return Err(Error::InvalidKey {
            reason: "HS256 secret must be at least 32 bytes",
        });
    }
    Ok(hmac::Key::new(hmac::HMAC_SHA256, secret))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kid(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    #[test]
    fn algorithm_names_are_exact() {
        assert_eq!(Algorithm::parse("HS256").unwrap(), Algorithm::Hs256);
        assert_eq!(Algorithm::parse("EdDSA").unwrap(), Algorithm::EdDsa);
        for bad in [
            "none", "None", "NONE", "hs256", "HS384", "RS256", "ES256", "Ed25519", "",
        ] {
            assert!(
                matches!(
                    Algorithm::parse(bad),
                    Err(Error::UnsupportedAlgorithm { .. })
                ),
                "{bad}"
            );
        }
    }

    #[test]
    fn short_hmac_secrets_are_rejected() {
        assert!(SigningKey::hs256(kid("k"), &[0u8; 31]).is_err());
        assert!(VerificationKey::hs256(kid("k"), &[0u8; 31]).is_err());
        assert!(SigningKey::hs256(kid("k"), &[0u8; 32]).is_ok());
    }

    #[test]
    fn debug_never_prints_secrets() {
        let seed = [0x42u8; 32];
        let key = SigningKey::ed25519_from_seed(kid("ed"), &seed).unwrap();
        let debug = format!("{key:?}");
        assert!(!debug.contains(&crate::base64url::encode(seed)));
        assert!(!debug.contains("66, 66"));
        let hs = SigningKey::hs256(kid("hs"), b"0123456789abcdef0123456789abcdef").unwrap();
        let debug = format!("{hs:?} {:?}", hs.verification_key());
        assert!(!debug.contains("0123456789"), "{debug}");
    }

    #[test]
    fn signatures_verify_only_with_the_matching_key() {
        let a = SigningKey::generate_ed25519(kid("a")).unwrap();
        let b = SigningKey::generate_ed25519(kid("b")).unwrap();
        let sig = a.sign(b"msg");
        assert!(a.verification_key().verify(b"msg", &sig).is_ok());
        assert!(a.verification_key().verify(b"msg2", &sig).is_err());
        assert!(b.verification_key().verify(b"msg", &sig).is_err());
        let seed = a.expose_ed25519_seed().unwrap();
        let again = SigningKey::ed25519_from_seed(kid("a"), seed).unwrap();
        assert_eq!(
            again.verification_key().ed25519_public(),
            a.verification_key().ed25519_public()
        );
    }
}
