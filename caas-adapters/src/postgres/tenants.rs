use async_trait::async_trait;
use caas_core::ids::TenantId;
use caas_core::model::Tenant;
use caas_core::ports::TenantStore;
use caas_core::{EntityKind, Error, Result};

use super::PostgresStore;
use super::codec::{from_json, get, limit, to_json};

fn hashes(t: &Tenant) -> Vec<String> {
    t.credentials.iter().map(|c| c.hash.clone()).collect()
}

#[async_trait]
impl TenantStore for PostgresStore {
    async fn create(&self, tenant: &Tenant) -> Result<()> {
        let doc = to_json(tenant, "tenant")?;
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO tenants (id, cred_hashes, doc) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&tenant.id.as_str(), &hashes(tenant), &doc],
                "create tenant",
            )
            .await?;
        if n == 0 {
            return Err(Error::conflict(format!("tenant `{}` exists", tenant.id)));
        }
        Ok(())
    }

    async fn get(&self, id: &TenantId) -> Result<Option<Tenant>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT doc FROM tenants WHERE id = $1",
                &[&id.as_str()],
                "get tenant",
            )
            .await?;
        row.map(|r| from_json(&get::<String>(&r, 0)?, "tenant"))
            .transpose()
    }

    async fn update(&self, tenant: &Tenant) -> Result<()> {
        let doc = to_json(tenant, "tenant")?;
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE tenants SET cred_hashes = $2, doc = $3 WHERE id = $1",
                &[&tenant.id.as_str(), &hashes(tenant), &doc],
                "update tenant",
            )
            .await?;
        if n == 0 {
            return Err(Error::not_found(EntityKind::Tenant, &tenant.id));
        }
        Ok(())
    }

    async fn list(&self, after: Option<&TenantId>, n: usize) -> Result<Vec<Tenant>> {
        // The empty string sorts before every id, so "no cursor" is "after ''".
        let after = after.map_or("", |a| a.as_str());
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc FROM tenants WHERE id > $1 ORDER BY id LIMIT $2",
                &[&after, &limit(n)],
                "list tenants",
            )
            .await?;
        rows.iter()
            .map(|r| from_json(&get::<String>(r, 0)?, "tenant"))
            .collect()
    }

    async fn find_by_credential(&self, hash: &str) -> Result<Option<Tenant>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT doc FROM tenants WHERE cred_hashes @> ARRAY[$1::text] ORDER BY id LIMIT 1",
                &[&hash],
                "find tenant by credential",
            )
            .await?;
        row.map(|r| from_json(&get::<String>(&r, 0)?, "tenant"))
            .transpose()
    }
}
