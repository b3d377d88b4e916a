//! caas-core's credential ports, implemented with this crate (feature `core`):
//!
//! - [`CryptoAuthority`]: the [`caas_core::ports::Authority`]: EdDSA access
//!   tokens (JWS), hashed tenant secrets and the operator key, refresh tokens,
//!   TOTP;
//! - [`Argon2Passwords`]: the [`caas_core::ports::PasswordHasher`] (Argon2id), off
//!   the async workers and bounded in how many run at once;
//! - [`DeviceKeyVerifier`]: the [`caas_core::ports::KeyVerifier`] that checks
//!   uploaded E2EE key material before the directory stores it.

mod authority;
mod keys;
mod passwords;

pub use authority::{AUDIENCE, CryptoAuthority, ISSUER, LEEWAY_SECS};
pub use keys::DeviceKeyVerifier;
pub use passwords::Argon2Passwords;
