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

/// A page of a list, and where the next one starts.
#[derive(Debug, Clone, PartialEq)]
pub struct Page<T> {
    /// The items, in the list's order.
    pub items: Vec<T>,
    /// Pass this as `cursor` for the next page; `None` on the last one. Opaque:
    /// its form may change between versions.
    pub next_cursor: Option<String>,
}

impl<T> Page<T> {
    /// The first `limit` of `items` (fetched one more than a page, so whether
    /// another page follows is known without a second read), with the cursor of
    /// the last one kept when more follow.
    pub(super) fn of(mut items: Vec<T>, limit: usize, cursor: impl Fn(&T) -> String) -> Self {
        let more = items.len() > limit;
        items.truncate(limit);
        let next_cursor = if more { items.last().map(cursor) } else { None };
        Self { items, next_cursor }
    }
}

/// A cursor of two parts, `<a>.<b>`, parsed back; `cursor` is at fault otherwise.
pub(super) fn split_cursor(cursor: &str) -> Result<(u64, &str)> {
    cursor
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse().ok()?, b)))
        .ok_or_else(|| Error::invalid("cursor", "not a cursor this list returned"))
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

    /// The caller's conversations (banned ones left out), newest activity first
    /// (then by id), each with its unread count: a page of `limit` (1 to
    /// [`super::Config::max_page`]) after `cursor`.
    pub async fn list_conversations(
        &self,
        p: &Principal,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<ConversationSummary>> {
        let ctx = self.ctx(p).await?;
        self.check_limit(limit)?;
        let after = cursor
            .map(|c| {
                let (nanos, id) = split_cursor(c)?;
                Ok::<_, Error>((Timestamp::from_nanos(nanos), ConversationId::parse(id)?))
            })
            .transpose()?;
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
        // Ordered and cut to the page first: unread counts cost a read each, so
        // only the page's are counted.
        let mut listed: Vec<_> = mine
            .into_iter()
            .zip(heads)
            .map(|((c, m), head)| (head.last_activity.unwrap_or(c.created_at), c, m, head))
            .filter(|(activity, c, _, _)| {
                after
                    .as_ref()
                    .is_none_or(|(a, id)| *activity < *a || (*activity == *a && c.id > *id))
            })
            .collect();
        listed.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.id.cmp(&b.1.id)));
        listed.truncate(limit + 1);
        let mut out = Vec::with_capacity(listed.len());
        for (last_activity, conversation, member, head) in listed {
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
                last_activity,
                conversation,
                member,
                last_seq: head.last_seq,
                read_seq,
                unread_count,
            });
        }
        Ok(Page::of(out, limit, |s| {
            format!("{}.{}", s.last_activity.as_nanos(), s.conversation.id)
        }))
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
