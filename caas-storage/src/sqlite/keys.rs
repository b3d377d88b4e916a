use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::{DeviceKeys, KeyBundle, OneTimePrekey};
use caas_core::ports::KeyDirectory;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::codec::{from_json, id, to_json, to_u64};
use super::error::Ctx;

fn pool_size(c: &Connection, tenant: &str, user: &str, device: &str) -> Result<usize> {
    let n: i64 = c
        .prepare_cached(
            "SELECT count(*) FROM one_time_prekeys WHERE tenant = ?1 AND user = ?2 AND device = ?3",
        )
        .and_then(|mut s| s.query_row(params![tenant, user, device], |r| r.get(0)))
        .ctx("count one-time prekeys")?;
    Ok(usize::try_from(n).unwrap_or(0))
}

#[async_trait]
impl KeyDirectory for SqliteStore {
    async fn publish(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        keys: &DeviceKeys,
    ) -> Result<usize> {
        let (tenant, user, device) = (tenant.clone(), user.clone(), device.clone());
        let mut base = keys.clone();
        let one_time = std::mem::take(&mut base.one_time_prekeys);
        let doc = to_json(&base, "device keys")?;
        self.write(move |c| {
            let (t, u, d) = (tenant.as_str(), user.as_str(), device.as_str());
            c.prepare_cached(
                "INSERT INTO devices (tenant, user, device, doc) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (tenant, user, device) DO UPDATE SET doc = excluded.doc",
            )
            .and_then(|mut s| s.execute(params![t, u, d, doc]))
            .ctx("store device keys")?;
            let mut add = c
                .prepare_cached(
                    "INSERT INTO one_time_prekeys (tenant, user, device, key_id, public_key)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .ctx("store one-time prekeys")?;
            for k in &one_time {
                add.execute(params![t, u, d, k.key_id, k.public_key])
                    .ctx("store one-time prekeys")?;
            }
            pool_size(c, t, u, d)
        })
        .await
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        user: &UserId,
        take_one_time: bool,
    ) -> Result<Vec<KeyBundle>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        // A claim removes keys, so it is a write: the single writer is what makes a
        // one-time prekey go to exactly one claimer.
        self.write(move |c| {
            let (t, u) = (tenant.as_str(), user.as_str());
            let devices = c
                .prepare_cached("SELECT device, doc FROM devices WHERE tenant = ?1 AND user = ?2 ORDER BY device")
                .and_then(|mut s| {
                    s.query_map(params![t, u], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
                        .collect::<rusqlite::Result<Vec<_>>>()
                })
                .ctx("read devices")?;
            let mut bundles = Vec::with_capacity(devices.len());
            for (device, doc) in devices {
                let keys: DeviceKeys = from_json(&doc, "device keys")?;
                let taken: Option<(i64, i64, String)> = if !take_one_time {
                    None
                } else {
                    c.prepare_cached(
                        "SELECT id, key_id, public_key FROM one_time_prekeys
                         WHERE tenant = ?1 AND user = ?2 AND device = ?3 ORDER BY id LIMIT 1",
                    )
                    .and_then(|mut s| {
                        s.query_row(params![t, u, device], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))
                            .optional()
                    })
                    .ctx("take one-time prekey")?
                };
                let one_time_prekey = match taken {
                    Some((row, key_id, public_key)) => {
                        c.prepare_cached("DELETE FROM one_time_prekeys WHERE id = ?1")
                            .and_then(|mut s| s.execute([row]))
                            .ctx("take one-time prekey")?;
                        let key_id = u32::try_from(to_u64(key_id, "key_id")?)
                            .map_err(|_| caas_core::Error::internal("sqlite: stored key_id out of range"))?;
                        Some(OneTimePrekey { key_id, public_key })
                    }
                    None => None,
                };
                bundles.push(KeyBundle {
                    user: user.clone(),
                    device: id(&device)?,
                    identity_signing_key: keys.identity_signing_key,
                    identity_agreement_key: keys.identity_agreement_key,
                    identity_signature: keys.identity_signature,
                    signed_prekey: keys.signed_prekey,
                    one_time_prekey,
                });
            }
            Ok(bundles)
        })
        .await
    }

    async fn one_time_count(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<usize> {
        let (tenant, user, device) = (tenant.clone(), user.clone(), device.clone());
        self.read(move |c| pool_size(c, tenant.as_str(), user.as_str(), device.as_str()))
            .await
    }

    async fn remove_device(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<bool> {
        let (tenant, user, device) = (tenant.clone(), user.clone(), device.clone());
        self.write(move |c| {
            let p = params![tenant.as_str(), user.as_str(), device.as_str()];
            let n = c
                .prepare_cached(
                    "DELETE FROM devices WHERE tenant = ?1 AND user = ?2 AND device = ?3",
                )
                .and_then(|mut s| s.execute(p))
                .ctx("remove device")?;
            c.prepare_cached(
                "DELETE FROM one_time_prekeys WHERE tenant = ?1 AND user = ?2 AND device = ?3",
            )
            .and_then(|mut s| s.execute(p))
            .ctx("remove device")?;
            Ok(n > 0)
        })
        .await
    }
}
