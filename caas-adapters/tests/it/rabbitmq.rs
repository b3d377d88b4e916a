//! The `rabbitmq` bus against a real RabbitMQ: the bus contract, dead letters,
//! order per conversation, and faults on a broker node this test starts and
//! stops itself.
//!
//! The shared broker is `CAAS_TEST_RABBITMQ_URL` (default
//! `amqp://guest:guest@127.0.0.1:5672/%2f`); every case uses exchanges and
//! queues of its own and deletes them when done. The fault test runs a private
//! node (`CAAS_TEST_RABBITMQ_SERVER`, default Debian's
//! `/usr/lib/rabbitmq/bin/rabbitmq-server`) on free ports and a temporary
//! directory.

use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::recovery::{eventually, unavailable};
use caas_adapters::rabbitmq::{RabbitMqBus, RabbitMqConfig};
use caas_core::events::{Event, EventPayload};
use caas_core::ids::{TenantId, UserId};
use caas_core::ports::{Backends, BusMessage, EventBus, Subscription};
use caas_core::testkit::{conversation, events::event, tenant};
use caas_core::{Error, Result};
use lapin::options::{
    BasicPublishOptions, ExchangeDeleteOptions, QueueDeclareOptions, QueueDeleteOptions,
};
use lapin::types::FieldTable;
use lapin::{BasicProperties, Channel, Connection, ConnectionProperties};

fn url() -> String {
    std::env::var("CAAS_TEST_RABBITMQ_URL")
        .unwrap_or_else(|_| "amqp://guest:guest@127.0.0.1:5672/%2f".into())
}

/// A configuration with exchanges and queues of its own.
fn config_at(url: String) -> RabbitMqConfig {
    RabbitMqConfig {
        exchange: format!("caas-test.{:016x}", fastrand::u64(..)),
        ..RabbitMqConfig::new(url)
    }
}

fn config() -> RabbitMqConfig {
    config_at(url())
}

async fn raw_channel(url: &str) -> (Connection, Channel) {
    let c = Connection::connect(url, ConnectionProperties::default())
        .await
        .unwrap();
    let ch = c.create_channel().await.unwrap();
    (c, ch)
}

/// Deletes what `config` declared, from a thread of its own (this runs in
/// `Drop`, inside a runtime that may be shutting down).
fn delete_blocking(config: RabbitMqConfig) {
    let _ = std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let connect = Connection::connect(&config.url, ConnectionProperties::default());
            let Ok(Ok(c)) = tokio::time::timeout(Duration::from_secs(2), connect).await else {
                return;
            };
            let Ok(ch) = c.create_channel().await else {
                return;
            };
            let dead = config.dead_letter_name();
            let _ = ch
                .queue_delete(dead.as_str().into(), QueueDeleteOptions::default())
                .await;
            for x in [config.exchange.as_str(), dead.as_str()] {
                let _ = ch
                    .exchange_delete(x.into(), ExchangeDeleteOptions::default())
                    .await;
            }
            let _ = c.close(200, "OK".into()).await;
        });
    })
    .join();
}

/// A bus that deletes its exchanges and dead-letter queue when dropped (the
/// contract cases make their bus through `Backends` and have no other end to
/// clean up at).
#[derive(Debug)]
struct Cleaned {
    bus: Option<RabbitMqBus>,
}

impl Cleaned {
    fn bus(&self) -> &RabbitMqBus {
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
        // The bus first: its listener would declare them again.
        let config = self.bus().config().clone();
        self.bus = None;
        delete_blocking(config);
    }
}

async fn fresh() -> Backends {
    Backends {
        bus: Arc::new(Cleaned {
            bus: Some(RabbitMqBus::new(config()).unwrap()),
        }),
        ..caas_storage::memory::backends()
    }
}

caas_core::contract_suites!(fresh().await; bus);

/// Names made for one test, deleted at its end.
struct Names {
    config: RabbitMqConfig,
}

impl Names {
    fn bus(&self) -> RabbitMqBus {
        RabbitMqBus::new(self.config.clone()).unwrap()
    }
}

impl Drop for Names {
    fn drop(&mut self) {
        delete_blocking(self.config.clone());
    }
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
async fn unreadable_messages_are_dead_lettered_and_the_bus_goes_on() {
    let names = Names {
        config: RabbitMqConfig {
            max_event_bytes: 4096,
            ..config()
        },
    };
    let cfg = names.config.clone();
    let (publisher, node_a, node_b) = (names.bus(), names.bus(), names.bus());
    let mut a = node_a.subscribe().await.unwrap();
    let mut b = node_b.subscribe().await.unwrap();
    // Published straight to the exchange, as a foreign or newer publisher
    // could.
    let (_conn, raw) = raw_channel(&cfg.url).await;
    for body in [b"{\"not\": \"an event\"}".to_vec(), vec![b'x'; 5000]] {
        raw.basic_publish(
            cfg.exchange.as_str().into(),
            "t.c".into(),
            BasicPublishOptions::default(),
            &body,
            BasicProperties::default(),
        )
        .await
        .unwrap();
    }
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
    }
    // Each node's queue rejected its copy of each: four in the dead-letter
    // queue, with the broker's record of where they came from.
    let dead = cfg.dead_letter_name();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let q = raw
            .queue_declare(
                dead.as_str().into(),
                QueueDeclareOptions {
                    passive: true,
                    ..QueueDeclareOptions::default()
                },
                FieldTable::default(),
            )
            .await
            .unwrap();
        if q.message_count() == 4 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "{} dead letters",
            q.message_count()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let m = raw
        .basic_get(dead.as_str().into(), Default::default())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&m.delivery.data[..], b"{\"not\": \"an event\"}");
    let headers = m.delivery.properties.headers().as_ref().unwrap();
    assert!(headers.inner().contains_key("x-death"), "{headers:?}");

    // Never delivered again; later events flow.
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
    let names = Names { config: config() };
    let (node_a, node_b) = (names.bus(), names.bus());
    let mut a = node_a.subscribe().await.unwrap();
    let mut b = node_b.subscribe().await.unwrap();
    let tn = tenant();
    let conversations: Vec<_> = (0..4).map(|_| conversation()).collect();
    const N: u64 = 100;
    let mut tasks = Vec::new();
    for c in &conversations {
        // Each conversation's events from one publisher (as a conversation's
        // sends are ordered by its seq), each on a bus of its own.
        let bus = Arc::new(names.bus());
        let (tn, c) = (tn.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            for n in 1..=N {
                bus.publish(Arc::new(event(&tn, &c, &["a"], n)))
                    .await
                    .unwrap();
            }
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

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A RabbitMQ node of a test's own: its own node name, AMQP and distribution
/// ports, configuration, database and logs under a temporary directory, no
/// plugins. Killed (its whole process group) when dropped.
struct OwnNode {
    port: u16,
    dist_port: u16,
    dir: std::path::PathBuf,
    child: Option<tokio::process::Child>,
}

impl OwnNode {
    async fn start() -> Self {
        let (port, dist_port) = (free_port(), free_port());
        let dir = std::env::temp_dir().join(format!("caas-rabbitmq-{port}-{}", fastrand::u64(..)));
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("rabbitmq.conf"),
            format!("listeners.tcp.1 = 127.0.0.1:{port}\n"),
        )
        .unwrap();
        std::fs::write(dir.join("rabbitmq-env.conf"), "").unwrap();
        std::fs::write(dir.join("enabled_plugins"), "[].\n").unwrap();
        let mut n = OwnNode {
            port,
            dist_port,
            dir,
            child: None,
        };
        n.resume().await;
        n
    }

    fn url(&self) -> String {
        format!("amqp://guest:guest@127.0.0.1:{}/%2f", self.port)
    }

    /// Starts the node again on the same ports and database.
    async fn resume(&mut self) {
        let bin = std::env::var("CAAS_TEST_RABBITMQ_SERVER")
            .unwrap_or_else(|_| "/usr/lib/rabbitmq/bin/rabbitmq-server".into());
        let d = |name: &str| self.dir.join(name);
        let log = std::fs::File::create(d("server.log")).unwrap();
        let child = tokio::process::Command::new(bin)
            .current_dir(&self.dir)
            .env("HOME", &self.dir)
            .env(
                "RABBITMQ_NODENAME",
                format!("caas-test-{}@localhost", self.port),
            )
            .env("RABBITMQ_NODE_IP_ADDRESS", "127.0.0.1")
            .env("RABBITMQ_NODE_PORT", self.port.to_string())
            .env("RABBITMQ_DIST_PORT", self.dist_port.to_string())
            .env("RABBITMQ_CONFIG_FILE", d("rabbitmq.conf"))
            .env("RABBITMQ_CONF_ENV_FILE", d("rabbitmq-env.conf"))
            .env("RABBITMQ_ENABLED_PLUGINS_FILE", d("enabled_plugins"))
            .env("RABBITMQ_PLUGINS_EXPAND_DIR", d("plugins-expand"))
            .env("RABBITMQ_MNESIA_BASE", d("mnesia"))
            .env("RABBITMQ_LOG_BASE", d("log"))
            .env("ERL_EPMD_ADDRESS", "127.0.0.1")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            // Its own group: the script starts the Erlang VM as a child, and
            // stopping the node means killing both.
            .process_group(0)
            .kill_on_drop(true)
            .spawn()
            .expect("rabbitmq-server runs (install Debian's rabbitmq-server)");
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            if let Ok(Ok(c)) = tokio::time::timeout(
                Duration::from_secs(2),
                Connection::connect(&self.url(), ConnectionProperties::default()),
            )
            .await
            {
                let _ = c.close(200, "OK".into()).await;
                return;
            }
            let log = std::fs::read_to_string(d("server.log")).unwrap_or_default();
            assert!(
                Instant::now() < deadline,
                "rabbitmq-server did not start:\n{log}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    fn kill_group(&mut self) -> Option<tokio::process::Child> {
        let child = self.child.take()?;
        if let Some(pid) = child.id() {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", "--", &format!("-{pid}")])
                .status();
        }
        Some(child)
    }

    async fn stop(&mut self) {
        if let Some(mut c) = self.kill_group() {
            let _ = c.wait().await;
        }
        // The VM is gone once its port is closed.
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
            assert!(Instant::now() < deadline, "the node did not stop");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for OwnNode {
    fn drop(&mut self) {
        self.kill_group();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bus_reconnects_after_a_broker_restart_and_tells_subscribers_to_sync() {
    let mut node = OwnNode::start().await;
    let cfg = RabbitMqConfig {
        heartbeat: Duration::from_secs(1),
        ..config_at(node.url())
    };
    let (node_a, node_b) = (
        RabbitMqBus::new(cfg.clone()).unwrap(),
        RabbitMqBus::new(cfg.clone()).unwrap(),
    );
    let mut sub = node_b.subscribe().await.unwrap();
    let (tn, c) = (tenant(), conversation());
    let ev = |n| Arc::new(event(&tn, &c, &["a"], n));
    node_a.publish(ev(1)).await.unwrap();
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(1));

    node.stop().await;
    let started = Instant::now();
    assert!(unavailable(node_a.publish(ev(2)).await));
    let budget = cfg.connect_timeout + cfg.request_timeout;
    assert!(
        started.elapsed() <= budget + Duration::from_millis(500),
        "bounded: {:?}",
        started.elapsed()
    );
    // A node starting during the outage starts, and cannot subscribe yet.
    let late = RabbitMqBus::new(cfg.clone()).unwrap();
    assert!(unavailable(late.subscribe().await));
    assert!(unavailable(late.publish(ev(2)).await));

    node.resume().await;
    // The subscription survives; the gap is reported once it consumes again.
    assert!(matches!(
        next_message(&mut sub).await,
        BusMessage::Lagged { missed: 0 }
    ));
    assert_eq!(node_b.stats().reconnects, 1);
    eventually(async || node_a.publish(ev(3)).await).await;
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(3));
    // The node that started during the outage works too. (Its queue was
    // bound as the broker came back, so it may also hand this subscription
    // event 3, published just before it subscribed.)
    let mut late_sub = eventually(async || late.subscribe().await).await;
    node_a.publish(ev(4)).await.unwrap();
    let mut first = seq_of(&next_message(&mut late_sub).await);
    if first == Some(3) {
        first = seq_of(&next_message(&mut late_sub).await);
    }
    assert_eq!(first, Some(4));
    assert_eq!(seq_of(&next_message(&mut sub).await), Some(4));
}
