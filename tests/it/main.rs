//! End-to-end tests of the caas-core service on the memory backends (one binary).

mod crash;
mod keys;
mod pipeline;
mod platform;
mod props;
mod world;
