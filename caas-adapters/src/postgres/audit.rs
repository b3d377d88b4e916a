use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::model::AuditRecord;
use caas_core::ports::AuditStore;

use super::PostgresStore;
use super::codec::{bound, from_json, get, limit, to_json, to_u64};

#[async_trait]
impl AuditStore for PostgresStore {
    /// The position and the previous record's hash come from the tenant's
    /// `audit_heads` row, locked until the record commits: positions are 1,
    /// 2, 3… with no gap and one hash chain, across nodes.
    async fn append(&self, tenant: &TenantId, mut record: AuditRecord) -> Result<u64> {
        let t = tenant.as_str();
        let mut c = self.conn().await?;
        c.begin().await?;
        let outcome = async {
            // An upsert that changes nothing still locks the row.
            let head = c
                .query_one(
                    "INSERT INTO audit_heads AS ah (tenant, head, hash) VALUES ($1, 0, '')
                     ON CONFLICT (tenant) DO UPDATE SET head = ah.head
                     RETURNING ah.head, ah.hash",
                    &[&t],
                    "lock the audit head",
                )
                .await?;
            let last = to_u64(get(&head, 0)?, "position")?;
            let previous: String = get(&head, 1)?;
            record.seal(last + 1, &previous);
            let position = bound(record.position);
            let doc = to_json(&record, "audit record")?;
            c.execute(
                "WITH h AS (
                     UPDATE audit_heads SET head = $2, hash = $3 WHERE tenant = $1
                 )
                 INSERT INTO audit (tenant, pos, doc) VALUES ($1, $2, $4)",
                &[&t, &position, &record.hash, &doc],
                "append audit record",
            )
            .await?;
            Ok(record.position)
        }
        .await;
        c.finish(outcome).await
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
