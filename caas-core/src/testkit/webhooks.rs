//! Contract of [`WebhookStore`](crate::ports::WebhookStore).

use std::sync::Arc;

use crate::ids::{Cursor, TenantId, WebhookId};
use crate::model::{DeadLetter, WebhookEndpoint, WebhookProgress, WebhookSecret};
use crate::ports::Backends;
use crate::testkit::{t, tenant};

/// A fresh endpoint id.
pub fn webhook_id() -> WebhookId {
    WebhookId::generate(t(0))
}

/// An enabled endpoint for every kind, at cursor `at`.
pub fn endpoint(tn: &TenantId, id: &WebhookId, at: u64) -> WebhookEndpoint {
    WebhookEndpoint {
        tenant: tn.clone(),
        id: id.clone(),
        url: "https://hooks.example.com/caas".into(),
        kinds: vec!["*".into()],
        secrets: vec![WebhookSecret {
            secret: "whsec_0123456789abcdef0123456789abcdef".into(),
            created_at: t(1),
            expires_at: None,
        }],
        disabled: false,
        created_at: t(1),
        updated_at: t(1),
        progress: WebhookProgress {
            cursor: Cursor(at),
            ..WebhookProgress::default()
        },
    }
}

fn letter(tn: &TenantId, id: &WebhookId, cursor: u64, name: &str, attempts: u32) -> DeadLetter {
    DeadLetter {
        tenant: tn.clone(),
        webhook_id: id.clone(),
        id: name.into(),
        cursor: Cursor(cursor),
        kind: "message.created".into(),
        attempts,
        last_error: format!("status 500 after {attempts}"),
        failed_at: t(cursor),
    }
}

/// Endpoints round-trip, list by id in their tenant only, update keeps the
/// progress, and delete removes (once).
pub async fn create_update_list_delete(b: Backends) {
    let s = b.webhooks;
    let tn = tenant();
    let (a, z) = (webhook_id(), webhook_id());
    let first = endpoint(&tn, &z, 7);
    s.create(&first).await.unwrap();
    s.create(&endpoint(&tn, &a, 3)).await.unwrap();
    s.create(&endpoint(&tenant(), &webhook_id(), 0))
        .await
        .unwrap();
    assert!(matches!(
        s.create(&endpoint(&tn, &z, 0)).await,
        Err(crate::Error::Conflict { .. })
    ));
    assert_eq!(s.get(&tn, &z).await.unwrap(), Some(first.clone()));
    assert_eq!(s.get(&tenant(), &z).await.unwrap(), None);
    let ids: Vec<_> = s
        .list(&tn)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.id)
        .collect();
    let mut want = vec![a.clone(), z.clone()];
    want.sort();
    assert_eq!(ids, want);

    // The holder moves the cursor; an update changes the configuration only.
    assert!(
        s.claim(&tn, &z, "n1", t(10), t(70))
            .await
            .unwrap()
            .is_some()
    );
    let moved = WebhookProgress {
        cursor: Cursor(9),
        attempts: 2,
        retry_at: Some(t(30)),
        last_error: Some("status 503".into()),
    };
    assert!(s.progress(&tn, &z, "n1", &moved).await.unwrap());
    let mut changed = first.clone();
    changed.url = "https://hooks.example.com/v2".into();
    changed.kinds = vec!["message.created".into(), "push.requested".into()];
    changed.disabled = true;
    changed.updated_at = t(20);
    changed.secrets.insert(
        0,
        WebhookSecret {
            secret: "whsec_fedcba9876543210fedcba9876543210".into(),
            created_at: t(20),
            expires_at: None,
        },
    );
    changed.secrets[1].expires_at = Some(t(100));
    changed.progress = WebhookProgress::default();
    // A change made on a stale read is refused and writes nothing.
    let mut stale = changed.clone();
    stale.url = "https://hooks.example.com/stale".into();
    assert!(matches!(
        s.update(&stale, t(0)).await,
        Err(crate::Error::Conflict { .. })
    ));
    assert_eq!(s.get(&tn, &z).await.unwrap().unwrap().url, first.url);
    s.update(&changed, first.updated_at).await.unwrap();
    // The next change must name the new `updated_at`.
    assert!(matches!(
        s.update(&changed, first.updated_at).await,
        Err(crate::Error::Conflict { .. })
    ));
    let got = s.get(&tn, &z).await.unwrap().unwrap();
    assert_eq!(
        got,
        WebhookEndpoint {
            progress: moved,
            ..changed.clone()
        }
    );
    let mut missing = changed.clone();
    missing.id = webhook_id();
    assert!(matches!(
        s.update(&missing, missing.updated_at).await,
        Err(crate::Error::NotFound { .. })
    ));

    s.dead_letter(&letter(&tn, &z, 4, "4", 3)).await.unwrap();
    assert!(s.delete(&tn, &z).await.unwrap());
    assert!(!s.delete(&tn, &z).await.unwrap());
    assert_eq!(s.get(&tn, &z).await.unwrap(), None);
    assert!(s.dead_letters(&tn, &z, 10).await.unwrap().is_empty());
    // A new endpoint under the old id starts clean.
    s.create(&endpoint(&tn, &z, 0)).await.unwrap();
    assert!(s.dead_letters(&tn, &z, 10).await.unwrap().is_empty());
}

/// `due` lists enabled endpoints whose backoff is over, across tenants.
pub async fn due_skips_disabled_and_backing_off(b: Backends) {
    let s = b.webhooks;
    let tn = tenant();
    let (ready, off, later) = (webhook_id(), webhook_id(), webhook_id());
    s.create(&endpoint(&tn, &ready, 0)).await.unwrap();
    let mut disabled = endpoint(&tn, &off, 0);
    disabled.disabled = true;
    s.create(&disabled).await.unwrap();
    s.create(&endpoint(&tn, &later, 0)).await.unwrap();
    assert!(
        s.claim(&tn, &later, "n1", t(10), t(70))
            .await
            .unwrap()
            .is_some()
    );
    let backoff = WebhookProgress {
        attempts: 1,
        retry_at: Some(t(40)),
        ..WebhookProgress::default()
    };
    assert!(s.progress(&tn, &later, "n1", &backoff).await.unwrap());

    let mine = |v: Vec<(TenantId, WebhookId)>| {
        let mut v: Vec<WebhookId> = v
            .into_iter()
            .filter(|(t, _)| *t == tn)
            .map(|(_, i)| i)
            .collect();
        v.sort();
        v
    };
    // Other cases' endpoints may share the store: read enough to see ours.
    assert_eq!(
        mine(s.due(t(20), None, 100_000).await.unwrap()),
        vec![ready.clone()]
    );
    let mut both = vec![ready.clone(), later.clone()];
    both.sort();
    assert_eq!(mine(s.due(t(40), None, 100_000).await.unwrap()), both);
    assert_eq!(s.due(t(40), None, 1).await.unwrap().len(), 1);
    // Pages continue after the last key of the one before, in key order.
    let first = (tn.clone(), both[0].clone());
    let rest = s.due(t(40), Some(&first), 100_000).await.unwrap();
    assert!(rest.iter().all(|k| *k > first));
    assert_eq!(mine(rest), vec![both[1].clone()]);
    let mut all = Vec::new();
    let mut after: Option<(TenantId, WebhookId)> = None;
    loop {
        let page = s.due(t(40), after.as_ref(), 1).await.unwrap();
        let Some(last) = page.last().cloned() else {
            break;
        };
        all.extend(page);
        after = Some(last);
    }
    assert!(all.windows(2).all(|w| w[0] < w[1]));
    assert_eq!(mine(all), both);
}

/// One holder at a time: a lease is extended by its holder, refused to others
/// until it runs out, and only the holder records progress.
pub async fn one_holder_at_a_time(b: Backends) {
    let s = b.webhooks;
    let tn = tenant();
    let id = webhook_id();
    s.create(&endpoint(&tn, &id, 5)).await.unwrap();
    let got = s
        .claim(&tn, &id, "n1", t(10), t(70))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.progress.cursor, Cursor(5));
    assert!(
        s.claim(&tn, &id, "n2", t(20), t(80))
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        s.claim(&tn, &id, "n1", t(30), t(90))
            .await
            .unwrap()
            .is_some()
    );
    // n1 extended to 90: at 80 it is still n1's.
    assert!(
        s.claim(&tn, &id, "n2", t(80), t(140))
            .await
            .unwrap()
            .is_none()
    );
    let step = WebhookProgress {
        cursor: Cursor(6),
        ..WebhookProgress::default()
    };
    assert!(!s.progress(&tn, &id, "n2", &step).await.unwrap());
    assert!(s.progress(&tn, &id, "n1", &step).await.unwrap());
    // Ran out: n2 takes over where n1 stopped, and n1 can no longer write.
    let taken = s
        .claim(&tn, &id, "n2", t(90), t(150))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(taken.progress.cursor, Cursor(6));
    let late = WebhookProgress {
        cursor: Cursor(7),
        ..WebhookProgress::default()
    };
    assert!(!s.progress(&tn, &id, "n1", &late).await.unwrap());
    assert_eq!(
        s.get(&tn, &id).await.unwrap().unwrap().progress.cursor,
        Cursor(6)
    );
    assert!(
        s.claim(&tn, &webhook_id(), "n1", t(90), t(150))
            .await
            .unwrap()
            .is_none()
    );
}

/// Dead letters list oldest cursor first, a repeat replaces, removal is once.
pub async fn dead_letters_keep_and_replace(b: Backends) {
    let s = b.webhooks;
    let tn = tenant();
    let (id, other) = (webhook_id(), webhook_id());
    s.create(&endpoint(&tn, &id, 0)).await.unwrap();
    s.create(&endpoint(&tn, &other, 0)).await.unwrap();
    s.dead_letter(&letter(&tn, &id, 9, "9", 3)).await.unwrap();
    s.dead_letter(&letter(&tn, &id, 4, "4.push", 3))
        .await
        .unwrap();
    s.dead_letter(&letter(&tn, &id, 4, "4", 3)).await.unwrap();
    s.dead_letter(&letter(&tn, &other, 1, "1", 3))
        .await
        .unwrap();
    s.dead_letter(&letter(&tn, &id, 9, "9", 5)).await.unwrap();
    let got = s.dead_letters(&tn, &id, 10).await.unwrap();
    assert_eq!(
        got,
        vec![
            letter(&tn, &id, 4, "4", 3),
            letter(&tn, &id, 4, "4.push", 3),
            letter(&tn, &id, 9, "9", 5),
        ]
    );
    // The id names the letter: a repeat under another cursor replaces it.
    s.dead_letter(&letter(&tn, &id, 2, "9", 6)).await.unwrap();
    let got = s.dead_letters(&tn, &id, 10).await.unwrap();
    assert_eq!(got[0], letter(&tn, &id, 2, "9", 6));
    assert_eq!(got.len(), 3);
    s.dead_letter(&letter(&tn, &id, 9, "9", 5)).await.unwrap();
    assert_eq!(s.dead_letters(&tn, &id, 2).await.unwrap().len(), 2);
    assert!(s.remove_dead_letter(&tn, &id, "4").await.unwrap());
    assert!(!s.remove_dead_letter(&tn, &id, "4").await.unwrap());
    assert!(!s.remove_dead_letter(&tn, &other, "9").await.unwrap());
    assert_eq!(s.dead_letters(&tn, &id, 10).await.unwrap().len(), 2);
    assert_eq!(s.dead_letters(&tn, &other, 10).await.unwrap().len(), 1);
    assert!(s.dead_letters(&tenant(), &id, 10).await.unwrap().is_empty());
}

/// Of many nodes claiming a free endpoint at once, exactly one gets it.
pub async fn concurrent_claims_have_one_winner(b: Backends) {
    let s = b.webhooks;
    let tn = tenant();
    let id = webhook_id();
    s.create(&endpoint(&tn, &id, 0)).await.unwrap();
    let mut hs = Vec::new();
    for i in 0..8 {
        let (s, tn, id) = (Arc::clone(&s), tn.clone(), id.clone());
        hs.push(tokio::spawn(async move {
            s.claim(&tn, &id, &format!("n{i}"), t(10), t(70))
                .await
                .unwrap()
                .is_some()
        }));
    }
    let mut won = 0;
    for h in hs {
        if h.await.unwrap() {
            won += 1;
        }
    }
    assert_eq!(won, 1);
}
