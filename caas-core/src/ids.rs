//! Typed identifiers. Ids cross every API as one of these types, never as a bare
//! `String` or `u64`, so a conversation id can never be passed where a user id is
//! expected.
//!
//! Ids are opaque strings of 1 to [`MAX_ID_LEN`] characters from `[A-Za-z0-9_.:@-]`.
//! They are reference counted, so cloning one (which the pipeline does often) does
//! not allocate.

use std::fmt;
use std::sync::Arc;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::error::Error;

/// Longest id accepted from the outside.
pub const MAX_ID_LEN: usize = 128;

/// Checks the id rules; `kind` names the field in the error.
pub(crate) fn validate_id(kind: &'static str, s: &str) -> Result<(), Error> {
    if s.is_empty() || s.len() > MAX_ID_LEN {
        return Err(Error::invalid(
            kind,
            format!("must be 1 to {MAX_ID_LEN} characters"),
        ));
    }
    if !s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.' | b':' | b'@'))
    {
        return Err(Error::invalid(
            kind,
            "may only contain letters, digits and _ - . : @",
        ));
    }
    Ok(())
}

/// A fresh random id with a readable prefix: 16 random bytes as 26 base32 characters
/// after a millisecond timestamp, so ids sort roughly by creation time.
pub(crate) fn generate(prefix: &str, now_ms: u64) -> Arc<str> {
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut out = String::with_capacity(prefix.len() + 26);
    out.push_str(prefix);
    // 48 bits of time, then 80 bits of randomness (ULID layout).
    let time = now_ms & 0xFFFF_FFFF_FFFF;
    for i in (0..10).rev() {
        out.push(ALPHABET[((time >> (i * 5)) & 31) as usize] as char);
    }
    let mut rnd = fastrand::u128(..);
    for _ in 0..16 {
        out.push(ALPHABET[(rnd & 31) as usize] as char);
        rnd >>= 5;
    }
    Arc::from(out)
}

macro_rules! string_id {
    ($(#[$doc:meta])* $name:ident, $kind:literal, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Arc<str>);

        impl $name {
            /// Parses an id received from the outside, checking the id rules.
            pub fn parse(s: &str) -> Result<Self, Error> {
                validate_id($kind, s)?;
                Ok(Self(Arc::from(s)))
            }

            /// A new random id (prefixed, time-ordered) for an entity created now.
            pub fn generate(now: crate::time::Timestamp) -> Self {
                Self(generate($prefix, now.as_millis()))
            }

            /// The id as a string slice.
            pub fn as_str(&self) -> &str {
                &self.0
            }

            /// The shared string (no copy), for policy attributes and keys.
            pub fn shared(&self) -> Arc<str> {
                self.0.clone()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{}({})", stringify!($name), &self.0)
            }
        }

        impl std::str::FromStr for $name {
            type Err = Error;
            fn from_str(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl TryFrom<&str> for $name {
            type Error = Error;
            fn try_from(s: &str) -> Result<Self, Error> {
                Self::parse(s)
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .min_length(Some(1))
                    .max_length(Some(MAX_ID_LEN))
                    .pattern(Some("^[A-Za-z0-9_.:@-]+$"))
                    .into()
            }
        }

        #[cfg(feature = "openapi")]
        impl utoipa::ToSchema for $name {}

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(&self.0)
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let s = <std::borrow::Cow<'de, str>>::deserialize(d)?;
                Self::parse(&s).map_err(serde::de::Error::custom)
            }
        }
    };
}

string_id!(
    /// A tenant: one host application's isolated space of users and conversations.
    TenantId, "tenant_id", "t_"
);
string_id!(
    /// A user inside a tenant. Chosen by the host application.
    UserId, "user_id", "u_"
);
string_id!(
    /// One of a user's devices (a phone, a browser tab); E2EE keys are per device.
    DeviceId, "device_id", "d_"
);
string_id!(
    /// A conversation (direct, group or channel) inside a tenant.
    ConversationId, "conversation_id", "c_"
);
string_id!(
    /// A stored message. Server-assigned.
    MessageId, "message_id", "m_"
);
string_id!(
    /// The sender's idempotency key for a message: a retry with the same key returns
    /// the original message.
    ClientMsgId, "client_msg_id", "k_"
);
string_id!(
    /// A stored blob (media attachment).
    BlobId, "blob_id", "b_"
);
string_id!(
    /// The id of one request, carried into every log line and event it causes.
    CorrelationId, "correlation_id", "r_"
);
string_id!(
    /// A tenant's webhook endpoint.
    WebhookId, "webhook_id", "wh_"
);
string_id!(
    /// A data export job.
    ExportId, "export_id", "exp_"
);

/// A message's position in its conversation: 1 for the first message, then gap-free.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Seq(pub u64);

impl Seq {
    /// Before the first message.
    pub const ZERO: Seq = Seq(0);

    /// The number.
    pub fn get(self) -> u64 {
        self.0
    }

    /// The next position.
    pub fn next(self) -> Seq {
        Seq(self.0 + 1)
    }
}

impl fmt::Display for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl fmt::Debug for Seq {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Seq({})", self.0)
    }
}

/// A position in a tenant's event log; `GET /v1/sync?since=` takes one.
#[derive(
    Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default, Debug, Serialize, Deserialize,
)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(transparent)]
pub struct Cursor(pub u64);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::time::Timestamp;

    #[test]
    fn parse_rejects_empty_long_and_odd_characters() {
        assert!(UserId::parse("").is_err());
        assert!(UserId::parse(&"a".repeat(MAX_ID_LEN + 1)).is_err());
        assert!(UserId::parse("alice bob").is_err());
        assert!(UserId::parse("ali\u{e9}").is_err());
        assert_eq!(
            UserId::parse("alice@x.io").map(|u| u.to_string()).ok(),
            Some("alice@x.io".into())
        );
    }

    #[test]
    fn generated_ids_are_prefixed_unique_and_time_ordered() {
        let a = MessageId::generate(Timestamp::from_millis(1_000));
        let b = MessageId::generate(Timestamp::from_millis(2_000));
        assert!(a.as_str().starts_with("m_"));
        assert_eq!(a.as_str().len(), 2 + 26);
        assert!(a < b);
        assert_ne!(
            MessageId::generate(Timestamp::from_millis(5)),
            MessageId::generate(Timestamp::from_millis(5))
        );
        assert!(MessageId::parse(a.as_str()).is_ok());
    }

    #[test]
    fn serde_validates() {
        let ok: Result<ConversationId, _> = serde_json::from_str("\"c_1\"");
        assert!(ok.is_ok());
        let bad: Result<ConversationId, _> = serde_json::from_str("\"c 1\"");
        assert!(bad.is_err());
    }
}
