//! PostgreSQL: the contract suites, concurrency, faults, schema and errors.

mod cache;
mod concurrency;
mod contract;
mod faults;
mod schema;
pub(crate) mod support;
