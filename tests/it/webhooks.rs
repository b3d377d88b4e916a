//! Webhooks through the public service API on every backend set, delivered by
//! the real HTTP client to a real receiver on 127.0.0.1 that verifies every
//! signature and fails on purpose.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use caas::core::ids::WebhookId;
use caas::core::model::TenantSettings;
use caas::core::service::{NewWebhook, WebhookChange, WebhookConfig, WebhookWithSecret};
use caas::{Caas, Config, Error};
use caas_adapters::webhooks::{HttpWebhookConfig, HttpWebhookSender};
use caas_crypto::ports::{Argon2Passwords, CryptoAuthority};
use caas_crypto::secret::TenantSecret;

use crate::receiver::Receiver;
use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden};

on_every_set!(async
    deliveries_are_signed_in_order_and_exactly_once_after_dedupe,
    a_delivery_that_keeps_failing_becomes_a_dead_letter_and_replays,
    a_rotation_signs_with_both_secrets_until_the_old_one_expires,
        a_crashed_node_loses_nothing_and_two_nodes_share_an_endpoint,
    a_slow_receiver_never_lets_the_lease_lapse_mid_pass,
    endpoints_are_validated_authorized_and_managed,
);

/// Attempts before a dead letter, in these tests.
const ATTEMPTS: u32 = 4;

fn config() -> Config {
    Config {
        webhooks: WebhookConfig {
            max_attempts: ATTEMPTS,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(8),
            allow_insecure_urls: true,
            ..WebhookConfig::default()
        },
        ..Config::default()
    }
}

async fn world(set: Set) -> World {
    World::with_service(
        set,
        &["alice", "bob", "carol"],
        TenantSettings::default(),
        config(),
        with_webhooks,
    )
    .await
}

fn with_webhooks(caas: Caas) -> Caas {
    let authority =
        CryptoAuthority::new(TenantSecret::generate().unwrap().hash(), &[5; 32], "test-1").unwrap();
    let passwords =
        Argon2Passwords::new(caas_crypto::password::PasswordParams::INSECURE_FOR_TESTS).unwrap();
    let sender = HttpWebhookSender::new(HttpWebhookConfig {
        allow_private_addresses: true,
        ..HttpWebhookConfig::default()
    })
    .unwrap();
    caas.with_auth(Arc::new(authority), Arc::new(passwords))
        .with_webhook_sender(Arc::new(sender))
}

async fn endpoint(w: &World, r: &Receiver, kinds: &[&str]) -> WebhookWithSecret {
    let created = w
        .caas
        .create_webhook(
            &w.server(),
            NewWebhook {
                url: r.url.clone(),
                kinds: kinds.iter().map(|k| k.to_string()).collect(),
                disabled: false,
            },
        )
        .await
        .unwrap();
    r.set_secrets(&[&created.secret]);
    created
}

/// Runs delivery passes as `holder`, moving the clock past each backoff, until
/// the endpoint has caught up with the log (at most `rounds` passes). The
/// `online` users' clients report their presence before every pass.
async fn drain(w: &World, r: &Receiver, id: &WebhookId, holder: &str, rounds: usize) {
    drain_online(w, r, id, holder, rounds, &[]).await
}

async fn drain_online(
    w: &World,
    r: &Receiver,
    id: &WebhookId,
    holder: &str,
    rounds: usize,
    online: &[&str],
) {
    for _ in 0..rounds {
        for u in online {
            w.caas
                .set_presence(&w.user(u), caas::core::model::PresenceStatus::Online)
                .await
                .unwrap();
        }
        r.set_now(w.caas.now().as_secs());
        w.caas.deliver_webhook(&w.tenant, id, holder).await.unwrap();
        let hook = w.caas.get_webhook(&w.server(), id).await.unwrap();
        let head = w.caas.backends().events.head(&w.tenant).await.unwrap();
        if hook.progress.cursor == head && hook.progress.retry_at.is_none() {
            return;
        }
        w.clock.advance(Duration::from_secs(10));
    }
    panic!("delivery did not catch up in {rounds} passes");
}

async fn deliveries_are_signed_in_order_and_exactly_once_after_dedupe(set: Set) {
    let w = world(set).await;
    let r = Receiver::start().await;
    let hook = endpoint(&w, &r, &["message.created", "push.requested"]).await;
    let id = hook.webhook.id.clone();
    let g = w.group("alice", &["bob", "carol"]).await;
    // Carol is online; Bob is not: only Bob is pushed.
    // The first attempts fail, then every fourth request: some events are
    // retried after their message already arrived (a push failed after it).
    r.fail_next(2);
    r.fail_every(4);
    let mut sent = Vec::new();
    for n in 0..12 {
        sent.push(
            w.send("alice", &g, &format!("k{n}"), &format!("hello {n}"))
                .await
                .unwrap()
                .message,
        );
    }
    drain_online(&w, &r, &id, "node-1", 200, &["carol"]).await;

    assert_eq!(r.bad_signatures(), 0);
    assert!(r.refused() > 2, "the receiver failed on purpose");
    let taken = r.taken();
    let deduped = r.deduped();
    assert!(
        taken.len() > deduped.len(),
        "at least once: some deliveries came twice"
    );
    // Exactly once after dedupe: one message and one push per send, in order.
    let mut firsts: Vec<String> = Vec::new();
    for t in &taken {
        if t.kind == "message.created" && !firsts.contains(&t.id) {
            firsts.push(t.id.clone());
        }
    }
    let messages: Vec<String> = firsts
        .iter()
        .map(|id| {
            let t = taken.iter().find(|t| &t.id == id).unwrap();
            t.body["data"]["message"]["id"].as_str().unwrap().to_owned()
        })
        .collect();
    assert_eq!(
        messages,
        sent.iter().map(|m| m.id.to_string()).collect::<Vec<_>>(),
        "every message once, in send order"
    );
    let pushes: Vec<&crate::receiver::Taken> = taken
        .iter()
        .filter(|t| t.kind == "push.requested")
        .collect();
    let push_ids: std::collections::BTreeSet<&str> = pushes.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(push_ids.len(), sent.len(), "one push per message");
    for p in &pushes {
        assert_eq!(p.body["data"]["recipients"], serde_json::json!(["bob"]));
        assert_eq!(p.body["data"]["sender_id"], "alice");
        assert!(p.id.ends_with(".push"));
    }
    assert_eq!(deduped.len(), sent.len() * 2);
    // Every body names its tenant and cursor; nothing else was sent.
    for t in &taken {
        assert_eq!(t.body["tenant"], w.tenant.as_str());
        assert!(matches!(
            t.kind.as_str(),
            "message.created" | "push.requested"
        ));
    }
    let state = w.caas.get_webhook(&w.server(), &id).await.unwrap();
    assert_eq!(state.progress.attempts, 0);
    // A message delivered long after it was sent is not pushed any more.
    r.fail_every(0);
    let late = w
        .send("alice", &g, "late", "old news")
        .await
        .unwrap()
        .message;
    w.clock.advance(Duration::from_secs(11 * 60));
    drain(&w, &r, &id, "node-1", 5).await;
    let last = r.taken();
    let last: Vec<&crate::receiver::Taken> = last
        .iter()
        .filter(|t| t.body["cursor"] == last.last().unwrap().body["cursor"])
        .collect();
    assert_eq!(last.len(), 1, "the message, and no push");
    assert_eq!(last[0].body["data"]["message"]["id"], late.id.as_str());
    assert!(
        w.caas
            .dead_letters(&w.server(), &id)
            .await
            .unwrap()
            .is_empty()
    );
}

async fn a_delivery_that_keeps_failing_becomes_a_dead_letter_and_replays(set: Set) {
    let w = world(set).await;
    let r = Receiver::start().await;
    let g = w.group("alice", &["bob"]).await;
    let id = endpoint(&w, &r, &["*"]).await.webhook.id;
    r.set_down(true);
    let lost = w
        .send("alice", &g, "k1", "nobody hears this")
        .await
        .unwrap()
        .message;
    for _ in 0..ATTEMPTS {
        r.set_now(w.caas.now().as_secs());
        w.caas.deliver_webhook(&w.tenant, &id, "n1").await.unwrap();
        w.clock.advance(Duration::from_secs(10));
    }
    let letters = w.caas.dead_letters(&w.server(), &id).await.unwrap();
    let names: Vec<&str> = letters.iter().map(|l| l.id.as_str()).collect();
    let cursor = letters[0].cursor;
    assert_eq!(
        names,
        [cursor.0.to_string(), format!("{}.push", cursor.0)],
        "the message and its push, given up together"
    );
    assert!(letters.iter().all(|l| l.attempts == ATTEMPTS));
    assert!(
        letters[0].last_error.contains("500"),
        "{}",
        letters[0].last_error
    );
    assert!(r.taken().is_empty());

    // The endpoint moved on: the next message arrives.
    r.set_down(false);
    let next = w
        .send("alice", &g, "k2", "this one arrives")
        .await
        .unwrap()
        .message;
    drain(&w, &r, &id, "n1", 20).await;
    let ids: Vec<String> = r
        .taken()
        .iter()
        .filter(|t| t.kind == "message.created")
        .map(|t| t.body["data"]["message"]["id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(ids, [next.id.to_string()]);

    // A replay of a letter that does not exist names it.
    let missing = w
        .caas
        .replay_dead_letters(&w.server(), &id, Some(vec!["999".into()]))
        .await;
    assert!(
        matches!(missing, Err(Error::NotFound { .. })),
        "{missing:?}"
    );
    // Failing again keeps the letter, with one more attempt.
    r.set_down(true);
    r.set_now(w.caas.now().as_secs());
    let again = w
        .caas
        .replay_dead_letters(&w.server(), &id, Some(vec![cursor.0.to_string()]))
        .await
        .unwrap();
    assert_eq!(again.failed.len(), 1);
    assert!(again.delivered.is_empty());
    let kept = w.caas.dead_letters(&w.server(), &id).await.unwrap();
    assert_eq!(kept[0].attempts, ATTEMPTS + 1);
    // Replayed for real: delivered now, and gone from the list.
    r.set_down(false);
    let replay = w
        .caas
        .replay_dead_letters(&w.server(), &id, None)
        .await
        .unwrap();
    assert_eq!(
        replay.delivered.len() + replay.skipped.len(),
        2,
        "{replay:?}"
    );
    assert!(replay.failed.is_empty());
    assert!(
        w.caas
            .dead_letters(&w.server(), &id)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(r.taken().iter().any(
        |t| t.kind == "message.created" && t.body["data"]["message"]["id"] == lost.id.as_str()
    ));
    assert_eq!(r.bad_signatures(), 0);
}

async fn a_rotation_signs_with_both_secrets_until_the_old_one_expires(set: Set) {
    let w = world(set).await;
    let r = Receiver::start().await;
    let first = endpoint(&w, &r, &["message.created"]).await;
    let id = first.webhook.id.clone();
    let second = w
        .caas
        .rotate_webhook_secret(&w.server(), &id, Some(3600))
        .await
        .unwrap();
    assert_ne!(first.secret, second.secret);
    assert_eq!(second.webhook.secrets.len(), 2);

    r.set_secrets(&[&first.secret, &second.secret]);
    let g = w.group("alice", &["bob"]).await;
    w.send("alice", &g, "k1", "during the grace").await.unwrap();
    drain(&w, &r, &id, "n1", 5).await;
    assert_eq!(r.taken().last().unwrap().signed_by, [0, 1]);

    w.clock.advance(Duration::from_secs(3601));
    w.send("alice", &g, "k2", "after it").await.unwrap();
    drain(&w, &r, &id, "n1", 5).await;
    assert_eq!(
        r.taken().last().unwrap().signed_by,
        [1],
        "the old secret stopped"
    );
    // A rotation with no grace stops the current secret at once; rotations
    // in a row keep at most the new one and the one before.
    let third = w
        .caas
        .rotate_webhook_secret(&w.server(), &id, Some(0))
        .await
        .unwrap();
    assert_eq!(third.webhook.secrets.len(), 1);
    for _ in 0..10 {
        let again = w
            .caas
            .rotate_webhook_secret(&w.server(), &id, Some(3600))
            .await
            .unwrap();
        assert_eq!(again.webhook.secrets.len(), 2);
    }
    let too_long = w
        .caas
        .rotate_webhook_secret(&w.server(), &id, Some(8 * 24 * 3600))
        .await;
    assert!(matches!(too_long, Err(Error::InvalidArgument { .. })));
    // No response or listing ever shows a secret.
    let listed = serde_json::to_string(&w.caas.list_webhooks(&w.server()).await.unwrap()).unwrap();
    for s in [&first.secret, &second.secret, &third.secret] {
        assert!(!listed.contains(s.as_str()));
    }
    assert!(!format!("{third:?}").contains(third.secret.as_str()));
}

async fn a_crashed_node_loses_nothing_and_two_nodes_share_an_endpoint(set: Set) {
    let w = world(set).await;
    let r = Receiver::start().await;
    let id = endpoint(&w, &r, &["message.created"]).await.webhook.id;
    let g = w.group("alice", &["bob"]).await;
    for n in 0..5 {
        w.send("alice", &g, &format!("k{n}"), "before the crash")
            .await
            .unwrap();
    }
    // Node 1 takes the endpoint and dies before recording anything.
    let now = w.caas.now();
    assert!(
        w.caas
            .backends()
            .webhooks
            .claim(
                &w.tenant,
                &id,
                "node-1",
                now,
                now.plus(Duration::from_secs(60))
            )
            .await
            .unwrap()
            .is_some()
    );
    r.set_now(now.as_secs());
    let pass = w
        .caas
        .deliver_webhook(&w.tenant, &id, "node-2")
        .await
        .unwrap();
    assert_eq!(pass.delivered, 0, "the lease keeps node 2 off");
    // Its lease runs out: node 2 delivers everything.
    w.clock.advance(Duration::from_secs(61));
    drain(&w, &r, &id, "node-2", 10).await;
    assert_eq!(r.deduped().len(), 5);

    // Two nodes racing on one endpoint lose nothing either.
    for n in 5..25 {
        w.send("alice", &g, &format!("k{n}"), "while both run")
            .await
            .unwrap();
    }
    r.fail_every(4);
    r.set_now(w.caas.now().as_secs());
    let (c1, c2) = (w.caas.clone(), w.caas.clone());
    let (t1, t2) = (w.tenant.clone(), w.tenant.clone());
    let (i1, i2) = (id.clone(), id.clone());
    for _ in 0..40 {
        let a = tokio::spawn({
            let (c, t, i) = (c1.clone(), t1.clone(), i1.clone());
            async move { c.deliver_webhook(&t, &i, "node-1").await.unwrap() }
        });
        let b = tokio::spawn({
            let (c, t, i) = (c2.clone(), t2.clone(), i2.clone());
            async move { c.deliver_webhook(&t, &i, "node-2").await.unwrap() }
        });
        a.await.unwrap();
        b.await.unwrap();
        w.clock.advance(Duration::from_secs(61));
        r.set_now(w.caas.now().as_secs());
    }
    drain(&w, &r, &id, "node-1", 20).await;
    let deduped = r.deduped();
    assert_eq!(deduped.len(), 25, "every event, once after dedupe");
    let head = w.caas.backends().events.head(&w.tenant).await.unwrap();
    assert_eq!(
        w.caas
            .get_webhook(&w.server(), &id)
            .await
            .unwrap()
            .progress
            .cursor,
        head
    );
}

async fn endpoints_are_validated_authorized_and_managed(set: Set) {
    let w = world(set).await;
    let r = Receiver::start().await;
    let new = |url: &str, kinds: &[&str]| NewWebhook {
        url: url.into(),
        kinds: kinds.iter().map(|k| k.to_string()).collect(),
        disabled: false,
    };
    forbidden(
        w.caas
            .create_webhook(&w.user("alice"), new(&r.url, &["*"]))
            .await,
        "default-deny",
    );
    for (url, kinds) in [
        ("ftp://example.com/x", &["*"][..]),
        ("https://user:pw@example.com/x", &["*"][..]),
        (r.url.as_str(), &[][..]),
        (r.url.as_str(), &["typing"][..]),
    ] {
        let e = w.caas.create_webhook(&w.server(), new(url, kinds)).await;
        assert!(
            matches!(e, Err(Error::InvalidArgument { .. })),
            "{url} {kinds:?}: {e:?}"
        );
    }
    let made = w
        .caas
        .create_webhook(
            &w.server(),
            new(&r.url, &["member.joined", "message.created"]),
        )
        .await
        .unwrap();
    assert!(made.secret.starts_with("whsec_"));
    let id = made.webhook.id.clone();
    // It starts at the head of the log: nothing earlier is sent.
    assert_eq!(
        made.webhook.progress.cursor,
        w.caas.backends().events.head(&w.tenant).await.unwrap()
    );
    let changed = w
        .caas
        .update_webhook(
            &w.server(),
            &id,
            WebhookChange {
                kinds: Some(vec!["conversation.created".into()]),
                disabled: Some(true),
                ..WebhookChange::default()
            },
        )
        .await
        .unwrap();
    assert!(changed.disabled);
    assert_eq!(changed.kinds, ["conversation.created"]);
    // A disabled endpoint gets nothing and keeps its place.
    r.set_secrets(&[&made.secret]);
    let g = w.group("alice", &["bob"]).await;
    w.caas.deliver_webhook(&w.tenant, &id, "n1").await.unwrap();
    assert!(r.taken().is_empty());
    assert!(
        !w.caas
            .webhooks_due(None, 10_000)
            .await
            .unwrap()
            .iter()
            .any(|(_, i)| *i == id)
    );
    // Enabled again, it delivers what it missed.
    w.caas
        .update_webhook(
            &w.server(),
            &id,
            WebhookChange {
                disabled: Some(false),
                ..WebhookChange::default()
            },
        )
        .await
        .unwrap();
    drain(&w, &r, &id, "n1", 5).await;
    let created = r.taken();
    assert_eq!(created.len(), 1);
    assert_eq!(created[0].body["data"]["conversation"]["id"], g.as_str());
    let cursor = created[0].body["cursor"].as_u64().unwrap();
    assert_eq!(created[0].id, cursor.to_string());

    // A PATCH and a rotation at once undo neither: the secret the rotation
    // showed signs, and the PATCH's URL stays.
    let server = w.server();
    for n in 0..5 {
        let url = format!("{}?n={n}", r.url);
        let patch = w.caas.update_webhook(
            &server,
            &id,
            WebhookChange {
                url: Some(url.clone()),
                ..WebhookChange::default()
            },
        );
        let rotate = w.caas.rotate_webhook_secret(&server, &id, Some(60));
        let (patched, rotated) = tokio::join!(patch, rotate);
        patched.unwrap();
        let rotated = rotated.unwrap();
        let stored = w
            .caas
            .backends()
            .webhooks
            .get(&w.tenant, &id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.url, url);
        assert_eq!(stored.secrets[0].secret, rotated.secret);
    }

    // Another tenant cannot see or touch it.
    let other = caas::Principal::tenant_server(w.add_tenant(&[]).await);
    assert!(matches!(
        w.caas.get_webhook(&other, &id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.caas.delete_webhook(&other, &id).await,
        Err(Error::NotFound { .. })
    ));
    // At most ten per tenant.
    for _ in 1..10 {
        w.caas
            .create_webhook(&w.server(), new(&r.url, &["*"]))
            .await
            .unwrap();
    }
    let e = w
        .caas
        .create_webhook(&w.server(), new(&r.url, &["*"]))
        .await;
    assert!(matches!(e, Err(Error::InvalidArgument { .. })), "{e:?}");
    // Every change was audited.
    let audit = w.caas.audit_log(&w.server(), 0, 200).await.unwrap();
    let ops: BTreeMap<String, usize> =
        audit
            .iter()
            .filter(|a| a.action == "webhook.manage")
            .fold(BTreeMap::new(), |mut m, a| {
                *m.entry(a.detail["op"].as_str().unwrap().to_owned())
                    .or_insert(0) += 1;
                m
            });
    assert_eq!(ops.get("create"), Some(&10));
    assert_eq!(ops.get("update"), Some(&7));
    assert_eq!(ops.get("rotate_secret"), Some(&5));
    w.caas.delete_webhook(&w.server(), &id).await.unwrap();
    assert!(matches!(
        w.caas.get_webhook(&w.server(), &id).await,
        Err(Error::NotFound { .. })
    ));
}

/// A sender whose every request takes `step` of the manual clock, and which
/// checks, while "in flight", that no other node can take the endpoint.
#[derive(Debug)]
struct SlowSender {
    inner: HttpWebhookSender,
    step: Duration,
    /// The world, once it exists: its clock and its store.
    world: std::sync::OnceLock<(
        Arc<caas::core::time::ManualClock>,
        caas::core::ports::Backends,
    )>,
    stolen: std::sync::atomic::AtomicUsize,
}

#[async_trait::async_trait]
impl caas::core::ports::WebhookSender for SlowSender {
    async fn send(
        &self,
        request: &caas::core::ports::WebhookRequest,
    ) -> caas::core::ports::WebhookOutcome {
        let outcome = self.inner.send(request).await;
        if let Some((clock, backends)) = self.world.get() {
            clock.advance(self.step);
            let header = |name: &str| {
                request
                    .headers
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, v)| v.clone())
                    .unwrap()
            };
            let tenant = caas::core::ids::TenantId::parse(&header("caas-tenant-id")).unwrap();
            let id = WebhookId::parse(&header("caas-webhook-id")).unwrap();
            let now = caas::core::time::Clock::now(clock.as_ref());
            let taken = backends
                .webhooks
                .claim(
                    &tenant,
                    &id,
                    "intruder",
                    now,
                    now.plus(Duration::from_secs(60)),
                )
                .await
                .unwrap();
            if taken.is_some() {
                self.stolen
                    .fetch_add(1, std::sync::atomic::Ordering::SeqCst);
            }
        }
        outcome
    }
}

async fn a_slow_receiver_never_lets_the_lease_lapse_mid_pass(set: Set) {
    let slow = Arc::new(SlowSender {
        inner: HttpWebhookSender::new(HttpWebhookConfig {
            allow_private_addresses: true,
            ..HttpWebhookConfig::default()
        })
        .unwrap(),
        // Each request takes a third of the lease (60 s): a pass of several
        // events outlives the lease it started with.
        step: Duration::from_secs(20),
        world: std::sync::OnceLock::new(),
        stolen: std::sync::atomic::AtomicUsize::new(0),
    });
    let sender = slow.clone();
    let w = World::with_service(
        set,
        &["alice", "bob"],
        TenantSettings::default(),
        config(),
        move |caas| with_webhooks(caas).with_webhook_sender(sender),
    )
    .await;
    let _ = slow.world.set((w.clock.clone(), w.caas.backends().clone()));
    let r = Receiver::start().await;
    let id = endpoint(&w, &r, &["message.created"]).await.webhook.id;
    let g = w.group("alice", &["bob"]).await;
    for n in 0..8 {
        w.send("alice", &g, &format!("k{n}"), "slowly")
            .await
            .unwrap();
    }
    // The receiver checks signatures against the time a request was signed,
    // which the slow sender moves on after each: a window wide enough.
    r.set_now(w.caas.now().as_secs() + 80);
    let started = w.caas.now();
    let pass = w
        .caas
        .deliver_webhook(&w.tenant, &id, "node-1")
        .await
        .unwrap();
    assert_eq!(pass.delivered, 8, "one pass delivered everything");
    assert!(w.caas.now().since(started) > Duration::from_secs(120));
    assert_eq!(
        slow.stolen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "no other node could take the endpoint while the pass ran"
    );
    assert_eq!(r.deduped().len(), 8);
    assert_eq!(r.taken().len(), 8, "and nothing was sent twice");
}
