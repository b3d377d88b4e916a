use async_trait::async_trait;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::{DeviceKeys, KeyBundle, OneTimePrekey};
use caas_core::ports::KeyDirectory;
use caas_core::{Error, Result};

use super::PostgresStore;
use super::codec::{from_json, get, id, to_json, to_u64};
use super::pool::Lease;

async fn pool_size(c: &mut Lease<'_>, tenant: &str, user: &str, device: &str) -> Result<usize> {
    let row = c
        .query_one(
            "SELECT count(*) FROM one_time_prekeys WHERE tenant = $1 AND uid = $2 AND device = $3",
            &[&tenant, &user, &device],
            "count one-time prekeys",
        )
        .await?;
    let n: i64 = get(&row, 0)?;
    Ok(usize::try_from(n).unwrap_or(0))
}

#[async_trait]
impl KeyDirectory for PostgresStore {
    async fn publish(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        keys: &DeviceKeys,
    ) -> Result<usize> {
        let mut base = keys.clone();
        let one_time = std::mem::take(&mut base.one_time_prekeys);
        let doc = to_json(&base, "device keys")?;
        let key_ids: Vec<i64> = one_time.iter().map(|k| i64::from(k.key_id)).collect();
        let publics: Vec<&str> = one_time.iter().map(|k| k.public_key.as_str()).collect();
        let (t, u, d) = (tenant.as_str(), user.as_str(), device.as_str());
        let mut c = self.conn().await?;
        c.begin().await?;
        let outcome = async {
            c.execute(
                "INSERT INTO devices (tenant, uid, device, doc) VALUES ($1, $2, $3, $4)
                 ON CONFLICT (tenant, uid, device) DO UPDATE SET doc = excluded.doc",
                &[&t, &u, &d, &doc],
                "store device keys",
            )
            .await?;
            // In the order given, so the pool hands them out first published, first out.
            c.execute(
                "INSERT INTO one_time_prekeys (tenant, uid, device, key_id, public_key)
                 SELECT $1, $2, $3, k.key_id, k.public_key
                 FROM unnest($4::bigint[], $5::text[]) WITH ORDINALITY AS k(key_id, public_key, i)
                 ORDER BY k.i
                 ON CONFLICT DO NOTHING",
                &[&t, &u, &d, &key_ids, &publics],
                "store one-time prekeys",
            )
            .await?;
            pool_size(&mut c, t, u, d).await
        }
        .await;
        c.finish(outcome).await
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        user: &UserId,
        take_one_time: bool,
    ) -> Result<Vec<KeyBundle>> {
        let (t, u) = (tenant.as_str(), user.as_str());
        let mut c = self.conn().await?;
        c.begin().await?;
        let outcome = async {
            let devices = c
                .query(
                    "SELECT device, doc FROM devices WHERE tenant = $1 AND uid = $2 ORDER BY device",
                    &[&t, &u],
                    "read devices",
                )
                .await?;
            let mut bundles = Vec::with_capacity(devices.len());
            for row in &devices {
                let device: String = get(row, 0)?;
                let keys: DeviceKeys = from_json(&get::<String>(row, 1)?, "device keys")?;
                // SKIP LOCKED: concurrent claims each take a different key, and
                // a key is deleted by exactly one of them.
                let taken = if take_one_time {
                    c.query_opt(
                        "DELETE FROM one_time_prekeys WHERE id = (
                             SELECT id FROM one_time_prekeys
                             WHERE tenant = $1 AND uid = $2 AND device = $3
                             ORDER BY id LIMIT 1 FOR UPDATE SKIP LOCKED
                         ) RETURNING key_id, public_key",
                        &[&t, &u, &device],
                        "take one-time prekey",
                    )
                    .await?
                } else {
                    None
                };
                let one_time_prekey = match taken {
                    Some(k) => {
                        let key_id = u32::try_from(to_u64(get(&k, 0)?, "key_id")?).map_err(|_| {
                            Error::internal("postgres: stored key_id out of range")
                        })?;
                        Some(OneTimePrekey {
                            key_id,
                            public_key: get(&k, 1)?,
                        })
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
        }
        .await;
        c.finish(outcome).await
    }

    async fn one_time_count(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<usize> {
        let mut c = self.conn().await?;
        pool_size(&mut c, tenant.as_str(), user.as_str(), device.as_str()).await
    }

    async fn remove_device(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<bool> {
        let row = self
            .conn()
            .await?
            .query_one(
                "WITH d AS (
                     DELETE FROM devices WHERE tenant = $1 AND uid = $2 AND device = $3 RETURNING 1
                 ), k AS (
                     DELETE FROM one_time_prekeys WHERE tenant = $1 AND uid = $2 AND device = $3
                 )
                 SELECT EXISTS (SELECT 1 FROM d)",
                &[&tenant.as_str(), &user.as_str(), &device.as_str()],
                "remove device",
            )
            .await?;
        get(&row, 0)
    }
}
