//! The one integration-test binary of caas-adapters: every backend against its
//! real server. Without `CAAS_TEST_POSTGRES_URL` the PostgreSQL tests say so
//! and return; with `CAAS_REQUIRE_INTEGRATION=1` they fail instead. The Redis
//! tests use `CAAS_TEST_REDIS_URL`, by default the server on 127.0.0.1:6379.
//! The Kafka tests use `CAAS_TEST_KAFKA_URL` (bootstrap servers) and, for the
//! fault tests, the Tansu binary `CAAS_TEST_TANSU`, as PostgreSQL's do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[cfg(feature = "kafka")]
mod kafka;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
