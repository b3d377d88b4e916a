//! The append-only audit log: positions 1, 2, 3… per tenant, from the
//! tenant's `audit_heads` document advanced in the transaction that inserts
//! the record (so they are gap-free and visible in order, as the event log's
//! cursors are). The head also keeps the last record's hash, from which the
//! next record's is chained in the same transaction.

use async_trait::async_trait;
use caas_core::ids::TenantId;
use caas_core::model::AuditRecord;
use caas_core::ports::AuditStore;
use caas_core::{Error, Result};
use mongodb::options::ReturnDocument;

use super::MongoStore;
use super::codec::{body, check_size, get_i64, page_limit, to_json, to_u64};
use super::names::{AUDIT, AUDIT_HEADS};
use super::txn::{Abort, OnDuplicate};

/// The command, filter and update documents of the audit log, as pure
/// functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::TenantId;
    use mongodb::bson::{Document, doc};

    use super::super::codec::bound;
    use super::super::names::AUDIT;

    /// `findOneAndUpdate` (upsert, returning the new document) of the
    /// tenant's audit head: the next position.
    pub(crate) fn next_position(tenant: &TenantId) -> (Document, Document) {
        (
            doc! { "_id": tenant.as_str() },
            doc! { "$inc": { "head": 1_i64 } },
        )
    }

    /// The head's update to the hash of the record just sealed.
    pub(crate) fn set_head_hash(tenant: &TenantId, hash: &str) -> (Document, Document) {
        (
            doc! { "_id": tenant.as_str() },
            doc! { "$set": { "hash": hash } },
        )
    }

    /// A record as stored at `position`.
    pub(crate) fn record_document(tenant: &TenantId, position: i64, json: &str) -> Document {
        doc! { "tenant": tenant.as_str(), "position": position, "doc": json }
    }

    /// A page after `after`, and its order.
    pub(crate) fn list(tenant: &TenantId, after: u64) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "position": { "$gt": bound(after) } },
            doc! { "position": 1 },
        )
    }

    /// The `createIndexes` command of `audit`.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": AUDIT,
            "indexes": [{
                "key": { "tenant": 1, "position": 1 },
                "name": "audit_position",
                "unique": true,
            }],
        }
    }
}

#[async_trait]
impl AuditStore for MongoStore {
    async fn append(&self, tenant: &TenantId, record: AuditRecord) -> Result<u64> {
        // Checked before the transaction gives the record its position, which
        // adds only a few digits to it.
        check_size("audit record", to_json(&record, "audit record")?.len())?;
        let (heads, audit) = (self.coll(AUDIT_HEADS), self.coll(AUDIT));
        self.transaction("append audit record", OnDuplicate::Retry, |s| {
            let (heads, audit, tenant, mut record) =
                (heads.clone(), audit.clone(), tenant.clone(), record.clone());
            Box::pin(async move {
                let (filter, update) = commands::next_position(&tenant);
                let head = heads
                    .find_one_and_update(filter, update)
                    .upsert(true)
                    .return_document(ReturnDocument::After)
                    .session(&mut *s)
                    .await?
                    .ok_or_else(|| {
                        Error::internal("mongo: the audit head upsert returned nothing")
                    })?;
                let position = get_i64(&head, "head", "audit head")?;
                // A head from before the chain, or a tenant's first record.
                let previous = head.get_str("hash").unwrap_or_default();
                record.seal(to_u64(position, "position")?, previous);
                let (filter, update) = commands::set_head_hash(&tenant, &record.hash);
                heads.update_one(filter, update).session(&mut *s).await?;
                let json = to_json(&record, "audit record")?;
                audit
                    .insert_one(commands::record_document(&tenant, position, &json))
                    .session(&mut *s)
                    .await?;
                Ok::<_, Abort>(record.position)
            })
        })
        .await
    }

    async fn list(&self, tenant: &TenantId, after: u64, limit: usize) -> Result<Vec<AuditRecord>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::list(tenant, after);
        self.find_all("list audit records", AUDIT, filter, sort, page_limit(limit))
            .await?
            .iter()
            .map(|d| {
                let mut r: AuditRecord = body(d, "audit record")?;
                r.position = to_u64(get_i64(d, "position", "audit record")?, "position")?;
                Ok(r)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use caas_core::ids::TenantId;
    use mongodb::bson::doc;

    #[test]
    fn positions_come_from_the_tenant_audit_head_and_pages_follow_them() {
        let t = TenantId::parse("acme").unwrap();
        assert_eq!(
            next_position(&t),
            (doc! { "_id": "acme" }, doc! { "$inc": { "head": 1_i64 } })
        );
        assert_eq!(
            set_head_hash(&t, "ab12"),
            (doc! { "_id": "acme" }, doc! { "$set": { "hash": "ab12" } })
        );
        assert_eq!(
            record_document(&t, 3, "{r}"),
            doc! { "tenant": "acme", "position": 3_i64, "doc": "{r}" }
        );
        assert_eq!(
            list(&t, 2),
            (
                doc! { "tenant": "acme", "position": { "$gt": 2_i64 } },
                doc! { "position": 1 }
            )
        );
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "audit",
                "indexes": [{ "key": { "tenant": 1, "position": 1 }, "name": "audit_position", "unique": true }],
            }
        );
    }
}
