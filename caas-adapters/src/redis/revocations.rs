use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::TenantId;
use caas_core::ports::Revocations;
use caas_core::time::Timestamp;

use super::lua::REVOKE_SCRIPT;
use super::{Redis, ceil_millis, corrupt, parse_u64};

/// Milliseconds a revocation outlives its `until`: a node whose clock lags the
/// revoking node's still finds it while it may accept the token.
const EXPIRY_SLACK_MS: u64 = 60_000;

/// Revoked sessions in Redis: one key per session holding the time it is
/// revoked until, expiring then (plus a minute for clock differences), so the
/// store holds only revocations that still refuse a token. Every node reads the
/// same keys, so a logout on one node refuses the session's tokens on all of
/// them from the moment it returns.
#[derive(Debug, Clone)]
pub struct RedisRevocations {
    redis: Redis,
}

impl RedisRevocations {
    pub(super) fn new(redis: Redis) -> Self {
        Self { redis }
    }
}

#[async_trait]
impl Revocations for RedisRevocations {
    async fn revoke(
        &self,
        tenant: &TenantId,
        family: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<()> {
        if until <= now {
            // Refuses nothing from now on.
            return Ok(());
        }
        let mut conn = self.redis.conn();
        let mut call = REVOKE_SCRIPT.key(self.redis.keys().revoked(tenant, family));
        call.arg(until.as_nanos().to_string())
            .arg(ceil_millis(until.since(now)).saturating_add(EXPIRY_SLACK_MS));
        self.redis
            .run("revoke a session", async move {
                call.invoke_async::<u8>(&mut conn).await
            })
            .await
            .map(|_| ())
    }

    async fn is_revoked(&self, tenant: &TenantId, family: &str, now: Timestamp) -> Result<bool> {
        let key = self.redis.keys().revoked(tenant, family);
        let mut conn = self.redis.conn();
        let until: Option<String> = self
            .redis
            .run("read a revocation", async move {
                redis::cmd("GET").arg(key).query_async(&mut conn).await
            })
            .await?;
        match until {
            None => Ok(false),
            Some(s) => {
                let until = parse_u64(&s).ok_or_else(|| corrupt("revocation", s.clone()))?;
                Ok(until > now.as_nanos())
            }
        }
    }
}
