use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::model::AuditRecord;
use caas_core::ports::AuditStore;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::codec::{bound, from_json, limit, to_json};
use super::error::Ctx;

#[async_trait]
impl AuditStore for SqliteStore {
    async fn append(&self, tenant: &TenantId, mut record: AuditRecord) -> Result<u64> {
        let tenant = tenant.clone();
        self.write(move |c| {
            // The writer thread runs one write at a time: the last record
            // read here is still the last one when this one is inserted.
            let last: Option<String> = c
                .prepare_cached(
                    "SELECT doc FROM audit WHERE tenant = ?1 ORDER BY position DESC LIMIT 1",
                )
                .and_then(|mut s| s.query_row([tenant.as_str()], |r| r.get(0)).optional())
                .ctx("read audit head")?;
            let (last_position, previous) = match last {
                Some(doc) => {
                    let last: AuditRecord = from_json(&doc, "audit record")?;
                    (last.position, last.hash)
                }
                None => (0, String::new()),
            };
            record.seal(last_position + 1, &previous);
            let position = i64::try_from(record.position)
                .map_err(|_| caas_core::Error::internal("audit position out of range"))?;
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

#[cfg(test)]
mod tests {
    use caas_core::ids::{CorrelationId, TenantId};
    use caas_core::model::{AuditRecord, ChainCheck};
    use caas_core::ports::AuditStore;
    use caas_core::time::Timestamp;

    use super::super::SqliteStore;
    use super::super::error::Ctx;

    fn record(n: u64) -> AuditRecord {
        AuditRecord {
            position: 0,
            at: Timestamp::from_nanos(n),
            actor: "user:alice".into(),
            action: "message.delete".into(),
            target: format!("conversation:c_1/message:{n}"),
            rule: "sender".into(),
            correlation_id: CorrelationId::parse("r_1").unwrap(),
            detail: serde_json::json!({"n": n}),
            hash: String::new(),
        }
    }

    fn first_break(log: &[AuditRecord]) -> Option<u64> {
        let mut check = ChainCheck::new();
        log.iter()
            .find_map(|r| check.check(r).err().map(|b| b.position))
    }

    /// Someone with the database file rewrites one record's document: the
    /// chain check names that record.
    #[tokio::test]
    async fn a_record_edited_in_the_database_file_breaks_the_chain_there() {
        let store = SqliteStore::open_temp().unwrap();
        let t = TenantId::parse("acme").unwrap();
        for n in 1..=4 {
            store.append(&t, record(n)).await.unwrap();
        }
        assert_eq!(first_break(&store.list(&t, 0, 10).await.unwrap()), None);
        store
            .write(|c| {
                c.execute(
                    "UPDATE audit SET doc = replace(doc, 'alice', 'mallory') \
                     WHERE tenant = 'acme' AND position = 3",
                    [],
                )
                .ctx("tamper")
            })
            .await
            .unwrap();
        let log = store.list(&t, 0, 10).await.unwrap();
        assert_eq!(log[2].actor, "user:mallory");
        assert_eq!(first_break(&log), Some(3));
    }
}
