//! [`EncryptedSearchIndex`]: message search for sealed tenants by blind tokens.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Conversation, Message, User};
use caas_core::ports::{MessageHit, SearchIndex, tokenize};
use caas_crypto::blind::BlindIndex;

use super::BodyKeys;

/// Longest word prefix that gets a token of its own: a query word longer than
/// this is looked up by its first this-many characters.
const MAX_PREFIX_CHARS: usize = 24;

/// A [`SearchIndex`] that indexes a sealed tenant's messages by blind tokens of
/// their words' prefixes and searches them by the tokens of the query's words,
/// so the inner index never holds a word of a sealed body. Tenants in clear,
/// conversations and users pass through unchanged.
#[derive(Debug, Clone)]
pub struct EncryptedSearchIndex {
    inner: Arc<dyn SearchIndex>,
    keys: Arc<dyn BodyKeys>,
}

impl EncryptedSearchIndex {
    /// Wraps `inner`, with keys from `keys`.
    pub fn new(inner: Arc<dyn SearchIndex>, keys: Arc<dyn BodyKeys>) -> Self {
        Self { inner, keys }
    }
}

/// The tokens a text is found by: one per distinct prefix of each word (so a
/// query word, which matches as a prefix, finds it by one exact token).
fn blind_text(index: &BlindIndex, text: &str) -> String {
    let mut prefixes = BTreeSet::new();
    for word in tokenize(text) {
        let chars: Vec<char> = word.chars().take(MAX_PREFIX_CHARS).collect();
        for n in 1..=chars.len() {
            prefixes.insert(chars[..n].iter().collect::<String>());
        }
    }
    prefixes
        .iter()
        .map(|p| index.token(p))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The query of tokens that finds what `query` finds in clear.
fn blind_query(index: &BlindIndex, query: &str) -> String {
    tokenize(query)
        .map(|w| index.token(&w.chars().take(MAX_PREFIX_CHARS).collect::<String>()))
        .collect::<Vec<_>>()
        .join(" ")
}

#[async_trait]
impl SearchIndex for EncryptedSearchIndex {
    async fn index_message(&self, message: &Message) -> Result<()> {
        if !self.keys.seals(&message.tenant).await? {
            return self.inner.index_message(message).await;
        }
        match self.keys.search_index(&message.tenant).await? {
            Some(index) => {
                let mut blinded = message.clone();
                blinded.body = message.body.as_deref().map(|b| blind_text(&index, b));
                blinded.edits.clear();
                self.inner.index_message(&blinded).await
            }
            None => {
                self.inner
                    .remove_message(&message.tenant, &message.conversation, &message.id)
                    .await
            }
        }
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
        after: Option<(Seq, &ConversationId)>,
        limit: usize,
    ) -> Result<Vec<MessageHit>> {
        match self.keys.search_index(tenant).await? {
            Some(index) => {
                let blinded = blind_query(&index, query);
                self.inner
                    .search_messages(tenant, &blinded, within, after, limit)
                    .await
            }
            None => {
                self.inner
                    .search_messages(tenant, query, within, after, limit)
                    .await
            }
        }
    }

    async fn search_conversations(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<ConversationId>> {
        self.inner
            .search_conversations(tenant, query, within, after, limit)
            .await
    }

    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        self.inner.search_users(tenant, query, after, limit).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use caas_crypto::KeyId;
    use caas_crypto::envelope::{AeadAlgorithm, DataKey};

    #[test]
    fn a_query_word_finds_every_word_it_is_a_prefix_of_by_one_token() {
        let key = DataKey::from_bytes(
            KeyId::new("dk_s").unwrap(),
            AeadAlgorithm::Aes256Gcm,
            &[3; 32],
        )
        .unwrap();
        let index = BlindIndex::from_data_key(&key);
        let doc: BTreeSet<String> = blind_text(&index, "Harbour at DAWN")
            .split(' ')
            .map(str::to_owned)
            .collect();
        for q in ["harbour", "harb", "h", "dawn", "Da", "at"] {
            assert!(doc.contains(&blind_query(&index, q)), "{q}");
        }
        for q in ["harbours", "dusk", "arbour"] {
            assert!(!doc.contains(&blind_query(&index, q)), "{q}");
        }
        assert!(!blind_text(&index, "Harbour at DAWN").contains("harb"));
    }
}
