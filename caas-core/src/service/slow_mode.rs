//! Slow mode: a conversation's `slow_mode_secs` attribute lets each member
//! below moderator send one message per that many seconds (the owner, admins,
//! moderators and the tenant server are not held back).

use super::{Caas, Ctx};
use crate::error::{Error, Result};
use crate::ids::{ClientMsgId, UserId};
use crate::model::{Attributes, Conversation, Member, Message, Role};
use crate::ports::HistoryPage;
use crate::ratelimit::{Decision, Quota, RateKey};

/// The conversation attribute that turns slow mode on (seconds; 0 or absent
/// is off).
pub const SLOW_MODE_ATTRIBUTE: &str = "slow_mode_secs";

/// The longest slow-mode interval: six hours.
pub const MAX_SLOW_MODE_SECS: u64 = 21_600;

/// How many of a conversation's newest messages are searched for the
/// original of a send retried inside its window.
const RETRY_LOOKBACK: usize = 100;

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
fn interval(conv: &Conversation) -> Option<u32> {
    conv.attributes
        .get(SLOW_MODE_ATTRIBUTE)
        .and_then(serde_json::Value::as_u64)
        .filter(|s| (1..=MAX_SLOW_MODE_SECS).contains(s))
        .and_then(|s| u32::try_from(s).ok())
}

impl Caas {
    /// Holds a sender below moderator to one message per interval in a
    /// conversation in slow mode. A send refused inside the window whose
    /// `client_msg_id` names a message the sender already stored (a retry
    /// after a lost answer) gets that message back instead: `Some` is the
    /// original, to return as a duplicate.
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
        let quota = Quota {
            limit: 1,
            period_secs: secs,
            burst: None,
        };
        let subject = format!("{sender}@{}", conv.id);
        let rate_key = RateKey::new(&ctx.tenant, subject, "conversation.slow_mode");
        match self.b.rate_limits.check(&rate_key, &quota, ctx.now).await? {
            Decision::Allow { .. } => Ok(None),
            Decision::Deny { retry_after } => {
                let recent = self
                    .b
                    .messages
                    .history(&ctx.tenant, &conv.id, HistoryPage::Latest, RETRY_LOOKBACK)
                    .await?;
                match recent
                    .into_iter()
                    .find(|m| &m.sender == sender && &m.client_msg_id == key)
                {
                    Some(original) => Ok(Some(original)),
                    None => Err(Error::RateLimited {
                        action: "conversation.slow_mode".into(),
                        retry_after,
                    }),
                }
            }
        }
    }
}
