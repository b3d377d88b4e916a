//! The one integration-test binary of caas-adapters: every backend against its
//! real server. Without `CAAS_TEST_POSTGRES_URL` the PostgreSQL tests say so
//! and return; with `CAAS_REQUIRE_INTEGRATION=1` they fail instead. The Redis
//! tests use `CAAS_TEST_REDIS_URL`, by default the server on 127.0.0.1:6379.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, missing_docs)]

#[cfg(feature = "postgres")]
mod postgres;
#[cfg(feature = "redis")]
mod redis;
