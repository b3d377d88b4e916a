//! E2EE key claims: one-time prekeys are a pool each user refills; nobody may
//! drain another user's.

use std::sync::Arc;

use caas::core::ids::DeviceId;
use caas::core::model::{DeviceKeys, OneTimePrekey, SignedPrekey};
use caas::core::ports::KeyVerifier;

use crate::sets::{Set, on_every_set};
use crate::world::{World, uid};

on_every_set!(async claims_spend_one_time_prekeys_only_within_the_pair_and_target_budgets);

#[derive(Debug)]
struct AcceptAll;

impl KeyVerifier for AcceptAll {
    fn verify(&self, _: &DeviceKeys) -> caas::Result<()> {
        Ok(())
    }
}

fn keys(one_time: std::ops::Range<u32>) -> DeviceKeys {
    DeviceKeys {
        identity_signing_key: "ik".into(),
        identity_agreement_key: "dh".into(),
        identity_signature: "isig".into(),
        signed_prekey: SignedPrekey {
            key_id: 1,
            public_key: "spk".into(),
            signature: "sig".into(),
        },
        one_time_prekeys: one_time
            .map(|key_id| OneTimePrekey {
                key_id,
                public_key: format!("otk-{key_id}"),
            })
            .collect(),
    }
}

async fn claims_spend_one_time_prekeys_only_within_the_pair_and_target_budgets(set: Set) {
    let claimers: Vec<String> = (0..30).map(|i| format!("c{i}")).collect();
    let mut names: Vec<&str> = vec!["bob", "eve"];
    names.extend(claimers.iter().map(String::as_str));
    let w = World::new(set, &names).await;
    let caas = caas::Caas::new(w.caas.backends().clone(), caas::Config::default())
        .with_key_verifier(Arc::new(AcceptAll));
    let phone = DeviceId::parse("phone").unwrap();
    caas.publish_keys(&w.user("bob"), &phone, &keys(0..100))
        .await
        .unwrap();

    // One claimer, over and over: a few one-time prekeys, then bundles without.
    let mut eve_got = 0;
    for _ in 0..25 {
        let b = caas.claim_keys(&w.user("eve"), &uid("bob")).await.unwrap();
        assert_eq!(b.len(), 1, "a bundle every time");
        assert_eq!(b[0].signed_prekey.public_key, "spk");
        eve_got += usize::from(b[0].one_time_prekey.is_some());
    }
    assert!((1..=5).contains(&eve_got), "{eve_got}");

    // Many claimers: the target's budget bounds them together.
    let mut others_got = 0;
    for c in &claimers {
        let b = caas.claim_keys(&w.user(c), &uid("bob")).await.unwrap();
        others_got += usize::from(b[0].one_time_prekey.is_some());
    }
    assert!(others_got >= 1, "honest first contacts still get one");
    assert!(eve_got + others_got <= 20, "{eve_got} + {others_got}");
    let left = w
        .caas
        .backends()
        .keys
        .one_time_count(&w.tenant, &uid("bob"), &phone)
        .await
        .unwrap();
    assert_eq!(left, 100 - eve_got - others_got);
    assert!(left >= 80);

    // Claiming is rate limited per claimer too.
    let mut limited = false;
    for _ in 0..40 {
        limited |= matches!(
            caas.claim_keys(&w.user("c0"), &uid("bob")).await,
            Err(caas::Error::RateLimited { .. })
        );
    }
    assert!(limited);
}
