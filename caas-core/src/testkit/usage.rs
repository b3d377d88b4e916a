//! Contract of [`UsageStore`](crate::ports::UsageStore).

use std::sync::Arc;

use crate::ports::{Backends, UsageRow};
use crate::testkit::{tenant, user};

fn d(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(m, v)| ((*m).to_owned(), *v)).collect()
}

fn row(day: u32, meter: &str, value: i64) -> UsageRow {
    UsageRow {
        day,
        meter: meter.into(),
        value,
    }
}

/// Counters add up per day and meter, peaks keep the highest value, and a
/// read returns the days asked for in day then meter order, in one tenant.
pub async fn counters_add_and_peaks_rise(b: Backends) {
    let s = b.usage;
    let tn = tenant();
    s.add(&tn, 20_000, &d(&[("messages", 3), ("api_calls", 10)]))
        .await
        .unwrap();
    s.add(&tn, 20_000, &d(&[("messages", 2), ("media_bytes", 100)]))
        .await
        .unwrap();
    s.add(&tn, 20_001, &d(&[("messages", 1), ("media_bytes", -40)]))
        .await
        .unwrap();
    s.raise(&tn, 20_000, &d(&[("connections", 5)]))
        .await
        .unwrap();
    s.raise(&tn, 20_000, &d(&[("connections", 3)]))
        .await
        .unwrap();
    s.raise(&tn, 20_001, &d(&[("connections", 2)]))
        .await
        .unwrap();
    s.add(&tn, 19_999, &d(&[("messages", 7)])).await.unwrap();
    s.add(&tn, 20_002, &d(&[("messages", 9)])).await.unwrap();

    assert_eq!(
        s.read(&tn, 20_000, 20_001).await.unwrap(),
        vec![
            row(20_000, "api_calls", 10),
            row(20_000, "connections", 5),
            row(20_000, "media_bytes", 100),
            row(20_000, "messages", 5),
            row(20_001, "connections", 2),
            row(20_001, "media_bytes", -40),
            row(20_001, "messages", 1),
        ]
    );
    assert!(s.read(&tenant(), 0, u32::MAX).await.unwrap().is_empty());
    assert_eq!(s.read(&tn, 0, u32::MAX).await.unwrap().len(), 9);
}

/// A user counts once per month, per tenant.
pub async fn active_users_count_once_a_month(b: Backends) {
    let s = b.usage;
    let tn = tenant();
    assert!(s.mark_active(&tn, 202_612, &user("alice")).await.unwrap());
    assert!(!s.mark_active(&tn, 202_612, &user("alice")).await.unwrap());
    assert!(s.mark_active(&tn, 202_612, &user("bob")).await.unwrap());
    assert!(s.mark_active(&tn, 202_701, &user("alice")).await.unwrap());
    assert_eq!(s.active_users(&tn, 202_612).await.unwrap(), 2);
    assert_eq!(s.active_users(&tn, 202_701).await.unwrap(), 1);
    assert_eq!(s.active_users(&tn, 202_611).await.unwrap(), 0);
    assert_eq!(s.active_users(&tenant(), 202_612).await.unwrap(), 0);
}

/// Concurrent adds and peaks from many writers all count.
pub async fn concurrent_writers_all_count(b: Backends) {
    let s = b.usage;
    let tn = tenant();
    let mut hs = Vec::new();
    for i in 0..16_i64 {
        let (s, tn) = (Arc::clone(&s), tn.clone());
        hs.push(tokio::spawn(async move {
            s.add(&tn, 30_000, &d(&[("messages", 1), ("api_calls", 2)]))
                .await
                .unwrap();
            s.raise(&tn, 30_000, &d(&[("connections", i)]))
                .await
                .unwrap();
            s.mark_active(&tn, 202_612, &user(&format!("u{i}")))
                .await
                .unwrap();
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(
        s.read(&tn, 30_000, 30_000).await.unwrap(),
        vec![
            row(30_000, "api_calls", 32),
            row(30_000, "connections", 15),
            row(30_000, "messages", 16),
        ]
    );
    assert_eq!(s.active_users(&tn, 202_612).await.unwrap(), 16);
}
