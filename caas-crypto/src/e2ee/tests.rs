use std::collections::HashMap;

use proptest::prelude::*;

use super::*;
use crate::Error;

/// A stand-in for the server's key directory: it sees only JSON uploads and
/// hands out bundles, one one-time prekey per claim.
#[derive(Default)]
struct KeyDirectory {
    devices: HashMap<(String, String), DeviceKeys>,
}

impl KeyDirectory {
    fn publish(&mut self, json: &[u8]) -> crate::Result<()> {
        let keys = DeviceKeys::from_json(json)?;
        self.devices
            .insert((keys.user_id.clone(), keys.device_id.clone()), keys);
        Ok(())
    }

    fn claim(&mut self, user: &str, device: &str) -> Vec<u8> {
        let keys = self.devices.get_mut(&(user.into(), device.into())).unwrap();
        let otk = keys.take_one_time_prekey();
        serde_json::to_vec(&keys.bundle(otk)).unwrap()
    }
}

fn upload(dir: &mut KeyDirectory, device: &LocalDevice) {
    let json = serde_json::to_vec(&device.device_keys().unwrap()).unwrap();
    dir.publish(&json).unwrap();
}

/// Relays a prekey message through its wire form.
fn relay_initial(m: &PreKeyMessage) -> PreKeyMessage {
    PreKeyMessage::from_bytes(&m.to_bytes()).unwrap()
}

fn relay(m: &RatchetMessage) -> RatchetMessage {
    RatchetMessage::from_bytes(&m.to_bytes()).unwrap()
}

#[test]
fn two_devices_converse_through_the_directory() {
    let mut dir = KeyDirectory::default();
    let alice = LocalDevice::generate("alice", "phone", 5).unwrap();
    let mut bob = LocalDevice::generate("bob", "laptop", 5).unwrap();
    upload(&mut dir, &alice);
    upload(&mut dir, &bob);

    let bundle = PreKeyBundle::from_json(&dir.claim("bob", "laptop")).unwrap();
    assert!(bundle.one_time_prekey.is_some());
    assert_eq!(
        dir.devices[&("bob".into(), "laptop".into())]
            .one_time_prekeys
            .len(),
        4
    );

    let (mut a, initial) = x3dh::initiate(&alice, &bundle, b"hi bob").unwrap();
    let (mut b, first) = x3dh::respond(&mut bob, &relay_initial(&initial)).unwrap();
    assert_eq!(first, b"hi bob");
    assert_eq!(
        bob.one_time_prekeys_left(),
        4,
        "used one-time prekey destroyed"
    );

    // Alice sends two more before Bob answers; they arrive swapped.
    let a1 = a.encrypt(b"a1").unwrap();
    let a2 = a.encrypt(b"a2").unwrap();
    assert_eq!(b.decrypt(&relay(&a2)).unwrap(), b"a2");
    assert_eq!(b.decrypt(&relay(&a1)).unwrap(), b"a1");
    // Replies and several ratchet steps.
    for i in 0..4 {
        let from_b = b.encrypt(format!("b{i}").as_bytes()).unwrap();
        assert_eq!(
            a.decrypt(&relay(&from_b)).unwrap(),
            format!("b{i}").as_bytes()
        );
        let from_a = a.encrypt(format!("a{i}").as_bytes()).unwrap();
        assert_eq!(
            b.decrypt(&relay(&from_a)).unwrap(),
            format!("a{i}").as_bytes()
        );
    }
    // The server's copy of an initial message is useless to it.
    assert!(matches!(
        x3dh::respond(&mut bob, &relay_initial(&initial)),
        Err(Error::Replayed { .. })
    ));
}

#[test]
fn works_without_one_time_prekeys_and_rejects_replayed_initiation() {
    let alice = LocalDevice::generate("alice", "a", 0).unwrap();
    let mut bob = LocalDevice::generate("bob", "b", 0).unwrap();
    let mut keys = bob.device_keys().unwrap();
    assert!(keys.take_one_time_prekey().is_none());
    let bundle = keys.bundle(None);
    let (_, initial) = x3dh::initiate(&alice, &bundle, b"hello").unwrap();
    let (_, first) = x3dh::respond(&mut bob, &initial).unwrap();
    assert_eq!(first, b"hello");
    assert!(matches!(
        x3dh::respond(&mut bob, &initial),
        Err(Error::Replayed { .. })
    ));
}

#[test]
fn used_or_unknown_prekeys_are_rejected() {
    let alice = LocalDevice::generate("alice", "a", 0).unwrap();
    let mut bob = LocalDevice::generate("bob", "b", 1).unwrap();
    let mut keys = bob.device_keys().unwrap();
    let otk = keys.take_one_time_prekey();
    let bundle = keys.bundle(otk);
    let (_, first) = x3dh::initiate(&alice, &bundle, b"1").unwrap();
    let (_, second) = x3dh::initiate(&alice, &bundle, b"2").unwrap();
    x3dh::respond(&mut bob, &first).unwrap();
    // The server handed the same one-time prekey out twice: the second use fails.
    assert!(matches!(
        x3dh::respond(&mut bob, &second),
        Err(Error::KeyNotFound { .. })
    ));

    let mut wrong_spk = second.clone();
    wrong_spk.signed_prekey_id = 999;
    wrong_spk.one_time_prekey_id = None;
    assert!(matches!(
        x3dh::respond(&mut bob, &wrong_spk),
        Err(Error::KeyNotFound { .. })
    ));
}

#[test]
fn signed_prekey_rotation_keeps_one_previous() {
    let alice = LocalDevice::generate("alice", "a", 0).unwrap();
    let mut bob = LocalDevice::generate("bob", "b", 0).unwrap();
    let old_bundle = bob.device_keys().unwrap().bundle(None);
    bob.rotate_signed_prekey().unwrap();
    let (_, in_flight) = x3dh::initiate(&alice, &old_bundle, b"raced").unwrap();
    assert_eq!(x3dh::respond(&mut bob, &in_flight).unwrap().1, b"raced");
    bob.rotate_signed_prekey().unwrap();
    let (_, too_old) = x3dh::initiate(&alice, &old_bundle, b"late").unwrap();
    assert!(matches!(
        x3dh::respond(&mut bob, &too_old),
        Err(Error::KeyNotFound { .. })
    ));
}

#[test]
fn forged_bundles_are_rejected_by_the_initiator() {
    let alice = LocalDevice::generate("alice", "a", 0).unwrap();
    let bob = LocalDevice::generate("bob", "b", 1).unwrap();
    let mallory = LocalDevice::generate("bob", "b", 0).unwrap();
    let genuine = bob.device_keys().unwrap().bundle(None);

    // The server swaps in its own signed prekey.
    let mut swapped_spk = genuine.clone();
    swapped_spk.signed_prekey = mallory.device_keys().unwrap().signed_prekey;
    // ... or its own agreement key under Bob's signing key.
    let mut swapped_agreement = genuine.clone();
    swapped_agreement.identity.agreement = mallory.identity().agreement;
    // ... or a low-order point as one-time prekey.
    let mut low_order = genuine.clone();
    low_order.one_time_prekey = Some(OneTimePreKey {
        id: 1,
        public: [0u8; 32],
    });
    for (bundle, why) in [
        (swapped_spk, "spk"),
        (swapped_agreement, "agreement"),
        (low_order, "low order"),
    ] {
        assert!(x3dh::initiate(&alice, &bundle, b"x").is_err(), "{why}");
    }
    // A wholesale substitution (mallory's own, valid bundle) is exactly what
    // safety numbers catch.
    let real = SafetyNumber::new("alice", alice.identity(), "bob", bob.identity());
    let fake = SafetyNumber::new("alice", alice.identity(), "bob", mallory.identity());
    assert_ne!(real, fake);
}

#[test]
fn upload_validation() {
    let bob = LocalDevice::generate("bob", "b", 3).unwrap();
    let good = bob.device_keys().unwrap();
    good.validate().unwrap();

    let mut bad_sig = good.clone();
    bad_sig.signed_prekey.signature[0] ^= 1;
    let mut bad_binding = good.clone();
    bad_binding.identity.signature[10] ^= 1;
    let mut dup_id = good.clone();
    dup_id.one_time_prekeys[1].id = dup_id.one_time_prekeys[0].id;
    let mut dup_key = good.clone();
    dup_key.one_time_prekeys[1].public = dup_key.one_time_prekeys[0].public;
    let mut reuses_spk = good.clone();
    reuses_spk.one_time_prekeys[0].public = reuses_spk.signed_prekey.public;
    let mut low_order = good.clone();
    low_order.one_time_prekeys[0].public = [0u8; 32];
    let mut too_many = good.clone();
    too_many.one_time_prekeys = LocalDevice::generate("bob", "b", MAX_ONE_TIME_PREKEYS + 1)
        .unwrap()
        .add_one_time_prekeys(MAX_ONE_TIME_PREKEYS + 1)
        .unwrap();
    let mut empty_user = good.clone();
    empty_user.user_id.clear();
    for (keys, why) in [
        (bad_sig, "spk signature"),
        (bad_binding, "identity binding"),
        (dup_id, "duplicate id"),
        (dup_key, "duplicate key"),
        (reuses_spk, "otk equals spk"),
        (low_order, "low order"),
        (too_many, "too many"),
        (empty_user, "empty user"),
    ] {
        let json = serde_json::to_vec(&keys).unwrap();
        assert!(DeviceKeys::from_json(&json).is_err(), "{why}");
    }
    assert!(matches!(
        DeviceKeys::from_json(&vec![b' '; MAX_DEVICE_KEYS_JSON_LEN + 1]),
        Err(Error::TooLarge { .. })
    ));
    let json = serde_json::to_string(&good).unwrap();
    assert!(
        json.contains(&crate::base64url::encode(good.identity.signing)),
        "keys are base64url"
    );
    let short_key = json.replace(&crate::base64url::encode(good.identity.signing), "AAAA");
    assert!(matches!(
        DeviceKeys::from_json(short_key.as_bytes()),
        Err(Error::Malformed { .. })
    ));
}

#[test]
fn safety_numbers_match_on_both_sides() {
    let alice = LocalDevice::generate("alice", "a", 0).unwrap();
    let bob = LocalDevice::generate("bob", "b", 0).unwrap();
    let at_alice = SafetyNumber::new("alice", alice.identity(), "bob", bob.identity());
    let at_bob = SafetyNumber::new("bob", bob.identity(), "alice", alice.identity());
    assert_eq!(at_alice, at_bob);
    assert_eq!(at_alice.digits().len(), 60);
    assert!(at_alice.digits().bytes().all(|b| b.is_ascii_digit()));
    assert_eq!(at_alice.to_string().split(' ').count(), 12);
    // Bound to user ids too.
    assert_ne!(
        at_alice,
        SafetyNumber::new("alice", alice.identity(), "carol", bob.identity())
    );

    let fp = alice.identity().fingerprint();
    assert_eq!(fp.len(), 8 * 4 + 7);
    assert_ne!(fp, bob.identity().fingerprint());
    assert!(format!("{:?}", alice.identity()).contains(&fp));
}

#[test]
fn debug_output_holds_no_private_keys() {
    let dev = LocalDevice::generate("u", "d", 1).unwrap();
    let debug = format!("{dev:?}");
    assert!(debug.contains("LocalDevice"));
    assert!(!debug.contains(&crate::base64url::encode(dev.agreement_secret().to_bytes())));
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..400)) {
        let _ = DeviceKeys::from_json(&bytes);
        let _ = PreKeyBundle::from_json(&bytes);
        if let Ok(m) = PreKeyMessage::from_bytes(&bytes) {
            let mut bob = LocalDevice::generate("bob", "b", 1).unwrap();
            prop_assert!(x3dh::respond(&mut bob, &m).is_err());
        }
    }
}

/// Exhaustive over every bit of one initial message: each flip must be
/// rejected, and must not consume the one-time prekey.
#[test]
fn every_single_bit_change_in_an_initial_message_is_rejected() {
    let alice = LocalDevice::generate("alice", "a", 0).unwrap();
    let mut bob = LocalDevice::generate("bob", "b", 1).unwrap();
    let mut keys = bob.device_keys().unwrap();
    let otk = keys.take_one_time_prekey();
    let (_, initial) = x3dh::initiate(&alice, &keys.bundle(otk), b"payload").unwrap();
    let bytes = initial.to_bytes();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.clone();
            tampered[i] ^= 1 << bit;
            let result =
                PreKeyMessage::from_bytes(&tampered).and_then(|m| x3dh::respond(&mut bob, &m));
            assert!(result.is_err(), "flip of byte {i} bit {bit} accepted");
        }
    }
    assert_eq!(x3dh::respond(&mut bob, &initial).unwrap().1, b"payload");
}
