//! The `nats` bus against a real NATS server with JetStream: the bus contract,
//! dead letters, order per conversation, and faults on servers these tests start
//! and stop themselves.
//!
//! The shared server is `CAAS_TEST_NATS_URL` (default `nats://127.0.0.1:4222`,
//! JetStream enabled); every case uses streams and subjects of its own and
//! deletes them when done. Fault tests run their own `nats-server`
//! (`CAAS_TEST_NATS_SERVER`, default `nats-server` on the `PATH`) on a free
//! port and a temporary directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::recovery::{eventually, unavailable};
use async_nats::jetstream;
use caas_adapters::nats::{NatsBus, NatsConfig};
use caas_core::events::{Event, EventPayload};
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{Backends, BusMessage, EventBus, Subscription};
use caas_core::testkit::{conversation, events::event, tenant};
use caas_core::{Error, Result};

fn url() -> String {
    std::env::var("CAAS_TEST_NATS_URL").unwrap_or_else(|_| "nats://127.0.0.1:4222".into())
}

/// A configuration with a stream and subjects of its own.
fn config_at(url: String) -> NatsConfig {
    let id = format!("{:016x}", fastrand::u64(..));
    NatsConfig {
        stream: format!("CAAS_TEST_{id}"),
        subject_prefix: format!("caas-test.{id}"),
        max_age: Duration::from_secs(600),
        max_bytes: 64 << 20,
        dead_letter_max_bytes: 1 << 20,
        ..NatsConfig::new(url)
    }
}

fn config() -> NatsConfig {
    config_at(url())
}

/// A bus that deletes its streams when dropped (the contract cases make
/// their bus through `Backends` and have no other end to clean up at).
#[derive(Debug)]
struct Cleaned {
    bus: Option<NatsBus>,
}

impl Cleaned {
    fn bus(&self) -> &NatsBus {
        self.bus.as_ref().unwrap()
    }
}

#[async_trait::async_trait]
impl EventBus for Cleaned {
    async fn publish(&self, event: Arc<Event>) -> Result<()> {
        self.bus().publish(event).await
    }
    async fn subscribe(&self) -> Result<Box<dyn Subscription>> {
        self.bus().subscribe().await
    }
}

impl Drop for Cleaned {
    fn drop(&mut self) {
        // The bus first: its listener would make the streams again.
        let config = self.bus().config().clone();
        self.bus = None;
        delete_streams_blocking(config);
    }
}

/// Deletes the streams of `config`, from a thread of its own (this runs in
/// `Drop`, inside a runtime that may be shutting down).
fn delete_streams_blocking(config: NatsConfig) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            if let Ok(Ok(c)) =
                tokio::time::timeout(Duration::from_secs(2), async_nats::connect(&config.url)).await
            {
                let js = jetstream::new(c);
                // Twice: a bus's task stopped a moment ago may have had a
                // request to make them in flight.
                for _ in 0..2 {
                    let _ = js.delete_stream(&config.stream).await;
                    let _ = js.delete_stream(config.dead_letter_stream()).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        });
    })
    .join();
}

async fn fresh() -> Backends {
    Backends {
        bus: Arc::new(Cleaned {
            bus: Some(NatsBus::connect(config()).await.unwrap()),
        }),
        ..caas_storage::memory::backends()
    }
}

caas_core::contract_suites!(fresh().await; bus);

/// Streams made for one test and deleted at its end, with two nodes' buses.
struct Streams {
    config: NatsConfig,
}

impl Streams {
    fn new(config: NatsConfig) -> Self {
        Self { config }
    }

    async fn bus(&self) -> NatsBus {
        NatsBus::connect(self.config.clone()).await.unwrap()
    }
}

impl Drop for Streams {
    fn drop(&mut self) {
        delete_streams_blocking(self.config.clone());
    }
}

async fn raw(url: &str) -> jetstream::Context {
    jetstream::new(async_nats::connect(url).await.unwrap())
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unreadable_messages_are_dead_lettered_once_and_the_bus_goes_on() {
    let streams = Streams::new(NatsConfig {
        max_event_bytes: 4096,
        ..config()
    });
    let cfg = streams.config.clone();
    let (publisher, node_a, node_b) = (
        streams.bus().await,
        streams.bus().await,
        streams.bus().await,
    );
    let mut a = node_a.subscribe().await.unwrap();
    let mut b = node_b.subscribe().await.unwrap();
    // Written straight on the stream's subjects, as a foreign or newer
    // publisher could.
    let js = raw(&cfg.url).await;
    let subject = format!("{}.ev.t.c", cfg.subject_prefix);
    js.publish(subject.clone(), "{\"not\": \"an event\"}".into())
        .await
        .unwrap()
        .await
        .unwrap();
    js.publish(subject, "x".repeat(5000).into())
        .await
        .unwrap()
        .await
        .unwrap();
    let (tn, c) = (tenant(), conversation());
    publisher
        .publish(Arc::new(event(&tn, &c, &["a"], 1)))
        .await
        .unwrap();
    for (sub, node) in [(&mut a, &node_a), (&mut b, &node_b)] {
        assert!(matches!(
            next_of(sub, &tn).await,
            BusMessage::Lagged { missed: 1 }
        ));
        assert!(matches!(
            next_of(sub, &tn).await,
            BusMessage::Lagged { missed: 1 }
        ));
        assert_eq!(seq_of(&next_of(sub, &tn).await), Some(1));
        assert_eq!(node.stats().garbage, 2);
        assert_eq!(node.stats().dead_letter_failures, 0);
    }
    // Two nodes dead-lettered each message: one copy of each is kept, with
    // why and where it came from.
    let mut dead = js.get_stream(cfg.dead_letter_stream()).await.unwrap();
    assert_eq!(dead.info().await.unwrap().state.messages, 2);
    let first = dead.get_raw_message(1).await.unwrap();
    assert_eq!(&first.payload[..], b"{\"not\": \"an event\"}");
    let reason = first.headers.get("Caas-Dead-Reason").unwrap().as_str();
    assert!(reason.starts_with("not an event"), "{reason}");
    let second = dead.get_raw_message(2).await.unwrap();
    assert_eq!(second.payload.len(), 5000);
    assert!(
        second
            .headers
            .get("Caas-Dead-Reason")
            .unwrap()
            .as_str()
            .contains("over the limit of 4096")
    );
    // Terminated on each node's consumer: never delivered again.
    publisher
        .publish(Arc::new(event(&tn, &c, &["a"], 2)))
        .await
        .unwrap();
    assert_eq!(seq_of(&next_of(&mut a, &tn).await), Some(2));
    assert_eq!(seq_of(&next_of(&mut b, &tn).await), Some(2));

    // An event over the limit is refused at the publisher.
    let mut big = event(&tn, &c, &["a"], 3);
    big.audience = (0..400)
        .map(|i| UserId::parse(&format!("user-with-a-long-name-{i}")).unwrap())
        .collect::<Vec<_>>()
        .into();
    assert!(matches!(
        publisher.publish(Arc::new(big)).await,
        Err(Error::PayloadTooLarge { .. })
    ));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_conversation_arrives_in_order_from_concurrent_publishers() {
    let streams = Streams::new(config());
    let (node_a, node_b) = (streams.bus().await, streams.bus().await);
    let mut a = node_a.subscribe().await.unwrap();
    let mut b = node_b.subscribe().await.unwrap();
    let tn = tenant();
    let conversations: Vec<_> = (0..4).map(|_| conversation()).collect();
    const N: u64 = 100;
    let mut tasks = Vec::new();
    for (i, c) in conversations.iter().enumerate() {
        // Each conversation's events from one publisher (as a conversation's
        // sends are ordered by its seq); publishers on both nodes' buses.
        let bus = Arc::new(streams.bus().await);
        let (tn, c) = (tn.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            for n in 1..=N {
                bus.publish(Arc::new(event(&tn, &c, &["a"], n)))
                    .await
                    .unwrap();
            }
            i
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    for sub in [&mut a, &mut b] {
        let mut got: std::collections::HashMap<_, Vec<u64>> = Default::default();
        for _ in 0..N * conversations.len() as u64 {
            let BusMessage::Event(e) = next_of(sub, &tn).await else {
                panic!("a gap")
            };
            let c = e.payload.conversation_id().unwrap().clone();
            got.entry(c)
                .or_default()
                .push(seq_of(&BusMessage::Event(e)).unwrap());
        }
        for c in &conversations {
            assert_eq!(got[c], (1..=N).collect::<Vec<_>>(), "{c:?}");
        }
    }
}

/// A `nats-server` with JetStream of a test's own, on a free port and a
/// temporary directory; killed when dropped.
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
        let dir = std::env::temp_dir().join(format!("caas-nats-{port}-{}", fastrand::u64(..)));
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
        format!("nats://127.0.0.1:{}", self.port)
    }

    /// Starts the server again on the same port and storage.
    async fn resume(&mut self) {
        let bin = std::env::var("CAAS_TEST_NATS_SERVER").unwrap_or_else(|_| "nats-server".into());
        let child = tokio::process::Command::new(bin)
            .args([
                "-a",
                "127.0.0.1",
                "-p",
                &self.port.to_string(),
                "-js",
                "-sd",
            ])
            .arg(&self.dir)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .expect("nats-server runs (install Debian's nats-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            // JetStream answers its API once it is up.
            if let Ok(c) = async_nats::connect(self.url()).await
                && c.request("$JS.API.INFO", "".into()).await.is_ok()
            {
                return;
            }
            assert!(Instant::now() < deadline, "nats-server did not start");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            c.kill().await.unwrap();
        }
    }

    /// Forgets everything the server stored (while it is stopped).
    fn wipe(&self) {
        std::fs::remove_dir_all(&self.dir).unwrap();
        std::fs::create_dir_all(&self.dir).unwrap();
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
async fn a_restart_loses_nothing_acknowledged_and_outages_answer_unavailable() {
    let mut server = OwnServer::start().await;
    let cfg = NatsConfig {
        health_interval: Duration::from_millis(200),
        ..config_at(server.url())
    };
    let (node_a, node_b) = (
        NatsBus::connect(cfg.clone()).await.unwrap(),
        NatsBus::connect(cfg.clone()).await.unwrap(),
    );
    let mut sub = node_b.subscribe().await.unwrap();
    let (tn, c) = (tenant(), conversation());
    let ev = |n| Arc::new(event(&tn, &c, &["a"], n));
    // Acknowledged just before the server dies: some may not have reached
    // node B yet; the stream has them all.
    for n in 1..=50 {
        node_a.publish(ev(n)).await.unwrap();
    }
    server.stop().await;

    let started = Instant::now();
    assert!(unavailable(node_a.publish(ev(51)).await));
    let budget = cfg.connect_timeout + cfg.request_timeout;
    assert!(
        started.elapsed() <= budget + Duration::from_millis(500),
        "bounded: {:?}",
        started.elapsed()
    );
    // A node starting during the outage starts, and cannot subscribe yet.
    let late = NatsBus::connect(cfg.clone()).await.unwrap();
    assert!(unavailable(late.subscribe().await));
    assert!(unavailable(late.publish(ev(51)).await));

    server.resume().await;
    eventually(async || node_a.publish(ev(51)).await).await;
    // Everything acknowledged, in order, and no gap to report.
    for n in 1..=51 {
        assert_eq!(seq_of(&next_message(&mut sub).await), Some(n));
    }
    assert!(node_b.stats().reconnects >= 1, "{:?}", node_b.stats());
    assert_eq!(node_b.stats().missed, 0);
    // The node that started during the outage works too. Its consumer opened
    // as the server came back, so it may also hand this subscription event
    // 51, published just before it subscribed. And a publish answered
    // `unavailable` has an unknown outcome: the client may still deliver it
    // once the server is back, so either subscription may see 51 twice (the
    // bus is at least once; receivers drop repeats by seq).
    let mut late_sub = eventually(async || late.subscribe().await).await;
    node_a.publish(ev(52)).await.unwrap();
    assert_eq!(next_after(&mut late_sub, 51).await, Some(52));
    assert_eq!(next_after(&mut sub, 51).await, Some(52));
}

/// The seq of the next event past `seq`, skipping repeats of earlier ones.
async fn next_after(sub: &mut Box<dyn Subscription>, seq: u64) -> Option<u64> {
    loop {
        let got = seq_of(&next_message(sub).await);
        if got.is_none_or(|s| s > seq) {
            return got;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_lost_with_the_server_is_reported_and_made_again() {
    let mut server = OwnServer::start().await;
    let cfg = NatsConfig {
        health_interval: Duration::from_millis(200),
        ..config_at(server.url())
    };
    let (node_a, node_b) = (
        NatsBus::connect(cfg.clone()).await.unwrap(),
        NatsBus::connect(cfg).await.unwrap(),
    );
    let mut sub = node_b.subscribe().await.unwrap();
    let (tn, c) = (tenant(), conversation());
    let ev = |n| Arc::new(event(&tn, &c, &["a"], n));
    node_a.publish(ev(1)).await.unwrap();
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(1));

    // The server comes back without its storage.
    server.stop().await;
    server.wipe();
    server.resume().await;
    assert!(matches!(
        next_message(&mut sub).await,
        BusMessage::Lagged { missed: 0 }
    ));
    eventually(async || node_a.publish(ev(2)).await).await;
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(2));
    assert_eq!(node_b.stats().missed, 1);
}
