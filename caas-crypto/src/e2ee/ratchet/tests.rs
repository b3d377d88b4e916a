use proptest::prelude::*;

use super::*;
use crate::e2ee::generate_x25519;

/// Two sessions sharing an X3DH secret, without the X3DH step.
fn pair() -> (Session, Session) {
    let sk = [42u8; 32];
    let (spk, spk_public) = generate_x25519().unwrap();
    let alice = Session::initiator(&sk, spk_public, b"ad".to_vec()).unwrap();
    let bob = Session::responder(&sk, spk, b"ad".to_vec());
    (alice, bob)
}

fn send(from: &mut Session, text: &str) -> RatchetMessage {
    let msg = from.encrypt(text.as_bytes()).unwrap();
    // Every message crosses the wire in its binary form.
    RatchetMessage::from_bytes(&msg.to_bytes()).unwrap()
}

fn recv(to: &mut Session, msg: &RatchetMessage) -> String {
    String::from_utf8(to.decrypt(msg).unwrap()).unwrap()
}

#[test]
fn in_order_both_directions_across_ratchet_steps() {
    let (mut a, mut b) = pair();
    assert!(
        b.encrypt(b"too early").is_err(),
        "responder has no sending chain yet"
    );
    for round in 0..5 {
        for i in 0..3 {
            let m = send(&mut a, &format!("a{round}.{i}"));
            assert_eq!(recv(&mut b, &m), format!("a{round}.{i}"));
        }
        let m = send(&mut b, &format!("b{round}"));
        assert_eq!(recv(&mut a, &m), format!("b{round}"));
    }
    assert_eq!((a.skipped_keys(), b.skipped_keys()), (0, 0));
}

#[test]
fn out_of_order_within_and_across_chains() {
    let (mut a, mut b) = pair();
    let a0 = send(&mut a, "a0");
    let a1 = send(&mut a, "a1");
    let a2 = send(&mut a, "a2");
    assert_eq!(recv(&mut b, &a2), "a2");
    assert_eq!(b.skipped_keys(), 2);
    assert_eq!(recv(&mut b, &a0), "a0");

    // Bob replies (ratchet step), Alice answers in a new chain; a1 from the
    // old chain arrives last.
    let b0 = send(&mut b, "b0");
    assert_eq!(recv(&mut a, &b0), "b0");
    let a3 = send(&mut a, "a3");
    let a4 = send(&mut a, "a4");
    assert_eq!(recv(&mut b, &a4), "a4");
    assert_eq!(recv(&mut b, &a3), "a3");
    assert_eq!(recv(&mut b, &a1), "a1");
    assert_eq!(b.skipped_keys(), 0);
}

#[test]
fn messages_from_the_previous_chain_arrive_after_a_ratchet_step() {
    let (mut a, mut b) = pair();
    let first = send(&mut a, "first");
    assert_eq!(recv(&mut b, &first), "first");
    let b0 = send(&mut b, "b0");
    let late = send(&mut b, "late"); // same chain as b0
    assert_eq!(recv(&mut a, &b0), "b0");
    let a1 = send(&mut a, "a1");
    assert_eq!(recv(&mut b, &a1), "a1");
    let b2 = send(&mut b, "b2"); // new chain; header.pn = 2 tells Alice one is missing
    assert_eq!(recv(&mut a, &b2), "b2");
    assert_eq!(a.skipped_keys(), 1);
    assert_eq!(recv(&mut a, &late), "late");
}

#[test]
fn replays_are_rejected_and_harmless() {
    let (mut a, mut b) = pair();
    let m0 = send(&mut a, "m0");
    let m1 = send(&mut a, "m1");
    assert_eq!(recv(&mut b, &m1), "m1");
    assert_eq!(recv(&mut b, &m0), "m0");
    for m in [&m0, &m1] {
        assert!(matches!(b.decrypt(m), Err(Error::Replayed { .. })));
    }
    // Old-chain replay after a ratchet step.
    let r = send(&mut b, "r");
    assert_eq!(recv(&mut a, &r), "r");
    let m2 = send(&mut a, "m2");
    assert_eq!(recv(&mut b, &m2), "m2");
    assert!(matches!(b.decrypt(&m0), Err(Error::Replayed { .. })));
    // The session still works.
    let m3 = send(&mut a, "m3");
    assert_eq!(recv(&mut b, &m3), "m3");
}

#[test]
fn tampering_is_rejected_and_leaves_the_session_intact() {
    let (mut a, mut b) = pair();
    let m = send(&mut a, "hello");
    let mut bad_ct = m.clone();
    bad_ct.ciphertext[0] ^= 1;
    let mut bad_n = m.clone();
    bad_n.header.n = 1;
    let mut bad_dh = m.clone();
    bad_dh.header.dh[5] ^= 1;
    let mut bad_pn = m.clone();
    bad_pn.header.pn = 3;
    for bad in [&bad_ct, &bad_n, &bad_dh, &bad_pn] {
        assert!(b.decrypt(bad).is_err());
    }
    assert_eq!(b.skipped_keys(), 0);
    assert_eq!(recv(&mut b, &m), "hello");
    // A message sealed for another session's associated data fails.
    let (mut c, _) = pair();
    let foreign = send(&mut c, "x");
    assert!(b.decrypt(&foreign).is_err());
}

#[test]
fn skipped_keys_are_bounded() {
    let (mut a, mut b) = pair();
    let m0 = send(&mut a, "m0");
    assert_eq!(recv(&mut b, &m0), "m0");
    let mut far = send(&mut a, "far");
    far.header.n = MAX_SKIP + 2;
    assert!(matches!(
        b.decrypt(&far),
        Err(Error::TooManySkippedMessages { .. })
    ));
    assert_eq!(b.skipped_keys(), 0, "a rejected message stores nothing");

    // Skip exactly MAX_SKIP three times across three chains: the store is
    // capped at MAX_STORED_SKIPPED by dropping the oldest keys.
    let (mut a, mut b) = pair();
    let mut first_of_chain = Vec::new();
    for round in 0..3 {
        let mut last = None;
        for i in 0..=MAX_SKIP {
            let m = send(&mut a, &format!("{round}.{i}"));
            if i == 0 {
                first_of_chain.push(m.clone());
            }
            last = Some(m);
        }
        let last = last.unwrap();
        assert_eq!(recv(&mut b, &last), format!("{round}.{MAX_SKIP}"));
        let reply = send(&mut b, "ack");
        assert_eq!(recv(&mut a, &reply), "ack");
    }
    assert_eq!(b.skipped_keys(), MAX_STORED_SKIPPED);
    // The oldest chain's keys were evicted; the newest are still there.
    assert!(b.decrypt(&first_of_chain[0]).is_err());
    assert_eq!(recv(&mut b, &first_of_chain[2]), "2.0");
}

/// Forward secrecy by construction: an attacker who steals Bob's whole
/// session state after he read a message cannot read that message, with the
/// stolen keys used every way the protocol allows.
#[test]
fn later_compromise_does_not_open_earlier_messages() {
    let (mut a, mut b) = pair();
    // The chain and message keys that protect `early`, taken from Alice's
    // state: exactly what an attacker would need.
    let early_ck = a.send_chain.clone().unwrap();
    let (_, early_mk) = kdf_ck(&early_ck);
    let early = send(&mut a, "early secret");
    assert!(open(&early_mk, &a.ad, &early.header, &early.ciphertext).is_ok());
    assert_eq!(recv(&mut b, &early), "early secret");

    // More traffic: ratchet steps both ways, a pending skipped key.
    for i in 0..3 {
        let m = send(&mut b, &format!("b{i}"));
        assert_eq!(recv(&mut a, &m), format!("b{i}"));
        let m = send(&mut a, &format!("a{i}"));
        assert_eq!(recv(&mut b, &m), format!("a{i}"));
    }
    let _unread = send(&mut a, "unread");
    let read = send(&mut a, "read");
    assert_eq!(recv(&mut b, &read), "read");

    let stolen = b.duplicate();
    // 1. The stolen session refuses the old message.
    assert!(stolen.duplicate().decrypt(&early).is_err());
    // 2. No key in the stolen state, nor any key derivable forward from its
    //    chains, opens it.
    let mut candidates: Vec<[u8; 32]> = stolen.skipped.iter().map(|k| *k.mk).collect();
    for chain in [&stolen.recv_chain, &stolen.send_chain]
        .into_iter()
        .flatten()
    {
        let mut ck = chain.clone();
        for _ in 0..50 {
            let (next, mk) = kdf_ck(&ck);
            candidates.push(*mk);
            ck = next;
        }
    }
    candidates.push(*stolen.root);
    candidates.push(stolen.dh_self.to_bytes());
    assert!(!candidates.is_empty());
    for key in &candidates {
        assert!(open(key, &stolen.ad, &early.header, &early.ciphertext).is_err());
        assert_ne!(key, &*early_ck, "an early chain key survived");
        assert_ne!(key, &*early_mk, "an early message key survived");
    }
    // 3. The ratchet key Bob used when `early` arrived is gone: DH with the
    //    stolen private key cannot recompute the early receiving chain.
    assert_ne!(stolen.dh_remote, Some(early.header.dh));
}

#[test]
fn every_single_bit_change_is_rejected() {
    let (mut a, mut b) = pair();
    let first = send(&mut a, "first");
    assert_eq!(recv(&mut b, &first), "first");
    let reply = send(&mut b, "reply"); // carries a fresh ratchet key
    let bytes = reply.to_bytes();
    for i in 0..bytes.len() {
        for bit in 0..8 {
            let mut tampered = bytes.clone();
            tampered[i] ^= 1 << bit;
            let opened = RatchetMessage::from_bytes(&tampered).and_then(|m| a.decrypt(&m));
            assert!(opened.is_err(), "flip of byte {i} bit {bit} accepted");
        }
    }
    assert_eq!(recv(&mut a, &reply), "reply");
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]

    #[test]
    fn any_single_bit_change_is_rejected(text in proptest::collection::vec(any::<u8>(), 0..64), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
        let (mut a, mut b) = pair();
        let mut bytes = a.encrypt(&text).unwrap().to_bytes();
        let i = pos.index(bytes.len());
        bytes[i] ^= 1 << bit;
        let opened = RatchetMessage::from_bytes(&bytes).and_then(|m| b.decrypt(&m));
        prop_assert!(opened.is_err());
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..120)) {
        let (_, mut b) = pair();
        if let Ok(m) = RatchetMessage::from_bytes(&bytes) {
            prop_assert!(b.decrypt(&m).is_err());
        }
    }

    #[test]
    fn any_delivery_order_decrypts(order in Just((0..12usize).collect::<Vec<_>>()).prop_shuffle()) {
        let (mut a, mut b) = pair();
        let first = send(&mut a, "hello");
        prop_assert_eq!(recv(&mut b, &first), "hello");
        let msgs: Vec<_> = (0..12).map(|i| send(&mut a, &i.to_string())).collect();
        for i in order {
            prop_assert_eq!(recv(&mut b, &msgs[i]), i.to_string());
        }
        prop_assert_eq!(b.skipped_keys(), 0);
    }
}
