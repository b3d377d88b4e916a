use serde::{Deserialize, Serialize};

use crate::ids::{DeviceId, UserId};

/// A signed prekey: an X25519 public key signed by the device's identity key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SignedPrekey {
    /// The device's id for this key.
    pub key_id: u32,
    /// The public key (base64url).
    pub public_key: String,
    /// The identity key's signature over it (base64url).
    pub signature: String,
}

/// A one-time prekey, handed out at most once.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct OneTimePrekey {
    /// The device's id for this key.
    pub key_id: u32,
    /// The public key (base64url).
    pub public_key: String,
}

/// What a device publishes. The core stores key material as opaque strings; checking
/// signatures is the job of a [`crate::ports::KeyVerifier`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DeviceKeys {
    /// Ed25519 identity signing key (base64url).
    pub identity_signing_key: String,
    /// X25519 identity agreement key (base64url).
    pub identity_agreement_key: String,
    /// The signing key's signature binding the agreement key to it (base64url).
    pub identity_signature: String,
    /// The current signed prekey.
    pub signed_prekey: SignedPrekey,
    /// One-time prekeys to add to the device's pool.
    #[serde(default)]
    pub one_time_prekeys: Vec<OneTimePrekey>,
}

/// What a claimer gets for one device: enough to start an X3DH session.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct KeyBundle {
    /// The user.
    pub user: UserId,
    /// The device.
    pub device: DeviceId,
    /// Ed25519 identity signing key.
    pub identity_signing_key: String,
    /// X25519 identity agreement key.
    pub identity_agreement_key: String,
    /// The binding signature of the identity keys.
    pub identity_signature: String,
    /// The signed prekey.
    pub signed_prekey: SignedPrekey,
    /// One one-time prekey, if the pool was not empty; never handed out twice.
    pub one_time_prekey: Option<OneTimePrekey>,
}
