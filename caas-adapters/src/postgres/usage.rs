//! Usage meters and monthly active users. A call's deltas go in one statement
//! (`INSERT ... SELECT FROM unnest(...) ON CONFLICT DO UPDATE`), so they commit
//! together; PostgreSQL applies each row's update to its newest version under
//! the row's lock, so concurrent calls from any node all count.

use std::collections::BTreeMap;

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{UsageRow, UsageStore};
use caas_core::{Error, Result};

use super::PostgresStore;
use super::codec::{get, to_u64};

/// One statement may not update a row twice (`ON CONFLICT DO UPDATE command
/// cannot affect row a second time`), so a meter named more than once in a
/// call is merged first with `merge` (a sum or a maximum). The meters come out
/// sorted, and `unnest` feeds the insert in array order, so concurrent calls
/// lock their rows in the same order and cannot deadlock on each other.
fn merged(values: &[(String, i64)], merge: fn(i64, i64) -> i64) -> (Vec<&str>, Vec<i64>) {
    let mut by_meter: BTreeMap<&str, i64> = BTreeMap::new();
    for (meter, value) in values {
        by_meter
            .entry(meter.as_str())
            .and_modify(|v| *v = merge(*v, *value))
            .or_insert(*value);
    }
    by_meter.into_iter().unzip()
}

/// A stored day back to the port's `u32`; anything else is a corrupt row.
fn day_of(v: i64) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::internal(format!("postgres: stored usage day {v} is invalid")))
}

#[async_trait]
impl UsageStore for PostgresStore {
    async fn add(&self, tenant: &TenantId, day: u32, deltas: &[(String, i64)]) -> Result<()> {
        if deltas.is_empty() {
            return Ok(());
        }
        let (meters, values) = merged(deltas, i64::saturating_add);
        // The sum is taken in numeric and clamped to bigint's range: it
        // saturates, as the memory store's does, where bigint arithmetic
        // would fail the whole call with "bigint out of range".
        self.conn()
            .await?
            .execute(
                "INSERT INTO usage (tenant, day, meter, value)
                 SELECT $1, $2, d.meter, d.value
                 FROM unnest($3::text[], $4::bigint[]) AS d (meter, value)
                 ON CONFLICT (tenant, day, meter) DO UPDATE SET value =
                     least(greatest(usage.value::numeric + excluded.value,
                                    -9223372036854775808::numeric),
                           9223372036854775807::numeric)::bigint",
                &[&tenant.as_str(), &i64::from(day), &meters, &values],
                "add usage",
            )
            .await?;
        Ok(())
    }

    async fn raise(&self, tenant: &TenantId, day: u32, values: &[(String, i64)]) -> Result<()> {
        if values.is_empty() {
            return Ok(());
        }
        let (meters, values) = merged(values, i64::max);
        // A peak that does not rise leaves its row as it is rather than
        // writing a new version of it.
        self.conn()
            .await?
            .execute(
                "INSERT INTO usage (tenant, day, meter, value)
                 SELECT $1, $2, d.meter, d.value
                 FROM unnest($3::text[], $4::bigint[]) AS d (meter, value)
                 ON CONFLICT (tenant, day, meter) DO UPDATE SET value = excluded.value
                 WHERE usage.value < excluded.value",
                &[&tenant.as_str(), &i64::from(day), &meters, &values],
                "raise usage peaks",
            )
            .await?;
        Ok(())
    }

    async fn mark_active(&self, tenant: &TenantId, month: u32, user: &UserId) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO active_users (tenant, month, user_id) VALUES ($1, $2, $3)
                 ON CONFLICT DO NOTHING",
                &[&tenant.as_str(), &i64::from(month), &user.as_str()],
                "mark a user active",
            )
            .await?;
        Ok(n > 0)
    }

    async fn active_users(&self, tenant: &TenantId, month: u32) -> Result<u64> {
        let row = self
            .conn()
            .await?
            .query_one(
                "SELECT count(*) FROM active_users WHERE tenant = $1 AND month = $2",
                &[&tenant.as_str(), &i64::from(month)],
                "count active users",
            )
            .await?;
        to_u64(get(&row, 0)?, "active user count")
    }

    async fn read(&self, tenant: &TenantId, from: u32, to: u32) -> Result<Vec<UsageRow>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT day, meter, value FROM usage
                 WHERE tenant = $1 AND day BETWEEN $2 AND $3
                 ORDER BY day, meter",
                &[&tenant.as_str(), &i64::from(from), &i64::from(to)],
                "read usage",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok(UsageRow {
                    day: day_of(get(r, 0)?)?,
                    meter: get(r, 1)?,
                    value: get(r, 2)?,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::merged;

    fn d(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(m, v)| ((*m).to_owned(), *v)).collect()
    }

    #[test]
    fn repeated_meters_merge_into_one_sorted_row_each() {
        let values = d(&[("b", 2), ("a", 1), ("b", i64::MAX), ("c", -4), ("a", 5)]);
        assert_eq!(
            merged(&values, i64::saturating_add),
            (vec!["a", "b", "c"], vec![6, i64::MAX, -4])
        );
        assert_eq!(
            merged(&values, i64::max),
            (vec!["a", "b", "c"], vec![5, i64::MAX, -4])
        );
        assert_eq!(merged(&[], i64::max), (Vec::new(), Vec::new()));
    }
}
