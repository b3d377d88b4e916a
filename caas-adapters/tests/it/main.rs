//! The one integration-test binary of caas-adapters: every backend against its
//! real server. Without `CAAS_TEST_POSTGRES_URL` the PostgreSQL tests say so
//! and return; with `CAAS_REQUIRE_INTEGRATION=1` they fail instead. The Redis
//! tests use `CAAS_TEST_REDIS_URL`, by default the server on 127.0.0.1:6379.
//! The MongoDB suites run only when `CAAS_TEST_MONGO_URL` is set (no MongoDB
//! server can be installed where `scripts/test` runs); otherwise they say so and
//! return, even with `CAAS_REQUIRE_INTEGRATION=1`, and are not counted as passed.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[cfg(feature = "mongo")]
mod mongo;
#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
