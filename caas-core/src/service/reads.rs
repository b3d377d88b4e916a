//! Receipts, the conversation list with unread counts, and sync.

use super::Caas;
use crate::error::{Error, Result};
use crate::events::{EventPayload, LoggedEvent};
use crate::ids::{ConversationId, Cursor, Seq};
use crate::model::{Conversation, Member, Receipt, ReceiptKind};
use crate::policy::Action;
use crate::principal::Principal;
use crate::time::Timestamp;

/// One entry of the caller's conversation list.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationSummary {
    /// The conversation.
    pub conversation: Conversation,
    /// The caller's membership.
    pub member: Member,
    /// The newest seq.
    pub last_seq: Seq,
    /// When the newest message was sent (creation time when empty).
    pub last_activity: Timestamp,
    /// The caller's read watermark.
    pub read_seq: Seq,
    /// Messages after the read watermark sent by others.
    pub unread_count: u64,
}

/// A page of `sync`.
#[derive(Debug, Clone, PartialEq)]
pub struct SyncPage {
    /// The events, in log order.
    pub events: Vec<LoggedEvent>,
    /// Pass this as `since` next time.
    pub next_cursor: Cursor,
    /// Whether more events are waiting.
    pub has_more: bool,
}

impl Caas {
    /// Moves the caller's delivered or read watermark forward to `seq` (which must
    /// not be beyond the conversation's newest message). Going backwards changes
    /// nothing and publishes nothing. Returns the receipt after the call.
    pub async fn mark(
        &self,
        p: &Principal,
        conv: &ConversationId,
        kind: ReceiptKind,
        seq: Seq,
    ) -> Result<Receipt> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        self.conversation_action(&ctx, conv, Action::ReceiptUpdate)
            .await?;
        self.rate_limit(&ctx, Action::ReceiptUpdate).await?;
        let head = self
            .b
            .messages
            .heads(&ctx.tenant, std::slice::from_ref(conv))
            .await?;
        let last = head.first().map(|h| h.last_seq).unwrap_or_default();
        if seq > last {
            return Err(Error::invalid(
                "seq",
                format!("is beyond the newest message ({last})"),
            ));
        }
        match self
            .b
            .receipts
            .advance(&ctx.tenant, conv, &user, kind, seq, ctx.now)
            .await?
        {
            None => self.b.receipts.get(&ctx.tenant, conv, &user).await,
            Some(receipt) => {
                let audience = self.audience(&ctx.tenant, conv).await?;
                let payload = EventPayload::ReceiptUpdated {
                    conversation_id: conv.clone(),
                    user_id: user,
                    receipt: kind,
                    seq,
                };
                self.emit(&ctx, audience, payload).await?;
                Ok(receipt)
            }
        }
    }

    /// Every member's receipt in a conversation (members only).
    pub async fn receipts(&self, p: &Principal, conv: &ConversationId) -> Result<Vec<Receipt>> {
        let ctx = self.ctx(p).await?;
        self.conversation_action(&ctx, conv, Action::ConversationRead)
            .await?;
        self.b.receipts.list(&ctx.tenant, conv).await
    }

    /// The caller's conversations (banned ones left out), newest activity first,
    /// each with its unread count.
    pub async fn list_conversations(&self, p: &Principal) -> Result<Vec<ConversationSummary>> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        let mine: Vec<(Conversation, Member)> = self
            .b
            .conversations
            .list_for_user(&ctx.tenant, &user)
            .await?
            .into_iter()
            .filter(|(_, m)| !m.banned)
            .collect();
        let ids: Vec<ConversationId> = mine.iter().map(|(c, _)| c.id.clone()).collect();
        let heads = self.b.messages.heads(&ctx.tenant, &ids).await?;
        let mut out = Vec::with_capacity(mine.len());
        for ((conversation, member), head) in mine.into_iter().zip(heads) {
            let read_seq = self
                .b
                .receipts
                .get(&ctx.tenant, &conversation.id, &user)
                .await?
                .read;
            let unread_count = if head.last_seq > read_seq {
                self.b
                    .messages
                    .count_from_others(&ctx.tenant, &conversation.id, &user, read_seq)
                    .await?
            } else {
                0
            };
            out.push(ConversationSummary {
                last_activity: head.last_activity.unwrap_or(conversation.created_at),
                conversation,
                member,
                last_seq: head.last_seq,
                read_seq,
                unread_count,
            });
        }
        out.sort_by(|a, b| {
            b.last_activity
                .cmp(&a.last_activity)
                .then_with(|| a.conversation.id.cmp(&b.conversation.id))
        });
        Ok(out)
    }

    /// Every durable event the caller may see after `since`, across conversations,
    /// in order: what a device needs to catch up after being offline.
    pub async fn sync(&self, p: &Principal, since: Cursor, limit: usize) -> Result<SyncPage> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        self.check_limit(limit)?;
        // One extra tells whether more are waiting without a second query.
        let mut events = self
            .b
            .events
            .read(&ctx.tenant, &user, since, limit + 1)
            .await?;
        let has_more = events.len() > limit;
        events.truncate(limit);
        let next_cursor = events.last().map_or(since, |e| e.cursor);
        Ok(SyncPage {
            events,
            next_cursor,
            has_more,
        })
    }
}
