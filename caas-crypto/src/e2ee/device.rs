//! A client device's private key material (reference client only: the
//! server never holds any of this).

use std::collections::{BTreeMap, HashSet, VecDeque};
use std::fmt;

use ring::signature::{Ed25519KeyPair, KeyPair as _};
use x25519_dalek::StaticSecret;
use zeroize::Zeroizing;

use super::bundle::{DeviceKeys, IdentityKey, OneTimePreKey, SignedPreKey};
use crate::{Error, Result};

/// Signed prekeys kept after rotation, so messages that raced the rotation
/// still open.
const KEPT_SIGNED_PREKEYS: usize = 2;

/// Ephemeral keys of accepted X3DH initiations remembered to reject replays
/// of an initial message that used no one-time prekey.
const REMEMBERED_INITIATIONS: usize = 1024;

/// One device's identity, signed prekeys and unused one-time prekeys.
pub struct LocalDevice {
    user_id: String,
    device_id: String,
    signing: Ed25519KeyPair,
    agreement: StaticSecret,
    identity: IdentityKey,
    signed_prekeys: VecDeque<(SignedPreKey, StaticSecret)>,
    one_time_prekeys: BTreeMap<u32, (OneTimePreKey, StaticSecret)>,
    next_prekey_id: u32,
    seen_initiations: VecDeque<[u8; 32]>,
    seen_set: HashSet<[u8; 32]>,
}

impl LocalDevice {
    /// A new device with fresh keys and `one_time_prekeys` one-time prekeys.
    pub fn generate(
        user_id: impl Into<String>,
        device_id: impl Into<String>,
        one_time_prekeys: usize,
    ) -> Result<Self> {
        let seed = Zeroizing::new(crate::random::array::<32>()?);
        let signing =
            Ed25519KeyPair::from_seed_unchecked(&*seed).map_err(|_| Error::InvalidKey {
                reason: "Ed25519 seed rejected",
            })?;
        let (agreement, agreement_public) = super::generate_x25519()?;
        let mut signing_public = [0u8; 32];
        signing_public.copy_from_slice(signing.public_key().as_ref());
        let signature = sign(&signing, &IdentityKey::binding_message(&agreement_public));
        let mut device = LocalDevice {
            user_id: user_id.into(),
            device_id: device_id.into(),
            signing,
            agreement,
            identity: IdentityKey {
                signing: signing_public,
                agreement: agreement_public,
                signature,
            },
            signed_prekeys: VecDeque::new(),
            one_time_prekeys: BTreeMap::new(),
            next_prekey_id: 1,
            seen_initiations: VecDeque::new(),
            seen_set: HashSet::new(),
        };
        device.rotate_signed_prekey()?;
        device.add_one_time_prekeys(one_time_prekeys)?;
        Ok(device)
    }

    /// The owner.
    pub fn user_id(&self) -> &str {
        &self.user_id
    }

    /// The device id.
    pub fn device_id(&self) -> &str {
        &self.device_id
    }

    /// The public identity.
    pub fn identity(&self) -> &IdentityKey {
        &self.identity
    }

    fn next_id(&mut self) -> Result<u32> {
        let id = self.next_prekey_id;
        self.next_prekey_id = id
            .checked_add(1)
            .ok_or_else(|| Error::param("prekey ids exhausted"))?;
        Ok(id)
    }

    /// Makes a new signed prekey current; the previous one is kept for
    /// in-flight initiations, older ones are destroyed.
    pub fn rotate_signed_prekey(&mut self) -> Result<SignedPreKey> {
        let id = self.next_id()?;
        let (secret, public) = super::generate_x25519()?;
        let signed = SignedPreKey {
            id,
            public,
            signature: sign(&self.signing, &SignedPreKey::signed_message(id, &public)),
        };
        self.signed_prekeys.push_back((signed, secret));
        while self.signed_prekeys.len() > KEPT_SIGNED_PREKEYS {
            self.signed_prekeys.pop_front();
        }
        Ok(signed)
    }

    /// Generates `count` more one-time prekeys and returns their public halves
    /// for upload.
    pub fn add_one_time_prekeys(&mut self, count: usize) -> Result<Vec<OneTimePreKey>> {
        let mut added = Vec::with_capacity(count);
        for _ in 0..count {
            let id = self.next_id()?;
            let (secret, public) = super::generate_x25519()?;
            let otk = OneTimePreKey { id, public };
            self.one_time_prekeys.insert(id, (otk, secret));
            added.push(otk);
        }
        Ok(added)
    }

    /// The upload document: identity, current signed prekey and every unused
    /// one-time prekey (at most [`super::MAX_ONE_TIME_PREKEYS`]).
    pub fn device_keys(&self) -> Result<DeviceKeys> {
        let (signed_prekey, _) = self
            .signed_prekeys
            .back()
            .ok_or_else(|| Error::param("device has no signed prekey"))?;
        Ok(DeviceKeys {
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
            identity: self.identity,
            signed_prekey: *signed_prekey,
            one_time_prekeys: self
                .one_time_prekeys
                .values()
                .map(|(otk, _)| *otk)
                .take(super::MAX_ONE_TIME_PREKEYS)
                .collect(),
        })
    }

    /// Number of unused one-time prekeys.
    pub fn one_time_prekeys_left(&self) -> usize {
        self.one_time_prekeys.len()
    }

    pub(crate) fn agreement_secret(&self) -> &StaticSecret {
        &self.agreement
    }

    pub(crate) fn signed_prekey(&self, id: u32) -> Option<&(SignedPreKey, StaticSecret)> {
        self.signed_prekeys.iter().find(|(spk, _)| spk.id == id)
    }

    pub(crate) fn one_time_secret(&self, id: u32) -> Option<&StaticSecret> {
        self.one_time_prekeys.get(&id).map(|(_, secret)| secret)
    }

    pub(crate) fn initiation_seen(&self, ephemeral: &[u8; 32]) -> bool {
        self.seen_set.contains(ephemeral)
    }

    /// Records an accepted initiation: its one-time prekey is destroyed (the
    /// heart of X3DH's forward secrecy for the first message) and its
    /// ephemeral key remembered.
    pub(crate) fn accept_initiation(&mut self, ephemeral: [u8; 32], one_time_prekey: Option<u32>) {
        if let Some(id) = one_time_prekey {
            self.one_time_prekeys.remove(&id);
        }
        if self.seen_set.insert(ephemeral) {
            self.seen_initiations.push_back(ephemeral);
        }
        while self.seen_initiations.len() > REMEMBERED_INITIATIONS {
            if let Some(old) = self.seen_initiations.pop_front() {
                self.seen_set.remove(&old);
            }
        }
    }
}

fn sign(key: &Ed25519KeyPair, message: &[u8]) -> [u8; 64] {
    let mut out = [0u8; 64];
    out.copy_from_slice(key.sign(message).as_ref());
    out
}

impl fmt::Debug for LocalDevice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LocalDevice")
            .field("user_id", &self.user_id)
            .field("device_id", &self.device_id)
            .field("identity", &self.identity)
            .field("one_time_prekeys", &self.one_time_prekeys.len())
            .finish_non_exhaustive()
    }
}
