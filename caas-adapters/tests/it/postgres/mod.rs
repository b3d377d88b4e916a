//! PostgreSQL: the contract suites, concurrency, faults, schema, errors,
//! usage meters, scrubbing a long event log and webhooks.

mod cache;
mod concurrency;
mod contract;
mod faults;
mod schema;
mod scrub;
pub(crate) mod support;
mod usage;
mod webhooks;
