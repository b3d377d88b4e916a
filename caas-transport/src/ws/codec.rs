//! One place that turns frames into bytes and back for either sub-protocol, so the
//! connection, the fan-out and the client never branch on the codec themselves.

use caas_core::events::Event;
use caas_core::ids::Cursor;
use serde::Deserialize;

use super::frames::{
    Ack, ClientFrame, Codec, ErrorFrame, EventFrameRef, EventRef, MAX_REF_LEN, OutFrameRef,
    ServerFrame,
};
use super::proto;
use crate::problem::ApiError;

/// A frame that could not be read. The connection answers it with an `error`
/// frame carrying [`FrameError::code`] and stays open.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// Not valid JSON or protobuf, a field of the wrong shape, a missing `ref`.
    #[error("malformed frame: {reason}")]
    Malformed {
        /// The frame's `ref`, when it could be read.
        reference: Option<String>,
        /// What is wrong.
        reason: String,
    },
    /// A well-formed frame of a type this server does not know.
    #[error("unknown frame type `{kind}`")]
    Unknown {
        /// The frame's `ref`, when it could be read.
        reference: Option<String>,
        /// The type named.
        kind: String,
    },
    /// A text frame on a protobuf connection or a binary one on a JSON connection.
    #[error("{got} frames are not part of {protocol}")]
    WrongKind {
        /// `text` or `binary`.
        got: &'static str,
        /// The connection's sub-protocol.
        protocol: &'static str,
    },
    /// Larger than the connection's frame limit.
    #[error("a frame of {size} bytes is over the limit of {limit}")]
    TooLarge {
        /// The frame's size.
        size: usize,
        /// The limit.
        limit: usize,
    },
}

impl FrameError {
    /// The `api.md` error it is: the one mapping of errors to codes
    /// ([`ApiError`]).
    fn api_error(&self) -> ApiError {
        match self {
            FrameError::TooLarge { .. } => ApiError::too_large(self.to_string()),
            _ => ApiError::invalid(self.to_string()),
        }
    }

    /// The `api.md` code of the error frame.
    pub fn code(&self) -> &'static str {
        self.api_error().code()
    }

    /// The `ref` of the offending frame, when known.
    pub fn reference(&self) -> Option<&str> {
        match self {
            FrameError::Malformed { reference, .. } | FrameError::Unknown { reference, .. } => {
                reference.as_deref()
            }
            _ => None,
        }
    }

    /// The error frame that answers it.
    pub(crate) fn to_frame(&self) -> ErrorFrame {
        self.api_error()
            .into_error_frame(self.reference().map(str::to_owned), false)
    }
}

/// An encoded frame, before it becomes the socket library's message type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Encoded {
    Text(String),
    Binary(Vec<u8>),
}

/// The JSON of frames that serialize infallibly in practice (string keys, no
/// custom serializers that fail); should that ever change, the peer gets an
/// `internal` error frame instead of a panic.
fn json<T: serde::Serialize>(value: &T) -> String {
    serde_json::to_string(value).unwrap_or_else(|e| {
        tracing::error!(error = %e, "frame failed to serialize");
        let e = ApiError::internal();
        format!(
            r#"{{"type":"error","code":"{}","message":"a frame failed to serialize"}}"#,
            e.code()
        )
    })
}

pub(crate) fn encode_ack(codec: Codec, ack: &Ack) -> Encoded {
    match codec {
        Codec::Json => Encoded::Text(json(&OutFrameRef::Ack(ack))),
        Codec::Proto => Encoded::Binary(proto::encode_ack(ack)),
    }
}

pub(crate) fn encode_error(codec: Codec, e: &ErrorFrame) -> Encoded {
    match codec {
        Codec::Json => Encoded::Text(json(&OutFrameRef::Error(e))),
        Codec::Proto => Encoded::Binary(proto::encode_error(e)),
    }
}

pub(crate) fn encode_event(codec: Codec, event: &Event, cursor: Option<Cursor>) -> Encoded {
    match codec {
        Codec::Json => Encoded::Text(json(&EventFrameRef {
            event: EventRef::new(event, cursor),
        })),
        Codec::Proto => Encoded::Binary(proto::encode_event(event, cursor)),
    }
}

pub(crate) fn encode_client(codec: Codec, frame: &ClientFrame) -> Encoded {
    match codec {
        Codec::Json => Encoded::Text(json(frame)),
        Codec::Proto => Encoded::Binary(proto::encode_client(frame)),
    }
}

/// What a malformed JSON frame still tells: its `ref` and `type`, for the error.
#[derive(Deserialize)]
struct Probe {
    #[serde(rename = "ref", default)]
    reference: Option<serde_json::Value>,
    #[serde(rename = "type", default)]
    kind: Option<serde_json::Value>,
}

const CLIENT_TYPES: &[&str] = &[
    "send",
    "edit",
    "delete",
    "react",
    "unreact",
    "read",
    "typing",
    "presence",
    "call_signal",
    "sync",
    "ping",
];

/// Decodes a client frame received as `text` (a text frame) or binary `bytes`.
pub(crate) fn decode_client(
    codec: Codec,
    text: bool,
    bytes: &[u8],
) -> Result<ClientFrame, FrameError> {
    let frame = match (codec, text) {
        (Codec::Json, true) => decode_json_client(bytes)?,
        (Codec::Proto, false) => proto::decode_client(bytes)?,
        (Codec::Json, false) => {
            return Err(FrameError::WrongKind {
                got: "binary",
                protocol: super::frames::JSON_PROTOCOL,
            });
        }
        (Codec::Proto, true) => {
            return Err(FrameError::WrongKind {
                got: "text",
                protocol: super::frames::PROTO_PROTOCOL,
            });
        }
    };
    if frame.reference.is_empty() || frame.reference.len() > MAX_REF_LEN {
        return Err(FrameError::Malformed {
            reference: None,
            reason: format!("`ref` must be 1 to {MAX_REF_LEN} bytes"),
        });
    }
    Ok(frame)
}

fn decode_json_client(bytes: &[u8]) -> Result<ClientFrame, FrameError> {
    match serde_json::from_slice::<ClientFrame>(bytes) {
        Ok(f) => Ok(f),
        Err(e) => {
            // Read again leniently, only to say which frame failed and how.
            let probe = serde_json::from_slice::<Probe>(bytes).ok();
            let reference = probe
                .as_ref()
                .and_then(|p| p.reference.as_ref())
                .and_then(|r| r.as_str())
                .filter(|r| !r.is_empty() && r.len() <= MAX_REF_LEN)
                .map(str::to_owned);
            let kind = probe
                .as_ref()
                .and_then(|p| p.kind.as_ref())
                .and_then(|k| k.as_str());
            match kind {
                Some(k) if !CLIENT_TYPES.contains(&k) => Err(FrameError::Unknown {
                    reference,
                    kind: k.chars().take(64).collect(),
                }),
                _ => Err(FrameError::Malformed {
                    reference,
                    reason: e.to_string(),
                }),
            }
        }
    }
}

/// Decodes a server frame (on the client).
pub(crate) fn decode_server(
    codec: Codec,
    text: bool,
    bytes: &[u8],
) -> Result<ServerFrame, FrameError> {
    match (codec, text) {
        (Codec::Json, true) => {
            serde_json::from_slice::<ServerFrame>(bytes).map_err(|e| FrameError::Malformed {
                reference: None,
                reason: e.to_string(),
            })
        }
        (Codec::Proto, false) => proto::decode_server(bytes),
        (Codec::Json, false) => Err(FrameError::WrongKind {
            got: "binary",
            protocol: super::frames::JSON_PROTOCOL,
        }),
        (Codec::Proto, true) => Err(FrameError::WrongKind {
            got: "text",
            protocol: super::frames::PROTO_PROTOCOL,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn malformed_json_names_its_ref_and_unknown_types_are_told_apart() {
        let e = decode_client(Codec::Json, true, br#"{"type":"send","ref":"5"}"#).unwrap_err();
        assert!(matches!(&e, FrameError::Malformed { reference: Some(r), .. } if r == "5"));
        assert_eq!(e.code(), "invalid_argument");
        let e = decode_client(Codec::Json, true, br#"{"type":"dance","ref":"6"}"#).unwrap_err();
        assert!(
            matches!(&e, FrameError::Unknown { reference: Some(r), kind } if r == "6" && kind == "dance")
        );
        let e = decode_client(Codec::Json, true, b"{not json").unwrap_err();
        assert!(matches!(
            e,
            FrameError::Malformed {
                reference: None,
                ..
            }
        ));
        let e = decode_client(Codec::Json, false, b"{}").unwrap_err();
        assert!(matches!(e, FrameError::WrongKind { .. }));
        let long = format!(r#"{{"type":"ping","ref":"{}"}}"#, "x".repeat(65));
        assert!(decode_client(Codec::Json, true, long.as_bytes()).is_err());
    }
}
