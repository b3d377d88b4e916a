//! End-to-end tests of the caas-core service on every backend set (`sets.rs`), and
//! of the platform as a process (one binary).

mod billing;
#[cfg(all(feature = "postgres", feature = "redis", feature = "nats"))]
mod cluster;
mod crash;
mod erasure;
mod exports;
mod keys;
mod media;
mod moderation;
mod pipeline;
mod platform;
mod props;
mod receiver;
mod retention;
mod sets;
mod usage;
mod webhooks;
mod world;
