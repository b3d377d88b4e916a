//! Usage metering: every operation, message, upload and connection is counted
//! per tenant and day; users are counted once a month. Counts gather in memory
//! and reach the [`crate::ports::UsageStore`] in batches ([`Caas::flush_usage`],
//! which the platform runs every few seconds and at shutdown), so metering adds
//! no store write to a send. A crash loses at most the counts of one interval.
//!
//! Plan quotas ([`crate::model::UsageQuotas`]) are checked against the month's
//! stored totals (re-read at most every few seconds) plus this node's unflushed
//! counts, so on several nodes a quota can be overshot by what the others
//! counted since their last flush.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Mutex;

use serde::Serialize;

use super::{Caas, Ctx, audit_record};
use crate::error::{Error, Result};
use crate::ids::{TenantId, UserId};
use crate::policy::{Action, Attrs};
use crate::principal::Principal;
use crate::time::{Day, Timestamp};

/// Messages stored.
pub const MESSAGES: &str = "messages";
/// Tenant operations served (every door).
pub const API_CALLS: &str = "api_calls";
/// Bytes of message bodies and ciphertexts stored.
pub const STORAGE_BYTES: &str = "storage_bytes";
/// Bytes of completed uploads, less those deleted.
pub const MEDIA_BYTES: &str = "media_bytes";
/// WebSocket connections opened.
pub const CONNECTIONS: &str = "connections";

/// The share of a quota past which a warning is audited.
const WARN_AT_PERCENT: u64 = 80;

/// The longest range of one usage read.
const MAX_RANGE_DAYS: u32 = 366;

/// Counts not yet in the store, and what quotas need between reads.
#[derive(Debug, Default)]
pub(super) struct Meters {
    pending: Mutex<Pending>,
    /// Users already counted this month on this node, so each is sent once.
    seen: Mutex<HashMap<(TenantId, u32), HashSet<UserId>>>,
    /// Stored totals of the quotas' meters, per tenant, with when they were read.
    totals: Mutex<HashMap<TenantId, (Timestamp, QuotaTotals)>>,
    /// Warnings already audited, per tenant, quota and month.
    warned: Mutex<HashSet<(TenantId, &'static str, u32)>>,
}

#[derive(Debug, Default)]
struct Pending {
    deltas: HashMap<(TenantId, Day), BTreeMap<&'static str, i64>>,
    active: Vec<(TenantId, u32, UserId)>,
}

/// Counts taken out for a flush: what is still here when it drops (not yet
/// written, or refused) goes back to the pending counts, so neither a store
/// failure nor a cancelled flush loses any.
struct Unflushed<'a> {
    meters: &'a Meters,
    left: Pending,
    failed: Pending,
}

impl Drop for Unflushed<'_> {
    fn drop(&mut self) {
        let Ok(mut p) = self.meters.pending.lock() else {
            return;
        };
        for part in [&mut self.left, &mut self.failed] {
            for (key, meters) in part.deltas.drain() {
                let into = p.deltas.entry(key).or_default();
                for (m, n) in meters {
                    *into.entry(m).or_default() += n;
                }
            }
            p.active.append(&mut part.active);
        }
    }
}

/// What quotas compare against.
#[derive(Debug, Clone, Copy, Default)]
struct QuotaTotals {
    month: u32,
    messages: i64,
    media_bytes: i64,
}

/// A tenant's usage over a range of days.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageReport {
    /// The first day (`YYYY-MM-DD`, UTC).
    pub from: String,
    /// The last day, included.
    pub to: String,
    /// Each meter summed over the range: `messages`, `api_calls`,
    /// `storage_bytes`, `media_bytes` (net of deletions), `connections`.
    pub totals: BTreeMap<String, i64>,
    /// Users active in each month the range touches (`YYYY-MM`).
    pub active_users: BTreeMap<String, u64>,
    /// The meters of each day that has any, in order.
    pub days: Vec<DayUsage>,
}

/// One day's meters.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayUsage {
    /// The day (`YYYY-MM-DD`).
    pub day: String,
    /// Its meters.
    #[serde(flatten)]
    pub meters: BTreeMap<String, i64>,
}

fn month_name(month: u32) -> String {
    format!("{:04}-{:02}", month / 100, month % 100)
}

impl Meters {
    fn add(&self, tenant: &TenantId, now: Timestamp, meter: &'static str, n: i64) {
        if let Ok(mut p) = self.pending.lock() {
            *p.deltas
                .entry((tenant.clone(), Day::of(now)))
                .or_default()
                .entry(meter)
                .or_default() += n;
        }
    }

    /// This node's unflushed count of `meter` for the tenant since `from`.
    fn unflushed(&self, tenant: &TenantId, from: Day, meter: &str) -> i64 {
        self.pending.lock().map_or(0, |p| {
            p.deltas
                .iter()
                .filter(|((t, d), _)| t == tenant && *d >= from)
                .filter_map(|(_, m)| m.get(meter))
                .sum()
        })
    }
}

impl Caas {
    /// Counts an operation of the context's tenant, and its user as active this
    /// month (the first time this node sees them this month).
    pub(super) fn meter_call(&self, ctx: &Ctx<'_>) {
        self.meters.add(&ctx.tenant, ctx.now, API_CALLS, 1);
        let Some(user) = &ctx.p.user else { return };
        let month = Day::of(ctx.now).month();
        let first = self.meters.seen.lock().is_ok_and(|mut seen| {
            // Last month's sets are dropped as this month's first user arrives.
            if !seen.contains_key(&(ctx.tenant.clone(), month)) {
                seen.retain(|(_, m), _| *m == month);
            }
            seen.entry((ctx.tenant.clone(), month))
                .or_default()
                .insert(user.clone())
        });
        if first && let Ok(mut p) = self.meters.pending.lock() {
            p.active.push((ctx.tenant.clone(), month, user.clone()));
        }
    }

    /// Counts a stored message of `bytes` body or ciphertext bytes.
    pub(super) fn meter_message(&self, tenant: &TenantId, now: Timestamp, bytes: usize) {
        self.meters.add(tenant, now, MESSAGES, 1);
        self.meters.add(
            tenant,
            now,
            STORAGE_BYTES,
            i64::try_from(bytes).unwrap_or(i64::MAX),
        );
    }

    /// Counts bytes of media completed (positive) or deleted (negative).
    pub(super) fn meter_media(&self, tenant: &TenantId, now: Timestamp, bytes: i64) {
        self.meters.add(tenant, now, MEDIA_BYTES, bytes);
    }

    /// Counts a WebSocket connection opened by `p` (the transport calls this
    /// when it accepts one).
    pub fn meter_connection(&self, p: &Principal) {
        if let Some(tenant) = &p.tenant {
            self.meters.add(tenant, self.now(), CONNECTIONS, 1);
        }
    }

    /// Writes the counts gathered so far to the usage store. Counts a failed
    /// (or cancelled) flush could not store go back for the next one.
    pub async fn flush_usage(&self) -> Result<()> {
        let taken = match self.meters.pending.lock() {
            Ok(mut p) => std::mem::take(&mut *p),
            Err(_) => return Err(Error::internal("usage meters lock poisoned")),
        };
        let mut unflushed = Unflushed {
            meters: &self.meters,
            left: taken,
            failed: Pending::default(),
        };
        let mut failure = None;
        while let Some(key) = unflushed.left.deltas.keys().next().cloned() {
            let Some(meters) = unflushed.left.deltas.get(&key) else {
                break;
            };
            let deltas: Vec<(String, i64)> = meters
                .iter()
                .filter(|(_, n)| **n != 0)
                .map(|(m, n)| ((*m).to_owned(), *n))
                .collect();
            let result = if deltas.is_empty() {
                Ok(())
            } else {
                self.b.usage.add(&key.0, key.1.0, &deltas).await
            };
            let Some(meters) = unflushed.left.deltas.remove(&key) else {
                break;
            };
            match result {
                // The cached totals no longer see these counts as unflushed:
                // read the store again.
                Ok(()) => {
                    if let Ok(mut t) = self.meters.totals.lock() {
                        t.remove(&key.0);
                    }
                }
                Err(e) => {
                    unflushed.failed.deltas.insert(key, meters);
                    failure = Some(e);
                }
            }
        }
        while let Some((tenant, month, user)) = unflushed.left.active.last().cloned() {
            let result = self.b.usage.mark_active(&tenant, month, &user).await;
            unflushed.left.active.pop();
            if let Err(e) = result {
                unflushed.failed.active.push((tenant, month, user));
                failure = Some(e);
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// The caller's tenant's usage over days `from..=to` (`YYYY-MM-DD`; by
    /// default this month up to today): authorize (`usage.read`, tenant
    /// servers) → flush this node's counts → read.
    pub async fn usage(
        &self,
        p: &Principal,
        from: Option<&str>,
        to: Option<&str>,
    ) -> Result<UsageReport> {
        let ctx = self.ctx(p).await?;
        Self::authorize(
            &ctx,
            Action::UsageRead,
            Self::subject(&ctx, None),
            Attrs::default().with("kind", "usage"),
        )?;
        let today = Day::of(ctx.now);
        let to = to.map(Day::parse).transpose()?.unwrap_or(today);
        let from = from
            .map(Day::parse)
            .transpose()?
            .unwrap_or(to.month_start());
        if from > to {
            return Err(Error::invalid("from", "must not be after `to`"));
        }
        if to.0 - from.0 >= MAX_RANGE_DAYS {
            return Err(Error::invalid(
                "to",
                format!("a range is at most {MAX_RANGE_DAYS} days"),
            ));
        }
        self.flush_usage().await?;
        let rows = self.b.usage.read(&ctx.tenant, from.0, to.0).await?;
        let mut totals = BTreeMap::new();
        let mut days: Vec<DayUsage> = Vec::new();
        for row in rows {
            *totals.entry(row.meter.clone()).or_default() += row.value;
            let day = Day(row.day).to_string();
            match days.last_mut() {
                Some(last) if last.day == day => {
                    last.meters.insert(row.meter, row.value);
                }
                _ => days.push(DayUsage {
                    day,
                    meters: BTreeMap::from([(row.meter, row.value)]),
                }),
            }
        }
        let mut active_users = BTreeMap::new();
        let mut month = from.month_start();
        while month <= to {
            let m = month.month();
            active_users.insert(
                month_name(m),
                self.b.usage.active_users(&ctx.tenant, m).await?,
            );
            // The first day of the next month: 31 days on lands in it.
            month = Day(month.0 + 31).month_start();
        }
        Ok(UsageReport {
            from: from.to_string(),
            to: to.to_string(),
            totals,
            active_users,
            days,
        })
    }

    /// The month's messages and all-time media bytes, from the store at most
    /// every `tenant_cache_ttl`, plus this node's unflushed counts.
    async fn quota_totals(&self, ctx: &Ctx<'_>) -> Result<QuotaTotals> {
        let today = Day::of(ctx.now);
        let month = today.month();
        let cached = self.meters.totals.lock().ok().and_then(|t| {
            t.get(&ctx.tenant)
                .filter(|(at, q)| {
                    q.month == month && ctx.now.since(*at) < self.cfg.tenant_cache_ttl
                })
                .map(|(_, q)| *q)
        });
        let stored = match cached {
            Some(q) => q,
            None => {
                let start = today.month_start();
                let rows = self.b.usage.read(&ctx.tenant, 0, today.0).await?;
                let sum = |meter: &str, from: Day| -> i64 {
                    rows.iter()
                        .filter(|r| r.meter == meter && r.day >= from.0)
                        .map(|r| r.value)
                        .sum()
                };
                let q = QuotaTotals {
                    month,
                    messages: sum(MESSAGES, start),
                    media_bytes: sum(MEDIA_BYTES, Day(0)),
                };
                if let Ok(mut t) = self.meters.totals.lock() {
                    t.insert(ctx.tenant.clone(), (ctx.now, q));
                }
                q
            }
        };
        Ok(QuotaTotals {
            month,
            messages: stored.messages
                + self
                    .meters
                    .unflushed(&ctx.tenant, today.month_start(), MESSAGES),
            media_bytes: stored.media_bytes
                + self.meters.unflushed(&ctx.tenant, Day(0), MEDIA_BYTES),
        })
    }

    /// Refuses one more message past the tenant's monthly quota.
    pub(super) async fn check_message_quota(&self, ctx: &Ctx<'_>) -> Result<()> {
        let Some(limit) = ctx.rt.tenant.settings.quotas.messages_per_month else {
            return Ok(());
        };
        let used = self.quota_totals(ctx).await?.messages;
        self.enforce(ctx, "messages_per_month", used, 1, limit)
            .await
    }

    /// Refuses an upload of `size` bytes past the tenant's media quota.
    pub(super) async fn check_media_quota(&self, ctx: &Ctx<'_>, size: u64) -> Result<()> {
        let Some(limit) = ctx.rt.tenant.settings.quotas.media_bytes else {
            return Ok(());
        };
        let used = self.quota_totals(ctx).await?.media_bytes;
        let size = i64::try_from(size).unwrap_or(i64::MAX);
        self.enforce(ctx, "media_bytes", used, size, limit).await
    }

    async fn enforce(
        &self,
        ctx: &Ctx<'_>,
        quota: &'static str,
        used: i64,
        adding: i64,
        limit: u64,
    ) -> Result<()> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let after = used.saturating_add(adding);
        if after > limit {
            return Err(Error::QuotaExceeded {
                quota: format!("{quota}: {used} of {limit} used"),
            });
        }
        let month = Day::of(ctx.now).month();
        let near = i128::from(after) * 100 >= i128::from(limit) * i128::from(WARN_AT_PERCENT);
        let first = near
            && self.meters.warned.lock().is_ok_and(|mut w| {
                // Last month's warnings are forgotten as this month's come.
                w.retain(|(_, _, m)| *m == month);
                w.insert((ctx.tenant.clone(), quota, month))
            });
        if first {
            // The tenant hears of it in its audit log; a warning is never a
            // reason to refuse the call.
            let record = audit_record(
                ctx.p,
                Action::UsageRead,
                format!("quota:{quota}"),
                "usage-warning",
                serde_json::json!({ "quota": quota, "used": after, "limit": limit, "month": month_name(month) }),
                ctx.now,
            );
            let record = crate::model::AuditRecord {
                action: "usage.warning".into(),
                ..record
            };
            if let Err(e) = self.audit(&ctx.tenant, record).await {
                tracing::warn!(error = %e, quota, "could not audit a quota warning");
            }
        }
        Ok(())
    }
}
