//! Search over the caller's own data.

use super::Caas;
use crate::error::{Error, Result};
use crate::ids::{ConversationId, UserId};
use crate::policy::{Action, Attrs};
use crate::ports::MessageHit;
use crate::principal::Principal;

const MAX_QUERY: usize = 256;

impl Caas {
    /// The conversations the caller may search: their active memberships.
    async fn searchable<'p>(
        &self,
        p: &'p Principal,
        query: &str,
        limit: usize,
    ) -> Result<(super::Ctx<'p>, Vec<ConversationId>)> {
        let ctx = self.ctx(p).await?;
        let user = ctx.user()?.clone();
        Self::authorize(
            &ctx,
            Action::Search,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "search")
                .with("owner", user.shared()),
        )?;
        self.rate_limit(&ctx, Action::Search).await?;
        self.check_limit(limit)?;
        if query.trim().is_empty() || query.len() > MAX_QUERY {
            return Err(Error::invalid(
                "q",
                format!("must be 1 to {MAX_QUERY} bytes"),
            ));
        }
        let within = self
            .b
            .conversations
            .list_for_user(&ctx.tenant, &user)
            .await?
            .into_iter()
            .filter(|(_, m)| !m.banned)
            .map(|(c, _)| c.id)
            .collect();
        Ok((ctx, within))
    }

    /// Messages matching `query`, only from the caller's conversations, newest first.
    pub async fn search_messages(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
    ) -> Result<Vec<MessageHit>> {
        let (ctx, within) = self.searchable(p, query, limit).await?;
        self.b
            .search
            .search_messages(&ctx.tenant, query, &within, limit)
            .await
    }

    /// The caller's conversations whose name matches `query`.
    pub async fn search_conversations(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
    ) -> Result<Vec<ConversationId>> {
        let (ctx, within) = self.searchable(p, query, limit).await?;
        self.b
            .search
            .search_conversations(&ctx.tenant, query, &within, limit)
            .await
    }

    /// Users of the caller's tenant whose name or id matches `query`.
    pub async fn search_users(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
    ) -> Result<Vec<UserId>> {
        let (ctx, _) = self.searchable(p, query, limit).await?;
        self.b.search.search_users(&ctx.tenant, query, limit).await
    }
}
