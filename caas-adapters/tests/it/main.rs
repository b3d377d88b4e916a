//! The one integration-test binary of caas-adapters: every backend against its
//! real server. Without `CAAS_TEST_POSTGRES_URL` the PostgreSQL tests say so
//! and return; with `CAAS_REQUIRE_INTEGRATION=1` they fail instead. The Redis
//! tests use `CAAS_TEST_REDIS_URL`, by default the server on 127.0.0.1:6379;
//! the NATS and RabbitMQ tests `CAAS_TEST_NATS_URL` and `CAAS_TEST_RABBITMQ_URL`,
//! by default the servers on their standard ports.
//! The S3 tests use `CAAS_TEST_S3_URL` with its keys and `CAAS_TEST_S3S_FS`
//! (see `s3.rs`), and skip or fail like the PostgreSQL ones.
//! The Kafka tests use `CAAS_TEST_KAFKA_URL` (bootstrap servers) and, for the
//! fault tests, the Tansu binary `CAAS_TEST_TANSU`, as PostgreSQL's do.
//! The MongoDB suites run only when `CAAS_TEST_MONGO_URL` is set (no MongoDB
//! server can be installed where `scripts/test` runs); otherwise they say so and
//! return, even with `CAAS_REQUIRE_INTEGRATION=1`, and are not counted as passed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "mongo")]
mod mongo;
#[cfg(feature = "nats")]
mod nats;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "rabbitmq")]
mod rabbitmq;
#[cfg(any(feature = "nats", feature = "rabbitmq", feature = "redis"))]
mod recovery;
#[cfg(feature = "redis")]
mod redis;
#[cfg(feature = "s3")]
mod s3;
