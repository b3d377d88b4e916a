//! Rate limiting with GCRA (the generic cell rate algorithm), as a pure function of
//! the stored state and the current time.
//!
//! The only state per key is the *theoretical arrival time* (TAT): when the bucket
//! would be empty again. That is one `u64`, which is why the same algorithm runs in
//! memory, in SQLite or in a Redis script with no change of meaning.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::ids::TenantId;
use crate::time::Timestamp;

/// A limit: `limit` events per `period`, of which up to `burst` may come at once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct Quota {
    /// Sustained count per period.
    pub limit: u32,
    /// The period in seconds.
    pub period_secs: u32,
    /// How many may come back to back; defaults to `limit`.
    #[serde(default)]
    pub burst: Option<u32>,
}

impl Quota {
    /// `limit` per minute, bursting to `limit`.
    pub const fn per_minute(limit: u32) -> Self {
        Self {
            limit,
            period_secs: 60,
            burst: None,
        }
    }

    /// `limit` per second, bursting to `limit`.
    pub const fn per_second(limit: u32) -> Self {
        Self {
            limit,
            period_secs: 1,
            burst: None,
        }
    }

    /// Checks the quota can be enforced: non-zero limit, period and burst.
    pub fn validate(&self) -> Result<(), &'static str> {
        if self.limit == 0 {
            return Err("limit must be at least 1");
        }
        if self.period_secs == 0 {
            return Err("period_secs must be at least 1");
        }
        if self.burst == Some(0) {
            return Err("burst must be at least 1");
        }
        Ok(())
    }

    /// Time between two events at the sustained rate, in nanoseconds (at least 1):
    /// GCRA's `T`, for backends that run [`check`] elsewhere (a Redis script).
    pub fn emission_interval(&self) -> u64 {
        let period = u64::from(self.period_secs) * 1_000_000_000;
        (period / u64::from(self.limit.max(1))).max(1)
    }

    fn burst(&self) -> u64 {
        u64::from(self.burst.unwrap_or(self.limit).max(1))
    }

    /// How far the stored state may run ahead of now, in nanoseconds: `T` times
    /// the burst (saturating), GCRA's `τ + T`.
    pub fn window(&self) -> u64 {
        self.emission_interval().saturating_mul(self.burst())
    }
}

/// The outcome of one check.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Allowed; store `new_tat`.
    Allow {
        /// The state to store.
        new_tat: u64,
        /// How many more events would be allowed right now.
        remaining: u64,
        /// When the bucket is full again (for `RateLimit-Reset`).
        reset_after: Duration,
    },
    /// Refused; the state is unchanged.
    Deny {
        /// How long until one event would be allowed.
        retry_after: Duration,
    },
}

impl Decision {
    /// Whether the event may proceed.
    pub fn is_allowed(&self) -> bool {
        matches!(self, Decision::Allow { .. })
    }
}

/// One GCRA step. `tat` is the stored state (`None` for a fresh key); on
/// [`Decision::Allow`] the caller stores `new_tat`, on deny it stores nothing.
#[inline]
pub fn check(quota: &Quota, tat: Option<u64>, now: Timestamp) -> Decision {
    let now = now.as_nanos();
    let t = quota.emission_interval();
    let window = quota.window();
    let tat = tat.unwrap_or(now).max(now);
    let new_tat = tat.saturating_add(t);
    let allow_at = new_tat.saturating_sub(window);
    if now < allow_at {
        return Decision::Deny {
            retry_after: Duration::from_nanos(allow_at - now),
        };
    }
    Decision::Allow {
        new_tat,
        // `new_tat - now <= window` here (allowed), and is never negative;
        // written this way it cannot overflow near the end of time.
        remaining: (window - (new_tat - now)) / t,
        reset_after: Duration::from_nanos(new_tat - now),
    }
}

/// What one rate-limit key names: a tenant, a subject inside it and an action.
/// The strings are shared with the ids they come from, so building a key on the hot
/// path does not allocate.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RateKey {
    /// The tenant (or `-` for the edge, before a tenant is known).
    pub tenant: Arc<str>,
    /// The subject: a user id, `tenant`, or an IP address at the edge.
    pub subject: Arc<str>,
    /// The action name.
    pub action: &'static str,
}

impl RateKey {
    /// A key for `subject` doing `action` in `tenant`.
    pub fn new(tenant: &TenantId, subject: impl Into<Arc<str>>, action: &'static str) -> Self {
        Self {
            tenant: tenant.shared(),
            subject: subject.into(),
            action,
        }
    }

    /// The edge key of a client address, before any tenant is known.
    pub fn edge(address: &str) -> Self {
        Self {
            tenant: Arc::from("-"),
            subject: Arc::from(address),
            action: EDGE_ACTION,
        }
    }
}

/// The platform's default limits by action, overridable per tenant.
#[derive(Debug, Clone, PartialEq)]
pub struct Limits {
    by_action: BTreeMap<String, Quota>,
}

/// The action name of the per-IP edge limit.
pub const EDGE_ACTION: &str = "edge.request";

impl Default for Limits {
    /// The platform defaults: upload 10/min, download 100/min, media delete
    /// 20/min, message delete 20/min, flags 20/min,
    /// search 30/min, webhook changes 60/min, 100 requests/min per IP at the edge; sending 600/min with
    /// bursts of 60, typing 60/min, call signals 600/min; edits 60/min, reactions
    /// 120/min, pins 30/min, new conversations 30/min, member adds 120/min,
    /// receipts 600/min, presence reports 120/min, key claims 30/min.
    fn default() -> Self {
        let mut by_action = BTreeMap::new();
        by_action.insert("media.upload".to_owned(), Quota::per_minute(10));
        by_action.insert("media.download".to_owned(), Quota::per_minute(100));
        by_action.insert("media.delete".to_owned(), Quota::per_minute(20));
        by_action.insert("message.flag".to_owned(), Quota::per_minute(20));
        by_action.insert("message.delete".to_owned(), Quota::per_minute(20));
        by_action.insert("search".to_owned(), Quota::per_minute(30));
        by_action.insert("webhook.manage".to_owned(), Quota::per_minute(60));
        by_action.insert(EDGE_ACTION.to_owned(), Quota::per_minute(100));
        by_action.insert(
            "message.send".to_owned(),
            Quota {
                limit: 600,
                period_secs: 60,
                burst: Some(60),
            },
        );
        by_action.insert("typing".to_owned(), Quota::per_minute(60));
        // Everything a user can repeat gets a ceiling, so no single client can
        // keep the store's writer busy.
        by_action.insert("message.edit".to_owned(), Quota::per_minute(60));
        by_action.insert("message.react".to_owned(), Quota::per_minute(120));
        by_action.insert("message.pin".to_owned(), Quota::per_minute(30));
        by_action.insert("conversation.create".to_owned(), Quota::per_minute(30));
        by_action.insert("member.add".to_owned(), Quota::per_minute(120));
        by_action.insert("receipt.update".to_owned(), Quota::per_minute(600));
        by_action.insert("presence.update".to_owned(), Quota::per_minute(120));
        by_action.insert("keys.claim".to_owned(), Quota::per_minute(30));
        // Budgets of one-time prekeys (see `Caas::claim_keys`): a claimer gets a
        // few a day from each target, a target hands out a pool's worth a day.
        by_action.insert(
            "keys.claim.pair".to_owned(),
            Quota {
                limit: 10,
                period_secs: 86_400,
                burst: Some(5),
            },
        );
        by_action.insert(
            "keys.claim.target".to_owned(),
            Quota {
                limit: 100,
                period_secs: 86_400,
                burst: Some(20),
            },
        );
        by_action.insert("call.signal".to_owned(), Quota::per_minute(600));
        Self { by_action }
    }
}

impl Limits {
    /// The defaults with a tenant's overrides applied.
    pub fn with_overrides(overrides: &BTreeMap<String, Quota>) -> Self {
        let mut limits = Self::default();
        for (action, quota) in overrides {
            limits.by_action.insert(action.clone(), *quota);
        }
        limits
    }

    /// The quota for `action`, if it is limited.
    pub fn get(&self, action: &str) -> Option<&Quota> {
        self.by_action.get(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: u64 = 1_000_000_000;

    fn run(q: &Quota, tat: &mut Option<u64>, at: u64) -> Decision {
        let d = check(q, *tat, Timestamp::from_nanos(at));
        if let Decision::Allow { new_tat, .. } = d {
            *tat = Some(new_tat);
        }
        d
    }

    #[test]
    fn burst_is_exactly_the_limit() {
        let q = Quota::per_minute(10);
        let mut tat = None;
        let now = 1_000 * S;
        for i in 0..10 {
            let d = run(&q, &mut tat, now);
            assert!(d.is_allowed(), "request {i}");
            if let Decision::Allow { remaining, .. } = d {
                assert_eq!(remaining, 9 - i);
            }
        }
        assert_eq!(
            run(&q, &mut tat, now),
            Decision::Deny {
                retry_after: Duration::from_secs(6)
            }
        );
    }

    #[test]
    fn refills_one_per_emission_interval() {
        let q = Quota::per_minute(10);
        let mut tat = None;
        let now = 1_000 * S;
        for _ in 0..10 {
            run(&q, &mut tat, now);
        }
        // 5.999 s later: still nothing.
        assert!(!run(&q, &mut tat, now + 6 * S - 1).is_allowed());
        // 6 s later: exactly one.
        assert!(run(&q, &mut tat, now + 6 * S).is_allowed());
        assert!(!run(&q, &mut tat, now + 6 * S).is_allowed());
        // A full idle minute refills the whole burst, never more.
        let later = now + 200 * S;
        for _ in 0..10 {
            assert!(run(&q, &mut tat, later).is_allowed());
        }
        assert!(!run(&q, &mut tat, later).is_allowed());
    }

    #[test]
    fn retry_after_is_exact_and_sufficient() {
        let q = Quota {
            limit: 3,
            period_secs: 1,
            burst: Some(1),
        };
        let mut tat = None;
        let now = 50 * S;
        assert!(run(&q, &mut tat, now).is_allowed());
        let Decision::Deny { retry_after } = run(&q, &mut tat, now + 1) else {
            panic!("second request inside the interval must be denied");
        };
        let retry = now + 1 + u64::try_from(retry_after.as_nanos()).unwrap();
        assert!(!run(&q, &mut tat, retry - 1).is_allowed());
        assert!(run(&q, &mut tat, retry).is_allowed());
    }

    #[test]
    fn denial_does_not_consume() {
        let q = Quota::per_second(1);
        let mut tat = None;
        assert!(run(&q, &mut tat, 10 * S).is_allowed());
        let before = tat;
        for _ in 0..100 {
            assert!(!run(&q, &mut tat, 10 * S).is_allowed());
        }
        assert_eq!(tat, before);
        assert!(run(&q, &mut tat, 11 * S).is_allowed());
    }

    #[test]
    fn validate_rejects_zeroes() {
        assert!(
            Quota {
                limit: 0,
                period_secs: 1,
                burst: None
            }
            .validate()
            .is_err()
        );
        assert!(
            Quota {
                limit: 1,
                period_secs: 0,
                burst: None
            }
            .validate()
            .is_err()
        );
        assert!(
            Quota {
                limit: 1,
                period_secs: 1,
                burst: Some(0)
            }
            .validate()
            .is_err()
        );
        assert!(Quota::per_minute(1).validate().is_ok());
    }

    #[test]
    fn platform_defaults_and_overrides() {
        let d = Limits::default();
        assert_eq!(d.get("media.upload"), Some(&Quota::per_minute(10)));
        assert_eq!(d.get("media.download"), Some(&Quota::per_minute(100)));
        assert_eq!(d.get("message.delete"), Some(&Quota::per_minute(20)));
        assert_eq!(d.get("search"), Some(&Quota::per_minute(30)));
        assert_eq!(d.get(EDGE_ACTION), Some(&Quota::per_minute(100)));
        let mut o = BTreeMap::new();
        o.insert("search".to_owned(), Quota::per_minute(5));
        let l = Limits::with_overrides(&o);
        assert_eq!(l.get("search"), Some(&Quota::per_minute(5)));
        assert_eq!(l.get("media.upload"), Some(&Quota::per_minute(10)));
    }

    proptest::proptest! {
        /// Over any window, GCRA never lets through more than burst + elapsed/T events.
        #[test]
        fn never_exceeds_the_rate(gaps in proptest::collection::vec(0u64..3 * S, 1..200), limit in 1u32..50, burst in 1u32..20) {
            let q = Quota { limit, period_secs: 10, burst: Some(burst) };
            let t = q.emission_interval();
            let start = 1_000 * S;
            let mut now = start;
            let mut tat = None;
            let mut allowed = 0u64;
            for g in gaps {
                now += g;
                if run(&q, &mut tat, now).is_allowed() { allowed += 1; }
            }
            proptest::prop_assert!(allowed <= u64::from(burst) + (now - start) / t);
        }
    }
}
