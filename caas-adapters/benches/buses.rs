//! Every event bus in one run: publish → delivered-to-subscriber latency (one
//! event in flight, p50/p99) and throughput (events/s delivered to one
//! subscriber with many publishes in flight), for the in-process bus and each
//! networked bus whose feature is on and whose server answers.
//!
//! `cargo bench -p caas-adapters --all-features --bench buses`, with the servers
//! the test command provisions (`CAAS_TEST_REDIS_URL`, `CAAS_TEST_KAFKA_URL`,
//! `CAAS_TEST_RABBITMQ_URL`, `CAAS_TEST_NATS_URL`; a bus whose variable is unset
//! is left out, and said so). Under `cargo test` (no `--bench` argument) it
//! makes a short pass, so a harness that no longer runs fails there.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::time::{Duration, Instant};

use caas_core::events::{Event, EventPayload};
use caas_core::ports::{BusMessage, EventBus, Subscription};
use caas_core::testkit::{conversation, events::event, tenant};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn seq_of(e: &Event) -> u64 {
    match &e.payload {
        EventPayload::ReceiptUpdated { seq, .. } => seq.get(),
        _ => 0,
    }
}

/// The next event of this run (other runs' events on a shared server are skipped).
async fn next_of(sub: &mut Box<dyn Subscription>, tn: &caas_core::ids::TenantId) -> u64 {
    loop {
        match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
            Ok(Some(BusMessage::Event(e))) if &e.tenant == tn => return seq_of(&e),
            Ok(Some(BusMessage::Event(_))) => {}
            Ok(Some(BusMessage::Lagged { missed })) => panic!("the subscriber lagged ({missed})"),
            Ok(None) => panic!("the bus closed"),
            Err(_) => panic!("no event within 30 s"),
        }
    }
}

async fn measure(name: &str, bus: Arc<dyn EventBus>, latency_n: usize, burst: u64) {
    let tn = tenant();
    let c = conversation();
    let mut sub = bus.subscribe().await.unwrap();
    let audience = ["alice", "bob"];
    let size = encoded_size(&event(&tn, &c, &audience, 1));

    // Latency: one in flight; from before `publish` to the subscriber's `next`.
    let mut samples = Vec::with_capacity(latency_n);
    for n in 1..=(latency_n as u64 + latency_n as u64 / 10) {
        let e = Arc::new(event(&tn, &c, &audience, n));
        let start = Instant::now();
        bus.publish(e).await.unwrap();
        assert_eq!(next_of(&mut sub, &tn).await, n);
        if n > latency_n as u64 / 10 {
            samples.push(start.elapsed());
        }
    }
    samples.sort();

    // Throughput: `burst` events from 64 concurrent publishers (each in its own
    // conversation, so per-conversation order holds), until the subscriber has
    // them all.
    let base = 1_000_000;
    let start = Instant::now();
    let publishers: Vec<_> = (0..64u64)
        .map(|p| {
            let bus = bus.clone();
            let tn = tn.clone();
            let c = conversation();
            tokio::spawn(async move {
                let mut n = p;
                while n < burst {
                    bus.publish(Arc::new(event(&tn, &c, &audience, base + n)))
                        .await
                        .unwrap();
                    n += 64;
                }
            })
        })
        .collect();
    // A subscriber that falls behind is told how many it missed: counted, so a
    // bus that drops under load shows it rather than looking fast.
    let (mut got, mut missed) = (0u64, 0u64);
    while got + missed < burst {
        match tokio::time::timeout(Duration::from_secs(30), sub.next()).await {
            Ok(Some(BusMessage::Event(e))) if e.tenant == tn => got += 1,
            Ok(Some(BusMessage::Event(_))) => {}
            Ok(Some(BusMessage::Lagged { missed: m })) => missed += m.max(1),
            Ok(None) => panic!("the bus closed"),
            Err(_) => panic!("{got} of {burst} events within 30 s"),
        }
    }
    let elapsed = start.elapsed();
    for p in publishers {
        p.await.unwrap();
    }
    println!(
        "| {name} | {size} B | {:.1} µs | {:.1} µs | {:.0} | {missed} |",
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
        got as f64 / elapsed.as_secs_f64(),
    );
}

fn encoded_size(e: &Event) -> usize {
    serde_json::to_vec(e).map(|v| v.len()).unwrap_or(0)
}

// Unused when no networked bus's feature is on.
#[allow(dead_code)]
fn var(name: &str) -> Option<String> {
    let v = std::env::var(name).ok().filter(|v| !v.trim().is_empty());
    if v.is_none() {
        println!("(left out: {name} is not set)");
    }
    v
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    // The burst stays below the in-process bus's buffer (16 384 per subscriber),
    // which its publishers, never waiting, would otherwise overrun.
    let (latency_n, burst) = if full { (5_000, 10_000) } else { (20, 200) };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        println!(
            "| bus | event | p50 publish → delivered | p99 | delivered/s (64 publishers) | missed |"
        );
        println!("|---|---|---|---|---|---|");
        measure(
            "in-process (caas-storage memory)",
            Arc::new(caas_storage::memory::MemoryBus::default()),
            latency_n,
            burst,
        )
        .await;
        #[cfg(feature = "redis")]
        if let Some(url) = var("CAAS_TEST_REDIS_URL") {
            use caas_adapters::redis::{Redis, RedisConfig};
            let redis = Redis::new(RedisConfig {
                key_prefix: format!("caas-bench:{:016x}:", fastrand::u64(..)),
                ..RedisConfig::new(url)
            })
            .unwrap();
            measure("Redis pub/sub", Arc::new(redis.bus()), latency_n, burst).await;
        }
        #[cfg(feature = "kafka")]
        if let Some(url) = var("CAAS_TEST_KAFKA_URL") {
            use caas_adapters::kafka::{KafkaBus, KafkaConfig};
            // A topic of this run's own; the test broker keeps it in memory only.
            let config = KafkaConfig {
                topic: format!("caas.bench.{:016x}", fastrand::u64(..)),
                ..KafkaConfig::new(url)
            };
            let bus = KafkaBus::connect(config).await.unwrap();
            measure(
                "Kafka protocol (Tansu, acks=all)",
                Arc::new(bus),
                latency_n,
                burst,
            )
            .await;
        }
        #[cfg(feature = "nats")]
        if let Some(url) = var("CAAS_TEST_NATS_URL") {
            use caas_adapters::nats::{NatsBus, NatsConfig};
            let unique = format!("{:016x}", fastrand::u64(..));
            let config = NatsConfig {
                stream: format!("CAAS_BENCH_{unique}"),
                subject_prefix: format!("caas.bench.{unique}"),
                ..NatsConfig::new(url.clone())
            };
            let bus = NatsBus::connect(config.clone()).await.unwrap();
            measure("NATS JetStream", Arc::new(bus), latency_n, burst).await;
            // What the bus made outlives it: remove this run's streams.
            let js = async_nats::jetstream::new(async_nats::connect(&url).await.unwrap());
            let _ = js.delete_stream(&config.stream).await;
            let _ = js.delete_stream(config.dead_letter_stream()).await;
        }
        #[cfg(feature = "rabbitmq")]
        if let Some(url) = var("CAAS_TEST_RABBITMQ_URL") {
            use caas_adapters::rabbitmq::{RabbitMqBus, RabbitMqConfig};
            use lapin::options::{ExchangeDeleteOptions, QueueDeleteOptions};
            let config = RabbitMqConfig {
                exchange: format!("caas.bench.{:016x}", fastrand::u64(..)),
                ..RabbitMqConfig::new(url.clone())
            };
            let bus = RabbitMqBus::new(config.clone()).unwrap();
            measure("RabbitMQ (confirms)", Arc::new(bus), latency_n, burst).await;
            // What the bus made outlives it: remove this run's exchanges and queue.
            let c = lapin::Connection::connect(&url, lapin::ConnectionProperties::default())
                .await
                .unwrap();
            let ch = c.create_channel().await.unwrap();
            let dead = config.dead_letter_name();
            let _ = ch
                .queue_delete(dead.as_str().into(), QueueDeleteOptions::default())
                .await;
            for x in [config.exchange.as_str(), dead.as_str()] {
                let _ = ch
                    .exchange_delete(x.into(), ExchangeDeleteOptions::default())
                    .await;
            }
        }
    });
}
