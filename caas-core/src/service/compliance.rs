//! GDPR: everything a tenant holds about one user, exported as a stream of
//! items (the REST front door writes them as JSON lines).

use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::Ordering;

use serde::Serialize;

use super::{Caas, audit_record};
use crate::error::{EntityKind, Error, Result};
use crate::events::EventPayload;
use crate::ids::{BlobId, ConversationId, MessageId, Seq, TenantId, UserId};
use crate::model::{Conversation, KeyBundle, Media, Member, Message, Receipt, User};
use crate::policy::{Action, Attrs};
use crate::ports::HistoryPage;
use crate::principal::Principal;
use crate::time::Timestamp;

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

impl ExportItem {
    /// The item as a line of an export's JSON lines: the one encoding the
    /// stream and the job's download share.
    pub fn to_line(&self) -> Result<Vec<u8>> {
        let mut line = serde_json::to_vec(self)
            .map_err(|e| Error::internal(format!("encode an export item: {e}")))?;
        line.push(b'\n');
        Ok(line)
    }

    /// The last line of a whole export, `{"kind":"end","items":N}`.
    pub fn end_line(items: u64) -> Vec<u8> {
        format!("{{\"kind\":\"end\",\"items\":{items}}}\n").into_bytes()
    }
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
    conversations_total: u64,
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

    /// Conversations whose messages were read, and how many there are.
    pub fn conversations(&self) -> (u64, u64) {
        let left = self.conversations.len() as u64;
        (
            self.conversations_total.saturating_sub(left),
            self.conversations_total,
        )
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
    /// The start of a compliance operation on `user`: authorize `action`
    /// (tenant servers, or what a tenant's policy allows: `owner` lets users
    /// act on their own data) → rate-limit → the user must exist → audit,
    /// before anything is read or changed.
    async fn compliance_subject<'p>(
        &self,
        p: &'p Principal,
        action: Action,
        user: &UserId,
    ) -> Result<(super::Ctx<'p>, User)> {
        let ctx = self.ctx(p).await?;
        let rule = Self::authorize(
            &ctx,
            action,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "user")
                .with("owner", user.shared()),
        )?;
        self.rate_limit(&ctx, action).await?;
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
                action,
                format!("user:{user}"),
                &rule,
                serde_json::Value::Null,
                ctx.now,
            ),
        )
        .await?;
        Ok((ctx, profile))
    }

    /// Starts an export of everything the caller's tenant holds about `user`:
    /// the profile, memberships, receipts and device keys first, then, a page
    /// at a time as the export is read, their uploads, the messages they sent and the
    /// reactions they put on others' messages, in each conversation they are
    /// a member of. Tenant servers (and what a tenant's policy allows); the
    /// export is audited before anything is read.
    pub async fn export_user(self: &Arc<Self>, p: &Principal, user: &UserId) -> Result<UserExport> {
        let (ctx, profile) = self
            .compliance_subject(p, Action::ComplianceExport, user)
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
            after: Seq(0),
            media_after: Some(None),
            items: 0,
            conversations_total: conversations.len() as u64,
            conversations,
        })
    }
}

/// What an erasure removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Erasure {
    /// The user erased.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub user_id: UserId,
    /// Messages of theirs turned into tombstones (their seqs stay).
    pub messages: u64,
    /// Their reactions taken off others' messages.
    pub reactions: u64,
    /// Conversations they were removed from.
    pub memberships: u64,
    /// Uploads deleted, bytes and records.
    pub uploads: u64,
    /// Devices whose public keys were removed.
    pub devices: u64,
    /// Logged events whose copy of their messages was scrubbed.
    pub events_scrubbed: u64,
    /// Their data keys destroyed (crypto-shredding), where bodies are sealed
    /// at rest: what those keys sealed is unreadable from then on, in backups
    /// too. 0 where bodies are stored in clear, and on a repeat.
    pub keys_destroyed: u64,
    /// Export jobs of the user stopped or dropped, with their spools.
    pub exports: u64,
}

/// The attribute that marks an erased user: such a user can no longer act.
pub const ERASED_ATTRIBUTE: &str = "erased";

impl Caas {
    /// Erases everything the caller's tenant holds about `user` (GDPR art. 17):
    /// the profile is replaced by a tombstone that can no longer act or log in;
    /// every message they sent in a conversation they belong to becomes a
    /// tombstone (its seq stays, `message.deleted` is published) and its copies
    /// in the event log and the search index go; their reactions come off
    /// others' messages; they leave every conversation; their uploads and
    /// device keys are deleted. Where bodies are sealed at rest, the user's
    /// data keys are destroyed first (crypto-shredding), so what they sealed is
    /// unreadable in backups too. Tenant servers (`compliance.erase`); audited
    /// before anything changes. Safe to repeat: a second run finishes what an
    /// interrupted one left.
    pub async fn erase_user(&self, p: &Principal, user: &UserId) -> Result<Erasure> {
        let (ctx, profile) = self
            .compliance_subject(p, Action::ComplianceErase, user)
            .await?;
        let mut done = Erasure {
            user_id: user.clone(),
            messages: 0,
            reactions: 0,
            memberships: 0,
            uploads: 0,
            devices: 0,
            events_scrubbed: 0,
            keys_destroyed: 0,
            exports: 0,
        };

        // First, so the user cannot add anything while the rest goes.
        let tombstone = User {
            name: "erased user".into(),
            attributes: std::collections::BTreeMap::from([(
                ERASED_ATTRIBUTE.to_owned(),
                serde_json::Value::Bool(true),
            )]),
            updated_at: ctx.now,
            ..profile
        };
        let tombstone = self.b.users.upsert(&tombstone).await?;
        self.remember_user(tombstone.clone(), ctx.now);
        if self.b.search.index_user(&tombstone).await.is_err() {
            self.index_failures.fetch_add(1, Ordering::Relaxed);
        }
        self.lock_out_password(&ctx.tenant, user, ctx.now).await?;
        // Before the stores are walked: once the keys are gone, what this run
        // might not reach (an interrupted run, a backup) is unreadable already.
        done.keys_destroyed = self.b.shredder.shred_user(&ctx.tenant, user).await?;
        done.exports = self.exports.forget_user(&ctx.tenant, user)?;

        // Where the user wrote: the conversations they belong to, and those
        // they left, which their own event stream still names (so a repeat
        // also finds what an interrupted run already removed them from).
        let mut conversations: BTreeSet<ConversationId> = self
            .b
            .conversations
            .list_for_user(&ctx.tenant, user)
            .await?
            .into_iter()
            .map(|(c, _)| c.id)
            .collect();
        conversations.extend(self.conversations_written_in(&ctx.tenant, user).await?);
        let mut erased = HashSet::new();
        for conversation in conversations {
            let audience = self.audience(&ctx.tenant, &conversation).await?;
            let mut after = Seq(0);
            loop {
                let page = self
                    .b
                    .messages
                    .history(
                        &ctx.tenant,
                        &conversation,
                        HistoryPage::After(after),
                        EXPORT_PAGE,
                    )
                    .await?;
                let full = page.len() == EXPORT_PAGE;
                for m in page {
                    after = m.seq;
                    if &m.sender == user {
                        // Tombstoned ones too: a repeat must still scrub them.
                        erased.insert(m.id.clone());
                        self.erase_message(&ctx, &audience, &m, user, &mut done)
                            .await?;
                    } else {
                        self.take_reactions(&ctx, &audience, &m, user, &mut done)
                            .await?;
                    }
                }
                if !full {
                    break;
                }
            }
            if self
                .b
                .conversations
                .remove_member(&ctx.tenant, &conversation, user)
                .await?
            {
                done.memberships += 1;
                let payload = EventPayload::MemberLeft {
                    conversation_id: conversation.clone(),
                    user_id: user.clone(),
                    by: user.clone(),
                };
                self.emit(&ctx, audience, payload).await?;
            }
        }
        done.events_scrubbed = self.b.events.scrub_messages(&ctx.tenant, &erased).await?;

        loop {
            let uploads = self
                .b
                .media
                .by_owner(&ctx.tenant, user, None, EXPORT_PAGE)
                .await?;
            if uploads.is_empty() {
                break;
            }
            for m in uploads {
                self.b.blobs.delete(&ctx.tenant, &m.id).await?;
                if self.b.media.delete(&ctx.tenant, &m.id).await? {
                    done.uploads += 1;
                    if m.is_complete() {
                        self.meter_media(
                            &ctx.tenant,
                            ctx.now,
                            -i64::try_from(m.size).unwrap_or(i64::MAX),
                        );
                    }
                }
            }
        }
        for bundle in self.b.keys.claim(&ctx.tenant, user, false).await? {
            if self
                .b
                .keys
                .remove_device(&ctx.tenant, user, &bundle.device)
                .await?
            {
                done.devices += 1;
            }
        }
        Ok(done)
    }

    /// The conversations the user's own event stream shows them sending in.
    async fn conversations_written_in(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<BTreeSet<ConversationId>> {
        const EVENTS_PAGE: usize = 1000;
        let mut found = BTreeSet::new();
        let mut after = crate::ids::Cursor(0);
        loop {
            let page = self.b.events.read(tenant, user, after, EVENTS_PAGE).await?;
            let full = page.len() == EVENTS_PAGE;
            for logged in &page {
                after = logged.cursor;
                if let EventPayload::MessageCreated { message } = &logged.event.payload
                    && &message.sender == user
                {
                    found.insert(message.conversation.clone());
                }
            }
            if !full {
                return Ok(found);
            }
        }
    }

    /// Tombstones one of the erased user's messages (if it is not one already)
    /// and takes it out of search.
    async fn erase_message(
        &self,
        ctx: &super::Ctx<'_>,
        audience: &Arc<[UserId]>,
        m: &Message,
        user: &UserId,
        done: &mut Erasure,
    ) -> Result<()> {
        if !m.is_deleted() {
            let changed = self
                .b
                .messages
                .delete(&ctx.tenant, &m.conversation, &m.id, user, ctx.now)
                .await?;
            if changed.changed {
                done.messages += 1;
                let payload = EventPayload::MessageDeleted {
                    conversation_id: m.conversation.clone(),
                    message_id: m.id.clone(),
                    seq: m.seq,
                    deleted_by: user.clone(),
                };
                // `emit` also takes it out of the search index.
                self.emit(ctx, audience.clone(), payload).await?;
                return Ok(());
            }
        }
        if self
            .b
            .search
            .remove_message(&ctx.tenant, &m.conversation, &m.id)
            .await
            .is_err()
        {
            self.index_failures.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    /// Takes the erased user's reactions off someone else's message.
    async fn take_reactions(
        &self,
        ctx: &super::Ctx<'_>,
        audience: &Arc<[UserId]>,
        m: &Message,
        user: &UserId,
        done: &mut Erasure,
    ) -> Result<()> {
        for (emoji, users) in &m.reactions {
            if !users.contains(user) {
                continue;
            }
            let changed = self
                .b
                .messages
                .react(&ctx.tenant, &m.conversation, &m.id, user, emoji, false)
                .await?;
            if changed.changed {
                done.reactions += 1;
                let payload = EventPayload::ReactionRemoved {
                    conversation_id: m.conversation.clone(),
                    message_id: m.id.clone(),
                    seq: m.seq,
                    user_id: user.clone(),
                    emoji: emoji.clone(),
                };
                self.emit(ctx, audience.clone(), payload).await?;
            }
        }
        Ok(())
    }

    /// Replaces an erased user's password hash by one of a random secret
    /// nobody holds, so the login can never succeed again.
    async fn lock_out_password(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now: Timestamp,
    ) -> Result<()> {
        let (Some(auth), Some(mut login)) = (
            self.auth.as_ref(),
            self.b.credentials.login(tenant, user).await?,
        ) else {
            return Ok(());
        };
        let secret: String = (0..32)
            .map(|_| char::from(b'a' + fastrand::u8(..26)))
            .collect();
        login.phc = auth.passwords.hash(&secret).await?;
        login.totp = None;
        login.updated_at = now;
        self.b.credentials.update_login(&login).await
    }
}
