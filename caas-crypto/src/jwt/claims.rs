//! The claims carried by caas access tokens and their time/issuer/audience checks.

use serde::{Deserialize, Serialize};

use super::Validation;
use crate::{Error, Result};

/// Access-token claims: the registered ones (RFC 7519 §4.1) plus caas's
/// `tenant`, `device` and `scopes`.
///
/// Times are unix seconds. `aud` accepts a string or an array on input and is
/// written as a string when it holds one value, which every JWT library reads.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Claims {
    /// Issuer.
    pub iss: String,
    /// Subject: the user id.
    pub sub: String,
    /// Audiences.
    #[serde(with = "audience")]
    pub aud: Vec<String>,
    /// Expiry.
    pub exp: i64,
    /// Not before.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nbf: Option<i64>,
    /// Issued at.
    pub iat: i64,
    /// Unique token id, for revocation lists.
    pub jti: String,
    /// The tenant the subject belongs to.
    pub tenant: String,
    /// The device the token was minted for, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Granted scopes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub scopes: Vec<String>,
    /// The session (refresh family) the token was minted for, so revoking the
    /// session refuses it (OpenID Connect's `sid`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sid: Option<String>,
}

impl Claims {
    /// Claims valid from `now` for `ttl_secs`, with a random `jti`.
    pub fn new(
        issuer: impl Into<String>,
        subject: impl Into<String>,
        audience: impl Into<String>,
        tenant: impl Into<String>,
        now: i64,
        ttl_secs: u64,
    ) -> Result<Self> {
        let ttl = i64::try_from(ttl_secs).map_err(|_| Error::param("ttl out of range"))?;
        let exp = now
            .checked_add(ttl)
            .ok_or_else(|| Error::param("expiry out of range"))?;
        Ok(Claims {
            iss: issuer.into(),
            sub: subject.into(),
            aud: vec![audience.into()],
            exp,
            nbf: Some(now),
            iat: now,
            jti: crate::random::id("")?,
            tenant: tenant.into(),
            device: None,
            scopes: Vec::new(),
            sid: None,
        })
    }

    /// Sets the device.
    pub fn with_device(mut self, device: impl Into<String>) -> Self {
        self.device = Some(device.into());
        self
    }

    /// Sets the session id.
    pub fn with_session(mut self, sid: impl Into<String>) -> Self {
        self.sid = Some(sid.into());
        self
    }

    /// Sets the scopes.
    pub fn with_scopes<S: Into<String>>(mut self, scopes: impl IntoIterator<Item = S>) -> Self {
        self.scopes = scopes.into_iter().map(Into::into).collect();
        self
    }

    /// Whether `scope` was granted.
    pub fn has_scope(&self, scope: &str) -> bool {
        self.scopes.iter().any(|s| s == scope)
    }

    /// Checks expiry, not-before, issuer and audience against `now`.
    pub(crate) fn validate(&self, v: &Validation, now: i64) -> Result<()> {
        let leeway = i64::try_from(v.leeway_secs).unwrap_or(i64::MAX);
        // RFC 7519 §4.1.4: reject "on or after" exp.
        if now >= self.exp.saturating_add(leeway) {
            return Err(Error::Expired {
                what: "token",
                exp: self.exp,
                now,
                leeway: v.leeway_secs,
            });
        }
        if let Some(nbf) = self.nbf
            && now.saturating_add(leeway) < nbf
        {
            return Err(Error::NotYetValid {
                nbf,
                now,
                leeway: v.leeway_secs,
            });
        }
        if self.iss != v.issuer {
            return Err(Error::WrongIssuer {
                expected: v.issuer.clone(),
            });
        }
        if !self.aud.contains(&v.audience) {
            return Err(Error::WrongAudience {
                expected: v.audience.clone(),
            });
        }
        Ok(())
    }
}

mod audience {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    #[derive(Deserialize)]
    #[serde(untagged)]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }

    pub(super) fn serialize<S: Serializer>(aud: &[String], s: S) -> Result<S::Ok, S::Error> {
        match aud {
            [one] => one.serialize(s),
            many => many.serialize(s),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
        Ok(match OneOrMany::deserialize(d)? {
            OneOrMany::One(one) => vec![one],
            OneOrMany::Many(many) => many,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn claims() -> Claims {
        Claims::new("caas", "u1", "tenant-api", "t1", 1_000, 600).unwrap()
    }

    #[test]
    fn new_sets_times_and_unique_jti() {
        let c = claims();
        assert_eq!((c.iat, c.nbf, c.exp), (1_000, Some(1_000), 1_600));
        assert_ne!(c.jti, claims().jti);
        assert!(Claims::new("i", "s", "a", "t", i64::MAX - 1, 10).is_err());
    }

    #[test]
    fn audience_accepts_string_or_array() {
        let mut json = serde_json::to_value(claims()).unwrap();
        assert_eq!(json["aud"], "tenant-api");
        json["aud"] = serde_json::json!(["x", "tenant-api"]);
        let c: Claims = serde_json::from_value(json).unwrap();
        assert_eq!(c.aud, vec!["x", "tenant-api"]);
        let back = serde_json::to_value(&c).unwrap();
        assert_eq!(back["aud"], serde_json::json!(["x", "tenant-api"]));
    }

    #[test]
    fn validation_boundaries() {
        let v = Validation::new("caas", "tenant-api").with_leeway(10);
        let c = claims();
        assert!(c.validate(&v, 1_000).is_ok());
        assert!(c.validate(&v, 1_609).is_ok());
        assert!(matches!(c.validate(&v, 1_610), Err(Error::Expired { .. })));
        assert!(c.validate(&v, 990).is_ok());
        assert!(matches!(
            c.validate(&v, 989),
            Err(Error::NotYetValid { .. })
        ));
        let strict = Validation::new("caas", "tenant-api").with_leeway(0);
        assert!(matches!(
            c.validate(&strict, 1_600),
            Err(Error::Expired { .. })
        ));
        assert!(matches!(
            c.validate(&Validation::new("other", "tenant-api"), 1_000),
            Err(Error::WrongIssuer { .. })
        ));
        assert!(matches!(
            c.validate(&Validation::new("caas", "other"), 1_000),
            Err(Error::WrongAudience { .. })
        ));
    }

    #[test]
    fn extreme_times_do_not_overflow() {
        let mut c = claims();
        c.exp = i64::MAX;
        c.nbf = Some(i64::MIN);
        let v = Validation::new("caas", "tenant-api").with_leeway(u64::MAX);
        assert!(c.validate(&v, i64::MAX - 1).is_ok());
        c.exp = i64::MIN;
        assert!(c.validate(&v, i64::MAX).is_err());
    }

    #[test]
    fn scopes_and_device() {
        let c = claims().with_device("d1").with_scopes(["read", "write"]);
        assert!(c.has_scope("write"));
        assert!(!c.has_scope("admin"));
        let json = serde_json::to_string(&c).unwrap();
        let back: Claims = serde_json::from_str(&json).unwrap();
        assert_eq!(back, c);
    }
}
