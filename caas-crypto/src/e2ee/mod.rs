//! End-to-end encryption key material and a reference client.
//!
//! The server side needs only [`DeviceKeys`] (validated on upload) and
//! [`PreKeyBundle`] (handed out, one one-time prekey per claim): it stores
//! public keys and relays ciphertext, never plaintext.
//!
//! The client side is a reference implementation of Signal's X3DH
//! ([`x3dh`]) and Double Ratchet ([`ratchet`]) specifications, for tests,
//! the load generator and host apps that want a starting point:
//!
//! * each device has an identity made of an Ed25519 signing key and an X25519
//!   agreement key, the latter signed by the former (Signal uses one XEdDSA
//!   key for both; two keys keep every primitive standard);
//! * HKDF-SHA-256, HMAC-SHA-256, Ed25519 and ChaCha20-Poly1305 come from
//!   `ring`;
//! * X25519 comes from `x25519-dalek`, because ring's X25519 private keys are
//!   single-use ephemerals, and X3DH and the ratchet need private keys that
//!   perform several agreements (identity, signed-prekey, one-time-prekey and
//!   ratchet keys).

mod bundle;
mod device;
mod fingerprint;
pub mod ratchet;
pub mod x3dh;

pub use bundle::{
    DeviceKeys, IdentityKey, MAX_DEVICE_KEYS_JSON_LEN, MAX_ONE_TIME_PREKEYS, OneTimePreKey,
    PreKeyBundle, SignedPreKey,
};
pub use device::LocalDevice;
pub use fingerprint::SafetyNumber;
pub use ratchet::{RatchetMessage, Session};
pub use x3dh::PreKeyMessage;

use ring::hkdf;
use x25519_dalek::{PublicKey, StaticSecret};
use zeroize::Zeroizing;

use crate::{Error, Result};

/// X25519 with a check that the peer's key is not a low-order point (which
/// would make the shared secret all zeros, known to everyone).
pub(crate) fn x25519(secret: &StaticSecret, public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(Error::InvalidKey {
            reason: "low-order X25519 public key",
        });
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// Rejects low-order X25519 public keys at upload time. A clamped scalar is a
/// multiple of the cofactor, so any fixed one maps every low-order point to
/// the identity.
pub(crate) fn check_x25519_public(public: &[u8; 32]) -> Result<()> {
    let probe = StaticSecret::from([0x5a; 32]);
    x25519(&probe, public).map(drop)
}

/// A fresh X25519 key pair from the system RNG.
pub(crate) fn generate_x25519() -> Result<(StaticSecret, [u8; 32])> {
    let bytes = Zeroizing::new(crate::random::array::<32>()?);
    let secret = StaticSecret::from(*bytes);
    let public = PublicKey::from(&secret).to_bytes();
    Ok((secret, public))
}

struct Len(usize);

impl hkdf::KeyType for Len {
    fn len(&self) -> usize {
        self.0
    }
}

/// HKDF-SHA-256 (RFC 5869) filling `out`.
pub(crate) fn hkdf_sha256(salt: &[u8], ikm: &[u8], info: &[u8], out: &mut [u8]) -> Result<()> {
    hkdf::Salt::new(hkdf::HKDF_SHA256, salt)
        .extract(ikm)
        .expand(&[info], Len(out.len()))
        .and_then(|okm| okm.fill(out))
        .map_err(|_| Error::param("HKDF output too long"))
}

#[cfg(test)]
mod tests;
