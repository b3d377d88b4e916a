use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::model::AuditRecord;
use caas_core::ports::AuditStore;

use super::PostgresStore;
use super::codec::{bound, from_json, get, limit, to_json, to_u64};

#[async_trait]
impl AuditStore for PostgresStore {
    /// The position comes from the tenant's `audit_heads` row, locked until the
    /// record commits: positions are 1, 2, 3… with no gap, across nodes.
    async fn append(&self, tenant: &TenantId, mut record: AuditRecord) -> Result<u64> {
        // Written with position 0; reads put the column's back.
        record.position = 0;
        let doc = to_json(&record, "audit record")?;
        let row = self
            .conn()
            .await?
            .query_one(
                "WITH h AS (
                     INSERT INTO audit_heads AS ah (tenant, head) VALUES ($1, 1)
                     ON CONFLICT (tenant) DO UPDATE SET head = ah.head + 1
                     RETURNING ah.head
                 )
                 INSERT INTO audit (tenant, pos, doc) SELECT $1, h.head, $2 FROM h
                 RETURNING pos",
                &[&tenant.as_str(), &doc],
                "append audit record",
            )
            .await?;
        to_u64(get(&row, 0)?, "position")
    }

    async fn list(&self, tenant: &TenantId, after: u64, n: usize) -> Result<Vec<AuditRecord>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT pos, doc FROM audit WHERE tenant = $1 AND pos > $2 ORDER BY pos LIMIT $3",
                &[&tenant.as_str(), &bound(after), &limit(n)],
                "list audit records",
            )
            .await?;
        rows.iter()
            .map(|r| {
                let mut record: AuditRecord = from_json(&get::<String>(r, 1)?, "audit record")?;
                record.position = to_u64(get(r, 0)?, "position")?;
                Ok(record)
            })
            .collect()
    }
}
