//! Compact JWS serialization (RFC 7515 §7.1): `header.payload.signature`, each
//! part base64url without padding, the signature over `header.payload`.
//!
//! The payload is decoded only after the signature verifies, so no JSON parser
//! ever sees unauthenticated claims.

use serde::Deserialize;
use serde::de::IgnoredAny;

use super::{Algorithm, SigningKey, VerificationKey};
use crate::error::echo;
use crate::{Error, Result, base64url};

/// Default limit on a token's length, checked before any decoding. Access
/// tokens are a few hundred bytes; 8 KiB leaves room for many scopes while
/// bounding the work an attacker can request.
pub const DEFAULT_MAX_TOKEN_LEN: usize = 8 * 1024;

#[derive(Deserialize)]
struct RawHeader {
    alg: String,
    #[serde(default)]
    kid: Option<String>,
    // Present only to detect it: a critical extension we do not implement
    // (e.g. RFC 7797 `b64`) must make the token invalid (RFC 7515 §4.1.11).
    #[serde(default)]
    crit: Option<IgnoredAny>,
}

/// A token split and its header checked, signature not yet verified.
pub(crate) struct Unverified<'a> {
    pub(crate) alg: Algorithm,
    pub(crate) kid: Option<String>,
    signing_input: &'a str,
    payload_b64: &'a str,
    signature: Vec<u8>,
}

impl<'a> Unverified<'a> {
    pub(crate) fn parse(token: &'a str, max_len: usize) -> Result<Self> {
        if token.len() > max_len {
            return Err(Error::TooLarge {
                what: "token",
                len: token.len(),
                limit: max_len,
            });
        }
        let mut parts = token.split('.');
        let (Some(header_b64), Some(payload_b64), Some(sig_b64), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(Error::malformed(
                "token",
                "expected three dot-separated parts",
            ));
        };
        let header_json = base64url::decode("token header", header_b64)?;
        let header: RawHeader = serde_json::from_slice(&header_json)
            .map_err(|e| Error::malformed("token header", e))?;
        if header.crit.is_some() {
            return Err(Error::malformed(
                "token header",
                "unsupported critical header",
            ));
        }
        let alg = Algorithm::parse(&header.alg)?;
        let signature = base64url::decode("token signature", sig_b64)?;
        let signing_input = &token[..header_b64.len() + 1 + payload_b64.len()];
        Ok(Unverified {
            alg,
            kid: header.kid,
            signing_input,
            payload_b64,
            signature,
        })
    }

    /// Verifies with `key` (whose algorithm must match the header's) and
    /// returns the decoded payload.
    pub(crate) fn verify(self, key: &VerificationKey) -> Result<Vec<u8>> {
        if key.algorithm() != self.alg {
            return Err(Error::AlgorithmMismatch {
                kid: key.kid().to_string(),
                expected: key.algorithm().as_str(),
                found: self.alg.as_str(),
            });
        }
        key.verify(self.signing_input.as_bytes(), &self.signature)?;
        base64url::decode("token payload", self.payload_b64)
    }
}

/// Signs `payload` with header `{"alg":…,"kid":…,"typ":"JWT"}`.
pub fn sign(key: &SigningKey, payload: &[u8]) -> Result<String> {
    #[derive(serde::Serialize)]
    struct Header<'a> {
        alg: &'static str,
        kid: &'a str,
        typ: &'static str,
    }
    let header = serde_json::to_vec(&Header {
        alg: key.algorithm().as_str(),
        kid: key.kid().as_str(),
        typ: "JWT",
    })
    .map_err(|e| Error::malformed("token header", e))?;
    Ok(sign_with_header(key, &header, payload))
}

pub(crate) fn sign_with_header(key: &SigningKey, header_json: &[u8], payload: &[u8]) -> String {
    let mut token = base64url::encode(header_json);
    token.push('.');
    token.push_str(&base64url::encode(payload));
    let sig = key.sign(token.as_bytes());
    token.push('.');
    token.push_str(&base64url::encode(sig));
    token
}

/// Verifies a compact JWS with one given key and returns its payload bytes.
///
/// The header's `alg` must equal the key's; a `kid`, if present, must equal
/// the key's id. Claims are not interpreted: use [`super::KeySet::verify`] for
/// access tokens.
pub fn verify(token: &str, key: &VerificationKey, max_len: usize) -> Result<Vec<u8>> {
    let unverified = Unverified::parse(token, max_len)?;
    if let Some(kid) = &unverified.kid
        && kid != key.kid().as_str()
    {
        return Err(Error::UnknownKey { kid: echo(kid) });
    }
    unverified.verify(key)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyId;

    fn kid(s: &str) -> KeyId {
        KeyId::new(s).unwrap()
    }

    /// RFC 7515 Appendix A.1: HS256, header with a CRLF inside, key from the
    /// JWK `k` value.
    #[test]
    fn rfc7515_a1_hs256() {
        let k = "AyM1SysPpbyDfgZld3umj1qzKObwVMkoqQ-EstJQLr_T-1qS0gZH75aKtMN3Yj0iPS4hcgUuTwjAzZr1Z9CAow";
        let token = "eyJ0eXAiOiJKV1QiLA0KICJhbGciOiJIUzI1NiJ9\
            .eyJpc3MiOiJqb2UiLA0KICJleHAiOjEzMDA4MTkzODAsDQogImh0dHA6Ly9leGFtcGxlLmNvbS9pc19yb290Ijp0cnVlfQ\
            .dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk";
        let secret = base64url::decode("k", k).unwrap();
        let key = VerificationKey::hs256(kid("rfc"), &secret).unwrap();
        let payload = verify(token, &key, DEFAULT_MAX_TOKEN_LEN).unwrap();
        assert_eq!(
            payload,
            b"{\"iss\":\"joe\",\r\n \"exp\":1300819380,\r\n \"http://example.com/is_root\":true}"
        );
        // The same header and payload signed by us give the RFC's signature.
        let signer = SigningKey::hs256(kid("rfc"), &secret).unwrap();
        let header = b"{\"typ\":\"JWT\",\r\n \"alg\":\"HS256\"}";
        assert_eq!(sign_with_header(&signer, header, &payload), token);
        // One changed signature character fails.
        let bad = token.replacen("dBjf", "dBjg", 1);
        assert!(matches!(
            verify(&bad, &key, DEFAULT_MAX_TOKEN_LEN),
            Err(Error::BadSignature)
        ));
    }

    /// RFC 8037 Appendix A.1 (key) and A.4 (Ed25519 signing): Ed25519 is
    /// deterministic, so signing must reproduce the RFC's token exactly.
    #[test]
    fn rfc8037_a4_ed25519() {
        let d = "nWGxne_9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A";
        let x = "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo";
        let token = "eyJhbGciOiJFZERTQSJ9.RXhhbXBsZSBvZiBFZDI1NTE5IHNpZ25pbmc\
            .hgyY0il_MGCjP0JzlnLWG1PPOt7-09PGcvMg3AIbQR6dWbhijcNR4ki4iylGjg5BhVsPt9g7sVvpAr_MuM0KAg";
        let seed = base64url::decode_array::<32>("d", d).unwrap();
        let signer = SigningKey::ed25519_from_seed(kid("rfc"), &seed).unwrap();
        let public = signer.verification_key();
        assert_eq!(base64url::encode(public.ed25519_public().unwrap()), x);
        assert_eq!(
            sign_with_header(
                &signer,
                b"{\"alg\":\"EdDSA\"}",
                b"Example of Ed25519 signing"
            ),
            token
        );
        let from_x = VerificationKey::ed25519(kid("rfc"), base64url::decode_array("x", x).unwrap());
        assert_eq!(
            verify(token, &from_x, DEFAULT_MAX_TOKEN_LEN).unwrap(),
            b"Example of Ed25519 signing"
        );
    }

    #[test]
    fn structural_rejections() {
        let key = SigningKey::hs256(kid("k"), &[1u8; 32]).unwrap();
        let vk = key.verification_key();
        let good = sign(&key, b"{}").unwrap();
        assert!(verify(&good, &vk, DEFAULT_MAX_TOKEN_LEN).is_ok());

        let too_many = format!("{good}.x");
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "empty"),
            ("a.b".into(), "two parts"),
            (too_many, "four parts"),
            (good.replacen('.', "=.", 1), "padding"),
            (format!("!{good}"), "bad base64"),
        ];
        for (token, why) in cases {
            assert!(
                matches!(
                    verify(&token, &vk, DEFAULT_MAX_TOKEN_LEN),
                    Err(Error::Malformed { .. })
                ),
                "{why}"
            );
        }
        assert!(matches!(
            verify(&good, &vk, 10),
            Err(Error::TooLarge { .. })
        ));
    }

    fn forge(header: &str, key: &SigningKey) -> String {
        sign_with_header(key, header.as_bytes(), b"{}")
    }

    #[test]
    fn header_rejections() {
        let key = SigningKey::hs256(kid("k"), &[1u8; 32]).unwrap();
        let vk = key.verification_key();
        let max = DEFAULT_MAX_TOKEN_LEN;
        let none = format!(
            "{}.{}.",
            base64url::encode(br#"{"alg":"none"}"#),
            base64url::encode(b"{}")
        );
        assert!(matches!(
            verify(&none, &vk, max),
            Err(Error::UnsupportedAlgorithm { .. })
        ));
        let crit = forge(r#"{"alg":"HS256","crit":["b64"],"b64":false}"#, &key);
        assert!(matches!(
            verify(&crit, &vk, max),
            Err(Error::Malformed { .. })
        ));
        let dup = forge(r#"{"alg":"HS256","alg":"HS256"}"#, &key);
        assert!(matches!(
            verify(&dup, &vk, max),
            Err(Error::Malformed { .. })
        ));
        let not_json = forge("alg=HS256", &key);
        assert!(matches!(
            verify(&not_json, &vk, max),
            Err(Error::Malformed { .. })
        ));
        let other_kid = forge(r#"{"alg":"HS256","kid":"other"}"#, &key);
        assert!(matches!(
            verify(&other_kid, &vk, max),
            Err(Error::UnknownKey { .. })
        ));
        let ok = forge(
            r#"{"alg":"HS256","kid":"k","typ":"JWT","x5u":"ignored"}"#,
            &key,
        );
        assert!(verify(&ok, &vk, max).is_ok());
    }
}
