//! Blind index tokens: keyed, deterministic stand-ins for words, so text sealed at
//! rest can still be found by the words it holds without the index holding them.
//!
//! A token is HMAC-SHA-256 of the word under a key derived from a data key,
//! truncated to 80 bits and written in lowercase base32 (16 letters and digits,
//! so any full-text tokenizer keeps it whole). The same key and word always give
//! the same token; without the key a token says nothing about its word beyond
//! how often it occurs.

use ring::hmac;

use crate::envelope::DataKey;

/// Makes blind tokens under one key.
pub struct BlindIndex {
    key: hmac::Key,
}

impl std::fmt::Debug for BlindIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlindIndex").finish_non_exhaustive()
    }
}

/// Bytes of the HMAC kept per token: collisions stay negligible for any
/// vocabulary a tenant has, and tokens stay short.
const TOKEN_BYTES: usize = 10;

impl BlindIndex {
    /// The index of `key`. The HMAC key is derived from the data key (not the
    /// data key itself), so tokens and envelopes never share key material.
    pub fn from_data_key(key: &DataKey) -> Self {
        let derive = hmac::Key::new(hmac::HMAC_SHA256, key.expose_bytes());
        let derived = hmac::sign(&derive, b"caas.blind-index.v1");
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, derived.as_ref()),
        }
    }

    /// The token of `word`.
    pub fn token(&self, word: &str) -> String {
        let tag = hmac::sign(&self.key, word.as_bytes());
        base32_lower(&tag.as_ref()[..TOKEN_BYTES])
    }
}

/// RFC 4648 base32 in lowercase, without padding.
fn base32_lower(bytes: &[u8]) -> String {
    const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";
    let mut out = String::with_capacity(bytes.len().div_ceil(5) * 8);
    let (mut buffer, mut bits) = (0u32, 0u32);
    for &b in bytes {
        buffer = (buffer << 8) | u32::from(b);
        bits += 8;
        while bits >= 5 {
            bits -= 5;
            out.push(char::from(ALPHABET[((buffer >> bits) & 31) as usize]));
        }
    }
    if bits > 0 {
        out.push(char::from(ALPHABET[((buffer << (5 - bits)) & 31) as usize]));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::KeyId;
    use crate::envelope::AeadAlgorithm;

    fn key(byte: u8) -> DataKey {
        DataKey::from_bytes(
            KeyId::new("dk_t").unwrap(),
            AeadAlgorithm::Aes256Gcm,
            &[byte; 32],
        )
        .unwrap()
    }

    #[test]
    fn tokens_are_deterministic_per_key_and_keep_nothing_of_the_word() {
        let a = BlindIndex::from_data_key(&key(1));
        let b = BlindIndex::from_data_key(&key(2));
        assert_eq!(a.token("harbour"), a.token("harbour"));
        assert_ne!(a.token("harbour"), a.token("harbor"));
        assert_ne!(a.token("harbour"), b.token("harbour"), "another key");
        let t = a.token("harbour");
        assert_eq!(t.len(), 16);
        assert!(
            t.chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit())
        );
        assert!(!t.contains("harb"));
    }

    #[test]
    fn base32_matches_rfc_4648() {
        assert_eq!(base32_lower(b"foobar"), "mzxw6ytboi");
        assert_eq!(base32_lower(b"f"), "my");
        assert_eq!(base32_lower(b""), "");
    }
}
