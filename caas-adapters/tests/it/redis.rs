//! The `redis` module against a real Redis 7: the contract suites of every port
//! it implements, the cross-node guarantees (revocation, the read cache), and
//! faults on servers these tests start and stop themselves.
//!
//! The shared server is `CAAS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`);
//! every case uses its own key prefix and tenant, and never flushes anything.
//! Fault tests run their own `redis-server` (`CAAS_TEST_REDIS_SERVER`, default
//! `redis-server` on the `PATH`) on a free port and a temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::recovery::{eventually, unavailable};
use caas_adapters::redis::{Redis, RedisConfig};
use caas_core::events::EventPayload;
use caas_core::ids::{CorrelationId, DeviceId, TenantId, UserId};
use caas_core::model::{
    Conversation, ConversationKind, Member, PresenceStatus, Role, TenantSettings,
};
use caas_core::ports::{
    Backends, BusMessage, ConversationStore, EventBus, PresenceStore, RateLimitStore, Subscription,
};
use caas_core::ratelimit::{self, Decision, Quota, RateKey};
use caas_core::testkit::{conversation, events::event, t, tenant, user};
use caas_core::time::{ManualClock, Timestamp};
use caas_core::{Caas, Config, Error, Principal};
use caas_storage::memory::MemoryConversationStore;

fn url() -> String {
    std::env::var("CAAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into())
}

/// A configuration on the shared server with a prefix of its own.
fn config() -> RedisConfig {
    RedisConfig {
        key_prefix: format!("caas-test:{:016x}:", fastrand::u64(..)),
        presence_retention: Duration::from_secs(600),
        ..RedisConfig::new(url())
    }
}

fn redis() -> Redis {
    Redis::new(config()).unwrap()
}

async fn fresh() -> Backends {
    let r = redis();
    Backends {
        presence: Arc::new(r.presence()),
        rate_limits: Arc::new(r.rate_limits()),
        bus: Arc::new(r.bus()),
        revocations: Arc::new(r.revocations()),
        ..caas_storage::memory::backends()
    }
}

caas_core::contract_suites!(fresh().await; presence, rate_limits, bus, revocations);

/// The conversation store's own contract holds through the read cache.
mod cached {
    use super::*;

    async fn cached() -> Backends {
        Backends {
            conversations: Arc::new(
                redis().cache_conversations(Arc::new(MemoryConversationStore::default())),
            ),
            ..caas_storage::memory::backends()
        }
    }

    caas_core::contract_suites!(cached().await; conversations);
}

/// A raw command on the shared server, for tests that look at or spoil keys.
async fn raw(args: &[&str]) -> redis::Value {
    let client = redis::Client::open(url()).unwrap();
    let mut c = client.get_multiplexed_async_connection().await.unwrap();
    let mut cmd = redis::cmd(args[0]);
    for a in &args[1..] {
        cmd.arg(*a);
    }
    cmd.query_async(&mut c).await.unwrap()
}

#[tokio::test]
async fn the_gcra_script_decides_as_the_core_does() {
    let store = redis().rate_limits();
    let tn = tenant();
    const S: u64 = 1_000_000_000;
    let quotas = [
        Quota::per_minute(3),
        Quota::per_second(1000),
        Quota {
            limit: 7,
            period_secs: 86_400,
            burst: Some(2),
        },
        // A window far beyond 2^53 nanoseconds: exact only with whole-integer math.
        Quota {
            limit: 1,
            period_secs: u32::MAX,
            burst: Some(u32::MAX),
        },
    ];
    for (qi, q) in quotas.iter().enumerate() {
        for start in [1_700_000_000 * S, u64::MAX - 10 * S, 3] {
            let key = RateKey::new(&tn, format!("q{qi}-{start}"), "search");
            let mut tat: Option<u64> = None;
            let mut now = start;
            for step in 0..60u64 {
                let got = store
                    .check(&key, q, Timestamp::from_nanos(now))
                    .await
                    .unwrap();
                let want = ratelimit::check(q, tat, Timestamp::from_nanos(now));
                assert_eq!(got, want, "quota {q:?}, start {start}, step {step}");
                if let Decision::Allow { new_tat, .. } = want {
                    tat = Some(new_tat);
                }
                // Uneven steps, some of them inside one emission interval.
                now = now
                    .saturating_add((q.emission_interval() / 5).saturating_mul(step * 7919 % 13));
            }
        }
    }
}

#[tokio::test]
async fn corrupt_rate_state_is_an_error_not_a_panic() {
    let cfg = config();
    let store = Redis::new(cfg.clone()).unwrap().rate_limits();
    let tn = tenant();
    let key = RateKey::new(&tn, "alice", "search");
    let name = format!("{}rl:{{{}}}:search:alice", cfg.key_prefix, tn.as_str());
    raw(&["SET", &name, "not a number", "EX", "60"]).await;
    let err = store
        .check(&key, &Quota::per_minute(3), t(0))
        .await
        .unwrap_err();
    assert!(err.to_string().contains("rate limit"), "{err}");
}

#[tokio::test]
async fn presence_keeps_one_expiring_hash_per_user_and_skips_garbage() {
    let cfg = config();
    let store = Redis::new(cfg.clone()).unwrap().presence();
    let tn = tenant();
    let alice = user("alice");
    let phone = DeviceId::parse("phone").unwrap();
    store
        .set(
            &tn,
            &alice,
            &phone,
            PresenceStatus::Online,
            t(0),
            Duration::from_secs(30),
        )
        .await
        .unwrap();
    let name = format!("{}presence:{{{}}}:alice", cfg.key_prefix, tn.as_str());
    let redis::Value::Int(ttl) = raw(&["PTTL", &name]).await else {
        panic!("no expiry")
    };
    assert!(ttl > 590_000 && ttl <= 600_000, "{ttl}");
    // Fields nobody should have written are skipped on read and dropped on write.
    raw(&["HSET", &name, "d:evil", "7:x", "junk", "1"]).await;
    let p = store
        .get(&tn, std::slice::from_ref(&alice), t(10))
        .await
        .unwrap();
    assert_eq!(p[0].status, PresenceStatus::Online);
    let c = store.clear(&tn, &alice, &phone, t(11)).await.unwrap();
    assert_eq!(
        (c.before, c.after.status, c.after.last_seen),
        (PresenceStatus::Online, PresenceStatus::Offline, Some(t(11)))
    );
    let redis::Value::Array(left) = raw(&["HKEYS", &name]).await else {
        panic!("not a hash")
    };
    assert_eq!(left.len(), 1, "only `seen` is left: {left:?}");
}

async fn next_message(sub: &mut Box<dyn Subscription>) -> BusMessage {
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a message within 10 s")
        .expect("the bus is open")
}

/// The next event of `tn`, skipping others; `Lagged` notices are returned.
async fn next_of(sub: &mut Box<dyn Subscription>, tn: &TenantId) -> BusMessage {
    loop {
        match next_message(sub).await {
            BusMessage::Event(e) if e.tenant != *tn => continue,
            m => return m,
        }
    }
}

fn seq_of(m: &BusMessage) -> Option<u64> {
    match m {
        BusMessage::Event(e) => match &e.payload {
            EventPayload::ReceiptUpdated { seq, .. } => Some(seq.get()),
            _ => None,
        },
        BusMessage::Lagged { .. } => None,
    }
}

#[tokio::test]
async fn the_bus_skips_garbage_and_refuses_oversized_events() {
    let cfg = RedisConfig {
        max_event_bytes: 4096,
        ..config()
    };
    let r = Redis::new(cfg.clone()).unwrap();
    let (publisher, listener) = (r.bus(), r.bus());
    let mut sub = listener.subscribe().await.unwrap();
    let channel = format!("{}bus", cfg.key_prefix);
    raw(&["PUBLISH", &channel, "{\"not\": \"an event\"}"]).await;
    raw(&["PUBLISH", &channel, &"x".repeat(5000)]).await;
    let (tn, c) = (tenant(), conversation());
    publisher
        .publish(Arc::new(event(&tn, &c, &["a"], 1)))
        .await
        .unwrap();
    assert!(matches!(
        next_of(&mut sub, &tn).await,
        BusMessage::Lagged { missed: 1 }
    ));
    assert!(matches!(
        next_of(&mut sub, &tn).await,
        BusMessage::Lagged { missed: 1 }
    ));
    assert_eq!(seq_of(&next_of(&mut sub, &tn).await), Some(1));
    assert_eq!(listener.stats().garbage, 2);

    let mut big = event(&tn, &c, &["a"], 2);
    big.audience = (0..400)
        .map(|i| UserId::parse(&format!("user-with-a-long-name-{i}")).unwrap())
        .collect::<Vec<_>>()
        .into();
    assert!(matches!(
        publisher.publish(Arc::new(big)).await,
        Err(Error::PayloadTooLarge { .. })
    ));
}

fn group(tn: &TenantId) -> Conversation {
    Conversation {
        tenant: tn.clone(),
        id: conversation(),
        kind: ConversationKind::Group,
        name: Some("team".into()),
        attributes: Default::default(),
        created_by: None,
        direct_key: None,
        created_at: t(0),
    }
}

fn member(c: &Conversation, u: &str) -> Member {
    Member::new(c.id.clone(), user(u), Role::Member, t(0))
}

fn names(ms: &[Member]) -> Vec<&str> {
    ms.iter().map(|m| m.user.as_str()).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_member_removed_on_one_node_is_gone_from_the_next_read_on_another() {
    let cfg = config();
    let shared: Arc<dyn ConversationStore> = Arc::new(MemoryConversationStore::default());
    // Two nodes: their own connections and caches, one store and one Redis.
    let a = Redis::new(cfg.clone())
        .unwrap()
        .cache_conversations(shared.clone());
    let b = Redis::new(cfg).unwrap().cache_conversations(shared.clone());
    let tn = tenant();
    let c = group(&tn);
    a.create(&c, &[member(&c, "alice"), member(&c, "mallory")])
        .await
        .unwrap();
    for _ in 0..3 {
        assert_eq!(
            names(&b.members(&tn, &c.id).await.unwrap()),
            ["alice", "mallory"]
        );
    }
    assert_eq!(b.stats().hits, 2, "node B serves its cached list");
    for round in 0..20 {
        let who = format!("m{round}");
        a.put_member(&tn, &member(&c, &who)).await.unwrap();
        assert!(
            names(&b.members(&tn, &c.id).await.unwrap()).contains(&who.as_str()),
            "round {round}: an added member is seen at once"
        );
        assert!(a.remove_member(&tn, &c.id, &user(&who)).await.unwrap());
        assert!(
            !names(&b.members(&tn, &c.id).await.unwrap()).contains(&who.as_str()),
            "round {round}: a removed member is gone from the very next read"
        );
    }
    assert!(a.remove_member(&tn, &c.id, &user("mallory")).await.unwrap());
    assert_eq!(names(&b.members(&tn, &c.id).await.unwrap()), ["alice"]);
    // A conversation's cached absence ends with its creation elsewhere.
    let d = group(&tn);
    assert_eq!(b.get(&tn, &d.id).await.unwrap(), None);
    assert_eq!(b.get(&tn, &d.id).await.unwrap(), None);
    a.create(&d, &[member(&d, "alice")]).await.unwrap();
    assert_eq!(b.get(&tn, &d.id).await.unwrap(), Some(d.clone()));
    let mut renamed = d.clone();
    renamed.name = Some("renamed".into());
    a.update(&renamed).await.unwrap();
    assert_eq!(b.get(&tn, &d.id).await.unwrap(), Some(renamed));
}

/// Two `Caas` nodes sharing their stores (one memory store set stands for a
/// shared database) and revocations in one Redis.
async fn two_nodes() -> (Caas, Caas, TenantId) {
    let clock = Arc::new(ManualClock::new(Timestamp::from_secs(1_800_000_000)));
    let base = caas_storage::memory::backends_with_clock(clock);
    let cfg = config();
    let node = |r: Redis| {
        let operator = caas_crypto::secret::TenantSecret::generate().unwrap();
        let authority =
            caas_crypto::ports::CryptoAuthority::new(operator.hash(), &[7; 32], "k1").unwrap();
        let passwords = caas_crypto::ports::Argon2Passwords::new(
            caas_crypto::password::PasswordParams::INSECURE_FOR_TESTS,
        )
        .unwrap();
        Caas::new(
            Backends {
                revocations: Arc::new(r.revocations()),
                ..base.clone()
            },
            Config::default(),
        )
        .with_auth(Arc::new(authority), Arc::new(passwords))
    };
    let a = node(Redis::new(cfg.clone()).unwrap());
    let b = node(Redis::new(cfg).unwrap());
    let settings = TenantSettings {
        password_auth: true,
        ..TenantSettings::default()
    };
    let tn = a
        .create_tenant(&Principal::operator(), "two nodes", settings)
        .await
        .unwrap()
        .id;
    a.register(&tn, &user("alice"), "correct horse", None)
        .await
        .unwrap();
    (a, b, tn)
}

fn refused(r: caas_core::Result<caas_core::service::Authenticated>) -> bool {
    matches!(r, Err(Error::Unauthenticated { .. }))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_logout_on_one_node_refuses_the_session_token_on_another() {
    let (a, b, tn) = two_nodes().await;
    let corr = || CorrelationId::parse("r").unwrap();
    let s = a
        .login(&tn, &user("alice"), "correct horse", None, None)
        .await
        .unwrap();
    let other = a
        .login(&tn, &user("alice"), "correct horse", None, None)
        .await
        .unwrap();
    assert!(b.authenticate(&s.access.access_token, corr()).await.is_ok());
    a.logout(&tn, &s.refresh_token).await.unwrap();
    assert!(refused(
        b.authenticate(&s.access.access_token, corr()).await
    ));
    assert!(refused(
        a.authenticate(&s.access.access_token, corr()).await
    ));
    // Another session of the same user lives on.
    assert!(
        b.authenticate(&other.access.access_token, corr())
            .await
            .is_ok()
    );

    // Reuse detected on node B kills the tokens node A handed out.
    let next = a.refresh(&tn, &other.refresh_token).await.unwrap();
    assert!(
        a.authenticate(&next.access.access_token, corr())
            .await
            .is_ok()
    );
    assert!(b.refresh(&tn, &other.refresh_token).await.is_err());
    assert!(refused(
        a.authenticate(&next.access.access_token, corr()).await
    ));
    assert!(refused(
        b.authenticate(&other.access.access_token, corr()).await
    ));
}

/// A `redis-server` of a test's own, on a free port and a temporary directory,
/// without persistence; killed when dropped.
struct OwnServer {
    port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl OwnServer {
    async fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!("caas-redis-{port}-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        let mut s = OwnServer {
            port,
            dir,
            child: None,
        };
        s.resume().await;
        s
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port (empty: nothing is saved).
    async fn resume(&mut self) {
        let bin = std::env::var("CAAS_TEST_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = tokio::process::Command::new(bin)
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("redis-server runs (install Debian's redis-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Ok(c) = redis::Client::open(self.url())
                && let Ok(mut c) = c.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut c)
                    .await
                    .is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        if let Some(c) = self.child.as_mut() {
            let _ = c.start_kill();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn presence_and_limits_answer_unavailable_while_redis_is_down_and_recover() {
    let mut server = OwnServer::start().await;
    let cfg = RedisConfig {
        key_prefix: "caas:".into(),
        ..RedisConfig::new(server.url())
    };
    let r = Redis::new(cfg.clone()).unwrap();
    let open = Redis::new(RedisConfig {
        fail_open: true,
        ..cfg
    })
    .unwrap()
    .rate_limits();
    let (presence, limits) = (r.presence(), r.rate_limits());
    let (tn, alice, d) = (tenant(), user("alice"), DeviceId::parse("d").unwrap());
    let key = RateKey::new(&tn, "alice", "search");
    let q = Quota::per_minute(2);
    let ttl = Duration::from_secs(30);
    presence
        .set(&tn, &alice, &d, PresenceStatus::Online, t(0), ttl)
        .await
        .unwrap();
    assert!(limits.check(&key, &q, t(0)).await.unwrap().is_allowed());
    assert!(limits.check(&key, &q, t(0)).await.unwrap().is_allowed());
    assert!(!limits.check(&key, &q, t(0)).await.unwrap().is_allowed());

    server.stop().await;
    let started = Instant::now();
    assert!(unavailable(
        presence
            .set(&tn, &alice, &d, PresenceStatus::Online, t(1), ttl)
            .await
    ));
    assert!(unavailable(
        presence.get(&tn, std::slice::from_ref(&alice), t(1)).await
    ));
    // A limit never silently allows; only a store configured to fail open does.
    assert!(unavailable(limits.check(&key, &q, t(1)).await));
    assert!(open.check(&key, &q, t(1)).await.unwrap().is_allowed());
    assert!(r.ping().await.is_err());
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "failures are quick: {:?}",
        started.elapsed()
    );

    // Back (empty, nothing was saved): the same instances work again.
    server.resume().await;
    let c = eventually(async || {
        presence
            .set(&tn, &alice, &d, PresenceStatus::Away, t(2), ttl)
            .await
    })
    .await;
    assert_eq!(c.after.status, PresenceStatus::Away);
    assert!(
        eventually(async || limits.check(&key, &q, t(2)).await)
            .await
            .is_allowed()
    );
    r.ping().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_reconnects_after_a_restart_and_tells_subscribers_to_sync() {
    let mut server = OwnServer::start().await;
    let cfg = RedisConfig {
        bus_health_interval: Duration::from_millis(200),
        ..RedisConfig::new(server.url())
    };
    let (node_a, node_b) = (
        Redis::new(cfg.clone()).unwrap().bus(),
        Redis::new(cfg).unwrap().bus(),
    );
    let mut sub = node_b.subscribe().await.unwrap();
    let (tn, c) = (tenant(), conversation());
    let ev = |n| Arc::new(event(&tn, &c, &["a"], n));
    node_a.publish(ev(1)).await.unwrap();
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(1));

    server.stop().await;
    assert!(unavailable(node_a.publish(ev(2)).await));
    server.resume().await;
    // The subscription survives; the gap is reported once it is subscribed again.
    assert!(matches!(
        next_message(&mut sub).await,
        BusMessage::Lagged { missed: 0 }
    ));
    assert_eq!(node_b.stats().reconnects, 1);
    eventually(async || node_a.publish(ev(3)).await).await;
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(3));
    // New subscriptions work too.
    let mut late = node_b.subscribe().await.unwrap();
    node_a.publish(ev(4)).await.unwrap();
    assert_eq!(seq_of(&next_message(&mut late).await), Some(4));
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(4));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_reads_through_and_refuses_writes_while_redis_is_down() {
    let mut server = OwnServer::start().await;
    let shared: Arc<dyn ConversationStore> = Arc::new(MemoryConversationStore::default());
    let cfg = RedisConfig::new(server.url());
    let a = Redis::new(cfg.clone())
        .unwrap()
        .cache_conversations(shared.clone());
    let b = Redis::new(cfg).unwrap().cache_conversations(shared.clone());
    let tn = tenant();
    let c = group(&tn);
    a.create(&c, &[member(&c, "alice"), member(&c, "mallory")])
        .await
        .unwrap();
    b.members(&tn, &c.id).await.unwrap();
    b.members(&tn, &c.id).await.unwrap();
    assert_eq!(b.stats().hits, 1);

    server.stop().await;
    // Written straight to the store (another path, while Redis is down): node
    // B must not answer from its cache, which it cannot check.
    shared
        .remove_member(&tn, &c.id, &user("mallory"))
        .await
        .unwrap();
    assert_eq!(names(&b.members(&tn, &c.id).await.unwrap()), ["alice"]);
    assert_eq!(b.stats().bypasses, 1);
    // A write that other nodes could not be told about is not made.
    assert!(unavailable(a.put_member(&tn, &member(&c, "eve")).await));
    assert_eq!(names(&shared.members(&tn, &c.id).await.unwrap()), ["alice"]);

    // Back, empty: tokens were lost with it, so nothing cached before is served.
    server.resume().await;
    eventually(async || a.put_member(&tn, &member(&c, "bob")).await).await;
    assert_eq!(
        names(&b.members(&tn, &c.id).await.unwrap()),
        ["alice", "bob"]
    );
}

/// A store whose `remove_member` waits for `go`, writes, then never returns: a
/// node that dies between its store write and telling the other nodes.
#[derive(Debug)]
struct DiesAfterWriting {
    inner: Arc<dyn ConversationStore>,
    entered: Arc<tokio::sync::Notify>,
    go: Arc<tokio::sync::Notify>,
}

#[async_trait::async_trait]
impl ConversationStore for DiesAfterWriting {
    async fn create(
        &self,
        c: &Conversation,
        m: &[Member],
    ) -> caas_core::Result<caas_core::ports::Created<Conversation>> {
        self.inner.create(c, m).await
    }
    async fn get(
        &self,
        t: &TenantId,
        id: &caas_core::ids::ConversationId,
    ) -> caas_core::Result<Option<Conversation>> {
        self.inner.get(t, id).await
    }
    async fn update(&self, c: &Conversation) -> caas_core::Result<()> {
        self.inner.update(c).await
    }
    async fn member(
        &self,
        t: &TenantId,
        c: &caas_core::ids::ConversationId,
        u: &UserId,
    ) -> caas_core::Result<Option<Member>> {
        self.inner.member(t, c, u).await
    }
    async fn members(
        &self,
        t: &TenantId,
        c: &caas_core::ids::ConversationId,
    ) -> caas_core::Result<Vec<Member>> {
        self.inner.members(t, c).await
    }
    async fn put_member(&self, t: &TenantId, m: &Member) -> caas_core::Result<bool> {
        self.inner.put_member(t, m).await
    }
    async fn remove_member(
        &self,
        t: &TenantId,
        c: &caas_core::ids::ConversationId,
        u: &UserId,
    ) -> caas_core::Result<bool> {
        self.entered.notify_one();
        self.go.notified().await;
        self.inner.remove_member(t, c, u).await?;
        std::future::pending().await
    }
    async fn list_for_user(
        &self,
        t: &TenantId,
        u: &UserId,
    ) -> caas_core::Result<Vec<(Conversation, Member)>> {
        self.inner.list_for_user(t, u).await
    }
    async fn list(
        &self,
        t: &TenantId,
        after: Option<&caas_core::ids::ConversationId>,
        limit: usize,
    ) -> caas_core::Result<Vec<Conversation>> {
        self.inner.list(t, after, limit).await
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_dying_mid_write_leaves_no_stale_entry_anywhere() {
    let cfg = RedisConfig {
        cache_write_lease: Duration::from_secs(2),
        ..config()
    };
    let shared: Arc<dyn ConversationStore> = Arc::new(MemoryConversationStore::default());
    let (entered, go) = (
        Arc::new(tokio::sync::Notify::new()),
        Arc::new(tokio::sync::Notify::new()),
    );
    let a = Arc::new(
        Redis::new(cfg.clone())
            .unwrap()
            .cache_conversations(Arc::new(DiesAfterWriting {
                inner: shared.clone(),
                entered: entered.clone(),
                go: go.clone(),
            })),
    );
    let b = Redis::new(cfg).unwrap().cache_conversations(shared.clone());
    let tn = tenant();
    let c = group(&tn);
    a.create(&c, &[member(&c, "alice"), member(&c, "mallory")])
        .await
        .unwrap();
    b.members(&tn, &c.id).await.unwrap();
    assert_eq!(
        names(&b.members(&tn, &c.id).await.unwrap()),
        ["alice", "mallory"]
    );
    assert_eq!(b.stats().hits, 1);

    let removal = tokio::spawn({
        let (a, tn, id) = (a.clone(), tn.clone(), c.id.clone());
        async move { a.remove_member(&tn, &id, &user("mallory")).await }
    });
    entered.notified().await;
    // Node A holds its lease and has not written yet: B reads the store and
    // caches nothing (an entry made now would outlive A's write).
    assert_eq!(
        names(&b.members(&tn, &c.id).await.unwrap()),
        ["alice", "mallory"]
    );
    assert_eq!(b.stats().bypasses, 1);
    go.notify_one();
    let deadline = Instant::now() + Duration::from_secs(10);
    while names(&shared.members(&tn, &c.id).await.unwrap()).contains(&"mallory") {
        assert!(Instant::now() < deadline, "the store write never happened");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    // Node A dies before it can say its write ended.
    removal.abort();
    for _ in 0..3 {
        assert_eq!(names(&b.members(&tn, &c.id).await.unwrap()), ["alice"]);
    }
    // Once the lease ends, B caches again.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let hits = b.stats().hits;
    b.members(&tn, &c.id).await.unwrap();
    assert_eq!(names(&b.members(&tn, &c.id).await.unwrap()), ["alice"]);
    assert_eq!(b.stats().hits, hits + 1);
}
