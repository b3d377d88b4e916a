//! The send pipeline and every use case, through the public service API.

use std::collections::BTreeMap;
use std::time::Duration;

use caas::core::events::EventPayload;
use caas::core::ids::{CorrelationId, Cursor, DeviceId, Seq};
use caas::core::model::{
    Ciphertext, ConversationKind, DeviceKeys, PolicySource, PresenceStatus, ReceiptKind, Role,
    SignedPrekey, TenantSettings, TenantStatus,
};
use caas::core::ports::{HistoryPage, KeyVerifier};
use caas::core::ratelimit::Quota;
use caas::core::service::{MemberChange, SendMessage, TenantChange};
use caas::{Error, Principal};

use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden, key, uid};

// Every test below, on every set. A test left out of this list is never called,
// which the dead-code lint reports.
on_every_set!(async
    a_retried_send_returns_the_original_and_publishes_nothing,
    direct_conversations_are_unique_per_pair,
    outsiders_and_other_tenants_see_nothing,
    moderation_mute_ban_and_roles,
    edit_delete_react_pin_forward,
    channels_are_broadcast_and_public_ones_joinable,
    rate_limits_burst_then_say_when_to_retry,
    receipts_unread_counts_and_the_conversation_list,
    sync_pages_through_every_visible_event_in_order,
    ephemeral_events_reach_the_bus_but_not_sync,
    presence_aggregates_devices_and_expires_with_the_clock,
    suspended_tenants_are_refused_until_resumed,
    tenant_policies_load_with_errors_located_and_apply_at_once,
    bad_input_gets_clear_errors_and_stores_nothing,
    a_users_export_holds_all_of_theirs_and_nothing_of_others,
    slow_mode_holds_members_to_one_message_per_interval,
    a_tenants_blocklist_refuses_its_words_in_sends_and_edits,
    events_carry_the_correlation_id_of_their_request,
    search_covers_only_the_callers_conversations,
    keys_need_a_verifier_and_one_time_keys_go_once,
);

async fn sync_kinds(w: &World, who: &str) -> Vec<&'static str> {
    let page = w.caas.sync(&w.user(who), Cursor(0), 200).await.unwrap();
    page.events.iter().map(|e| e.event.payload.kind()).collect()
}

async fn a_retried_send_returns_the_original_and_publishes_nothing(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let c = w.group("alice", &["bob"]).await;
    let first = w.send("alice", &c, "k1", "hello").await.unwrap();
    assert!(!first.duplicate);
    assert_eq!(first.message.seq, Seq(1));
    let again = w.send("alice", &c, "k1", "hello (retry)").await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message, first.message);
    let created = sync_kinds(&w, "bob")
        .await
        .into_iter()
        .filter(|k| *k == "message.created")
        .count();
    assert_eq!(created, 1);
    // The same key from another sender is another message.
    assert_eq!(
        w.send("bob", &c, "k1", "mine").await.unwrap().message.seq,
        Seq(2)
    );
}

async fn direct_conversations_are_unique_per_pair(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let a = w
        .conversation("alice", ConversationKind::Direct, &["bob"])
        .await;
    let b = w
        .conversation("bob", ConversationKind::Direct, &["alice"])
        .await;
    let c = w
        .conversation("alice", ConversationKind::Direct, &["carol"])
        .await;
    assert_eq!(a, b);
    assert_ne!(a, c);
    let bad = w
        .caas
        .create_conversation(
            &w.user("alice"),
            caas::core::service::NewConversation {
                kind: ConversationKind::Direct,
                members: vec![uid("bob"), uid("carol")],
                name: None,
                attributes: Default::default(),
            },
        )
        .await;
    assert!(matches!(bad, Err(Error::InvalidArgument { .. })), "{bad:?}");
    let ghost = w
        .caas
        .create_conversation(
            &w.user("alice"),
            caas::core::service::NewConversation {
                kind: ConversationKind::Group,
                members: vec![uid("nobody")],
                name: None,
                attributes: Default::default(),
            },
        )
        .await;
    assert!(matches!(ghost, Err(Error::NotFound { .. })), "{ghost:?}");
}

async fn outsiders_and_other_tenants_see_nothing(set: Set) {
    let w = World::new(set, &["alice", "bob", "eve"]).await;
    let c = w.group("alice", &["bob"]).await;
    w.send("alice", &c, "k1", "secret").await.unwrap();
    forbidden(
        w.caas
            .history(&w.user("eve"), &c, HistoryPage::Latest, 10)
            .await,
        "default-deny",
    );
    forbidden(w.send("eve", &c, "k", "hi").await, "default-deny");
    forbidden(
        w.caas.get_conversation(&w.user("eve"), &c).await,
        "default-deny",
    );
    let other = w.add_tenant(&["alice"]).await;
    let foreign = Principal::user(other.clone(), uid("alice"));
    let r = w.caas.history(&foreign, &c, HistoryPage::Latest, 10).await;
    assert!(
        matches!(r, Err(Error::NotFound { .. })),
        "another tenant cannot even name it: {r:?}"
    );
    let r = w
        .caas
        .get_tenant(&Principal::tenant_server(other), &w.tenant)
        .await;
    assert!(matches!(r, Err(Error::NotFound { .. })), "{r:?}");
    assert!(
        w.caas
            .sync(&w.user("eve"), Cursor(0), 100)
            .await
            .unwrap()
            .events
            .iter()
            .all(|e| e.event.audience.contains(&uid("eve")))
    );
}

async fn moderation_mute_ban_and_roles(set: Set) {
    let w = World::new(set, &["owner", "admin", "bob", "carol"]).await;
    let c = w.group("owner", &["admin", "bob", "carol"]).await;
    let promote = MemberChange {
        role: Some(Role::Admin),
        ..Default::default()
    };
    w.caas
        .update_member(&w.user("owner"), &c, &uid("admin"), promote.clone())
        .await
        .unwrap();
    forbidden(
        w.caas
            .update_member(&w.user("admin"), &c, &uid("bob"), promote)
            .await,
        "default-deny",
    );
    let mute = MemberChange {
        muted: Some(true),
        ..Default::default()
    };
    forbidden(
        w.caas
            .update_member(&w.user("bob"), &c, &uid("carol"), mute.clone())
            .await,
        "default-deny",
    );
    w.caas
        .update_member(&w.user("admin"), &c, &uid("bob"), mute)
        .await
        .unwrap();
    forbidden(
        w.send("bob", &c, "k", "let me talk").await,
        "muted-cannot-post",
    );
    forbidden(
        w.caas.typing(&w.user("bob"), &c, true).await,
        "muted-cannot-post",
    );
    // Muted members still read.
    w.caas
        .history(&w.user("bob"), &c, HistoryPage::Latest, 10)
        .await
        .unwrap();
    w.caas
        .update_member(
            &w.user("admin"),
            &c,
            &uid("bob"),
            MemberChange {
                muted: Some(false),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    w.send("bob", &c, "k", "thanks").await.unwrap();
    // Ban: nothing more is visible, and re-adding needs an unban.
    w.caas
        .update_member(
            &w.user("admin"),
            &c,
            &uid("carol"),
            MemberChange {
                banned: Some(true),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    forbidden(
        w.caas
            .history(&w.user("carol"), &c, HistoryPage::Latest, 10)
            .await,
        "banned-see-nothing",
    );
    let r = w
        .caas
        .add_member(&w.user("admin"), &c, &uid("carol"), None)
        .await;
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    assert!(
        w.caas
            .list_conversations(&w.user("carol"), 200, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Admins cannot remove the owner; members can leave.
    forbidden(
        w.caas
            .remove_member(&w.user("admin"), &c, &uid("owner"))
            .await,
        "default-deny",
    );
    w.caas
        .remove_member(&w.user("bob"), &c, &uid("bob"))
        .await
        .unwrap();
    forbidden(
        w.caas
            .history(&w.user("bob"), &c, HistoryPage::Latest, 1)
            .await,
        "default-deny",
    );
    // Every moderation step is audited with its rule.
    let audit = w
        .caas
        .backends()
        .audit
        .list(&w.tenant, 0, 100)
        .await
        .unwrap();
    let actions: Vec<_> = audit
        .iter()
        .map(|r| (r.action.as_str(), r.rule.as_str()))
        .collect();
    assert!(
        actions.contains(&("member.ban", "admins-ban-lower")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("member.mute", "moderators-mute-lower")),
        "{actions:?}"
    );
    assert!(
        actions.contains(&("member.remove", "members-leave")),
        "{actions:?}"
    );
}

async fn edit_delete_react_pin_forward(set: Set) {
    let w = World::new(set, &["alice", "bob", "mod", "carol"]).await;
    let c = w.group("alice", &["bob", "mod", "carol"]).await;
    w.caas
        .update_member(
            &w.user("alice"),
            &c,
            &uid("mod"),
            MemberChange {
                role: Some(Role::Moderator),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let m = w.send("bob", &c, "k1", "helo").await.unwrap().message;
    let mut reply = SendMessage::text(key("r1"), "agreed");
    reply.reply_to = Some(m.id.clone());
    reply.mentions = vec![uid("bob")];
    let r = w
        .caas
        .send_message(&w.user("carol"), &c, reply)
        .await
        .unwrap()
        .message;
    assert_eq!(
        (r.reply_to.as_ref(), r.mentions.as_slice()),
        (Some(&m.id), [uid("bob")].as_slice())
    );
    forbidden(
        w.caas
            .edit_message(&w.user("alice"), &c, &m.id, "hijack")
            .await,
        "default-deny",
    );
    let e = w
        .caas
        .edit_message(&w.user("bob"), &c, &m.id, "hello")
        .await
        .unwrap();
    assert_eq!(
        (e.body.as_deref(), e.edits[0].body.as_str()),
        (Some("hello"), "helo")
    );
    w.caas
        .react(&w.user("alice"), &c, &m.id, "👍", true)
        .await
        .unwrap();
    w.caas
        .react(&w.user("alice"), &c, &m.id, "👍", true)
        .await
        .unwrap();
    let bad = w
        .caas
        .react(&w.user("alice"), &c, &m.id, "two words", true)
        .await;
    assert!(matches!(bad, Err(Error::InvalidArgument { .. })), "{bad:?}");
    forbidden(
        w.caas.pin(&w.user("bob"), &c, &m.id, true).await,
        "default-deny",
    );
    w.caas.pin(&w.user("mod"), &c, &m.id, true).await.unwrap();
    assert_eq!(w.caas.pinned(&w.user("bob"), &c).await.unwrap().len(), 1);
    // Forward into a conversation where alice is a member.
    let d = w
        .conversation("alice", ConversationKind::Direct, &["mod"])
        .await;
    let f = w
        .caas
        .forward_message(&w.user("alice"), &c, &m.id, &d, key("fw1"))
        .await
        .unwrap()
        .message;
    assert_eq!(f.body.as_deref(), Some("hello"));
    assert_eq!(
        f.forwarded_from.as_ref().map(|r| &r.message_id),
        Some(&m.id)
    );
    forbidden(
        w.caas
            .forward_message(&w.user("bob"), &c, &m.id, &d, key("fw2"))
            .await,
        "default-deny",
    );
    // A moderator deletes; the tombstone is immutable.
    forbidden(
        w.caas.delete_message(&w.user("carol"), &c, &m.id).await,
        "default-deny",
    );
    let t = w
        .caas
        .delete_message(&w.user("mod"), &c, &m.id)
        .await
        .unwrap();
    assert!(t.is_deleted() && t.body.is_none() && t.reactions.is_empty());
    let r = w.caas.edit_message(&w.user("bob"), &c, &m.id, "undo").await;
    assert!(matches!(r, Err(Error::Conflict { .. })), "{r:?}");
    assert!(w.caas.pinned(&w.user("bob"), &c).await.unwrap().is_empty());
    let kinds = sync_kinds(&w, "bob").await;
    for k in [
        "message.created",
        "message.edited",
        "reaction.added",
        "message.pinned",
        "message.deleted",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    assert_eq!(
        kinds.iter().filter(|k| **k == "reaction.added").count(),
        1,
        "a repeated reaction publishes nothing"
    );
}

async fn channels_are_broadcast_and_public_ones_joinable(set: Set) {
    let w = World::new(set, &["owner", "reader", "walker"]).await;
    let c = w
        .conversation("owner", ConversationKind::Channel, &["reader"])
        .await;
    w.send("owner", &c, "k1", "news").await.unwrap();
    forbidden(w.send("reader", &c, "k2", "reply").await, "default-deny");
    forbidden(
        w.caas
            .add_member(&w.user("walker"), &c, &uid("walker"), None)
            .await,
        "default-deny",
    );
    let mut attrs = BTreeMap::new();
    attrs.insert("public".to_owned(), serde_json::json!(true));
    w.caas
        .update_conversation(&w.user("owner"), &c, None, Some(attrs))
        .await
        .unwrap();
    w.caas
        .add_member(&w.user("walker"), &c, &uid("walker"), None)
        .await
        .unwrap();
    forbidden(
        w.caas
            .add_member(&w.user("walker"), &c, &uid("walker"), Some(Role::Admin))
            .await,
        "default-deny",
    );
    assert_eq!(
        w.caas
            .history(&w.user("walker"), &c, HistoryPage::Latest, 10)
            .await
            .unwrap()
            .len(),
        1
    );
}

async fn rate_limits_burst_then_say_when_to_retry(set: Set) {
    let mut settings = TenantSettings::default();
    settings.limits.insert(
        "message.send".into(),
        Quota {
            limit: 3,
            period_secs: 60,
            burst: None,
        },
    );
    let w = World::with_settings(set, &["alice", "bob"], settings).await;
    let c = w.group("alice", &["bob"]).await;
    for i in 0..3 {
        w.send("alice", &c, &format!("k{i}"), "x").await.unwrap();
    }
    match w.send("alice", &c, "k3", "x").await {
        Err(Error::RateLimited {
            action,
            retry_after,
        }) => {
            assert_eq!(action, "message.send");
            assert_eq!(retry_after, Duration::from_secs(20));
        }
        other => panic!("expected rate limited, got {other:?}"),
    }
    // Another user has their own budget; the limited one waits exactly retry_after.
    w.send("bob", &c, "b0", "x").await.unwrap();
    w.clock.advance(Duration::from_secs(19));
    assert!(matches!(
        w.send("alice", &c, "k3", "x").await,
        Err(Error::RateLimited { .. })
    ));
    w.clock.advance(Duration::from_secs(1));
    assert_eq!(
        w.send("alice", &c, "k3", "x").await.unwrap().message.seq,
        Seq(5)
    );
}

async fn receipts_unread_counts_and_the_conversation_list(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let quiet = w.group("alice", &["bob"]).await;
    let busy = w.group("carol", &["alice"]).await;
    w.clock.advance(Duration::from_secs(1));
    for i in 0..3 {
        w.send("carol", &busy, &format!("c{i}"), "x").await.unwrap();
    }
    w.send("alice", &busy, "a0", "mine").await.unwrap();
    let list = w
        .caas
        .list_conversations(&w.user("alice"), 200, None)
        .await
        .unwrap()
        .items;
    assert_eq!(
        list.iter().map(|s| &s.conversation.id).collect::<Vec<_>>(),
        [&busy, &quiet],
        "newest activity first"
    );
    assert_eq!(
        (list[0].last_seq, list[0].unread_count),
        (Seq(4), 3),
        "own messages are not unread"
    );
    w.caas
        .mark(&w.user("alice"), &busy, ReceiptKind::Read, Seq(2))
        .await
        .unwrap();
    let r = w
        .caas
        .mark(&w.user("alice"), &busy, ReceiptKind::Delivered, Seq(1))
        .await
        .unwrap();
    assert_eq!(
        (r.delivered, r.read),
        (Seq(2), Seq(2)),
        "watermarks never move back"
    );
    let list = w
        .caas
        .list_conversations(&w.user("alice"), 200, None)
        .await
        .unwrap()
        .items;
    assert_eq!(list[0].unread_count, 1);
    let beyond = w
        .caas
        .mark(&w.user("alice"), &busy, ReceiptKind::Read, Seq(99))
        .await;
    assert!(
        matches!(beyond, Err(Error::InvalidArgument { .. })),
        "{beyond:?}"
    );
    let receipts = w.caas.receipts(&w.user("carol"), &busy).await.unwrap();
    assert_eq!(
        receipts
            .iter()
            .find(|r| r.user == uid("alice"))
            .map(|r| r.read),
        Some(Seq(2))
    );
}

async fn sync_pages_through_every_visible_event_in_order(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let ab = w.group("alice", &["bob"]).await;
    let bc = w.group("bob", &["carol"]).await;
    for i in 0..5 {
        w.send("alice", &ab, &format!("a{i}"), "x").await.unwrap();
        w.send("carol", &bc, &format!("c{i}"), "y").await.unwrap();
    }
    let mut since = Cursor(0);
    let mut seen = Vec::new();
    loop {
        let page = w.caas.sync(&w.user("bob"), since, 3).await.unwrap();
        assert!(page.events.len() <= 3);
        seen.extend(page.events.iter().map(|e| e.cursor));
        since = page.next_cursor;
        if !page.has_more {
            break;
        }
    }
    assert_eq!(
        seen.len(),
        1 + 2 + 10,
        "bob's user.updated, two conversation.created and ten messages"
    );
    assert!(seen.windows(2).all(|p| p[0] < p[1]));
    let alice = w.caas.sync(&w.user("alice"), Cursor(0), 200).await.unwrap();
    assert!(
        alice
            .events
            .iter()
            .all(|e| e.event.payload.conversation_id() != Some(&bc)),
        "alice never sees bc"
    );
}

async fn ephemeral_events_reach_the_bus_but_not_sync(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let c = w.group("alice", &["bob"]).await;
    let mut sub = w.caas.backends().bus.subscribe().await.unwrap();
    w.caas.typing(&w.user("alice"), &c, true).await.unwrap();
    w.caas
        .call_signal(
            &w.user("alice"),
            &c,
            Some(uid("bob")),
            serde_json::json!({"sdp": "offer"}),
        )
        .await
        .unwrap();
    let mut kinds = Vec::new();
    while kinds.len() < 2 {
        if let Some(caas::core::ports::BusMessage::Event(e)) = sub.next().await {
            assert!(
                !e.audience.contains(&uid("alice")),
                "the sender is not told about itself"
            );
            kinds.push(e.payload.kind());
        }
    }
    assert_eq!(kinds, ["typing", "call.signal"]);
    assert!(
        !sync_kinds(&w, "bob")
            .await
            .iter()
            .any(|k| *k == "typing" || *k == "call.signal")
    );
    let r = w
        .caas
        .call_signal(
            &w.user("alice"),
            &c,
            Some(uid("mallory")),
            serde_json::json!({}),
        )
        .await;
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    let big = serde_json::json!({ "sdp": "x".repeat(40_000) });
    let r = w.caas.call_signal(&w.user("alice"), &c, None, big).await;
    assert!(matches!(r, Err(Error::PayloadTooLarge { .. })), "{r:?}");
}

async fn presence_aggregates_devices_and_expires_with_the_clock(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    w.group("alice", &["bob"]).await;
    let phone = w
        .user("alice")
        .with_device(DeviceId::parse("phone").unwrap());
    let laptop = w
        .user("alice")
        .with_device(DeviceId::parse("laptop").unwrap());
    w.caas
        .set_presence(&phone, PresenceStatus::Away)
        .await
        .unwrap();
    let p = w
        .caas
        .set_presence(&laptop, PresenceStatus::Online)
        .await
        .unwrap();
    assert_eq!(p.status, PresenceStatus::Online);
    w.caas
        .set_presence(&laptop, PresenceStatus::Offline)
        .await
        .unwrap();
    let seen = w
        .caas
        .presence(&w.user("bob"), &[uid("alice")])
        .await
        .unwrap();
    assert_eq!(seen[0].status, PresenceStatus::Away);
    w.clock.advance(Duration::from_secs(61));
    let seen = w
        .caas
        .presence(&w.user("bob"), &[uid("alice")])
        .await
        .unwrap();
    assert_eq!(seen[0].status, PresenceStatus::Offline);
    assert!(seen[0].last_seen.is_some());
}

async fn suspended_tenants_are_refused_until_resumed(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let c = w.group("alice", &["bob"]).await;
    forbidden(
        w.caas
            .set_tenant_status(&w.server(), &w.tenant, TenantStatus::Suspended)
            .await,
        "tenant-server-not-operator",
    );
    w.caas
        .set_tenant_status(&Principal::operator(), &w.tenant, TenantStatus::Suspended)
        .await
        .unwrap();
    forbidden(w.send("alice", &c, "k", "x").await, "tenant-suspended");
    w.caas
        .set_tenant_status(&Principal::operator(), &w.tenant, TenantStatus::Active)
        .await
        .unwrap();
    w.send("alice", &c, "k", "x").await.unwrap();
    forbidden(
        w.caas
            .create_tenant(&w.user("alice"), "mine", TenantSettings::default())
            .await,
        "default-deny",
    );
}

async fn tenant_policies_load_with_errors_located_and_apply_at_once(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let c = w.group("alice", &["bob"]).await;
    let op = Principal::operator();
    let bad = PolicySource::Json(r#"{"version":1,"extends":"default","rules":[{"id":"x","effect":"deny","actions":["message.sned"]}]}"#.into());
    match w.caas.set_tenant_policy(&op, &w.tenant, Some(bad)).await {
        Err(Error::InvalidArgument { field, .. }) => {
            assert_eq!(field, "settings.policy.rules[0].actions[0]")
        }
        other => panic!("expected a located load error, got {other:?}"),
    }
    let toml = PolicySource::Toml(
        "version = 1\nextends = \"default\"\n[[rules]]\nid = \"vip-only\"\neffect = \"deny\"\nactions = [\"message.send\"]\nwhen = { not = { attr = \"subject.attr.vip\", eq = true } }\n".into(),
    );
    w.caas
        .set_tenant_policy(&op, &w.tenant, Some(toml))
        .await
        .unwrap();
    forbidden(w.send("alice", &c, "k", "x").await, "vip-only");
    let mut vip = w.user("alice");
    vip.attributes.insert("vip".into(), serde_json::json!(true));
    w.caas
        .send_message(&vip, &c, SendMessage::text(key("k"), "x"))
        .await
        .unwrap();
    let r = w
        .caas
        .update_tenant(
            &op,
            &w.tenant,
            TenantChange {
                name: Some(String::new()),
                settings: None,
            },
        )
        .await;
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
}

async fn bad_input_gets_clear_errors_and_stores_nothing(set: Set) {
    let w = World::new(set, &["alice", "bob", "eve"]).await;
    let c = w.group("alice", &["bob"]).await;
    let p = w.user("alice");
    let send = |m: SendMessage| w.caas.send_message(&p, &c, m);
    let invalid = |r: caas::Result<caas::core::service::Sent>, field: &str| match r {
        Err(Error::InvalidArgument { field: f, .. }) => assert_eq!(f, field),
        other => panic!("expected invalid {field}, got {other:?}"),
    };
    invalid(send(SendMessage::text(key("a"), "   ")).await, "body");
    invalid(send(SendMessage::text(key("a"), "bell\u{7}")).await, "body");
    let mut both = SendMessage::text(key("a"), "x");
    both.ciphertext = Some(Ciphertext {
        algorithm: "x3dh".into(),
        data: "AAAA".into(),
    });
    invalid(send(both).await, "body");
    let mut m = SendMessage::text(key("a"), "x");
    m.mentions = vec![uid("eve")];
    invalid(send(m).await, "mentions[0]");
    let mut m = SendMessage::text(key("a"), "x");
    m.reply_to = Some(caas::core::ids::MessageId::parse("m_nope").unwrap());
    invalid(send(m).await, "reply_to");
    match send(SendMessage::text(key("a"), "x".repeat(16 * 1024 + 1))).await {
        Err(Error::PayloadTooLarge { limit, .. }) => assert_eq!(limit, 16 * 1024),
        other => panic!("expected payload too large, got {other:?}"),
    }
    let r = w.caas.history(&p, &c, HistoryPage::Latest, 0).await;
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    assert!(
        w.caas
            .history(&p, &c, HistoryPage::Latest, 10)
            .await
            .unwrap()
            .is_empty(),
        "nothing was stored"
    );
    // The encrypted form is accepted and stored opaque.
    let mut enc = SendMessage::text(key("e"), "x");
    enc.body = None;
    enc.ciphertext = Some(Ciphertext {
        algorithm: "x3dh-dr-v1".into(),
        data: "AAEC".into(),
    });
    let m = send(enc).await.unwrap().message;
    assert_eq!(m.seq, Seq(1));
    assert!(m.body.is_none());
    // Users cannot be created by users.
    forbidden(
        w.caas
            .upsert_user(&p, &uid("x"), "x", Default::default())
            .await,
        "default-deny",
    );
}

async fn a_tenants_blocklist_refuses_its_words_in_sends_and_edits(set: Set) {
    use caas::core::service::TenantChange;
    let settings = TenantSettings {
        blocklist: vec!["Spam".into(), "scam".into()],
        ..TenantSettings::default()
    };
    let w = World::with_settings(set, &["alice", "bob"], settings).await;
    let c = w.group("alice", &["bob"]).await;
    let blocked = |r: caas::Result<caas::core::service::Sent>| match r {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "body"),
        other => panic!("expected a refusal of the body, got {other:?}"),
    };
    // Whole words, in any case; a word that merely contains one passes.
    blocked(w.send("alice", &c, "k1", "buy SPAM now").await);
    blocked(w.send("alice", &c, "k2", "a scam!").await);
    blocked(
        w.send("alice", &c, "k2b", "sp\u{ad}am and s\u{200b}cam")
            .await,
    );
    let ok = w
        .send("alice", &c, "k3", "spammer and scampi")
        .await
        .unwrap();
    let p = w.user("alice");
    let edit = w
        .caas
        .edit_message(&p, &c, &ok.message.id, "now a scam")
        .await;
    assert!(
        matches!(&edit, Err(Error::InvalidArgument { field, .. }) if field == "body"),
        "{edit:?}"
    );
    let history = w
        .caas
        .history(&p, &c, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert_eq!(history.len(), 1, "only the allowed message was stored");
    assert_eq!(history[0].body.as_deref(), Some("spammer and scampi"));
    // The list is checked when set, and a change applies at once.
    let change = |words: Vec<&str>| TenantChange {
        name: None,
        settings: Some(TenantSettings {
            blocklist: words.into_iter().map(String::from).collect(),
            ..TenantSettings::default()
        }),
    };
    let op = Principal::operator();
    for bad in [vec!["two words"], vec!["!!"], vec![""]] {
        let r = w.caas.update_tenant(&op, &w.tenant, change(bad)).await;
        assert!(
            matches!(&r, Err(Error::InvalidArgument { field, .. }) if field == "settings.blocklist[0]"),
            "{r:?}"
        );
    }
    let too_many = vec!["w"; caas::core::model::MAX_BLOCKLIST + 1];
    let r = w.caas.update_tenant(&op, &w.tenant, change(too_many)).await;
    assert!(matches!(r, Err(Error::PayloadTooLarge { .. })), "{r:?}");
    w.caas
        .update_tenant(&op, &w.tenant, change(vec!["scampi"]))
        .await
        .unwrap();
    w.send("alice", &c, "k4", "buy spam now").await.unwrap();
    blocked(w.send("alice", &c, "k5", "Scampi tonight").await);
}

async fn a_users_export_holds_all_of_theirs_and_nothing_of_others(set: Set) {
    use caas::core::model::ReceiptKind;
    use caas::core::service::ExportItem;
    let mut settings = TenantSettings::default();
    settings.limits.insert(
        "message.send".into(),
        Quota {
            limit: 10_000,
            period_secs: 1,
            burst: None,
        },
    );
    let w = World::with_settings(set, &["alice", "bob", "carol"], settings).await;
    let (small, big) = (
        w.group("alice", &["bob"]).await,
        w.group("bob", &["alice", "carol"]).await,
    );
    w.send("alice", &small, "a1", "hello bob").await.unwrap();
    let from_bob = w.send("bob", &small, "b1", "hi alice").await.unwrap();
    w.send("alice", &small, "a2", "bye").await.unwrap();
    // More than one store page of messages in one conversation.
    for i in 0..230 {
        let who = if i % 5 == 0 { "carol" } else { "alice" };
        w.send(who, &big, &format!("m{i}"), &format!("line {i}"))
            .await
            .unwrap();
    }
    let alice = w.user("alice");
    w.caas
        .react(&alice, &small, &from_bob.message.id, "👍", true)
        .await
        .unwrap();
    w.caas
        .mark(&alice, &small, ReceiptKind::Read, Seq(2))
        .await
        .unwrap();

    let mut export = w
        .caas
        .export_user(&w.server(), &uid("alice"))
        .await
        .unwrap();
    let mut items = Vec::new();
    while let Some(item) = export.next().await.unwrap() {
        items.push(item);
    }
    assert_eq!(export.items(), items.len() as u64);
    assert!(matches!(&items[0], ExportItem::User { user } if user.id == uid("alice")));
    let memberships = items
        .iter()
        .filter(
            |i| matches!(i, ExportItem::Membership { member, .. } if member.user == uid("alice")),
        )
        .count();
    assert_eq!(memberships, 2);
    let read = items.iter().find_map(|i| match i {
        ExportItem::Receipt { receipt } if receipt.conversation == small => Some(receipt.read),
        _ => None,
    });
    assert_eq!(read, Some(Seq(2)));
    let sent: Vec<&str> = items
        .iter()
        .filter_map(|i| match i {
            ExportItem::Message { message } => {
                assert_eq!(message.sender, uid("alice"), "only alice's messages");
                message.body.as_deref()
            }
            _ => None,
        })
        .collect();
    assert_eq!(sent.len(), 2 + 230 - 46, "{}", sent.len());
    assert!(sent.contains(&"hello bob") && sent.contains(&"line 229"));
    let reactions: Vec<_> = items
        .iter()
        .filter_map(|i| match i {
            ExportItem::Reaction {
                message_id, emoji, ..
            } => Some((message_id.clone(), emoji.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(reactions, [(from_bob.message.id.clone(), "👍")]);
    // As JSON lines, each names its kind.
    let line = serde_json::to_value(&items[0]).unwrap();
    assert_eq!(line["kind"], "user");

    // Only the tenant exports; an unknown user, or another tenant's, is not found.
    assert!(matches!(
        w.caas.export_user(&alice, &uid("bob")).await,
        Err(Error::Forbidden { .. })
    ));
    assert!(matches!(
        w.caas.export_user(&w.server(), &uid("nobody")).await,
        Err(Error::NotFound { .. })
    ));
    let other = w.add_tenant(&["dave"]).await;
    assert!(matches!(
        w.caas
            .export_user(&Principal::tenant_server(other), &uid("alice"))
            .await,
        Err(Error::NotFound { .. })
    ));
    let audit = w.caas.audit_log(&w.server(), 0, 200).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "compliance.export" && r.target == "user:alice"),
        "the export is audited"
    );
}

async fn slow_mode_holds_members_to_one_message_per_interval(set: Set) {
    use caas::core::service::SLOW_MODE_ATTRIBUTE;
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let c = w.group("alice", &["bob", "carol"]).await;
    let owner = w.user("alice");
    let set_slow = |secs: serde_json::Value| {
        let attributes = BTreeMap::from([(SLOW_MODE_ATTRIBUTE.to_owned(), secs)]);
        w.caas
            .update_conversation(&owner, &c, None, Some(attributes))
    };
    for bad in [
        serde_json::json!(-1),
        serde_json::json!("30"),
        serde_json::json!(21_601),
    ] {
        let r = set_slow(bad).await;
        assert!(
            matches!(&r, Err(Error::InvalidArgument { field, .. }) if field == "attributes.slow_mode_secs"),
            "{r:?}"
        );
    }
    set_slow(serde_json::json!(30)).await.unwrap();

    let first = w.send("bob", &c, "b1", "one").await.unwrap();
    match w.send("bob", &c, "b2", "two").await {
        Err(Error::RateLimited {
            action,
            retry_after,
        }) => {
            assert_eq!(action, "conversation.slow_mode");
            assert_eq!(retry_after, Duration::from_secs(30));
        }
        other => panic!("expected slow mode to refuse, got {other:?}"),
    }
    // A retry of the stored message inside the window gets it back, not a refusal.
    let again = w.send("bob", &c, "b1", "one").await.unwrap();
    assert!(again.duplicate);
    assert_eq!(again.message.id, first.message.id);
    // Each member has their own window; the owner is not held back.
    w.send("carol", &c, "c1", "mine").await.unwrap();
    for i in 0..3 {
        w.send("alice", &c, &format!("a{i}"), "owner")
            .await
            .unwrap();
    }
    // The window passes with the clock; turning it off lifts it at once.
    w.clock.advance(Duration::from_secs(30));
    w.clock.advance(Duration::from_secs(10));
    w.send("bob", &c, "b2", "two").await.unwrap();
    w.clock.advance(Duration::from_secs(12));
    match w.send("bob", &c, "b3", "three").await {
        Err(Error::RateLimited { retry_after, .. }) => {
            assert_eq!(
                retry_after,
                Duration::from_secs(18),
                "counted from the last send"
            );
        }
        other => panic!("expected slow mode to refuse, got {other:?}"),
    }
    // A forward into the conversation is a send too.
    let forwarded = w
        .caas
        .forward_message(&w.user("bob"), &c, &first.message.id, &c, key("f1"))
        .await;
    assert!(
        matches!(forwarded, Err(Error::RateLimited { .. })),
        "{forwarded:?}"
    );
    // A send refused for another reason spends nothing of the window.
    w.clock.advance(Duration::from_secs(18));
    let mut bad = SendMessage::text(key("b4"), "mentions a stranger");
    bad.mentions = vec![uid("nobody")];
    assert!(w.caas.send_message(&w.user("bob"), &c, bad).await.is_err());
    w.send("bob", &c, "b3", "three").await.unwrap();
    set_slow(serde_json::json!(0)).await.unwrap();
    w.send("bob", &c, "b5", "five").await.unwrap();
    // Every change of the setting is audited.
    let audit = w.caas.audit_log(&w.server(), 0, 200).await.unwrap();
    let changes = audit
        .iter()
        .filter(|r| r.action == "conversation.update" && r.target == format!("conversation:{c}"))
        .count();
    assert_eq!(changes, 2);
}

async fn events_carry_the_correlation_id_of_their_request(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let c = w.group("alice", &["bob"]).await;
    let corr = CorrelationId::parse("req-42").unwrap();
    let p = w.user("alice").with_correlation_id(corr.clone());
    w.caas
        .send_message(&p, &c, SendMessage::text(key("k"), "x"))
        .await
        .unwrap();
    let page = w.caas.sync(&w.user("bob"), Cursor(0), 100).await.unwrap();
    let created = page
        .events
        .iter()
        .find(|e| e.event.payload.kind() == "message.created")
        .unwrap();
    assert_eq!(created.event.correlation_id, corr);
    assert!(
        matches!(&created.event.payload, EventPayload::MessageCreated { message } if message.body.as_deref() == Some("x"))
    );
}

async fn search_covers_only_the_callers_conversations(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let ab = w.group("alice", &["bob"]).await;
    let bc = w.group("bob", &["carol"]).await;
    w.send("alice", &ab, "k1", "quarterly report draft")
        .await
        .unwrap();
    w.send("carol", &bc, "k2", "report for bob only")
        .await
        .unwrap();
    let hits = w
        .caas
        .search_messages(&w.user("alice"), "report", 10, None)
        .await
        .unwrap()
        .items;
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].conversation, ab);
    assert_eq!(
        w.caas
            .search_messages(&w.user("bob"), "report", 10, None)
            .await
            .unwrap()
            .items
            .len(),
        2
    );
    assert_eq!(
        w.caas
            .search_users(&w.user("alice"), "car", 10, None)
            .await
            .unwrap()
            .items,
        vec![uid("carol")]
    );
    let r = w
        .caas
        .search_messages(&w.user("alice"), " ", 10, None)
        .await;
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    // 30 searches a minute by default; the blank query above counted too (the limit
    // applies before validation, so malformed floods are limited as well).
    for _ in 0..27 {
        w.caas
            .search_messages(&w.user("alice"), "report", 10, None)
            .await
            .unwrap();
    }
    assert!(matches!(
        w.caas
            .search_messages(&w.user("alice"), "report", 10, None)
            .await,
        Err(Error::RateLimited { .. })
    ));
}

#[derive(Debug)]
struct AcceptSigned;

impl KeyVerifier for AcceptSigned {
    fn verify(&self, keys: &DeviceKeys) -> caas::Result<()> {
        if keys.signed_prekey.signature == "valid" {
            Ok(())
        } else {
            Err(Error::invalid("signed_prekey.signature", "bad signature"))
        }
    }
}

async fn keys_need_a_verifier_and_one_time_keys_go_once(set: Set) {
    let w = World::new(set, &["alice", "bob"]).await;
    let keys = |sig: &str| DeviceKeys {
        identity_signing_key: "ik".into(),
        identity_agreement_key: "dh".into(),
        identity_signature: "isig".into(),
        signed_prekey: SignedPrekey {
            key_id: 1,
            public_key: "spk".into(),
            signature: sig.into(),
        },
        one_time_prekeys: vec![caas::core::model::OneTimePrekey {
            key_id: 7,
            public_key: "otk".into(),
        }],
    };
    let dev = DeviceId::parse("phone").unwrap();
    let r = w
        .caas
        .publish_keys(&w.user("bob"), &dev, &keys("valid"))
        .await;
    assert!(
        matches!(
            r,
            Err(Error::Unavailable {
                temporary: false,
                ..
            })
        ),
        "without a verifier nothing is stored: {r:?}"
    );
    let caas = caas::Caas::new(w.caas.backends().clone(), caas::Config::default())
        .with_key_verifier(std::sync::Arc::new(AcceptSigned));
    let r = caas
        .publish_keys(&w.user("bob"), &dev, &keys("forged"))
        .await;
    assert!(matches!(r, Err(Error::InvalidArgument { .. })), "{r:?}");
    assert_eq!(
        caas.publish_keys(&w.user("bob"), &dev, &keys("valid"))
            .await
            .unwrap(),
        1
    );
    let first = caas
        .claim_keys(&w.user("alice"), &uid("bob"))
        .await
        .unwrap();
    assert_eq!(first[0].one_time_prekey.as_ref().map(|k| k.key_id), Some(7));
    let second = caas
        .claim_keys(&w.user("alice"), &uid("bob"))
        .await
        .unwrap();
    assert!(second[0].one_time_prekey.is_none());
    let r = caas.publish_keys(&w.server(), &dev, &keys("valid")).await;
    assert!(
        matches!(&r, Err(Error::Forbidden { rule }) if rule == caas::core::service::USER_TOKEN_REQUIRED),
        "keys belong to a user's device: {r:?}"
    );
}
