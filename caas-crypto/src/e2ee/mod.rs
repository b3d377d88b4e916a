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

/// X25519 with two checks on the peer's key: canonical encoding, and not a
/// low-order point (which would make the shared secret all zeros, known to
/// everyone).
///
/// RFC 7748 has X25519 ignore the top bit and reduce values ≥ p, so several
/// encodings give the same shared secret. Accepting only the canonical one
/// keeps keys usable as identifiers: otherwise a replayed X3DH initial message
/// with one flipped bit in its ephemeral key would look new.
pub(crate) fn x25519(secret: &StaticSecret, public: &[u8; 32]) -> Result<Zeroizing<[u8; 32]>> {
    if !is_canonical_x25519(public) {
        return Err(Error::InvalidKey {
            reason: "non-canonical X25519 public key",
        });
    }
    let shared = secret.diffie_hellman(&PublicKey::from(*public));
    if !shared.was_contributory() {
        return Err(Error::InvalidKey {
            reason: "low-order X25519 public key",
        });
    }
    Ok(Zeroizing::new(shared.to_bytes()))
}

/// Whether `u` (little-endian) is below p = 2²⁵⁵ − 19 with the top bit clear.
fn is_canonical_x25519(u: &[u8; 32]) -> bool {
    let top_bit_clear = u[31] & 0x80 == 0;
    let at_least_p = u[31] == 0x7f && u[1..31].iter().all(|b| *b == 0xff) && u[0] >= 0xed;
    top_bit_clear && !at_least_p
}

/// Rejects non-canonical and low-order X25519 public keys at upload time. A clamped scalar is a
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

#[cfg(test)]
mod x25519_tests {
    use super::*;

    #[test]
    fn canonical_encoding_is_required() {
        let (_, public) = generate_x25519().unwrap();
        assert!(check_x25519_public(&public).is_ok());
        let mut high_bit = public;
        high_bit[31] |= 0x80;
        assert!(check_x25519_public(&high_bit).is_err());
        // p itself and p + 1 are non-canonical spellings of 0 and 1.
        let mut p = [0xffu8; 32];
        p[31] = 0x7f;
        p[0] = 0xed;
        assert!(!is_canonical_x25519(&p));
        p[0] = 0xee;
        assert!(!is_canonical_x25519(&p));
        p[0] = 0xec; // p - 1
        assert!(is_canonical_x25519(&p));
    }

    #[test]
    fn low_order_points_are_rejected() {
        // 0, 1, and the order-8 point from RFC 7748's discussion.
        let mut order8 = [0u8; 32];
        order8.copy_from_slice(
            &[
                0xe0, 0xeb, 0x7a, 0x7c, 0x3b, 0x41, 0xb8, 0xae, 0x16, 0x56, 0xe3, 0xfa, 0xf1, 0x9f,
                0xc4, 0x6a, 0xda, 0x09, 0x8d, 0xeb, 0x9c, 0x32, 0xb1, 0xfd, 0x86, 0x62, 0x05, 0x16,
                0x5f, 0x49, 0xb8, 0x00,
            ][..],
        );
        let mut one = [0u8; 32];
        one[0] = 1;
        for bad in [[0u8; 32], one, order8] {
            assert!(matches!(
                check_x25519_public(&bad),
                Err(Error::InvalidKey { .. })
            ));
        }
    }
}
