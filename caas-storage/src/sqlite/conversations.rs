use async_trait::async_trait;
use caas_core::ids::{ConversationId, TenantId, UserId};
use caas_core::model::{Conversation, Member};
use caas_core::ports::{ConversationStore, Created};
use caas_core::{EntityKind, Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::codec::{from_json, limit, to_json};
use super::error::Ctx;
use super::writer::Tx;
use super::{SqliteStore, search};

fn get_conversation(c: &Connection, tenant: &str, id: &str) -> Result<Option<Conversation>> {
    let doc: Option<String> = c
        .prepare_cached("SELECT doc FROM conversations WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.query_row(params![tenant, id], |r| r.get(0)).optional())
        .ctx("get conversation")?;
    doc.map(|d| from_json(&d, "conversation")).transpose()
}

fn exists(c: &Connection, tenant: &str, id: &str) -> Result<bool> {
    c.prepare_cached("SELECT 1 FROM conversations WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.exists(params![tenant, id]))
        .ctx("check conversation")
}

fn put_member_row(c: &Connection, tenant: &str, m: &Member, doc: &str) -> Result<()> {
    c.prepare_cached(
        "INSERT INTO members (tenant, conversation, user, doc) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (tenant, conversation, user) DO UPDATE SET doc = excluded.doc",
    )
    .and_then(|mut s| {
        s.execute(params![
            tenant,
            m.conversation.as_str(),
            m.user.as_str(),
            doc
        ])
    })
    .ctx("store member")?;
    Ok(())
}

fn reindex(c: &Tx<'_, '_>, conv: &Conversation) -> Result<()> {
    let stream = c.stream(&conv.tenant, &conv.id)?;
    search::put_conversation(c, stream, search::conversation_words(conv).as_ref())
}

impl SqliteStore {
    /// For [`Tx::after_batch`] of a write to `conv` (with `members` when its
    /// members change): drops what is cached of it once the batch ends, before
    /// the writing caller is answered, even if that caller stopped waiting (see
    /// `read_cache.rs`).
    fn forget(
        &self,
        tenant: &TenantId,
        conv: &ConversationId,
        members: bool,
    ) -> impl FnOnce() + Send + 'static {
        let inner = &self.inner;
        let caches = (
            inner.conversations.clone(),
            members.then(|| inner.members.clone()),
        );
        let (tenant, conv) = (tenant.clone(), conv.clone());
        move || {
            caches.0.invalidate(&tenant, &conv);
            if let Some(members) = caches.1 {
                members.invalidate(&tenant, &conv);
            }
        }
    }
}

#[async_trait]
impl ConversationStore for SqliteStore {
    async fn create(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<Created<Conversation>> {
        let conv = conversation.clone();
        let doc = to_json(&conv, "conversation")?;
        let members = members
            .iter()
            .map(|m| Ok((m.clone(), to_json(m, "member")?)))
            .collect::<Result<Vec<_>>>()?;
        // An empty list may be cached for an id not yet created.
        let forget = self.forget(&conversation.tenant, &conversation.id, true);
        self.write(move |c| {
            c.after_batch(forget);
            let tenant = conv.tenant.as_str();
            // The single writer serializes creates, so check-then-insert cannot race;
            // the unique index still backs it up.
            if let Some(key) = &conv.direct_key {
                let twin: Option<String> = c
                    .prepare_cached("SELECT doc FROM conversations WHERE tenant = ?1 AND direct_key = ?2")
                    .and_then(|mut s| s.query_row(params![tenant, key], |r| r.get(0)).optional())
                    .ctx("find direct conversation")?;
                if let Some(doc) = twin {
                    return Ok(Created::Existing(from_json(&doc, "conversation")?));
                }
            }
            let n = c
                .prepare_cached(
                    "INSERT INTO conversations (tenant, id, direct_key, doc) VALUES (?1, ?2, ?3, ?4)
                     ON CONFLICT (tenant, id) DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![tenant, conv.id.as_str(), conv.direct_key, doc]))
                .ctx("create conversation")?;
            if n == 0 {
                return Err(Error::conflict(format!("conversation `{}` exists", conv.id)));
            }
            for (m, doc) in &members {
                put_member_row(c, tenant, m, doc)?;
            }
            reindex(c, &conv)?;
            Ok(Created::New(conv))
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, id: &ConversationId) -> Result<Option<Conversation>> {
        if let Some(known) = self.inner.conversations.get(tenant, id) {
            return Ok(known);
        }
        let generation = self.inner.conversations.generation();
        let (t, i) = (tenant.clone(), id.clone());
        let found = self
            .read_short(move |c| get_conversation(c, t.as_str(), i.as_str()))
            .await?;
        self.inner
            .conversations
            .fill(tenant, id, generation, found.clone(), 1);
        Ok(found)
    }

    async fn update(&self, conversation: &Conversation) -> Result<()> {
        let given = conversation.clone();
        let forget = self.forget(&given.tenant, &given.id, false);
        self.write(move |c| {
            c.after_batch(forget);
            let mut stored = get_conversation(c, given.tenant.as_str(), given.id.as_str())?
                .ok_or_else(|| Error::not_found(EntityKind::Conversation, &given.id))?;
            // Only the name and attributes change; kind, creator and key stay.
            stored.name = given.name;
            stored.attributes = given.attributes;
            let doc = to_json(&stored, "conversation")?;
            c.prepare_cached("UPDATE conversations SET doc = ?3 WHERE tenant = ?1 AND id = ?2")
                .and_then(|mut s| {
                    s.execute(params![stored.tenant.as_str(), stored.id.as_str(), doc])
                })
                .ctx("update conversation")?;
            reindex(c, &stored)?;
            Ok(())
        })
        .await
    }

    async fn member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>> {
        let (tenant, conv, user) = (tenant.clone(), conversation.clone(), user.clone());
        self.read(move |c| {
            let doc: Option<String> = c
                .prepare_cached(
                    "SELECT doc FROM members WHERE tenant = ?1 AND conversation = ?2 AND user = ?3",
                )
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), conv.as_str(), user.as_str()],
                        |r| r.get(0),
                    )
                    .optional()
                })
                .ctx("get member")?;
            doc.map(|d| from_json(&d, "member")).transpose()
        })
        .await
    }

    async fn members(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Member>> {
        if let Some(members) = self.inner.members.get(tenant, conversation) {
            return Ok(members.to_vec());
        }
        let generation = self.inner.members.generation();
        let (tenant, conv) = (tenant.clone(), conversation.clone());
        let (t, cv) = (tenant.clone(), conv.clone());
        // On the pool, not the caller's thread: a large conversation's list takes
        // milliseconds to decode, and misses are rare once it is cached.
        let members: Vec<Member> = self
            .read(move |c| {
                let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM members WHERE tenant = ?1 AND conversation = ?2 ORDER BY user",
                )
                .ctx("list members")?;
                let docs = stmt
                    .query_map(params![tenant.as_str(), conv.as_str()], |r| {
                        r.get::<_, String>(0)
                    })
                    .ctx("list members")?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .ctx("list members")?;
                docs.iter().map(|d| from_json(d, "member")).collect()
            })
            .await?;
        let weight = members.len();
        self.inner
            .members
            .fill(&t, &cv, generation, members.as_slice().into(), weight);
        Ok(members)
    }

    async fn put_member(&self, tenant: &TenantId, member: &Member) -> Result<bool> {
        let forget = self.forget(tenant, &member.conversation, true);
        let (tenant, member) = (tenant.clone(), member.clone());
        let doc = to_json(&member, "member")?;
        self.write(move |c| {
            c.after_batch(forget);
            if !exists(c, tenant.as_str(), member.conversation.as_str())? {
                return Err(Error::not_found(
                    EntityKind::Conversation,
                    &member.conversation,
                ));
            }
            let had = c
                .prepare_cached(
                    "SELECT 1 FROM members WHERE tenant = ?1 AND conversation = ?2 AND user = ?3",
                )
                .and_then(|mut s| {
                    s.exists(params![
                        tenant.as_str(),
                        member.conversation.as_str(),
                        member.user.as_str()
                    ])
                })
                .ctx("check member")?;
            put_member_row(c, tenant.as_str(), &member, &doc)?;
            Ok(!had)
        })
        .await
    }

    async fn remove_member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<bool> {
        let forget = self.forget(tenant, conversation, true);
        let (tenant, conv, user) = (tenant.clone(), conversation.clone(), user.clone());
        self.write(move |c| {
            c.after_batch(forget);
            let n = c
                .prepare_cached(
                    "DELETE FROM members WHERE tenant = ?1 AND conversation = ?2 AND user = ?3",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), conv.as_str(), user.as_str()]))
                .ctx("remove member")?;
            Ok(n > 0)
        })
        .await
    }

    async fn list_for_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<(Conversation, Member)>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT c.doc, m.doc FROM members m
                     JOIN conversations c ON c.tenant = m.tenant AND c.id = m.conversation
                     WHERE m.tenant = ?1 AND m.user = ?2
                     ORDER BY m.conversation",
                )
                .ctx("list conversations of user")?;
            let rows = stmt
                .query_map(params![tenant.as_str(), user.as_str()], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .ctx("list conversations of user")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list conversations of user")?;
            rows.iter()
                .map(|(c, m)| Ok((from_json(c, "conversation")?, from_json(m, "member")?)))
                .collect()
        })
        .await
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&ConversationId>,
        n: usize,
    ) -> Result<Vec<Conversation>> {
        let (tenant, after) = (tenant.clone(), after.cloned());
        // A range of the primary key (tenant, id); "" sorts before every id.
        self.read(move |c| {
            let after = after.as_ref().map_or("", |a| a.as_str());
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM conversations WHERE tenant = ?1 AND id > ?2
                     ORDER BY id LIMIT ?3",
                )
                .ctx("list conversations")?;
            let docs = stmt
                .query_map(params![tenant.as_str(), after, limit(n)], |r| {
                    r.get::<_, String>(0)
                })
                .ctx("list conversations")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list conversations")?;
            docs.iter().map(|d| from_json(d, "conversation")).collect()
        })
        .await
    }
}
