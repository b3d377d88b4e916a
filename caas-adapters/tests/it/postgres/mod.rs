//! PostgreSQL: the contract suites, concurrency, faults, schema, errors,
//! usage meters and scrubbing a long event log.

mod cache;
mod concurrency;
mod contract;
mod faults;
mod schema;
mod scrub;
pub(crate) mod support;
mod usage;
