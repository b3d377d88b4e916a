//! The one integration-test binary of caas-storage: contract suites against the
//! durable backends, and the behaviour the contracts do not cover (restarts,
//! migrations, group commit, crashes, blobs on disk, encryption at rest).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[cfg(feature = "sqlite")]
mod contract_sqlite;
#[cfg(feature = "sqlite")]
mod crash;
#[cfg(all(feature = "sqlite", feature = "encryption"))]
mod encrypted;
#[cfg(feature = "fs")]
mod fs;
#[cfg(all(feature = "sqlite", feature = "fs"))]
mod sqlite;
