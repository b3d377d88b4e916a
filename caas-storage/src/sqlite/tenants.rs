use async_trait::async_trait;
use caas_core::ids::TenantId;
use caas_core::model::Tenant;
use caas_core::ports::TenantStore;
use caas_core::{EntityKind, Error, Result};
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::{from_json, limit, to_json};
use super::error::Ctx;

#[async_trait]
impl TenantStore for SqliteStore {
    async fn create(&self, tenant: &Tenant) -> Result<()> {
        let (id, doc) = (tenant.id.clone(), to_json(tenant, "tenant")?);
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO tenants (id, doc) VALUES (?1, ?2) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| s.execute(params![id.as_str(), doc]))
                .ctx("create tenant")?;
            if n == 0 {
                return Err(Error::conflict(format!("tenant `{id}` exists")));
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let id = id.clone();
        self.read_short(move |c| {
            let doc: Option<String> = c
                .prepare_cached("SELECT doc FROM tenants WHERE id = ?1")
                .and_then(|mut s| s.query_row([id.as_str()], |r| r.get(0)).optional())
                .ctx("get tenant")?;
            doc.map(|d| from_json(&d, "tenant")).transpose()
        })
        .await
    }

    async fn update(&self, tenant: &Tenant) -> Result<()> {
        let (id, doc) = (tenant.id.clone(), to_json(tenant, "tenant")?);
        self.write(move |c| {
            let n = c
                .prepare_cached("UPDATE tenants SET doc = ?2 WHERE id = ?1")
                .and_then(|mut s| s.execute(params![id.as_str(), doc]))
                .ctx("update tenant")?;
            if n == 0 {
                return Err(Error::not_found(EntityKind::Tenant, &id));
            }
            Ok(())
        })
        .await
    }

    async fn list(&self, after: Option<&TenantId>, n: usize) -> Result<Vec<Tenant>> {
        let after = after.cloned();
        self.read(move |c| {
            // The empty string sorts before every id, so "no cursor" is "after ''".
            let after = after.as_ref().map_or("", |a| a.as_str());
            let mut stmt = c
                .prepare_cached("SELECT doc FROM tenants WHERE id > ?1 ORDER BY id LIMIT ?2")
                .ctx("list tenants")?;
            let docs = stmt
                .query_map(params![after, limit(n)], |r| r.get::<_, String>(0))
                .ctx("list tenants")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list tenants")?;
            docs.iter().map(|d| from_json(d, "tenant")).collect()
        })
        .await
    }
}
