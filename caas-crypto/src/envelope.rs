//! AEAD envelopes for data at rest: AES-256-GCM or ChaCha20-Poly1305 under a
//! data key, a random 96-bit nonce, and associated data that binds each
//! ciphertext to its place (tenant, conversation, message id), so a ciphertext
//! copied to another row fails to open.
//!
//! Binary layout (version 1):
//!
//! ```text
//! 0x01 | alg (1 = AES-256-GCM, 2 = ChaCha20-Poly1305) | key id len | key id | nonce (12) | ciphertext ‖ tag (16)
//! ```
//!
//! The header (everything before the nonce) is authenticated together with
//! the caller's associated data, so the key id and algorithm cannot be swapped.
//!
//! Random nonces are safe up to about 2³² envelopes per data key; rotate data
//! keys well before that (see [`crate::keys`]).

use std::fmt;

use ring::aead::{self, Aad, LessSafeKey, Nonce, UnboundKey};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::{Error, KeyId, Result};

const VERSION: u8 = 1;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

/// The AEAD of an envelope.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum AeadAlgorithm {
    /// AES-256-GCM: fastest where AES instructions exist.
    #[serde(rename = "aes-256-gcm")]
    Aes256Gcm,
    /// ChaCha20-Poly1305: fast and constant-time everywhere.
    #[serde(rename = "chacha20-poly1305")]
    ChaCha20Poly1305,
}

impl AeadAlgorithm {
    fn ring(self) -> &'static aead::Algorithm {
        match self {
            AeadAlgorithm::Aes256Gcm => &aead::AES_256_GCM,
            AeadAlgorithm::ChaCha20Poly1305 => &aead::CHACHA20_POLY1305,
        }
    }

    pub(crate) fn code(self) -> u8 {
        match self {
            AeadAlgorithm::Aes256Gcm => 1,
            AeadAlgorithm::ChaCha20Poly1305 => 2,
        }
    }

    fn from_code(code: u8) -> Result<Self> {
        match code {
            1 => Ok(AeadAlgorithm::Aes256Gcm),
            2 => Ok(AeadAlgorithm::ChaCha20Poly1305),
            _ => Err(Error::malformed("envelope", "unknown algorithm")),
        }
    }
}

/// Context bound into a ciphertext: a label and length-prefixed parts, so
/// `("ab","c")` and `("a","bc")` differ.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AssociatedData(Vec<u8>);

impl AssociatedData {
    /// Starts with a label naming the kind of data, e.g. `caas.message.v1`.
    pub fn new(label: &str) -> Self {
        AssociatedData(Vec::new()).with(label.as_bytes())
    }

    /// Appends one part.
    pub fn with(mut self, part: &[u8]) -> Self {
        // Parts are ids, far below 4 GiB; saturate rather than wrap if not.
        let len = u32::try_from(part.len()).unwrap_or(u32::MAX);
        self.0.extend_from_slice(&len.to_be_bytes());
        self.0.extend_from_slice(part);
        self
    }

    /// The binding for a message body.
    pub fn message(tenant: &str, conversation: &str, message: &str) -> Self {
        AssociatedData::new("caas.message.v1")
            .with(tenant.as_bytes())
            .with(conversation.as_bytes())
            .with(message.as_bytes())
    }

    /// The encoded bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

/// A 256-bit data key that encrypts envelopes. Stored only wrapped by a
/// key-encryption key (see [`crate::keys`]).
pub struct DataKey {
    id: KeyId,
    algorithm: AeadAlgorithm,
    key: LessSafeKey,
    raw: Zeroizing<[u8; 32]>,
}

impl DataKey {
    /// A fresh random key.
    pub fn generate(id: KeyId, algorithm: AeadAlgorithm) -> Result<Self> {
        let raw = Zeroizing::new(crate::random::array::<32>()?);
        Self::from_bytes(id, algorithm, &raw)
    }

    /// From raw key bytes.
    pub fn from_bytes(id: KeyId, algorithm: AeadAlgorithm, bytes: &[u8; 32]) -> Result<Self> {
        let unbound = UnboundKey::new(algorithm.ring(), bytes).map_err(|_| Error::InvalidKey {
            reason: "AEAD key rejected",
        })?;
        Ok(DataKey {
            id,
            algorithm,
            key: LessSafeKey::new(unbound),
            raw: Zeroizing::new(*bytes),
        })
    }

    /// The key id written into each envelope.
    pub fn id(&self) -> &KeyId {
        &self.id
    }

    /// The AEAD.
    pub fn algorithm(&self) -> AeadAlgorithm {
        self.algorithm
    }

    pub(crate) fn expose_bytes(&self) -> &[u8; 32] {
        &self.raw
    }

    /// Encrypts `plaintext` bound to `aad`.
    pub fn seal(&self, aad: &AssociatedData, plaintext: &[u8]) -> Result<Envelope> {
        let nonce = crate::random::array::<NONCE_LEN>()?;
        let header = header(self.algorithm, &self.id);
        let mut ciphertext = Vec::with_capacity(plaintext.len() + TAG_LEN);
        ciphertext.extend_from_slice(plaintext);
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(full_aad(&header, aad)),
                &mut ciphertext,
            )
            .map_err(|_| Error::param("plaintext too long for AEAD"))?;
        Ok(Envelope {
            algorithm: self.algorithm,
            key_id: self.id.clone(),
            nonce,
            ciphertext,
        })
    }

    /// Decrypts an envelope sealed by this key with the same `aad`.
    pub fn open(&self, aad: &AssociatedData, envelope: &Envelope) -> Result<Vec<u8>> {
        if envelope.key_id != self.id {
            return Err(Error::KeyNotFound {
                key_id: envelope.key_id.to_string(),
            });
        }
        if envelope.algorithm != self.algorithm {
            return Err(Error::DecryptionFailed);
        }
        let header = header(envelope.algorithm, &envelope.key_id);
        let mut buf = envelope.ciphertext.clone();
        let plaintext = self
            .key
            .open_in_place(
                Nonce::assume_unique_for_key(envelope.nonce),
                Aad::from(full_aad(&header, aad)),
                &mut buf,
            )
            .map_err(|_| Error::DecryptionFailed)?;
        Ok(plaintext.to_vec())
    }
}

impl fmt::Debug for DataKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DataKey")
            .field("id", &self.id)
            .field("algorithm", &self.algorithm)
            .finish_non_exhaustive()
    }
}

fn header(algorithm: AeadAlgorithm, key_id: &KeyId) -> Vec<u8> {
    let id = key_id.as_str().as_bytes();
    let mut h = Vec::with_capacity(3 + id.len());
    h.push(VERSION);
    h.push(algorithm.code());
    // KeyId guarantees 1..=64 bytes.
    h.push(u8::try_from(id.len()).unwrap_or(u8::MAX));
    h.extend_from_slice(id);
    h
}

fn full_aad(header: &[u8], aad: &AssociatedData) -> Vec<u8> {
    let mut all = Vec::with_capacity(header.len() + aad.0.len());
    all.extend_from_slice(header);
    all.extend_from_slice(&aad.0);
    all
}

/// An encrypted value: which key and AEAD, the nonce, and ciphertext ‖ tag.
#[derive(Clone, PartialEq, Eq)]
pub struct Envelope {
    algorithm: AeadAlgorithm,
    key_id: KeyId,
    nonce: [u8; NONCE_LEN],
    ciphertext: Vec<u8>,
}

impl Envelope {
    /// The data key that opens it.
    pub fn key_id(&self) -> &KeyId {
        &self.key_id
    }

    /// The AEAD used.
    pub fn algorithm(&self) -> AeadAlgorithm {
        self.algorithm
    }

    /// The binary form (see the module docs).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = header(self.algorithm, &self.key_id);
        out.extend_from_slice(&self.nonce);
        out.extend_from_slice(&self.ciphertext);
        out
    }

    /// Parses the binary form; never panics on arbitrary input.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self> {
        const WHAT: &str = "envelope";
        let [version, alg, id_len, rest @ ..] = bytes else {
            return Err(Error::malformed(WHAT, "too short"));
        };
        if *version != VERSION {
            return Err(Error::malformed(WHAT, "unknown version"));
        }
        let algorithm = AeadAlgorithm::from_code(*alg)?;
        let id_len = usize::from(*id_len);
        let (id, rest) = rest
            .split_at_checked(id_len)
            .ok_or_else(|| Error::malformed(WHAT, "truncated key id"))?;
        let id = std::str::from_utf8(id).map_err(|_| Error::malformed(WHAT, "key id not UTF-8"))?;
        let key_id = KeyId::new(id)?;
        let (nonce, ciphertext) = rest
            .split_at_checked(NONCE_LEN)
            .ok_or_else(|| Error::malformed(WHAT, "truncated nonce"))?;
        if ciphertext.len() < TAG_LEN {
            return Err(Error::malformed(WHAT, "truncated ciphertext"));
        }
        let mut n = [0u8; NONCE_LEN];
        n.copy_from_slice(nonce);
        Ok(Envelope {
            algorithm,
            key_id,
            nonce: n,
            ciphertext: ciphertext.to_vec(),
        })
    }
}

impl fmt::Debug for Envelope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Envelope")
            .field("algorithm", &self.algorithm)
            .field("key_id", &self.key_id)
            .field("len", &self.ciphertext.len())
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn key(alg: AeadAlgorithm) -> DataKey {
        DataKey::generate(KeyId::new("dk_1").unwrap(), alg).unwrap()
    }

    const ALGS: [AeadAlgorithm; 2] = [AeadAlgorithm::Aes256Gcm, AeadAlgorithm::ChaCha20Poly1305];

    #[test]
    fn round_trip_both_algorithms() {
        for alg in ALGS {
            let k = key(alg);
            let aad = AssociatedData::message("t1", "c1", "m1");
            let env = k.seal(&aad, b"hello").unwrap();
            let parsed = Envelope::from_bytes(&env.to_bytes()).unwrap();
            assert_eq!(parsed, env);
            assert_eq!(k.open(&aad, &parsed).unwrap(), b"hello");
            assert_eq!(env.to_bytes().len(), 3 + 4 + 12 + 5 + 16);
        }
    }

    #[test]
    fn nonces_are_random() {
        let k = key(AeadAlgorithm::Aes256Gcm);
        let aad = AssociatedData::new("x");
        assert_ne!(
            k.seal(&aad, b"same").unwrap(),
            k.seal(&aad, b"same").unwrap()
        );
    }

    #[test]
    fn moved_ciphertext_fails_to_open() {
        let k = key(AeadAlgorithm::ChaCha20Poly1305);
        let env = k
            .seal(&AssociatedData::message("t1", "c1", "m1"), b"secret")
            .unwrap();
        for elsewhere in [
            AssociatedData::message("t2", "c1", "m1"),
            AssociatedData::message("t1", "c2", "m1"),
            AssociatedData::message("t1", "c1", "m2"),
            AssociatedData::message("t1c", "1", "m1"),
            AssociatedData::new("caas.other.v1")
                .with(b"t1")
                .with(b"c1")
                .with(b"m1"),
        ] {
            assert!(matches!(
                k.open(&elsewhere, &env),
                Err(Error::DecryptionFailed)
            ));
        }
    }

    #[test]
    fn header_is_authenticated() {
        let aad = AssociatedData::new("x");
        let k = key(AeadAlgorithm::Aes256Gcm);
        let env = k.seal(&aad, b"data").unwrap();
        // Same key bytes under another id: the key id is in the AAD.
        let alias =
            DataKey::from_bytes(KeyId::new("dk_2").unwrap(), k.algorithm(), k.expose_bytes())
                .unwrap();
        let mut relabelled = env.to_bytes();
        relabelled[6] = b'2';
        let relabelled = Envelope::from_bytes(&relabelled).unwrap();
        assert!(matches!(
            alias.open(&aad, &relabelled),
            Err(Error::DecryptionFailed)
        ));
        assert!(matches!(
            alias.open(&aad, &env),
            Err(Error::KeyNotFound { .. })
        ));
    }

    #[test]
    fn malformed_bytes() {
        let k = key(AeadAlgorithm::Aes256Gcm);
        let bytes = k.seal(&AssociatedData::new("x"), b"").unwrap().to_bytes();
        assert!(Envelope::from_bytes(&bytes).is_ok());
        assert!(Envelope::from_bytes(&bytes[..bytes.len() - 1]).is_err());
        assert!(Envelope::from_bytes(&[]).is_err());
        let mut v2 = bytes.clone();
        v2[0] = 2;
        assert!(Envelope::from_bytes(&v2).is_err());
        let mut alg = bytes.clone();
        alg[1] = 9;
        assert!(Envelope::from_bytes(&alg).is_err());
        let mut id_len = bytes;
        id_len[2] = 0;
        assert!(Envelope::from_bytes(&id_len).is_err());
    }

    #[test]
    fn associated_data_is_length_prefixed() {
        assert_ne!(
            AssociatedData::new("l").with(b"ab").with(b"c"),
            AssociatedData::new("l").with(b"a").with(b"bc")
        );
    }

    #[test]
    fn every_single_bit_change_is_rejected() {
        for alg in ALGS {
            let k = key(alg);
            let aad = AssociatedData::message("t", "c", "m");
            let bytes = k.seal(&aad, b"sixteen byte msg").unwrap().to_bytes();
            for i in 0..bytes.len() {
                for bit in 0..8 {
                    let mut tampered = bytes.clone();
                    tampered[i] ^= 1 << bit;
                    let opened = Envelope::from_bytes(&tampered).and_then(|env| k.open(&aad, &env));
                    assert!(
                        opened.is_err(),
                        "{alg:?}: flip of byte {i} bit {bit} accepted"
                    );
                }
            }
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn round_trip(pt in proptest::collection::vec(any::<u8>(), 0..512), chacha in any::<bool>(), m in "[a-z0-9]{1,12}") {
            let k = key(if chacha { AeadAlgorithm::ChaCha20Poly1305 } else { AeadAlgorithm::Aes256Gcm });
            let aad = AssociatedData::message("t", "c", &m);
            let env = Envelope::from_bytes(&k.seal(&aad, &pt).unwrap().to_bytes()).unwrap();
            prop_assert_eq!(k.open(&aad, &env).unwrap(), pt);
        }

        #[test]
        fn any_single_bit_change_is_rejected(pt in proptest::collection::vec(any::<u8>(), 0..64), chacha in any::<bool>(), pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let k = key(if chacha { AeadAlgorithm::ChaCha20Poly1305 } else { AeadAlgorithm::Aes256Gcm });
            let aad = AssociatedData::message("t", "c", "m");
            let mut bytes = k.seal(&aad, &pt).unwrap().to_bytes();
            let i = pos.index(bytes.len());
            bytes[i] ^= 1 << bit;
            let opened = Envelope::from_bytes(&bytes).and_then(|env| k.open(&aad, &env));
            prop_assert!(opened.is_err());
        }

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..128)) {
            let k = key(AeadAlgorithm::Aes256Gcm);
            if let Ok(env) = Envelope::from_bytes(&bytes) {
                prop_assert!(k.open(&AssociatedData::new("x"), &env).is_err());
            }
        }
    }
}
