//! Criterion benchmarks for caas-crypto: token sign/verify (HS256, EdDSA),
//! AEAD throughput at 1 KiB and 64 KiB, and Argon2id with the default
//! (OWASP) parameters. Numbers are recorded in BENCHMARKS.md.

// `criterion_group!` generates a public function without docs.
#![allow(missing_docs)]

use std::hint::black_box;

use caas_crypto::KeyId;
use caas_crypto::envelope::{AeadAlgorithm, AssociatedData, DataKey};
use caas_crypto::jwt::{Claims, KeySet, SigningKey, Validation};
use caas_crypto::password::{PasswordHasher, PasswordParams};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};

const NOW: i64 = 1_700_000_000;

fn tokens(c: &mut Criterion) {
    let claims = Claims::new(
        "https://caas.example",
        "user-1",
        "caas",
        "tenant-1",
        NOW,
        900,
    )
    .expect("claims")
    .with_device("phone")
    .with_scopes(["messages:read", "messages:write"]);
    let validation = Validation::new("https://caas.example", "caas");
    let keys = [
        ("hs256", SigningKey::hs256(kid("hs"), &[7u8; 32])),
        ("eddsa", SigningKey::generate_ed25519(kid("ed"))),
    ];
    let mut group = c.benchmark_group("jwt");
    for (name, key) in keys {
        let key = key.expect("key");
        let mut set = KeySet::new();
        set.insert(key.verification_key());
        let token = key.sign_claims(&claims).expect("sign");
        group.bench_function(format!("{name}_sign"), |b| {
            b.iter(|| key.sign_claims(black_box(&claims)))
        });
        group.bench_function(format!("{name}_verify"), |b| {
            b.iter(|| set.verify(black_box(&token), &validation, NOW))
        });
    }
    group.finish();
}

fn aead(c: &mut Criterion) {
    let aad = AssociatedData::message("tenant-1", "conversation-1", "message-1");
    let mut group = c.benchmark_group("aead");
    for (name, alg) in [
        ("aes256gcm", AeadAlgorithm::Aes256Gcm),
        ("chacha20poly1305", AeadAlgorithm::ChaCha20Poly1305),
    ] {
        let key = DataKey::generate(kid("dk"), alg).expect("key");
        for size in [1024usize, 64 * 1024] {
            let plaintext = vec![0x5au8; size];
            let envelope = key.seal(&aad, &plaintext).expect("seal");
            let label = format!("{}KiB", size / 1024);
            group.throughput(Throughput::Bytes(size as u64));
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_seal"), &label),
                &plaintext,
                |b, p| b.iter(|| key.seal(&aad, black_box(p))),
            );
            group.bench_with_input(
                BenchmarkId::new(format!("{name}_open"), &label),
                &envelope,
                |b, e| b.iter(|| key.open(&aad, black_box(e))),
            );
        }
    }
    group.finish();
}

fn argon2(c: &mut Criterion) {
    let hasher = PasswordHasher::new(PasswordParams::default()).expect("params");
    let phc = hasher.hash("correct horse battery staple").expect("hash");
    let mut group = c.benchmark_group("argon2id_owasp");
    group.sample_size(10);
    group.bench_function("hash", |b| {
        b.iter(|| hasher.hash(black_box("correct horse battery staple")))
    });
    group.bench_function("verify", |b| {
        b.iter(|| hasher.verify(black_box("correct horse battery staple"), &phc))
    });
    group.finish();
}

fn kid(s: &str) -> KeyId {
    KeyId::new(s).expect("kid")
}

criterion_group!(benches, tokens, aead, argon2);
criterion_main!(benches);
