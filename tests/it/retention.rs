//! Retention policies through the public service API, on every backend set.

use std::time::Duration;

use caas::core::ids::Cursor;
use caas::core::model::{ConversationKind, RetentionPolicy, TenantSettings};
use caas::core::ports::HistoryPage;
use caas::core::service::TenantChange;
use caas::{Error, Principal};

use crate::sets::{Set, on_every_set};
use crate::world::World;

on_every_set!(async
    old_messages_become_tombstones_per_conversation_kind,
    retention_policies_are_checked,
);

async fn old_messages_become_tombstones_per_conversation_kind(set: Set) {
    let w = World::with_settings(
        set,
        &["alice", "bob"],
        TenantSettings {
            retention: RetentionPolicy {
                group_days: Some(30),
                ..RetentionPolicy::default()
            },
            ..TenantSettings::default()
        },
    )
    .await;
    let group = w.group("alice", &["bob"]).await;
    let direct = w
        .conversation("alice", ConversationKind::Direct, &["bob"])
        .await;
    w.send("alice", &group, "g1", "ancientsecret one")
        .await
        .unwrap();
    w.send("bob", &direct, "d1", "old but kept").await.unwrap();
    w.clock.advance(Duration::from_secs(20 * 86_400));
    w.send("alice", &group, "g2", "recent words").await.unwrap();
    w.clock.advance(Duration::from_secs(11 * 86_400));

    let run = w.caas.apply_retention().await.unwrap();
    assert_eq!((run.tenants, run.messages), (1, 1), "{run:?}");
    let history = w
        .caas
        .history(&w.user("bob"), &group, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 2);
    assert!(history[0].is_deleted() && history[0].body.is_none());
    assert_eq!(history[1].body.as_deref(), Some("recent words"));
    let direct_history = w
        .caas
        .history(&w.user("bob"), &direct, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert_eq!(direct_history[0].body.as_deref(), Some("old but kept"));
    // The text leaves the log and search too; the deletion is announced and audited.
    let synced = w.caas.sync(&w.user("bob"), Cursor(0), 200).await.unwrap();
    let json = serde_json::to_string(&synced.events).unwrap();
    assert!(!json.contains("ancientsecret"), "{json}");
    assert!(json.contains("message.deleted"));
    assert!(
        w.caas
            .search_messages(&w.user("bob"), "ancientsecret", 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    let audit = w.caas.audit_log(&w.server(), 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "retention.apply" && r.detail["messages"] == 1)
    );

    // A second run finds nothing more.
    assert_eq!(w.caas.apply_retention().await.unwrap().messages, 0);
}

async fn retention_policies_are_checked(set: Set) {
    let w = World::new(set, &[]).await;
    for bad in [0, 36_501] {
        let r = w
            .caas
            .update_tenant(
                &Principal::operator(),
                &w.tenant,
                TenantChange {
                    settings: Some(TenantSettings {
                        retention: RetentionPolicy {
                            channel_days: Some(bad),
                            ..RetentionPolicy::default()
                        },
                        ..TenantSettings::default()
                    }),
                    ..TenantChange::default()
                },
            )
            .await;
        assert!(
            matches!(r, Err(Error::InvalidArgument { .. })),
            "{bad}: {r:?}"
        );
    }
}
