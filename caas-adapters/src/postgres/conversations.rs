use std::sync::Arc;

use async_trait::async_trait;
use caas_core::ids::{ConversationId, TenantId, UserId};
use caas_core::model::{Conversation, Member};
use caas_core::ports::{ConversationStore, Created};
use caas_core::{EntityKind, Error, Result};

use super::codec::{from_json, get, limit, to_json};
use super::pool::Lease;
use super::{PostgresStore, notify, search};

async fn get_conversation(
    c: &mut Lease<'_>,
    tenant: &TenantId,
    id: &ConversationId,
    lock: bool,
) -> Result<Option<Conversation>> {
    let row = if lock {
        c.query_opt(
            "SELECT doc FROM conversations WHERE tenant = $1 AND id = $2 FOR UPDATE",
            &[&tenant.as_str(), &id.as_str()],
            "get conversation",
        )
        .await?
    } else {
        c.query_opt(
            "SELECT doc FROM conversations WHERE tenant = $1 AND id = $2",
            &[&tenant.as_str(), &id.as_str()],
            "get conversation",
        )
        .await?
    };
    row.map(|r| from_json(&get::<String>(&r, 0)?, "conversation"))
        .transpose()
}

async fn put_member_row(c: &mut Lease<'_>, tenant: &TenantId, m: &Member) -> Result<bool> {
    let doc = to_json(m, "member")?;
    // `xmax = 0` holds for a row this statement inserted, not for one it updated.
    let row = c
        .query_one(
            "INSERT INTO members (tenant, conversation, member, doc) VALUES ($1, $2, $3, $4)
             ON CONFLICT (tenant, conversation, member) DO UPDATE SET doc = excluded.doc
             RETURNING (xmax = 0)",
            &[
                &tenant.as_str(),
                &m.conversation.as_str(),
                &m.user.as_str(),
                &doc,
            ],
            "store member",
        )
        .await?;
    get(&row, 0)
}

async fn reindex(c: &mut Lease<'_>, conv: &Conversation) -> Result<()> {
    let words = search::conversation_words(conv).map(|w| w.text);
    c.execute(
        "INSERT INTO search_conversations (tenant, conversation, words)
         VALUES ($1, $2, CASE WHEN $3::text IS NULL THEN NULL
                              ELSE array_to_tsvector(string_to_array($3::text, ' ')) END)
         ON CONFLICT (tenant, conversation) DO UPDATE SET words = excluded.words",
        &[&conv.tenant.as_str(), &conv.id.as_str(), &words],
        "index conversation",
    )
    .await?;
    Ok(())
}

/// Runs `$body` (with the lease as `$c`) in a transaction that also notifies
/// every node's cache; drops this node's entry once it committed (or failed: a
/// failed commit's outcome may be unknown).
macro_rules! conversation_write {
    ($store:expr, $tenant:expr, $conv:expr, |$c:ident| $body:block) => {{
        let (tenant, conv) = ($tenant, $conv);
        let mut lease = $store.conn().await?;
        lease.begin().await?;
        let outcome = async {
            let $c = &mut lease;
            let value = async { $body }.await?;
            notify($c, tenant, conv).await?;
            Ok(value)
        }
        .await;
        let done = lease.finish(outcome).await;
        $store.shared().caches.invalidate(tenant, conv);
        done
    }};
}

#[async_trait]
impl ConversationStore for PostgresStore {
    async fn create(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<Created<Conversation>> {
        let doc = to_json(conversation, "conversation")?;
        let conv = conversation;
        conversation_write!(self, &conv.tenant, &conv.id, |c| {
            // Any unique index may refuse the row: the id, or the pair's direct key.
            let n = c
                .execute(
                    "INSERT INTO conversations (tenant, id, direct_key, doc) VALUES ($1, $2, $3, $4)
                     ON CONFLICT DO NOTHING",
                    &[
                        &conv.tenant.as_str(),
                        &conv.id.as_str(),
                        &conv.direct_key,
                        &doc,
                    ],
                    "create conversation",
                )
                .await?;
            if n == 0 {
                // A racing create of the same pair waited for the other to commit
                // before doing nothing, so this statement sees its row.
                if let Some(key) = &conv.direct_key {
                    let twin = c
                        .query_opt(
                            "SELECT doc FROM conversations WHERE tenant = $1 AND direct_key = $2",
                            &[&conv.tenant.as_str(), key],
                            "find direct conversation",
                        )
                        .await?;
                    if let Some(r) = twin {
                        return Ok(Created::Existing(from_json(
                            &get::<String>(&r, 0)?,
                            "conversation",
                        )?));
                    }
                }
                return Err(Error::conflict(format!(
                    "conversation `{}` exists",
                    conv.id
                )));
            }
            for m in members {
                put_member_row(c, &conv.tenant, m).await?;
            }
            reindex(c, conv).await?;
            Ok(Created::New(conv.clone()))
        })
    }

    async fn get(&self, tenant: &TenantId, id: &ConversationId) -> Result<Option<Conversation>> {
        let caches = &self.shared().caches;
        if let Some(known) = caches.conversation(tenant, id) {
            return Ok(known);
        }
        let generation = caches.generation();
        let mut c = self.conn().await?;
        let found = get_conversation(&mut c, tenant, id, false).await?;
        drop(c);
        caches.fill_conversation(tenant, id, generation, found.clone());
        Ok(found)
    }

    async fn update(&self, conversation: &Conversation) -> Result<()> {
        let given = conversation;
        conversation_write!(self, &given.tenant, &given.id, |c| {
            let mut stored = get_conversation(c, &given.tenant, &given.id, true)
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::Conversation, &given.id))?;
            // Only the name and attributes change; kind, creator and key stay.
            stored.name = given.name.clone();
            stored.attributes = given.attributes.clone();
            let doc = to_json(&stored, "conversation")?;
            c.execute(
                "UPDATE conversations SET doc = $3 WHERE tenant = $1 AND id = $2",
                &[&stored.tenant.as_str(), &stored.id.as_str(), &doc],
                "update conversation",
            )
            .await?;
            reindex(c, &stored).await
        })
    }

    async fn member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>> {
        if let Some(all) = self.shared().caches.members(tenant, conversation) {
            return Ok(all.iter().find(|m| &m.user == user).cloned());
        }
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT doc FROM members WHERE tenant = $1 AND conversation = $2 AND member = $3",
                &[&tenant.as_str(), &conversation.as_str(), &user.as_str()],
                "get member",
            )
            .await?;
        row.map(|r| from_json(&get::<String>(&r, 0)?, "member"))
            .transpose()
    }

    async fn members(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Member>> {
        let caches = &self.shared().caches;
        if let Some(all) = caches.members(tenant, conversation) {
            return Ok(all.to_vec());
        }
        let generation = caches.generation();
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc FROM members WHERE tenant = $1 AND conversation = $2 ORDER BY member",
                &[&tenant.as_str(), &conversation.as_str()],
                "list members",
            )
            .await?;
        let members: Vec<Member> = rows
            .iter()
            .map(|r| from_json(&get::<String>(r, 0)?, "member"))
            .collect::<Result<_>>()?;
        let shared: Arc<[Member]> = members.as_slice().into();
        caches.fill_members(tenant, conversation, generation, shared);
        Ok(members)
    }

    async fn put_member(&self, tenant: &TenantId, member: &Member) -> Result<bool> {
        conversation_write!(self, tenant, &member.conversation, |c| {
            // Locked (shared) so the conversation cannot vanish before this commits.
            let exists = c
                .query_opt(
                    "SELECT 1 FROM conversations WHERE tenant = $1 AND id = $2 FOR SHARE",
                    &[&tenant.as_str(), &member.conversation.as_str()],
                    "check conversation",
                )
                .await?
                .is_some();
            if !exists {
                return Err(Error::not_found(
                    EntityKind::Conversation,
                    &member.conversation,
                ));
            }
            put_member_row(c, tenant, member).await
        })
    }

    async fn remove_member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<bool> {
        conversation_write!(self, tenant, conversation, |c| {
            let n = c
                .execute(
                    "DELETE FROM members WHERE tenant = $1 AND conversation = $2 AND member = $3",
                    &[&tenant.as_str(), &conversation.as_str(), &user.as_str()],
                    "remove member",
                )
                .await?;
            Ok(n > 0)
        })
    }

    async fn list_for_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<(Conversation, Member)>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT c.doc, m.doc FROM members m
                 JOIN conversations c ON c.tenant = m.tenant AND c.id = m.conversation
                 WHERE m.tenant = $1 AND m.member = $2
                 ORDER BY m.conversation",
                &[&tenant.as_str(), &user.as_str()],
                "list conversations of user",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    from_json(&get::<String>(r, 0)?, "conversation")?,
                    from_json(&get::<String>(r, 1)?, "member")?,
                ))
            })
            .collect()
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&ConversationId>,
        n: usize,
    ) -> Result<Vec<Conversation>> {
        // A range of the primary key (tenant, id); "" sorts before every id.
        let after = after.map_or("", |a| a.as_str());
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc FROM conversations WHERE tenant = $1 AND id > $2
                 ORDER BY id LIMIT $3",
                &[&tenant.as_str(), &after, &limit(n)],
                "list conversations",
            )
            .await?;
        rows.iter()
            .map(|r| from_json(&get::<String>(r, 0)?, "conversation"))
            .collect()
    }
}
