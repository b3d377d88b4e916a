//! The platform as a cluster of node processes over shared servers: the test
//! binary runs each node as a child process of its own (`harness::node_process`),
//! so a node can be killed with SIGKILL while the others and the test go on.
//!
//! Needs the servers `scripts/test` provisions (`CAAS_TEST_POSTGRES_URL`,
//! `CAAS_TEST_REDIS_URL`) and, for the fault tests, the server binaries to start
//! private instances of (`caas-test-servers`).

mod delivery;
mod faults;
pub(crate) mod harness;
