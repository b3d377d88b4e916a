use std::sync::Mutex;
use std::time::Duration;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::{Presence, PresenceStatus};
use caas_core::ports::{PresenceChange, PresenceStore};
use caas_core::time::Timestamp;

use super::{Map, poisoned};

#[derive(Debug, Default)]
struct UserPresence {
    devices: Map<DeviceId, (PresenceStatus, Timestamp)>,
    last_seen: Option<Timestamp>,
}

impl UserPresence {
    fn status(&self, now: Timestamp) -> PresenceStatus {
        self.devices
            .values()
            .filter(|(_, until)| *until > now)
            .map(|(s, _)| *s)
            .max()
            .unwrap_or(PresenceStatus::Offline)
    }
}

/// Presence in memory, with per-device expiry evaluated at read time.
#[derive(Debug, Default)]
pub struct MemoryPresenceStore {
    users: Mutex<Map<(TenantId, UserId), UserPresence>>,
}

impl MemoryPresenceStore {
    fn update(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now: Timestamp,
        f: impl FnOnce(&mut UserPresence),
    ) -> Result<PresenceChange> {
        let mut map = self.users.lock().map_err(poisoned)?;
        let p = map.entry((tenant.clone(), user.clone())).or_default();
        let before = p.status(now);
        f(p);
        p.last_seen = Some(p.last_seen.map_or(now, |l| l.max(now)));
        p.devices.retain(|_, (_, until)| *until > now);
        Ok(PresenceChange {
            before,
            after: Presence {
                user: user.clone(),
                status: p.status(now),
                last_seen: p.last_seen,
            },
        })
    }
}

#[async_trait]
impl PresenceStore for MemoryPresenceStore {
    async fn set(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        status: PresenceStatus,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<PresenceChange> {
        self.update(tenant, user, now, |p| {
            p.devices.insert(device.clone(), (status, now.plus(ttl)));
        })
    }

    async fn clear(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<PresenceChange> {
        self.update(tenant, user, now, |p| {
            p.devices.remove(device);
        })
    }

    async fn get(
        &self,
        tenant: &TenantId,
        users: &[UserId],
        now: Timestamp,
    ) -> Result<Vec<Presence>> {
        let map = self.users.lock().map_err(poisoned)?;
        Ok(users
            .iter()
            .map(|u| match map.get(&(tenant.clone(), u.clone())) {
                Some(p) => Presence {
                    user: u.clone(),
                    status: p.status(now),
                    last_seen: p.last_seen,
                },
                None => Presence {
                    user: u.clone(),
                    status: PresenceStatus::Offline,
                    last_seen: None,
                },
            })
            .collect())
    }
}
