#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod base64url;
pub mod blind;
pub mod e2ee;
pub mod envelope;
mod error;
pub mod jwt;
mod key_id;
pub mod keys;
pub mod password;
#[cfg(feature = "core")]
pub mod ports;
pub mod random;
pub mod refresh;
pub mod secret;
pub mod signed_url;
pub mod totp;
pub mod webhook;

pub use error::{Error, Result};
pub use key_id::KeyId;
