//! Creating, reading and changing conversations.

use std::collections::BTreeSet;

use super::tenants::check_attributes;
use super::{Caas, Ctx, audit_record, check_text};
use crate::error::{EntityKind, Error, Result};
use crate::events::EventPayload;
use crate::ids::{ConversationId, UserId};
use crate::model::{Attributes, Conversation, ConversationKind, Member, Role};
use crate::policy::{Action, Attrs};
use crate::ports::Created;
use crate::principal::Principal;

/// What it takes to create a conversation.
#[derive(Debug, Clone)]
pub struct NewConversation {
    /// Direct, group or channel.
    pub kind: ConversationKind,
    /// The members. A user creating it is added as owner (groups, channels) or as
    /// one of the pair (direct) whether listed or not. When a tenant server creates
    /// a group or channel, the first listed member becomes its owner.
    pub members: Vec<UserId>,
    /// Display name (not for direct conversations).
    pub name: Option<String>,
    /// Attributes for policies (`public: true` lets users join a channel).
    pub attributes: Attributes,
}

/// A conversation with its membership records.
#[derive(Debug, Clone, PartialEq)]
pub struct ConversationDetails {
    /// The conversation.
    pub conversation: Conversation,
    /// Every membership record, banned included, by user id.
    pub members: Vec<Member>,
}

impl Caas {
    /// Loads a conversation and the acting user's membership of it.
    pub(super) async fn load_conversation(
        &self,
        ctx: &Ctx<'_>,
        id: &ConversationId,
    ) -> Result<(Conversation, Option<Member>)> {
        let conv = self
            .b
            .conversations
            .get(&ctx.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Conversation, id))?;
        let member = match &ctx.p.user {
            Some(u) => self.b.conversations.member(&ctx.tenant, id, u).await?,
            None => None,
        };
        Ok((conv, member))
    }

    /// Loads a conversation and authorizes `action` on it.
    pub(super) async fn conversation_action(
        &self,
        ctx: &Ctx<'_>,
        id: &ConversationId,
        action: Action,
    ) -> Result<(Conversation, Option<Member>, std::sync::Arc<str>)> {
        let (conv, member) = self.load_conversation(ctx, id).await?;
        let rule = Self::authorize(
            ctx,
            action,
            Self::subject(ctx, member.as_ref()),
            Self::conversation_resource(&conv),
        )?;
        Ok((conv, member, rule))
    }

    /// Creates a conversation. Creating a direct conversation between two users who
    /// already have one returns that one ([`Created::Existing`]) and publishes
    /// nothing.
    pub async fn create_conversation(
        &self,
        p: &Principal,
        new: NewConversation,
    ) -> Result<Created<Conversation>> {
        let ctx = self.ctx(p).await?;
        let resource = Attrs::default()
            .with("kind", "conversation")
            .with("conversation_kind", new.kind.as_str());
        Self::authorize(
            &ctx,
            Action::ConversationCreate,
            Self::subject(&ctx, None),
            resource,
        )?;
        self.rate_limit(&ctx, Action::ConversationCreate).await?;

        let creator = ctx.p.user.clone();
        let mut ordered: Vec<UserId> = Vec::with_capacity(new.members.len() + 1);
        let mut seen = BTreeSet::new();
        for u in creator.iter().chain(new.members.iter()) {
            if seen.insert(u.clone()) {
                ordered.push(u.clone());
            }
        }
        let max = ctx.max_members(&self.cfg);
        if ordered.len() > max {
            return Err(Error::invalid("members", format!("at most {max} members")));
        }
        if let Some(name) = &new.name {
            if new.kind == ConversationKind::Direct {
                return Err(Error::invalid("name", "direct conversations have no name"));
            }
            check_text("name", name, 1, 256)?;
        }
        check_attributes("attributes", &new.attributes)?;
        super::slow_mode::check_setting("attributes", &new.attributes)?;
        let direct_key = match new.kind {
            ConversationKind::Direct => {
                if ordered.len() != 2 {
                    return Err(Error::invalid(
                        "members",
                        "a direct conversation has exactly two different users",
                    ));
                }
                Some(Conversation::direct_key_of(&ordered[0], &ordered[1]))
            }
            _ if ordered.is_empty() => {
                return Err(Error::invalid("members", "at least one member"));
            }
            _ => None,
        };
        let found = self.b.users.get_many(&ctx.tenant, &ordered).await?;
        if let Some(missing) = ordered.iter().find(|u| !found.iter().any(|f| &f.id == *u)) {
            return Err(Error::not_found(EntityKind::User, missing));
        }

        let conv = Conversation {
            tenant: ctx.tenant.clone(),
            id: ConversationId::generate(ctx.now),
            kind: new.kind,
            name: new.name,
            attributes: new.attributes,
            created_by: creator,
            direct_key,
            created_at: ctx.now,
        };
        let members: Vec<Member> = ordered
            .iter()
            .enumerate()
            .map(|(i, u)| {
                let role = if i == 0 && new.kind != ConversationKind::Direct {
                    Role::Owner
                } else {
                    Role::Member
                };
                Member::new(conv.id.clone(), u.clone(), role, ctx.now)
            })
            .collect();
        let created = self.b.conversations.create(&conv, &members).await?;
        if let Created::New(c) = &created {
            let audience = ordered.into_iter().collect();
            self.emit(
                &ctx,
                audience,
                EventPayload::ConversationCreated {
                    conversation: c.clone(),
                },
            )
            .await?;
        }
        Ok(created)
    }

    /// A conversation's details and members (members only).
    pub async fn get_conversation(
        &self,
        p: &Principal,
        id: &ConversationId,
    ) -> Result<ConversationDetails> {
        let ctx = self.ctx(p).await?;
        let (conversation, _, _) = self
            .conversation_action(&ctx, id, Action::ConversationRead)
            .await?;
        let members = self.b.conversations.members(&ctx.tenant, id).await?;
        Ok(ConversationDetails {
            conversation,
            members,
        })
    }

    /// Renames a conversation or replaces its attributes (admins and the owner).
    pub async fn update_conversation(
        &self,
        p: &Principal,
        id: &ConversationId,
        name: Option<String>,
        attributes: Option<Attributes>,
    ) -> Result<Conversation> {
        let ctx = self.ctx(p).await?;
        let (mut conv, _, rule) = self
            .conversation_action(&ctx, id, Action::ConversationUpdate)
            .await?;
        if let Some(name) = name {
            if conv.kind == ConversationKind::Direct {
                return Err(Error::invalid("name", "direct conversations have no name"));
            }
            check_text("name", &name, 1, 256)?;
            conv.name = Some(name);
        }
        if let Some(attributes) = attributes {
            check_attributes("attributes", &attributes)?;
            super::slow_mode::check_setting("attributes", &attributes)?;
            conv.attributes = attributes;
        }
        self.b.conversations.update(&conv).await?;
        // Moderation settings (slow mode) live in the attributes: every change
        // is audited with the settings it left.
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::ConversationUpdate,
                format!("conversation:{id}"),
                &rule,
                serde_json::json!({"name": conv.name, "attributes": conv.attributes}),
                ctx.now,
            ),
        )
        .await?;
        let audience = self.audience(&ctx.tenant, id).await?;
        self.emit(
            &ctx,
            audience,
            EventPayload::ConversationUpdated {
                conversation: conv.clone(),
            },
        )
        .await?;
        Ok(conv)
    }
}
