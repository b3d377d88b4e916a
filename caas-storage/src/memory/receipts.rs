use std::collections::BTreeMap;
use std::sync::Mutex;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, Seq, TenantId, UserId};
use caas_core::model::{Receipt, ReceiptKind};
use caas_core::ports::ReceiptStore;
use caas_core::time::Timestamp;

use super::{Map, poisoned};

/// Receipt watermarks in memory.
#[derive(Debug, Default)]
pub struct MemoryReceiptStore {
    receipts: Mutex<Map<(TenantId, ConversationId), BTreeMap<UserId, Receipt>>>,
}

fn zero(conversation: &ConversationId, user: &UserId) -> Receipt {
    Receipt {
        conversation: conversation.clone(),
        user: user.clone(),
        delivered: Seq::ZERO,
        read: Seq::ZERO,
        updated_at: Timestamp::EPOCH,
    }
}

#[async_trait]
impl ReceiptStore for MemoryReceiptStore {
    async fn advance(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        kind: ReceiptKind,
        seq: Seq,
        at: Timestamp,
    ) -> Result<Option<Receipt>> {
        let mut map = self.receipts.lock().map_err(poisoned)?;
        let r = map
            .entry((tenant.clone(), conversation.clone()))
            .or_default()
            .entry(user.clone())
            .or_insert_with(|| zero(conversation, user));
        let mut moved = false;
        if kind == ReceiptKind::Read && seq > r.read {
            r.read = seq;
            moved = true;
        }
        if seq > r.delivered {
            r.delivered = seq;
            moved = true;
        }
        if moved {
            r.updated_at = at;
        }
        Ok(moved.then(|| r.clone()))
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Receipt> {
        let map = self.receipts.lock().map_err(poisoned)?;
        Ok(map
            .get(&(tenant.clone(), conversation.clone()))
            .and_then(|m| m.get(user).cloned())
            .unwrap_or_else(|| zero(conversation, user)))
    }

    async fn list(&self, tenant: &TenantId, conversation: &ConversationId) -> Result<Vec<Receipt>> {
        let map = self.receipts.lock().map_err(poisoned)?;
        Ok(map
            .get(&(tenant.clone(), conversation.clone()))
            .map(|m| m.values().cloned().collect())
            .unwrap_or_default())
    }
}
