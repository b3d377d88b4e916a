//! Public key material a device publishes, and its validation on upload.

use std::collections::HashSet;
use std::fmt;

use ring::signature::{ED25519, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// Most one-time prekeys accepted in one upload.
pub const MAX_ONE_TIME_PREKEYS: usize = 100;

/// Largest JSON document accepted for [`DeviceKeys`] or [`PreKeyBundle`].
pub const MAX_DEVICE_KEYS_JSON_LEN: usize = 32 * 1024;

const MAX_ID_LEN: usize = 128;

pub(crate) const IDENTITY_CONTEXT: &[u8] = b"caas.e2ee.identity.v1";
pub(crate) const SIGNED_PREKEY_CONTEXT: &[u8] = b"caas.e2ee.signed-prekey.v1";

/// A device's public identity: an Ed25519 signing key and an X25519
/// agreement key, bound together by a signature of the former over the
/// latter. Keys are base64url in JSON.
#[derive(Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdentityKey {
    /// Ed25519 public key.
    #[serde(with = "crate::base64url::array")]
    pub signing: [u8; 32],
    /// X25519 public key.
    #[serde(with = "crate::base64url::array")]
    pub agreement: [u8; 32],
    /// Ed25519 signature by `signing` over the context and `agreement`.
    #[serde(with = "crate::base64url::array")]
    pub signature: [u8; 64],
}

impl IdentityKey {
    pub(crate) fn binding_message(agreement: &[u8; 32]) -> Vec<u8> {
        [IDENTITY_CONTEXT, agreement].concat()
    }

    /// Checks the binding signature and that the agreement key is usable.
    pub fn verify(&self) -> Result<()> {
        self.verify_signature(&Self::binding_message(&self.agreement), &self.signature)?;
        super::check_x25519_public(&self.agreement)
    }

    pub(crate) fn verify_signature(&self, message: &[u8], signature: &[u8; 64]) -> Result<()> {
        UnparsedPublicKey::new(&ED25519, &self.signing)
            .verify(message, signature)
            .map_err(|_| Error::BadSignature)
    }

    /// Both public keys, as bound into X3DH's associated data and safety numbers.
    pub(crate) fn encode(&self) -> [u8; 64] {
        let mut out = [0u8; 64];
        out[..32].copy_from_slice(&self.signing);
        out[32..].copy_from_slice(&self.agreement);
        out
    }
}

impl fmt::Debug for IdentityKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "IdentityKey({})", self.fingerprint())
    }
}

/// A medium-term X25519 prekey signed by the identity's signing key.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignedPreKey {
    /// Id chosen by the device.
    pub id: u32,
    /// X25519 public key.
    #[serde(with = "crate::base64url::array")]
    pub public: [u8; 32],
    /// Ed25519 signature over the context, `id` and `public`.
    #[serde(with = "crate::base64url::array")]
    pub signature: [u8; 64],
}

impl SignedPreKey {
    pub(crate) fn signed_message(id: u32, public: &[u8; 32]) -> Vec<u8> {
        [SIGNED_PREKEY_CONTEXT, &id.to_be_bytes(), public].concat()
    }

    /// Checks the signature by `identity` and that the key is usable.
    pub fn verify(&self, identity: &IdentityKey) -> Result<()> {
        identity.verify_signature(
            &Self::signed_message(self.id, &self.public),
            &self.signature,
        )?;
        super::check_x25519_public(&self.public)
    }
}

/// A single-use X25519 prekey.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct OneTimePreKey {
    /// Id chosen by the device.
    pub id: u32,
    /// X25519 public key.
    #[serde(with = "crate::base64url::array")]
    pub public: [u8; 32],
}

/// What a device uploads (`PUT /v1/devices/{device_id}/keys`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeviceKeys {
    /// Owner.
    pub user_id: String,
    /// Device.
    pub device_id: String,
    /// Identity key.
    pub identity: IdentityKey,
    /// Current signed prekey.
    pub signed_prekey: SignedPreKey,
    /// Fresh one-time prekeys.
    #[serde(default)]
    pub one_time_prekeys: Vec<OneTimePreKey>,
}

impl DeviceKeys {
    /// Parses and validates an upload.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let keys: DeviceKeys = parse_json("device keys", json)?;
        keys.validate()?;
        Ok(keys)
    }

    /// Checks ids, the identity binding, the signed prekey's signature, and
    /// the one-time prekeys (count, unique ids, usable keys).
    pub fn validate(&self) -> Result<()> {
        check_id("user id", &self.user_id)?;
        check_id("device id", &self.device_id)?;
        self.identity.verify()?;
        self.signed_prekey.verify(&self.identity)?;
        if self.one_time_prekeys.len() > MAX_ONE_TIME_PREKEYS {
            return Err(Error::malformed(
                "device keys",
                format_args!("more than {MAX_ONE_TIME_PREKEYS} one-time prekeys"),
            ));
        }
        let mut ids = HashSet::new();
        let mut publics = HashSet::from([self.signed_prekey.public, self.identity.agreement]);
        for otk in &self.one_time_prekeys {
            if !ids.insert(otk.id) || !publics.insert(otk.public) {
                return Err(Error::malformed("device keys", "duplicate one-time prekey"));
            }
            super::check_x25519_public(&otk.public)?;
        }
        Ok(())
    }

    /// Removes and returns one one-time prekey, for a claim. `None` when the
    /// device has run out (X3DH then proceeds without one).
    pub fn take_one_time_prekey(&mut self) -> Option<OneTimePreKey> {
        if self.one_time_prekeys.is_empty() {
            None
        } else {
            Some(self.one_time_prekeys.remove(0))
        }
    }

    /// The bundle handed to a peer, with the one-time prekey claimed for it.
    pub fn bundle(&self, one_time_prekey: Option<OneTimePreKey>) -> PreKeyBundle {
        PreKeyBundle {
            user_id: self.user_id.clone(),
            device_id: self.device_id.clone(),
            identity: self.identity,
            signed_prekey: self.signed_prekey,
            one_time_prekey,
        }
    }
}

/// What a peer receives when claiming keys (`GET /v1/users/{user_id}/keys`),
/// one per device.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreKeyBundle {
    /// Owner.
    pub user_id: String,
    /// Device.
    pub device_id: String,
    /// Identity key.
    pub identity: IdentityKey,
    /// Signed prekey.
    pub signed_prekey: SignedPreKey,
    /// A one-time prekey, if any were left.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub one_time_prekey: Option<OneTimePreKey>,
}

impl PreKeyBundle {
    /// Parses and validates a bundle received from the key directory.
    pub fn from_json(json: &[u8]) -> Result<Self> {
        let bundle: PreKeyBundle = parse_json("prekey bundle", json)?;
        bundle.validate()?;
        Ok(bundle)
    }

    /// Checks the identity binding and the signed prekey's signature: a
    /// client must never run X3DH on a bundle the server could have forged.
    pub fn validate(&self) -> Result<()> {
        check_id("user id", &self.user_id)?;
        check_id("device id", &self.device_id)?;
        self.identity.verify()?;
        self.signed_prekey.verify(&self.identity)?;
        if let Some(otk) = &self.one_time_prekey {
            super::check_x25519_public(&otk.public)?;
        }
        Ok(())
    }
}

fn parse_json<T: serde::de::DeserializeOwned>(what: &'static str, json: &[u8]) -> Result<T> {
    if json.len() > MAX_DEVICE_KEYS_JSON_LEN {
        return Err(Error::TooLarge {
            what,
            len: json.len(),
            limit: MAX_DEVICE_KEYS_JSON_LEN,
        });
    }
    serde_json::from_slice(json).map_err(|e| Error::malformed(what, e))
}

fn check_id(what: &'static str, id: &str) -> Result<()> {
    if id.is_empty() || id.len() > MAX_ID_LEN || id.chars().any(char::is_control) {
        return Err(Error::malformed(
            what,
            "must be 1..=128 bytes without control characters",
        ));
    }
    Ok(())
}
