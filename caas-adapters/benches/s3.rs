//! Moving 1 MiB and 64 MiB objects through an S3-compatible server: upload to
//! a presigned PUT URL and download from a presigned GET URL with a plain HTTP
//! client (the path media takes from clients), and the adapter's own `put`
//! (multipart past the part size) and `get` (checksum verified), one transfer
//! in flight at a time, as p50 and MiB/s at the median.
//!
//! `cargo bench -p caas-adapters --features s3 --bench s3` against
//! `CAAS_TEST_S3_URL` with `CAAS_TEST_S3_ACCESS_KEY` and
//! `CAAS_TEST_S3_SECRET_KEY` (scripts/test provisions s3s-fs). Under
//! `cargo test` (no `--bench` argument) it makes a short pass with small
//! objects, so a harness that no longer runs fails there. It makes a bucket of
//! its own and leaves it behind (the server's data dir is temporary).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::time::{Duration, Instant};

use caas_adapters::s3::{S3BlobStore, S3Config};
use caas_core::ids::{BlobId, TenantId};
use caas_core::ports::{BlobStore, UrlMethod};
use caas_core::time::{Clock, SystemClock};

const MIB: usize = 1024 * 1024;

fn report(name: &str, bytes: usize, mut samples: Vec<Duration>) {
    samples.sort();
    let p50 = samples[samples.len() / 2];
    println!(
        "{name:<40} n={:<4} p50 {:>8.1} ms   {:>7.1} MiB/s   max {:>8.1} ms",
        samples.len(),
        p50.as_secs_f64() * 1e3,
        bytes as f64 / MIB as f64 / p50.as_secs_f64(),
        samples[samples.len() - 1].as_secs_f64() * 1e3,
    );
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
    let (Some(url), Some(ak), Some(sk)) = (
        var("CAAS_TEST_S3_URL"),
        var("CAAS_TEST_S3_ACCESS_KEY"),
        var("CAAS_TEST_S3_SECRET_KEY"),
    ) else {
        if std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() == Ok("1") {
            panic!("CAAS_TEST_S3_URL and its keys are not set but CAAS_REQUIRE_INTEGRATION=1");
        }
        println!("SKIPPED: the S3 benchmark did not run (CAAS_TEST_S3_URL is not set)");
        return;
    };
    // (size, transfers) per size; the test pass only checks the harness runs.
    let plan: &[(usize, usize)] = if full {
        &[(MIB, 40), (64 * MIB, 8)]
    } else {
        &[(MIB, 2), (6 * MIB, 1)]
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let bucket = format!("caas-bench-{:08x}", fastrand::u32(..));
        let store = S3BlobStore::new(S3Config {
            part_size: 8 * MIB,
            ..S3Config::new(url.clone(), bucket, ak, sk)
        })
        .unwrap();
        store.create_bucket().await.unwrap();
        let http = reqwest::Client::new();
        let clock = SystemClock::new();
        let tenant = TenantId::parse("bench").unwrap();
        println!("S3 transfers against {url}, one in flight, part size 8 MiB");
        for &(size, n) in plan {
            let body: Vec<u8> = (0..size).map(|i| (i % 251) as u8).collect();
            let label = format!("{} MiB", size / MIB);
            let mut up = Vec::with_capacity(n);
            let mut down = Vec::with_capacity(n);
            for _ in 0..n {
                let id = BlobId::generate(clock.now());
                let expires = clock.now().plus(Duration::from_secs(600));
                let put = store
                    .presign_upload(
                        &tenant,
                        &id,
                        "application/octet-stream",
                        size as u64,
                        expires,
                    )
                    .await
                    .unwrap();
                let start = Instant::now();
                let r = http
                    .put(&put.url)
                    .header("content-type", "application/octet-stream")
                    .body(body.clone())
                    .send()
                    .await
                    .unwrap();
                assert!(r.status().is_success(), "{}", r.status());
                up.push(start.elapsed());
                let get = store
                    .presign(&tenant, &id, UrlMethod::Get, expires)
                    .await
                    .unwrap();
                let start = Instant::now();
                let got = http.get(&get).send().await.unwrap().bytes().await.unwrap();
                down.push(start.elapsed());
                assert_eq!(got.len(), size);
                store.delete(&tenant, &id).await.unwrap();
            }
            report(&format!("presigned PUT {label}"), size, up);
            report(&format!("presigned GET {label}"), size, down);

            let mut puts = Vec::with_capacity(n);
            let mut gets = Vec::with_capacity(n);
            for _ in 0..n {
                let id = BlobId::generate(clock.now());
                let start = Instant::now();
                store
                    .put(
                        &tenant,
                        &id,
                        "application/octet-stream",
                        body.clone(),
                        clock.now(),
                    )
                    .await
                    .unwrap();
                puts.push(start.elapsed());
                let start = Instant::now();
                let (meta, got) = store.get(&tenant, &id).await.unwrap().unwrap();
                gets.push(start.elapsed());
                assert_eq!((meta.size as usize, got.len()), (size, size));
                store.delete(&tenant, &id).await.unwrap();
            }
            report(&format!("adapter put {label}"), size, puts);
            report(&format!("adapter get (checksum) {label}"), size, gets);
        }
    });
}
