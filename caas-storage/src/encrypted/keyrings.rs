//! Where data keys come from: keyrings the host installs ([`TenantKeyrings`]),
//! or keys made on first use and kept in a store ([`ManagedKeyrings`] over a
//! [`KeyringStore`]): one keyring per tenant (its search key) and one data key
//! per user, which seals what that user writes and is destroyed when the user
//! is erased.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::Shredder;
use caas_core::{Error, Result};
use caas_crypto::KeyId;
use caas_crypto::blind::BlindIndex;
use caas_crypto::envelope::{AeadAlgorithm, DataKey};
use caas_crypto::keys::{KeyEncryptionKey, KeyScope, KeyState, TenantKeyring, WrappedKey};

use super::{BodyKeys, crypto};

struct TenantKeys {
    keyring: TenantKeyring,
    kek: Arc<KeyEncryptionKey>,
    /// Unwrapped data keys: unwrapping is an AEAD open, done once per key.
    unwrapped: Mutex<HashMap<KeyId, Arc<DataKey>>>,
    search: Mutex<Option<Arc<BlindIndex>>>,
}

impl TenantKeys {
    fn new(keyring: TenantKeyring, kek: Arc<KeyEncryptionKey>) -> Self {
        TenantKeys {
            keyring,
            kek,
            unwrapped: Mutex::new(HashMap::new()),
            search: Mutex::new(None),
        }
    }

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

    /// The tenant-scope key: it seals nothing new under [`ManagedKeyrings`], but
    /// its absence (every key destroyed) means the tenant was erased, and then
    /// storing new bodies, sealed or in clear, would defeat that.
    fn tenant_key_id(&self, tenant: &TenantId) -> Result<KeyId> {
        self.keyring
            .current_key(&KeyScope::Tenant)
            .cloned()
            .ok_or_else(|| Error::Unavailable {
                backend: "encryption",
                context: format!(
                    "tenant `{tenant}` has no live data key; its messages cannot be stored"
                ),
                temporary: false,
                source: None,
            })
    }

    /// The owner's key if the keyring has one, else the tenant's.
    fn sealing_key(&self, tenant: &TenantId, owner: &UserId) -> Result<Arc<DataKey>> {
        let tenant_key = self.tenant_key_id(tenant)?;
        let id = self
            .keyring
            .current_key(&KeyScope::User(owner.as_str().to_owned()))
            .cloned()
            .unwrap_or(tenant_key);
        self.key(&id).map_err(|e| crypto("unwrap data key", e))
    }

    /// `Ok(None)` for a destroyed key, `Err(KeyNotFound)` for one the keyring
    /// does not hold.
    fn opening_key(&self, key: &KeyId) -> caas_crypto::Result<Option<Arc<DataKey>>> {
        match self.key(key) {
            Ok(k) => Ok(Some(k)),
            Err(caas_crypto::Error::KeyDestroyed { .. }) => Ok(None),
            Err(e) => Err(e),
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

/// The refusal of a new key for a user whose keys were destroyed.
pub(crate) fn erased(user: &UserId) -> Error {
    Error::conflict(format!(
        "user `{user}` was erased: their data key is destroyed and no new one is made"
    ))
}

fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// Data keys from each tenant's [`TenantKeyring`] and its key-encryption key,
/// held in memory. The host loads keyrings (from its own storage) and KEKs (from
/// its configuration or KMS) and installs them here; re-install after rotating
/// keys. A body is sealed under its writer's user-scope key when the keyring has
/// one, else under the tenant-scope key; [`Shredder::shred_user`] destroys the
/// user's keys in the installed copy, which the host then saves
/// ([`TenantKeyrings::keyring`]).
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
    /// with their writer's current user-scope key, or the current tenant-scope
    /// key; every key in it opens old ones.
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
        self.tenants
            .write()
            .map_err(poisoned)?
            .insert(tenant.clone(), Arc::new(TenantKeys::new(keyring, kek)));
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

    /// The installed keyring of `tenant`, as it is now (after any shredding),
    /// for the host to save.
    pub fn keyring(&self, tenant: &TenantId) -> Result<Option<TenantKeyring>> {
        Ok(self.get(tenant)?.map(|k| k.keyring.clone()))
    }

    fn get(&self, tenant: &TenantId) -> Result<Option<Arc<TenantKeys>>> {
        Ok(self.tenants.read().map_err(poisoned)?.get(tenant).cloned())
    }
}

#[async_trait]
impl BodyKeys for TenantKeyrings {
    async fn sealing_key(&self, tenant: &TenantId, owner: &UserId) -> Result<Option<Arc<DataKey>>> {
        match self.get(tenant)? {
            Some(keys) => keys.sealing_key(tenant, owner).map(Some),
            None => Ok(None),
        }
    }

    async fn seals(&self, tenant: &TenantId) -> Result<bool> {
        Ok(self.get(tenant)?.is_some())
    }

    async fn opening_key(&self, tenant: &TenantId, key: &KeyId) -> Result<Option<Arc<DataKey>>> {
        match self.get(tenant)? {
            Some(keys) => keys
                .opening_key(key)
                .map_err(|e| crypto("unwrap data key", e)),
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

#[async_trait]
impl Shredder for TenantKeyrings {
    async fn shred_user(&self, tenant: &TenantId, user: &UserId) -> Result<u64> {
        let mut tenants = self.tenants.write().map_err(poisoned)?;
        let Some(keys) = tenants.get(tenant) else {
            return Ok(0);
        };
        let mut keyring = keys.keyring.clone();
        let destroyed =
            keyring.destroy_scope(&KeyScope::User(user.as_str().to_owned()), unix_now());
        if destroyed > 0 {
            let kek = keys.kek.clone();
            tenants.insert(tenant.clone(), Arc::new(TenantKeys::new(keyring, kek)));
        }
        Ok(destroyed as u64)
    }
}

/// Where [`ManagedKeyrings`] keeps keys. Every key is stored wrapped under the
/// key-encryption key, which never goes there: a copy of the store cannot open
/// the bodies alone. Keep it apart from the data it protects (the embedded
/// platform's `keys.db` beside `caas.db`), so a backup of the data holds no
/// key, and a shredded key is gone for every backup of the data.
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

    /// The live data key of `user`, wrapped.
    async fn user_key(&self, tenant: &TenantId, user: &UserId) -> Result<Option<WrappedKey>>;

    /// Saves `key` as `user`'s live key unless they have one already; returns
    /// the live key after the call (of two racing creators, both use the kept
    /// one). [`Error::Conflict`] once the user's keys were destroyed: an erased
    /// user gets no new key, so nothing written in a race with the erasure
    /// outlives it readable.
    async fn create_user_key(
        &self,
        tenant: &TenantId,
        user: &UserId,
        key: &WrappedKey,
    ) -> Result<WrappedKey>;

    /// A user key by id, live or destroyed, with its user; `None` when it was
    /// never stored.
    async fn user_key_by_id(
        &self,
        tenant: &TenantId,
        key: &KeyId,
    ) -> Result<Option<(UserId, KeyState)>>;

    /// Destroys every live key of `user` at `at` (unix seconds): the wrapped
    /// bytes are removed for good, the ids stay so that what they sealed reads
    /// as destroyed rather than unknown. Returns how many were live.
    async fn destroy_user_keys(&self, tenant: &TenantId, user: &UserId, at: i64) -> Result<u64>;
}

/// One stored user key.
#[derive(Debug, Clone)]
struct MemoryUserKey {
    user: UserId,
    state: KeyState,
}

/// Keys in memory, for tests and throwaway platforms.
#[derive(Debug, Default)]
pub struct MemoryKeyrings {
    keyrings: Mutex<HashMap<String, TenantKeyring>>,
    users: Mutex<HashMap<(TenantId, KeyId), MemoryUserKey>>,
}

impl MemoryKeyrings {
    fn live_key(
        users: &HashMap<(TenantId, KeyId), MemoryUserKey>,
        tenant: &TenantId,
        user: &UserId,
    ) -> Option<WrappedKey> {
        users.iter().find_map(|((t, _), k)| match &k.state {
            KeyState::Active { wrapped } if t == tenant && k.user == *user => Some(wrapped.clone()),
            _ => None,
        })
    }
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

    async fn user_key(&self, tenant: &TenantId, user: &UserId) -> Result<Option<WrappedKey>> {
        let users = self.users.lock().map_err(poisoned)?;
        Ok(Self::live_key(&users, tenant, user))
    }

    async fn create_user_key(
        &self,
        tenant: &TenantId,
        user: &UserId,
        key: &WrappedKey,
    ) -> Result<WrappedKey> {
        let mut users = self.users.lock().map_err(poisoned)?;
        if let Some(live) = Self::live_key(&users, tenant, user) {
            return Ok(live);
        }
        if users
            .iter()
            .any(|((t, _), k)| t == tenant && k.user == *user)
        {
            return Err(erased(user));
        }
        users.insert(
            (tenant.clone(), key.key_id.clone()),
            MemoryUserKey {
                user: user.clone(),
                state: KeyState::Active {
                    wrapped: key.clone(),
                },
            },
        );
        Ok(key.clone())
    }

    async fn user_key_by_id(
        &self,
        tenant: &TenantId,
        key: &KeyId,
    ) -> Result<Option<(UserId, KeyState)>> {
        Ok(self
            .users
            .lock()
            .map_err(poisoned)?
            .get(&(tenant.clone(), key.clone()))
            .map(|k| (k.user.clone(), k.state.clone())))
    }

    async fn destroy_user_keys(&self, tenant: &TenantId, user: &UserId, at: i64) -> Result<u64> {
        let mut users = self.users.lock().map_err(poisoned)?;
        let mut destroyed = 0;
        for ((t, _), k) in users.iter_mut() {
            if t == tenant && k.user == *user && matches!(k.state, KeyState::Active { .. }) {
                k.state = KeyState::Destroyed { at };
                destroyed += 1;
            }
        }
        Ok(destroyed)
    }
}

/// User keys kept unwrapped in memory at most.
const MAX_CACHED_USER_KEYS: usize = 65_536;

/// A user key as the opening side caches it: whose, and the key (`None` once
/// destroyed).
type CachedKey = (UserId, Option<Arc<DataKey>>);

/// Unwrapped user keys, by user (for sealing) and by id (for opening; `None`
/// once destroyed).
#[derive(Default)]
struct UserKeyCache {
    sealing: HashMap<(TenantId, UserId), Arc<DataKey>>,
    opening: HashMap<(TenantId, KeyId), CachedKey>,
    /// Counts shreddings: a key read from the store is cached only if none
    /// happened since the read began, so a key destroyed meanwhile is never
    /// cached as live.
    shreddings: u64,
}

impl UserKeyCache {
    fn remember(
        &mut self,
        since: u64,
        tenant: &TenantId,
        user: &UserId,
        id: &KeyId,
        key: Option<Arc<DataKey>>,
    ) {
        if self.shreddings != since {
            return;
        }
        // Bounded: past the cap it starts over (a miss is one point read of
        // the key file and an unwrap), rather than track recency on every seal.
        if self.opening.len() >= MAX_CACHED_USER_KEYS {
            self.sealing.clear();
            self.opening.clear();
        }
        if let Some(live) = &key {
            self.sealing
                .insert((tenant.clone(), user.clone()), live.clone());
        }
        self.opening
            .insert((tenant.clone(), id.clone()), (user.clone(), key));
    }
}

/// Every tenant encrypted, every user under a key of their own: each tenant's
/// keyring (a tenant key and a search key) and each user's data key are made on
/// first use, wrapped under one key-encryption key, and kept in a
/// [`KeyringStore`]. Erasing a user destroys their key ([`Shredder`]).
pub struct ManagedKeyrings {
    kek: Arc<KeyEncryptionKey>,
    store: Arc<dyn KeyringStore>,
    loaded: TenantKeyrings,
    users: Mutex<UserKeyCache>,
}

impl std::fmt::Debug for ManagedKeyrings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ManagedKeyrings")
            .field("kek", self.kek.id())
            .field("store", &self.store)
            .finish_non_exhaustive()
    }
}

impl ManagedKeyrings {
    /// Keys under `kek`, kept in `store`.
    pub fn new(kek: KeyEncryptionKey, store: Arc<dyn KeyringStore>) -> Self {
        Self {
            kek: Arc::new(kek),
            store,
            loaded: TenantKeyrings::new(),
            users: Mutex::new(UserKeyCache::default()),
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
            return Err(self.wrong_kek(tenant, keyring.kek_id()));
        }
        self.loaded.insert(tenant, keyring, self.kek.clone())?;
        self.loaded
            .get(tenant)?
            .ok_or_else(|| Error::internal("encryption: a keyring vanished as it was installed"))
    }

    fn wrong_kek(&self, tenant: &TenantId, found: &KeyId) -> Error {
        Error::Unavailable {
            backend: "encryption",
            context: format!(
                "tenant `{tenant}`'s keys are wrapped under key `{found}`, not the configured `{}`",
                self.kek.id()
            ),
            temporary: false,
            source: None,
        }
    }

    fn unwrap_key(&self, tenant: &TenantId, wrapped: &WrappedKey) -> Result<Arc<DataKey>> {
        if wrapped.kek_id != *self.kek.id() {
            return Err(self.wrong_kek(tenant, &wrapped.kek_id));
        }
        self.kek
            .unwrap(tenant.as_str(), wrapped)
            .map(Arc::new)
            .map_err(|e| crypto("unwrap a user key", e))
    }

    /// The user's live key, unwrapped: cached, stored, or made now.
    async fn user_key(&self, tenant: &TenantId, user: &UserId) -> Result<Arc<DataKey>> {
        let since = {
            let cache = self.users.lock().map_err(poisoned)?;
            if let Some(key) = cache.sealing.get(&(tenant.clone(), user.clone())) {
                return Ok(key.clone());
            }
            cache.shreddings
        };
        let wrapped = match self.store.user_key(tenant, user).await? {
            Some(w) => w,
            None => {
                let id = KeyId::generate("dk_").map_err(|e| crypto("name a user key", e))?;
                let key = DataKey::generate(id, AeadAlgorithm::Aes256Gcm)
                    .map_err(|e| crypto("create a user key", e))?;
                let wrapped = self
                    .kek
                    .wrap(tenant.as_str(), &key)
                    .map_err(|e| crypto("wrap a user key", e))?;
                self.store.create_user_key(tenant, user, &wrapped).await?
            }
        };
        let key = self.unwrap_key(tenant, &wrapped)?;
        self.users.lock().map_err(poisoned)?.remember(
            since,
            tenant,
            user,
            &wrapped.key_id,
            Some(key.clone()),
        );
        Ok(key)
    }
}

#[async_trait]
impl BodyKeys for ManagedKeyrings {
    async fn sealing_key(&self, tenant: &TenantId, owner: &UserId) -> Result<Option<Arc<DataKey>>> {
        // The tenant must still have its keys: an erased tenant stores nothing.
        self.keys(tenant).await?.tenant_key_id(tenant)?;
        self.user_key(tenant, owner).await.map(Some)
    }

    async fn seals(&self, _: &TenantId) -> Result<bool> {
        Ok(true)
    }

    async fn opening_key(&self, tenant: &TenantId, key: &KeyId) -> Result<Option<Arc<DataKey>>> {
        let since = {
            let cache = self.users.lock().map_err(poisoned)?;
            if let Some((_, cached)) = cache.opening.get(&(tenant.clone(), key.clone())) {
                return Ok(cached.clone());
            }
            cache.shreddings
        };
        // Bodies sealed before per-user keys, under the tenant key.
        match self.keys(tenant).await?.opening_key(key) {
            Ok(found) => return Ok(found),
            Err(caas_crypto::Error::KeyNotFound { .. }) => {}
            Err(e) => return Err(crypto("unwrap data key", e)),
        }
        let Some((user, state)) = self.store.user_key_by_id(tenant, key).await? else {
            return Err(crypto(
                "open a body",
                caas_crypto::Error::KeyNotFound {
                    key_id: key.to_string(),
                },
            ));
        };
        let found = match &state {
            KeyState::Active { wrapped } => Some(self.unwrap_key(tenant, wrapped)?),
            KeyState::Destroyed { .. } => None,
        };
        self.users
            .lock()
            .map_err(poisoned)?
            .remember(since, tenant, &user, key, found.clone());
        Ok(found)
    }

    async fn search_index(&self, tenant: &TenantId) -> Result<Option<Arc<BlindIndex>>> {
        self.keys(tenant).await?.search_index()
    }
}

#[async_trait]
impl Shredder for ManagedKeyrings {
    async fn shred_user(&self, tenant: &TenantId, user: &UserId) -> Result<u64> {
        let destroyed = self
            .store
            .destroy_user_keys(tenant, user, unix_now())
            .await?;
        let mut cache = self.users.lock().map_err(poisoned)?;
        cache.shreddings += 1;
        cache.sealing.remove(&(tenant.clone(), user.clone()));
        for ((t, _), (owner, key)) in cache.opening.iter_mut() {
            if t == tenant && owner == user {
                *key = None;
            }
        }
        Ok(destroyed)
    }
}
