//! GDPR: everything a tenant holds about one user, exported as a stream of
//! items (the REST front door writes them as JSON lines).

use std::collections::VecDeque;
use std::sync::Arc;

use serde::Serialize;

use super::{Caas, audit_record};
use crate::error::{EntityKind, Error, Result};
use crate::ids::{BlobId, ConversationId, MessageId, Seq, TenantId, UserId};
use crate::model::{Conversation, KeyBundle, Media, Member, Message, Receipt, User};
use crate::policy::{Action, Attrs};
use crate::ports::HistoryPage;
use crate::principal::Principal;

/// One item of a user's data export; as JSON, `kind` names it.
#[derive(Debug, Clone, Serialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum ExportItem {
    /// The user's profile and attributes.
    User {
        /// The user.
        user: User,
    },
    /// A conversation the user has a membership record in (banned included).
    Membership {
        /// The conversation.
        conversation: Conversation,
        /// The user's membership: role, mute, ban, when joined.
        member: Member,
    },
    /// The user's delivered and read watermarks in a conversation.
    Receipt {
        /// The receipt.
        receipt: Receipt,
    },
    /// The public keys of one of the user's devices (caas never holds private
    /// keys); no one-time prekey is taken for the export.
    DeviceKeys {
        /// The device's bundle.
        bundle: KeyBundle,
    },
    /// An upload of the user's (pending or complete): its metadata, not its
    /// bytes (download those with a media URL).
    Media {
        /// The upload.
        media: Media,
    },
    /// A message the user sent, with its edit history and reactions
    /// (tombstones included: they keep their seq).
    Message {
        /// The message.
        message: Message,
    },
    /// A reaction the user put on someone else's message.
    Reaction {
        /// The conversation.
        conversation_id: ConversationId,
        /// The message reacted to.
        message_id: MessageId,
        /// The reaction.
        emoji: String,
    },
}

/// Messages read per store call while exporting.
const EXPORT_PAGE: usize = 200;

/// A user's data, read from the stores a page at a time as it is consumed
/// (from [`Caas::export_user`]), so an export of any size holds one page in
/// memory.
#[derive(Debug)]
pub struct UserExport {
    caas: Arc<Caas>,
    tenant: TenantId,
    user: UserId,
    ready: VecDeque<ExportItem>,
    /// Conversations whose messages are still to be read, the first one
    /// from `after` on.
    conversations: VecDeque<ConversationId>,
    after: Seq,
    /// Where the user's uploads continue: `Some(None)` before the first page,
    /// `None` once all were read.
    media_after: Option<Option<BlobId>>,
    items: u64,
}

impl UserExport {
    /// The next item, or `None` once everything has been given.
    pub async fn next(&mut self) -> Result<Option<ExportItem>> {
        loop {
            if let Some(item) = self.ready.pop_front() {
                self.items += 1;
                return Ok(Some(item));
            }
            if let Some(after) = self.media_after.take() {
                let page = self
                    .caas
                    .b
                    .media
                    .by_owner(&self.tenant, &self.user, after.as_ref(), EXPORT_PAGE)
                    .await?;
                if page.len() == EXPORT_PAGE {
                    self.media_after = Some(page.last().map(|m| m.id.clone()));
                }
                self.ready
                    .extend(page.into_iter().map(|media| ExportItem::Media { media }));
                continue;
            }
            let Some(conversation) = self.conversations.front().cloned() else {
                return Ok(None);
            };
            let page = self
                .caas
                .b
                .messages
                .history(
                    &self.tenant,
                    &conversation,
                    HistoryPage::After(self.after),
                    EXPORT_PAGE,
                )
                .await?;
            match page.last() {
                Some(last) if page.len() == EXPORT_PAGE => self.after = last.seq,
                _ => {
                    self.conversations.pop_front();
                    self.after = Seq(0);
                }
            }
            for message in page {
                self.take(message);
            }
        }
    }

    /// How many items have been given so far.
    pub fn items(&self) -> u64 {
        self.items
    }

    /// Keeps what of `message` is the user's: the message if they sent it,
    /// their reactions if someone else did.
    fn take(&mut self, message: Message) {
        if message.sender == self.user {
            self.ready.push_back(ExportItem::Message { message });
            return;
        }
        for (emoji, users) in &message.reactions {
            if users.contains(&self.user) {
                self.ready.push_back(ExportItem::Reaction {
                    conversation_id: message.conversation.clone(),
                    message_id: message.id.clone(),
                    emoji: emoji.clone(),
                });
            }
        }
    }
}

impl Caas {
    /// Starts an export of everything the caller's tenant holds about `user`:
    /// the profile, memberships, receipts and device keys first, then, a page
    /// at a time as the export is read, their uploads, the messages they sent and the
    /// reactions they put on others' messages, in each conversation they are
    /// a member of. Tenant servers (and what a tenant's policy allows); the
    /// export is audited before anything is read.
    pub async fn export_user(self: &Arc<Self>, p: &Principal, user: &UserId) -> Result<UserExport> {
        let ctx = self.ctx(p).await?;
        let rule = Self::authorize(
            &ctx,
            Action::ComplianceExport,
            Self::subject(&ctx, None),
            // `owner`: a tenant's policy may let users export their own data.
            Attrs::default()
                .with("kind", "user")
                .with("owner", user.shared()),
        )?;
        self.rate_limit(&ctx, Action::ComplianceExport).await?;
        let profile = self
            .b
            .users
            .get(&ctx.tenant, user)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::User, user))?;
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::ComplianceExport,
                format!("user:{user}"),
                &rule,
                serde_json::Value::Null,
                ctx.now,
            ),
        )
        .await?;
        let mut ready = VecDeque::from([ExportItem::User { user: profile }]);
        let mut conversations = VecDeque::new();
        for (conversation, member) in self
            .b
            .conversations
            .list_for_user(&ctx.tenant, user)
            .await?
        {
            let receipt = self
                .b
                .receipts
                .get(&ctx.tenant, &conversation.id, user)
                .await?;
            conversations.push_back(conversation.id.clone());
            ready.push_back(ExportItem::Membership {
                conversation,
                member,
            });
            ready.push_back(ExportItem::Receipt { receipt });
        }
        for bundle in self.b.keys.claim(&ctx.tenant, user, false).await? {
            ready.push_back(ExportItem::DeviceKeys { bundle });
        }
        Ok(UserExport {
            caas: self.clone(),
            tenant: ctx.tenant.clone(),
            user: user.clone(),
            ready,
            conversations,
            after: Seq(0),
            media_after: Some(None),
            items: 0,
        })
    }
}
