use std::sync::Mutex;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, TenantId};
use caas_core::model::{Flag, FlagResolution};
use caas_core::ports::FlagStore;

use super::{Map, poisoned};

/// Flags in memory, per tenant and conversation in the order they came.
#[derive(Debug, Default)]
pub struct MemoryFlagStore {
    flags: Mutex<Map<(TenantId, ConversationId), Vec<Flag>>>,
}

#[async_trait]
impl FlagStore for MemoryFlagStore {
    async fn flag(&self, flag: &Flag) -> Result<bool> {
        let mut map = self.flags.lock().map_err(poisoned)?;
        let list = map
            .entry((flag.tenant.clone(), flag.conversation_id.clone()))
            .or_default();
        if list
            .iter()
            .any(|f| f.message_id == flag.message_id && f.reporter == flag.reporter)
        {
            return Ok(false);
        }
        list.push(flag.clone());
        Ok(true)
    }

    async fn open_flags(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        limit: usize,
    ) -> Result<Vec<Flag>> {
        let map = self.flags.lock().map_err(poisoned)?;
        let mut open: Vec<Flag> = map
            .get(&(tenant.clone(), conversation.clone()))
            .map(|l| {
                l.iter()
                    .filter(|f| f.resolution.is_none())
                    .cloned()
                    .collect()
            })
            .unwrap_or_default();
        open.sort_by(|a, b| {
            (a.created_at, &a.message_id, &a.reporter).cmp(&(
                b.created_at,
                &b.message_id,
                &b.reporter,
            ))
        });
        open.truncate(limit);
        Ok(open)
    }

    async fn resolve(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
        resolution: &FlagResolution,
    ) -> Result<u64> {
        let mut map = self.flags.lock().map_err(poisoned)?;
        let mut settled = 0;
        if let Some(list) = map.get_mut(&(tenant.clone(), conversation.clone())) {
            for f in list
                .iter_mut()
                .filter(|f| &f.message_id == message && f.resolution.is_none())
            {
                f.resolution = Some(resolution.clone());
                settled += 1;
            }
        }
        Ok(settled)
    }
}
