//! Usage meters and monthly active users. A call's deltas are applied by one
//! writer command, so they commit together or not at all; each is an upsert of
//! its `(tenant, day, meter)` row, which adds to (or raises) the stored value
//! in the same statement rather than reading it first.

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{UsageRow, UsageStore};
use caas_core::{Error, Result};
use rusqlite::params;

use super::SqliteStore;
use super::codec::to_u64;
use super::error::Ctx;

/// SQLite turns an integer sum that overflows into a REAL, which would then
/// fail every read of the row: the sum saturates at the i64 bounds instead, as
/// the memory store's does. The inner CASEs keep `MAX - delta` and
/// `MIN - delta` themselves from overflowing.
const ADD: &str = "INSERT INTO usage (tenant, day, meter, value) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (tenant, day, meter) DO UPDATE SET value = CASE
         WHEN excluded.value >= 0 THEN CASE
             WHEN value > 9223372036854775807 - excluded.value THEN 9223372036854775807
             ELSE value + excluded.value END
         ELSE CASE
             WHEN value < (-9223372036854775807 - 1) - excluded.value
                 THEN (-9223372036854775807 - 1)
             ELSE value + excluded.value END
     END";

/// The maximum of the stored and the given value; a peak that does not rise
/// leaves the row as it is rather than rewriting it.
const RAISE: &str = "INSERT INTO usage (tenant, day, meter, value) VALUES (?1, ?2, ?3, ?4)
     ON CONFLICT (tenant, day, meter) DO UPDATE SET value = excluded.value
     WHERE excluded.value > value";

/// Applies each `(meter, value)` of one call with `sql` (`ADD` or `RAISE`) in
/// one writer command: its savepoint makes the call all or nothing.
async fn upsert_all(
    store: &SqliteStore,
    sql: &'static str,
    context: &'static str,
    tenant: &TenantId,
    day: u32,
    values: &[(String, i64)],
) -> Result<()> {
    if values.is_empty() {
        return Ok(());
    }
    let (tenant, values) = (tenant.clone(), values.to_vec());
    store
        .write(move |c| {
            let mut stmt = c.prepare_cached(sql).ctx(context)?;
            for (meter, value) in &values {
                stmt.execute(params![tenant.as_str(), i64::from(day), meter, value])
                    .ctx(context)?;
            }
            Ok(())
        })
        .await
}

/// A stored day back to the port's `u32`; anything else is a corrupt row.
fn day_of(v: i64) -> Result<u32> {
    u32::try_from(v)
        .map_err(|_| Error::internal(format!("sqlite: stored usage day {v} is invalid")))
}

#[async_trait]
impl UsageStore for SqliteStore {
    async fn add(&self, tenant: &TenantId, day: u32, deltas: &[(String, i64)]) -> Result<()> {
        upsert_all(self, ADD, "add usage", tenant, day, deltas).await
    }

    async fn raise(&self, tenant: &TenantId, day: u32, values: &[(String, i64)]) -> Result<()> {
        upsert_all(self, RAISE, "raise usage peaks", tenant, day, values).await
    }

    async fn mark_active(&self, tenant: &TenantId, month: u32, user: &UserId) -> Result<bool> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO active_users (tenant, month, user_id) VALUES (?1, ?2, ?3)
                     ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![tenant.as_str(), i64::from(month), user.as_str()])
                })
                .ctx("mark a user active")?;
            Ok(n > 0)
        })
        .await
    }

    async fn active_users(&self, tenant: &TenantId, month: u32) -> Result<u64> {
        let tenant = tenant.clone();
        // A count over every active user of the month: not a short read.
        let n: i64 = self
            .read(move |c| {
                c.prepare_cached(
                    "SELECT count(*) FROM active_users WHERE tenant = ?1 AND month = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), i64::from(month)], |r| r.get(0))
                })
                .ctx("count active users")
            })
            .await?;
        to_u64(n, "active user count")
    }

    async fn read(&self, tenant: &TenantId, from: u32, to: u32) -> Result<Vec<UsageRow>> {
        let tenant = tenant.clone();
        let rows = self
            .read(move |c| {
                let mut stmt = c
                    .prepare_cached(
                        "SELECT day, meter, value FROM usage
                     WHERE tenant = ?1 AND day BETWEEN ?2 AND ?3
                     ORDER BY day, meter",
                    )
                    .ctx("read usage")?;
                stmt.query_map(
                    params![tenant.as_str(), i64::from(from), i64::from(to)],
                    |r| {
                        Ok((
                            r.get::<_, i64>(0)?,
                            r.get::<_, String>(1)?,
                            r.get::<_, i64>(2)?,
                        ))
                    },
                )
                .ctx("read usage")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("read usage")
            })
            .await?;
        rows.into_iter()
            .map(|(day, meter, value)| {
                Ok(UsageRow {
                    day: day_of(day)?,
                    meter,
                    value,
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use caas_core::ids::TenantId;
    use caas_core::ports::{UsageRow, UsageStore};

    use super::super::SqliteStore;

    fn d(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
        pairs.iter().map(|(m, v)| ((*m).to_owned(), *v)).collect()
    }

    fn values(rows: Vec<UsageRow>) -> Vec<(String, i64)> {
        rows.into_iter().map(|r| (r.meter, r.value)).collect()
    }

    /// Sums past the i64 bounds saturate, as in memory, instead of turning
    /// the row into a REAL that no read could decode.
    #[tokio::test]
    async fn sums_saturate_at_the_integer_bounds() {
        let store = SqliteStore::open_temp().unwrap();
        let t = TenantId::parse("acme").unwrap();
        store
            .add(&t, 1, &d(&[("up", i64::MAX - 1), ("down", i64::MIN + 1)]))
            .await
            .unwrap();
        store
            .add(&t, 1, &d(&[("up", 5), ("down", -5)]))
            .await
            .unwrap();
        assert_eq!(
            values(UsageStore::read(&store, &t, 1, 1).await.unwrap()),
            d(&[("down", i64::MIN), ("up", i64::MAX)])
        );
        store
            .add(&t, 1, &d(&[("up", i64::MIN), ("down", i64::MAX)]))
            .await
            .unwrap();
        assert_eq!(
            values(UsageStore::read(&store, &t, 1, 1).await.unwrap()),
            d(&[("down", -1), ("up", -1)])
        );
    }

    /// A meter named twice in one call counts both times; a peak that does
    /// not rise changes nothing; an empty call is a no-op.
    #[tokio::test]
    async fn repeated_meters_in_one_call_all_apply() {
        let store = SqliteStore::open_temp().unwrap();
        let t = TenantId::parse("acme").unwrap();
        store
            .add(&t, 7, &d(&[("messages", 2), ("messages", 3)]))
            .await
            .unwrap();
        store
            .raise(&t, 7, &d(&[("peak", 4), ("peak", 9), ("peak", 1)]))
            .await
            .unwrap();
        store.raise(&t, 7, &d(&[("peak", -3)])).await.unwrap();
        store.add(&t, 7, &[]).await.unwrap();
        store.raise(&t, 7, &[]).await.unwrap();
        assert_eq!(
            values(UsageStore::read(&store, &t, 7, 7).await.unwrap()),
            d(&[("messages", 5), ("peak", 9)])
        );
        // A first peak below zero is stored as given, not raised from 0.
        store.raise(&t, 8, &d(&[("peak", -3)])).await.unwrap();
        assert_eq!(
            values(UsageStore::read(&store, &t, 8, 8).await.unwrap()),
            d(&[("peak", -3)])
        );
        assert!(UsageStore::read(&store, &t, 9, 6).await.unwrap().is_empty());
    }
}
