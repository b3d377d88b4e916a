//! Typing, presence and call signals: published to members, never stored as
//! messages or logged for sync.

use std::collections::BTreeSet;
use std::sync::Arc;

use super::Caas;
use crate::error::{Error, Result};
use crate::events::EventPayload;
use crate::ids::{ConversationId, DeviceId, UserId};
use crate::model::{Presence, PresenceStatus};
use crate::policy::{Action, Attrs};
use crate::principal::Principal;

impl Caas {
    /// Tells the other members that the caller started or stopped typing.
    pub async fn typing(&self, p: &Principal, conv: &ConversationId, typing: bool) -> Result<()> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        self.conversation_action(&ctx, conv, Action::Typing).await?;
        self.rate_limit(&ctx, Action::Typing).await?;
        let audience: Arc<[UserId]> = self
            .audience(&ctx.tenant, conv)
            .await?
            .iter()
            .filter(|u| **u != user)
            .cloned()
            .collect();
        self.emit(
            &ctx,
            audience,
            EventPayload::Typing {
                conversation_id: conv.clone(),
                user_id: user,
                typing,
            },
        )
        .await
    }

    /// Relays a WebRTC signal to one member (`to`) or to every other member.
    pub async fn call_signal(
        &self,
        p: &Principal,
        conv: &ConversationId,
        to: Option<UserId>,
        signal: serde_json::Value,
    ) -> Result<()> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        self.conversation_action(&ctx, conv, Action::CallSignal)
            .await?;
        self.rate_limit(&ctx, Action::CallSignal).await?;
        let size = serde_json::to_vec(&signal)
            .map(|v| v.len())
            .unwrap_or(usize::MAX);
        if size > self.cfg.max_signal_bytes {
            return Err(Error::PayloadTooLarge {
                field: "signal".into(),
                size,
                limit: self.cfg.max_signal_bytes,
            });
        }
        let members = self.audience(&ctx.tenant, conv).await?;
        let audience: Arc<[UserId]> = match &to {
            Some(t) if *t == user => return Err(Error::invalid("to", "cannot signal oneself")),
            Some(t) if members.contains(t) => Arc::from(vec![t.clone()]),
            Some(t) => return Err(Error::invalid("to", format!("`{t}` is not a member"))),
            None => members.iter().filter(|u| **u != user).cloned().collect(),
        };
        let payload = EventPayload::CallSignal {
            conversation_id: conv.clone(),
            from: user,
            from_device: ctx.p.device.clone(),
            to,
            signal,
        };
        self.emit(&ctx, audience, payload).await
    }

    /// Reports the caller's device's presence (a heartbeat: it lasts
    /// [`super::Config::presence_ttl`]). When the user's aggregated status changes,
    /// everyone sharing a conversation with them is told.
    pub async fn set_presence(&self, p: &Principal, status: PresenceStatus) -> Result<Presence> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        Self::authorize(
            &ctx,
            Action::PresenceUpdate,
            Self::subject(&ctx, None),
            Attrs::default().with("owner", user.shared()),
        )?;
        self.rate_limit(&ctx, Action::PresenceUpdate).await?;
        let device = ctx
            .p
            .device
            .clone()
            .map_or_else(|| DeviceId::parse("default"), Ok)?;
        let change = if status == PresenceStatus::Offline {
            self.b
                .presence
                .clear(&ctx.tenant, &user, &device, ctx.now)
                .await?
        } else {
            self.b
                .presence
                .set(
                    &ctx.tenant,
                    &user,
                    &device,
                    status,
                    ctx.now,
                    self.cfg.presence_ttl,
                )
                .await?
        };
        if change.changed() {
            let mut contacts = BTreeSet::new();
            for (conv, m) in self
                .b
                .conversations
                .list_for_user(&ctx.tenant, &user)
                .await?
            {
                if m.banned {
                    continue;
                }
                for other in self.b.conversations.members(&ctx.tenant, &conv.id).await? {
                    if !other.banned {
                        contacts.insert(other.user);
                    }
                }
            }
            let audience: Arc<[UserId]> = contacts.into_iter().collect();
            let payload = EventPayload::Presence {
                user_id: user,
                status: change.after.status,
                last_seen: change.after.last_seen,
            };
            self.emit(&ctx, audience, payload).await?;
        }
        Ok(change.after)
    }

    /// The aggregated presence of users of the caller's tenant.
    pub async fn presence(&self, p: &Principal, users: &[UserId]) -> Result<Vec<Presence>> {
        let ctx = self.ctx(p).await?;
        Self::authorize(
            &ctx,
            Action::PresenceRead,
            Self::subject(&ctx, None),
            Attrs::default().with("kind", "presence"),
        )?;
        if users.len() > self.cfg.max_page {
            return Err(Error::invalid(
                "users",
                format!("at most {}", self.cfg.max_page),
            ));
        }
        self.b.presence.get(&ctx.tenant, users, ctx.now).await
    }
}
