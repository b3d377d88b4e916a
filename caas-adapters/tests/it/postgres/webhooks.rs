//! Webhooks beyond the contract: what the columns cannot hold exactly, an
//! update keeping the first `created_at`, and dead letters never outliving
//! their endpoint, even when kept while it is being deleted.

use caas_core::ids::Cursor;
use caas_core::model::{DeadLetter, WebhookEndpoint, WebhookProgress};
use caas_core::ports::WebhookStore;
use caas_core::testkit::webhooks::{endpoint, webhook_id};
use caas_core::testkit::{t, tenant};
use caas_core::time::Timestamp;

use super::support;

fn letter(e: &WebhookEndpoint, name: &str) -> DeadLetter {
    DeadLetter {
        tenant: e.tenant.clone(),
        webhook_id: e.id.clone(),
        id: name.into(),
        cursor: Cursor(3),
        kind: "message.created".into(),
        attempts: 5,
        last_error: "status 500".into(),
        failed_at: t(3),
    }
}

/// Times past i64::MAX nanoseconds are kept exactly in the progress (the
/// `retry_at` column saturates), and an update keeps the first `created_at`
/// whatever it is given.
#[tokio::test]
async fn the_documents_keep_what_the_columns_cannot() {
    let Some(store) = support::store().await else {
        return;
    };
    let (tn, id) = (tenant(), webhook_id());
    let first = endpoint(&tn, &id, 3);
    store.create(&first).await.unwrap();
    let far = WebhookProgress {
        cursor: Cursor(4),
        attempts: 1,
        retry_at: Some(Timestamp::from_nanos(u64::MAX)),
        last_error: Some("status 500".into()),
    };
    let until = Timestamp::from_nanos(u64::MAX);
    assert!(
        store
            .claim(&tn, &id, "n1", t(1), until)
            .await
            .unwrap()
            .is_some()
    );
    assert!(store.progress(&tn, &id, "n1", &far).await.unwrap());
    // Backing off to the end of time, and leased as long.
    let later = Timestamp::from_secs(1 << 32);
    let due = store.due(later, None, 100_000).await.unwrap();
    assert!(!due.contains(&(tn.clone(), id.clone())));
    assert!(
        store
            .claim(&tn, &id, "n2", later, later)
            .await
            .unwrap()
            .is_none()
    );
    store
        .update(
            &WebhookEndpoint {
                created_at: t(99),
                url: "https://hooks.example.com/v2".into(),
                ..first.clone()
            },
            first.updated_at,
        )
        .await
        .unwrap();
    let got = store.get(&tn, &id).await.unwrap().unwrap();
    assert_eq!(got.created_at, first.created_at);
    assert_eq!(got.url, "https://hooks.example.com/v2");
    assert_eq!(got.progress, far);
}

/// A letter for an endpoint that does not exist is dropped, and one kept
/// while its endpoint is deleted is either refused or deleted with it: a new
/// endpoint under the old id never finds it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_never_outlive_their_endpoint() {
    let Some(store) = support::store().await else {
        return;
    };
    let tn = tenant();
    let never = endpoint(&tn, &webhook_id(), 0);
    store.dead_letter(&letter(&never, "1")).await.unwrap();
    store.create(&never).await.unwrap();
    assert!(
        store
            .dead_letters(&tn, &never.id, 10)
            .await
            .unwrap()
            .is_empty()
    );
    for round in 0..40 {
        let e = endpoint(&tn, &webhook_id(), 0);
        store.create(&e).await.unwrap();
        let (a, b) = (store.clone(), store.clone());
        let (l, e2) = (letter(&e, &format!("{round}")), e.clone());
        let kept = tokio::spawn(async move { a.dead_letter(&l).await });
        let deleted = tokio::spawn(async move { b.delete(&e2.tenant, &e2.id).await });
        kept.await.unwrap().unwrap();
        assert!(deleted.await.unwrap().unwrap());
        store.create(&e).await.unwrap();
        assert!(
            store.dead_letters(&tn, &e.id, 10).await.unwrap().is_empty(),
            "round {round}: a letter outlived its endpoint"
        );
    }
}
