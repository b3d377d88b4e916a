//! Devices' public key material and their one-time prekey pools.
//!
//! A device's identity keys and signed prekey are one document (`devices`);
//! each one-time prekey is a document of its own (`one_time_prekeys`, unique
//! per device and key id), handed out by `findOneAndDelete`: the server
//! removes each at most once, however many claims race for it. Keys go out in
//! the order they were published (the driver's `ObjectId`s of one insert
//! increase).

use async_trait::async_trait;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::{DeviceKeys, KeyBundle, OneTimePrekey};
use caas_core::ports::KeyDirectory;
use caas_core::{Error, Result};
use mongodb::bson::Document;

use super::MongoStore;
use super::codec::{body, check_size, get_i64, get_str, id, to_json};
use super::error::{map, only_duplicates};
use super::names::{DEVICES, ONE_TIME_PREKEYS};

/// The command, filter and update documents of the key directory, as pure
/// functions of their arguments.
pub(super) mod commands {
    use caas_core::ids::{DeviceId, TenantId, UserId};
    use caas_core::model::OneTimePrekey;
    use mongodb::bson::{Document, doc};

    use super::super::names::{DEVICES, ONE_TIME_PREKEYS};

    /// One device (also the filter of its one-time prekeys).
    pub(crate) fn device(tenant: &TenantId, user: &UserId, device: &DeviceId) -> Document {
        doc! { "tenant": tenant.as_str(), "user": user.as_str(), "device": device.as_str() }
    }

    /// The upsert of a device's keys (`update_one`, upsert, filter [`device`]).
    pub(crate) fn put_device(json: &str) -> Document {
        doc! { "$set": { "doc": json } }
    }

    /// A one-time prekey as stored.
    pub(crate) fn one_time_document(
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        key: &OneTimePrekey,
    ) -> Document {
        doc! {
            "tenant": tenant.as_str(),
            "user": user.as_str(),
            "device": device.as_str(),
            "key_id": i64::from(key.key_id),
            "public_key": key.public_key.as_str(),
        }
    }

    /// A user's devices, by device id.
    pub(crate) fn devices(tenant: &TenantId, user: &UserId) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "user": user.as_str() },
            doc! { "device": 1 },
        )
    }

    /// The order one-time prekeys are handed out in: first published first.
    pub(crate) fn take_order() -> Document {
        doc! { "_id": 1 }
    }

    /// The `createIndexes` commands of `devices` and `one_time_prekeys`.
    pub(crate) fn create_indexes() -> [Document; 2] {
        [
            doc! {
                "createIndexes": DEVICES,
                "indexes": [{
                    "key": { "tenant": 1, "user": 1, "device": 1 },
                    "name": "devices_device",
                    "unique": true,
                }],
            },
            doc! {
                "createIndexes": ONE_TIME_PREKEYS,
                "indexes": [
                    {
                        "key": { "tenant": 1, "user": 1, "device": 1, "key_id": 1 },
                        "name": "one_time_prekeys_key",
                        "unique": true,
                    },
                    {
                        "key": { "tenant": 1, "user": 1, "device": 1, "_id": 1 },
                        "name": "one_time_prekeys_order",
                    },
                ],
            },
        ]
    }
}

fn decode_one_time(d: &Document) -> Result<OneTimePrekey> {
    let key_id = u32::try_from(get_i64(d, "key_id", "one-time prekey")?)
        .map_err(|_| Error::internal("mongo: stored key_id out of range"))?;
    Ok(OneTimePrekey {
        key_id,
        public_key: get_str(d, "public_key", "one-time prekey")?.to_owned(),
    })
}

impl MongoStore {
    async fn pool_size(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<usize> {
        let n = self
            .bounded(
                "count one-time prekeys",
                self.coll(ONE_TIME_PREKEYS)
                    .count_documents(commands::device(tenant, user, device)),
            )
            .await?;
        Ok(usize::try_from(n).unwrap_or(usize::MAX))
    }
}

#[async_trait]
impl KeyDirectory for MongoStore {
    async fn publish(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        keys: &DeviceKeys,
    ) -> Result<usize> {
        let mut base = keys.clone();
        let one_time = std::mem::take(&mut base.one_time_prekeys);
        let json = to_json(&base, "device keys")?;
        check_size("device keys", json.len())?;
        self.bounded(
            "store device keys",
            self.coll(DEVICES)
                .update_one(
                    commands::device(tenant, user, device),
                    commands::put_device(&json),
                )
                .upsert(true),
        )
        .await?;
        if !one_time.is_empty() {
            let docs: Vec<Document> = one_time
                .iter()
                .map(|k| commands::one_time_document(tenant, user, device, k))
                .collect();
            let context = "store one-time prekeys";
            // Unordered: every new key is stored even when some ids are
            // already in the pool (those are ignored, as the port says).
            let pool = self.coll(ONE_TIME_PREKEYS);
            let call = pool.insert_many(docs).ordered(false);
            match tokio::time::timeout(self.config().op_timeout, call.into_future()).await {
                Err(_) => return Err(super::error::timed_out(context)),
                Ok(Ok(_)) => {}
                Ok(Err(e)) if only_duplicates(&e) => {}
                Ok(Err(e)) => return Err(map(context, e)),
            }
        }
        self.pool_size(tenant, user, device).await
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        user: &UserId,
        take_one_time: bool,
    ) -> Result<Vec<KeyBundle>> {
        let (filter, sort) = commands::devices(tenant, user);
        let devices = self
            .find_all("read devices", DEVICES, filter, sort, None)
            .await?;
        let mut bundles = Vec::with_capacity(devices.len());
        for d in &devices {
            let device: DeviceId = id(get_str(d, "device", "device")?)?;
            let keys: DeviceKeys = body(d, "device keys")?;
            let one_time_prekey = if take_one_time {
                self.bounded(
                    "take one-time prekey",
                    self.coll(ONE_TIME_PREKEYS)
                        .find_one_and_delete(commands::device(tenant, user, &device))
                        .sort(commands::take_order()),
                )
                .await?
                .map(|k| decode_one_time(&k))
                .transpose()?
            } else {
                None
            };
            bundles.push(KeyBundle {
                user: user.clone(),
                device,
                identity_signing_key: keys.identity_signing_key,
                identity_agreement_key: keys.identity_agreement_key,
                identity_signature: keys.identity_signature,
                signed_prekey: keys.signed_prekey,
                one_time_prekey,
            });
        }
        Ok(bundles)
    }

    async fn one_time_count(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<usize> {
        self.pool_size(tenant, user, device).await
    }

    async fn remove_device(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<bool> {
        let filter = commands::device(tenant, user, device);
        let removed = self
            .bounded(
                "remove device",
                self.coll(DEVICES).delete_one(filter.clone()),
            )
            .await?;
        self.bounded(
            "remove one-time prekeys",
            self.coll(ONE_TIME_PREKEYS).delete_many(filter),
        )
        .await?;
        Ok(removed.deleted_count == 1)
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn one_time_prekeys_are_keyed_per_device_and_taken_oldest_first() {
        let (t, u, d) = (
            TenantId::parse("acme").unwrap(),
            UserId::parse("alice").unwrap(),
            DeviceId::parse("phone").unwrap(),
        );
        assert_eq!(
            device(&t, &u, &d),
            doc! { "tenant": "acme", "user": "alice", "device": "phone" }
        );
        let key = OneTimePrekey {
            key_id: 7,
            public_key: "pk".into(),
        };
        let stored = one_time_document(&t, &u, &d, &key);
        assert_eq!(
            stored,
            doc! { "tenant": "acme", "user": "alice", "device": "phone", "key_id": 7_i64, "public_key": "pk" }
        );
        assert_eq!(decode_one_time(&stored).unwrap(), key);
        assert_eq!(take_order(), doc! { "_id": 1 });
        assert_eq!(
            devices(&t, &u),
            (
                doc! { "tenant": "acme", "user": "alice" },
                doc! { "device": 1 }
            )
        );
        let [devs, pool] = create_indexes();
        assert_eq!(
            devs,
            doc! {
                "createIndexes": "devices",
                "indexes": [{ "key": { "tenant": 1, "user": 1, "device": 1 }, "name": "devices_device", "unique": true }],
            }
        );
        assert_eq!(
            pool,
            doc! {
                "createIndexes": "one_time_prekeys",
                "indexes": [
                    { "key": { "tenant": 1, "user": 1, "device": 1, "key_id": 1 }, "name": "one_time_prekeys_key", "unique": true },
                    { "key": { "tenant": 1, "user": 1, "device": 1, "_id": 1 }, "name": "one_time_prekeys_order" },
                ],
            }
        );
        let bad = doc! { "key_id": -1_i64, "public_key": "pk" };
        assert_eq!(decode_one_time(&bad).unwrap_err().code(), "internal");
    }
}
