//! One test per default rule (allowed and the nearest refused case), and the load
//! errors of malformed documents.

use super::*;

fn user(id: &'static str) -> Attrs {
    Attrs::default().with("kind", "user").with("id", id)
}

fn member(id: &'static str, rank: i64) -> Attrs {
    let role = ["member", "moderator", "admin", "owner"][rank as usize];
    user(id)
        .with("is_member", true)
        .with("member_role", role)
        .with("member_rank", rank)
        .with("muted", false)
        .with("banned", false)
}

fn conv(kind: &'static str) -> Attrs {
    Attrs::default()
        .with("kind", "conversation")
        .with("conversation_kind", kind)
}

fn decide(action: Action, subject: Attrs, resource: Attrs) -> Decision {
    default_set().decide(&Request {
        action,
        subject,
        resource,
        environment: Attrs::default(),
    })
}

#[track_caller]
fn allowed(d: Decision, rule: &str) {
    assert_eq!((d.effect, &*d.rule), (Effect::Allow, rule));
}

#[track_caller]
fn denied(d: Decision, rule: &str) {
    assert_eq!((d.effect, &*d.rule), (Effect::Deny, rule));
}

#[test]
fn default_document_compiles_and_every_rule_is_reachable() {
    let set = document::compile_default().unwrap();
    assert!(set.rules().len() >= 25);
    for r in set.rules() {
        assert!(
            r.description().is_some(),
            "rule {} needs a description",
            r.id()
        );
        assert!(!r.actions().is_empty());
    }
}

#[test]
fn operator_manages_tenants_and_nothing_else() {
    let op = || Attrs::default().with("kind", "operator");
    allowed(
        decide(Action::TenantCreate, op(), Attrs::default()),
        "operator-manages-tenants",
    );
    allowed(
        decide(Action::TenantSuspend, op(), Attrs::default()),
        "operator-manages-tenants",
    );
    denied(
        decide(Action::MessageSend, op(), conv("group")),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::TenantCreate, user("a"), Attrs::default()),
        DEFAULT_DENY,
    );
}

#[test]
fn tenant_server_does_everything_but_operator_work() {
    let t = || Attrs::default().with("kind", "tenant");
    allowed(
        decide(Action::UserUpsert, t(), Attrs::default()),
        "tenant-server-full-access",
    );
    allowed(
        decide(Action::MemberBan, t(), conv("group")),
        "tenant-server-full-access",
    );
    allowed(
        decide(Action::AuditRead, t(), Attrs::default()),
        "tenant-server-full-access",
    );
    allowed(
        decide(Action::TenantRotateSecret, t(), Attrs::default()),
        "tenant-server-full-access",
    );
    denied(
        decide(Action::TenantCreate, t(), Attrs::default()),
        "tenant-server-not-operator",
    );
    denied(
        decide(Action::TenantUpdate, t(), Attrs::default()),
        "tenant-server-not-operator",
    );
    denied(
        decide(Action::TenantSuspend, t(), Attrs::default()),
        "tenant-server-not-operator",
    );
}

#[test]
fn banned_members_see_nothing() {
    let banned = member("a", 3).with("banned", true);
    for a in [
        Action::MessageRead,
        Action::MessageSend,
        Action::ConversationRead,
        Action::MemberRemove,
    ] {
        denied(
            decide(a, banned.clone(), conv("group")),
            "banned-see-nothing",
        );
    }
}

#[test]
fn users_read_users_and_report_presence() {
    allowed(
        decide(Action::UserRead, user("a"), Attrs::default()),
        "users-read-users",
    );
    allowed(
        decide(Action::PresenceRead, user("a"), Attrs::default()),
        "users-read-users",
    );
    allowed(
        decide(Action::PresenceUpdate, user("a"), Attrs::default()),
        "users-report-own-presence",
    );
    allowed(
        decide(Action::ConversationCreate, user("a"), Attrs::default()),
        "users-create-conversations",
    );
    denied(
        decide(Action::UserUpsert, user("a"), Attrs::default()),
        DEFAULT_DENY,
    );
}

#[test]
fn members_read_and_non_members_do_not() {
    allowed(
        decide(Action::MessageRead, member("a", 0), conv("group")),
        "members-read",
    );
    allowed(
        decide(Action::ReceiptUpdate, member("a", 0), conv("channel")),
        "members-read",
    );
    let outsider = user("z").with("is_member", false);
    denied(
        decide(Action::MessageRead, outsider.clone(), conv("group")),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::ConversationRead, outsider, conv("group")),
        DEFAULT_DENY,
    );
}

#[test]
fn send_only_by_non_muted_members_and_channel_staff() {
    allowed(
        decide(Action::MessageSend, member("a", 0), conv("group")),
        "members-send",
    );
    allowed(
        decide(Action::MessageSend, member("a", 0), conv("direct")),
        "members-send",
    );
    denied(
        decide(Action::MessageSend, member("a", 0), conv("channel")),
        DEFAULT_DENY,
    );
    allowed(
        decide(Action::MessageSend, member("a", 1), conv("channel")),
        "channel-staff-post",
    );
    let muted = member("a", 2).with("muted", true);
    denied(
        decide(Action::MessageSend, muted.clone(), conv("group")),
        "muted-cannot-post",
    );
    denied(
        decide(Action::MessageReact, muted.clone(), conv("group")),
        "muted-cannot-post",
    );
    denied(
        decide(Action::Typing, muted, conv("group")),
        "muted-cannot-post",
    );
    denied(
        decide(
            Action::MessageSend,
            user("z").with("is_member", false),
            conv("group"),
        ),
        DEFAULT_DENY,
    );
}

#[test]
fn members_interact() {
    for a in [Action::MessageReact, Action::Typing, Action::CallSignal] {
        allowed(decide(a, member("a", 0), conv("group")), "members-interact");
    }
}

#[test]
fn only_the_sender_edits() {
    let msg = |owner: &'static str| conv("group").with("kind", "message").with("owner", owner);
    allowed(
        decide(Action::MessageEdit, member("a", 0), msg("a")),
        "sender-edits",
    );
    denied(
        decide(Action::MessageEdit, member("b", 3), msg("a")),
        DEFAULT_DENY,
    );
    // A former member cannot edit what they sent.
    denied(
        decide(
            Action::MessageEdit,
            user("a").with("is_member", false),
            msg("a"),
        ),
        DEFAULT_DENY,
    );
}

#[test]
fn delete_by_sender_or_moderator() {
    let msg = |owner: &'static str| conv("group").with("owner", owner);
    allowed(
        decide(Action::MessageDelete, member("a", 0), msg("a")),
        "sender-deletes",
    );
    allowed(
        decide(Action::MessageDelete, member("m", 1), msg("a")),
        "moderators-delete",
    );
    denied(
        decide(Action::MessageDelete, member("b", 0), msg("a")),
        DEFAULT_DENY,
    );
}

#[test]
fn pins_by_moderators_or_anyone_in_direct() {
    allowed(
        decide(Action::MessagePin, member("m", 1), conv("group")),
        "moderators-pin",
    );
    allowed(
        decide(Action::MessagePin, member("a", 0), conv("direct")),
        "moderators-pin",
    );
    denied(
        decide(Action::MessagePin, member("a", 0), conv("group")),
        DEFAULT_DENY,
    );
}

#[test]
fn admins_manage_the_conversation() {
    allowed(
        decide(Action::ConversationUpdate, member("x", 2), conv("group")),
        "admins-manage-conversation",
    );
    denied(
        decide(Action::ConversationUpdate, member("x", 1), conv("group")),
        DEFAULT_DENY,
    );
}

#[test]
fn adding_members() {
    let target = |kind| {
        conv(kind)
            .with("target_user", "new")
            .with("target_rank", 0i64)
            .with("new_rank", 0i64)
    };
    allowed(
        decide(Action::MemberAdd, member("x", 2), target("group")),
        "admins-add-members",
    );
    // No one adds a member with a role as high as their own.
    let as_admin = conv("group")
        .with("target_user", "new")
        .with("new_rank", 2i64);
    denied(
        decide(Action::MemberAdd, member("x", 2), as_admin.clone()),
        DEFAULT_DENY,
    );
    allowed(
        decide(Action::MemberAdd, member("o", 3), as_admin),
        "admins-add-members",
    );
    denied(
        decide(Action::MemberAdd, member("x", 2), target("direct")),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::MemberAdd, member("x", 1), target("group")),
        DEFAULT_DENY,
    );
    let public_channel = |who: &'static str, rank: i64| {
        conv("channel")
            .with("public", true)
            .with("target_user", who)
            .with("new_rank", rank)
    };
    allowed(
        decide(Action::MemberAdd, user("new"), public_channel("new", 0)),
        "join-public-channel",
    );
    // Joining cannot grant oneself a role, nor add someone else.
    denied(
        decide(Action::MemberAdd, user("new"), public_channel("new", 2)),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::MemberAdd, user("new"), public_channel("other", 0)),
        DEFAULT_DENY,
    );
    let private = conv("channel")
        .with("public", false)
        .with("target_user", "new")
        .with("new_rank", 0i64);
    denied(
        decide(Action::MemberAdd, user("new"), private),
        DEFAULT_DENY,
    );
}

#[test]
fn removing_members() {
    let target = |who: &'static str, rank: i64| {
        conv("group")
            .with("target_user", who)
            .with("target_rank", rank)
    };
    allowed(
        decide(Action::MemberRemove, member("a", 0), target("a", 0)),
        "members-leave",
    );
    denied(
        decide(
            Action::MemberRemove,
            member("a", 0),
            conv("direct").with("target_user", "a"),
        ),
        DEFAULT_DENY,
    );
    allowed(
        decide(Action::MemberRemove, member("x", 2), target("b", 1)),
        "admins-remove-lower",
    );
    denied(
        decide(Action::MemberRemove, member("x", 2), target("y", 2)),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::MemberRemove, member("x", 2), target("o", 3)),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::MemberRemove, member("b", 0), target("c", 0)),
        DEFAULT_DENY,
    );
}

#[test]
fn changing_roles() {
    let change = |rank: i64, to: i64| {
        conv("group")
            .with("target_user", "t")
            .with("target_rank", rank)
            .with("new_rank", to)
    };
    allowed(
        decide(Action::MemberUpdate, member("o", 3), change(0, 2)),
        "admins-change-lower-roles",
    );
    allowed(
        decide(Action::MemberUpdate, member("x", 2), change(0, 1)),
        "admins-change-lower-roles",
    );
    denied(
        decide(Action::MemberUpdate, member("x", 2), change(0, 2)),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::MemberUpdate, member("x", 2), change(2, 0)),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::MemberUpdate, member("o", 3), change(0, 3)),
        DEFAULT_DENY,
    );
}

#[test]
fn moderation() {
    let target = |rank: i64| {
        conv("group")
            .with("target_user", "t")
            .with("target_rank", rank)
    };
    allowed(
        decide(Action::MemberMute, member("m", 1), target(0)),
        "moderators-mute-lower",
    );
    denied(
        decide(Action::MemberMute, member("m", 1), target(1)),
        DEFAULT_DENY,
    );
    denied(
        decide(Action::MemberMute, member("a", 0), target(0)),
        DEFAULT_DENY,
    );
    allowed(
        decide(Action::MemberBan, member("x", 2), target(1)),
        "admins-ban-lower",
    );
    denied(
        decide(Action::MemberBan, member("m", 1), target(0)),
        DEFAULT_DENY,
    );
}

#[test]
fn media_rules() {
    allowed(
        decide(Action::MediaUpload, member("a", 0), conv("group")),
        "members-upload",
    );
    denied(
        decide(
            Action::MediaUpload,
            user("z").with("is_member", false),
            conv("group"),
        ),
        DEFAULT_DENY,
    );
    let blob = |owner: &'static str| Attrs::default().with("kind", "blob").with("owner", owner);
    allowed(
        decide(Action::MediaDownload, user("a"), blob("a")),
        "download-by-owner-or-participant",
    );
    allowed(
        decide(Action::MediaDownload, member("b", 0), blob("a")),
        "download-by-owner-or-participant",
    );
    denied(
        decide(
            Action::MediaDownload,
            user("z").with("is_member", false),
            blob("a"),
        ),
        DEFAULT_DENY,
    );
    allowed(
        decide(Action::MediaDelete, user("a"), blob("a")),
        "delete-media-by-owner",
    );
    denied(
        decide(Action::MediaDelete, member("b", 3), blob("a")),
        DEFAULT_DENY,
    );
}

#[test]
fn search_and_keys_only_for_oneself() {
    let own = |who: &'static str| Attrs::default().with("owner", who);
    allowed(
        decide(Action::Search, user("a"), own("a")),
        "search-own-data",
    );
    denied(decide(Action::Search, user("a"), own("b")), DEFAULT_DENY);
    allowed(
        decide(Action::KeysPublish, user("a"), own("a")),
        "users-publish-own-keys",
    );
    denied(
        decide(Action::KeysPublish, user("a"), own("b")),
        DEFAULT_DENY,
    );
    allowed(
        decide(Action::KeysClaim, user("a"), own("b")),
        "users-claim-keys",
    );
}

#[test]
fn missing_attributes_never_match() {
    // No subject attributes at all: every action is refused by default deny.
    for a in Action::ALL {
        denied(decide(*a, Attrs::default(), Attrs::default()), DEFAULT_DENY);
    }
}

#[test]
fn explain_names_rule_and_reason() {
    let req = Request {
        action: Action::MessageSend,
        subject: member("a", 0).with("muted", true),
        resource: conv("group"),
        environment: Attrs::default(),
    };
    let set = default_set();
    let d = set.decide(&req);
    let text = set.explain(&req, &d);
    assert!(
        text.contains("muted-cannot-post") && text.contains("denied"),
        "{text}"
    );
}

#[test]
fn toml_documents_load_and_extend() {
    let set = PolicySet::from_toml(
        r#"
version = 1
extends = "default"

[[rules]]
id = "quiet-hours"
description = "no sends at night"
effect = "deny"
actions = ["message.send"]
when = { attr = "environment.hour", gte = 22 }
"#,
    )
    .unwrap();
    let req = |hour: i64| Request {
        action: Action::MessageSend,
        subject: member("a", 0),
        resource: conv("group"),
        environment: Attrs::default().with("hour", hour),
    };
    denied(set.decide(&req(23)), "quiet-hours");
    allowed(set.decide(&req(9)), "members-send");
}

#[track_caller]
fn load_error(json: &str, field: &str, reason_part: &str) {
    match PolicySet::from_json(json) {
        Err(crate::Error::InvalidArgument { field: f, reason }) => {
            assert_eq!(f, field, "{reason}");
            assert!(
                reason.contains(reason_part),
                "`{reason}` lacks `{reason_part}`"
            );
        }
        other => panic!("expected a load error at {field}, got {other:?}"),
    }
}

#[test]
fn malformed_documents_name_the_line_or_field() {
    load_error("{\n  \"version\": 1,\n  \"rules\": [ }", "policy", "line 3");
    load_error(
        r#"{"version": 1, "rulez": []}"#,
        "policy",
        "unknown field `rulez`",
    );
    load_error(r#"{"version": 2}"#, "version", "version 1");
    load_error(
        r#"{"version": 1, "extends": "other"}"#,
        "extends",
        "only `default`",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"allow","actions":["x.y"]}]}"#,
        "rules[0].actions[0]",
        "unknown action `x.y`",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"maybe","actions":["typing"]}]}"#,
        "rules[0].effect",
        "allow",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"allow","actions":["typing"]},{"id":"a","effect":"deny","actions":["typing"]}]}"#,
        "rules[1].id",
        "duplicate",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"allow","actions":["typing"],"when":{"all":[{"attr":"user.x","eq":1}]}}]}"#,
        "rules[0].when.all[0].attr",
        "unknown scope",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"allow","actions":["typing"],"when":{"attr":"subject.x"}}]}"#,
        "rules[0].when",
        "needs one operator",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"allow","actions":["typing"],"when":{"attr":"subject.x","eq":1,"ne":2}}]}"#,
        "rules[0].when",
        "only one operator",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"allow","actions":["typing"],"when":{"attr":"subject.x","eq":1.5}}]}"#,
        "rules[0].when.eq",
        "integer",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"a","effect":"allow","actions":["typing"],"when":{"attr":"subject.x","eq":1,"any":[]}}]}"#,
        "rules[0].when",
        "exactly one",
    );
    load_error(
        r#"{"version":1,"rules":[{"id":"default-deny","effect":"allow","actions":["typing"]}]}"#,
        "rules[0].id",
        "default-deny",
    );
    let toml_err = PolicySet::from_toml("version = 1\n\n[[rules]]\nid = 3\n").unwrap_err();
    assert!(toml_err.to_string().contains("line 4"), "{toml_err}");
}

mod props {
    use super::*;
    use proptest::prelude::*;

    fn attrs() -> impl Strategy<Value = Attrs> {
        (
            prop_oneof![Just("user"), Just("tenant"), Just("operator")],
            any::<bool>(),
            0i64..4,
            any::<bool>(),
            any::<bool>(),
            prop_oneof![Just("a"), Just("b")],
        )
            .prop_map(|(kind, is_member, rank, muted, banned, id)| {
                Attrs::default()
                    .with("kind", kind)
                    .with("id", id)
                    .with("is_member", is_member)
                    .with("member_rank", rank)
                    .with("muted", muted)
                    .with("banned", banned)
            })
    }

    fn resource() -> impl Strategy<Value = Attrs> {
        (
            prop_oneof![Just("direct"), Just("group"), Just("channel")],
            prop_oneof![Just("a"), Just("b")],
            0i64..4,
            0i64..4,
            any::<bool>(),
        )
            .prop_map(|(kind, owner, target, new, public)| {
                Attrs::default()
                    .with("conversation_kind", kind)
                    .with("owner", owner)
                    .with("target_user", owner)
                    .with("target_rank", target)
                    .with("new_rank", new)
                    .with("public", public)
            })
    }

    proptest! {
        /// Every decision names a rule that exists and has the decided effect; deny
        /// overrides; banned subjects are never allowed; muted never post.
        #[test]
        fn decisions_are_explained_and_safe(a in 0..Action::COUNT, s in attrs(), r in resource()) {
            let action = Action::ALL[a];
            let banned = matches!(s.get("banned"), Some(Value::Bool(true)));
            let muted = matches!(s.get("muted"), Some(Value::Bool(true)));
            let req = Request { action, subject: s, resource: r, environment: Attrs::default() };
            let set = default_set();
            let d = set.decide(&req);
            if &*d.rule == DEFAULT_DENY {
                prop_assert_eq!(d.effect, Effect::Deny);
            } else {
                let rule = set.rule(&d.rule).unwrap();
                prop_assert_eq!(rule.effect(), d.effect);
                prop_assert!(rule.actions().contains(&action));
            }
            if banned { prop_assert!(!d.is_allowed()); }
            if muted && action == Action::MessageSend { prop_assert!(!d.is_allowed()); }
            // Deny overrides: if any deny rule for the action matches, the result is a deny.
            for rule in set.rules().iter().filter(|r| r.effect() == Effect::Deny && r.actions().contains(&action)) {
                let only = PolicySet::new(vec![rule.clone()]);
                if only.decide(&req).rule == rule.id {
                    prop_assert_eq!(d.effect, Effect::Deny);
                }
            }
        }
    }
}
