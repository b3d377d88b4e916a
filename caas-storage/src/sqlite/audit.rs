use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::model::AuditRecord;
use caas_core::ports::AuditStore;
use rusqlite::params;

use super::SqliteStore;
use super::codec::{bound, from_json, limit, to_json, to_u64};
use super::error::Ctx;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, tenant: &TenantId, mut record: AuditRecord) -> Result<u64> {
        let tenant = tenant.clone();
        self.write(move |c| {
            let last: i64 = c
                .prepare_cached("SELECT COALESCE(MAX(position), 0) FROM audit WHERE tenant = ?1")
                .and_then(|mut s| s.query_row([tenant.as_str()], |r| r.get(0)))
                .ctx("read audit head")?;
            let position = last + 1;
            record.position = to_u64(position, "position")?;
            let doc = to_json(&record, "audit record")?;
            c.prepare_cached("INSERT INTO audit (tenant, position, doc) VALUES (?1, ?2, ?3)")
                .and_then(|mut s| s.execute(params![tenant.as_str(), position, doc]))
                .ctx("append audit record")?;
            Ok(record.position)
        })
        .await
    }

    async fn list(&self, tenant: &TenantId, after: u64, n: usize) -> Result<Vec<AuditRecord>> {
        let tenant = tenant.clone();
        let after = bound(after);
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM audit WHERE tenant = ?1 AND position > ?2 ORDER BY position LIMIT ?3",
                )
                .ctx("list audit records")?;
            let docs = stmt
                .query_map(params![tenant.as_str(), after, limit(n)], |r| r.get::<_, String>(0))
                .ctx("list audit records")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list audit records")?;
            docs.iter().map(|d| from_json(d, "audit record")).collect()
        })
        .await
    }
}
