//! Review of reported messages: members flag a message (`message.flag`);
//! moderators list the open flags of a conversation and settle them by
//! dismissing or deleting (`flag.review`), and read a message's edit history
//! (its sender may too). Every settlement is audited.

use super::{Caas, audit_record, check_text};
use crate::error::{Error, Result};
use crate::ids::{ConversationId, MessageId};
use crate::model::{Edit, Flag, FlagResolution};
use crate::policy::Action;
use crate::principal::Principal;

/// The longest reason a reporter may give, in bytes.
pub const MAX_FLAG_REASON_BYTES: usize = 500;

/// How a moderator settles a message's flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FlagAction {
    /// The message stays; the flags close.
    Dismiss,
    /// The message becomes a tombstone; the flags close.
    Delete,
}

impl FlagAction {
    /// Parses `dismiss` or `delete`.
    pub fn parse(s: &str) -> Result<Self> {
        match s {
            "dismiss" => Ok(FlagAction::Dismiss),
            "delete" => Ok(FlagAction::Delete),
            _ => Err(Error::invalid("action", "must be `dismiss` or `delete`")),
        }
    }

    fn resolution(self) -> &'static str {
        match self {
            FlagAction::Dismiss => "dismissed",
            FlagAction::Delete => "deleted",
        }
    }
}

impl Caas {
    /// Reports a message to the conversation's moderators: authorize
    /// (`message.flag`, members) → rate-limit → validate → record. Reporting
    /// a message again (the same reporter) returns the first report.
    pub async fn flag_message(
        &self,
        p: &Principal,
        conv: &ConversationId,
        id: &MessageId,
        reason: &str,
    ) -> Result<Flag> {
        let ctx = self.ctx(p).await?;
        let reporter = ctx.user()?.clone();
        let (message, _, _) = self
            .message_action(&ctx, conv, id, Action::MessageFlag)
            .await?;
        self.rate_limit(&ctx, Action::MessageFlag).await?;
        check_text("reason", reason, 1, MAX_FLAG_REASON_BYTES)?;
        if message.is_deleted() {
            return Err(Error::conflict("the message was deleted"));
        }
        let flag = Flag {
            tenant: ctx.tenant.clone(),
            conversation_id: conv.clone(),
            message_id: id.clone(),
            reporter: reporter.clone(),
            reason: reason.to_owned(),
            created_at: ctx.now,
            resolution: None,
        };
        if self.b.flags.flag(&flag).await? {
            return Ok(flag);
        }
        // Already reported by them: the first report stands.
        Ok(self
            .b
            .flags
            .open_flags(&ctx.tenant, conv, self.cfg.max_page)
            .await?
            .into_iter()
            .find(|f| f.message_id == *id && f.reporter == reporter)
            .unwrap_or(flag))
    }

    /// The conversation's open flags, oldest first (`flag.review`: moderators).
    pub async fn open_flags(
        &self,
        p: &Principal,
        conv: &ConversationId,
        limit: usize,
    ) -> Result<Vec<Flag>> {
        let ctx = self.ctx(p).await?;
        self.check_limit(limit)?;
        self.conversation_action(&ctx, conv, Action::FlagReview)
            .await?;
        self.b.flags.open_flags(&ctx.tenant, conv, limit).await
    }

    /// Settles a message's open flags (`flag.review`: moderators): dismissed,
    /// or the message deleted as a moderator deletes it. Audited; returns how
    /// many flags it settled.
    pub async fn resolve_flags(
        &self,
        p: &Principal,
        conv: &ConversationId,
        id: &MessageId,
        action: FlagAction,
    ) -> Result<u64> {
        let ctx = self.ctx(p).await?;
        let by = ctx.user()?.clone();
        let (conversation, _, rule) = self
            .conversation_action(&ctx, conv, Action::FlagReview)
            .await?;
        if action == FlagAction::Delete {
            self.delete_message(p, &conversation.id, id).await?;
        }
        let settled = self
            .b
            .flags
            .resolve(
                &ctx.tenant,
                conv,
                id,
                &FlagResolution {
                    by,
                    at: ctx.now,
                    action: action.resolution().into(),
                },
            )
            .await?;
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::FlagReview,
                format!("conversation:{conv}/message:{id}"),
                &rule,
                serde_json::json!({ "action": action.resolution(), "flags": settled }),
                ctx.now,
            ),
        )
        .await?;
        Ok(settled)
    }

    /// A message's earlier bodies, oldest first (`flag.review`: moderators and
    /// the sender).
    pub async fn edit_history(
        &self,
        p: &Principal,
        conv: &ConversationId,
        id: &MessageId,
    ) -> Result<Vec<Edit>> {
        let ctx = self.ctx(p).await?;
        let (message, _, _) = self
            .message_action(&ctx, conv, id, Action::FlagReview)
            .await?;
        Ok(message.edits)
    }
}
