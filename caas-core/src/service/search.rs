//! Search over the caller's own data.

use super::Caas;
use super::reads::{Page, split_cursor};
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

    /// Messages matching `query`, only from the caller's conversations, newest
    /// (highest seq) first: a page of `limit` after `cursor`.
    pub async fn search_messages(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<MessageHit>> {
        let (ctx, within) = self.searchable(p, query, limit).await?;
        let after = cursor
            .map(|c| {
                let (seq, conv) = split_cursor(c)?;
                Ok::<_, Error>((crate::ids::Seq(seq), ConversationId::parse(conv)?))
            })
            .transpose()?;
        let hits = self
            .b
            .search
            .search_messages(
                &ctx.tenant,
                query,
                &within,
                after.as_ref().map(|(s, c)| (*s, c)),
                limit + 1,
            )
            .await?;
        Ok(Page::of(hits, limit, |h| {
            format!("{}.{}", h.seq.get(), h.conversation)
        }))
    }

    /// The caller's conversations whose name matches `query`, by id: a page of
    /// `limit` after `cursor`.
    pub async fn search_conversations(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<ConversationId>> {
        let (ctx, within) = self.searchable(p, query, limit).await?;
        let after = cursor.map(ConversationId::parse).transpose()?;
        let ids = self
            .b
            .search
            .search_conversations(&ctx.tenant, query, &within, after.as_ref(), limit + 1)
            .await?;
        Ok(Page::of(ids, limit, ToString::to_string))
    }

    /// Users of the caller's tenant whose name or id matches `query`, by id: a
    /// page of `limit` after `cursor`.
    pub async fn search_users(
        &self,
        p: &Principal,
        query: &str,
        limit: usize,
        cursor: Option<&str>,
    ) -> Result<Page<UserId>> {
        let (ctx, _) = self.searchable(p, query, limit).await?;
        let after = cursor.map(UserId::parse).transpose()?;
        let ids = self
            .b
            .search
            .search_users(&ctx.tenant, query, after.as_ref(), limit + 1)
            .await?;
        Ok(Page::of(ids, limit, ToString::to_string))
    }
}
