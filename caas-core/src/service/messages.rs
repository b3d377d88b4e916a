//! Sending and changing messages.

use std::sync::Arc;

use super::{Caas, Ctx, audit_record, check_text};
use crate::error::{EntityKind, Error, Result};
use crate::events::{Announce, EventPayload};
use crate::ids::{ClientMsgId, ConversationId, MessageId, UserId};
use crate::model::{Attachment, Ciphertext, Conversation, ForwardRef, Member, Message, NewMessage};
use crate::policy::Action;
use crate::ports::{Appended, HistoryPage};
use crate::principal::Principal;

/// What a sender sends.
#[derive(Debug, Clone)]
pub struct SendMessage {
    /// The sender's idempotency key: a retry with the same key returns the original.
    pub client_msg_id: ClientMsgId,
    /// Plain text.
    pub body: Option<String>,
    /// Or an E2EE payload (never both).
    pub ciphertext: Option<Ciphertext>,
    /// Blob references.
    pub attachments: Vec<Attachment>,
    /// The message replied to, in the same conversation.
    pub reply_to: Option<MessageId>,
    /// Mentioned members.
    pub mentions: Vec<UserId>,
}

impl SendMessage {
    /// A plain text message.
    pub fn text(client_msg_id: ClientMsgId, body: impl Into<String>) -> Self {
        Self {
            client_msg_id,
            body: Some(body.into()),
            ciphertext: None,
            attachments: Vec::new(),
            reply_to: None,
            mentions: Vec::new(),
        }
    }
}

/// The result of a send.
#[derive(Debug, Clone, PartialEq)]
pub struct Sent {
    /// The stored message.
    pub message: Message,
    /// True when this was a retry and `message` is the original.
    pub duplicate: bool,
}

const MAX_EMOJI_BYTES: usize = 64;

fn check_emoji(emoji: &str) -> Result<()> {
    if emoji.is_empty() || emoji.len() > MAX_EMOJI_BYTES {
        return Err(Error::invalid(
            "emoji",
            format!("must be 1 to {MAX_EMOJI_BYTES} bytes"),
        ));
    }
    if emoji.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "emoji",
            "must not contain spaces or control characters",
        ));
    }
    Ok(())
}

impl Caas {
    fn check_content(&self, ctx: &Ctx<'_>, m: &SendMessage) -> Result<()> {
        let max = ctx.max_message_bytes(&self.cfg);
        match (&m.body, &m.ciphertext) {
            (Some(_), Some(_)) => {
                return Err(Error::invalid(
                    "body",
                    "send a body or a ciphertext, not both",
                ));
            }
            (None, None) if m.attachments.is_empty() => {
                return Err(Error::invalid(
                    "body",
                    "a message needs a body, a ciphertext or attachments",
                ));
            }
            (Some(body), None) => {
                check_text("body", body, 1, max)?;
                ctx.check_blocklist(body)?;
            }
            (None, Some(c)) => {
                check_text("ciphertext.algorithm", &c.algorithm, 1, 64)?;
                if c.data.is_empty() {
                    return Err(Error::invalid("ciphertext.data", "must not be empty"));
                }
                if c.data.len() > max {
                    return Err(Error::PayloadTooLarge {
                        field: "ciphertext.data".into(),
                        size: c.data.len(),
                        limit: max,
                    });
                }
            }
            (None, None) => {}
        }
        if m.attachments.len() > self.cfg.max_attachments {
            return Err(Error::invalid(
                "attachments",
                format!("at most {}", self.cfg.max_attachments),
            ));
        }
        for (i, a) in m.attachments.iter().enumerate() {
            check_text(
                &format!("attachments[{i}].content_type"),
                &a.content_type,
                1,
                128,
            )?;
            if let Some(n) = &a.name {
                check_text(&format!("attachments[{i}].name"), n, 1, 256)?;
            }
        }
        if m.mentions.len() > self.cfg.max_mentions {
            return Err(Error::invalid(
                "mentions",
                format!("at most {}", self.cfg.max_mentions),
            ));
        }
        Ok(())
    }

    /// Sends a message: authorize (`message.send`) → rate-limit → validate → append
    /// (idempotent on `client_msg_id` per sender) → publish `message.created` →
    /// return. A retry returns the original with `duplicate: true` and publishes
    /// nothing.
    pub async fn send_message(
        &self,
        p: &Principal,
        conversation: &ConversationId,
        msg: SendMessage,
    ) -> Result<Sent> {
        let ctx = self.ctx(p).await?;
        let sender = ctx.user()?.clone();
        // One read of the membership serves the decision, the mention checks and the
        // audience of the event.
        let conv = self
            .b
            .conversations
            .get(&ctx.tenant, conversation)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Conversation, conversation))?;
        let members = self
            .b
            .conversations
            .members(&ctx.tenant, conversation)
            .await?;
        let me = members.iter().find(|m| m.user == sender);
        let subject = Self::subject(&ctx, me);
        Self::authorize(
            &ctx,
            Action::MessageSend,
            subject,
            Self::conversation_resource(&conv),
        )?;
        self.rate_limit(&ctx, Action::MessageSend).await?;
        self.check_message_quota(&ctx).await?;
        self.check_content(&ctx, &msg)?;
        if let Some(original) = self
            .slow_mode(&ctx, &conv, me, &sender, &msg.client_msg_id)
            .await?
        {
            return Ok(Sent {
                message: original,
                duplicate: true,
            });
        }
        self.store_message(&ctx, &conv, members, sender, msg, None)
            .await
    }

    async fn store_message(
        &self,
        ctx: &Ctx<'_>,
        conv: &Conversation,
        members: Vec<Member>,
        sender: UserId,
        mut msg: SendMessage,
        forwarded_from: Option<ForwardRef>,
    ) -> Result<Sent> {
        let shares = self
            .check_attachments(ctx, &conv.id, &mut msg.attachments)
            .await?;
        let active = |u: &UserId| members.iter().any(|m| &m.user == u && !m.banned);
        for (i, u) in msg.mentions.iter().enumerate() {
            if !active(u) {
                return Err(Error::invalid(
                    format!("mentions[{i}]"),
                    format!("`{u}` is not a member"),
                ));
            }
        }
        if let Some(r) = &msg.reply_to
            && self
                .b
                .messages
                .get(&ctx.tenant, &conv.id, r)
                .await?
                .is_none()
        {
            return Err(Error::invalid(
                "reply_to",
                format!("no message `{r}` in this conversation"),
            ));
        }
        let mut mentions = msg.mentions;
        mentions.sort();
        mentions.dedup();
        let new = NewMessage {
            tenant: ctx.tenant.clone(),
            conversation: conv.id.clone(),
            id: MessageId::generate(ctx.now),
            sender,
            client_msg_id: msg.client_msg_id,
            body: msg.body,
            ciphertext: msg.ciphertext,
            attachments: msg.attachments,
            reply_to: msg.reply_to,
            forwarded_from,
            mentions,
            created_at: ctx.now,
        };
        let audience: Arc<[UserId]> = members
            .into_iter()
            .filter(Member::is_active)
            .map(|m| m.user)
            .collect();
        let announce = Announce {
            audience,
            correlation_id: ctx.p.correlation_id.clone(),
        };
        match self.b.messages.append(new, announce).await? {
            Appended::Existing(message) => {
                self.share_attachments(&ctx.tenant, &conv.id, &shares)
                    .await?;
                Ok(Sent {
                    message,
                    duplicate: true,
                })
            }
            Appended::Created { message, event, .. } => {
                let bytes = message.body.as_ref().map_or(0, String::len)
                    + message.ciphertext.as_ref().map_or(0, |c| c.data.len());
                self.meter_message(&ctx.tenant, ctx.now, bytes);
                // Shared once stored, so a refused send shares nothing; a
                // retry shares again (sharing is idempotent), which heals a
                // failure here.
                self.share_attachments(&ctx.tenant, &conv.id, &shares)
                    .await?;
                // Published before indexing, so delivery does not wait on the
                // search backend (a store that indexes inside its own write has
                // already done so; its `index_message` is then a check).
                self.b.bus.publish(event.clone()).await?;
                self.index(&event).await;
                Ok(Sent {
                    message,
                    duplicate: false,
                })
            }
        }
    }

    /// Forwards a message into another conversation: the caller must be able to read
    /// the source and send to the target. The copy records where it came from.
    /// Encrypted messages cannot be forwarded by the server (the target's members
    /// hold other keys); clients re-encrypt and send instead.
    pub async fn forward_message(
        &self,
        p: &Principal,
        from: &ConversationId,
        id: &MessageId,
        to: &ConversationId,
        client_msg_id: ClientMsgId,
    ) -> Result<Sent> {
        let ctx = self.ctx(p).await?;
        let sender = ctx.user()?.clone();
        self.conversation_action(&ctx, from, Action::MessageRead)
            .await?;
        let (target, me, _) = self
            .conversation_action(&ctx, to, Action::MessageSend)
            .await?;
        self.rate_limit(&ctx, Action::MessageSend).await?;
        self.check_message_quota(&ctx).await?;
        let original = self.message(&ctx, from, id).await?;
        if original.is_deleted() {
            return Err(Error::conflict("the message was deleted"));
        }
        if original.ciphertext.is_some() {
            return Err(Error::invalid(
                "message_id",
                "encrypted messages cannot be forwarded by the server",
            ));
        }
        let msg = SendMessage {
            client_msg_id,
            body: original.body,
            ciphertext: None,
            attachments: original.attachments,
            reply_to: None,
            mentions: Vec::new(),
        };
        self.check_content(&ctx, &msg)?;
        if let Some(original) = self
            .slow_mode(&ctx, &target, me.as_ref(), &sender, &msg.client_msg_id)
            .await?
        {
            return Ok(Sent {
                message: original,
                duplicate: true,
            });
        }
        let origin = ForwardRef {
            conversation_id: from.clone(),
            message_id: id.clone(),
        };
        let members = self.b.conversations.members(&ctx.tenant, to).await?;
        self.store_message(&ctx, &target, members, sender, msg, Some(origin))
            .await
    }

    async fn message(
        &self,
        ctx: &Ctx<'_>,
        conv: &ConversationId,
        id: &MessageId,
    ) -> Result<Message> {
        self.b
            .messages
            .get(&ctx.tenant, conv, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Message, id))
    }

    /// Loads a message and authorizes `action` on it (`resource.owner` = sender).
    pub(super) async fn message_action(
        &self,
        ctx: &Ctx<'_>,
        conv_id: &ConversationId,
        id: &MessageId,
        action: Action,
    ) -> Result<(Message, Arc<[UserId]>, Arc<str>)> {
        let (conv, member) = self.load_conversation(ctx, conv_id).await?;
        let message = self.message(ctx, conv_id, id).await;
        let mut resource = Self::conversation_resource(&conv);
        if let Ok(m) = &message {
            resource.set("owner", m.sender.shared());
        }
        // Authorize before revealing whether the message exists.
        let rule = Self::authorize(ctx, action, Self::subject(ctx, member.as_ref()), resource)?;
        let message = message?;
        let audience = self.audience(&ctx.tenant, conv_id).await?;
        Ok((message, audience, rule))
    }

    /// Edits a message's body (the sender only); the old body goes to its history.
    pub async fn edit_message(
        &self,
        p: &Principal,
        conv: &ConversationId,
        id: &MessageId,
        body: &str,
    ) -> Result<Message> {
        let ctx = self.ctx(p).await?;
        self.message_action(&ctx, conv, id, Action::MessageEdit)
            .await?;
        self.rate_limit(&ctx, Action::MessageEdit).await?;
        check_text("body", body, 1, ctx.max_message_bytes(&self.cfg))?;
        ctx.check_blocklist(body)?;
        let message = self
            .b
            .messages
            .edit(&ctx.tenant, conv, id, body, ctx.now)
            .await?;
        let audience = self.audience(&ctx.tenant, conv).await?;
        // The event carries the new body; the edit history stays in the store
        // (history reads return it), so events stay the size of one message.
        let mut edited = message.clone();
        edited.edits.clear();
        self.emit(
            &ctx,
            audience,
            EventPayload::MessageEdited { message: edited },
        )
        .await?;
        Ok(message)
    }

    /// Deletes a message (its sender, or a moderator), leaving a tombstone.
    /// Deleting a deleted message changes nothing and publishes nothing.
    pub async fn delete_message(
        &self,
        p: &Principal,
        conv: &ConversationId,
        id: &MessageId,
    ) -> Result<Message> {
        let ctx = self.ctx(p).await?;
        let by = ctx.user()?.clone();
        let (original, audience, rule) = self
            .message_action(&ctx, conv, id, Action::MessageDelete)
            .await?;
        self.rate_limit(&ctx, Action::MessageDelete).await?;
        let changed = self
            .b
            .messages
            .delete(&ctx.tenant, conv, id, &by, ctx.now)
            .await?;
        if changed.changed {
            if original.sender != by {
                self.audit(
                    &ctx.tenant,
                    audit_record(
                        p,
                        Action::MessageDelete,
                        format!("conversation:{conv}/message:{id}"),
                        &rule,
                        serde_json::json!({"sender": original.sender}),
                        ctx.now,
                    ),
                )
                .await?;
            }
            let payload = EventPayload::MessageDeleted {
                conversation_id: conv.clone(),
                message_id: id.clone(),
                seq: original.seq,
                deleted_by: by,
            };
            self.emit(&ctx, audience, payload).await?;
        }
        Ok(changed.value)
    }

    /// Adds (`add`) or removes the caller's reaction. Repeats change nothing and
    /// publish nothing.
    pub async fn react(
        &self,
        p: &Principal,
        conv: &ConversationId,
        id: &MessageId,
        emoji: &str,
        add: bool,
    ) -> Result<Message> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        let (current, audience, _) = self
            .message_action(&ctx, conv, id, Action::MessageReact)
            .await?;
        check_emoji(emoji)?;
        self.rate_limit(&ctx, Action::MessageReact).await?;
        if add
            && !current.reactions.contains_key(emoji)
            && current.reactions.len() >= crate::model::MAX_DISTINCT_REACTIONS
        {
            return Err(Error::QuotaExceeded {
                quota: format!(
                    "at most {} different reactions per message",
                    crate::model::MAX_DISTINCT_REACTIONS
                ),
            });
        }
        let changed = self
            .b
            .messages
            .react(&ctx.tenant, conv, id, &user, emoji, add)
            .await?;
        if changed.changed {
            let (conversation_id, message_id, seq, emoji) = (
                conv.clone(),
                id.clone(),
                changed.value.seq,
                emoji.to_owned(),
            );
            let payload = if add {
                EventPayload::ReactionAdded {
                    conversation_id,
                    message_id,
                    seq,
                    user_id: user,
                    emoji,
                }
            } else {
                EventPayload::ReactionRemoved {
                    conversation_id,
                    message_id,
                    seq,
                    user_id: user,
                    emoji,
                }
            };
            self.emit(&ctx, audience, payload).await?;
        }
        Ok(changed.value)
    }

    /// Pins or unpins a message.
    pub async fn pin(
        &self,
        p: &Principal,
        conv: &ConversationId,
        id: &MessageId,
        pinned: bool,
    ) -> Result<Message> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        let (_, audience, _) = self
            .message_action(&ctx, conv, id, Action::MessagePin)
            .await?;
        self.rate_limit(&ctx, Action::MessagePin).await?;
        let pin = if pinned { Some((&user, ctx.now)) } else { None };
        let changed = self.b.messages.pin(&ctx.tenant, conv, id, pin).await?;
        if changed.changed {
            let payload = EventPayload::MessagePinned {
                conversation_id: conv.clone(),
                message_id: id.clone(),
                seq: changed.value.seq,
                by: user,
                pinned,
            };
            self.emit(&ctx, audience, payload).await?;
        }
        Ok(changed.value)
    }

    /// A page of history, in ascending seq order (members only). `limit` is 1 to
    /// [`super::Config::max_page`].
    pub async fn history(
        &self,
        p: &Principal,
        conv: &ConversationId,
        page: HistoryPage,
        limit: usize,
    ) -> Result<Vec<Message>> {
        let ctx = self.ctx(p).await?;
        self.check_limit(limit)?;
        self.conversation_action(&ctx, conv, Action::MessageRead)
            .await?;
        self.b
            .messages
            .history(&ctx.tenant, conv, page, limit)
            .await
    }

    /// The pinned messages (members only).
    pub async fn pinned(&self, p: &Principal, conv: &ConversationId) -> Result<Vec<Message>> {
        let ctx = self.ctx(p).await?;
        self.conversation_action(&ctx, conv, Action::MessageRead)
            .await?;
        self.b.messages.pinned(&ctx.tenant, conv).await
    }

    pub(super) fn check_limit(&self, limit: usize) -> Result<()> {
        if limit == 0 || limit > self.cfg.max_page {
            return Err(Error::invalid(
                "limit",
                format!("must be 1 to {}", self.cfg.max_page),
            ));
        }
        Ok(())
    }
}
