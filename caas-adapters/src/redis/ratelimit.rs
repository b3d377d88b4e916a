use async_trait::async_trait;
use caas_core::ports::RateLimitStore;
use caas_core::ratelimit::{self, Decision, Quota, RateKey};
use caas_core::time::Timestamp;
use caas_core::{Error, Result};

use super::lua::GCRA_SCRIPT;
use super::{Redis, corrupt, parse_u64};

/// Milliseconds a TAT key outlives its theoretical arrival time: nodes'
/// clocks differ a little, and a node whose clock lags must still find the
/// state another node wrote.
const EXPIRY_SLACK_MS: u64 = 1_000;

/// GCRA in one Redis script per check: every node draws on one budget per key.
///
/// The script decides and stores atomically; the decision's numbers
/// (`remaining`, `reset_after`, `retry_after`) come from
/// [`caas_core::ratelimit::check`] on the TAT the script read, so they are
/// exactly the core's. When Redis cannot be reached the check answers
/// [`Error::Unavailable`], or allows when the configuration says `fail_open`.
#[derive(Debug, Clone)]
pub struct RedisRateLimitStore {
    redis: Redis,
}

impl RedisRateLimitStore {
    pub(super) fn new(redis: Redis) -> Self {
        Self { redis }
    }

    async fn script(&self, key: &RateKey, quota: &Quota, now: Timestamp) -> Result<(bool, String)> {
        let mut conn = self.redis.conn();
        let mut call = GCRA_SCRIPT.key(self.redis.keys().rate(key));
        call.arg(now.as_nanos().to_string())
            .arg(quota.emission_interval().to_string())
            .arg(quota.window().to_string())
            .arg(EXPIRY_SLACK_MS);
        self.redis
            .run("rate limit check", async move {
                call.invoke_async::<(u8, String)>(&mut conn).await
            })
            .await
            .map(|(allowed, tat)| (allowed == 1, tat))
    }
}

#[async_trait]
impl RateLimitStore for RedisRateLimitStore {
    async fn check(&self, key: &RateKey, quota: &Quota, now: Timestamp) -> Result<Decision> {
        let (allowed, before) = match self.script(key, quota, now).await {
            Ok(r) => r,
            Err(e @ Error::Unavailable { .. }) if self.redis.config().fail_open => {
                tracing::warn!(error = %e, action = key.action, "rate limit unchecked: Redis unavailable, failing open");
                return Ok(ratelimit::check(quota, None, now));
            }
            Err(e) => return Err(e),
        };
        let tat = match before.as_str() {
            "" => None,
            s => Some(parse_u64(s).ok_or_else(|| corrupt("rate-limit state", s))?),
        };
        let decision = ratelimit::check(quota, tat, now);
        if decision.is_allowed() != allowed {
            // The script and the core computed different answers from the same
            // state: a bug in one of them. Refuse rather than guess.
            return Err(Error::internal(format!(
                "redis: the GCRA script {} what caas_core::ratelimit::check {} (tat {before:?}, now {})",
                if allowed { "allowed" } else { "denied" },
                if allowed { "denies" } else { "allows" },
                now.as_nanos()
            )));
        }
        Ok(decision)
    }
}
