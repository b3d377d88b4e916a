//! Where data keys come from: keyrings the host installs ([`TenantKeyrings`]),
//! or keyrings made for each tenant on first use and kept in a store
//! ([`ManagedKeyrings`] over a [`KeyringStore`]).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use caas_core::ids::TenantId;
use caas_core::{Error, Result};
use caas_crypto::KeyId;
use caas_crypto::blind::BlindIndex;
use caas_crypto::envelope::{AeadAlgorithm, DataKey};
use caas_crypto::keys::{KeyEncryptionKey, KeyScope, TenantKeyring};

use super::{BodyKeys, crypto};

struct TenantKeys {
    keyring: TenantKeyring,
    kek: Arc<KeyEncryptionKey>,
    /// Unwrapped data keys: unwrapping is an AEAD open, done once per key.
    unwrapped: Mutex<HashMap<KeyId, Arc<DataKey>>>,
    search: Mutex<Option<Arc<BlindIndex>>>,
}

impl TenantKeys {
    fn key(&self, id: &KeyId) -> caas_crypto::Result<Arc<DataKey>> {
        if let Ok(cache) = self.unwrapped.lock()
            && let Some(k) = cache.get(id)
        {
            return Ok(k.clone());
        }
        let key = Arc::new(self.keyring.data_key(&self.kek, id)?);
        if let Ok(mut cache) = self.unwrapped.lock() {
            cache.insert(id.clone(), key.clone());
        }
        Ok(key)
    }

    fn sealing_key(&self, tenant: &TenantId) -> Result<Option<Arc<DataKey>>> {
        let Some(id) = self.keyring.current_key(&KeyScope::Tenant).cloned() else {
            // Every key destroyed: the tenant was erased. Storing its new bodies in
            // clear would defeat that.
            return Err(Error::Unavailable {
                backend: "encryption",
                context: format!(
                    "tenant `{tenant}` has no live data key; its messages cannot be stored"
                ),
                temporary: false,
                source: None,
            });
        };
        self.key(&id)
            .map(Some)
            .map_err(|e| crypto("unwrap data key", e))
    }

    fn opening_key(&self, key: &KeyId) -> Result<Option<Arc<DataKey>>> {
        match self.key(key) {
            Ok(k) => Ok(Some(k)),
            Err(caas_crypto::Error::KeyDestroyed { .. }) => Ok(None),
            Err(e) => Err(crypto("unwrap data key", e)),
        }
    }

    fn search_index(&self) -> Result<Option<Arc<BlindIndex>>> {
        if let Ok(cached) = self.search.lock()
            && let Some(index) = cached.as_ref()
        {
            return Ok(Some(index.clone()));
        }
        let Some(id) = self.keyring.current_key(&KeyScope::Search).cloned() else {
            return Ok(None);
        };
        let key = self.key(&id).map_err(|e| crypto("unwrap search key", e))?;
        let index = Arc::new(BlindIndex::from_data_key(&key));
        if let Ok(mut cached) = self.search.lock() {
            *cached = Some(index.clone());
        }
        Ok(Some(index))
    }
}

fn poisoned<T>(_: T) -> Error {
    Error::internal("encryption: key table lock poisoned by an earlier panic")
}

/// Data keys from each tenant's [`TenantKeyring`] and its key-encryption key,
/// held in memory. The host loads keyrings (see [`KeyringStore`]) and KEKs (from
/// its configuration or KMS) and installs them here; re-install after rotating
/// or destroying keys.
#[derive(Default)]
pub struct TenantKeyrings {
    tenants: RwLock<HashMap<TenantId, Arc<TenantKeys>>>,
}

impl std::fmt::Debug for TenantKeyrings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let tenants: Vec<String> = self
            .tenants
            .read()
            .map(|t| t.keys().map(ToString::to_string).collect())
            .unwrap_or_default();
        f.debug_struct("TenantKeyrings")
            .field("tenants", &tenants)
            .finish_non_exhaustive()
    }
}

impl TenantKeyrings {
    /// No tenant encrypts.
    pub fn new() -> Self {
        Self::default()
    }

    /// Installs (or replaces) `tenant`'s keyring and KEK. New bodies are sealed
    /// with the keyring's current tenant-scope key; every key in it opens old ones.
    pub fn insert(
        &self,
        tenant: &TenantId,
        keyring: TenantKeyring,
        kek: impl Into<Arc<KeyEncryptionKey>>,
    ) -> Result<()> {
        let kek = kek.into();
        if keyring.tenant() != tenant.as_str() {
            return Err(Error::invalid("keyring", "belongs to another tenant"));
        }
        if keyring.kek_id() != kek.id() {
            return Err(Error::invalid(
                "kek",
                "is not the key the keyring is wrapped under",
            ));
        }
        let keys = Arc::new(TenantKeys {
            keyring,
            kek,
            unwrapped: Mutex::new(HashMap::new()),
            search: Mutex::new(None),
        });
        self.tenants
            .write()
            .map_err(poisoned)?
            .insert(tenant.clone(), keys);
        Ok(())
    }

    /// Stops encrypting `tenant`'s new bodies (old ones no longer open).
    pub fn remove(&self, tenant: &TenantId) -> Result<bool> {
        Ok(self
            .tenants
            .write()
            .map_err(poisoned)?
            .remove(tenant)
            .is_some())
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<Arc<TenantKeys>>> {
        Ok(self.tenants.read().map_err(poisoned)?.get(tenant).cloned())
    }
}

#[async_trait]
impl BodyKeys for TenantKeyrings {
    async fn sealing_key(&self, tenant: &TenantId) -> Result<Option<Arc<DataKey>>> {
        match self.get(tenant)? {
            Some(keys) => keys.sealing_key(tenant),
            None => Ok(None),
        }
    }

    async fn opening_key(&self, tenant: &TenantId, key: &KeyId) -> Result<Option<Arc<DataKey>>> {
        match self.get(tenant)? {
            Some(keys) => keys.opening_key(key),
            None => Err(Error::internal(format!(
                "encryption: tenant `{tenant}` has sealed bodies but no keyring is installed"
            ))),
        }
    }

    async fn search_index(&self, tenant: &TenantId) -> Result<Option<Arc<BlindIndex>>> {
        match self.get(tenant)? {
            Some(keys) => keys.search_index(),
            None => Ok(None),
        }
    }
}

/// Where [`ManagedKeyrings`] keeps keyrings. A keyring holds data keys only
/// wrapped under the key-encryption key, which never goes there: a copy of the
/// store (or a backup) cannot open the bodies alone.
#[async_trait]
pub trait KeyringStore: Send + Sync + std::fmt::Debug {
    /// The keyring saved for `tenant`, if any.
    async fn load_keyring(&self, tenant: &TenantId) -> Result<Option<TenantKeyring>>;

    /// Saves `keyring` unless its tenant has one already; returns the keyring
    /// the tenant has after the call (so of two racing creators, both use the
    /// one that was kept).
    async fn create_keyring(&self, keyring: &TenantKeyring) -> Result<TenantKeyring>;

    /// Replaces the tenant's keyring (after a rotation or a destruction).
    async fn save_keyring(&self, keyring: &TenantKeyring) -> Result<()>;
}

/// Keyrings in memory, for tests and throwaway platforms.
#[derive(Debug, Default)]
pub struct MemoryKeyrings {
    keyrings: Mutex<HashMap<String, TenantKeyring>>,
}

#[async_trait]
impl KeyringStore for MemoryKeyrings {
    async fn load_keyring(&self, tenant: &TenantId) -> Result<Option<TenantKeyring>> {
        Ok(self
            .keyrings
            .lock()
            .map_err(poisoned)?
            .get(tenant.as_str())
            .cloned())
    }

    async fn create_keyring(&self, keyring: &TenantKeyring) -> Result<TenantKeyring> {
        Ok(self
            .keyrings
            .lock()
            .map_err(poisoned)?
            .entry(keyring.tenant().to_owned())
            .or_insert_with(|| keyring.clone())
            .clone())
    }

    async fn save_keyring(&self, keyring: &TenantKeyring) -> Result<()> {
        self.keyrings
            .lock()
            .map_err(poisoned)?
            .insert(keyring.tenant().to_owned(), keyring.clone());
        Ok(())
    }
}

/// Every tenant encrypted: each tenant's keyring (a sealing key and a search
/// key) is made on first use, wrapped under one key-encryption key, and kept in
/// a [`KeyringStore`]; keyrings already there are loaded on first use.
#[derive(Debug)]
pub struct ManagedKeyrings {
    kek: Arc<KeyEncryptionKey>,
    store: Arc<dyn KeyringStore>,
    loaded: TenantKeyrings,
}

impl ManagedKeyrings {
    /// Keyrings under `kek`, kept in `store`.
    pub fn new(kek: KeyEncryptionKey, store: Arc<dyn KeyringStore>) -> Self {
        Self {
            kek: Arc::new(kek),
            store,
            loaded: TenantKeyrings::new(),
        }
    }

    /// The tenant's keys, loaded or made now.
    async fn keys(&self, tenant: &TenantId) -> Result<Arc<TenantKeys>> {
        if let Some(keys) = self.loaded.get(tenant)? {
            return Ok(keys);
        }
        let keyring = match self.store.load_keyring(tenant).await? {
            Some(k) => k,
            None => {
                let mut fresh = TenantKeyring::new(tenant.as_str(), &self.kek);
                for scope in [KeyScope::Tenant, KeyScope::Search] {
                    fresh
                        .create_data_key(&self.kek, scope, AeadAlgorithm::Aes256Gcm)
                        .map_err(|e| crypto("create a data key", e))?;
                }
                self.store.create_keyring(&fresh).await?
            }
        };
        if keyring.kek_id() != self.kek.id() {
            return Err(Error::Unavailable {
                backend: "encryption",
                context: format!(
                    "tenant `{tenant}`'s keyring is wrapped under key `{}`, not the configured `{}`",
                    keyring.kek_id(),
                    self.kek.id()
                ),
                temporary: false,
                source: None,
            });
        }
        self.loaded.insert(tenant, keyring, self.kek.clone())?;
        self.loaded
            .get(tenant)?
            .ok_or_else(|| Error::internal("encryption: a keyring vanished as it was installed"))
    }
}

#[async_trait]
impl BodyKeys for ManagedKeyrings {
    async fn sealing_key(&self, tenant: &TenantId) -> Result<Option<Arc<DataKey>>> {
        self.keys(tenant).await?.sealing_key(tenant)
    }

    async fn opening_key(&self, tenant: &TenantId, key: &KeyId) -> Result<Option<Arc<DataKey>>> {
        self.keys(tenant).await?.opening_key(key)
    }

    async fn search_index(&self, tenant: &TenantId) -> Result<Option<Arc<BlindIndex>>> {
        self.keys(tenant).await?.search_index()
    }
}
