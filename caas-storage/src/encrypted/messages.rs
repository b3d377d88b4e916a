//! [`EncryptedMessageStore`]: the message store with bodies sealed at rest.

use std::sync::Arc;

use async_trait::async_trait;
use caas_core::events::Announce;
use caas_core::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Message, NewMessage};
use caas_core::ports::{Appended, Changed, ConversationHead, HistoryPage, MessageStore};
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};

use super::{BodyKeys, Sealer};

/// A [`MessageStore`] that seals bodies before the inner store sees them and
/// opens them on every read.
#[derive(Debug, Clone)]
pub struct EncryptedMessageStore {
    inner: Arc<dyn MessageStore>,
    sealer: Sealer,
}

impl EncryptedMessageStore {
    /// Wraps `inner`, with keys from `keys`.
    pub fn new(inner: Arc<dyn MessageStore>, keys: Arc<dyn BodyKeys>) -> Self {
        Self {
            inner,
            sealer: Sealer { keys },
        }
    }

    async fn open_changed(&self, c: Changed<Message>) -> Result<Changed<Message>> {
        Ok(Changed {
            value: self.sealer.open(c.value).await?,
            changed: c.changed,
        })
    }
}

#[async_trait]
impl MessageStore for EncryptedMessageStore {
    async fn append(&self, mut message: NewMessage, announce: Announce) -> Result<Appended> {
        if let Some(body) = message.body.take() {
            message.body = Some(
                self.sealer
                    .seal(
                        &message.tenant,
                        &message.conversation,
                        &message.id,
                        &message.sender,
                        body,
                    )
                    .await?,
            );
        }
        // The inner store logs the event it builds from the sealed message; what
        // comes back is opened for the caller (and the bus). A retry returns the
        // stored original, sealed under its own id: `open` binds to the returned
        // message's id, not the new one.
        Ok(match self.inner.append(message, announce).await? {
            Appended::Created {
                message,
                event,
                cursor,
            } => Appended::Created {
                message: self.sealer.open(message).await?,
                event: self.sealer.event(event, false).await?,
                cursor,
            },
            Appended::Existing(m) => Appended::Existing(self.sealer.open(m).await?),
        })
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<Option<Message>> {
        match self.inner.get(tenant, conversation, id).await? {
            Some(m) => Ok(Some(self.sealer.open(m).await?)),
            None => Ok(None),
        }
    }

    async fn edit(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        body: &str,
        at: Timestamp,
    ) -> Result<Message> {
        // Sealed under the sender's key, like the body it replaces, so that
        // erasing the sender shreds every version.
        let sender = self
            .inner
            .get(tenant, conversation, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Message, id))?
            .sender;
        let sealed = self
            .sealer
            .seal(tenant, conversation, id, &sender, body.to_owned())
            .await?;
        let m = self
            .inner
            .edit(tenant, conversation, id, &sealed, at)
            .await?;
        self.sealer.open(m).await
    }

    async fn delete(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        by: &UserId,
        at: Timestamp,
    ) -> Result<Changed<Message>> {
        let c = self.inner.delete(tenant, conversation, id, by, at).await?;
        self.open_changed(c).await
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
        let c = self
            .inner
            .react(tenant, conversation, id, user, emoji, add)
            .await?;
        self.open_changed(c).await
    }

    async fn pin(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
        pin: Option<(&UserId, Timestamp)>,
    ) -> Result<Changed<Message>> {
        let c = self.inner.pin(tenant, conversation, id, pin).await?;
        self.open_changed(c).await
    }

    async fn history(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        page: HistoryPage,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let ms = self
            .inner
            .history(tenant, conversation, page, limit)
            .await?;
        self.sealer.open_all(ms).await
    }

    async fn pinned(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Message>> {
        let ms = self.inner.pinned(tenant, conversation).await?;
        self.sealer.open_all(ms).await
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
