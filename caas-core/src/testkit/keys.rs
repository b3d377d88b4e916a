//! Contract of [`KeyDirectory`](crate::ports::KeyDirectory).

use std::collections::BTreeSet;

use crate::ids::DeviceId;
use crate::model::{DeviceKeys, OneTimePrekey, SignedPrekey};
use crate::ports::Backends;
use crate::testkit::{tenant, user};

fn keys(tag: &str, otks: std::ops::Range<u32>) -> DeviceKeys {
    DeviceKeys {
        identity_signing_key: format!("sig-{tag}"),
        identity_agreement_key: format!("dh-{tag}"),
        identity_signature: format!("isig-{tag}"),
        signed_prekey: SignedPrekey {
            key_id: 1,
            public_key: format!("spk-{tag}"),
            signature: "s".into(),
        },
        one_time_prekeys: otks
            .map(|i| OneTimePrekey {
                key_id: i,
                public_key: format!("otk-{tag}-{i}"),
            })
            .collect(),
    }
}

fn dev(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

/// Publish then claim: one bundle per device, one-time keys taken from the pool.
pub async fn publish_and_claim(b: Backends) {
    let s = b.keys;
    let tn = tenant();
    let a = user("alice");
    assert_eq!(
        s.publish(&tn, &a, &dev("phone"), &keys("p", 0..2))
            .await
            .unwrap(),
        2
    );
    assert_eq!(
        s.publish(&tn, &a, &dev("laptop"), &keys("l", 0..1))
            .await
            .unwrap(),
        1
    );
    // Re-publishing known key ids adds nothing; new ones are added.
    assert_eq!(
        s.publish(&tn, &a, &dev("phone"), &keys("p", 1..3))
            .await
            .unwrap(),
        3
    );
    // A claim without one-time prekeys leaves the pools alone.
    let plain = s.claim(&tn, &a, false).await.unwrap();
    assert_eq!(plain.len(), 2);
    assert!(plain.iter().all(|b| b.one_time_prekey.is_none()));
    assert_eq!(s.one_time_count(&tn, &a, &dev("phone")).await.unwrap(), 3);
    let b = s.claim(&tn, &a, true).await.unwrap();
    let devices: Vec<_> = b.iter().map(|b| b.device.as_str()).collect();
    assert_eq!(devices, ["laptop", "phone"]);
    assert!(b.iter().all(|b| b.one_time_prekey.is_some() && b.user == a));
    assert_eq!(b[1].identity_signing_key, "sig-p");
    assert_eq!(s.one_time_count(&tn, &a, &dev("phone")).await.unwrap(), 2);
    // The laptop's pool is now empty: bundles still come, without a one-time key.
    let b2 = s.claim(&tn, &a, true).await.unwrap();
    assert!(b2[0].one_time_prekey.is_none());
    assert!(s.claim(&tenant(), &a, true).await.unwrap().is_empty());
    assert!(s.remove_device(&tn, &a, &dev("laptop")).await.unwrap());
    assert!(!s.remove_device(&tn, &a, &dev("laptop")).await.unwrap());
    assert_eq!(s.claim(&tn, &a, true).await.unwrap().len(), 1);
}

/// Concurrent claims never receive the same one-time prekey.
pub async fn one_time_keys_are_handed_out_once(b: Backends) {
    let s = b.keys;
    let tn = tenant();
    let a = user("alice");
    s.publish(&tn, &a, &dev("phone"), &keys("p", 0..20))
        .await
        .unwrap();
    let mut hs = Vec::new();
    for _ in 0..30 {
        let (s, tn, a) = (s.clone(), tn.clone(), a.clone());
        hs.push(tokio::spawn(async move {
            s.claim(&tn, &a, true).await.unwrap()
        }));
    }
    let mut seen = BTreeSet::new();
    let mut empty = 0;
    for h in hs {
        for b in h.await.unwrap() {
            match b.one_time_prekey {
                Some(k) => assert!(seen.insert(k.key_id), "key {} handed out twice", k.key_id),
                None => empty += 1,
            }
        }
    }
    assert_eq!(seen.len(), 20);
    assert_eq!(empty, 10);
}
