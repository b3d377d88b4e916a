use std::time::Duration;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::{Presence, PresenceStatus};
use caas_core::ports::{PresenceChange, PresenceStore};
use caas_core::time::Timestamp;

use super::lua::PRESENCE_SCRIPT;
use super::{Redis, ceil_millis, corrupt, parse_u64};

/// Presence per device in Redis, one hash per user: `d:<device>` holds the
/// device's status and the time its report runs out, `seen` the latest report
/// of any device. Expiry is decided against the caller's clock (as every
/// presence store does), on read and by the write script, which also drops the
/// devices whose time has passed; the hash itself expires
/// [`super::RedisConfig::presence_retention`] after the user's last report.
#[derive(Debug, Clone)]
pub struct RedisPresenceStore {
    redis: Redis,
}

fn rank(s: PresenceStatus) -> u8 {
    match s {
        PresenceStatus::Offline => 0,
        PresenceStatus::Away => 1,
        PresenceStatus::Online => 2,
    }
}

fn status(rank: u8) -> Option<PresenceStatus> {
    match rank {
        0 => Some(PresenceStatus::Offline),
        1 => Some(PresenceStatus::Away),
        2 => Some(PresenceStatus::Online),
        _ => None,
    }
}

/// The aggregate of one user's hash at `now`; fields this adapter did not
/// write are ignored.
fn aggregate(user: &UserId, fields: &[(String, String)], now: Timestamp) -> Presence {
    let mut best = PresenceStatus::Offline;
    let mut last_seen = None;
    for (f, v) in fields {
        if f == "seen" {
            last_seen = parse_u64(v).map(Timestamp::from_nanos);
        } else if f.starts_with("d:")
            && let Some((r, until)) = v.split_once(':')
            && let (Some(s), Some(until)) =
                (r.parse::<u8>().ok().and_then(status), parse_u64(until))
            && until > now.as_nanos()
        {
            best = best.max(s);
        }
    }
    Presence {
        user: user.clone(),
        status: best,
        last_seen,
    }
}

impl RedisPresenceStore {
    pub(super) fn new(redis: Redis) -> Self {
        Self { redis }
    }

    async fn change(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        set: Option<(PresenceStatus, Timestamp)>,
        now: Timestamp,
    ) -> Result<PresenceChange> {
        let mut conn = self.redis.conn();
        let mut call = PRESENCE_SCRIPT.key(self.redis.keys().presence(tenant, user));
        let (op, r, until) = match set {
            Some((s, until)) => ("set", rank(s), until.as_nanos()),
            None => ("clear", 0, 0),
        };
        call.arg(op)
            .arg(now.as_nanos().to_string())
            .arg(format!("d:{device}"))
            .arg(r)
            .arg(until.to_string())
            .arg(ceil_millis(self.redis.config().presence_retention));
        let (before, after, seen) = self
            .redis
            .run("presence update", async move {
                call.invoke_async::<(u8, u8, String)>(&mut conn).await
            })
            .await?;
        let bad = || corrupt("presence reply", format!("{before} {after} {seen}"));
        Ok(PresenceChange {
            before: status(before).ok_or_else(bad)?,
            after: Presence {
                user: user.clone(),
                status: status(after).ok_or_else(bad)?,
                last_seen: Some(Timestamp::from_nanos(parse_u64(&seen).ok_or_else(bad)?)),
            },
        })
    }
}

#[async_trait]
impl PresenceStore for RedisPresenceStore {
    async fn set(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        status: PresenceStatus,
        now: Timestamp,
        ttl: Duration,
    ) -> Result<PresenceChange> {
        self.change(tenant, user, device, Some((status, now.plus(ttl))), now)
            .await
    }

    async fn clear(
        &self,
        tenant: &TenantId,
        user: &UserId,
        device: &DeviceId,
        now: Timestamp,
    ) -> Result<PresenceChange> {
        self.change(tenant, user, device, None, now).await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        users: &[UserId],
        now: Timestamp,
    ) -> Result<Vec<Presence>> {
        if users.is_empty() {
            return Ok(Vec::new());
        }
        // One round trip for every user.
        let mut pipe = redis::pipe();
        for u in users {
            pipe.cmd("HGETALL")
                .arg(self.redis.keys().presence(tenant, u));
        }
        let mut conn = self.redis.conn();
        let hashes: Vec<Vec<(String, String)>> = self
            .redis
            .run(
                "presence read",
                async move { pipe.query_async(&mut conn).await },
            )
            .await?;
        if hashes.len() != users.len() {
            return Err(corrupt(
                "presence read",
                format!("{} replies for {} users", hashes.len(), users.len()),
            ));
        }
        Ok(users
            .iter()
            .zip(&hashes)
            .map(|(u, h)| aggregate(u, h, now))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_fields_are_ignored() {
        let u = UserId::parse("u").unwrap();
        let f = |a: &str, b: &str| (a.to_owned(), b.to_owned());
        let p = aggregate(
            &u,
            &[
                f("d:a", "9:999999999999999999"),
                f("d:b", "2:x"),
                f("d:c", "1:50"),
                f("d:d", "2:10"),
                f("junk", "2:99"),
                f("seen", "nope"),
            ],
            Timestamp::from_nanos(20),
        );
        assert_eq!((p.status, p.last_seen), (PresenceStatus::Away, None));
    }
}
