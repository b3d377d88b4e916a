use std::collections::{BTreeMap, VecDeque};
use std::sync::Mutex;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::{DeviceKeys, KeyBundle, OneTimePrekey};
use caas_core::ports::KeyDirectory;

use super::{Map, poisoned};

#[derive(Debug)]
struct Device {
    keys: DeviceKeys,
    pool: VecDeque<OneTimePrekey>,
}

/// The E2EE key directory in memory.
#[derive(Debug, Default)]
pub struct MemoryKeyDirectory {
    users: Mutex<Map<(TenantId, UserId), BTreeMap<DeviceId, Device>>>,
}

#[async_trait]
impl KeyDirectory for MemoryKeyDirectory {
    async fn publish(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        keys: &DeviceKeys,
    ) -> Result<usize> {
        let mut map = self.users.lock().map_err(poisoned)?;
        let devices = map.entry((tenant.clone(), user.clone())).or_default();
        let mut base = keys.clone();
        base.one_time_prekeys.clear();
        let d = devices.entry(device.clone()).or_insert_with(|| Device {
            keys: base.clone(),
            pool: VecDeque::new(),
        });
        d.keys = base;
        for k in &keys.one_time_prekeys {
            if !d.pool.iter().any(|p| p.key_id == k.key_id) {
                d.pool.push_back(k.clone());
            }
        }
        Ok(d.pool.len())
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        user: &UserId,
        take_one_time: bool,
    ) -> Result<Vec<KeyBundle>> {
        let mut map = self.users.lock().map_err(poisoned)?;
        let Some(devices) = map.get_mut(&(tenant.clone(), user.clone())) else {
            return Ok(Vec::new());
        };
        Ok(devices
            .iter_mut()
            .map(|(id, d)| KeyBundle {
                user: user.clone(),
                device: id.clone(),
                identity_signing_key: d.keys.identity_signing_key.clone(),
                identity_agreement_key: d.keys.identity_agreement_key.clone(),
                identity_signature: d.keys.identity_signature.clone(),
                signed_prekey: d.keys.signed_prekey.clone(),
                one_time_prekey: if take_one_time {
                    d.pool.pop_front()
                } else {
                    None
                },
            })
            .collect())
    }

    async fn one_time_count(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<usize> {
        let map = self.users.lock().map_err(poisoned)?;
        Ok(map
            .get(&(tenant.clone(), user.clone()))
            .and_then(|d| d.get(device))
            .map_or(0, |d| d.pool.len()))
    }

    async fn remove_device(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
    ) -> Result<bool> {
        let mut map = self.users.lock().map_err(poisoned)?;
        Ok(map
            .get_mut(&(tenant.clone(), user.clone()))
            .is_some_and(|d| d.remove(device).is_some()))
    }
}
