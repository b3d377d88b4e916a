//! The E2EE key check the core asks for: uploaded key material is parsed and its
//! signatures verified with caas-crypto before the directory stores it.

use caas_core::model::DeviceKeys;
use caas_core::ports::KeyVerifier;
use caas_core::{Error, Result};

/// Verifies device keys with caas-crypto: the identity binding signature, the
/// signed prekey's signature, key encodings and unique one-time prekeys.
#[derive(Debug, Default, Clone, Copy)]
pub struct DeviceKeyVerifier;

impl KeyVerifier for DeviceKeyVerifier {
    fn verify(&self, keys: &DeviceKeys) -> Result<()> {
        // caas-crypto's wire form of the same keys; the ids only need to be well
        // formed here (the directory files the keys under the caller's ids).
        let wire = serde_json::json!({
            "user_id": "user",
            "device_id": "device",
            "identity": {
                "signing": keys.identity_signing_key,
                "agreement": keys.identity_agreement_key,
                "signature": keys.identity_signature,
            },
            "signed_prekey": {
                "id": keys.signed_prekey.key_id,
                "public": keys.signed_prekey.public_key,
                "signature": keys.signed_prekey.signature,
            },
            "one_time_prekeys": keys.one_time_prekeys.iter().map(|k| serde_json::json!({"id": k.key_id, "public": k.public_key})).collect::<Vec<_>>(),
        });
        let bytes = serde_json::to_vec(&wire)
            .map_err(|e| Error::internal(format!("encoding keys: {e}")))?;
        crate::e2ee::DeviceKeys::from_json(&bytes)
            .map(|_| ())
            .map_err(|e| Error::invalid("keys", e.to_string()))
    }
}
