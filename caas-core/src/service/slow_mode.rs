//! Slow mode: a conversation's `slow_mode_secs` attribute lets each member
//! below moderator send one message per that many seconds (the owner, admins,
//! moderators and the tenant server are not held back).

use super::{Caas, Ctx};
use crate::error::{Error, Result};
use crate::ids::{ClientMsgId, UserId};
use crate::model::{Attributes, Conversation, Member, Message, Role};
use crate::ports::HistoryPage;

/// The conversation attribute that turns slow mode on (seconds; 0 or absent
/// is off).
pub const SLOW_MODE_ATTRIBUTE: &str = "slow_mode_secs";

/// The longest slow-mode interval: six hours.
pub const MAX_SLOW_MODE_SECS: u64 = 21_600;

/// How many of a conversation's newest messages are searched for the
/// sender's last one. In slow mode each member sends at most one message per
/// interval, so this many messages from others inside one interval takes
/// more than this many active members; past that, a send is let through.
const LOOKBACK: usize = 100;

/// Refuses a slow-mode setting that is not a whole number of seconds within
/// bounds.
pub(super) fn check_setting(field: &str, attributes: &Attributes) -> Result<()> {
    match attributes.get(SLOW_MODE_ATTRIBUTE) {
        None => Ok(()),
        Some(v) if v.as_u64().is_some_and(|s| s <= MAX_SLOW_MODE_SECS) => Ok(()),
        Some(_) => Err(Error::invalid(
            format!("{field}.{SLOW_MODE_ATTRIBUTE}"),
            format!("seconds, 0 to {MAX_SLOW_MODE_SECS}"),
        )),
    }
}

/// The conversation's slow-mode interval in seconds, when it is on.
fn interval(conv: &Conversation) -> Option<u64> {
    conv.attributes
        .get(SLOW_MODE_ATTRIBUTE)
        .and_then(serde_json::Value::as_u64)
        .filter(|s| (1..=MAX_SLOW_MODE_SECS).contains(s))
}

impl Caas {
    /// Holds a sender below moderator to one message per interval in a
    /// conversation in slow mode, judged from the conversation's history (the
    /// sender's newest message and when it was sent), so a refused or failed
    /// send spends nothing and nodes agree. A send whose `client_msg_id`
    /// names the sender's newest message is a retry: `Some` is the original,
    /// to return as a duplicate.
    pub(super) async fn slow_mode(
        &self,
        ctx: &Ctx<'_>,
        conv: &Conversation,
        me: Option<&Member>,
        sender: &UserId,
        key: &ClientMsgId,
    ) -> Result<Option<Message>> {
        let Some(secs) = interval(conv) else {
            return Ok(None);
        };
        if me.is_none_or(|m| m.role <= Role::Moderator) {
            return Ok(None);
        }
        let recent = self
            .b
            .messages
            .history(&ctx.tenant, &conv.id, HistoryPage::Latest, LOOKBACK)
            .await?;
        let Some(last) = recent.into_iter().rev().find(|m| &m.sender == sender) else {
            return Ok(None);
        };
        if &last.client_msg_id == key {
            return Ok(Some(last));
        }
        let window = std::time::Duration::from_secs(secs);
        let since = ctx.now.since(last.created_at);
        if since >= window {
            return Ok(None);
        }
        Err(Error::RateLimited {
            action: "conversation.slow_mode".into(),
            retry_after: window - since,
        })
    }
}
