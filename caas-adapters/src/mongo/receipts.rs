//! Delivered/read watermarks: one document per (conversation, user), moved
//! by conditional updates that match only while the watermark is lower.

use async_trait::async_trait;
use caas_core::ids::{ConversationId, Seq, TenantId, UserId};
use caas_core::model::{Receipt, ReceiptKind};
use caas_core::ports::ReceiptStore;
use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use mongodb::bson::Document;
use mongodb::options::ReturnDocument;

use super::MongoStore;
use super::codec::{get_i64, get_str, id, to_i64, to_u64, ts_to_i64};
use super::error::{Failure, classify};
use super::names::RECEIPTS;

/// The command, filter and update documents of receipts, as pure functions
/// of their arguments.
pub(super) mod commands {
    use caas_core::ids::{ConversationId, TenantId, UserId};
    use caas_core::model::ReceiptKind;
    use mongodb::bson::{Document, doc};

    use super::super::names::RECEIPTS;

    /// One member's receipt (the key of the unique index `receipts_member`).
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

    /// The conditional advance (`findOneAndUpdate`, upsert, returning the new
    /// document): the filter matches only while the watermark is below `seq`.
    /// With no document yet, the upsert inserts one; with one whose watermark
    /// is already there, the upsert's insert meets the unique index, which
    /// means "nothing moved". Moving `read` moves `delivered` to at least
    /// `seq` (`$max`).
    pub(crate) fn advance(
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        kind: ReceiptKind,
        seq: i64,
        at_nanos: i64,
    ) -> (Document, Document) {
        let mut filter = member(tenant, conversation, user);
        let update = match kind {
            ReceiptKind::Delivered => {
                filter.insert("delivered", doc! { "$lt": seq });
                doc! {
                    "$set": { "delivered": seq, "updated_at": at_nanos },
                    "$setOnInsert": { "read": 0_i64 },
                }
            }
            ReceiptKind::Read => {
                filter.insert("read", doc! { "$lt": seq });
                doc! {
                    "$set": { "read": seq, "updated_at": at_nanos },
                    "$max": { "delivered": seq },
                }
            }
        };
        (filter, update)
    }

    /// Every receipt of a conversation, by user id.
    pub(crate) fn list(tenant: &TenantId, conversation: &ConversationId) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "conversation": conversation.as_str() },
            doc! { "user": 1 },
        )
    }

    /// The `createIndexes` command of `receipts`.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": RECEIPTS,
            "indexes": [{
                "key": { "tenant": 1, "conversation": 1, "user": 1 },
                "name": "receipts_member",
                "unique": true,
            }],
        }
    }
}

fn decode(d: &Document, conversation: &ConversationId) -> Result<Receipt> {
    Ok(Receipt {
        conversation: conversation.clone(),
        user: id::<UserId>(get_str(d, "user", "receipt")?)?,
        delivered: Seq(to_u64(get_i64(d, "delivered", "receipt")?, "seq")?),
        read: Seq(to_u64(get_i64(d, "read", "receipt")?, "seq")?),
        updated_at: Timestamp::from_nanos(to_u64(
            get_i64(d, "updated_at", "receipt")?,
            "updated_at",
        )?),
    })
}

/// Tries of one advance: a first insert can lose a race to a concurrent
/// first insert; after that the document exists and the filter decides.
const ADVANCE_TRIES: u32 = 3;

#[async_trait]
impl ReceiptStore for MongoStore {
    async fn advance(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        kind: ReceiptKind,
        seq: Seq,
        at: Timestamp,
    ) -> Result<Option<Receipt>> {
        if seq == Seq::ZERO {
            return Ok(None);
        }
        let (filter, update) = commands::advance(
            tenant,
            conversation,
            user,
            kind,
            to_i64(seq.get(), "seq")?,
            ts_to_i64(at, "updated_at")?,
        );
        let coll = self.coll(RECEIPTS);
        let context = "advance receipt";
        let mut tries = 0;
        loop {
            tries += 1;
            let call = coll
                .find_one_and_update(filter.clone(), update.clone())
                .upsert(true)
                .return_document(ReturnDocument::After);
            let outcome = tokio::time::timeout(self.config().op_timeout, call.into_future())
                .await
                .map_err(|_| super::error::timed_out(context))?;
            match outcome {
                Ok(Some(d)) => return decode(&d, conversation).map(Some),
                Ok(None) => {
                    return Err(Error::internal(
                        "mongo: the receipt upsert returned nothing",
                    ));
                }
                // The watermark is already at or past `seq` (or a racing
                // first insert won: then look again).
                Err(e) if classify(&e) == Failure::Duplicate => {
                    if tries >= ADVANCE_TRIES {
                        return Ok(None);
                    }
                }
                Err(e) => return Err(super::error::map(context, e)),
            }
        }
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Receipt> {
        let found = self
            .bounded(
                "get receipt",
                self.coll(RECEIPTS)
                    .find_one(commands::member(tenant, conversation, user)),
            )
            .await?;
        match found {
            Some(d) => decode(&d, conversation),
            None => Ok(Receipt {
                conversation: conversation.clone(),
                user: user.clone(),
                delivered: Seq::ZERO,
                read: Seq::ZERO,
                updated_at: Timestamp::EPOCH,
            }),
        }
    }

    async fn list(&self, tenant: &TenantId, conversation: &ConversationId) -> Result<Vec<Receipt>> {
        let (filter, sort) = commands::list(tenant, conversation);
        self.find_all("list receipts", RECEIPTS, filter, sort, None)
            .await?
            .iter()
            .map(|d| decode(d, conversation))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::*;
    use mongodb::bson::doc;

    fn ids() -> (TenantId, ConversationId, UserId) {
        (
            TenantId::parse("acme").unwrap(),
            ConversationId::parse("general").unwrap(),
            UserId::parse("alice").unwrap(),
        )
    }

    #[test]
    fn delivered_moves_only_forward() {
        let (t, c, u) = ids();
        assert_eq!(
            advance(&t, &c, &u, ReceiptKind::Delivered, 5, 9),
            (
                doc! {
                    "tenant": "acme", "conversation": "general", "user": "alice",
                    "delivered": { "$lt": 5_i64 },
                },
                doc! {
                    "$set": { "delivered": 5_i64, "updated_at": 9_i64 },
                    "$setOnInsert": { "read": 0_i64 },
                }
            )
        );
    }

    #[test]
    fn read_moves_forward_and_pulls_delivered_along() {
        let (t, c, u) = ids();
        assert_eq!(
            advance(&t, &c, &u, ReceiptKind::Read, 5, 9),
            (
                doc! {
                    "tenant": "acme", "conversation": "general", "user": "alice",
                    "read": { "$lt": 5_i64 },
                },
                doc! {
                    "$set": { "read": 5_i64, "updated_at": 9_i64 },
                    "$max": { "delivered": 5_i64 },
                }
            )
        );
    }

    #[test]
    fn receipts_list_by_user_under_a_unique_member_index() {
        let (t, c, _) = ids();
        assert_eq!(
            list(&t, &c),
            (
                doc! { "tenant": "acme", "conversation": "general" },
                doc! { "user": 1 }
            )
        );
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "receipts",
                "indexes": [{
                    "key": { "tenant": 1, "conversation": 1, "user": 1 },
                    "name": "receipts_member",
                    "unique": true,
                }],
            }
        );
        let d = doc! { "user": "alice", "delivered": 5_i64, "read": 3_i64, "updated_at": 9_i64 };
        let r = decode(&d, &c).unwrap();
        assert_eq!((r.delivered, r.read), (Seq(5), Seq(3)));
        let bad = doc! { "user": "alice", "delivered": -1_i64, "read": 3_i64, "updated_at": 9_i64 };
        assert_eq!(decode(&bad, &c).unwrap_err().code(), "internal");
    }
}
