use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::ports::Revocations;
use caas_core::time::Timestamp;
use rusqlite::{OptionalExtension, params};

use super::SqliteStore;
use super::error::Ctx;

/// Unix nanoseconds as SQLite stores integers (i64: until the year 2262).
fn nanos(t: Timestamp) -> i64 {
    i64::try_from(t.as_nanos()).unwrap_or(i64::MAX)
}

#[async_trait]
impl Revocations for SqliteStore {
    async fn revoke(
        &self,
        tenant: &TenantId,
        family: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<()> {
        let (tenant, family) = (tenant.clone(), family.to_owned());
        let (now, until) = (nanos(now), nanos(until));
        self.write(move |c| {
            c.prepare_cached(
                "INSERT INTO revocations (tenant, family, until) VALUES (?1, ?2, ?3)
                 ON CONFLICT (tenant, family) DO UPDATE SET until = max(until, excluded.until)",
            )
            .and_then(|mut s| s.execute(params![tenant.as_str(), family, until]))
            .ctx("revoke a session")?;
            // Logouts are rare and the index makes this a short range scan: the
            // table keeps only revocations that still refuse something.
            c.prepare_cached("DELETE FROM revocations WHERE until <= ?1")
                .and_then(|mut s| s.execute(params![now]))
                .ctx("forget expired revocations")?;
            Ok(())
        })
        .await
    }

    async fn is_revoked(&self, tenant: &TenantId, family: &str, now: Timestamp) -> Result<bool> {
        let (tenant, family) = (tenant.clone(), family.to_owned());
        let now = nanos(now);
        // A point lookup on every request that carries a session token.
        self.read_short(move |c| {
            let until: Option<i64> = c
                .prepare_cached("SELECT until FROM revocations WHERE tenant = ?1 AND family = ?2")
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), family], |r| r.get(0))
                        .optional()
                })
                .ctx("read a revocation")?;
            Ok(until.is_some_and(|u| u > now))
        })
        .await
    }
}
