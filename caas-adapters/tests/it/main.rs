//! The one integration-test binary of caas-adapters: each module runs against a
//! real server of its engine (see each module for how it is found).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "redis")]
mod redis;
