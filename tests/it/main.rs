//! End-to-end tests of the caas-core service on the memory backends (one binary).

mod pipeline;
mod platform;
mod props;
mod world;
