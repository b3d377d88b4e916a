//! The key hierarchy for data at rest.
//!
//! ```text
//! key-encryption key (one per tenant, held outside the database: config/KMS)
//!   └─ wraps ─ data keys (per tenant or per user, stored wrapped in the TenantKeyring)
//!                └─ encrypt ─ envelopes (message bodies, attachments)
//! ```
//!
//! * Every envelope names its data key; every wrapped key names its KEK.
//! * Rotating the KEK re-wraps the data keys (32 bytes each) without touching
//!   the data.
//! * Destroying a data key (crypto-shredding) makes everything under it
//!   unreadable: GDPR erasure of a user destroys their scope's keys, erasure
//!   of a tenant destroys all of them. Copies of the keyring in backups keep
//!   the wrapped keys, so backups must expire too.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::envelope::{AeadAlgorithm, AssociatedData, DataKey, Envelope};
use crate::{Error, KeyId, Result};

/// A tenant's key-encryption key (AES-256-GCM). Never stored next to the
/// data it protects.
pub struct KeyEncryptionKey {
    key: DataKey,
}

impl KeyEncryptionKey {
    /// A fresh random KEK.
    pub fn generate(id: KeyId) -> Result<Self> {
        Ok(KeyEncryptionKey {
            key: DataKey::generate(id, AeadAlgorithm::Aes256Gcm)?,
        })
    }

    /// From 32 raw bytes (e.g. from configuration or a KMS).
    pub fn from_bytes(id: KeyId, bytes: &[u8; 32]) -> Result<Self> {
        Ok(KeyEncryptionKey {
            key: DataKey::from_bytes(id, AeadAlgorithm::Aes256Gcm, bytes)?,
        })
    }

    /// The KEK id.
    pub fn id(&self) -> &KeyId {
        self.key.id()
    }

    /// The binding for a wrapped data key: which tenant, which key, which AEAD.
    fn aad(tenant: &str, key_id: &KeyId, algorithm: AeadAlgorithm) -> AssociatedData {
        AssociatedData::new("caas.wrapped-key.v1")
            .with(tenant.as_bytes())
            .with(key_id.as_str().as_bytes())
            .with(&[algorithm.code()])
    }

    /// Wraps `data_key` for `tenant`.
    pub fn wrap(&self, tenant: &str, data_key: &DataKey) -> Result<WrappedKey> {
        let aad = Self::aad(tenant, data_key.id(), data_key.algorithm());
        let envelope = self.key.seal(&aad, data_key.expose_bytes())?;
        Ok(WrappedKey {
            key_id: data_key.id().clone(),
            algorithm: data_key.algorithm(),
            kek_id: self.id().clone(),
            wrapped: envelope.to_bytes(),
        })
    }

    /// Unwraps a data key of `tenant`; fails if it was wrapped for another
    /// tenant, under another KEK, or tampered with.
    pub fn unwrap(&self, tenant: &str, wrapped: &WrappedKey) -> Result<DataKey> {
        if wrapped.kek_id != *self.id() {
            return Err(Error::KeyNotFound {
                key_id: wrapped.kek_id.to_string(),
            });
        }
        let envelope = Envelope::from_bytes(&wrapped.wrapped)?;
        let aad = Self::aad(tenant, &wrapped.key_id, wrapped.algorithm);
        let raw = zeroize::Zeroizing::new(self.key.open(&aad, &envelope)?);
        let bytes = <&[u8; 32]>::try_from(raw.as_slice()).map_err(|_| Error::InvalidKey {
            reason: "wrapped key is not 32 bytes",
        })?;
        DataKey::from_bytes(wrapped.key_id.clone(), wrapped.algorithm, bytes)
    }
}

impl fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KeyEncryptionKey")
            .field("id", self.id())
            .finish_non_exhaustive()
    }
}

/// A data key encrypted under a KEK: safe to store.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WrappedKey {
    /// The data key's id.
    pub key_id: KeyId,
    /// The data key's AEAD.
    pub algorithm: AeadAlgorithm,
    /// The KEK that wrapped it.
    pub kek_id: KeyId,
    /// The wrapped key, an [`Envelope`] in binary form (base64url in JSON).
    #[serde(with = "crate::base64url::bytes")]
    pub wrapped: Vec<u8>,
}

/// Whose data a data key protects; the unit of crypto-shredding.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "id")]
pub enum KeyScope {
    /// Tenant-wide data.
    Tenant,
    /// One user's data.
    User(String),
    /// The tenant's blind search index ([`crate::blind::BlindIndex`]): a key of
    /// its own, so rotating the tenant's sealing key does not change the tokens
    /// that sealed messages are found by.
    Search,
}

/// One data key's entry in a keyring.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyEntry {
    /// The data key's id.
    pub key_id: KeyId,
    /// Whose data it protects.
    pub scope: KeyScope,
    /// Usable or destroyed.
    pub state: KeyState,
}

/// Whether a data key still exists.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum KeyState {
    /// The key, wrapped.
    Active {
        /// The wrapped key.
        wrapped: WrappedKey,
    },
    /// Shredded at `at` (unix seconds): the wrapped bytes are gone.
    Destroyed {
        /// When.
        at: i64,
    },
}

/// A tenant's data keys, wrapped under its current KEK. Serializable, so the
/// storage layer persists it as one document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TenantKeyring {
    tenant: String,
    kek_id: KeyId,
    keys: Vec<KeyEntry>,
}

impl TenantKeyring {
    /// An empty keyring for `tenant` under `kek`.
    pub fn new(tenant: impl Into<String>, kek: &KeyEncryptionKey) -> Self {
        TenantKeyring {
            tenant: tenant.into(),
            kek_id: kek.id().clone(),
            keys: Vec::new(),
        }
    }

    /// The tenant.
    pub fn tenant(&self) -> &str {
        &self.tenant
    }

    /// The KEK every entry is wrapped under.
    pub fn kek_id(&self) -> &KeyId {
        &self.kek_id
    }

    /// All entries, oldest first.
    pub fn entries(&self) -> &[KeyEntry] {
        &self.keys
    }

    fn check_kek(&self, kek: &KeyEncryptionKey) -> Result<()> {
        if *kek.id() != self.kek_id {
            return Err(Error::KeyNotFound {
                key_id: self.kek_id.to_string(),
            });
        }
        Ok(())
    }

    /// Creates a data key for `scope`; it becomes the scope's current key
    /// (earlier ones stay readable). Returns its id.
    pub fn create_data_key(
        &mut self,
        kek: &KeyEncryptionKey,
        scope: KeyScope,
        algorithm: AeadAlgorithm,
    ) -> Result<KeyId> {
        self.check_kek(kek)?;
        let key = DataKey::generate(KeyId::generate("dk_")?, algorithm)?;
        let wrapped = kek.wrap(&self.tenant, &key)?;
        self.keys.push(KeyEntry {
            key_id: key.id().clone(),
            scope,
            state: KeyState::Active { wrapped },
        });
        Ok(key.id().clone())
    }

    /// The newest active key of `scope`.
    pub fn current_key(&self, scope: &KeyScope) -> Option<&KeyId> {
        self.keys
            .iter()
            .rev()
            .find(|e| e.scope == *scope && matches!(e.state, KeyState::Active { .. }))
            .map(|e| &e.key_id)
    }

    /// Unwraps one data key (callers may cache the result).
    pub fn data_key(&self, kek: &KeyEncryptionKey, key_id: &KeyId) -> Result<DataKey> {
        self.check_kek(kek)?;
        let entry = self
            .keys
            .iter()
            .find(|e| e.key_id == *key_id)
            .ok_or_else(|| Error::KeyNotFound {
                key_id: key_id.to_string(),
            })?;
        match &entry.state {
            KeyState::Active { wrapped } => kek.unwrap(&self.tenant, wrapped),
            KeyState::Destroyed { .. } => Err(Error::KeyDestroyed {
                key_id: key_id.to_string(),
            }),
        }
    }

    /// Encrypts with the current key of `scope`.
    pub fn seal(
        &self,
        kek: &KeyEncryptionKey,
        scope: &KeyScope,
        aad: &AssociatedData,
        plaintext: &[u8],
    ) -> Result<Envelope> {
        let key_id = self.current_key(scope).ok_or_else(|| Error::KeyNotFound {
            key_id: format!("current key of {scope:?}"),
        })?;
        self.data_key(kek, key_id)?.seal(aad, plaintext)
    }

    /// Decrypts with the key the envelope names.
    pub fn open(
        &self,
        kek: &KeyEncryptionKey,
        aad: &AssociatedData,
        envelope: &Envelope,
    ) -> Result<Vec<u8>> {
        self.data_key(kek, envelope.key_id())?.open(aad, envelope)
    }

    /// Re-wraps every live data key from `old` to `new`. All or nothing: on
    /// error the keyring is unchanged. Data envelopes are untouched.
    pub fn rewrap(&mut self, old: &KeyEncryptionKey, new: &KeyEncryptionKey) -> Result<usize> {
        self.check_kek(old)?;
        let mut keys = self.keys.clone();
        let mut count = 0;
        for entry in &mut keys {
            if let KeyState::Active { wrapped } = &mut entry.state {
                let key = old.unwrap(&self.tenant, wrapped)?;
                *wrapped = new.wrap(&self.tenant, &key)?;
                count += 1;
            }
        }
        self.keys = keys;
        self.kek_id = new.id().clone();
        Ok(count)
    }

    /// Destroys one data key.
    pub fn destroy(&mut self, key_id: &KeyId, now: i64) -> Result<()> {
        let entry = self
            .keys
            .iter_mut()
            .find(|e| e.key_id == *key_id)
            .ok_or_else(|| Error::KeyNotFound {
                key_id: key_id.to_string(),
            })?;
        entry.state = KeyState::Destroyed { at: now };
        Ok(())
    }

    /// Destroys every key of `scope` (a user's erasure); returns how many
    /// were live.
    pub fn destroy_scope(&mut self, scope: &KeyScope, now: i64) -> usize {
        self.destroy_where(|e| e.scope == *scope, now)
    }

    /// Destroys every key (a tenant's erasure); returns how many were live.
    pub fn destroy_all(&mut self, now: i64) -> usize {
        self.destroy_where(|_| true, now)
    }

    fn destroy_where(&mut self, pred: impl Fn(&KeyEntry) -> bool, now: i64) -> usize {
        let mut count = 0;
        for entry in self.keys.iter_mut().filter(|e| pred(e)) {
            if matches!(entry.state, KeyState::Active { .. }) {
                entry.state = KeyState::Destroyed { at: now };
                count += 1;
            }
        }
        count
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn kek(id: &str) -> KeyEncryptionKey {
        KeyEncryptionKey::generate(KeyId::new(id).unwrap()).unwrap()
    }

    fn alice() -> KeyScope {
        KeyScope::User("alice".into())
    }

    fn bob() -> KeyScope {
        KeyScope::User("bob".into())
    }

    #[test]
    fn seal_and_open_through_the_keyring() {
        let k = kek("kek-1");
        let mut ring = TenantKeyring::new("t1", &k);
        ring.create_data_key(&k, alice(), AeadAlgorithm::Aes256Gcm)
            .unwrap();
        let aad = AssociatedData::message("t1", "c1", "m1");
        let env = ring.seal(&k, &alice(), &aad, b"hi").unwrap();
        assert_eq!(ring.open(&k, &aad, &env).unwrap(), b"hi");
        assert!(matches!(
            ring.seal(&k, &bob(), &aad, b"x"),
            Err(Error::KeyNotFound { .. })
        ));
    }

    #[test]
    fn kek_rotation_rewraps_without_reencrypting() {
        let (old, new) = (kek("kek-1"), kek("kek-2"));
        let mut ring = TenantKeyring::new("t1", &old);
        ring.create_data_key(&old, alice(), AeadAlgorithm::ChaCha20Poly1305)
            .unwrap();
        ring.create_data_key(&old, KeyScope::Tenant, AeadAlgorithm::Aes256Gcm)
            .unwrap();
        let aad = AssociatedData::message("t1", "c1", "m1");
        let stored = ring
            .seal(&old, &alice(), &aad, b"before rotation")
            .unwrap()
            .to_bytes();

        assert_eq!(ring.rewrap(&old, &new).unwrap(), 2);
        assert_eq!(ring.kek_id().as_str(), "kek-2");
        // The stored ciphertext is unchanged and opens under the new KEK.
        let env = Envelope::from_bytes(&stored).unwrap();
        assert_eq!(ring.open(&new, &aad, &env).unwrap(), b"before rotation");
        assert!(matches!(
            ring.open(&old, &aad, &env),
            Err(Error::KeyNotFound { .. })
        ));
        for e in ring.entries() {
            let KeyState::Active { wrapped } = &e.state else {
                panic!()
            };
            assert!(old.unwrap("t1", wrapped).is_err());
        }
    }

    #[test]
    fn failed_rewrap_changes_nothing() {
        let (k, other) = (kek("kek-1"), kek("kek-1"));
        let mut ring = TenantKeyring::new("t1", &k);
        ring.create_data_key(&k, alice(), AeadAlgorithm::Aes256Gcm)
            .unwrap();
        let before = ring.clone();
        // Same id, different key material: unwrapping fails.
        assert!(ring.rewrap(&other, &kek("kek-2")).is_err());
        assert_eq!(ring, before);
    }

    #[test]
    fn crypto_shredding_a_user() {
        let k = kek("kek-1");
        let mut ring = TenantKeyring::new("t1", &k);
        ring.create_data_key(&k, alice(), AeadAlgorithm::Aes256Gcm)
            .unwrap();
        ring.create_data_key(&k, bob(), AeadAlgorithm::Aes256Gcm)
            .unwrap();
        let aad = AssociatedData::message("t1", "c1", "m1");
        let a = ring.seal(&k, &alice(), &aad, b"alice's").unwrap();
        ring.create_data_key(&k, alice(), AeadAlgorithm::Aes256Gcm)
            .unwrap();
        let a2 = ring.seal(&k, &alice(), &aad, b"alice's newer").unwrap();
        let b = ring.seal(&k, &bob(), &aad, b"bob's").unwrap();
        assert_ne!(a.key_id(), a2.key_id());
        let alice_wrapped: Vec<String> = ring
            .entries()
            .iter()
            .filter(|e| e.scope == alice())
            .map(|e| match &e.state {
                KeyState::Active { wrapped } => crate::base64url::encode(&wrapped.wrapped),
                KeyState::Destroyed { .. } => unreachable!(),
            })
            .collect();

        assert_eq!(ring.destroy_scope(&alice(), 99), 2);
        for env in [&a, &a2] {
            assert!(matches!(
                ring.open(&k, &aad, env),
                Err(Error::KeyDestroyed { .. })
            ));
        }
        assert_eq!(ring.open(&k, &aad, &b).unwrap(), b"bob's");
        // The persisted form no longer holds Alice's wrapped keys at all.
        let json = serde_json::to_string(&ring).unwrap();
        assert_eq!(json.matches("\"destroyed\"").count(), 2, "{json}");
        for w in &alice_wrapped {
            assert!(!json.contains(w.as_str()));
        }

        assert_eq!(ring.destroy_all(100), 1);
        assert!(ring.open(&k, &aad, &b).is_err());
    }

    #[test]
    fn wrapped_keys_are_bound_to_tenant() {
        let k = kek("kek-1");
        let key = DataKey::generate(KeyId::new("dk_x").unwrap(), AeadAlgorithm::Aes256Gcm).unwrap();
        let wrapped = k.wrap("t1", &key).unwrap();
        assert!(k.unwrap("t1", &wrapped).is_ok());
        assert!(matches!(
            k.unwrap("t2", &wrapped),
            Err(Error::DecryptionFailed)
        ));
        let relabelled = WrappedKey {
            key_id: KeyId::new("dk_y").unwrap(),
            ..wrapped.clone()
        };
        assert!(k.unwrap("t1", &relabelled).is_err());
        let realg = WrappedKey {
            algorithm: AeadAlgorithm::ChaCha20Poly1305,
            ..wrapped
        };
        assert!(k.unwrap("t1", &realg).is_err());
    }

    #[test]
    fn keyring_round_trips_through_json() {
        let k = kek("kek-1");
        let mut ring = TenantKeyring::new("t1", &k);
        ring.create_data_key(&k, alice(), AeadAlgorithm::Aes256Gcm)
            .unwrap();
        let json = serde_json::to_string(&ring).unwrap();
        let back: TenantKeyring = serde_json::from_str(&json).unwrap();
        assert_eq!(back, ring);
        assert!(!format!("{k:?}").is_empty());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(64))]
        #[test]
        fn any_single_bit_change_in_a_wrapped_key_is_rejected(pos in any::<prop::sample::Index>(), bit in 0u8..8) {
            let k = kek("kek-1");
            let key = DataKey::generate(KeyId::new("dk_x").unwrap(), AeadAlgorithm::Aes256Gcm).unwrap();
            let mut wrapped = k.wrap("t1", &key).unwrap();
            let i = pos.index(wrapped.wrapped.len());
            wrapped.wrapped[i] ^= 1 << bit;
            prop_assert!(k.unwrap("t1", &wrapped).is_err());
        }

        #[test]
        fn arbitrary_json_never_panics(s in ".{0,200}") {
            let _ = serde_json::from_str::<TenantKeyring>(&s);
            let _ = serde_json::from_str::<WrappedKey>(&s);
        }
    }
}
