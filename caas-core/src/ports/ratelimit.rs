use async_trait::async_trait;

use crate::error::Result;
use crate::ratelimit::{Decision, Quota, RateKey};
use crate::time::Timestamp;

/// Where GCRA state lives.
#[async_trait]
pub trait RateLimitStore: Send + Sync + std::fmt::Debug {
    /// One atomic GCRA step for `key` ([`crate::ratelimit::check`] on the stored
    /// state, storing the new state when allowed). Concurrent checks of one key
    /// never let more through than one caller checking in sequence would.
    async fn check(&self, key: &RateKey, quota: &Quota, now: Timestamp) -> Result<Decision>;
}
