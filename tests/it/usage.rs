//! Usage meters and plan quotas through the public service API, on every
//! backend set.

use caas::Error;
use caas::core::model::{TenantSettings, UsageQuotas};
use caas::core::service::NewUpload;

use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden};

on_every_set!(async
    meters_count_messages_bytes_calls_and_active_users,
    quotas_refuse_past_the_plan_and_warn_near_it,
    usage_ranges_are_checked,
);

async fn meters_count_messages_bytes_calls_and_active_users(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let conv = w.group("alice", &["bob"]).await;
    for (i, body) in ["hello", "world", "again"].iter().enumerate() {
        w.send("alice", &conv, &format!("k{i}"), body)
            .await
            .unwrap();
    }
    w.send("bob", &conv, "b0", "hi").await.unwrap();
    // A retry is not a new message.
    w.send("bob", &conv, "b0", "hi").await.unwrap();
    let t = w
        .caas
        .request_upload(
            &w.user("alice"),
            NewUpload {
                conversation_id: conv.clone(),
                content_type: "text/plain".into(),
                size: 5,
                sha256: None,
                name: None,
            },
        )
        .await
        .unwrap();
    let (path, query) = t.upload_url.split_once('?').unwrap();
    w.caas
        .put_by_url(path, query, Some("text/plain"), b"hello".to_vec())
        .await
        .unwrap();
    w.caas
        .complete_upload(&w.user("alice"), &t.media.id)
        .await
        .unwrap();

    let u = w.caas.usage(&w.server(), None, None).await.unwrap();
    assert_eq!(u.totals["messages"], 4, "{u:?}");
    assert_eq!(u.totals["storage_bytes"], 17);
    assert_eq!(u.totals["media_bytes"], 5);
    assert!(u.totals["api_calls"] >= 8, "{u:?}");
    assert_eq!(
        u.active_users.values().copied().collect::<Vec<_>>(),
        vec![2]
    );
    assert_eq!(u.days.len(), 1);
    assert_eq!(u.days[0].day, u.to);
    assert_eq!(u.days[0].meters["messages"], 4);

    // Deleting the upload gives its bytes back; carol's first call makes her active.
    w.caas
        .delete_media(&w.user("alice"), &t.media.id)
        .await
        .unwrap();
    w.caas
        .list_conversations(&w.user("carol"), 10, None)
        .await
        .unwrap();
    let u = w.caas.usage(&w.server(), None, None).await.unwrap();
    assert_eq!(u.totals["media_bytes"], 0);
    assert_eq!(
        u.active_users.values().copied().collect::<Vec<_>>(),
        vec![3]
    );

    // Another tenant's meters are its own; users do not read them.
    let other = w.add_tenant(&[]).await;
    let theirs = w
        .caas
        .usage(&caas::Principal::tenant_server(other), None, None)
        .await
        .unwrap();
    assert_eq!(theirs.totals.get("messages"), None, "{theirs:?}");
    forbidden(
        w.caas.usage(&w.user("alice"), None, None).await,
        "default-deny",
    );
}

async fn quotas_refuse_past_the_plan_and_warn_near_it(set: Set) {
    let w = World::with_settings(
        set,
        &["alice"],
        TenantSettings {
            quotas: UsageQuotas {
                messages_per_month: Some(3),
                media_bytes: Some(4),
            },
            ..TenantSettings::default()
        },
    )
    .await;
    let conv = w.group("alice", &[]).await;
    for i in 0..3 {
        w.send("alice", &conv, &format!("k{i}"), "hi")
            .await
            .unwrap();
    }
    match w.send("alice", &conv, "k3", "one too many").await {
        Err(Error::QuotaExceeded { quota }) => {
            assert!(quota.starts_with("messages_per_month"), "{quota}");
        }
        other => panic!("expected quota_exceeded, got {other:?}"),
    }
    // Counted ones reach the store and still count.
    w.caas.flush_usage().await.unwrap();
    assert!(matches!(
        w.send("alice", &conv, "k4", "still no").await,
        Err(Error::QuotaExceeded { .. })
    ));
    let upload = w
        .caas
        .request_upload(
            &w.user("alice"),
            NewUpload {
                conversation_id: conv.clone(),
                content_type: "text/plain".into(),
                size: 5,
                sha256: None,
                name: None,
            },
        )
        .await;
    assert!(
        matches!(upload, Err(Error::QuotaExceeded { .. })),
        "{upload:?}"
    );
    let audit = w.caas.audit_log(&w.server(), 0, 100).await.unwrap();
    let warnings: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "usage.warning")
        .collect();
    assert_eq!(warnings.len(), 1, "{audit:?}");
    assert_eq!(warnings[0].target, "quota:messages_per_month");
}

async fn usage_ranges_are_checked(set: Set) {
    let w = World::new(set, &[]).await;
    let server = w.server();
    for (from, to) in [
        (Some("2026-13-01"), None),
        (Some("yesterday"), None),
        (Some("2026-12-08"), Some("2026-12-07")),
        (Some("2025-01-01"), Some("2026-12-31")),
    ] {
        assert!(
            matches!(
                w.caas.usage(&server, from, to).await,
                Err(Error::InvalidArgument { .. })
            ),
            "{from:?} {to:?}"
        );
    }
    let u = w
        .caas
        .usage(&server, Some("2026-01-30"), Some("2026-03-02"))
        .await
        .unwrap();
    assert_eq!(
        u.active_users.keys().cloned().collect::<Vec<_>>(),
        vec!["2026-01", "2026-02", "2026-03"]
    );
    assert!(u.days.is_empty());
}
