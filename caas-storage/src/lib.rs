#![doc = include_str!("../README.md")]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

#[cfg(all(feature = "sqlite", feature = "fs"))]
pub mod embedded;
#[cfg(feature = "encryption")]
pub mod encrypted;
#[cfg(feature = "fs")]
pub mod fs;
pub mod memory;
#[cfg(feature = "sqlite")]
pub mod sqlite;

#[cfg(any(feature = "sqlite", feature = "fs"))]
mod private;
#[cfg(any(feature = "sqlite", feature = "fs"))]
mod temp;

#[cfg(any(feature = "sqlite", feature = "fs"))]
pub use private::PermissionChange;

/// The marker that starts a message body sealed at rest by the `encryption`
/// decorator (`encrypted::EncryptedMessageStore`), followed by the base64url
/// envelope. It begins with a control character, which the service never accepts
/// in a body, so no plain text can be mistaken for it; stores must not index such
/// bodies as words.
pub const SEALED_BODY_PREFIX: &str = "\u{1}caas-sealed-v1:";

/// Hex SHA-256 of `bytes`: the blob checksum every blob store records and checks.
pub(crate) fn sha256_hex(bytes: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, bytes);
    digest.as_ref().iter().map(|b| format!("{b:02x}")).collect()
}
