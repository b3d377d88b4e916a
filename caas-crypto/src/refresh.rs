//! Refresh tokens: opaque `rt_<256 random bits>`, stored as a SHA-256 hash
//! (see [`crate::secret`] for why a fast hash is right), grouped in families.
//!
//! Each use rotates the token: the presented one is marked rotated and a new
//! one is issued in the same family. A rotated token presented again means two
//! parties hold the family (the client and a thief), so the caller must revoke
//! the whole family; [`RefreshRecord::rotate`] signals that with
//! [`Error::RefreshTokenReused`].

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::secret::{Opaque, SecretHash};
use crate::{Error, Result};

/// A refresh token as handed to a client.
pub struct RefreshToken(Opaque);

impl RefreshToken {
    /// The readable prefix.
    pub const PREFIX: &'static str = "rt_";

    /// A fresh random token. Send it once; store only [`RefreshToken::hash`].
    pub fn generate() -> Result<Self> {
        Ok(RefreshToken(Opaque::generate(Self::PREFIX)?))
    }

    /// Checks the shape of a presented token.
    pub fn parse(s: &str) -> Result<Self> {
        Ok(RefreshToken(Opaque::parse(
            "refresh token",
            Self::PREFIX,
            s,
        )?))
    }

    /// The token text, to send to the client.
    pub fn expose_secret(&self) -> &str {
        self.0.as_str()
    }

    /// The hash the record is stored and looked up under.
    pub fn hash(&self) -> SecretHash {
        self.0.hash()
    }
}

impl fmt::Debug for RefreshToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("RefreshToken(rt_<redacted>)")
    }
}

/// Where a refresh token is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RefreshStatus {
    /// May be exchanged once.
    Active,
    /// Already exchanged; presenting it again is reuse.
    Rotated,
    /// Revoked with its family (logout or detected reuse).
    Revoked,
}

/// The stored record of one refresh token.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshRecord {
    /// Hash of the token; the lookup key.
    pub hash: SecretHash,
    /// The family: every token descended from one login.
    pub family: String,
    /// 0 for the login's token, +1 per rotation.
    pub generation: u32,
    /// Unix seconds.
    pub issued_at: i64,
    /// Unix seconds; rejected from this time on.
    pub expires_at: i64,
    /// Lifecycle state.
    pub status: RefreshStatus,
}

/// A newly issued token and the record to store for it.
#[derive(Debug)]
pub struct IssuedRefreshToken {
    /// Goes to the client.
    pub token: RefreshToken,
    /// Goes to the store.
    pub record: RefreshRecord,
}

/// Starts a new family (a login) at `now`, valid for `ttl_secs`.
pub fn issue(now: i64, ttl_secs: u64) -> Result<IssuedRefreshToken> {
    let family = crate::random::id("rf_")?;
    mint(family, 0, now, ttl_secs)
}

fn mint(family: String, generation: u32, now: i64, ttl_secs: u64) -> Result<IssuedRefreshToken> {
    let token = RefreshToken(Opaque::generate(RefreshToken::PREFIX)?);
    let ttl = i64::try_from(ttl_secs).unwrap_or(i64::MAX);
    let record = RefreshRecord {
        hash: token.hash(),
        family,
        generation,
        issued_at: now,
        expires_at: now.saturating_add(ttl),
        status: RefreshStatus::Active,
    };
    Ok(IssuedRefreshToken { token, record })
}

impl RefreshRecord {
    /// Exchanges `presented` (whose hash located this record) for a new token
    /// in the same family, marking this record rotated. Store both records
    /// atomically.
    ///
    /// Errors: [`Error::RefreshTokenReused`] if this record was already
    /// rotated (revoke the family), [`Error::Revoked`], [`Error::Expired`], or
    /// [`Error::InvalidCredential`] if the token does not match the record.
    pub fn rotate(
        &mut self,
        presented: &RefreshToken,
        now: i64,
        ttl_secs: u64,
    ) -> Result<IssuedRefreshToken> {
        if !presented.hash().ct_eq(&self.hash) {
            return Err(Error::InvalidCredential);
        }
        match self.status {
            RefreshStatus::Active => {}
            RefreshStatus::Rotated => {
                return Err(Error::RefreshTokenReused {
                    family: self.family.clone(),
                });
            }
            RefreshStatus::Revoked => {
                return Err(Error::Revoked {
                    what: "refresh token",
                });
            }
        }
        if now >= self.expires_at {
            return Err(Error::Expired {
                what: "refresh token",
                exp: self.expires_at,
                now,
                leeway: 0,
            });
        }
        let generation = self
            .generation
            .checked_add(1)
            .ok_or_else(|| Error::param("refresh family exhausted"))?;
        let next = mint(self.family.clone(), generation, now, ttl_secs)?;
        self.status = RefreshStatus::Rotated;
        Ok(next)
    }

    /// Revokes this token (call on every record of a family to revoke it).
    pub fn revoke(&mut self) {
        self.status = RefreshStatus::Revoked;
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use proptest::prelude::*;

    /// A stand-in for the refresh-token store: records by hash.
    #[derive(Default)]
    struct Store(HashMap<SecretHash, RefreshRecord>);

    impl Store {
        fn put(&mut self, r: RefreshRecord) {
            self.0.insert(r.hash, r);
        }

        /// The server's refresh endpoint.
        fn refresh(&mut self, presented: &str, now: i64) -> Result<String> {
            let token = RefreshToken::parse(presented)?;
            let mut record = self
                .0
                .get(&token.hash())
                .cloned()
                .ok_or(Error::InvalidCredential)?;
            match record.rotate(&token, now, 3_600) {
                Ok(next) => {
                    self.put(record);
                    let text = next.token.expose_secret().to_owned();
                    self.put(next.record);
                    Ok(text)
                }
                Err(Error::RefreshTokenReused { family }) => {
                    for r in self.0.values_mut().filter(|r| r.family == family) {
                        r.revoke();
                    }
                    Err(Error::RefreshTokenReused { family })
                }
                Err(e) => Err(e),
            }
        }
    }

    #[test]
    fn rotation_chain() {
        let mut store = Store::default();
        let first = issue(0, 3_600).unwrap();
        assert!(first.token.expose_secret().starts_with("rt_"));
        let family = first.record.family.clone();
        store.put(first.record);
        let second = store.refresh(first.token.expose_secret(), 10).unwrap();
        let third = store.refresh(&second, 20).unwrap();
        let rec = &store.0[&RefreshToken::parse(&third).unwrap().hash()];
        assert_eq!((rec.generation, rec.family.as_str()), (2, family.as_str()));
        assert_eq!(rec.expires_at, 3_620);
    }

    #[test]
    fn reuse_revokes_the_whole_family() {
        let mut store = Store::default();
        let first = issue(0, 3_600).unwrap();
        let stolen = first.token.expose_secret().to_owned();
        store.put(first.record);
        let legit = store.refresh(&stolen, 10).unwrap();
        // The thief replays the already-rotated token.
        assert!(matches!(
            store.refresh(&stolen, 20),
            Err(Error::RefreshTokenReused { .. })
        ));
        // The legitimate client's newest token is now dead too.
        assert!(matches!(
            store.refresh(&legit, 30),
            Err(Error::Revoked { .. })
        ));
        assert!(store.0.values().all(|r| r.status == RefreshStatus::Revoked));
        // Unrelated families are untouched.
        let other = issue(0, 3_600).unwrap();
        let other_text = other.token.expose_secret().to_owned();
        store.put(other.record);
        assert!(store.refresh(&other_text, 40).is_ok());
    }

    #[test]
    fn expiry_and_mismatch() {
        let mut issued = issue(0, 100).unwrap();
        assert!(matches!(
            issued.record.rotate(&issued.token, 100, 100),
            Err(Error::Expired { .. })
        ));
        let other = issue(0, 100).unwrap();
        assert!(matches!(
            issued.record.rotate(&other.token, 1, 100),
            Err(Error::InvalidCredential)
        ));
        assert_eq!(issued.record.status, RefreshStatus::Active);
        let json = serde_json::to_string(&issued.record).unwrap();
        assert!(json.contains("\"active\""), "{json}");
        assert!(!json.contains(&issued.token.expose_secret()[3..]));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(s in "rt_[A-Za-z0-9_-]{0,50}|.{0,60}") {
            let mut store = Store::default();
            prop_assert!(store.refresh(&s, 0).is_err());
        }
    }
}
