#![doc = include_str!("../README.md")]

pub use caas_core as core;
pub use caas_storage as storage;

pub use caas_core::{Caas, Config, Error, Principal, Result};

#[cfg(feature = "platform")]
pub mod platform;
