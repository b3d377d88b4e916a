//! Users. An upsert is one `findOneAndUpdate`: the body is replaced and
//! `created_at` is written only on insert (`$setOnInsert`), so a replace keeps
//! the first one however creates race.

use std::collections::HashMap;

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::model::User;
use caas_core::ports::UserStore;
use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use mongodb::bson::Document;
use mongodb::options::ReturnDocument;

use super::MongoStore;
use super::codec::{body, check_size, get_i64, page_limit, to_json, to_u64, ts_to_i64};
use super::names::USERS;

/// The command, filter and update documents of users, as pure functions of
/// their arguments.
pub(super) mod commands {
    use caas_core::ids::{TenantId, UserId};
    use mongodb::bson::{Document, doc};

    use super::super::names::USERS;

    /// One user (the key of the unique index `users_id`).
    pub(crate) fn by_id(tenant: &TenantId, id: &UserId) -> Document {
        doc! { "tenant": tenant.as_str(), "id": id.as_str() }
    }

    /// The upsert (`findOneAndUpdate`, upsert, returning the new document):
    /// the body always, `created_at` only when inserting.
    pub(crate) fn upsert(json: &str, created_at_nanos: i64) -> Document {
        doc! {
            "$set": { "doc": json },
            "$setOnInsert": { "created_at": created_at_nanos },
        }
    }

    /// The users with these ids.
    pub(crate) fn by_ids(tenant: &TenantId, ids: &[UserId]) -> Document {
        let ids: Vec<&str> = ids.iter().map(|u| u.as_str()).collect();
        doc! { "tenant": tenant.as_str(), "id": { "$in": ids } }
    }

    /// A page of users after `after`, and its order.
    pub(crate) fn list(tenant: &TenantId, after: Option<&UserId>) -> (Document, Document) {
        let mut filter = doc! { "tenant": tenant.as_str() };
        if let Some(a) = after {
            filter.insert("id", doc! { "$gt": a.as_str() });
        }
        (filter, doc! { "id": 1 })
    }

    /// The `createIndexes` command of `users`.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": USERS,
            "indexes": [
                { "key": { "tenant": 1, "id": 1 }, "name": "users_id", "unique": true },
            ],
        }
    }
}

/// A stored user, with the `created_at` of its first insert.
fn decode(d: &Document, tenant: &TenantId) -> Result<User> {
    let mut user: User = body(d, "user")?;
    if &user.tenant != tenant {
        return Err(Error::internal(
            "mongo: a stored user's body names another tenant",
        ));
    }
    user.created_at =
        Timestamp::from_nanos(to_u64(get_i64(d, "created_at", "user")?, "created_at")?);
    Ok(user)
}

#[async_trait]
impl UserStore for MongoStore {
    async fn upsert(&self, user: &User) -> Result<User> {
        let json = to_json(user, "user")?;
        check_size("user", json.len())?;
        let created = ts_to_i64(user.created_at, "created_at")?;
        let stored = self
            .bounded(
                "upsert user",
                self.coll(USERS)
                    .find_one_and_update(
                        commands::by_id(&user.tenant, &user.id),
                        commands::upsert(&json, created),
                    )
                    .upsert(true)
                    .return_document(ReturnDocument::After),
            )
            .await?
            .ok_or_else(|| Error::internal("mongo: the user upsert returned nothing"))?;
        decode(&stored, &user.tenant)
    }

    async fn get(&self, tenant: &TenantId, id: &UserId) -> Result<Option<User>> {
        let found = self
            .bounded(
                "get user",
                self.coll(USERS).find_one(commands::by_id(tenant, id)),
            )
            .await?;
        found.map(|d| decode(&d, tenant)).transpose()
    }

    async fn get_many(&self, tenant: &TenantId, ids: &[UserId]) -> Result<Vec<User>> {
        if ids.is_empty() {
            return Ok(Vec::new());
        }
        let mut found: HashMap<UserId, User> = self
            .find_all(
                "get users",
                USERS,
                commands::by_ids(tenant, ids),
                Document::new(),
                None,
            )
            .await?
            .iter()
            .map(|d| decode(d, tenant).map(|u| (u.id.clone(), u)))
            .collect::<Result<_>>()?;
        // In the order asked, each once: a repeated id finds its user taken.
        Ok(ids.iter().filter_map(|id| found.remove(id)).collect())
    }

    async fn list(
        &self,
        tenant: &TenantId,
        after: Option<&UserId>,
        limit: usize,
    ) -> Result<Vec<User>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::list(tenant, after);
        self.find_all("list users", USERS, filter, sort, page_limit(limit))
            .await?
            .iter()
            .map(|d| decode(d, tenant))
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

    #[test]
    fn an_upsert_keeps_the_first_created_at() {
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(
            by_id(&t(), &alice),
            doc! { "tenant": "acme", "id": "alice" }
        );
        assert_eq!(
            upsert("{u}", 7),
            doc! { "$set": { "doc": "{u}" }, "$setOnInsert": { "created_at": 7_i64 } }
        );
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "users",
                "indexes": [{ "key": { "tenant": 1, "id": 1 }, "name": "users_id", "unique": true }],
            }
        );
    }

    #[test]
    fn users_page_by_id_within_the_tenant() {
        assert_eq!(
            list(&t(), None),
            (doc! { "tenant": "acme" }, doc! { "id": 1 })
        );
        let after = UserId::parse("bob").unwrap();
        assert_eq!(
            list(&t(), Some(&after)),
            (
                doc! { "tenant": "acme", "id": { "$gt": "bob" } },
                doc! { "id": 1 }
            )
        );
        let ids = [UserId::parse("b").unwrap(), UserId::parse("a").unwrap()];
        assert_eq!(
            by_ids(&t(), &ids),
            doc! { "tenant": "acme", "id": { "$in": ["b", "a"] } }
        );
    }

    #[test]
    fn the_stored_created_at_wins_over_the_body() {
        let user = User {
            tenant: t(),
            id: UserId::parse("alice").unwrap(),
            name: "Alice".into(),
            attributes: Default::default(),
            created_at: Timestamp::from_secs(50),
            updated_at: Timestamp::from_secs(60),
        };
        let json = to_json(&user, "user").unwrap();
        let d = doc! { "tenant": "acme", "id": "alice", "created_at": 1_000_i64, "doc": json };
        let back = decode(&d, &t()).unwrap();
        assert_eq!(back.created_at, Timestamp::from_nanos(1_000));
        assert_eq!(back.updated_at, user.updated_at);
    }
}
