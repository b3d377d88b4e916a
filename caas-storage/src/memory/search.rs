use std::sync::RwLock;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{Conversation, Message, User};
use caas_core::ports::{MessageHit, SearchIndex, tokenize};

use super::{Map, poisoned};

/// A message's seq and body (split into words at query time).
type Indexed = (Seq, Box<str>);

#[derive(Debug, Default)]
struct State {
    messages: Map<(TenantId, ConversationId), Map<MessageId, Indexed>>,
    conversations: Map<(TenantId, ConversationId), Vec<String>>,
    users: Map<TenantId, Map<UserId, Vec<String>>>,
}

fn matches(query: &[String], words: &[String]) -> bool {
    !query.is_empty()
        && query
            .iter()
            .all(|q| words.iter().any(|w| w.starts_with(q.as_str())))
}

fn matches_text(query: &[String], text: &str) -> bool {
    let words: Vec<String> = tokenize(text).collect();
    matches(query, &words)
}

/// Search in memory: a scan of the caller's conversations. Fine for tests and small
/// deployments; the SQLite backend uses FTS5.
#[derive(Debug, Default)]
pub struct MemorySearchIndex {
    state: RwLock<State>,
}

#[async_trait]
impl SearchIndex for MemorySearchIndex {
    async fn index_message(&self, m: &Message) -> Result<()> {
        let mut st = self.state.write().map_err(poisoned)?;
        let conv = st
            .messages
            .entry((m.tenant.clone(), m.conversation.clone()))
            .or_default();
        match (&m.body, m.is_deleted()) {
            (Some(body), false) => {
                // Words are split at query time: indexing stays one copy of the body.
                conv.insert(m.id.clone(), (m.seq, Box::from(body.as_str())));
            }
            _ => {
                conv.remove(&m.id);
            }
        }
        Ok(())
    }

    async fn remove_message(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        id: &MessageId,
    ) -> Result<()> {
        let mut st = self.state.write().map_err(poisoned)?;
        if let Some(c) = st.messages.get_mut(&(tenant.clone(), conversation.clone())) {
            c.remove(id);
        }
        Ok(())
    }

    async fn index_conversation(&self, c: &Conversation) -> Result<()> {
        let mut st = self.state.write().map_err(poisoned)?;
        let words = c
            .name
            .as_deref()
            .map(|n| tokenize(n).collect())
            .unwrap_or_default();
        st.conversations
            .insert((c.tenant.clone(), c.id.clone()), words);
        Ok(())
    }

    async fn index_user(&self, u: &User) -> Result<()> {
        let mut st = self.state.write().map_err(poisoned)?;
        let words = tokenize(&u.name).chain(tokenize(u.id.as_str())).collect();
        st.users
            .entry(u.tenant.clone())
            .or_default()
            .insert(u.id.clone(), words);
        Ok(())
    }

    async fn search_messages(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<(Seq, &ConversationId)>,
        limit: usize,
    ) -> Result<Vec<MessageHit>> {
        let q: Vec<String> = tokenize(query).collect();
        let st = self.state.read().map_err(poisoned)?;
        let mut hits = Vec::new();
        for c in within {
            if let Some(msgs) = st.messages.get(&(tenant.clone(), c.clone())) {
                for (id, (seq, body)) in msgs {
                    if matches_text(&q, body) {
                        hits.push(MessageHit {
                            conversation: c.clone(),
                            message_id: id.clone(),
                            seq: *seq,
                        });
                    }
                }
            }
        }
        let order = |a: &MessageHit, b: &MessageHit| {
            b.seq
                .cmp(&a.seq)
                .then_with(|| a.conversation.cmp(&b.conversation))
        };
        if let Some((seq, conv)) = after {
            hits.retain(|h| h.seq < seq || (h.seq == seq && h.conversation > *conv));
        }
        hits.sort_by(order);
        hits.truncate(limit);
        Ok(hits)
    }

    async fn search_conversations(
        &self,
        tenant: &TenantId,
        query: &str,
        within: &[ConversationId],
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<ConversationId>> {
        let q: Vec<String> = tokenize(query).collect();
        let st = self.state.read().map_err(poisoned)?;
        let mut ids: Vec<ConversationId> = within
            .iter()
            .filter(|c| {
                st.conversations
                    .get(&(tenant.clone(), (*c).clone()))
                    .is_some_and(|w| matches(&q, w))
            })
            .filter(|c| after.is_none_or(|a| *c > a))
            .cloned()
            .collect();
        ids.sort();
        ids.dedup();
        ids.truncate(limit);
        Ok(ids)
    }

    async fn search_users(
        &self,
        tenant: &TenantId,
        query: &str,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        let q: Vec<String> = tokenize(query).collect();
        let st = self.state.read().map_err(poisoned)?;
        let mut ids: Vec<UserId> = st
            .users
            .get(tenant)
            .map(|m| {
                m.iter()
                    .filter(|(u, w)| matches(&q, w) && after.is_none_or(|a| *u > a))
                    .map(|(u, _)| u.clone())
                    .collect()
            })
            .unwrap_or_default();
        ids.sort();
        ids.truncate(limit);
        Ok(ids)
    }
}
