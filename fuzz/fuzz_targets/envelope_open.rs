//! A sealed body read back from storage or a backup: parsing and opening
//! never panic, a tampered envelope never opens, and what opens is what was
//! sealed.
#![no_main]

use caas_crypto::KeyId;
use caas_crypto::envelope::{AeadAlgorithm, AssociatedData, DataKey, Envelope};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(id) = KeyId::new("dk_fuzz") else {
        return;
    };
    let Ok(key) = DataKey::from_bytes(id, AeadAlgorithm::Aes256Gcm, &[3; 32]) else {
        return;
    };
    let aad = AssociatedData::message("t", "c", "m");
    if let Ok(envelope) = Envelope::from_bytes(data) {
        // Arbitrary bytes are never a valid seal under this key.
        assert!(key.open(&aad, &envelope).is_err(), "forged envelope opened");
    }
    // And the same bytes as a body survive a seal/open round trip.
    if let Ok(sealed) = key.seal(&aad, data) {
        let again = Envelope::from_bytes(&sealed.to_bytes()).expect("own envelope parses");
        assert_eq!(key.open(&aad, &again).expect("own envelope opens"), data);
        let other = AssociatedData::message("t", "c", "other");
        assert!(
            key.open(&other, &again).is_err(),
            "opened under another message"
        );
    }
});
