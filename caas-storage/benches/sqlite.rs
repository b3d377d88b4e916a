//! Throughput and latency of the SQLite backend, through its public ports.
//!
//! ```text
//! cargo bench -p caas-storage --bench sqlite
//! CAAS_BENCH_FTS_MESSAGES=100000 CAAS_BENCH_SECS=2 cargo bench -p caas-storage --bench sqlite
//! ```
//!
//! * acked durable sends/s: N tasks each `append` in a loop for a few seconds; a send
//!   counts when `append` returned (committed, fsynced under FULL).
//! * history page latency: `history(Latest, 50)` and `history(Before(random), 50)`.
//! * FTS latency: `search_messages` over a corpus of `CAAS_BENCH_FTS_MESSAGES`
//!   messages (default 1 000 000) in 1 000 conversations, scoped to 50 of them.
//! * the whole send pipeline: `Caas::send_message` on the embedded backends (policy,
//!   rate limit, membership read, append, search-index check, event-log append,
//!   bus publish), 256 users in 64 groups.
//!
//! Not a criterion harness: the quantity of interest is throughput under
//! concurrency, which criterion's one-closure-at-a-time model does not measure.
//! Run by `cargo test --bench sqlite` (as `scripts/test` does) it makes one short
//! unmeasured pass through every part, so the test suite catches a broken harness.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use caas_core::events::Announce;
use caas_core::ids::{
    ClientMsgId, ConversationId, CorrelationId, MessageId, Seq, TenantId, UserId,
};
use caas_core::model::NewMessage;
use caas_core::model::{ConversationKind, TenantSettings};
use caas_core::ports::{HistoryPage, MessageStore, SearchIndex};
use caas_core::ratelimit::Quota;
use caas_core::service::{NewConversation, SendMessage};
use caas_core::time::{Clock, SystemClock, Timestamp};
use caas_core::{Caas, Config, Principal};
use caas_storage::embedded::{self, EmbeddedConfig};
use caas_storage::sqlite::{Durability, SqliteConfig, SqliteStore};

static CLOCK: std::sync::LazyLock<SystemClock> = std::sync::LazyLock::new(SystemClock::new);

fn env_u64(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// A fixed vocabulary with a Zipf-like skew, so some words are common and most rare.
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
        // The square of a uniform index favours low indexes: word 0 is very common.
        let u = rng.f64();
        let i = ((u * u) * self.words.len() as f64) as usize;
        &self.words[i.min(self.words.len() - 1)]
    }

    fn sentence(&self, rng: &mut fastrand::Rng) -> String {
        let n = rng.usize(4..12);
        (0..n).map(|_| self.word(rng)).collect::<Vec<_>>().join(" ")
    }
}

fn message(
    tn: &TenantId,
    conv: &ConversationId,
    sender: &UserId,
    key: u64,
    body: String,
) -> NewMessage {
    NewMessage {
        tenant: tn.clone(),
        conversation: conv.clone(),
        // Both ids as clients and the service make them: time-ordered (ULID layout).
        id: MessageId::generate(CLOCK.now()),
        sender: sender.clone(),
        client_msg_id: ClientMsgId::generate(CLOCK.now()),
        body: Some(body),
        ciphertext: None,
        attachments: vec![],
        reply_to: None,
        forwarded_from: None,
        mentions: vec![],
        created_at: Timestamp::from_secs(1_700_000_000 + key),
    }
}

/// On-CPU nanoseconds of this process's threads whose name starts with `prefix`
/// (Linux `schedstat`; 0 elsewhere). Unlike wall time, it does not move when other
/// work on the machine takes the CPU away.
fn thread_cpu_ns(prefix: &str) -> u64 {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return 0;
    };
    tasks
        .flatten()
        .filter(|t| {
            std::fs::read_to_string(t.path().join("comm")).is_ok_and(|c| c.starts_with(prefix))
        })
        .filter_map(|t| std::fs::read_to_string(t.path().join("schedstat")).ok())
        .filter_map(|s| s.split_whitespace().next()?.parse::<u64>().ok())
        .sum()
}

fn percentile(sorted: &[u64], p: f64) -> u64 {
    if sorted.is_empty() {
        return 0;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

struct SendResult {
    acked: u64,
    secs: f64,
    p50_us: u64,
    p99_us: u64,
    avg_batch: f64,
    writer_cpu_us: f64,
}

/// `senders` tasks appending for `secs` seconds; conversations shared by 4 senders.
async fn sends(store: &SqliteStore, senders: usize, secs: f64) -> SendResult {
    let tn = TenantId::parse("bench").unwrap();
    let before = store.writer_stats();
    let cpu_before = thread_cpu_ns("caas-sqlite-wri");
    let stop = Arc::new(AtomicBool::new(false));
    let next_key = Arc::new(AtomicU64::new(0));
    let corpus = Arc::new(Corpus::new());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for s in 0..senders {
        let (store, tn, stop, next_key, corpus) = (
            store.clone(),
            tn.clone(),
            stop.clone(),
            next_key.clone(),
            corpus.clone(),
        );
        tasks.push(tokio::spawn(async move {
            let conv = ConversationId::parse(&format!("c{}", s / 4)).unwrap();
            let sender = UserId::parse(&format!("u{s}")).unwrap();
            let mut rng = fastrand::Rng::with_seed(s as u64);
            let mut lat = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let key = next_key.fetch_add(1, Ordering::Relaxed);
                let m = message(&tn, &conv, &sender, key, corpus.sentence(&mut rng));
                let t = Instant::now();
                let announce = Announce {
                    audience: std::sync::Arc::from(vec![sender.clone()]),
                    correlation_id: CorrelationId::generate(Timestamp::EPOCH),
                };
                MessageStore::append(&store, m, announce).await.unwrap();
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
    lat.sort_unstable();
    let after = store.writer_stats();
    let cpu = thread_cpu_ns("caas-sqlite-wri").saturating_sub(cpu_before);
    let batches = (after.batches - before.batches).max(1);
    SendResult {
        acked: lat.len() as u64,
        secs: elapsed,
        p50_us: percentile(&lat, 0.5),
        p99_us: percentile(&lat, 0.99),
        avg_batch: (after.commands - before.commands) as f64 / batches as f64,
        writer_cpu_us: cpu as f64 / 1000.0 / (after.commands - before.commands).max(1) as f64,
    }
}

/// 256 users sending through the service for `secs` seconds.
async fn pipeline(durability: Durability, secs: f64) {
    let dir = std::env::temp_dir().join(format!("caas-bench-{}", fastrand::u64(..)));
    let e = embedded::open(
        &dir,
        EmbeddedConfig {
            sqlite: SqliteConfig {
                durability,
                ..SqliteConfig::default()
            },
            ..EmbeddedConfig::default()
        },
    )
    .unwrap();
    let caas = Arc::new(Caas::new(e.backends.clone(), Config::default()));
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
    let users: Vec<UserId> = (0..256)
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
    let before = e.sqlite.writer_stats();
    let stop = Arc::new(AtomicBool::new(false));
    let corpus = Arc::new(Corpus::new());
    let start = Instant::now();
    let mut tasks = Vec::new();
    for (i, u) in users.iter().enumerate() {
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
    lat.sort_unstable();
    let after = e.sqlite.writer_stats();
    println!(
        "| {durability:?} | 256 (Caas::send_message) | {:.0} | {:.2} ms | {:.2} ms | {:.1} writes per commit, {:.1} writes per send |",
        lat.len() as f64 / elapsed,
        percentile(&lat, 0.5) as f64 / 1000.0,
        percentile(&lat, 0.99) as f64 / 1000.0,
        (after.commands - before.commands) as f64 / (after.batches - before.batches).max(1) as f64,
        (after.commands - before.commands) as f64 / lat.len().max(1) as f64,
    );
    drop((caas, e));
    let _ = std::fs::remove_dir_all(&dir);
}

async fn history(store: &SqliteStore) {
    let tn = TenantId::parse("bench").unwrap();
    let conv = ConversationId::parse("c0").unwrap();
    let head = store.heads(&tn, std::slice::from_ref(&conv)).await.unwrap()[0].last_seq;
    let mut rng = fastrand::Rng::with_seed(7);
    for (name, latest) in [
        ("history Latest(50)", true),
        ("history Before(random, 50)", false),
    ] {
        let mut lat = Vec::new();
        for _ in 0..2000 {
            let page = if latest {
                HistoryPage::Latest
            } else {
                HistoryPage::Before(Seq(rng.u64(51..=head.get().max(52))))
            };
            let t = Instant::now();
            let got = store.history(&tn, &conv, page, 50).await.unwrap();
            lat.push(t.elapsed().as_micros() as u64);
            assert!(!got.is_empty());
        }
        lat.sort_unstable();
        println!(
            "| {name} | {} messages in conversation | p50 {} µs | p99 {} µs |",
            head.get(),
            percentile(&lat, 0.5),
            percentile(&lat, 0.99)
        );
    }
}

async fn fts(total: u64) {
    let store = SqliteStore::open_temp_with(SqliteConfig {
        durability: Durability::Normal,
        ..SqliteConfig::default()
    })
    .unwrap();
    let tn = TenantId::parse("bench").unwrap();
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
                let m = message(&tn, conv, &sender, key, corpus.sentence(&mut rng));
                let announce = Announce {
                    audience: std::sync::Arc::from(vec![sender.clone()]),
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
    let size = std::fs::metadata(store.path())
        .map(|m| m.len())
        .unwrap_or(0);
    println!(
        "\nFTS corpus: {total} messages in 1000 conversations, built in {build:.1} s \
         ({:.0} msg/s, NORMAL), database {:.0} MiB\n",
        total as f64 / build,
        size as f64 / (1024.0 * 1024.0)
    );
    println!("| query | scope | hits returned | p50 | p99 |");
    println!("|---|---|---|---|---|");
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
            for _ in 0..50 {
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
                "| {name} `{q}` | {scope_name} | {hits} | {:.2} ms | {:.2} ms |",
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
    // `cargo bench` passes the binary `--bench`; `cargo test` passes nothing, and
    // then a short pass through every part checks the harness without measuring.
    let test_mode = !std::env::args().any(|a| a == "--bench");
    let (secs, fts_total) = if test_mode {
        println!("test mode: one short unmeasured pass (`cargo bench` measures)");
        (0.2, 2_000)
    } else {
        (
            env_u64("CAAS_BENCH_SECS", 5) as f64,
            env_u64("CAAS_BENCH_FTS_MESSAGES", 1_000_000),
        )
    };
    rt.block_on(async {
        println!(
            "| durability | senders | acked sends/s | p50 ack | p99 ack | sends per commit | writer CPU per send |"
        );
        println!("|---|---|---|---|---|---|---|");
        let mut keep = None;
        let only: Option<usize> = std::env::var("CAAS_BENCH_SENDERS").ok().and_then(|v| v.parse().ok());
        let only_durability = std::env::var("CAAS_BENCH_DURABILITY").ok();
        for durability in [Durability::Full, Durability::Normal] {
            if only_durability
                .as_deref()
                .is_some_and(|d| !d.eq_ignore_ascii_case(&format!("{durability:?}")))
            {
                continue;
            }
            for senders in [1usize, 16, 256] {
                if only.is_some_and(|o| o != senders) {
                    continue;
                }
                let store = SqliteStore::open_temp_with(SqliteConfig {
                    durability,
                    cache_kib: env_u64("CAAS_BENCH_CACHE_KIB", 16 * 1024) as u32,
                    ..SqliteConfig::default()
                })
                .unwrap();
                let r = sends(&store, senders, secs).await;
                println!(
                    "| {durability:?} | {senders} | {:.0} | {:.2} ms | {:.2} ms | {:.1} | {:.1} µs |",
                    r.acked as f64 / r.secs,
                    r.p50_us as f64 / 1000.0,
                    r.p99_us as f64 / 1000.0,
                    r.avg_batch,
                    r.writer_cpu_us
                );
                if durability == Durability::Full && senders == 256 {
                    keep = Some(store);
                }
            }
        }
        if std::env::var("CAAS_BENCH_PIPELINE").map_or(true, |v| v != "0") {
            for durability in [Durability::Full, Durability::Normal] {
                pipeline(durability, secs).await;
            }
        }
        println!();
        if let Some(store) = keep {
            history(&store).await;
        }
        if fts_total > 0 {
            fts(fts_total).await;
        }
    });
}
