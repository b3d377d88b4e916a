//! At-rest encryption of message bodies, per tenant, as decorators over any
//! backend's message store, event log and search index: the memory, SQLite,
//! PostgreSQL and MongoDB stores all get it the same way. [`wrap`] puts all three
//! on a [`Backends`], so no path that writes a body (a send, an edit, the event
//! logged with either, an index entry) can go around them.
//!
//! [`EncryptedMessageStore`] seals each body (and each earlier body kept by an
//! edit) into a caas-crypto [`Envelope`] under the tenant's current data key,
//! bound by its associated data to the tenant, conversation and message id, so a
//! sealed body copied onto another message does not open. The inner store keeps
//! it as text: [`crate::SEALED_BODY_PREFIX`] and the base64url envelope. A send's
//! `message.created` event is built by the inner store from the sealed message,
//! so the log holds the envelope too. [`EncryptedEventLog`] seals the bodies of
//! the other events that carry one (edits) and opens every body it reads back.
//! Reads open them again; callers never see the difference.
//!
//! What stays in clear: ids, seqs, senders, timestamps, reactions, attachment
//! references, mentions, conversation and user names. End-to-end encrypted
//! messages are already opaque and are stored unchanged.
//!
//! **Search.** [`EncryptedSearchIndex`] indexes a sealed tenant's messages by
//! blind tokens ([`caas_crypto::blind`]) of every prefix of every word, under
//! the tenant's search key, and turns queries into the same tokens: the index
//! holds no word in clear and search keeps its matching rule (every query word
//! is a prefix of a word of the message). A tenant whose keyring has no search
//! key is not indexed at all.
//!
//! Keys come from a [`BodyKeys`]: [`TenantKeyrings`] serves them from keyrings
//! the host installs; [`ManagedKeyrings`] creates each tenant's keyring and each
//! user's data key on first use and keeps them in a [`KeyringStore`] (the
//! embedded platform's `keys.db`, [`crate::sqlite::KeyFile`], a file apart from
//! the data), wrapped under one key-encryption key. A body (and every edit of
//! it) is sealed under its sender's key. Tenants without a sealing key are
//! stored in clear, so encryption can be switched on per tenant; bodies sealed
//! before stay readable as long as their key exists.
//!
//! **Crypto-shredding.** Erasing a user destroys their keys ([`Shredder`], which
//! [`wrap`] installs): the bodies they sealed read as absent from then on, in
//! the live store and in every copy of it, since no copy of the data holds the
//! key. Such a message keeps its seq, sender and time, with no body.

mod events;
mod keyrings;
mod messages;
mod search;

use std::sync::Arc;

use async_trait::async_trait;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use caas_core::events::{Event, EventPayload};
use caas_core::ids::{ConversationId, MessageId, TenantId, UserId};
use caas_core::model::Message;
use caas_core::ports::{Backends, Shredder};
use caas_core::{Error, Result};
use caas_crypto::KeyId;
use caas_crypto::blind::BlindIndex;
use caas_crypto::envelope::{AssociatedData, DataKey, Envelope};

pub use events::EncryptedEventLog;
#[cfg(feature = "sqlite")]
pub(crate) use keyrings::erased;
pub use keyrings::{KeyringStore, ManagedKeyrings, MemoryKeyrings, TenantKeyrings};
pub use messages::EncryptedMessageStore;
pub use search::EncryptedSearchIndex;

use crate::SEALED_BODY_PREFIX;

/// Where the decorators get keys, and how a user's are destroyed ([`Shredder`]:
/// erasure calls it).
#[async_trait]
pub trait BodyKeys: Shredder + Send + Sync + std::fmt::Debug {
    /// The key that seals new bodies `owner` writes in `tenant` (a message's
    /// sender, for its body and every edit of it), or `None` to store them in
    /// clear.
    async fn sealing_key(&self, tenant: &TenantId, owner: &UserId) -> Result<Option<Arc<DataKey>>>;

    /// Whether `tenant`'s bodies are sealed (asking makes no key).
    async fn seals(&self, tenant: &TenantId) -> Result<bool>;

    /// The key a stored envelope names; `Ok(None)` when that key was destroyed
    /// (crypto-shredded), an error when it is unknown.
    async fn opening_key(&self, tenant: &TenantId, key: &KeyId) -> Result<Option<Arc<DataKey>>>;

    /// The blind index of `tenant`'s search entries, when its bodies are sealed
    /// and it has a search key.
    async fn search_index(&self, tenant: &TenantId) -> Result<Option<Arc<BlindIndex>>>;
}

/// Wraps the message store, the event log and the search index of `backends`
/// with at-rest encryption under `keys`, and makes `keys` the backends'
/// [`Shredder`]: the one way to switch it on, so the four always agree.
pub fn wrap(backends: Backends, keys: Arc<dyn BodyKeys>) -> Backends {
    Backends {
        messages: Arc::new(EncryptedMessageStore::new(
            backends.messages.clone(),
            keys.clone(),
        )),
        events: Arc::new(EncryptedEventLog::new(
            backends.events.clone(),
            keys.clone(),
        )),
        search: Arc::new(EncryptedSearchIndex::new(
            backends.search.clone(),
            keys.clone(),
        )),
        shredder: keys,
        ..backends
    }
}

fn crypto(context: &str, e: caas_crypto::Error) -> Error {
    Error::Internal {
        context: format!("encryption: {context}"),
        source: Some(Box::new(e)),
    }
}

fn aad(tenant: &TenantId, conv: &ConversationId, id: &MessageId) -> AssociatedData {
    AssociatedData::message(tenant.as_str(), conv.as_str(), id.as_str())
}

/// Seals and opens bodies; shared by the decorators.
#[derive(Debug, Clone)]
struct Sealer {
    keys: Arc<dyn BodyKeys>,
}

impl Sealer {
    /// `body` of a message `owner` sent, as the tenant stores it: sealed under
    /// the owner's current key, or in clear.
    async fn seal(
        &self,
        tenant: &TenantId,
        conv: &ConversationId,
        id: &MessageId,
        owner: &UserId,
        body: String,
    ) -> Result<String> {
        match self.keys.sealing_key(tenant, owner).await? {
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

    /// Seals the body and the edit history of `m`.
    async fn seal_message(&self, mut m: Message) -> Result<Message> {
        if let Some(body) = m.body.take() {
            m.body = Some(
                self.seal(&m.tenant, &m.conversation, &m.id, &m.sender, body)
                    .await?,
            );
        }
        for e in &mut m.edits {
            let body = std::mem::take(&mut e.body);
            e.body = self
                .seal(&m.tenant, &m.conversation, &m.id, &m.sender, body)
                .await?;
        }
        Ok(m)
    }

    async fn open_body(&self, m: &Message, stored: String) -> Result<Option<String>> {
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
        let Some(key) = self.keys.opening_key(&m.tenant, envelope.key_id()).await? else {
            return Ok(None);
        };
        let plain = key
            .open(&aad(&m.tenant, &m.conversation, &m.id), &envelope)
            .map_err(|e| crypto(&format!("open the body of message `{}`", m.id), e))?;
        String::from_utf8(plain)
            .map(Some)
            .map_err(|_| Error::internal("encryption: a sealed body is not UTF-8"))
    }

    /// Opens the body and the edit history of `m`; bodies whose key was
    /// destroyed read as absent.
    async fn open(&self, mut m: Message) -> Result<Message> {
        if let Some(body) = m.body.take() {
            m.body = self.open_body(&m, body).await?;
        }
        let edits = std::mem::take(&mut m.edits);
        for mut e in edits {
            if let Some(body) = self.open_body(&m, e.body).await? {
                e.body = body;
                m.edits.push(e);
            }
        }
        Ok(m)
    }

    async fn open_all(&self, ms: Vec<Message>) -> Result<Vec<Message>> {
        let mut out = Vec::with_capacity(ms.len());
        for m in ms {
            out.push(self.open(m).await?);
        }
        Ok(out)
    }

    /// `event` with the message it carries (if any) sealed (`seal`) or opened.
    async fn event(&self, event: Arc<Event>, seal: bool) -> Result<Arc<Event>> {
        let (EventPayload::MessageCreated { message } | EventPayload::MessageEdited { message }) =
            &event.payload
        else {
            return Ok(event);
        };
        let message = if seal {
            self.seal_message(message.clone()).await?
        } else {
            self.open(message.clone()).await?
        };
        let mut event = Arc::unwrap_or_clone(event);
        match &mut event.payload {
            EventPayload::MessageCreated { message: m }
            | EventPayload::MessageEdited { message: m } => {
                *m = message;
            }
            _ => {}
        }
        Ok(Arc::new(event))
    }
}
