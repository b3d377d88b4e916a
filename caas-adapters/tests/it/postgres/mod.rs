//! PostgreSQL: the contract suites, concurrency, faults, schema, errors and
//! usage meters.

mod cache;
mod concurrency;
mod contract;
mod faults;
mod schema;
pub(crate) mod support;
mod usage;
