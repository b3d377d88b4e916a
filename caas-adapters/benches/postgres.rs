//! Throughput and latency of the PostgreSQL backend, beside SQLite in the same run.
//!
//! ```text
//! CAAS_TEST_POSTGRES_URL=postgres://postgres@127.0.0.1:5432/test \
//!   cargo bench -p caas-adapters --features postgres --bench postgres
//! ```
//!
//! * acked sends/s through `Caas::send_message` (policy, rate limit, membership
//!   read, append, index check, bus publish) at 1, 16 and 256 concurrent
//!   senders, in groups of 4, on PostgreSQL and on the embedded SQLite
//!   (durability FULL), with p50/p99 of the ack;
//! * a `sync` page of 100 events and `search_messages` over a corpus of
//!   `CAAS_BENCH_CORPUS` messages (default 1 000 000) in 1 000 conversations.
//!
//! Knobs: `CAAS_BENCH_SECS` (per row, default 5), `CAAS_BENCH_CORPUS` (0 skips),
//! `CAAS_BENCH_SENDERS` (one row only), `CAAS_BENCH_WRITERS` and
//! `CAAS_BENCH_MAX_BATCH` (the store's group commit), `CAAS_BENCH_SQLITE=0`.
//! Each run uses a fresh PostgreSQL schema, dropped at the end.
//!
//! Not a criterion harness: the quantity of interest is throughput under
//! concurrency. Run by `cargo test --bench postgres` (as `scripts/test` does) it
//! makes one short unmeasured pass through every part.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use caas_adapters::postgres::{PostgresConfig, PostgresStore};
use caas_core::events::Announce;
use caas_core::ids::{
    ClientMsgId, ConversationId, CorrelationId, Cursor, MessageId, TenantId, UserId,
};
use caas_core::model::{ConversationKind, NewMessage, TenantSettings};
use caas_core::ports::{Backends, EventLog, MessageStore, SearchIndex};
use caas_core::ratelimit::Quota;
use caas_core::service::{NewConversation, SendMessage};
use caas_core::time::{Clock, SystemClock, Timestamp};
use caas_core::{Caas, Config, Principal};

static CLOCK: std::sync::LazyLock<SystemClock> = std::sync::LazyLock::new(SystemClock::new);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fixed vocabulary with a Zipf-like skew (as the SQLite bench's).
struct Corpus {
    words: Vec<String>,
}

impl Corpus {
    fn new() -> Self {
        const SYL: [&str; 16] = [
            "ka", "lo", "mi", "ne", "ru", "sa", "ti", "vo", "ze", "pa", "qui", "bel", "dor", "fen",
            "gar", "hul",
        ];
        let mut words = Vec::new();
        for a in SYL {
            for b in SYL {
                for c in SYL {
                    words.push(format!("{a}{b}{c}"));
                }
            }
        }
        Self { words }
    }

    fn word(&self, rng: &mut fastrand::Rng) -> &str {
        let u = rng.f64();
        let i = ((u * u) * self.words.len() as f64) as usize;
        &self.words[i.min(self.words.len() - 1)]
    }

    fn sentence(&self, rng: &mut fastrand::Rng) -> String {
        let n = rng.usize(4..12);
        (0..n).map(|_| self.word(rng)).collect::<Vec<_>>().join(" ")
    }
}

/// CPU time (user + system, in clock ticks of 10 ms) of this process, and of
/// every process on the machine whose command is `postgres` (the server, when
/// it runs here; other databases' work on it counts too).
fn cpu_ticks() -> (u64, u64) {
    fn ticks(stat: &str) -> Option<(String, u64)> {
        let open = stat.find('(')?;
        let close = stat.rfind(')')?;
        let comm = stat[open + 1..close].to_owned();
        let f: Vec<&str> = stat[close + 2..].split_whitespace().collect();
        Some((
            comm,
            f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?,
        ))
    }
    let own = std::fs::read_to_string("/proc/self/stat")
        .ok()
        .and_then(|s| ticks(&s))
        .map_or(0, |t| t.1);
    let server = std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| std::fs::read_to_string(e.path().join("stat")).ok())
        .filter_map(|s| ticks(&s))
        .filter(|(comm, _)| comm.starts_with("postgres"))
        .map(|(_, t)| t)
        .sum();
    (own, server)
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// `senders` users (in groups of 4) sending through the service for `secs`.
async fn pipeline(backends: Backends, senders: usize, secs: f64) -> (f64, u64, u64, String) {
    let caas = Arc::new(Caas::new(backends, Config::default()));
    let mut settings = TenantSettings::default();
    // Measure the store, not the per-user send quota.
    settings.limits.insert(
        "message.send".into(),
        Quota {
            limit: 1_000_000,
            period_secs: 1,
            burst: Some(1_000_000),
        },
    );
    let tenant = caas
        .create_tenant(&Principal::operator(), "bench", settings)
        .await
        .unwrap()
        .id;
    let server = Principal::tenant_server(tenant.clone());
    let users: Vec<UserId> = (0..senders.max(4))
        .map(|i| UserId::parse(&format!("u{i}")).unwrap())
        .collect();
    for u in &users {
        caas.upsert_user(&server, u, u.as_str(), Default::default())
            .await
            .unwrap();
    }
    let mut convs = Vec::new();
    for g in users.chunks(4) {
        let owner = Principal::user(tenant.clone(), g[0].clone());
        let c = caas
            .create_conversation(
                &owner,
                NewConversation {
                    kind: ConversationKind::Group,
                    members: g[1..].to_vec(),
                    name: Some("bench".into()),
                    attributes: Default::default(),
                },
            )
            .await
            .unwrap()
            .into_inner()
            .id;
        convs.push(c);
    }
    let stop = Arc::new(AtomicBool::new(false));
    let corpus = Arc::new(Corpus::new());
    let cpu_before = cpu_ticks();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, u) in users.iter().take(senders).enumerate() {
        let p = Principal::user(tenant.clone(), u.clone());
        let (caas, conv, stop, corpus) = (
            caas.clone(),
            convs[i / 4].clone(),
            stop.clone(),
            corpus.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(i as u64);
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let m = SendMessage::text(
                    ClientMsgId::generate(CLOCK.now()),
                    corpus.sentence(&mut rng),
                );
                let t = Instant::now();
                caas.send_message(&p, &conv, m).await.unwrap();
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat
        }));
    }
    tokio::time::sleep(Duration::from_secs_f64(secs)).await;
    stop.store(true, Ordering::Relaxed);
    let mut lat = Vec::new();
    for t in tasks {
        lat.extend(t.await.unwrap());
    }
    let elapsed = start.elapsed().as_secs_f64();
    let cpu_after = cpu_ticks();
    let per_send = |ticks: u64| ticks as f64 * 10_000.0 / lat.len().max(1) as f64;
    let cpu = format!(
        "CPU per send: this process {:.0} µs, postgres processes {:.0} µs",
        per_send(cpu_after.0 - cpu_before.0),
        per_send(cpu_after.1 - cpu_before.1)
    );
    lat.sort_unstable();
    (
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.5),
        percentile(&lat, 0.99),
        cpu,
    )
}

fn row(backend: &str, senders: usize, (rate, p50, p99, cpu): (f64, u64, u64, String), note: &str) {
    println!(
        "| {backend} | {senders} | {rate:.0} | {:.2} ms | {:.2} ms | {note}; {cpu} |",
        p50 as f64 / 1000.0,
        p99 as f64 / 1000.0
    );
}

fn pg_config(url: &str, schema: &str) -> PostgresConfig {
    let mut c = PostgresConfig::new(url);
    c.schema = Some(schema.to_owned());
    c.writers = env_u64("CAAS_BENCH_WRITERS", c.writers as u64) as usize;
    c.max_batch = env_u64("CAAS_BENCH_MAX_BATCH", c.max_batch as u64) as usize;
    c
}

/// Builds the corpus with 256 concurrent appenders, then measures `sync` pages
/// and searches.
async fn corpus(store: &PostgresStore, total: u64) {
    let tn = TenantId::parse("corpus").unwrap();
    let convs: Vec<ConversationId> = (0..1000)
        .map(|i| ConversationId::parse(&format!("c{i}")).unwrap())
        .collect();
    let corpus = Arc::new(Corpus::new());
    let t = Instant::now();
    let writers = 256u64;
    let mut tasks = Vec::new();
    for w in 0..writers {
        let (store, tn, convs, corpus) = (store.clone(), tn.clone(), convs.clone(), corpus.clone());
        tasks.push(tokio::spawn(async move {
            let mut rng = fastrand::Rng::with_seed(1000 + w);
            let sender = UserId::parse(&format!("u{w}")).unwrap();
            let mut key = w;
            while key < total {
                let conv = &convs[(key % 1000) as usize];
                // Each conversation's audience: its sender's group of 8 users,
                // so every user reads the events of a few conversations.
                let group = (key % 1000) / 8;
                let audience: Arc<[UserId]> = (0..8)
                    .map(|i| UserId::parse(&format!("r{}", group * 8 + i)).unwrap())
                    .collect();
                let m = NewMessage {
                    tenant: tn.clone(),
                    conversation: conv.clone(),
                    id: MessageId::generate(CLOCK.now()),
                    sender: sender.clone(),
                    client_msg_id: ClientMsgId::generate(CLOCK.now()),
                    body: Some(corpus.sentence(&mut rng)),
                    ciphertext: None,
                    attachments: vec![],
                    reply_to: None,
                    forwarded_from: None,
                    mentions: vec![],
                    created_at: Timestamp::from_secs(1_700_000_000 + key),
                };
                let announce = Announce {
                    audience,
                    correlation_id: CorrelationId::generate(Timestamp::EPOCH),
                };
                MessageStore::append(&store, m, announce).await.unwrap();
                key += writers;
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let build = t.elapsed().as_secs_f64();
    println!(
        "\nCorpus: {total} messages in 1000 conversations, built in {build:.1} s ({:.0} appends/s, 256 appenders)\n",
        total as f64 / build
    );
    let head = EventLog::head(store, &tn).await.unwrap().0;
    println!("| query | detail | rows | p50 | p99 |");
    println!("|---|---|---|---|---|");
    let mut rng = fastrand::Rng::with_seed(9);
    for (name, at_end) in [
        ("sync page of 100", false),
        ("sync page at the head (nothing new for most)", true),
    ] {
        let mut lat = Vec::new();
        let mut rows = 0;
        for _ in 0..200 {
            let user = UserId::parse(&format!("r{}", rng.u64(0..1000))).unwrap();
            let after = if at_end {
                head.saturating_sub(100)
            } else {
                rng.u64(0..head.max(1))
            };
            let t = Instant::now();
            rows = EventLog::read(store, &tn, &user, Cursor(after), 100)
                .await
                .unwrap()
                .len();
            lat.push(t.elapsed().as_micros() as u64);
        }
        lat.sort_unstable();
        println!(
            "| {name} | a member of 8 of the 1000 conversations | {rows} | {:.2} ms | {:.2} ms |",
            percentile(&lat, 0.5) as f64 / 1000.0,
            percentile(&lat, 0.99) as f64 / 1000.0
        );
    }
    let words = &corpus.words;
    let scope: Vec<ConversationId> = convs.iter().step_by(20).cloned().collect();
    let queries = [
        ("common word", words[0].clone()),
        ("mid-frequency word", words[words.len() / 4].clone()),
        ("rare word", words[words.len() - 1].clone()),
        (
            "two words (common + mid)",
            format!("{} {}", words[0], words[words.len() / 4]),
        ),
        ("prefix of 2 letters", words[0][..2].to_owned()),
    ];
    for (name, q) in queries {
        for (scope_name, within) in [("50 of 1000 conversations", &scope), ("all 1000", &convs)] {
            let mut lat = Vec::new();
            let mut hits = 0;
            for _ in 0..30 {
                let t = Instant::now();
                hits = store
                    .search_messages(&tn, &q, within, None, 20)
                    .await
                    .unwrap()
                    .len();
                lat.push(t.elapsed().as_micros() as u64);
            }
            lat.sort_unstable();
            println!(
                "| search: {name} `{q}` | {scope_name} | {hits} | {:.2} ms | {:.2} ms |",
                percentile(&lat, 0.5) as f64 / 1000.0,
                percentile(&lat, 0.99) as f64 / 1000.0
            );
        }
    }
}

fn main() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let test_mode = !std::env::args().any(|a| a == "--bench");
    let url = match std::env::var("CAAS_TEST_POSTGRES_URL") {
        Ok(u) if !u.trim().is_empty() => u,
        _ => {
            if std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() == Ok("1") {
                panic!("CAAS_TEST_POSTGRES_URL is not set but CAAS_REQUIRE_INTEGRATION=1");
            }
            println!(
                "SKIPPED: CAAS_TEST_POSTGRES_URL is not set; the PostgreSQL bench did not run"
            );
            return;
        }
    };
    let (secs, total) = if test_mode {
        println!("test mode: one short unmeasured pass (`cargo bench` measures)");
        (0.2, 2_000)
    } else {
        (
            env_u64("CAAS_BENCH_SECS", 5) as f64,
            env_u64("CAAS_BENCH_CORPUS", 1_000_000),
        )
    };
    let schema = format!("caas_bench_{}_{}", std::process::id(), fastrand::u32(..));
    rt.block_on(async {
        println!("| backend | senders | acked sends/s | p50 ack | p99 ack | |");
        println!("|---|---|---|---|---|---|");
        let only: Option<usize> = std::env::var("CAAS_BENCH_SENDERS")
            .ok()
            .and_then(|v| v.parse().ok());
        let sqlite = std::env::var("CAAS_BENCH_SQLITE").map_or(true, |v| v != "0");
        for senders in [1usize, 16, 256] {
            if only.is_some_and(|o| o != senders) {
                continue;
            }
            let store = PostgresStore::connect(pg_config(&url, &schema))
                .await
                .unwrap();
            let before = store.writer_stats();
            let r = pipeline(store.backends(), senders, secs).await;
            let after = store.writer_stats();
            let per_batch = (after.appends - before.appends) as f64
                / (after.batches - before.batches).max(1) as f64;
            row(
                "PostgreSQL",
                senders,
                r,
                &format!("{per_batch:.1} sends per transaction"),
            );
            drop(store);
            if sqlite {
                let dir = std::env::temp_dir().join(format!("caas-bench-{}", fastrand::u64(..)));
                let e = caas_storage::embedded::open(&dir, Default::default()).unwrap();
                let r = pipeline(e.backends.clone(), senders, secs).await;
                row("SQLite (FULL)", senders, r, "same run");
                drop(e);
                let _ = std::fs::remove_dir_all(&dir);
            }
        }
        if total > 0 {
            let store = PostgresStore::connect(pg_config(&url, &schema))
                .await
                .unwrap();
            corpus(&store, total).await;
        }
        // Drop the run's schema.
        if let Ok((client, conn)) = tokio_postgres::connect(&url, tokio_postgres::NoTls).await {
            let task = tokio::spawn(conn);
            let _ = client
                .batch_execute(&format!("DROP SCHEMA IF EXISTS {schema} CASCADE"))
                .await;
            drop(client);
            let _ = task.await;
        }
    });
}
