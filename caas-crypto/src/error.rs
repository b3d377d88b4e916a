//! The crate's error type.
//!
//! Variants say what a caller needs to act on (reject a token, revoke a refresh
//! family, ask for a fresh timestamp) and never carry secret material: no keys,
//! no plaintext, no presented credentials. Strings copied from untrusted input
//! (a `kid`, an `alg`) are truncated so an attacker cannot flood logs.

use std::fmt::Display;

/// Everything that can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Input could not be parsed (bad base64, JSON, length, format).
    #[error("malformed {what}: {reason}")]
    Malformed {
        /// What was being parsed.
        what: &'static str,
        /// Why it was rejected.
        reason: String,
    },
    /// Input exceeds a size limit; rejected before any further work.
    #[error("{what} is too large: {len} bytes, the limit is {limit}")]
    TooLarge {
        /// What was being parsed.
        what: &'static str,
        /// Its length in bytes.
        len: usize,
        /// The limit in bytes.
        limit: usize,
    },
    /// A token names an algorithm this crate does not accept (including `none`).
    #[error("unsupported algorithm `{alg}`")]
    UnsupportedAlgorithm {
        /// The algorithm as found in the input (truncated).
        alg: String,
    },
    /// A token's algorithm differs from the algorithm of the key its `kid` names.
    #[error("algorithm `{found}` does not match key `{kid}` ({expected})")]
    AlgorithmMismatch {
        /// The key id.
        kid: String,
        /// The key's algorithm.
        expected: &'static str,
        /// The token's algorithm.
        found: &'static str,
    },
    /// A token has no `kid` header but the verifier needs one to pick a key.
    #[error("token has no key id")]
    MissingKeyId,
    /// No key with this id is known (never existed, removed, or rotated out).
    #[error("unknown key id `{kid}`")]
    UnknownKey {
        /// The key id as found in the input (truncated).
        kid: String,
    },
    /// A signature or MAC did not verify.
    #[error("signature verification failed")]
    BadSignature,
    /// Something time-limited is past its expiry.
    #[error("{what} expired at {exp} (now {now}, leeway {leeway}s)")]
    Expired {
        /// What expired.
        what: &'static str,
        /// Expiry, unix seconds.
        exp: i64,
        /// The time used for the check, unix seconds.
        now: i64,
        /// Leeway that was allowed, seconds.
        leeway: u64,
    },
    /// A token's `nbf` lies in the future.
    #[error("token not valid before {nbf} (now {now}, leeway {leeway}s)")]
    NotYetValid {
        /// Not-before, unix seconds.
        nbf: i64,
        /// The time used for the check, unix seconds.
        now: i64,
        /// Leeway that was allowed, seconds.
        leeway: u64,
    },
    /// A token's `aud` does not include the expected audience.
    #[error("token audience does not include `{expected}`")]
    WrongAudience {
        /// The audience the verifier expected.
        expected: String,
    },
    /// A token's `iss` is not the expected issuer.
    #[error("token issuer is not `{expected}`")]
    WrongIssuer {
        /// The issuer the verifier expected.
        expected: String,
    },
    /// A secret, password, or one-time code does not match.
    #[error("credential does not match")]
    InvalidCredential,
    /// An already-rotated refresh token was presented again: the whole family
    /// must be revoked, because either the client or a thief holds a copy.
    #[error("refresh token reused; family `{family}` must be revoked")]
    RefreshTokenReused {
        /// The family to revoke.
        family: String,
    },
    /// Something was revoked (a refresh token family).
    #[error("{what} has been revoked")]
    Revoked {
        /// What was revoked.
        what: &'static str,
    },
    /// Something valid only once was presented again (a TOTP step, an X3DH
    /// initial message).
    #[error("{what} was already used")]
    Replayed {
        /// What was replayed.
        what: &'static str,
    },
    /// A signed timestamp lies outside the replay window.
    #[error("timestamp {timestamp} is outside the {tolerance}s window around {now}")]
    StaleTimestamp {
        /// The signed timestamp, unix seconds.
        timestamp: i64,
        /// The time used for the check, unix seconds.
        now: i64,
        /// The allowed distance, seconds.
        tolerance: u64,
    },
    /// AEAD decryption failed: wrong key, wrong associated data (the ciphertext
    /// was moved), or tampering. Deliberately indistinguishable.
    #[error("decryption failed")]
    DecryptionFailed,
    /// A key id names no key in the keyring.
    #[error("key `{key_id}` not found")]
    KeyNotFound {
        /// The key id.
        key_id: String,
    },
    /// The key was destroyed (crypto-shredding); data under it is unreadable.
    #[error("key `{key_id}` has been destroyed")]
    KeyDestroyed {
        /// The key id.
        key_id: String,
    },
    /// Key material was rejected (wrong length, wrong type, low-order point).
    #[error("invalid key: {reason}")]
    InvalidKey {
        /// Why.
        reason: &'static str,
    },
    /// A configuration value or argument is out of range.
    #[error("invalid parameter: {reason}")]
    InvalidParameter {
        /// Why.
        reason: String,
    },
    /// A ratchet message would require skipping more message keys than allowed.
    #[error("too many skipped messages: {requested}, the limit is {limit}")]
    TooManySkippedMessages {
        /// How many keys the message would skip.
        requested: u64,
        /// The limit.
        limit: u64,
    },
    /// The operating system's random number generator failed.
    #[error("the system random number generator failed")]
    Rng,
}

/// `Result` with this crate's [`enum@Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// Longest excerpt of untrusted input copied into an error.
const MAX_ECHO: usize = 64;

impl Error {
    pub(crate) fn malformed(what: &'static str, reason: impl Display) -> Self {
        Error::Malformed {
            what,
            reason: truncate(&reason.to_string(), 160),
        }
    }

    pub(crate) fn param(reason: impl Display) -> Self {
        Error::InvalidParameter {
            reason: reason.to_string(),
        }
    }
}

/// Cuts untrusted text to a bounded length on a char boundary.
pub(crate) fn truncate(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

/// Truncates an attacker-chosen identifier for echoing in an error.
pub(crate) fn echo(s: &str) -> String {
    truncate(s, MAX_ECHO)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncate_respects_char_boundaries() {
        let s = "é".repeat(100);
        let t = truncate(&s, 5);
        assert!(t.starts_with("éé"));
        assert!(t.len() <= 5 + "…".len());
        assert_eq!(truncate("short", 10), "short");
    }

    #[test]
    fn echoed_input_is_bounded() {
        let long = "k".repeat(10_000);
        let msg = Error::UnknownKey { kid: echo(&long) }.to_string();
        assert!(msg.len() < 200, "{msg}");
    }
}
