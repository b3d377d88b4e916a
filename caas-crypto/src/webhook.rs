//! Webhook signatures: HMAC-SHA-256 over `"{timestamp}.{body}"`, sent as a
//! header `t=<unix secs>,v1=<hex mac>[,v1=<hex mac>…]`.
//!
//! Signing the timestamp with the body lets the receiver reject replays older
//! than a window without storing anything; several `v1` entries let a sender
//! sign with both secrets while one is being rotated. Receivers that must
//! reject replays *inside* the window should also dedupe by event id.

use std::fmt;

use ring::hmac;

use crate::{Error, Result};

/// The header carrying the signature.
pub const SIGNATURE_HEADER: &str = "caas-signature";

/// How generated secrets begin.
pub const SECRET_PREFIX: &str = "whsec_";

/// Default replay window, seconds either side of the receiver's clock.
pub const DEFAULT_TOLERANCE_SECS: u64 = 300;

const MAX_HEADER_LEN: usize = 1024;
const MAX_SIGNATURES: usize = 8;

/// Signs and verifies webhook deliveries with one shared secret.
#[derive(Clone)]
pub struct WebhookSigner {
    key: hmac::Key,
}

impl WebhookSigner {
    /// From a shared secret of at least 32 bytes.
    pub fn new(secret: &[u8]) -> Result<Self> {
        if secret.len() < 32 {
            return Err(Error::InvalidKey {
                reason: "webhook secret must be at least 32 bytes",
            });
        }
        Ok(WebhookSigner {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        })
    }

    fn mac(&self, timestamp: i64, body: &[u8]) -> hmac::Tag {
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(timestamp.to_string().as_bytes());
        ctx.update(b".");
        ctx.update(body);
        ctx.sign()
    }

    /// A fresh random secret to sign with: `whsec_` and 32 random bytes in
    /// base64url.
    pub fn generate_secret() -> Result<String> {
        let raw = zeroize::Zeroizing::new(crate::random::array::<32>()?);
        Ok(format!(
            "{SECRET_PREFIX}{}",
            crate::base64url::encode(raw.as_slice())
        ))
    }

    /// The header value for `body` sent at `timestamp` (unix seconds).
    pub fn sign(&self, timestamp: i64, body: &[u8]) -> String {
        Self::sign_all(std::slice::from_ref(self), timestamp, body)
    }

    /// The header value for `body` sent at `timestamp`, with one `v1` per
    /// signer: during a rotation the receiver may hold either secret.
    pub fn sign_all(signers: &[WebhookSigner], timestamp: i64, body: &[u8]) -> String {
        let mut header = format!("t={timestamp}");
        for signer in signers {
            header.push_str(",v1=");
            header.push_str(&hex(signer.mac(timestamp, body).as_ref()));
        }
        header
    }

    /// Verifies a received header against `body` at `now`, allowing
    /// `tolerance_secs` of age or clock skew. Returns the signed timestamp.
    ///
    /// The timestamp window is checked before the MAC so stale deliveries are
    /// rejected cheaply; the MAC comparison itself is constant-time.
    pub fn verify(&self, header: &str, body: &[u8], now: i64, tolerance_secs: u64) -> Result<i64> {
        let parsed = parse_header(header)?;
        let distance = now.abs_diff(parsed.timestamp);
        if distance > tolerance_secs {
            return Err(Error::StaleTimestamp {
                timestamp: parsed.timestamp,
                now,
                tolerance: tolerance_secs,
            });
        }
        let mut ctx = hmac::Context::with_key(&self.key);
        ctx.update(parsed.timestamp_text.as_bytes());
        ctx.update(b".");
        ctx.update(body);
        let expected = ctx.sign();
        let mut ok = subtle::Choice::from(0);
        for sig in &parsed.signatures {
            ok |= subtle::ConstantTimeEq::ct_eq(expected.as_ref(), sig.as_slice());
        }
        if bool::from(ok) {
            Ok(parsed.timestamp)
        } else {
            Err(Error::BadSignature)
        }
    }
}

impl fmt::Debug for WebhookSigner {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("WebhookSigner").finish_non_exhaustive()
    }
}

struct ParsedHeader<'a> {
    timestamp: i64,
    timestamp_text: &'a str,
    signatures: Vec<Vec<u8>>,
}

fn parse_header(header: &str) -> Result<ParsedHeader<'_>> {
    const WHAT: &str = "webhook signature header";
    if header.len() > MAX_HEADER_LEN {
        return Err(Error::TooLarge {
            what: WHAT,
            len: header.len(),
            limit: MAX_HEADER_LEN,
        });
    }
    let mut timestamp = None;
    let mut signatures = Vec::new();
    for item in header.split(',') {
        let (key, value) = item
            .trim()
            .split_once('=')
            .ok_or_else(|| Error::malformed(WHAT, "expected key=value items"))?;
        match key {
            "t" => {
                if timestamp.is_some() {
                    return Err(Error::malformed(WHAT, "duplicate t"));
                }
                // Digits only: the MAC covers the text, so "+5" or "05" must
                // not be accepted as another spelling of 5.
                if value.is_empty()
                    || value.len() > 19
                    || !value.bytes().all(|b| b.is_ascii_digit())
                {
                    return Err(Error::malformed(WHAT, "t must be unix seconds"));
                }
                let t: i64 = value
                    .parse()
                    .map_err(|_| Error::malformed(WHAT, "t out of range"))?;
                if t.to_string() != value {
                    return Err(Error::malformed(WHAT, "t must have no leading zeros"));
                }
                timestamp = Some((t, value));
            }
            "v1" => {
                if signatures.len() == MAX_SIGNATURES {
                    return Err(Error::malformed(WHAT, "too many signatures"));
                }
                signatures.push(
                    unhex(value)
                        .ok_or_else(|| Error::malformed(WHAT, "v1 must be 64 hex digits"))?,
                );
            }
            // Unknown schemes are skipped so a sender can add a new scheme
            // before receivers understand it.
            _ => {}
        }
    }
    let (timestamp, timestamp_text) =
        timestamp.ok_or_else(|| Error::malformed(WHAT, "missing t"))?;
    if signatures.is_empty() {
        return Err(Error::malformed(WHAT, "missing v1"));
    }
    Ok(ParsedHeader {
        timestamp,
        timestamp_text,
        signatures,
    })
}

fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        out.push(char::from(DIGITS[usize::from(b >> 4)]));
        out.push(char::from(DIGITS[usize::from(b & 15)]));
    }
    out
}

fn unhex(s: &str) -> Option<Vec<u8>> {
    if s.len() != 64 {
        return None;
    }
    let nibble = |c: u8| match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    };
    s.as_bytes()
        .chunks(2)
        .map(|pair| Some(nibble(pair[0])? << 4 | nibble(pair[1])?))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn signer() -> WebhookSigner {
        WebhookSigner::new(b"whsec_0123456789abcdef0123456789abcdef").unwrap()
    }

    #[test]
    fn generated_secrets_are_distinct_and_sign() {
        let a = WebhookSigner::generate_secret().unwrap();
        let b = WebhookSigner::generate_secret().unwrap();
        assert_ne!(a, b);
        assert!(a.starts_with(SECRET_PREFIX));
        assert_eq!(a.len(), SECRET_PREFIX.len() + 43);
        assert!(WebhookSigner::new(a.as_bytes()).is_ok());
    }

    #[test]
    fn a_header_signed_by_two_secrets_verifies_with_either() {
        let old = signer();
        let new = WebhookSigner::new(b"whsec_fedcba9876543210fedcba9876543210").unwrap();
        let other = WebhookSigner::new(b"whsec_00000000000000000000000000000000").unwrap();
        let header = WebhookSigner::sign_all(&[new.clone(), old.clone()], 1000, b"{}");
        assert_eq!(header.matches("v1=").count(), 2);
        assert_eq!(new.verify(&header, b"{}", 1000, 300).unwrap(), 1000);
        assert_eq!(old.verify(&header, b"{}", 1000, 300).unwrap(), 1000);
        assert!(other.verify(&header, b"{}", 1000, 300).is_err());
        assert!(new.verify(&header, b"{ }", 1000, 300).is_err());
    }

    #[test]
    fn known_answer() {
        // HMAC-SHA256(key, "1700000000.{\"a\":1}") computed independently
        // with Python's hmac module.
        let header = signer().sign(1_700_000_000, br#"{"a":1}"#);
        assert_eq!(
            header,
            "t=1700000000,v1=c1fdbee94e006c1ee2b03ad4166411f2d89824ec39aa8fa23dfdae06b759e2ed"
        );
    }

    #[test]
    fn sign_verify_and_window() {
        let s = signer();
        let body = b"{\"event\":\"message.created\"}";
        let header = s.sign(1_000, body);
        assert_eq!(s.verify(&header, body, 1_000, 300).unwrap(), 1_000);
        assert!(s.verify(&header, body, 1_300, 300).is_ok());
        assert!(matches!(
            s.verify(&header, body, 1_301, 300),
            Err(Error::StaleTimestamp { .. })
        ));
        assert!(matches!(
            s.verify(&header, body, 699, 300),
            Err(Error::StaleTimestamp { .. })
        ));
        assert!(matches!(
            s.verify(&header, b"{}", 1_000, 300),
            Err(Error::BadSignature)
        ));
        // Moving the timestamp forward to dodge the window breaks the MAC.
        let moved = header.replace("t=1000", "t=1200");
        assert!(matches!(
            s.verify(&moved, body, 1_200, 300),
            Err(Error::BadSignature)
        ));
        let other = WebhookSigner::new(&[3u8; 32]).unwrap();
        assert!(other.verify(&header, body, 1_000, 300).is_err());
    }

    #[test]
    fn rotation_with_two_signatures() {
        let (old, new) = (signer(), WebhookSigner::new(&[3u8; 32]).unwrap());
        let body = b"x";
        let new_sig = new.sign(5, body);
        let both = format!(
            "{},{}",
            old.sign(5, body),
            new_sig.split_once(',').unwrap().1
        );
        assert!(old.verify(&both, body, 5, 10).is_ok());
        assert!(new.verify(&both, body, 5, 10).is_ok());
    }

    #[test]
    fn malformed_headers() {
        let s = signer();
        let v1 = "v1=".to_owned() + &"0".repeat(64);
        for bad in [
            String::new(),
            "t=5".into(),
            v1.clone(),
            format!("t=,{v1}"),
            format!("t=-5,{v1}"),
            format!("t=+5,{v1}"),
            format!("t=05,{v1}"),
            format!("t=5,t=5,{v1}"),
            format!("t=99999999999999999999,{v1}"),
            "t=5,v1=abc".into(),
            "garbage".into(),
            format!("t=5,{}", [v1.as_str(); 9].join(",")),
        ] {
            assert!(
                matches!(s.verify(&bad, b"", 5, 10), Err(Error::Malformed { .. })),
                "{bad}"
            );
        }
        assert!(matches!(
            s.verify(&"x".repeat(2000), b"", 5, 10),
            Err(Error::TooLarge { .. })
        ));
        assert!(WebhookSigner::new(&[0u8; 31]).is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_headers_never_panic(h in "(t=[0-9]{1,20},)?(v1=[0-9a-fA-F]{60,66},?){0,3}|.{0,100}", now in any::<i64>()) {
            let _ = signer().verify(&h, b"body", now, 300);
        }

        #[test]
        fn any_single_bit_change_in_body_is_rejected(body in proptest::collection::vec(any::<u8>(), 1..200), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let s = signer();
            let header = s.sign(100, &body);
            let mut tampered = body.clone();
            let i = pos.index(tampered.len());
            tampered[i] ^= 1 << bit;
            prop_assert!(s.verify(&header, &tampered, 100, 10).is_err());
            prop_assert!(s.verify(&header, &body, 100, 10).is_ok());
        }
    }
}
