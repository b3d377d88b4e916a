//! Tenants, with their credential hashes in an indexed array so
//! `find_by_credential` is one index lookup.

use async_trait::async_trait;
use caas_core::ids::TenantId;
use caas_core::model::Tenant;
use caas_core::ports::TenantStore;
use caas_core::{EntityKind, Error, Result};
use mongodb::bson::Document;

use super::MongoStore;
use super::codec::{body, check_size, page_limit, to_json};
use super::names::TENANTS;

/// The command, filter and update documents of tenants, as pure functions of
/// their arguments.
pub(super) mod commands {
    use caas_core::ids::TenantId;
    use caas_core::model::Tenant;
    use mongodb::bson::{Document, doc};

    use super::super::names::TENANTS;

    fn hashes(tenant: &Tenant) -> Vec<&str> {
        tenant.credentials.iter().map(|c| c.hash.as_str()).collect()
    }

    /// A tenant as stored: its id as `_id`, its credential hashes natively.
    pub(crate) fn tenant_document(tenant: &Tenant, json: &str) -> Document {
        doc! {
            "_id": tenant.id.as_str(),
            "credential_hashes": hashes(tenant),
            "doc": json,
        }
    }

    /// One tenant.
    pub(crate) fn by_id(id: &TenantId) -> Document {
        doc! { "_id": id.as_str() }
    }

    /// The replacement of a stored tenant (`update_one`, never an upsert).
    pub(crate) fn replace(tenant: &Tenant, json: &str) -> Document {
        doc! { "$set": { "credential_hashes": hashes(tenant), "doc": json } }
    }

    /// A page of tenants after `after`, and its order.
    pub(crate) fn list(after: Option<&TenantId>) -> (Document, Document) {
        let filter = match after {
            Some(a) => doc! { "_id": { "$gt": a.as_str() } },
            None => doc! {},
        };
        (filter, doc! { "_id": 1 })
    }

    /// The tenant holding a credential with this hash.
    pub(crate) fn by_credential(hash: &str) -> Document {
        doc! { "credential_hashes": hash }
    }

    /// The `createIndexes` command of `tenants`.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": TENANTS,
            "indexes": [
                { "key": { "credential_hashes": 1 }, "name": "tenants_credential_hashes" },
            ],
        }
    }
}

fn decode(d: &Document) -> Result<Tenant> {
    body(d, "tenant")
}

#[async_trait]
impl TenantStore for MongoStore {
    async fn create(&self, tenant: &Tenant) -> Result<()> {
        let json = to_json(tenant, "tenant")?;
        check_size("tenant", json.len())?;
        self.bounded(
            "create tenant",
            self.coll(TENANTS)
                .insert_one(commands::tenant_document(tenant, &json)),
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            Error::Conflict { .. } => {
                Error::conflict(format!("tenant `{}` already exists", tenant.id))
            }
            e => e,
        })
    }

    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let found = self
            .bounded(
                "get tenant",
                self.coll(TENANTS).find_one(commands::by_id(id)),
            )
            .await?;
        found.map(|d| decode(&d)).transpose()
    }

    async fn update(&self, tenant: &Tenant) -> Result<()> {
        let json = to_json(tenant, "tenant")?;
        check_size("tenant", json.len())?;
        let done = self
            .bounded(
                "update tenant",
                self.coll(TENANTS).update_one(
                    commands::by_id(&tenant.id),
                    commands::replace(tenant, &json),
                ),
            )
            .await?;
        if done.matched_count == 0 {
            return Err(Error::not_found(EntityKind::Tenant, &tenant.id));
        }
        Ok(())
    }

    async fn list(&self, after: Option<&TenantId>, limit: usize) -> Result<Vec<Tenant>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::list(after);
        self.find_all("list tenants", TENANTS, filter, sort, page_limit(limit))
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn find_by_credential(&self, hash: &str) -> Result<Option<Tenant>> {
        let found = self
            .bounded(
                "find tenant by credential",
                self.coll(TENANTS).find_one(commands::by_credential(hash)),
            )
            .await?;
        found.map(|d| decode(&d)).transpose()
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use caas_core::ids::TenantId;
    use caas_core::model::{Tenant, TenantCredential, TenantSettings, TenantStatus};
    use caas_core::time::Timestamp;
    use mongodb::bson::doc;

    #[test]
    fn a_tenant_document_carries_its_credential_hashes() {
        let credential = |hash: &str| TenantCredential {
            key_id: format!("k-{hash}"),
            hash: hash.into(),
            created_at: Timestamp::from_secs(1),
            expires_at: None,
        };
        let tenant = Tenant {
            id: TenantId::parse("acme").unwrap(),
            name: "Acme".into(),
            status: TenantStatus::Active,
            settings: TenantSettings::default(),
            credentials: vec![credential("h1"), credential("h2")],
            created_at: Timestamp::from_secs(1),
            updated_at: Timestamp::from_secs(2),
        };
        assert_eq!(
            tenant_document(&tenant, "{t}"),
            doc! { "_id": "acme", "credential_hashes": ["h1", "h2"], "doc": "{t}" }
        );
        assert_eq!(
            replace(&tenant, "{t2}"),
            doc! { "$set": { "credential_hashes": ["h1", "h2"], "doc": "{t2}" } }
        );
    }

    #[test]
    fn tenants_page_by_id_and_index_their_credential_hashes() {
        assert_eq!(list(None), (doc! {}, doc! { "_id": 1 }));
        let after = TenantId::parse("acme").unwrap();
        assert_eq!(
            list(Some(&after)),
            (doc! { "_id": { "$gt": "acme" } }, doc! { "_id": 1 })
        );
        assert_eq!(by_id(&after), doc! { "_id": "acme" });
        assert_eq!(by_credential("h1"), doc! { "credential_hashes": "h1" });
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "tenants",
                "indexes": [
                    { "key": { "credential_hashes": 1 }, "name": "tenants_credential_hashes" },
                ],
            }
        );
    }
}
