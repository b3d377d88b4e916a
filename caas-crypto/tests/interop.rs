//! Interoperability with an independent JWT implementation (PyJWT), in both
//! directions.
//!
//! Needs `CAAS_TEST_PYTHON`: a Python with `tests/interop/requirements.txt`
//! installed. Without it the tests print why and pass, unless
//! `CAAS_REQUIRE_INTEGRATION=1`, which turns the missing interpreter into a
//! failure.

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::Once;
use std::time::{SystemTime, UNIX_EPOCH};

use caas_crypto::jwt::{Claims, Jwk, Jwks, KeySet, SigningKey, Validation, VerificationKey};
use caas_crypto::{Error, KeyId};
use serde_json::{Value, json};

const ISSUER: &str = "https://caas.example";
const AUDIENCE: &str = "caas";
const HS_SECRET: [u8; 32] = *b"tenant-1 shared secret, 32 bytes";

fn python() -> Option<PathBuf> {
    static SKIP_NOTICE: Once = Once::new();
    match std::env::var_os("CAAS_TEST_PYTHON") {
        Some(path) => Some(path.into()),
        None if std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() == Ok("1") => {
            panic!("CAAS_REQUIRE_INTEGRATION=1 but CAAS_TEST_PYTHON is not set")
        }
        None => {
            // Written to the stderr handle directly so the harness does not
            // swallow it.
            SKIP_NOTICE.call_once(|| {
                let _ = writeln!(
                    std::io::stderr(),
                    "caas-crypto interop: CAAS_TEST_PYTHON not set, skipping the PyJWT interop tests"
                );
            });
            None
        }
    }
}

fn pyjwt(python: &PathBuf, request: Value) -> Value {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/interop/jwt_interop.py");
    let mut child = Command::new(python)
        .arg(script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", python.display()));
    child
        .stdin
        .take()
        .unwrap()
        .write_all(request.to_string().as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "jwt_interop.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

fn now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
        .try_into()
        .unwrap()
}

fn claims() -> Claims {
    Claims::new(ISSUER, "user-1", AUDIENCE, "tenant-1", now(), 600)
        .unwrap()
        .with_device("phone")
        .with_scopes(["messages:read", "messages:write"])
}

fn kid(s: &str) -> KeyId {
    KeyId::new(s).unwrap()
}

fn secret_b64() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(HS_SECRET)
}

fn validation() -> Validation {
    Validation::new(ISSUER, AUDIENCE)
}

#[test]
fn rust_hs256_token_verifies_in_pyjwt() {
    let Some(py) = python() else { return };
    let key = SigningKey::hs256(kid("tenant-1.v1"), &HS_SECRET).unwrap();
    let c = claims();
    let token = key.sign_claims(&c).unwrap();
    let res = pyjwt(
        &py,
        json!({"op": "verify", "token": token, "secret": secret_b64(), "audience": AUDIENCE, "issuer": ISSUER}),
    );
    assert_eq!(res["ok"], true, "{res}");
    assert_eq!(res["claims"], serde_json::to_value(&c).unwrap());
}

#[test]
fn rust_eddsa_token_verifies_in_pyjwt_via_jwks() {
    let Some(py) = python() else { return };
    let old = SigningKey::generate_ed25519(kid("platform.v1")).unwrap();
    let current = SigningKey::generate_ed25519(kid("platform.v2")).unwrap();
    let mut set = KeySet::new();
    set.insert(old.verification_key());
    set.insert(current.verification_key());
    set.insert(
        SigningKey::hs256(kid("never-published"), &HS_SECRET)
            .unwrap()
            .verification_key(),
    );
    let jwks: Value = serde_json::from_str(&set.jwks().to_json().unwrap()).unwrap();
    assert_eq!(jwks["keys"].as_array().unwrap().len(), 2);

    for key in [&old, &current] {
        let c = claims();
        let token = key.sign_claims(&c).unwrap();
        let res = pyjwt(
            &py,
            json!({"op": "verify", "token": token, "jwks": jwks, "audience": AUDIENCE, "issuer": ISSUER}),
        );
        assert_eq!(res["ok"], true, "{res}");
        assert_eq!(res["claims"]["jti"], c.jti.as_str());
    }
}

#[test]
fn pyjwt_rejects_tampered_rust_tokens() {
    let Some(py) = python() else { return };
    let hs = SigningKey::hs256(kid("tenant-1.v1"), &HS_SECRET).unwrap();
    let ed = SigningKey::generate_ed25519(kid("platform.v1")).unwrap();
    let mut set = KeySet::new();
    set.insert(ed.verification_key());
    let jwks: Value = serde_json::from_str(&set.jwks().to_json().unwrap()).unwrap();

    // Swap in a payload naming another user, keeping the original signature.
    let mut forged_claims = claims();
    forged_claims.sub = "admin".into();
    let forged_payload = {
        use base64::Engine as _;
        base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(serde_json::to_vec(&forged_claims).unwrap())
    };
    for (key, verifier) in [
        (&hs, json!({"secret": secret_b64()})),
        (&ed, json!({"jwks": jwks})),
    ] {
        let token = key.sign_claims(&claims()).unwrap();
        let parts: Vec<&str> = token.split('.').collect();
        let tampered = format!("{}.{}.{}", parts[0], forged_payload, parts[2]);
        let mut req =
            json!({"op": "verify", "token": tampered, "audience": AUDIENCE, "issuer": ISSUER});
        req.as_object_mut()
            .unwrap()
            .extend(verifier.as_object().unwrap().clone());
        let res = pyjwt(&py, req);
        assert_eq!(res["ok"], false, "{res}");
        assert_eq!(res["error"], "InvalidSignatureError", "{res}");
    }
}

#[test]
fn pyjwt_hs256_token_verifies_in_rust() {
    let Some(py) = python() else { return };
    let c = claims();
    let res = pyjwt(
        &py,
        json!({"op": "sign", "alg": "HS256", "kid": "tenant-1.v1", "secret": secret_b64(), "claims": c}),
    );
    assert_eq!(res["ok"], true, "{res}");
    let mut set = KeySet::new();
    set.insert(VerificationKey::hs256(kid("tenant-1.v1"), &HS_SECRET).unwrap());
    let token = res["token"].as_str().unwrap();
    assert_eq!(set.verify(token, &validation(), now()).unwrap(), c);

    // A different secret under the same kid fails.
    let mut wrong = KeySet::new();
    wrong.insert(VerificationKey::hs256(kid("tenant-1.v1"), &[1u8; 32]).unwrap());
    assert!(matches!(
        wrong.verify(token, &validation(), now()),
        Err(Error::BadSignature)
    ));
}

#[test]
fn pyjwt_eddsa_token_verifies_in_rust_from_its_jwk() {
    let Some(py) = python() else { return };
    let c = claims();
    let res = pyjwt(
        &py,
        json!({"op": "sign", "alg": "EdDSA", "kid": "python-ed", "claims": c}),
    );
    assert_eq!(res["ok"], true, "{res}");
    let jwk: Jwk = serde_json::from_value(res["jwk"].clone()).unwrap();
    let set = KeySet::from_jwks(&Jwks { keys: vec![jwk] }).unwrap();
    let token = res["token"].as_str().unwrap();
    assert_eq!(set.verify(token, &validation(), now()).unwrap(), c);
    assert!(matches!(
        set.verify(token, &Validation::new(ISSUER, "someone-else"), now()),
        Err(Error::WrongAudience { .. })
    ));
}

#[test]
fn pyjwt_unsigned_token_is_rejected_by_rust() {
    let Some(py) = python() else { return };
    let res = pyjwt(
        &py,
        json!({"op": "sign", "alg": "none", "kid": "tenant-1.v1", "claims": claims()}),
    );
    assert_eq!(res["ok"], true, "{res}");
    let mut set = KeySet::new();
    set.insert(VerificationKey::hs256(kid("tenant-1.v1"), &HS_SECRET).unwrap());
    assert!(matches!(
        set.verify(res["token"].as_str().unwrap(), &validation(), now()),
        Err(Error::UnsupportedAlgorithm { .. })
    ));
}
