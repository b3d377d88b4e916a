//! Signed, expiring URLs for the local blob store's upload and download links:
//! `{path}?expires=<unix secs>&signature=<base64url HMAC-SHA-256>`.
//!
//! The MAC covers the method, the expiry and the exact path, so a download
//! link cannot be turned into an upload link, extended, or pointed at another
//! blob. Query parameters other than the two are rejected rather than
//! ignored, so nothing unsigned can ride along.

use std::fmt;

use ring::hmac;

use crate::{Error, Result, base64url};

/// What a signed URL allows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum UrlMethod {
    /// Download (`GET`).
    Get,
    /// Upload (`PUT`).
    Put,
}

impl UrlMethod {
    fn as_str(self) -> &'static str {
        match self {
            UrlMethod::Get => "GET",
            UrlMethod::Put => "PUT",
        }
    }
}

const MAX_PATH_LEN: usize = 2048;
const MAX_QUERY_LEN: usize = 256;

/// Signs and verifies URLs with one server-side secret.
#[derive(Clone)]
pub struct UrlSigner {
    key: hmac::Key,
}

impl UrlSigner {
    /// From a secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self> {
        if secret.len() < 32 {
            return Err(Error::InvalidKey {
                reason: "URL signing secret must be at least 32 bytes",
            });
        }
        Ok(UrlSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    /// The signed text. Path last: it is the only free-form field, and method
    /// and expiry cannot contain the separator, so the encoding is unambiguous.
    fn message(method: UrlMethod, path: &str, expires: i64) -> String {
        format!("caas.signed-url.v1\n{}\n{expires}\n{path}", method.as_str())
    }

    /// A path-and-query valid for `method` until `expires_at` (unix seconds).
    /// `path` must start with `/` and contain no `?`, `#` or control characters.
    pub fn sign(&self, method: UrlMethod, path: &str, expires_at: i64) -> Result<String> {
        check_path(path)?;
        let sig = hmac::sign(
            &self.key,
            Self::message(method, path, expires_at).as_bytes(),
        );
        Ok(format!(
            "{path}?expires={expires_at}&signature={}",
            base64url::encode(sig.as_ref())
        ))
    }

    /// Verifies a request: its method, raw path and raw query string, at `now`.
    pub fn verify(&self, method: UrlMethod, path: &str, query: &str, now: i64) -> Result<()> {
        const WHAT: &str = "signed URL";
        check_path(path)?;
        if query.len() > MAX_QUERY_LEN {
            return Err(Error::TooLarge {
                what: WHAT,
                len: query.len(),
                limit: MAX_QUERY_LEN,
            });
        }
        let (mut expires, mut signature) = (None, None);
        for pair in query.split('&') {
            let (key, value) = pair
                .split_once('=')
                .ok_or_else(|| Error::malformed(WHAT, "expected key=value"))?;
            let slot = match key {
                "expires" => &mut expires,
                "signature" => &mut signature,
                _ => return Err(Error::malformed(WHAT, "unexpected query parameter")),
            };
            if slot.replace(value).is_some() {
                return Err(Error::malformed(WHAT, "duplicate query parameter"));
            }
        }
        let expires_text = expires.ok_or_else(|| Error::malformed(WHAT, "missing expires"))?;
        let signature = signature.ok_or_else(|| Error::malformed(WHAT, "missing signature"))?;
        let expires: i64 = expires_text
            .parse()
            .map_err(|_| Error::malformed(WHAT, "expires must be unix seconds"))?;
        // One spelling per value: "+5" or "05" would still be MAC-checked as
        // "5", but rejecting them keeps the signed text and the URL identical.
        if expires.to_string() != expires_text {
            return Err(Error::malformed(WHAT, "expires must be canonical"));
        }
        let signature = base64url::decode_array::<32>("URL signature", signature)?;
        hmac::verify(
            &self.key,
            Self::message(method, path, expires).as_bytes(),
            &signature,
        )
        .map_err(|_| Error::BadSignature)?;
        // Expiry after the MAC: an unauthenticated caller learns nothing about
        // which links exist.
        if now >= expires {
            return Err(Error::Expired {
                what: "signed URL",
                exp: expires,
                now,
                leeway: 0,
            });
        }
        Ok(())
    }
}

fn check_path(path: &str) -> Result<()> {
    if path.len() > MAX_PATH_LEN {
        return Err(Error::TooLarge {
            what: "URL path",
            len: path.len(),
            limit: MAX_PATH_LEN,
        });
    }
    if !path.starts_with('/') || path.chars().any(|c| c.is_control() || c == '?' || c == '#') {
        return Err(Error::malformed(
            "URL path",
            "must start with / and contain no ?, # or control characters",
        ));
    }
    Ok(())
}

impl fmt::Debug for UrlSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UrlSigner").finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> UrlSigner {
        UrlSigner::new(&[5u8; 32]).unwrap()
    }

    fn split(url: &str) -> (&str, &str) {
        url.split_once('?').unwrap()
    }

    #[test]
    fn round_trip_and_expiry() {
        let s = signer();
        let url = s.sign(UrlMethod::Get, "/v1/blobs/t1/b_123", 1_000).unwrap();
        assert!(url.starts_with("/v1/blobs/t1/b_123?expires=1000&signature="));
        let (path, query) = split(&url);
        assert!(s.verify(UrlMethod::Get, path, query, 999).is_ok());
        assert!(matches!(
            s.verify(UrlMethod::Get, path, query, 1_000),
            Err(Error::Expired { .. })
        ));
    }

    #[test]
    fn binds_method_path_and_expiry() {
        let s = signer();
        let url = s.sign(UrlMethod::Get, "/blobs/a", 1_000).unwrap();
        let (path, query) = split(&url);
        assert!(matches!(
            s.verify(UrlMethod::Put, path, query, 0),
            Err(Error::BadSignature)
        ));
        assert!(matches!(
            s.verify(UrlMethod::Get, "/blobs/b", query, 0),
            Err(Error::BadSignature)
        ));
        let extended = query.replace("expires=1000", "expires=9000");
        assert!(matches!(
            s.verify(UrlMethod::Get, path, &extended, 0),
            Err(Error::BadSignature)
        ));
        let other = UrlSigner::new(&[6u8; 32]).unwrap();
        assert!(other.verify(UrlMethod::Get, path, query, 0).is_err());
    }

    #[test]
    fn strict_query_and_path() {
        let s = signer();
        let url = s.sign(UrlMethod::Put, "/blobs/a", 1_000).unwrap();
        let (path, query) = split(&url);
        for bad in [
            format!("{query}&extra=1"),
            format!("{query}&expires=1000"),
            query.replace("expires=1000", "expires=01000"),
            query.replace("expires=1000", "expires=+1000"),
            "expires=1000".into(),
            query.split_once('&').unwrap().1.to_owned(),
            String::new(),
            "signature".into(),
        ] {
            assert!(
                matches!(
                    s.verify(UrlMethod::Put, path, &bad, 0),
                    Err(Error::Malformed { .. })
                ),
                "{bad}"
            );
        }
        assert!(s.sign(UrlMethod::Get, "relative", 1).is_err());
        assert!(s.sign(UrlMethod::Get, "/a?b", 1).is_err());
        assert!(s.sign(UrlMethod::Get, "/a\nb", 1).is_err());
        assert!(UrlSigner::new(&[0u8; 16]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_input_never_panics(path in ".{0,40}", query in "(expires=-?[0-9]{0,20}&?)?(signature=[A-Za-z0-9_-]{0,50})?|.{0,80}", now in any::<i64>()) {
            let _ = signer().verify(UrlMethod::Get, &path, &query, now);
        }

        #[test]
        fn any_single_bit_change_in_the_url_is_rejected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = signer();
            let url = s.sign(UrlMethod::Get, "/blobs/tenant/blob-1", 5_000).unwrap();
            let mut bytes = url.clone().into_bytes();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            if let Ok(tampered) = String::from_utf8(bytes) {
                let ok = tampered.split_once('?').is_some_and(|(p, q)| s.verify(UrlMethod::Get, p, q, 0).is_ok());
                prop_assert!(!ok, "{} accepted", tampered);
            }
        }
    }
}
