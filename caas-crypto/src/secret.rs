//! Tenant secrets and API keys: 256 random bits shown once as
//! `sk_<43 base64url chars>`, stored only as a SHA-256 hash, verified in
//! constant time, and rotated with a grace period for the old one.
//!
//! Why SHA-256 and not a slow password hash: a slow hash defends guessable
//! inputs. These secrets are 256 uniformly random bits, so a leaked hash
//! cannot be brute-forced whatever the hash speed, and a fast hash lets the
//! gateway authenticate every request cheaply and index secrets by hash.

use std::fmt;

use ring::digest;
use serde::{Deserialize, Serialize};
use subtle::ConstantTimeEq;
use zeroize::Zeroizing;

use crate::{Error, Result, base64url};

/// Characters after the prefix: 32 bytes in base64url without padding.
const BODY_LEN: usize = 43;

/// A prefixed random secret string (`sk_…`, `rt_…`), zeroed on drop.
pub(crate) struct Opaque(Zeroizing<String>);

impl Opaque {
    pub(crate) fn generate(prefix: &str) -> Result<Self> {
        let bytes = Zeroizing::new(crate::random::array::<32>()?);
        let mut s = Zeroizing::new(String::with_capacity(prefix.len() + BODY_LEN));
        s.push_str(prefix);
        s.push_str(&base64url::encode(*bytes));
        Ok(Opaque(s))
    }

    /// Checks shape only (prefix, length, alphabet); the value is checked
    /// against a stored hash by the caller.
    pub(crate) fn parse(what: &'static str, prefix: &str, s: &str) -> Result<Self> {
        let Some(body) = s.strip_prefix(prefix) else {
            return Err(Error::malformed(
                what,
                format_args!("expected prefix `{prefix}`"),
            ));
        };
        if body.len() != BODY_LEN {
            return Err(Error::malformed(what, "wrong length"));
        }
        // Decoding proves the alphabet and canonical form without keeping bytes.
        let _bytes = Zeroizing::new(base64url::decode_array::<32>(what, body)?);
        Ok(Opaque(Zeroizing::new(s.to_owned())))
    }

    pub(crate) fn as_str(&self) -> &str {
        &self.0
    }

    pub(crate) fn hash(&self) -> SecretHash {
        SecretHash::of(self.0.as_bytes())
    }
}

/// The SHA-256 of a secret, the only form in which it is stored. Serialized as
/// base64url.
#[derive(Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SecretHash(#[serde(with = "crate::base64url::array")] [u8; 32]);

impl SecretHash {
    fn of(bytes: &[u8]) -> Self {
        let d = digest::digest(&digest::SHA256, bytes);
        let mut out = [0u8; 32];
        out.copy_from_slice(d.as_ref());
        SecretHash(out)
    }

    /// From stored bytes.
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        SecretHash(bytes)
    }

    /// The raw hash, e.g. as a database index key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    /// Whether `other` is the same hash, in constant time.
    pub fn ct_eq(&self, other: &SecretHash) -> bool {
        self.0.ct_eq(&other.0).into()
    }
}

impl fmt::Debug for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "SecretHash({})", base64url::encode(self.0))
    }
}

impl fmt::Display for SecretHash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&base64url::encode(self.0))
    }
}

/// A tenant secret / API key: `sk_` followed by 256 random bits.
pub struct TenantSecret(Opaque);

impl TenantSecret {
    /// The readable prefix, so leaked keys are recognisable by secret scanners.
    pub const PREFIX: &'static str = "sk_";

    /// A fresh random secret. Show it once; store only [`TenantSecret::hash`].
    pub fn generate() -> Result<Self> {
        Ok(TenantSecret(Opaque::generate(Self::PREFIX)?))
    }

    /// Checks the shape of a presented secret (e.g. a bearer token).
    pub fn parse(s: &str) -> Result<Self> {
        Ok(TenantSecret(Opaque::parse(
            "tenant secret",
            Self::PREFIX,
            s,
        )?))
    }

    /// The secret text, to show once to its owner.
    pub fn expose_secret(&self) -> &str {
        self.0.as_str()
    }

    /// The hash to store and to look the tenant up by.
    pub fn hash(&self) -> SecretHash {
        self.0.hash()
    }
}

impl fmt::Debug for TenantSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TenantSecret(sk_<redacted>)")
    }
}

/// Which stored secret a presented one matched.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretMatch {
    /// The current secret.
    Current,
    /// The previous secret, still inside its grace period.
    Previous,
}

/// The stored form of a tenant's secret(s): the current hash, plus the
/// previous one until its grace period ends.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct StoredSecret {
    /// Hash of the current secret.
    pub current: SecretHash,
    /// Hash of the previous secret and when it stops being accepted.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub previous: Option<PreviousSecret>,
}

/// A rotated-out secret that is still accepted until `valid_until`.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousSecret {
    /// Its hash.
    pub hash: SecretHash,
    /// Unix seconds; accepted while `now < valid_until`.
    pub valid_until: i64,
}

impl StoredSecret {
    /// Stores `current` with no previous secret.
    pub fn new(current: SecretHash) -> Self {
        StoredSecret {
            current,
            previous: None,
        }
    }

    /// Makes `new` current; the old current stays valid for `grace_secs`.
    /// A still-older previous secret is dropped at once.
    pub fn rotate(&mut self, new: SecretHash, now: i64, grace_secs: u64) {
        let grace = i64::try_from(grace_secs).unwrap_or(i64::MAX);
        let old = std::mem::replace(&mut self.current, new);
        self.previous = Some(PreviousSecret {
            hash: old,
            valid_until: now.saturating_add(grace),
        });
    }

    /// Checks a presented secret at `now`.
    ///
    /// Both hashes are always compared, in constant time, so timing reveals
    /// neither which secret matched nor how much of a guess was right.
    pub fn verify(&self, presented: &str, now: i64) -> Result<SecretMatch> {
        let hash = TenantSecret::parse(presented)?.hash();
        let current = hash.0.ct_eq(&self.current.0);
        let previous = match &self.previous {
            Some(p) => {
                hash.0.ct_eq(&p.hash.0) & subtle::Choice::from(u8::from(now < p.valid_until))
            }
            None => subtle::Choice::from(0),
        };
        if bool::from(current) {
            Ok(SecretMatch::Current)
        } else if bool::from(previous) {
            Ok(SecretMatch::Previous)
        } else {
            Err(Error::InvalidCredential)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn format_and_parse() {
        let s = TenantSecret::generate().unwrap();
        let text = s.expose_secret();
        assert!(text.starts_with("sk_"));
        assert_eq!(text.len(), 3 + 43);
        assert_eq!(TenantSecret::parse(text).unwrap().hash(), s.hash());
        assert_ne!(TenantSecret::generate().unwrap().hash(), s.hash());
        for bad in [
            "",
            "sk_",
            "rt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
            &text[..45],
            &format!("{text}A"),
            &text.replace("sk_", "SK_"),
        ] {
            assert!(
                matches!(TenantSecret::parse(bad), Err(Error::Malformed { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn debug_is_redacted() {
        let s = TenantSecret::generate().unwrap();
        let debug = format!("{s:?}");
        assert!(!debug.contains(&s.expose_secret()[3..]));
    }

    #[test]
    fn hash_is_sha256_of_the_text() {
        // Pinned so a stored hash stays valid across releases.
        let s = TenantSecret::parse("sk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA").unwrap();
        let d = digest::digest(
            &digest::SHA256,
            b"sk_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        );
        assert_eq!(s.hash().as_bytes(), d.as_ref());
        let json = serde_json::to_string(&s.hash()).unwrap();
        let back: SecretHash = serde_json::from_str(&json).unwrap();
        assert!(back.ct_eq(&s.hash()));
    }

    #[test]
    fn rotation_grace_period() {
        let old = TenantSecret::generate().unwrap();
        let new = TenantSecret::generate().unwrap();
        let mut stored = StoredSecret::new(old.hash());
        assert_eq!(
            stored.verify(old.expose_secret(), 0).unwrap(),
            SecretMatch::Current
        );
        assert!(matches!(
            stored.verify(new.expose_secret(), 0),
            Err(Error::InvalidCredential)
        ));

        stored.rotate(new.hash(), 1_000, 3_600);
        assert_eq!(
            stored.verify(new.expose_secret(), 1_000).unwrap(),
            SecretMatch::Current
        );
        assert_eq!(
            stored.verify(old.expose_secret(), 4_599).unwrap(),
            SecretMatch::Previous
        );
        assert!(matches!(
            stored.verify(old.expose_secret(), 4_600),
            Err(Error::InvalidCredential)
        ));

        // A second rotation drops the oldest secret immediately.
        let newest = TenantSecret::generate().unwrap();
        stored.rotate(newest.hash(), 1_100, 3_600);
        assert!(stored.verify(old.expose_secret(), 1_100).is_err());
        assert_eq!(
            stored.verify(new.expose_secret(), 1_100).unwrap(),
            SecretMatch::Previous
        );

        let json = serde_json::to_string(&stored).unwrap();
        assert_eq!(serde_json::from_str::<StoredSecret>(&json).unwrap(), stored);
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(s in "sk_[A-Za-z0-9_=+/-]{0,50}|.{0,60}") {
            let stored = StoredSecret::new(TenantSecret::generate().unwrap().hash());
            prop_assert!(stored.verify(&s, 0).is_err());
        }
    }
}
