//! Adding, removing and moderating members.

use std::sync::Arc;

use super::{Caas, Ctx, audit_record};
use crate::error::{EntityKind, Error, Result};
use crate::events::EventPayload;
use crate::ids::{ConversationId, UserId};
use crate::model::{Conversation, ConversationKind, Member, Role};
use crate::policy::{Action, Attrs};
use crate::principal::Principal;

/// A change to a member; absent fields stay as they are. Each present field is
/// authorized on its own (`member.update`, `member.mute`, `member.ban`).
#[derive(Debug, Clone, Default)]
pub struct MemberChange {
    /// A new role (not owner: ownership is not transferable).
    pub role: Option<Role>,
    /// Mute or unmute.
    pub muted: Option<bool>,
    /// Ban or unban.
    pub banned: Option<bool>,
}

fn target_resource(
    conv: &Conversation,
    target: &UserId,
    current: Option<&Member>,
    new_role: Option<Role>,
) -> Attrs {
    let mut r = Caas::conversation_resource(conv);
    r.set("target_user", target.shared());
    if let Some(m) = current {
        r.set("target_role", m.role.as_str());
        r.set("target_rank", m.role.rank());
    }
    if let Some(role) = new_role {
        r.set("new_role", role.as_str());
        r.set("new_rank", role.rank());
    }
    r
}

impl Caas {
    fn member_subject(ctx: &Ctx<'_>, actor: Option<&Member>) -> Attrs {
        Self::subject(ctx, actor)
    }

    /// Adds `user` with `role` (default member), or lets a user join a public
    /// channel. Adding a current member changes nothing and returns their record; a
    /// banned user must be unbanned first ([`Error::Conflict`]).
    pub async fn add_member(
        &self,
        p: &Principal,
        id: &ConversationId,
        user: &UserId,
        role: Option<Role>,
    ) -> Result<Member> {
        let ctx = self.ctx(p).await?;
        let (conv, actor) = self.load_conversation(&ctx, id).await?;
        let role = role.unwrap_or(Role::Member);
        let existing = self.b.conversations.member(&ctx.tenant, id, user).await?;
        let rule = Self::authorize(
            &ctx,
            Action::MemberAdd,
            Self::member_subject(&ctx, actor.as_ref()),
            target_resource(&conv, user, existing.as_ref(), Some(role)),
        )?;
        self.rate_limit(&ctx, Action::MemberAdd).await?;
        if conv.kind == ConversationKind::Direct {
            return Err(Error::invalid(
                "conversation_id",
                "direct conversations have exactly two members",
            ));
        }
        if role == Role::Owner {
            return Err(Error::invalid(
                "role",
                "a conversation has one owner, set at creation",
            ));
        }
        match existing {
            Some(m) if m.banned => {
                return Err(Error::conflict(
                    "the user is banned from this conversation; unban first",
                ));
            }
            Some(m) => return Ok(m),
            None => {}
        }
        if self.b.users.get(&ctx.tenant, user).await?.is_none() {
            return Err(Error::not_found(EntityKind::User, user));
        }
        let members = self.b.conversations.members(&ctx.tenant, id).await?;
        let max = ctx.max_members(&self.cfg);
        if members.len() >= max {
            return Err(Error::QuotaExceeded {
                quota: format!("max_members ({max})"),
            });
        }
        let member = Member::new(id.clone(), user.clone(), role, ctx.now);
        self.b
            .conversations
            .put_member(&ctx.tenant, &member)
            .await?;
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::MemberAdd,
                format!("conversation:{id}/member:{user}"),
                &rule,
                serde_json::json!({"role": role}),
                ctx.now,
            ),
        )
        .await?;
        let audience = self.audience(&ctx.tenant, id).await?;
        self.emit(
            &ctx,
            audience,
            EventPayload::MemberJoined {
                conversation_id: id.clone(),
                member: member.clone(),
            },
        )
        .await?;
        Ok(member)
    }

    /// Removes a member, or leaves. The removed user gets the `member.left` event too.
    pub async fn remove_member(
        &self,
        p: &Principal,
        id: &ConversationId,
        user: &UserId,
    ) -> Result<()> {
        let ctx = self.ctx(p).await?;
        let (conv, actor) = self.load_conversation(&ctx, id).await?;
        let target = self.b.conversations.member(&ctx.tenant, id, user).await?;
        let rule = Self::authorize(
            &ctx,
            Action::MemberRemove,
            Self::member_subject(&ctx, actor.as_ref()),
            target_resource(&conv, user, target.as_ref(), None),
        )?;
        if conv.kind == ConversationKind::Direct {
            return Err(Error::invalid(
                "conversation_id",
                "direct conversations have exactly two members",
            ));
        }
        let Some(target) = target else {
            return Err(Error::not_found(EntityKind::Member, user));
        };
        let audience = self.audience(&ctx.tenant, id).await?;
        self.b
            .conversations
            .remove_member(&ctx.tenant, id, user)
            .await?;
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::MemberRemove,
                format!("conversation:{id}/member:{user}"),
                &rule,
                serde_json::json!({"role": target.role}),
                ctx.now,
            ),
        )
        .await?;
        let by = ctx.p.user.clone().unwrap_or_else(|| user.clone());
        self.emit(
            &ctx,
            audience,
            EventPayload::MemberLeft {
                conversation_id: id.clone(),
                user_id: user.clone(),
                by,
            },
        )
        .await
    }

    /// Changes a member's role, mute or ban. Returns the record after the change.
    pub async fn update_member(
        &self,
        p: &Principal,
        id: &ConversationId,
        user: &UserId,
        change: MemberChange,
    ) -> Result<Member> {
        let ctx = self.ctx(p).await?;
        let (conv, actor) = self.load_conversation(&ctx, id).await?;
        let current = self
            .b
            .conversations
            .member(&ctx.tenant, id, user)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Member, user))?;
        let subject = Self::member_subject(&ctx, actor.as_ref());
        let mut rules: Vec<Arc<str>> = Vec::new();
        if let Some(role) = change.role {
            rules.push(Self::authorize(
                &ctx,
                Action::MemberUpdate,
                subject.clone(),
                target_resource(&conv, user, Some(&current), Some(role)),
            )?);
            if role == Role::Owner || current.role == Role::Owner {
                return Err(Error::invalid("role", "ownership is not transferable"));
            }
        }
        if change.muted.is_some() {
            rules.push(Self::authorize(
                &ctx,
                Action::MemberMute,
                subject.clone(),
                target_resource(&conv, user, Some(&current), None),
            )?);
        }
        if change.banned.is_some() {
            rules.push(Self::authorize(
                &ctx,
                Action::MemberBan,
                subject,
                target_resource(&conv, user, Some(&current), None),
            )?);
        }
        if rules.is_empty() {
            return Err(Error::invalid("change", "nothing to change"));
        }
        let mut member = current.clone();
        if let Some(role) = change.role {
            member.role = role;
        }
        if let Some(m) = change.muted {
            member.muted = m;
        }
        if let Some(b) = change.banned {
            member.banned = b;
        }
        if member == current {
            return Ok(member);
        }
        // The banned user is told once, then sees nothing more.
        let mut audience: Vec<UserId> = self.audience(&ctx.tenant, id).await?.to_vec();
        if !audience.contains(user) {
            audience.push(user.clone());
        }
        self.b
            .conversations
            .put_member(&ctx.tenant, &member)
            .await?;
        let detail = serde_json::json!({"role": change.role, "muted": change.muted, "banned": change.banned});
        let rule = rules
            .iter()
            .map(|r| r.as_ref())
            .collect::<Vec<_>>()
            .join(",");
        let action = if change.banned.is_some() {
            Action::MemberBan
        } else if change.muted.is_some() {
            Action::MemberMute
        } else {
            Action::MemberUpdate
        };
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                action,
                format!("conversation:{id}/member:{user}"),
                &rule,
                detail,
                ctx.now,
            ),
        )
        .await?;
        self.emit(
            &ctx,
            audience.into(),
            EventPayload::MemberUpdated {
                conversation_id: id.clone(),
                member: member.clone(),
            },
        )
        .await?;
        Ok(member)
    }
}
