use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::RwLock;

use async_trait::async_trait;
use caas_core::ids::{ConversationId, TenantId, UserId};
use caas_core::model::{Conversation, Member};
use caas_core::ports::{ConversationStore, Created};
use caas_core::{EntityKind, Error, Result};

use super::{Map, poisoned};

#[derive(Debug)]
struct Entry {
    conversation: Conversation,
    members: BTreeMap<UserId, Member>,
}

#[derive(Debug, Default)]
struct State {
    conversations: Map<(TenantId, ConversationId), Entry>,
    direct: Map<(TenantId, String), ConversationId>,
    by_user: Map<(TenantId, UserId), BTreeSet<ConversationId>>,
    /// Each tenant's conversation ids, in order, for [`ConversationStore::list`].
    by_tenant: Map<TenantId, BTreeSet<ConversationId>>,
}

/// Conversations and members in memory. One lock over the four indexes keeps them
/// consistent with each other (a create is all or nothing).
#[derive(Debug, Default)]
pub struct MemoryConversationStore {
    state: RwLock<State>,
}

#[async_trait]
impl ConversationStore for MemoryConversationStore {
    async fn create(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<Created<Conversation>> {
        let mut st = self.state.write().map_err(poisoned)?;
        let tenant = &conversation.tenant;
        if let Some(key) = &conversation.direct_key
            && let Some(id) = st.direct.get(&(tenant.clone(), key.clone()))
            && let Some(e) = st.conversations.get(&(tenant.clone(), id.clone()))
        {
            return Ok(Created::Existing(e.conversation.clone()));
        }
        let key = (tenant.clone(), conversation.id.clone());
        if st.conversations.contains_key(&key) {
            return Err(Error::conflict(format!(
                "conversation `{}` exists",
                conversation.id
            )));
        }
        if let Some(k) = &conversation.direct_key {
            st.direct
                .insert((tenant.clone(), k.clone()), conversation.id.clone());
        }
        for m in members {
            st.by_user
                .entry((tenant.clone(), m.user.clone()))
                .or_default()
                .insert(conversation.id.clone());
        }
        st.by_tenant
            .entry(tenant.clone())
            .or_default()
            .insert(conversation.id.clone());
        st.conversations.insert(
            key,
            Entry {
                conversation: conversation.clone(),
                members: members
                    .iter()
                    .map(|m| (m.user.clone(), m.clone()))
                    .collect(),
            },
        );
        Ok(Created::New(conversation.clone()))
    }

    async fn get(&self, tenant: &TenantId, id: &ConversationId) -> Result<Option<Conversation>> {
        let st = self.state.read().map_err(poisoned)?;
        Ok(st
            .conversations
            .get(&(tenant.clone(), id.clone()))
            .map(|e| e.conversation.clone()))
    }

    async fn update(&self, conversation: &Conversation) -> Result<()> {
        let mut st = self.state.write().map_err(poisoned)?;
        match st
            .conversations
            .get_mut(&(conversation.tenant.clone(), conversation.id.clone()))
        {
            Some(e) => {
                e.conversation.name = conversation.name.clone();
                e.conversation.attributes = conversation.attributes.clone();
                Ok(())
            }
            None => Err(Error::not_found(EntityKind::Conversation, &conversation.id)),
        }
    }

    async fn member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>> {
        let st = self.state.read().map_err(poisoned)?;
        Ok(st
            .conversations
            .get(&(tenant.clone(), conversation.clone()))
            .and_then(|e| e.members.get(user).cloned()))
    }

    async fn members(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Member>> {
        let st = self.state.read().map_err(poisoned)?;
        Ok(st
            .conversations
            .get(&(tenant.clone(), conversation.clone()))
            .map(|e| e.members.values().cloned().collect())
            .unwrap_or_default())
    }

    async fn put_member(&self, tenant: &TenantId, member: &Member) -> Result<bool> {
        let mut st = self.state.write().map_err(poisoned)?;
        let e = st
            .conversations
            .get_mut(&(tenant.clone(), member.conversation.clone()))
            .ok_or_else(|| Error::not_found(EntityKind::Conversation, &member.conversation))?;
        let new = e
            .members
            .insert(member.user.clone(), member.clone())
            .is_none();
        st.by_user
            .entry((tenant.clone(), member.user.clone()))
            .or_default()
            .insert(member.conversation.clone());
        Ok(new)
    }

    async fn remove_member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<bool> {
        let mut st = self.state.write().map_err(poisoned)?;
        let removed = st
            .conversations
            .get_mut(&(tenant.clone(), conversation.clone()))
            .is_some_and(|e| e.members.remove(user).is_some());
        if removed && let Some(set) = st.by_user.get_mut(&(tenant.clone(), user.clone())) {
            set.remove(conversation);
        }
        Ok(removed)
    }

    async fn list_for_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<(Conversation, Member)>> {
        let st = self.state.read().map_err(poisoned)?;
        let Some(ids) = st.by_user.get(&(tenant.clone(), user.clone())) else {
            return Ok(Vec::new());
        };
        Ok(ids
            .iter()
            .filter_map(|id| {
                let e = st.conversations.get(&(tenant.clone(), id.clone()))?;
                Some((e.conversation.clone(), e.members.get(user)?.clone()))
            })
            .collect())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        let st = self.state.read().map_err(poisoned)?;
        let Some(ids) = st.by_tenant.get(tenant) else {
            return Ok(Vec::new());
        };
        let start = after.map_or(Bound::Unbounded, Bound::Excluded);
        Ok(ids
            .range::<ConversationId, _>((start, Bound::Unbounded))
            .filter_map(|id| st.conversations.get(&(tenant.clone(), id.clone())))
            .take(limit)
            .map(|e| e.conversation.clone())
            .collect())
    }
}
