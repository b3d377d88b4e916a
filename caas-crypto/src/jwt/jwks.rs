//! JWKS documents (RFC 7517) for publishing the platform's Ed25519 keys as
//! OKP JWKs (RFC 8037 §2), so tenant backends can verify tokens with any JWT
//! library. HS256 secrets are never written into a JWKS.

use serde::{Deserialize, Serialize};

use super::VerificationKey;
use crate::{Error, KeyId, Result, base64url};

/// Largest JWKS document [`Jwks::from_json`] parses.
pub const MAX_JWKS_LEN: usize = 64 * 1024;

/// A JSON Web Key Set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwks {
    /// The keys.
    pub keys: Vec<Jwk>,
}

/// One public JSON Web Key. Only the members this crate uses are modelled;
/// others are ignored on input.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Jwk {
    /// Key type; `OKP` for Ed25519.
    pub kty: String,
    /// Curve; `Ed25519`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub crv: Option<String>,
    /// Public key, base64url.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub x: Option<String>,
    /// Key id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kid: Option<String>,
    /// Algorithm; `EdDSA`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alg: Option<String>,
    /// Public key use; `sig`.
    #[serde(default, rename = "use", skip_serializing_if = "Option::is_none")]
    pub key_use: Option<String>,
}

impl Jwks {
    /// Parses a JWKS document.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        if json.len() > MAX_JWKS_LEN {
            return Err(Error::TooLarge {
                what: "JWKS",
                len: json.len(),
                limit: MAX_JWKS_LEN,
            });
        }
        serde_json::from_slice(json).map_err(|e| Error::malformed("JWKS", e))
    }

    /// The document as JSON.
    pub fn to_json(&self) -> Result<String> {
        serde_json::to_string(self).map_err(|e| Error::malformed("JWKS", e))
    }
}

impl Jwk {
    /// Whether this JWK is an Ed25519 signing key (and so usable here).
    pub fn is_ed25519(&self) -> bool {
        self.kty == "OKP"
            && self.crv.as_deref() == Some("Ed25519")
            && self.key_use.as_deref().is_none_or(|u| u == "sig")
    }
}

impl VerificationKey {
    /// The public JWK of an Ed25519 key; `None` for HS256 keys, which must not
    /// be published.
    pub fn to_jwk(&self) -> Option<Jwk> {
        let public = self.ed25519_public()?;
        Some(Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(base64url::encode(public)),
            kid: Some(self.kid().to_string()),
            alg: Some("EdDSA".into()),
            key_use: Some("sig".into()),
        })
    }

    /// An Ed25519 verification key from a public OKP JWK with a `kid`.
    pub fn from_jwk(jwk: &Jwk) -> Result<Self> {
        if !jwk.is_ed25519() {
            return Err(Error::InvalidKey {
                reason: "JWK is not an Ed25519 signing key (kty OKP, crv Ed25519)",
            });
        }
        if jwk.alg.as_deref().is_some_and(|a| a != "EdDSA") {
            return Err(Error::InvalidKey {
                reason: "JWK alg is not EdDSA",
            });
        }
        let kid = KeyId::new(
            jwk.kid
                .clone()
                .ok_or_else(|| Error::malformed("JWK", "missing kid"))?,
        )?;
        let x = jwk
            .x
            .as_deref()
            .ok_or_else(|| Error::malformed("JWK", "missing x"))?;
        Ok(VerificationKey::ed25519(
            kid,
            base64url::decode_array("JWK x", x)?,
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::jwt::SigningKey;
    use proptest::prelude::*;

    #[test]
    fn rfc8037_a2_public_jwk() {
        let json = br#"{"keys":[{"kty":"OKP","crv":"Ed25519",
            "x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"rfc8037"}]}"#;
        let jwks = Jwks::from_json(json).unwrap();
        let key = VerificationKey::from_jwk(&jwks.keys[0]).unwrap();
        assert_eq!(key.kid().as_str(), "rfc8037");
        assert_eq!(
            base64url::encode(key.ed25519_public().unwrap()),
            "11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo"
        );
    }

    #[test]
    fn round_trip_and_no_secret_keys() {
        let ed = SigningKey::generate_ed25519(KeyId::new("ed").unwrap()).unwrap();
        let jwk = ed.verification_key().to_jwk().unwrap();
        let back = VerificationKey::from_jwk(&jwk).unwrap();
        assert_eq!(
            back.ed25519_public(),
            ed.verification_key().ed25519_public()
        );
        let json = Jwks { keys: vec![jwk] }.to_json().unwrap();
        assert!(json.contains(r#""use":"sig""#), "{json}");
        assert!(!json.contains("\"d\""));

        let hs = SigningKey::hs256(KeyId::new("hs").unwrap(), &[9u8; 32]).unwrap();
        assert!(hs.verification_key().to_jwk().is_none());
    }

    #[test]
    fn rejects_unusable_jwks() {
        let base = Jwk {
            kty: "OKP".into(),
            crv: Some("Ed25519".into()),
            x: Some(base64url::encode([1u8; 32])),
            kid: Some("k".into()),
            alg: None,
            key_use: None,
        };
        assert!(VerificationKey::from_jwk(&base).is_ok());
        let cases = [
            Jwk {
                kty: "oct".into(),
                ..base.clone()
            },
            Jwk {
                crv: Some("X25519".into()),
                ..base.clone()
            },
            Jwk {
                key_use: Some("enc".into()),
                ..base.clone()
            },
            Jwk {
                alg: Some("HS256".into()),
                ..base.clone()
            },
            Jwk {
                kid: None,
                ..base.clone()
            },
            Jwk {
                kid: Some("bad kid".into()),
                ..base.clone()
            },
            Jwk {
                x: None,
                ..base.clone()
            },
            Jwk {
                x: Some(base64url::encode([1u8; 31])),
                ..base.clone()
            },
        ];
        for jwk in cases {
            assert!(VerificationKey::from_jwk(&jwk).is_err(), "{jwk:?}");
        }
        assert!(matches!(
            Jwks::from_json(&vec![b' '; MAX_JWKS_LEN + 1]),
            Err(Error::TooLarge { .. })
        ));
        assert!(Jwks::from_json(b"{\"keys\":{}}").is_err());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            if let Ok(jwks) = Jwks::from_json(&bytes) {
                for jwk in &jwks.keys {
                    let _ = VerificationKey::from_jwk(jwk);
                }
            }
        }
    }
}
