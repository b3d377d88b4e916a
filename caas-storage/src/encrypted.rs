//! At-rest encryption of message bodies, per tenant, as decorators over any
//! [`MessageStore`] (and [`SearchIndex`]): the memory, SQLite and MongoDB stores
//! all get it the same way.
//!
//! [`EncryptedMessageStore`] seals each body (and each earlier body kept by an
//! edit) into a caas-crypto [`Envelope`] under the tenant's current data key,
//! bound by its associated data to the tenant, conversation and message id, so a
//! sealed body copied onto another message does not open. The inner store keeps
//! it as text: [`crate::SEALED_BODY_PREFIX`] and the base64url
//! envelope. Reads open it again; callers never see the difference.
//!
//! What stays in clear: ids, seqs, senders, timestamps, reactions, attachment
//! references, mentions. End-to-end encrypted messages are already opaque and are
//! stored unchanged.
//!
//! Keys come from a [`BodyKeys`]; [`TenantKeyrings`] serves them from each
//! tenant's [`TenantKeyring`] and key-encryption key. Tenants without a sealing
//! key are stored in clear, so encryption can be switched on per tenant; bodies
//! sealed before stay readable as long as their key exists. Destroying a key
//! (crypto-shredding) makes the bodies it sealed read as absent: such a message
//! keeps its seq, sender and time, with no body.
//!
//! **Search.** The service indexes the plaintext it is given after each write, so
//! with a plain [`SearchIndex`] the index holds the *words* of sealed bodies (as
//! index terms, not the text). Wrap the index in [`EncryptedSearchIndex`] to keep
//! them out, at the price of message search for those tenants.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, RwLock};

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use caas_core::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Conversation, Message, NewMessage, User};
use caas_core::ports::{
    Appended, Changed, ConversationHead, HistoryPage, MessageHit, MessageStore, SearchIndex,
};
use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use caas_crypto::KeyId;
use caas_crypto::envelope::{AssociatedData, DataKey, Envelope};
use caas_crypto::keys::{KeyEncryptionKey, KeyScope, TenantKeyring};

use crate::SEALED_BODY_PREFIX;

/// Where the decorator gets data keys.
pub trait BodyKeys: Send + Sync + std::fmt::Debug {
    /// The key that seals new bodies of `tenant`, or `None` to store them in clear.
    fn sealing_key(&self, tenant: &TenantId) -> Result<Option<Arc<DataKey>>>;

    /// The key a stored envelope names; `Ok(None)` when that key was destroyed
    /// (crypto-shredded), an error when it is unknown.
    fn opening_key(&self, tenant: &TenantId, key: &KeyId) -> Result<Option<Arc<DataKey>>>;
}

fn crypto(context: &str, e: caas_crypto::Error) -> Error {
    Error::Internal {
        context: format!("encryption: {context}"),
        source: Some(Box::new(e)),
    }
}

struct TenantKeys {
    keyring: TenantKeyring,
    kek: KeyEncryptionKey,
    /// Unwrapped data keys: unwrapping is an AEAD open, done once per key.
    unwrapped: Mutex<HashMap<KeyId, Arc<DataKey>>>,
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
}

/// Data keys from each tenant's [`TenantKeyring`] (tenant scope) and its
/// key-encryption key, held in memory. The host loads keyrings (see
/// `SqliteStore::save_keyring`) and KEKs (from its configuration or KMS) and
/// installs them here; re-install after rotating or destroying keys.
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

fn poisoned<T>(_: T) -> Error {
    Error::internal("encryption: key table lock poisoned by an earlier panic")
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
        kek: KeyEncryptionKey,
    ) -> Result<()> {
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
        });
        self.tenants
            .write()
            .map_err(poisoned)?
            .insert(tenant.clone(), keys);
        Ok(())
    }

    /// Stops sealing `tenant`'s new bodies (and opening old ones); returns whether
    /// it had keys.
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

impl BodyKeys for TenantKeyrings {
    fn sealing_key(&self, tenant: &TenantId) -> Result<Option<Arc<DataKey>>> {
        let Some(keys) = self.get(tenant)? else {
            return Ok(None);
        };
        let Some(id) = keys.keyring.current_key(&KeyScope::Tenant).cloned() else {
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
        keys.key(&id)
            .map(Some)
            .map_err(|e| crypto("unwrap data key", e))
    }

    fn opening_key(&self, tenant: &TenantId, key: &KeyId) -> Result<Option<Arc<DataKey>>> {
        let Some(keys) = self.get(tenant)? else {
            return Err(Error::internal(format!(
                "encryption: tenant `{tenant}` has sealed bodies but no keyring is installed"
            )));
        };
        match keys.key(key) {
            Ok(k) => Ok(Some(k)),
            Err(caas_crypto::Error::KeyDestroyed { .. }) => Ok(None),
            Err(e) => Err(crypto("unwrap data key", e)),
        }
    }
}

/// A [`MessageStore`] that seals bodies before the inner store sees them.
#[derive(Debug, Clone)]
pub struct EncryptedMessageStore {
    inner: Arc<dyn MessageStore>,
    keys: Arc<dyn BodyKeys>,
}

fn aad(tenant: &TenantId, conv: &ConversationId, id: &MessageId) -> AssociatedData {
    AssociatedData::message(tenant.as_str(), conv.as_str(), id.as_str())
}

impl EncryptedMessageStore {
    /// Wraps `inner`, sealing with keys from `keys`.
    pub fn new(inner: Arc<dyn MessageStore>, keys: Arc<dyn BodyKeys>) -> Self {
        Self { inner, keys }
    }

    fn seal(
        &self,
        tenant: &TenantId,
        conv: &ConversationId,
        id: &MessageId,
        body: String,
    ) -> Result<String> {
        match self.keys.sealing_key(tenant)? {
            Some(key) => {
                let envelope = key
                    .seal(&aad(tenant, conv, id), body.as_bytes())
                    .map_err(|e| crypto("seal a body", e))?;
                Ok(format!(
                    "{SEALED_BODY_PREFIX}{}",
                    URL_SAFE_NO_PAD.encode(envelope.to_bytes())
                ))
            }
            // A clear body that looked sealed could never be told apart on read.
            None if body.starts_with(SEALED_BODY_PREFIX) => Err(Error::invalid(
                "body",
                "starts with the reserved sealed-body marker",
            )),
            None => Ok(body),
        }
    }

    /// The plaintext of a stored body; `None` when its key was destroyed.
    fn open_body(&self, m: &Message, stored: String) -> Result<Option<String>> {
        let Some(encoded) = stored.strip_prefix(SEALED_BODY_PREFIX) else {
            return Ok(Some(stored));
        };
        let bad = || {
            Error::internal(format!(
                "encryption: the sealed body of message `{}` is malformed",
                m.id
            ))
        };
        let bytes = URL_SAFE_NO_PAD.decode(encoded).map_err(|_| bad())?;
        let envelope = Envelope::from_bytes(&bytes).map_err(|_| bad())?;
        let Some(key) = self.keys.opening_key(&m.tenant, envelope.key_id())? else {
            return Ok(None);
        };
        let plain = key
            .open(&aad(&m.tenant, &m.conversation, &m.id), &envelope)
            .map_err(|e| crypto(&format!("open the body of message `{}`", m.id), e))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| Error::internal("encryption: a sealed body is not UTF-8"))
    }

    fn open(&self, mut m: Message) -> Result<Message> {
        if let Some(body) = m.body.take() {
            m.body = self.open_body(&m, body)?;
        }
        let edits = std::mem::take(&mut m.edits);
        for mut e in edits {
            if let Some(body) = self.open_body(&m, e.body)? {
                e.body = body;
                m.edits.push(e);
            }
        }
        Ok(m)
    }

    fn open_all(&self, ms: Vec<Message>) -> Result<Vec<Message>> {
        ms.into_iter().map(|m| self.open(m)).collect()
    }

    fn open_changed(&self, c: Changed<Message>) -> Result<Changed<Message>> {
        Ok(Changed {
            value: self.open(c.value)?,
            changed: c.changed,
        })
    }
}

#[async_trait]
impl MessageStore for EncryptedMessageStore {
    async fn append(&self, mut message: NewMessage) -> Result<Appended> {
        if let Some(body) = message.body.take() {
            message.body =
                Some(self.seal(&message.tenant, &message.conversation, &message.id, body)?);
        }
        // A retry returns the stored original, sealed under its own id: `open`
        // binds to the returned message's id, not the new one.
        Ok(match self.inner.append(message).await? {
            Appended::Created(m) => Appended::Created(self.open(m)?),
            Appended::Existing(m) => Appended::Existing(self.open(m)?),
        })
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>> {
        self.inner
            .get(tenant, conversation, id)
            .await?
            .map(|m| self.open(m))
            .transpose()
    }

    async fn edit(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message> {
        let sealed = self.seal(tenant, conversation, id, body.to_owned())?;
        self.open(
            self.inner
                .edit(tenant, conversation, id, &sealed, at)
                .await?,
        )
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Changed<Message>> {
        self.open_changed(self.inner.delete(tenant, conversation, id, by, at).await?)
    }

    async fn react(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        user: &UserId,
        emoji: &str,
        add: bool,
    ) -> Result<Changed<Message>> {
        self.open_changed(
            self.inner
                .react(tenant, conversation, id, user, emoji, add)
                .await?,
        )
    }

    async fn pin(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        pin: Option<(&UserId, Timestamp)>,
    ) -> Result<Changed<Message>> {
        self.open_changed(self.inner.pin(tenant, conversation, id, pin).await?)
    }

    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        page: HistoryPage,
        limit: usize,
    ) -> Result<Vec<Message>> {
        self.open_all(
            self.inner
                .history(tenant, conversation, page, limit)
                .await?,
        )
    }

    async fn pinned(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Message>> {
        self.open_all(self.inner.pinned(tenant, conversation).await?)
    }

    async fn heads(
        &self,
        tenant: &TenantId,
        conversations: &[ConversationId],
    ) -> Result<Vec<ConversationHead>> {
        self.inner.heads(tenant, conversations).await
    }

    async fn count_from_others(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        after: Seq,
    ) -> Result<u64> {
        self.inner
            .count_from_others(tenant, conversation, user, after)
            .await
    }
}

/// A [`SearchIndex`] that keeps the words of encrypting tenants' messages out of
/// the index: for them, indexing a message removes it instead. Conversations and
/// users are indexed as usual.
#[derive(Debug, Clone)]
pub struct EncryptedSearchIndex {
    inner: Arc<dyn SearchIndex>,
    keys: Arc<dyn BodyKeys>,
}

impl EncryptedSearchIndex {
    /// Wraps `inner`, asking `keys` which tenants encrypt.
    pub fn new(inner: Arc<dyn SearchIndex>, keys: Arc<dyn BodyKeys>) -> Self {
        Self { inner, keys }
    }
}

#[async_trait]
impl SearchIndex for EncryptedSearchIndex {
    async fn index_message(&self, message: &Message) -> Result<()> {
        if self.keys.sealing_key(&message.tenant)?.is_some() {
            return self
                .inner
                .remove_message(&message.tenant, &message.conversation, &message.id)
                .await;
        }
        self.inner.index_message(message).await
    }

    async fn remove_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<()> {
        self.inner.remove_message(tenant, conversation, id).await
    }

    async fn index_conversation(&self, conversation: &Conversation) -> Result<()> {
        self.inner.index_conversation(conversation).await
    }

    async fn index_user(&self, user: &User) -> Result<()> {
        self.inner.index_user(user).await
    }

    async fn search_messages(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        limit: usize,
    ) -> Result<Vec<MessageHit>> {
        self.inner
            .search_messages(tenant, query, within, limit)
            .await
    }

    async fn search_conversations(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        limit: usize,
    ) -> Result<Vec<ConversationId>> {
        self.inner
            .search_conversations(tenant, query, within, limit)
            .await
    }

    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        self.inner.search_users(tenant, query, limit).await
    }
}
