//! Conversations and their members.
//!
//! A create inserts the conversation and its first members in one
//! transaction. A direct conversation's key is unique per tenant through a
//! partial unique index on `(tenant, direct_key)`: of two racing creates of
//! one pair, the second conflicts (on the uncommitted first, then on the
//! index) and returns the first as `Existing`.

use std::collections::HashMap;

use async_trait::async_trait;
use caas_core::ids::{ConversationId, TenantId, UserId};
use caas_core::model::{Conversation, Member};
use caas_core::ports::{ConversationStore, Created};
use caas_core::{EntityKind, Error, Result};
use mongodb::bson::Document;

use super::codec::{body, check_size, get_str, page_limit, to_json};
use super::names::{CONVERSATIONS, MEMBERS};
use super::txn::{Abort, OnDuplicate};
use super::{MongoStore, error};

/// The command, filter and update documents of conversations and members,
/// as pure functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{ConversationId, TenantId, UserId};
    use mongodb::bson::{Bson, Document, doc};

    use super::super::names::{CONVERSATIONS, MEMBERS};

    /// The `_id` of a conversation (one field order, always built here).
    pub(crate) fn conversation_id(tenant: &TenantId, id: &ConversationId) -> Document {
        doc! { "t": tenant.as_str(), "c": id.as_str() }
    }

    /// A conversation as stored; `direct_key` only when it has one, so the
    /// partial unique index covers direct conversations alone.
    pub(crate) fn conversation_document(
        tenant: &TenantId,
        id: &ConversationId,
        direct_key: Option<&str>,
        json: &str,
    ) -> Document {
        let mut d = doc! {
            "_id": conversation_id(tenant, id),
            "tenant": tenant.as_str(),
        };
        if let Some(key) = direct_key {
            d.insert("direct_key", key);
        }
        d.insert("doc", json);
        d
    }

    /// The direct conversation of a pair.
    pub(crate) fn by_direct_key(tenant: &TenantId, key: &str) -> Document {
        doc! { "tenant": tenant.as_str(), "direct_key": key }
    }

    /// A compare-and-set of a conversation's body.
    pub(crate) fn replace_if_unchanged(
        tenant: &TenantId,
        id: &ConversationId,
        old_doc: &str,
        new_doc: &str,
    ) -> (Document, Document) {
        (
            doc! { "_id": conversation_id(tenant, id), "doc": old_doc },
            doc! { "$set": { "doc": new_doc } },
        )
    }

    /// One membership record.
    pub(crate) fn member(
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Document {
        doc! {
            "tenant": tenant.as_str(),
            "conversation": conversation.as_str(),
            "user": user.as_str(),
        }
    }

    /// A membership record as stored.
    pub(crate) fn member_document(
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        json: &str,
    ) -> Document {
        doc! {
            "tenant": tenant.as_str(),
            "conversation": conversation.as_str(),
            "user": user.as_str(),
            "doc": json,
        }
    }

    /// The upsert of a membership record (`update_one`, upsert: the filter is
    /// [`member`], whose equality fields an insert takes).
    pub(crate) fn put_member(json: &str) -> Document {
        doc! { "$set": { "doc": json } }
    }

    /// Every record of a conversation, by user id.
    pub(crate) fn members(
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "conversation": conversation.as_str() },
            doc! { "user": 1 },
        )
    }

    /// Every record of a user, by conversation id.
    pub(crate) fn memberships(tenant: &TenantId, user: &UserId) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "user": user.as_str() },
            doc! { "conversation": 1 },
        )
    }

    /// The conversations with these ids.
    pub(crate) fn conversations(tenant: &TenantId, ids: &[&ConversationId]) -> Document {
        let ids: Vec<Document> = ids.iter().map(|c| conversation_id(tenant, c)).collect();
        doc! { "_id": { "$in": ids } }
    }

    /// A page of a tenant's conversations after `after`, and its order: a
    /// range of the `_id` index. Ids are documents compared field by field,
    /// type before value, so `{t, c: MinKey}` and `{t, c: MaxKey}` bound every
    /// `{t, c: <string>}` of the tenant and no other tenant's.
    pub(crate) fn list(tenant: &TenantId, after: Option<&ConversationId>) -> (Document, Document) {
        let from = match after {
            Some(a) => conversation_id(tenant, a),
            None => doc! { "t": tenant.as_str(), "c": Bson::MinKey },
        };
        let to = doc! { "t": tenant.as_str(), "c": Bson::MaxKey };
        (
            doc! { "_id": { "$gt": from, "$lt": to } },
            doc! { "_id": 1 },
        )
    }

    /// The `createIndexes` commands of `conversations` and `members`.
    pub(crate) fn create_indexes() -> [Document; 2] {
        [
            doc! {
                "createIndexes": CONVERSATIONS,
                "indexes": [
                    {
                        "key": { "tenant": 1, "direct_key": 1 },
                        "name": "conversations_direct_key",
                        "unique": true,
                        "partialFilterExpression": { "direct_key": { "$type": "string" } },
                    },
                ],
            },
            doc! {
                "createIndexes": MEMBERS,
                "indexes": [
                    {
                        "key": { "tenant": 1, "conversation": 1, "user": 1 },
                        "name": "members_conversation_user",
                        "unique": true,
                    },
                    {
                        "key": { "tenant": 1, "user": 1, "conversation": 1 },
                        "name": "members_user_conversation",
                    },
                ],
            },
        ]
    }
}

fn decode_member(d: &Document, conversation: Option<&ConversationId>) -> Result<Member> {
    let m: Member = body(d, "member")?;
    if conversation.is_some_and(|c| c != &m.conversation) {
        return Err(Error::internal(
            "mongo: a stored member's body names another conversation",
        ));
    }
    Ok(m)
}

fn decode_conversation(d: &Document, tenant: &TenantId) -> Result<Conversation> {
    let c: Conversation = body(d, "conversation")?;
    if &c.tenant != tenant {
        return Err(Error::internal(
            "mongo: a stored conversation's body names another tenant",
        ));
    }
    Ok(c)
}

/// Compare-and-set rounds of one update before giving up.
const MAX_CHANGE_ROUNDS: u32 = 64;

impl MongoStore {
    async fn find_direct(&self, tenant: &TenantId, key: &str) -> Result<Option<Conversation>> {
        let found = self
            .bounded(
                "look up direct conversation",
                self.coll(CONVERSATIONS)
                    .find_one(commands::by_direct_key(tenant, key)),
            )
            .await?;
        found.map(|d| decode_conversation(&d, tenant)).transpose()
    }
}

#[async_trait]
impl ConversationStore for MongoStore {
    async fn create(
        &self,
        conversation: &Conversation,
        members: &[Member],
    ) -> Result<Created<Conversation>> {
        let tenant = &conversation.tenant;
        if let Some(key) = &conversation.direct_key
            && let Some(existing) = self.find_direct(tenant, key).await?
        {
            return Ok(Created::Existing(existing));
        }
        let json = to_json(conversation, "conversation")?;
        check_size("conversation", json.len())?;
        let conv_doc = commands::conversation_document(
            tenant,
            &conversation.id,
            conversation.direct_key.as_deref(),
            &json,
        );
        let member_docs = members
            .iter()
            .map(|m| {
                let json = to_json(m, "member")?;
                check_size("member", json.len())?;
                Ok(commands::member_document(
                    tenant,
                    &conversation.id,
                    &m.user,
                    &json,
                ))
            })
            .collect::<Result<Vec<_>>>()?;
        let (convs, mems) = (self.coll(CONVERSATIONS), self.coll(MEMBERS));
        let outcome = self
            .transaction("create conversation", OnDuplicate::Report, |s| {
                let (convs, mems) = (convs.clone(), mems.clone());
                let (conv_doc, member_docs) = (conv_doc.clone(), member_docs.clone());
                Box::pin(async move {
                    convs.insert_one(conv_doc).session(&mut *s).await?;
                    if !member_docs.is_empty() {
                        mems.insert_many(member_docs).session(&mut *s).await?;
                    }
                    Ok::<_, Abort>(())
                })
            })
            .await;
        match outcome {
            Ok(()) => Ok(Created::New(conversation.clone())),
            Err(Error::Conflict { .. }) => {
                if let Some(key) = &conversation.direct_key
                    && let Some(existing) = self.find_direct(tenant, key).await?
                {
                    return Ok(Created::Existing(existing));
                }
                Err(Error::conflict(format!(
                    "conversation `{}` already exists",
                    conversation.id
                )))
            }
            Err(e) => Err(e),
        }
    }

    async fn get(&self, tenant: &TenantId, id: &ConversationId) -> Result<Option<Conversation>> {
        let found = self
            .bounded(
                "get conversation",
                self.coll(CONVERSATIONS)
                    .find_one(mongodb::bson::doc! { "_id": commands::conversation_id(tenant, id) }),
            )
            .await?;
        found.map(|d| decode_conversation(&d, tenant)).transpose()
    }

    async fn update(&self, conversation: &Conversation) -> Result<()> {
        let (tenant, id) = (&conversation.tenant, &conversation.id);
        let coll = self.coll(CONVERSATIONS);
        for round in 0..MAX_CHANGE_ROUNDS {
            let found = self
                .bounded(
                    "read conversation",
                    coll.find_one(
                        mongodb::bson::doc! { "_id": commands::conversation_id(tenant, id) },
                    ),
                )
                .await?
                .ok_or_else(|| Error::not_found(EntityKind::Conversation, id))?;
            let old = get_str(&found, "doc", "conversation")?;
            let mut stored = decode_conversation(&found, tenant)?;
            // Only the name and attributes change; kind, creator and key stay.
            stored.name = conversation.name.clone();
            stored.attributes = conversation.attributes.clone();
            let new = to_json(&stored, "conversation")?;
            check_size("conversation", new.len())?;
            let (filter, update) = commands::replace_if_unchanged(tenant, id, old, &new);
            let done = self
                .bounded("update conversation", coll.update_one(filter, update))
                .await?;
            if done.matched_count == 1 {
                return Ok(());
            }
            tokio::time::sleep(super::txn::backoff(round)).await;
        }
        Err(Error::Unavailable {
            backend: error::BACKEND,
            context: format!("update conversation `{id}`: too many concurrent changes"),
            temporary: true,
            source: None,
        })
    }

    async fn member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Option<Member>> {
        let found = self
            .bounded(
                "get member",
                self.coll(MEMBERS)
                    .find_one(commands::member(tenant, conversation, user)),
            )
            .await?;
        found
            .map(|d| decode_member(&d, Some(conversation)))
            .transpose()
    }

    async fn members(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> Result<Vec<Member>> {
        let (filter, sort) = commands::members(tenant, conversation);
        self.find_all("list members", MEMBERS, filter, sort, None)
            .await?
            .iter()
            .map(|d| decode_member(d, Some(conversation)))
            .collect()
    }

    async fn put_member(&self, tenant: &TenantId, member: &Member) -> Result<bool> {
        if ConversationStore::get(self, tenant, &member.conversation)
            .await?
            .is_none()
        {
            return Err(Error::not_found(
                EntityKind::Conversation,
                &member.conversation,
            ));
        }
        let json = to_json(member, "member")?;
        check_size("member", json.len())?;
        let done = self
            .bounded(
                "store member",
                self.coll(MEMBERS)
                    .update_one(
                        commands::member(tenant, &member.conversation, &member.user),
                        commands::put_member(&json),
                    )
                    .upsert(true),
            )
            .await?;
        Ok(done.upserted_id.is_some())
    }

    async fn remove_member(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<bool> {
        let done = self
            .bounded(
                "remove member",
                self.coll(MEMBERS)
                    .delete_one(commands::member(tenant, conversation, user)),
            )
            .await?;
        Ok(done.deleted_count == 1)
    }

    async fn list_for_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
    ) -> Result<Vec<(Conversation, Member)>> {
        let (filter, sort) = commands::memberships(tenant, user);
        let records = self
            .find_all("list memberships", MEMBERS, filter, sort, None)
            .await?
            .iter()
            .map(|d| decode_member(d, None))
            .collect::<Result<Vec<_>>>()?;
        if records.is_empty() {
            return Ok(Vec::new());
        }
        let ids: Vec<&ConversationId> = records.iter().map(|m| &m.conversation).collect();
        let mut conversations: HashMap<ConversationId, Conversation> = self
            .find_all(
                "read conversations",
                CONVERSATIONS,
                commands::conversations(tenant, &ids),
                Document::new(),
                None,
            )
            .await?
            .iter()
            .map(|d| decode_conversation(d, tenant).map(|c| (c.id.clone(), c)))
            .collect::<Result<_>>()?;
        // A record whose conversation is gone is skipped (none is removed
        // today; this keeps a hand-edited database from failing the call).
        Ok(records
            .into_iter()
            .filter_map(|m| conversations.remove(&m.conversation).map(|c| (c, m)))
            .collect())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&ConversationId>,
        limit: usize,
    ) -> Result<Vec<Conversation>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::list(tenant, after);
        self.find_all(
            "list conversations",
            CONVERSATIONS,
            filter,
            sort,
            page_limit(limit),
        )
        .await?
        .iter()
        .map(|d| decode_conversation(d, tenant))
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::*;
    use mongodb::bson::doc;

    fn t() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    fn c() -> ConversationId {
        ConversationId::parse("general").unwrap()
    }

    #[test]
    fn direct_keys_are_stored_only_when_set_and_unique_per_tenant() {
        assert_eq!(
            conversation_document(&t(), &c(), Some("alice|bob"), "{}"),
            doc! {
                "_id": { "t": "acme", "c": "general" },
                "tenant": "acme",
                "direct_key": "alice|bob",
                "doc": "{}",
            }
        );
        assert_eq!(
            conversation_document(&t(), &c(), None, "{}"),
            doc! { "_id": { "t": "acme", "c": "general" }, "tenant": "acme", "doc": "{}" }
        );
        assert_eq!(
            by_direct_key(&t(), "alice|bob"),
            doc! { "tenant": "acme", "direct_key": "alice|bob" }
        );
        let [convs, mems] = create_indexes();
        assert_eq!(
            convs,
            doc! {
                "createIndexes": "conversations",
                "indexes": [{
                    "key": { "tenant": 1, "direct_key": 1 },
                    "name": "conversations_direct_key",
                    "unique": true,
                    "partialFilterExpression": { "direct_key": { "$type": "string" } },
                }],
            }
        );
        assert_eq!(
            mems,
            doc! {
                "createIndexes": "members",
                "indexes": [
                    { "key": { "tenant": 1, "conversation": 1, "user": 1 }, "name": "members_conversation_user", "unique": true },
                    { "key": { "tenant": 1, "user": 1, "conversation": 1 }, "name": "members_user_conversation" },
                ],
            }
        );
    }

    #[test]
    fn member_queries_page_by_id() {
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(
            member(&t(), &c(), &alice),
            doc! { "tenant": "acme", "conversation": "general", "user": "alice" }
        );
        assert_eq!(put_member("{m}"), doc! { "$set": { "doc": "{m}" } });
        assert_eq!(
            members(&t(), &c()),
            (
                doc! { "tenant": "acme", "conversation": "general" },
                doc! { "user": 1 }
            )
        );
        assert_eq!(
            memberships(&t(), &alice),
            (
                doc! { "tenant": "acme", "user": "alice" },
                doc! { "conversation": 1 }
            )
        );
        let other = ConversationId::parse("random").unwrap();
        assert_eq!(
            conversations(&t(), &[&c(), &other]),
            doc! { "_id": { "$in": [
                { "t": "acme", "c": "general" },
                { "t": "acme", "c": "random" },
            ] } }
        );
    }

    #[test]
    fn list_is_a_range_of_the_tenants_ids() {
        use mongodb::bson::Bson;
        assert_eq!(
            list(&t(), None),
            (
                doc! { "_id": {
                    "$gt": { "t": "acme", "c": Bson::MinKey },
                    "$lt": { "t": "acme", "c": Bson::MaxKey },
                } },
                doc! { "_id": 1 }
            )
        );
        assert_eq!(
            list(&t(), Some(&c())).0,
            doc! { "_id": {
                "$gt": { "t": "acme", "c": "general" },
                "$lt": { "t": "acme", "c": Bson::MaxKey },
            } }
        );
    }

    #[test]
    fn updates_are_compare_and_set_on_the_body() {
        assert_eq!(
            replace_if_unchanged(&t(), &c(), "{old}", "{new}"),
            (
                doc! { "_id": { "t": "acme", "c": "general" }, "doc": "{old}" },
                doc! { "$set": { "doc": "{new}" } }
            )
        );
    }
}
