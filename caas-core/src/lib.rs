#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

pub mod error;
pub mod events;
pub mod ids;
pub mod model;
pub mod policy;
pub mod ports;
pub mod principal;
pub mod ratelimit;
pub mod service;
pub mod time;

#[cfg(feature = "testkit")]
pub mod testkit;

pub use error::{EntityKind, Error, Result};
pub use principal::{Principal, PrincipalKind};
pub use service::{Caas, Config};
