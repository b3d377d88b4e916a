//! Round trips to Redis, one request in flight at a time: a GCRA check (the
//! script, allowing and storing every time) and a presence heartbeat (the
//! presence script renewing one device), as p50/p99 latencies, beside a PING
//! through the same connection.
//!
//! `cargo bench -p caas-adapters --features redis --bench redis` against
//! `CAAS_TEST_REDIS_URL` (default `redis://127.0.0.1:6379`). Under `cargo test`
//! (no `--bench` argument) it makes a short pass, so a harness that no longer
//! runs fails there. Keys live under a fresh prefix and expire by themselves.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::{Duration, Instant};

use caas_adapters::redis::{Redis, RedisConfig};
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::PresenceStatus;
use caas_core::ports::{PresenceStore, RateLimitStore};
use caas_core::ratelimit::{Quota, RateKey};
use caas_core::time::{Clock, SystemClock};

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn report(name: &str, mut samples: Vec<Duration>) {
    samples.sort();
    println!(
        "{name:<28} n={:<6} p50 {:>7.1} µs   p99 {:>7.1} µs",
        samples.len(),
        percentile(&samples, 0.50).as_secs_f64() * 1e6,
        percentile(&samples, 0.99).as_secs_f64() * 1e6,
    );
}

async fn sample<F: std::future::Future<Output = ()>>(
    warmup: usize,
    n: usize,
    mut f: impl FnMut(usize) -> F,
) -> Vec<Duration> {
    for i in 0..warmup {
        f(i).await;
    }
    let mut out = Vec::with_capacity(n);
    for i in 0..n {
        let start = Instant::now();
        f(warmup + i).await;
        out.push(start.elapsed());
    }
    out
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let (warmup, n) = if full { (2_000, 20_000) } else { (10, 50) };
    let url =
        std::env::var("CAAS_TEST_REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".into());
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let redis = Redis::new(RedisConfig {
            key_prefix: format!("caas-bench:{:016x}:", fastrand::u64(..)),
            presence_retention: Duration::from_secs(60),
            ..RedisConfig::new(url.clone())
        })
        .unwrap();
        redis
            .ping()
            .await
            .expect("Redis answers at CAAS_TEST_REDIS_URL");
        let clock = SystemClock::new();
        let tenant = TenantId::parse("bench").unwrap();
        println!("Redis round trips against {url}, one in flight");

        // The floor: one command's round trip through the same connection.
        let ping = sample(warmup, n, |_| {
            let redis = &redis;
            async move { redis.ping().await.unwrap() }
        })
        .await;
        report("PING (baseline)", ping);

        let limits = redis.rate_limits();
        // Large enough that every check is allowed and stores its new state.
        let quota = Quota::per_second(1_000_000);
        let key = RateKey::new(&tenant, "alice", "message.send");
        let gcra = sample(warmup, n, |_| {
            let (limits, key) = (&limits, &key);
            let now = clock.now();
            async move {
                assert!(limits.check(key, &quota, now).await.unwrap().is_allowed());
            }
        })
        .await;
        report("GCRA check", gcra);

        let presence = redis.presence();
        let user = UserId::parse("alice").unwrap();
        let device = DeviceId::parse("phone").unwrap();
        let heartbeat = sample(warmup, n, |_| {
            let (presence, tenant, user, device) = (&presence, &tenant, &user, &device);
            let now = clock.now();
            async move {
                presence
                    .set(
                        tenant,
                        user,
                        device,
                        PresenceStatus::Online,
                        now,
                        Duration::from_secs(30),
                    )
                    .await
                    .unwrap();
            }
        })
        .await;
        report("presence heartbeat", heartbeat);
    });
}
