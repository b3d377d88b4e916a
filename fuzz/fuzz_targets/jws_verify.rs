//! A compact JWS from the network: parsing and verifying never panics, and
//! nothing but a token this key signed verifies.
#![no_main]

use caas_crypto::KeyId;
use caas_crypto::jwt::VerificationKey;
use caas_crypto::jwt::jws;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(token) = std::str::from_utf8(data) else {
        return;
    };
    let Ok(kid) = KeyId::new("fuzz-key") else {
        return;
    };
    for key in [
        VerificationKey::ed25519(kid.clone(), [7; 32]),
        match VerificationKey::hs256(kid, &[9; 32]) {
            Ok(k) => k,
            Err(_) => return,
        },
    ] {
        // Nobody holds these keys' private halves in the corpus: a forged
        // token that verifies is a bug.
        if jws::verify(token, &key, 8 * 1024).is_ok() {
            panic!("a token verified under a key nobody signed with");
        }
    }
});
