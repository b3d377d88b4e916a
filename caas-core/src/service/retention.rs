//! Retention: messages older than a tenant's policy allows become tombstones
//! (their seq stays, `message.deleted` is published as for any delete) and
//! their text leaves the event log and the search index. [`Caas::apply_retention`]
//! walks every tenant with a policy; the platform runs it every hour on every
//! node (runs on several nodes repeat each other's work harmlessly: deleting a
//! tombstone changes nothing).

use std::collections::HashSet;
use std::sync::Arc;

use serde::Serialize;

use super::Caas;
use crate::error::Result;
use crate::events::{Event, EventPayload};
use crate::ids::{ConversationId, CorrelationId, Seq, TenantId, UserId};
use crate::model::{AuditRecord, Conversation, Tenant, TenantStatus};
use crate::ports::HistoryPage;
use crate::time::Timestamp;

/// Tenants, conversations and messages read per store call.
const PAGE: usize = 200;

/// Who deletes a message that outlived its tenant's retention.
pub const RETENTION_ACTOR: &str = "caas:retention";

/// What a retention run did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RetentionRun {
    /// Tenants with a policy.
    pub tenants: u64,
    /// Conversations looked at.
    pub conversations: u64,
    /// Messages turned into tombstones.
    pub messages: u64,
    /// Tenants whose run failed (logged; tried again next time).
    pub failed: u64,
}

impl Caas {
    /// Applies every tenant's retention policy now. Each tenant's deletions
    /// are audited (`retention.apply`, with counts); progress is in the
    /// metrics `caas_retention_conversations_total` and
    /// `caas_retention_messages_deleted_total`.
    pub async fn apply_retention(&self) -> Result<RetentionRun> {
        let now = self.now();
        let mut run = RetentionRun::default();
        let mut after: Option<TenantId> = None;
        loop {
            let tenants = self.b.tenants.list(after.as_ref(), PAGE).await?;
            let full = tenants.len() == PAGE;
            for tenant in tenants {
                after = Some(tenant.id.clone());
                if tenant.status == TenantStatus::Active && tenant.settings.retention.is_set() {
                    run.tenants += 1;
                    // One tenant's failure is that tenant's: the others go on,
                    // and the next run tries it again.
                    match self.retain_tenant(&tenant, now).await {
                        Ok((conversations, messages)) => {
                            run.conversations += conversations;
                            run.messages += messages;
                        }
                        Err(e) => {
                            run.failed += 1;
                            tracing::warn!(tenant = %tenant.id, error = %e, "retention failed for a tenant");
                        }
                    }
                }
            }
            if !full {
                return Ok(run);
            }
        }
    }

    /// One tenant: returns the conversations looked at and messages deleted.
    async fn retain_tenant(&self, tenant: &Tenant, now: Timestamp) -> Result<(u64, u64)> {
        let policy = &tenant.settings.retention;
        let (mut looked, mut deleted) = (0, HashSet::new());
        // Whatever was tombstoned before a failure is still scrubbed and
        // audited below; the failure is returned after.
        let walked = self
            .walk_conversations(tenant, now, &mut looked, &mut deleted)
            .await;
        if !deleted.is_empty() {
            self.b.events.scrub_messages(&tenant.id, &deleted).await?;
            self.audit(
                &tenant.id,
                AuditRecord {
                    position: 0,
                    at: now,
                    actor: RETENTION_ACTOR.into(),
                    action: "retention.apply".into(),
                    target: format!("tenant:{}", tenant.id),
                    rule: "tenant-retention-policy".into(),
                    correlation_id: CorrelationId::generate(now),
                    detail: serde_json::json!({
                        "conversations": looked,
                        "messages": deleted.len(),
                        "policy": policy,
                    }),
                    hash: String::new(),
                },
            )
            .await?;
        }
        walked.map(|()| (looked, deleted.len() as u64))
    }

    /// Every conversation of the tenant whose kind has a limit.
    async fn walk_conversations(
        &self,
        tenant: &Tenant,
        now: Timestamp,
        looked: &mut u64,
        deleted: &mut HashSet<crate::ids::MessageId>,
    ) -> Result<()> {
        let policy = &tenant.settings.retention;
        let mut after: Option<ConversationId> = None;
        loop {
            let page = self
                .b
                .conversations
                .list(&tenant.id, after.as_ref(), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for conv in page {
                after = Some(conv.id.clone());
                let Some(days) = policy.days(conv.kind) else {
                    continue;
                };
                *looked += 1;
                #[cfg(feature = "metrics")]
                metrics::counter!("caas_retention_conversations_total").increment(1);
                let keep_from =
                    Timestamp::from_secs(now.as_secs().saturating_sub(u64::from(days) * 86_400));
                self.expire_messages(&conv, keep_from, now, deleted).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }

    /// Tombstones the conversation's messages created before `keep_from`.
    /// Seqs grow with time, so the walk stops at the first message kept.
    async fn expire_messages(
        &self,
        conv: &Conversation,
        keep_from: Timestamp,
        now: Timestamp,
        deleted: &mut HashSet<crate::ids::MessageId>,
    ) -> Result<()> {
        let by = UserId::parse(RETENTION_ACTOR)?;
        let mut after = Seq(0);
        let mut audience: Option<Arc<[UserId]>> = None;
        loop {
            let page = self
                .b
                .messages
                .history(&conv.tenant, &conv.id, HistoryPage::After(after), PAGE)
                .await?;
            let full = page.len() == PAGE;
            for m in page {
                if m.created_at >= keep_from {
                    return Ok(());
                }
                after = m.seq;
                if m.is_deleted() {
                    continue;
                }
                let changed = self
                    .b
                    .messages
                    .delete(&conv.tenant, &conv.id, &m.id, &by, now)
                    .await?;
                if !changed.changed {
                    continue;
                }
                deleted.insert(m.id.clone());
                #[cfg(feature = "metrics")]
                metrics::counter!("caas_retention_messages_deleted_total").increment(1);
                let audience = match &audience {
                    Some(a) => a.clone(),
                    None => {
                        let a = self.audience(&conv.tenant, &conv.id).await?;
                        audience = Some(a.clone());
                        a
                    }
                };
                let event = Arc::new(Event {
                    tenant: conv.tenant.clone(),
                    correlation_id: CorrelationId::generate(now),
                    at: now,
                    audience,
                    payload: EventPayload::MessageDeleted {
                        conversation_id: conv.id.clone(),
                        message_id: m.id.clone(),
                        seq: m.seq,
                        deleted_by: by.clone(),
                    },
                });
                self.index(&event).await;
                self.b.events.append(event.clone()).await?;
                self.b.bus.publish(event).await?;
            }
            if !full {
                return Ok(());
            }
        }
    }
}
