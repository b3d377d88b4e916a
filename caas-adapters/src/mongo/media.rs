//! Upload records. What changes after the announcement is kept natively, the
//! truth on read: `completed_at` and `sha256` (set by completion), `shared_in`
//! (pushed to in the order shares arrive) and `pending_until`, the deadline
//! while the upload is pending, removed once it is complete so the cleanup's
//! partial index holds pending uploads only. `doc` holds the rest as
//! announced. Every change is one conditional single-document write, which
//! the server applies atomically against the document's current state: a
//! completion only while `pending_until` is still ahead, a share only while
//! the conversation is neither the record's own nor in `shared_in`, a cleanup
//! only while `pending_until` has passed.

use async_trait::async_trait;
use caas_core::ids::{BlobId, ConversationId, TenantId, UserId};
use caas_core::model::Media;
use caas_core::ports::MediaStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use mongodb::bson::{Bson, Document, doc};
use mongodb::options::ReturnDocument;

use super::MongoStore;
use super::codec::{body, bound, check_size, id, page_limit, to_json, to_u64, ts_to_i64};
use super::names::MEDIA;

const WHAT: &str = "media record";

/// The command, filter and update documents of upload records, as pure
/// functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{BlobId, ConversationId, TenantId, UserId};
    use caas_core::model::Media;
    use mongodb::bson::{Document, doc};

    use super::super::codec::bound;
    use super::super::names::MEDIA;

    /// The `pending_until` field: the deadline while the upload is pending,
    /// absent once complete. The deadline saturates rather than fails: it only
    /// orders and bounds the cleanup, and `doc` keeps the exact value.
    pub(crate) fn pending_until(m: &Media) -> Option<i64> {
        m.completed_at
            .is_none()
            .then(|| bound(m.expires_at.as_nanos()))
    }

    /// A record as stored. `json` is the body without what the native fields
    /// hold; `completed_at` is the completion in nanoseconds, if any.
    pub(crate) fn media_document(m: &Media, completed_at: Option<i64>, json: &str) -> Document {
        let shared: Vec<&str> = m.shared_in.iter().map(|c| c.as_str()).collect();
        let mut d = doc! {
            "tenant": m.tenant.as_str(),
            "id": m.id.as_str(),
            "owner": m.owner.as_str(),
            "conversation": m.conversation_id.as_str(),
            "shared_in": shared,
            "doc": json,
        };
        if let Some(p) = pending_until(m) {
            d.insert("pending_until", p);
        }
        if let Some(at) = completed_at {
            d.insert("completed_at", at);
        }
        if let Some(sum) = &m.sha256 {
            d.insert("sha256", sum.as_str());
        }
        d
    }

    /// One record (the key of the unique index `media_id`).
    pub(crate) fn by_id(tenant: &TenantId, id: &BlobId) -> Document {
        doc! { "tenant": tenant.as_str(), "id": id.as_str() }
    }

    /// The completion (`findOneAndUpdate`, returning the new document): only
    /// a pending record whose deadline is after `at` matches.
    pub(crate) fn complete(
        tenant: &TenantId,
        id: &BlobId,
        sha256: &str,
        at: i64,
    ) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "id": id.as_str(),
                "pending_until": { "$gt": at },
            },
            doc! {
                "$set": { "completed_at": at, "sha256": sha256 },
                "$unset": { "pending_until": "" },
            },
        )
    }

    /// The share (`update_one`): matches only while the conversation is
    /// neither the record's own nor already shared, so a repeat changes
    /// nothing and concurrent ones each push once.
    pub(crate) fn share(
        tenant: &TenantId,
        id: &BlobId,
        conversation: &ConversationId,
    ) -> (Document, Document) {
        let c = conversation.as_str();
        (
            doc! {
                "tenant": tenant.as_str(),
                "id": id.as_str(),
                "conversation": { "$ne": c },
                "shared_in": { "$ne": c },
            },
            doc! { "$push": { "shared_in": c } },
        )
    }

    /// Pending records whose deadline is at or before `now`, and their order.
    pub(crate) fn expired(now: i64) -> (Document, Document) {
        (
            doc! { "pending_until": { "$exists": true, "$lte": now } },
            doc! { "pending_until": 1 },
        )
    }

    /// The cleanup's delete (`delete_one`): only a record still pending with
    /// its deadline at or before `now` matches.
    pub(crate) fn remove_expired(tenant: &TenantId, id: &BlobId, now: i64) -> Document {
        doc! {
            "tenant": tenant.as_str(),
            "id": id.as_str(),
            "pending_until": { "$exists": true, "$lte": now },
        }
    }

    /// A page of an owner's records after `after`, and its order.
    pub(crate) fn by_owner(
        tenant: &TenantId,
        owner: &UserId,
        after: Option<&BlobId>,
    ) -> (Document, Document) {
        let mut filter = doc! { "tenant": tenant.as_str(), "owner": owner.as_str() };
        if let Some(a) = after {
            filter.insert("id", doc! { "$gt": a.as_str() });
        }
        (filter, doc! { "id": 1 })
    }

    /// The `createIndexes` command of `media`.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": MEDIA,
            "indexes": [
                { "key": { "tenant": 1, "id": 1 }, "name": "media_id", "unique": true },
                { "key": { "tenant": 1, "owner": 1, "id": 1 }, "name": "media_by_owner" },
                {
                    "key": { "pending_until": 1 },
                    "name": "media_pending",
                    "partialFilterExpression": { "pending_until": { "$exists": true } },
                },
            ],
        }
    }
}

fn missing(id: &BlobId) -> Error {
    Error::not_found(EntityKind::Blob, id)
}

fn corrupt(field: &str) -> Error {
    Error::internal(format!("mongo: stored {WHAT} has a malformed `{field}`"))
}

/// A stored record: the body, with the native fields winning.
fn decode(d: &Document) -> Result<Media> {
    let mut m: Media = body(d, WHAT)?;
    m.completed_at = match d.get("completed_at") {
        None | Some(Bson::Null) => None,
        Some(Bson::Int64(v)) => Some(Timestamp::from_nanos(to_u64(*v, "completed_at")?)),
        Some(_) => return Err(corrupt("completed_at")),
    };
    m.sha256 = match d.get("sha256") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) => Some(s.clone()),
        Some(_) => return Err(corrupt("sha256")),
    };
    m.shared_in = match d.get("shared_in") {
        None | Some(Bson::Null) => Vec::new(),
        Some(Bson::Array(items)) => items
            .iter()
            .map(|c| match c {
                Bson::String(s) => id::<ConversationId>(s),
                _ => Err(corrupt("shared_in")),
            })
            .collect::<Result<_>>()?,
        Some(_) => return Err(corrupt("shared_in")),
    };
    Ok(m)
}

#[async_trait]
impl MediaStore for MongoStore {
    async fn announce(&self, media: &Media) -> Result<()> {
        // The body leaves out what the native fields hold, so there is one
        // truth.
        let json = to_json(
            &Media {
                sha256: None,
                completed_at: None,
                shared_in: Vec::new(),
                ..media.clone()
            },
            WHAT,
        )?;
        check_size(WHAT, json.len())?;
        let completed_at = media
            .completed_at
            .map(|t| ts_to_i64(t, "completed_at"))
            .transpose()?;
        self.bounded(
            "announce upload",
            self.coll(MEDIA)
                .insert_one(commands::media_document(media, completed_at, &json)),
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            Error::Conflict { .. } => Error::conflict(format!("blob `{}` exists", media.id)),
            e => e,
        })
    }

    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<Media>> {
        let found = self
            .bounded(
                "get upload",
                self.coll(MEDIA).find_one(commands::by_id(tenant, id)),
            )
            .await?;
        found.as_ref().map(decode).transpose()
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        sha256: &str,
        at: Timestamp,
    ) -> Result<Media> {
        let (filter, update) =
            commands::complete(tenant, id, sha256, ts_to_i64(at, "completed_at")?);
        let done = self
            .bounded(
                "complete upload",
                self.coll(MEDIA)
                    .find_one_and_update(filter, update)
                    .return_document(ReturnDocument::After),
            )
            .await?;
        if let Some(d) = done {
            return decode(&d);
        }
        // Nothing pending and in time matched: a record completed before (or
        // by a concurrent call) is returned as it is, anything else is gone as
        // far as completion goes.
        let found = self
            .bounded(
                "complete upload",
                self.coll(MEDIA).find_one(commands::by_id(tenant, id)),
            )
            .await?;
        match found.as_ref().map(decode).transpose()? {
            Some(m) if m.is_complete() => Ok(m),
            _ => Err(missing(id)),
        }
    }

    async fn share(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        conversation: &ConversationId,
    ) -> Result<()> {
        let (filter, update) = commands::share(tenant, id, conversation);
        let done = self
            .bounded("share upload", self.coll(MEDIA).update_one(filter, update))
            .await?;
        if done.matched_count > 0 {
            return Ok(());
        }
        // No match: already shared there, its own conversation, or no record.
        let found = self
            .bounded(
                "share upload",
                self.coll(MEDIA)
                    .find_one(commands::by_id(tenant, id))
                    .projection(doc! { "_id": 1 }),
            )
            .await?;
        match found {
            Some(_) => Ok(()),
            None => Err(missing(id)),
        }
    }

    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool> {
        let done = self
            .bounded(
                "delete upload",
                self.coll(MEDIA).delete_one(commands::by_id(tenant, id)),
            )
            .await?;
        Ok(done.deleted_count > 0)
    }

    async fn expired(&self, now: Timestamp, limit: usize) -> Result<Vec<Media>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::expired(bound(now.as_nanos()));
        self.find_all(
            "list expired uploads",
            MEDIA,
            filter,
            sort,
            page_limit(limit),
        )
        .await?
        .iter()
        .map(decode)
        .collect()
    }

    async fn remove_expired(&self, tenant: &TenantId, id: &BlobId, now: Timestamp) -> Result<bool> {
        let done = self
            .bounded(
                "remove expired upload",
                self.coll(MEDIA).delete_one(commands::remove_expired(
                    tenant,
                    id,
                    bound(now.as_nanos()),
                )),
            )
            .await?;
        Ok(done.deleted_count > 0)
    }

    async fn by_owner(
        &self,
        tenant: &TenantId,
        owner: &UserId,
        after: Option<&BlobId>,
        limit: usize,
    ) -> Result<Vec<Media>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::by_owner(tenant, owner, after);
        self.find_all(
            "list uploads by owner",
            MEDIA,
            filter,
            sort,
            page_limit(limit),
        )
        .await?
        .iter()
        .map(decode)
        .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::decode;
    use caas_core::ids::{BlobId, ConversationId, TenantId, UserId};
    use caas_core::model::Media;
    use caas_core::time::Timestamp;
    use mongodb::bson::doc;

    fn record() -> Media {
        Media {
            tenant: TenantId::parse("acme").unwrap(),
            id: BlobId::parse("b_1").unwrap(),
            owner: UserId::parse("alice").unwrap(),
            conversation_id: ConversationId::parse("c1").unwrap(),
            content_type: "image/png".into(),
            size: 3,
            sha256: Some("ab".into()),
            name: None,
            created_at: Timestamp::from_nanos(1),
            expires_at: Timestamp::from_nanos(100),
            completed_at: None,
            shared_in: Vec::new(),
        }
    }

    #[test]
    fn a_pending_record_carries_its_deadline_and_a_complete_one_does_not() {
        let m = record();
        assert_eq!(
            media_document(&m, None, "{m}"),
            doc! {
                "tenant": "acme", "id": "b_1", "owner": "alice", "conversation": "c1",
                "shared_in": [], "doc": "{m}", "pending_until": 100_i64, "sha256": "ab",
            }
        );
        let done = Media {
            completed_at: Some(Timestamp::from_nanos(7)),
            shared_in: vec![ConversationId::parse("c2").unwrap()],
            sha256: None,
            ..m
        };
        assert_eq!(
            media_document(&done, Some(7), "{m}"),
            doc! {
                "tenant": "acme", "id": "b_1", "owner": "alice", "conversation": "c1",
                "shared_in": ["c2"], "doc": "{m}", "completed_at": 7_i64,
            }
        );
    }

    #[test]
    fn changes_are_conditional_on_the_stored_state() {
        let m = record();
        assert_eq!(
            by_id(&m.tenant, &m.id),
            doc! { "tenant": "acme", "id": "b_1" }
        );
        assert_eq!(
            complete(&m.tenant, &m.id, "cd", 10),
            (
                doc! { "tenant": "acme", "id": "b_1", "pending_until": { "$gt": 10_i64 } },
                doc! {
                    "$set": { "completed_at": 10_i64, "sha256": "cd" },
                    "$unset": { "pending_until": "" },
                },
            )
        );
        let c2 = ConversationId::parse("c2").unwrap();
        assert_eq!(
            share(&m.tenant, &m.id, &c2),
            (
                doc! {
                    "tenant": "acme", "id": "b_1",
                    "conversation": { "$ne": "c2" }, "shared_in": { "$ne": "c2" },
                },
                doc! { "$push": { "shared_in": "c2" } },
            )
        );
        assert_eq!(
            remove_expired(&m.tenant, &m.id, 20),
            doc! {
                "tenant": "acme", "id": "b_1",
                "pending_until": { "$exists": true, "$lte": 20_i64 },
            }
        );
    }

    #[test]
    fn listings_use_their_indexes() {
        assert_eq!(
            expired(20),
            (
                doc! { "pending_until": { "$exists": true, "$lte": 20_i64 } },
                doc! { "pending_until": 1 },
            )
        );
        let (t, alice) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
        );
        assert_eq!(
            by_owner(&t, &alice, None),
            (
                doc! { "tenant": "acme", "owner": "alice" },
                doc! { "id": 1 }
            )
        );
        let after = BlobId::parse("b_2").unwrap();
        assert_eq!(
            by_owner(&t, &alice, Some(&after)),
            (
                doc! { "tenant": "acme", "owner": "alice", "id": { "$gt": "b_2" } },
                doc! { "id": 1 },
            )
        );
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "media",
                "indexes": [
                    { "key": { "tenant": 1, "id": 1 }, "name": "media_id", "unique": true },
                    { "key": { "tenant": 1, "owner": 1, "id": 1 }, "name": "media_by_owner" },
                    {
                        "key": { "pending_until": 1 },
                        "name": "media_pending",
                        "partialFilterExpression": { "pending_until": { "$exists": true } },
                    },
                ],
            }
        );
    }

    #[test]
    fn the_native_fields_win_over_the_body_and_malformed_ones_are_internal() {
        let m = record();
        let body = serde_json::to_string(&Media {
            sha256: None,
            ..m.clone()
        })
        .unwrap();
        let mut d = media_document(&m, None, &body);
        assert_eq!(decode(&d).unwrap(), m);
        d.insert("completed_at", 9_i64);
        d.insert("sha256", "ef");
        d.insert("shared_in", vec!["c2", "c3"]);
        let got = decode(&d).unwrap();
        assert_eq!(got.completed_at, Some(Timestamp::from_nanos(9)));
        assert_eq!(got.sha256.as_deref(), Some("ef"));
        assert_eq!(
            got.shared_in,
            vec![
                ConversationId::parse("c2").unwrap(),
                ConversationId::parse("c3").unwrap()
            ]
        );
        d.insert("shared_in", vec![1_i64]);
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
        d.insert("shared_in", Vec::<String>::new());
        d.insert("completed_at", "soon");
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
    }
}
