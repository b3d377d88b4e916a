//! caas-core hot paths: an ABAC decision on the default set, one GCRA step, a
//! full send through the pipeline on the memory backends, and a webhook
//! delivery pass (read from the log, build, sign, hand to a sender that takes
//! everything), on one core.
//!
//! Run: `cargo bench --bench core`. `cargo test --bench core` (`scripts/test` runs
//! it) runs each benchmark once, unmeasured, so a broken setup fails the tests.

// `criterion_group!` generates an undocumented public function.
#![allow(missing_docs)]

use std::hint::black_box;
use std::sync::atomic::{AtomicU64, Ordering};

use caas::core::ids::{ClientMsgId, ConversationId, UserId};
use caas::core::model::{ConversationKind, TenantSettings};
use caas::core::policy::{Action, Attrs, Request, default_set};
use caas::core::ratelimit::{self, Quota};
use caas::core::service::{NewConversation, SendMessage};
use caas::core::time::Timestamp;
use caas::{Caas, Config, Principal};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

fn policy(c: &mut Criterion) {
    let set = default_set();
    let req = Request {
        action: Action::MessageSend,
        subject: Attrs::with_capacity(8)
            .with("kind", "user")
            .with("id", std::sync::Arc::<str>::from("alice"))
            .with("is_member", true)
            .with("member_role", "member")
            .with("member_rank", 0i64)
            .with("muted", false)
            .with("banned", false),
        resource: Attrs::with_capacity(4)
            .with("kind", "conversation")
            .with("conversation_kind", "group")
            .with("public", false),
        environment: Attrs::with_capacity(2)
            .with("now", 1_800_000_000i64)
            .with("hour", 10i64),
    };
    assert!(set.decide(&req).is_allowed());
    c.bench_function("abac_decide_default_set_send", |b| {
        b.iter(|| black_box(set.decide(black_box(&req))))
    });
    let denied = Request {
        subject: req.subject.clone().with("muted", true),
        ..req.clone()
    };
    c.bench_function("abac_decide_default_set_muted_deny", |b| {
        b.iter(|| black_box(set.decide(black_box(&denied))))
    });
}

fn gcra(c: &mut Criterion) {
    let q = Quota::per_minute(600);
    let mut now = 1_800_000_000_000_000_000u64;
    let mut tat = None;
    c.bench_function("gcra_check", |b| {
        b.iter(|| {
            now += 100_000_000;
            let d = ratelimit::check(black_box(&q), tat, Timestamp::from_nanos(now));
            if let ratelimit::Decision::Allow { new_tat, .. } = d {
                tat = Some(new_tat);
            }
            black_box(d)
        })
    });
}

/// Discards everything: isolates the pipeline from the cost of retaining data.
#[derive(Debug)]
struct Discard;

#[async_trait::async_trait]
impl caas::core::ports::EventLog for Discard {
    async fn append(
        &self,
        _: std::sync::Arc<caas::core::events::Event>,
    ) -> caas::Result<caas::core::ids::Cursor> {
        Ok(caas::core::ids::Cursor(0))
    }
    async fn read(
        &self,
        _: &caas::core::ids::TenantId,
        _: &UserId,
        _: caas::core::ids::Cursor,
        _: usize,
    ) -> caas::Result<Vec<caas::core::events::LoggedEvent>> {
        Ok(Vec::new())
    }
    async fn read_tenant(
        &self,
        _: &caas::core::ids::TenantId,
        _: caas::core::ids::Cursor,
        _: usize,
    ) -> caas::Result<Vec<caas::core::events::LoggedEvent>> {
        Ok(Vec::new())
    }
    async fn head(&self, _: &caas::core::ids::TenantId) -> caas::Result<caas::core::ids::Cursor> {
        Ok(caas::core::ids::Cursor(0))
    }
    /// Nothing is kept, so nothing changes.
    async fn scrub_messages(
        &self,
        _: &caas::core::ids::TenantId,
        _: &std::collections::HashSet<caas::core::ids::MessageId>,
    ) -> caas::Result<u64> {
        Ok(0)
    }
}

#[async_trait::async_trait]
impl caas::core::ports::SearchIndex for Discard {
    async fn index_message(&self, _: &caas::core::model::Message) -> caas::Result<()> {
        Ok(())
    }
    async fn remove_message(
        &self,
        _: &caas::core::ids::TenantId,
        _: &ConversationId,
        _: &caas::core::ids::MessageId,
    ) -> caas::Result<()> {
        Ok(())
    }
    async fn index_conversation(&self, _: &caas::core::model::Conversation) -> caas::Result<()> {
        Ok(())
    }
    async fn index_user(&self, _: &caas::core::model::User) -> caas::Result<()> {
        Ok(())
    }
    async fn search_messages(
        &self,
        _: &caas::core::ids::TenantId,
        _: &str,
        _: &[ConversationId],
        _: Option<(caas::core::ids::Seq, &ConversationId)>,
        _: usize,
    ) -> caas::Result<Vec<caas::core::ports::MessageHit>> {
        Ok(Vec::new())
    }
    async fn search_conversations(
        &self,
        _: &caas::core::ids::TenantId,
        _: &str,
        _: &[ConversationId],
        _: Option<&ConversationId>,
        _: usize,
    ) -> caas::Result<Vec<ConversationId>> {
        Ok(Vec::new())
    }
    async fn search_users(
        &self,
        _: &caas::core::ids::TenantId,
        _: &str,
        _: Option<&UserId>,
        _: usize,
    ) -> caas::Result<Vec<UserId>> {
        Ok(Vec::new())
    }
}

/// A tenant with alice, bob and carol in `n` group conversations.
fn setup(
    rt: &tokio::runtime::Runtime,
    backends: caas::core::ports::Backends,
    n: usize,
) -> (Caas, Principal, Vec<ConversationId>) {
    let caas = Caas::new(backends, Config::default());
    let (principal, convs) = rt.block_on(async {
        let mut settings = TenantSettings::default();
        // The pipeline still runs the GCRA step; the limit is just out of reach.
        settings
            .limits
            .insert("message.send".into(), Quota::per_second(u32::MAX));
        // Setup only: alice creates up to 1 000 conversations at once, far over the
        // default of 30 a minute. Creation is not measured, so raising its limit
        // changes nothing the benchmarks report.
        settings
            .limits
            .insert("conversation.create".into(), Quota::per_second(u32::MAX));
        let t = caas
            .create_tenant(&Principal::operator(), "bench", settings)
            .await
            .unwrap();
        let server = Principal::tenant_server(t.id.clone());
        for u in ["alice", "bob", "carol"] {
            caas.upsert_user(&server, &UserId::parse(u).unwrap(), u, Default::default())
                .await
                .unwrap();
        }
        let alice = Principal::user(t.id.clone(), UserId::parse("alice").unwrap());
        let mut convs = Vec::new();
        for _ in 0..n {
            let conv = caas
                .create_conversation(
                    &alice,
                    NewConversation {
                        kind: ConversationKind::Group,
                        members: vec![
                            UserId::parse("bob").unwrap(),
                            UserId::parse("carol").unwrap(),
                        ],
                        name: Some("bench".into()),
                        attributes: Default::default(),
                    },
                )
                .await
                .unwrap()
                .into_inner();
            convs.push(conv.id);
        }
        (alice, convs)
    });
    (caas, principal, convs)
}

/// Memory backends with at-rest encryption under managed per-user keys.
fn sealed() -> caas::core::ports::Backends {
    use caas::storage::encrypted::{self, ManagedKeyrings, MemoryKeyrings};
    let kek = caas_crypto::keys::KeyEncryptionKey::generate(
        caas_crypto::KeyId::new("kek-bench").unwrap(),
    )
    .unwrap();
    let keys = ManagedKeyrings::new(kek, std::sync::Arc::new(MemoryKeyrings::default()));
    encrypted::wrap(caas::storage::memory::backends(), std::sync::Arc::new(keys))
}

fn send(c: &mut Criterion) {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("pipeline");
    g.throughput(Throughput::Elements(1));
    let mut lean = caas::storage::memory::backends();
    lean.events = std::sync::Arc::new(Discard);
    lean.search = std::sync::Arc::new(Discard);
    let cases = [
        (
            "send_memory_1_conversation",
            caas::storage::memory::backends(),
            1,
        ),
        (
            "send_memory_1000_conversations",
            caas::storage::memory::backends(),
            1000,
        ),
        ("send_memory_no_sync_log_no_search", lean, 1000),
        // At-rest encryption as the platform runs it (each body sealed under its
        // sender's key, search by blind tokens), keys in memory.
        ("send_memory_sealed_1000_conversations", sealed(), 1000),
    ];
    for (name, backends, n) in cases {
        let (caas, principal, convs) = setup(&rt, backends, n);
        let i = AtomicU64::new(0);
        g.bench_function(name, |b| {
            b.iter(|| {
                let i = i.fetch_add(1, Ordering::Relaxed);
                let conv = &convs[(i % convs.len() as u64) as usize];
                let msg = SendMessage::text(
                    ClientMsgId::parse(&format!("k{i}")).unwrap(),
                    "hello, benchmark",
                );
                black_box(
                    rt.block_on(caas.send_message(&principal, conv, msg))
                        .unwrap(),
                )
            })
        });
    }
    g.finish();
}

/// Takes every delivery at once: what is left is the service's own work.
#[derive(Debug)]
struct Accept;

#[async_trait::async_trait]
impl caas::core::ports::WebhookSender for Accept {
    async fn send(
        &self,
        request: &caas::core::ports::WebhookRequest,
    ) -> caas::core::ports::WebhookOutcome {
        black_box(request);
        caas::core::ports::WebhookOutcome::Status(204)
    }
}

/// Events delivered per measured pass.
const WEBHOOK_EVENTS: usize = 100;

fn webhooks(c: &mut Criterion) {
    use caas::core::model::{PresenceStatus, WebhookProgress};
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let mut g = c.benchmark_group("webhooks");
    g.throughput(Throughput::Elements(WEBHOOK_EVENTS as u64));
    for (name, kinds) in [
        ("pass_100_messages", vec!["message.created".to_owned()]),
        (
            "pass_100_messages_with_push",
            vec!["message.created".to_owned(), "push.requested".to_owned()],
        ),
    ] {
        let backends = caas::storage::memory::backends();
        let (caas, alice, convs) = setup(&rt, backends, 1);
        let authority = caas_crypto::ports::CryptoAuthority::new(
            caas_crypto::secret::TenantSecret::generate()
                .unwrap()
                .hash(),
            &[3; 32],
            "bench",
        )
        .unwrap();
        let passwords = caas_crypto::ports::Argon2Passwords::new(
            caas_crypto::password::PasswordParams::INSECURE_FOR_TESTS,
        )
        .unwrap();
        let caas = caas
            .with_auth(
                std::sync::Arc::new(authority),
                std::sync::Arc::new(passwords),
            )
            .with_webhook_sender(std::sync::Arc::new(Accept));
        let tenant = alice.tenant.clone().unwrap();
        let server = Principal::tenant_server(tenant.clone());
        let (id, start) = rt.block_on(async {
            let hook = caas
                .create_webhook(
                    &server,
                    caas::core::service::NewWebhook {
                        url: "https://hooks.example.com/caas".into(),
                        kinds,
                        disabled: false,
                    },
                )
                .await
                .unwrap();
            // Carol is online, Bob is not: each push names one recipient.
            let carol = Principal::user(tenant.clone(), UserId::parse("carol").unwrap());
            caas.set_presence(&carol, PresenceStatus::Online)
                .await
                .unwrap();
            for i in 0..WEBHOOK_EVENTS {
                let msg = SendMessage::text(
                    ClientMsgId::parse(&format!("w{i}")).unwrap(),
                    "hello, webhook benchmark",
                );
                caas.send_message(&alice, &convs[0], msg).await.unwrap();
            }
            (hook.webhook.id, hook.webhook.progress)
        });
        g.bench_function(name, |b| {
            b.iter_batched(
                || {
                    // Back to before the messages, so each pass sends them all.
                    rt.block_on(caas.backends().webhooks.claim(
                        &tenant,
                        &id,
                        "bench",
                        caas.now(),
                        caas.now().plus(std::time::Duration::from_secs(3600)),
                    ))
                    .unwrap();
                    rt.block_on(caas.backends().webhooks.progress(
                        &tenant,
                        &id,
                        "bench",
                        &WebhookProgress {
                            cursor: start.cursor,
                            ..WebhookProgress::default()
                        },
                    ))
                    .unwrap()
                },
                |_| {
                    let pass = rt
                        .block_on(caas.deliver_webhook(&tenant, &id, "bench"))
                        .unwrap();
                    assert!(pass.delivered >= WEBHOOK_EVENTS as u64);
                    black_box(pass)
                },
                criterion::BatchSize::PerIteration,
            )
        });
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().warm_up_time(std::time::Duration::from_secs(1)).measurement_time(std::time::Duration::from_secs(4));
    targets = policy, gcra, send, webhooks
}
criterion_main!(benches);
