//! Key identifiers shared by token keys (`kid`), data keys and key-encryption
//! keys.

use std::fmt;

use serde::{Deserialize, Serialize};

use crate::{Error, Result};

/// A key identifier: 1 to 64 characters from `[A-Za-z0-9._:-]`.
///
/// The character set keeps ids safe to place in JSON, URLs, logs and the
/// binary envelope header without escaping.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct KeyId(String);

impl KeyId {
    /// Longest accepted key id, in bytes.
    pub const MAX_LEN: usize = 64;

    /// Validates `id`.
    pub fn new(id: impl Into<String>) -> Result<Self> {
        let id = id.into();
        if id.is_empty() || id.len() > Self::MAX_LEN {
            return Err(Error::malformed(
                "key id",
                format_args!("length must be 1..={}", Self::MAX_LEN),
            ));
        }
        if !id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b':' | b'-'))
        {
            return Err(Error::malformed(
                "key id",
                "allowed characters are [A-Za-z0-9._:-]",
            ));
        }
        Ok(KeyId(id))
    }

    /// A fresh random id with the given prefix (e.g. `dk_`), 128 bits of entropy.
    pub fn generate(prefix: &str) -> Result<Self> {
        Self::new(crate::random::id(prefix)?)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for KeyId {
    type Error = Error;
    fn try_from(s: String) -> Result<Self> {
        Self::new(s)
    }
}

impl From<KeyId> for String {
    fn from(id: KeyId) -> String {
        id.0
    }
}

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::str::FromStr for KeyId {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self> {
        Self::new(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn validates_charset_and_length() {
        assert!(KeyId::new("platform-2025.01:a_b").is_ok());
        assert!(KeyId::new("").is_err());
        assert!(KeyId::new("a".repeat(65)).is_err());
        assert!(KeyId::new("a".repeat(64)).is_ok());
        assert!(KeyId::new("has space").is_err());
        assert!(KeyId::new("quote\"").is_err());
        assert!(KeyId::new("ünicode").is_err());
    }

    #[test]
    fn serde_validates() {
        let id: KeyId = serde_json::from_str("\"k1\"").unwrap();
        assert_eq!(id.as_str(), "k1");
        assert!(serde_json::from_str::<KeyId>("\"bad id\"").is_err());
        assert_eq!(serde_json::to_string(&id).unwrap(), "\"k1\"");
    }

    #[test]
    fn generated_ids_are_valid_and_distinct() {
        let a = KeyId::generate("dk_").unwrap();
        let b = KeyId::generate("dk_").unwrap();
        assert_ne!(a, b);
        assert!(a.as_str().starts_with("dk_"));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]
        #[test]
        fn arbitrary_text_never_panics(s in ".{0,80}") {
            if let Ok(id) = KeyId::new(s.clone()) {
                prop_assert_eq!(id.as_str(), s.as_str());
                prop_assert!(s.len() <= KeyId::MAX_LEN);
            }
        }
    }
}
