//! Usage meters beyond the contract: what one statement per call must handle
//! (a meter named twice, sums past bigint's range) and two nodes adding to the
//! same meters in opposite orders at once.

use caas_core::ports::UsageStore;
use caas_core::testkit::tenant;

use super::support;

fn d(pairs: &[(&str, i64)]) -> Vec<(String, i64)> {
    pairs.iter().map(|(m, v)| ((*m).to_owned(), *v)).collect()
}

fn values(rows: Vec<caas_core::ports::UsageRow>) -> Vec<(String, i64)> {
    rows.into_iter().map(|r| (r.meter, r.value)).collect()
}

/// A meter named twice in one call counts both times (one statement may not
/// update a row twice, so the store merges them); sums saturate at the
/// bounds of i64, as in memory, rather than fail the call.
#[tokio::test]
async fn repeated_meters_merge_and_sums_saturate() {
    let Some(store) = support::store().await else {
        return;
    };
    let tn = tenant();
    store
        .add(&tn, 5, &d(&[("messages", 2), ("messages", 3)]))
        .await
        .unwrap();
    store
        .raise(&tn, 5, &d(&[("peak", 4), ("peak", 9), ("peak", 1)]))
        .await
        .unwrap();
    store
        .add(&tn, 6, &d(&[("up", i64::MAX - 1), ("down", i64::MIN + 1)]))
        .await
        .unwrap();
    store
        .add(&tn, 6, &d(&[("up", 5), ("down", -5)]))
        .await
        .unwrap();
    store.add(&tn, 6, &[]).await.unwrap();
    store.raise(&tn, 6, &[]).await.unwrap();
    assert_eq!(
        values(store.read(&tn, 5, 6).await.unwrap()),
        d(&[
            ("messages", 5),
            ("peak", 9),
            ("down", i64::MIN),
            ("up", i64::MAX)
        ])
    );
}

/// Two nodes each adding to the same twenty meters, one listing them in
/// reverse: every call lands once and none deadlocks (the store sorts a
/// call's meters, so both lock rows in one order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_nodes_adding_in_opposite_orders_all_count() {
    let Some(a) = support::store().await else {
        return;
    };
    let Some(b) = support::store().await else {
        return;
    };
    let tn = tenant();
    let meters: Vec<String> = (0..20).map(|i| format!("m{i:02}")).collect();
    let forward: Vec<(String, i64)> = meters.iter().map(|m| (m.clone(), 1)).collect();
    let backward: Vec<(String, i64)> = forward.iter().rev().cloned().collect();
    let mut tasks = Vec::new();
    for i in 0..16 {
        let (store, deltas, tn) = if i % 2 == 0 {
            (a.clone(), forward.clone(), tn.clone())
        } else {
            (b.clone(), backward.clone(), tn.clone())
        };
        tasks.push(tokio::spawn(async move {
            store.add(&tn, 9, &deltas).await.unwrap();
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let rows = a.read(&tn, 9, 9).await.unwrap();
    assert_eq!(rows.len(), 20);
    assert!(rows.iter().all(|r| r.value == 16), "{rows:?}");
}
