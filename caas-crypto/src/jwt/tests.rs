use proptest::prelude::*;

use super::*;
use crate::{Error, KeyId, base64url};

const NOW: i64 = 1_700_000_000;

fn kid(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn claims() -> Claims {
    Claims::new(
        "https://caas.example",
        "user-1",
        "caas",
        "tenant-1",
        NOW,
        900,
    )
    .unwrap()
    .with_device("dev-1")
    .with_scopes(["messages:read", "messages:write"])
}

fn validation() -> Validation {
    Validation::new("https://caas.example", "caas").with_leeway(5)
}

struct Keys {
    hs: SigningKey,
    ed: SigningKey,
    set: KeySet,
}

fn keys() -> Keys {
    let hs = SigningKey::hs256(kid("tenant-1.v1"), &[7u8; 32]).unwrap();
    let ed = SigningKey::generate_ed25519(kid("platform.v1")).unwrap();
    let mut set = KeySet::new();
    set.insert(hs.verification_key());
    set.insert(ed.verification_key());
    Keys { hs, ed, set }
}

#[test]
fn both_algorithms_round_trip() {
    let k = keys();
    for signer in [&k.hs, &k.ed] {
        let token = signer.sign_claims(&claims()).unwrap();
        let got = k.set.verify(&token, &validation(), NOW + 1).unwrap();
        assert_eq!(got.sub, "user-1");
        assert_eq!(got.tenant, "tenant-1");
        assert_eq!(got.device.as_deref(), Some("dev-1"));
        assert!(got.has_scope("messages:write"));
    }
}

#[test]
fn several_keys_live_during_rotation() {
    let mut k = keys();
    let old_token = k.ed.sign_claims(&claims()).unwrap();
    let new = SigningKey::generate_ed25519(kid("platform.v2")).unwrap();
    k.set.insert(new.verification_key());
    let new_token = new.sign_claims(&claims()).unwrap();
    assert!(k.set.verify(&old_token, &validation(), NOW).is_ok());
    assert!(k.set.verify(&new_token, &validation(), NOW).is_ok());
    assert_eq!(
        k.set.jwks().keys.len(),
        2,
        "HS256 key must not be published"
    );

    k.set.remove("platform.v1").unwrap();
    assert!(matches!(
        k.set.verify(&old_token, &validation(), NOW),
        Err(Error::UnknownKey { .. })
    ));
    assert!(k.set.verify(&new_token, &validation(), NOW).is_ok());
}

#[test]
fn inserting_same_kid_replaces() {
    let mut k = keys();
    let replacement = SigningKey::hs256(kid("tenant-1.v1"), &[8u8; 32]).unwrap();
    let old_token = k.hs.sign_claims(&claims()).unwrap();
    assert!(k.set.insert(replacement.verification_key()).is_some());
    assert_eq!(k.set.len(), 2);
    assert!(matches!(
        k.set.verify(&old_token, &validation(), NOW),
        Err(Error::BadSignature)
    ));
}

/// The classic confusion attack: an HS256 token whose HMAC secret is the
/// platform's *public* Ed25519 key, sent with the EdDSA key's kid.
#[test]
fn hs_eddsa_confusion_is_rejected() {
    let k = keys();
    let public = *k.ed.verification_key().ed25519_public().unwrap();
    let forger = SigningKey::hs256(kid("platform.v1"), &public).unwrap();
    let forged = forger.sign_claims(&claims()).unwrap();
    assert!(matches!(
        k.set.verify(&forged, &validation(), NOW),
        Err(Error::AlgorithmMismatch {
            expected: "EdDSA",
            found: "HS256",
            ..
        })
    ));
    // And the reverse: an EdDSA token naming the HS256 kid.
    let ed_on_hs_kid = SigningKey::generate_ed25519(kid("tenant-1.v1")).unwrap();
    let forged = ed_on_hs_kid.sign_claims(&claims()).unwrap();
    assert!(matches!(
        k.set.verify(&forged, &validation(), NOW),
        Err(Error::AlgorithmMismatch {
            expected: "HS256",
            ..
        })
    ));
}

#[test]
fn alg_none_is_rejected() {
    let k = keys();
    for alg in ["none", "None", "NONE"] {
        let header = format!(r#"{{"alg":"{alg}","kid":"tenant-1.v1"}}"#);
        let body = serde_json::to_vec(&claims()).unwrap();
        let token = format!("{}.{}.", base64url::encode(header), base64url::encode(body));
        assert!(matches!(
            k.set.verify(&token, &validation(), NOW),
            Err(Error::UnsupportedAlgorithm { .. })
        ));
    }
}

#[test]
fn kid_is_required_and_must_be_known() {
    let k = keys();
    let no_kid = jws::sign_with_header(&k.hs, br#"{"alg":"HS256"}"#, b"{}");
    assert!(matches!(
        k.set.verify(&no_kid, &validation(), NOW),
        Err(Error::MissingKeyId)
    ));
    let stranger = SigningKey::hs256(kid("stranger"), &[7u8; 32]).unwrap();
    let token = stranger.sign_claims(&claims()).unwrap();
    assert!(matches!(
        k.set.verify(&token, &validation(), NOW),
        Err(Error::UnknownKey { kid }) if kid == "stranger"
    ));
}

#[test]
fn claim_checks() {
    let k = keys();
    let token = k.ed.sign_claims(&claims()).unwrap();
    let v = validation();
    assert!(matches!(
        k.set.verify(&token, &v, NOW + 905),
        Err(Error::Expired { .. })
    ));
    assert!(k.set.verify(&token, &v, NOW + 904).is_ok());
    assert!(matches!(
        k.set.verify(&token, &v, NOW - 6),
        Err(Error::NotYetValid { .. })
    ));
    assert!(matches!(
        k.set.verify(
            &token,
            &Validation::new("https://caas.example", "other"),
            NOW
        ),
        Err(Error::WrongAudience { .. })
    ));
    assert!(matches!(
        k.set.verify(
            &token,
            &Validation::new("https://evil.example", "caas"),
            NOW
        ),
        Err(Error::WrongIssuer { .. })
    ));
    assert!(matches!(
        k.set
            .verify(&token, &validation().with_max_token_len(100), NOW),
        Err(Error::TooLarge { .. })
    ));
}

#[test]
fn signed_but_malformed_claims_are_rejected() {
    let k = keys();
    for payload in [&b"not json"[..], b"{}", br#"{"iss":"x","exp":"soon"}"#] {
        let token = jws::sign(&k.hs, payload).unwrap();
        assert!(matches!(
            k.set.verify(&token, &validation(), NOW),
            Err(Error::Malformed {
                what: "token claims",
                ..
            })
        ));
    }
}

#[test]
fn jwks_publishes_only_public_keys_and_verifies() {
    let k = keys();
    let json = k.set.jwks().to_json().unwrap();
    let parsed = KeySet::from_jwks(&Jwks::from_json(json.as_bytes()).unwrap()).unwrap();
    assert_eq!(parsed.len(), 1);
    let token = k.ed.sign_claims(&claims()).unwrap();
    assert!(parsed.verify(&token, &validation(), NOW).is_ok());
    let hs_token = k.hs.sign_claims(&claims()).unwrap();
    assert!(parsed.verify(&hs_token, &validation(), NOW).is_err());
    // Other key types are skipped, not fatal.
    let mixed = r#"{"keys":[{"kty":"RSA","n":"AQAB","e":"AQAB","kid":"r"},
        {"kty":"OKP","crv":"X25519","x":"11qYAYKxCrfVS_7TyWQHOg7hcvPapiMlrwIaaPcHURo","kid":"x"}]}"#;
    assert!(
        KeySet::from_jwks(&Jwks::from_json(mixed.as_bytes()).unwrap())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn every_single_bit_change_is_rejected() {
    let k = keys();
    for signer in [&k.hs, &k.ed] {
        let token = signer.sign_claims(&claims()).unwrap();
        for i in 0..token.len() {
            for bit in 0..8 {
                let mut bytes = token.clone().into_bytes();
                bytes[i] ^= 1 << bit;
                if let Ok(tampered) = String::from_utf8(bytes) {
                    assert!(
                        k.set.verify(&tampered, &validation(), NOW).is_err(),
                        "{:?}: flip of byte {i} bit {bit} accepted",
                        signer.algorithm()
                    );
                }
            }
        }
    }
}

fn arb_claims() -> impl Strategy<Value = Claims> {
    (
        "[a-z0-9-]{1,20}",
        "[a-z0-9-]{1,20}",
        proptest::option::of("[a-z0-9-]{1,10}"),
        proptest::collection::vec("[a-z:]{1,12}", 0..4),
        0i64..4_000_000_000,
    )
        .prop_map(|(sub, tenant, device, scopes, now)| {
            let mut c = Claims::new("https://caas.example", sub, "caas", tenant, now, 600)
                .unwrap()
                .with_scopes(scopes);
            c.device = device;
            c
        })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn round_trip(c in arb_claims(), ed in any::<bool>()) {
        let k = keys();
        let signer = if ed { &k.ed } else { &k.hs };
        let token = signer.sign_claims(&c).unwrap();
        prop_assert_eq!(k.set.verify(&token, &validation(), c.iat).unwrap(), c);
    }

    #[test]
    fn any_single_bit_change_is_rejected(c in arb_claims(), ed in any::<bool>(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let k = keys();
        let signer = if ed { &k.ed } else { &k.hs };
        let token = signer.sign_claims(&c).unwrap();
        let mut bytes = token.into_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        if let Ok(tampered) = String::from_utf8(bytes) {
            prop_assert!(k.set.verify(&tampered, &validation(), c.iat).is_err());
        }
    }

    #[test]
    fn arbitrary_text_never_panics(s in "[A-Za-z0-9_.=+/-]{0,200}|.{0,200}") {
        let k = keys();
        prop_assert!(k.set.verify(&s, &validation(), NOW).is_err());
        prop_assert!(jws::verify(&s, &k.hs.verification_key(), 1024).is_err());
    }

    #[test]
    fn arbitrary_headers_and_payloads_never_panic(
        header in proptest::collection::vec(any::<u8>(), 0..80),
        payload in proptest::collection::vec(any::<u8>(), 0..80),
    ) {
        let k = keys();
        let token = jws::sign_with_header(&k.hs, &header, &payload);
        let _ = k.set.verify(&token, &validation(), NOW);
    }
}
