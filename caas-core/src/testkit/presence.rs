//! Contract of [`PresenceStore`](crate::ports::PresenceStore).

use std::time::Duration;

use crate::ids::DeviceId;
use crate::model::PresenceStatus;
use crate::ports::Backends;
use crate::testkit::{t, tenant, user};

fn dev(s: &str) -> DeviceId {
    DeviceId::parse(s).unwrap()
}

/// The best unexpired device wins; expiry and clear take devices away.
pub async fn aggregates_devices_with_expiry(b: Backends) {
    let s = b.presence;
    let tn = tenant();
    let a = user("alice");
    let ttl = Duration::from_secs(60);
    let c = s
        .set(&tn, &a, &dev("phone"), PresenceStatus::Away, t(0), ttl)
        .await
        .unwrap();
    assert!(c.changed());
    assert_eq!(c.before, PresenceStatus::Offline);
    let c = s
        .set(&tn, &a, &dev("laptop"), PresenceStatus::Online, t(10), ttl)
        .await
        .unwrap();
    assert_eq!(
        (c.before, c.after.status),
        (PresenceStatus::Away, PresenceStatus::Online)
    );
    assert_eq!(c.after.last_seen, Some(t(10)));
    // At t=65 the phone expired, the laptop (until t=70) is still online.
    let p = s.get(&tn, std::slice::from_ref(&a), t(65)).await.unwrap();
    assert_eq!(p[0].status, PresenceStatus::Online);
    // At t=71 both expired: offline, but last seen is kept.
    let p = s
        .get(&tn, &[a.clone(), user("nobody")], t(71))
        .await
        .unwrap();
    assert_eq!(
        (p[0].status, p[0].last_seen),
        (PresenceStatus::Offline, Some(t(10)))
    );
    assert_eq!(
        (p[1].user.as_str(), p[1].status, p[1].last_seen),
        ("nobody", PresenceStatus::Offline, None)
    );
    s.set(&tn, &a, &dev("laptop"), PresenceStatus::Online, t(80), ttl)
        .await
        .unwrap();
    let c = s.clear(&tn, &a, &dev("laptop"), t(90)).await.unwrap();
    assert_eq!(
        (c.before, c.after.status, c.after.last_seen),
        (PresenceStatus::Online, PresenceStatus::Offline, Some(t(90)))
    );
    assert_eq!(
        s.get(&tenant(), &[a], t(90)).await.unwrap()[0].last_seen,
        None
    );
}

/// A heartbeat with the same status is not a change.
pub async fn heartbeat_is_not_a_change(b: Backends) {
    let s = b.presence;
    let tn = tenant();
    let a = user("alice");
    let ttl = Duration::from_secs(30);
    assert!(
        s.set(&tn, &a, &dev("d"), PresenceStatus::Online, t(0), ttl)
            .await
            .unwrap()
            .changed()
    );
    assert!(
        !s.set(&tn, &a, &dev("d"), PresenceStatus::Online, t(20), ttl)
            .await
            .unwrap()
            .changed()
    );
    assert_eq!(
        s.get(&tn, &[a], t(45)).await.unwrap()[0].status,
        PresenceStatus::Online
    );
}
