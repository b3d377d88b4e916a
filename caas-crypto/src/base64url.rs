//! Base64url without padding (RFC 4648 §5), the encoding of every key, token and
//! hash this crate prints. Decoding is strict: padding, whitespace and
//! non-canonical trailing bits are rejected, so one value has one encoding and a
//! changed character never decodes to the same bytes.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use crate::{Error, Result};

pub(crate) fn encode(bytes: impl AsRef<[u8]>) -> String {
    URL_SAFE_NO_PAD.encode(bytes)
}

pub(crate) fn decode(what: &'static str, s: &str) -> Result<Vec<u8>> {
    URL_SAFE_NO_PAD
        .decode(s)
        .map_err(|e| Error::malformed(what, format_args!("base64url: {e}")))
}

pub(crate) fn decode_array<const N: usize>(what: &'static str, s: &str) -> Result<[u8; N]> {
    // Reject by length before decoding: cheap and gives a clearer message.
    let expected = (4 * N).div_ceil(3);
    if s.len() != expected {
        return Err(Error::malformed(
            what,
            format_args!(
                "expected {N} bytes ({expected} base64url characters), got {} characters",
                s.len()
            ),
        ));
    }
    let bytes = decode(what, s)?;
    <[u8; N]>::try_from(bytes.as_slice())
        .map_err(|_| Error::malformed(what, format_args!("expected {N} bytes")))
}

/// Serde adapter: `[u8; N]` as a base64url string.
pub(crate) mod array {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer, const N: usize>(
        bytes: &[u8; N],
        s: S,
    ) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>, const N: usize>(
        d: D,
    ) -> Result<[u8; N], D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::decode_array::<N>("key", &s).map_err(D::Error::custom)
    }
}

/// Serde adapter: `Vec<u8>` as a base64url string.
pub(crate) mod bytes {
    use serde::{Deserialize, Deserializer, Serializer, de::Error as _};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        super::decode("bytes", &s).map_err(D::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn rejects_padding_and_noncanonical_trailing_bits() {
        assert_eq!(decode("t", "AQ").unwrap(), vec![1]);
        assert!(decode("t", "AQ==").is_err());
        // "AR" decodes to the same byte as "AQ" if trailing bits were ignored.
        assert!(decode("t", "AR").is_err());
        assert!(decode("t", "A Q").is_err());
        assert!(decode("t", "A+Q").is_err());
    }

    #[test]
    fn array_length_is_checked() {
        let s = encode([7u8; 32]);
        assert_eq!(s.len(), 43);
        assert_eq!(decode_array::<32>("k", &s).unwrap(), [7u8; 32]);
        assert!(decode_array::<32>("k", &encode([7u8; 31])).is_err());
        assert!(decode_array::<64>("k", &encode([7u8; 64])).is_ok());
        assert!(decode_array::<12>("k", &encode([7u8; 12])).is_ok());
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(128))]
        #[test]
        fn round_trips(bytes in proptest::collection::vec(any::<u8>(), 0..100)) {
            prop_assert_eq!(decode("t", &encode(&bytes)).unwrap(), bytes);
        }

        #[test]
        fn arbitrary_text_never_panics(s in ".{0,80}") {
            let _ = decode("t", &s);
            let _ = decode_array::<32>("t", &s);
        }
    }
}
