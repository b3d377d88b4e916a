//! Usage meters and monthly active users. One document per tenant, day and
//! meter (`value` an int64), updated by an upsert per meter: `$inc` for a
//! counter, `$max` for a peak. The server applies each to the document's
//! current state, and retries an upsert that lost the race to insert it
//! (the filter is the whole unique key), so concurrent calls from any node all
//! count. A call's meters are separate single-document writes: each counter is
//! atomic, as the port asks, but a call that fails partway leaves the meters
//! written before the failure counted. Active users are one document per
//! tenant, month and user, inserted once: the unique index refuses the
//! repeats, which is how `mark_active` tells a first activity.

use std::collections::BTreeMap;

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{UsageRow, UsageStore};
use caas_core::{Error, Result};
use mongodb::bson::{Bson, Document};

use super::MongoStore;
use super::codec::{get_i64, get_str};
use super::names::{ACTIVE_USERS, USAGE};

const WHAT: &str = "usage meter";

/// The filter, update and command documents of usage meters, as pure
/// functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{TenantId, UserId};
    use mongodb::bson::{Document, doc};

    use super::super::names::{ACTIVE_USERS, USAGE};

    /// One meter of one day (the key of the unique index `usage_key`, whose
    /// fields an upsert's insert takes from it).
    pub(crate) fn meter(tenant: &TenantId, day: u32, meter: &str) -> Document {
        doc! { "tenant": tenant.as_str(), "day": i64::from(day), "meter": meter }
    }

    /// The counter's upsert (`update_one`, upsert): an int64 increment, so a
    /// document it inserts holds an int64 starting from the delta.
    pub(crate) fn add(tenant: &TenantId, day: u32, name: &str, delta: i64) -> (Document, Document) {
        (
            meter(tenant, day, name),
            doc! { "$inc": { "value": delta } },
        )
    }

    /// The peak's upsert (`update_one`, upsert): `$max` leaves a higher
    /// stored value as it is, and sets the field of a document it inserts.
    pub(crate) fn raise(
        tenant: &TenantId,
        day: u32,
        name: &str,
        value: i64,
    ) -> (Document, Document) {
        (
            meter(tenant, day, name),
            doc! { "$max": { "value": value } },
        )
    }

    /// The record of a user's activity in a month (`insert_one`; the unique
    /// index `active_users_key` refuses a second one).
    pub(crate) fn active(tenant: &TenantId, month: u32, user: &UserId) -> Document {
        doc! { "tenant": tenant.as_str(), "month": i64::from(month), "user": user.as_str() }
    }

    /// Every active user of a month (`count_documents`, a prefix of
    /// `active_users_key`).
    pub(crate) fn month(tenant: &TenantId, month: u32) -> Document {
        doc! { "tenant": tenant.as_str(), "month": i64::from(month) }
    }

    /// The meters of days `from..=to`, their order (day, then meter name:
    /// the index's order, and byte order under the default collation) and
    /// the fields a read needs.
    pub(crate) fn read(tenant: &TenantId, from: u32, to: u32) -> (Document, Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "day": { "$gte": i64::from(from), "$lte": i64::from(to) },
            },
            doc! { "day": 1, "meter": 1 },
            doc! { "_id": 0, "day": 1, "meter": 1, "value": 1 },
        )
    }

    /// The `createIndexes` commands of `usage` and `active_users`.
    pub(crate) fn create_indexes() -> [Document; 2] {
        [
            doc! {
                "createIndexes": USAGE,
                "indexes": [
                    {
                        "key": { "tenant": 1, "day": 1, "meter": 1 },
                        "name": "usage_key",
                        "unique": true,
                    },
                ],
            },
            doc! {
                "createIndexes": ACTIVE_USERS,
                "indexes": [
                    {
                        "key": { "tenant": 1, "month": 1, "user": 1 },
                        "name": "active_users_key",
                        "unique": true,
                    },
                ],
            },
        ]
    }
}

/// A call's values with each meter once, merged with `merge` (a sum or a
/// maximum), so a meter named twice costs one write.
fn merged(values: &[(String, i64)], merge: fn(i64, i64) -> i64) -> BTreeMap<&str, i64> {
    let mut by_meter: BTreeMap<&str, i64> = BTreeMap::new();
    for (meter, value) in values {
        by_meter
            .entry(meter.as_str())
            .and_modify(|v| *v = merge(*v, *value))
            .or_insert(*value);
    }
    by_meter
}

/// A stored meter. The server turns an int64 sum that overflows into a
/// double; such a value is read saturated to the i64 bounds, as the other
/// stores keep it.
fn decode(d: &Document) -> Result<UsageRow> {
    let day = get_i64(d, "day", WHAT)?;
    let day = u32::try_from(day)
        .map_err(|_| Error::internal(format!("mongo: stored usage day {day} is invalid")))?;
    let value = match d.get("value") {
        Some(Bson::Int64(v)) => *v,
        Some(Bson::Int32(v)) => i64::from(*v),
        // `as` saturates at the i64 bounds.
        Some(Bson::Double(v)) if v.is_finite() => *v as i64,
        _ => {
            return Err(Error::internal(format!(
                "mongo: stored {WHAT} has no integer `value`"
            )));
        }
    };
    Ok(UsageRow {
        day,
        meter: get_str(d, "meter", WHAT)?.to_owned(),
        value,
    })
}

impl MongoStore {
    /// Runs one upsert per `(filter, update)`, in order.
    async fn upsert_each(
        &self,
        context: &str,
        updates: impl Iterator<Item = (Document, Document)>,
    ) -> Result<()> {
        for (filter, update) in updates {
            self.bounded(
                context,
                self.coll(USAGE).update_one(filter, update).upsert(true),
            )
            .await?;
        }
        Ok(())
    }
}

#[async_trait]
impl UsageStore for MongoStore {
    async fn add(&self, tenant: &TenantId, day: u32, deltas: &[(String, i64)]) -> Result<()> {
        let merged = merged(deltas, i64::saturating_add);
        self.upsert_each(
            "add usage",
            merged
                .into_iter()
                .map(|(meter, delta)| commands::add(tenant, day, meter, delta)),
        )
        .await
    }

    async fn raise(&self, tenant: &TenantId, day: u32, values: &[(String, i64)]) -> Result<()> {
        let merged = merged(values, i64::max);
        self.upsert_each(
            "raise usage peaks",
            merged
                .into_iter()
                .map(|(meter, value)| commands::raise(tenant, day, meter, value)),
        )
        .await
    }

    async fn mark_active(&self, tenant: &TenantId, month: u32, user: &UserId) -> Result<bool> {
        let done = self
            .bounded(
                "mark a user active",
                self.coll(ACTIVE_USERS)
                    .insert_one(commands::active(tenant, month, user)),
            )
            .await;
        match done {
            Ok(_) => Ok(true),
            // Only the unique index maps to a conflict: active before.
            Err(Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn active_users(&self, tenant: &TenantId, month: u32) -> Result<u64> {
        let n = self
            .bounded(
                "count active users",
                self.coll(ACTIVE_USERS)
                    .count_documents(commands::month(tenant, month)),
            )
            .await?;
        Ok(n)
    }

    async fn read(&self, tenant: &TenantId, from: u32, to: u32) -> Result<Vec<UsageRow>> {
        let (filter, sort, projection) = commands::read(tenant, from, to);
        self.find_projected("read usage", USAGE, filter, sort, projection, None)
            .await?
            .iter()
            .map(decode)
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::{decode, merged};
    use caas_core::ids::{TenantId, UserId};
    use caas_core::ports::UsageRow;
    use mongodb::bson::doc;

    fn acme() -> TenantId {
        TenantId::parse("acme").unwrap()
    }

    #[test]
    fn counters_increment_and_peaks_take_the_maximum_as_int64_upserts() {
        assert_eq!(
            add(&acme(), 20_000, "messages", 3),
            (
                doc! { "tenant": "acme", "day": 20_000_i64, "meter": "messages" },
                doc! { "$inc": { "value": 3_i64 } },
            )
        );
        assert_eq!(
            raise(&acme(), 20_000, "connections", -2),
            (
                doc! { "tenant": "acme", "day": 20_000_i64, "meter": "connections" },
                doc! { "$max": { "value": -2_i64 } },
            )
        );
        // Every u32 day fits, as an int64.
        assert_eq!(
            meter(&acme(), u32::MAX, "m"),
            doc! { "tenant": "acme", "day": i64::from(u32::MAX), "meter": "m" }
        );
    }

    #[test]
    fn a_meter_named_twice_in_a_call_is_written_once() {
        let values: Vec<(String, i64)> = [("b", 2), ("a", 1), ("b", 5), ("a", i64::MAX)]
            .iter()
            .map(|(m, v)| ((*m).to_owned(), *v))
            .collect();
        assert_eq!(
            merged(&values, i64::saturating_add)
                .into_iter()
                .collect::<Vec<_>>(),
            [("a", i64::MAX), ("b", 7)]
        );
        assert_eq!(
            merged(&values, i64::max).into_iter().collect::<Vec<_>>(),
            [("a", i64::MAX), ("b", 5)]
        );
        assert!(merged(&[], i64::max).is_empty());
    }

    #[test]
    fn active_users_are_one_document_each_counted_by_month() {
        let alice = UserId::parse("alice").unwrap();
        assert_eq!(
            active(&acme(), 202_612, &alice),
            doc! { "tenant": "acme", "month": 202_612_i64, "user": "alice" }
        );
        assert_eq!(
            month(&acme(), 202_612),
            doc! { "tenant": "acme", "month": 202_612_i64 }
        );
    }

    #[test]
    fn reads_are_a_range_of_days_in_index_order() {
        assert_eq!(
            read(&acme(), 5, 9),
            (
                doc! { "tenant": "acme", "day": { "$gte": 5_i64, "$lte": 9_i64 } },
                doc! { "day": 1, "meter": 1 },
                doc! { "_id": 0, "day": 1, "meter": 1, "value": 1 },
            )
        );
        assert_eq!(
            create_indexes(),
            [
                doc! {
                    "createIndexes": "usage",
                    "indexes": [{
                        "key": { "tenant": 1, "day": 1, "meter": 1 },
                        "name": "usage_key",
                        "unique": true,
                    }],
                },
                doc! {
                    "createIndexes": "active_users",
                    "indexes": [{
                        "key": { "tenant": 1, "month": 1, "user": 1 },
                        "name": "active_users_key",
                        "unique": true,
                    }],
                },
            ]
        );
    }

    #[test]
    fn stored_values_decode_and_overflowed_sums_saturate() {
        let row = |value| UsageRow {
            day: 7,
            meter: "m".into(),
            value,
        };
        let mut d = doc! { "day": 7_i64, "meter": "m", "value": -4_i64 };
        assert_eq!(decode(&d).unwrap(), row(-4));
        d.insert("value", 12_i32);
        assert_eq!(decode(&d).unwrap(), row(12));
        d.insert("value", 1e19_f64);
        assert_eq!(decode(&d).unwrap(), row(i64::MAX));
        d.insert("value", -1e19_f64);
        assert_eq!(decode(&d).unwrap(), row(i64::MIN));
        d.insert("value", f64::NAN);
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
        d.insert("value", "many");
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
        d.insert("value", 1_i64);
        d.insert("day", -1_i64);
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
        d.insert("day", i64::from(u32::MAX) + 1);
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
    }
}
