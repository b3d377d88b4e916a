//! Between domain values and BSON documents: integers, ids, JSON bodies and
//! the document size bound.
//!
//! Each document keeps as native BSON fields only what a query filters, sorts
//! or indexes on; the whole value is one JSON string (`doc`), so a model field
//! added later needs no migration and no `u64` of the model is squeezed into
//! BSON's signed 64-bit integers.

use std::str::FromStr;

use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use mongodb::bson::Document;
use serde::Serialize;
use serde::de::DeserializeOwned;

/// MongoDB refuses documents over 16 MiB. The values caas stores are bounded
/// well below that by the service's own limits; this catches what is not,
/// before it is sent, as `PayloadTooLarge`.
pub(super) const MAX_DOCUMENT_BYTES: usize = 16 * 1024 * 1024;

/// Room left for the native fields and BSON's framing beside the JSON body,
/// counted by [`check_size`] on top of the sizes it is given.
const FRAMING_BYTES: usize = 4 * 1024;

/// `PayloadTooLarge` when a document of about `size` bytes (its strings
/// summed) would not fit in one MongoDB document.
pub(super) fn check_size(field: &str, size: usize) -> Result<()> {
    let limit = MAX_DOCUMENT_BYTES - FRAMING_BYTES;
    if size > limit {
        return Err(Error::PayloadTooLarge {
            field: field.to_owned(),
            size,
            limit,
        });
    }
    Ok(())
}

/// A u64 (seq, cursor, timestamp) as BSON's int64.
pub(super) fn to_i64(v: u64, what: &str) -> Result<i64> {
    i64::try_from(v).map_err(|_| Error::invalid(what, "too large for the store (max 2^63 - 1)"))
}

/// A stored int64 back to u64; a negative one means the document is corrupt.
pub(super) fn to_u64(v: i64, what: &str) -> Result<u64> {
    u64::try_from(v).map_err(|_| Error::internal(format!("mongo: stored {what} is negative")))
}

pub(super) fn ts_to_i64(t: Timestamp, what: &str) -> Result<i64> {
    to_i64(t.as_nanos(), what)
}

/// A u64 bound of a range query (`seq > ?`): past i64::MAX nothing is stored,
/// so saturating keeps the query's meaning.
pub(super) fn bound(v: u64) -> i64 {
    i64::try_from(v).unwrap_or(i64::MAX)
}

/// A page size for `limit`, or `None` for "no limit" (MongoDB reads a limit
/// of 0 as none, and a negative one as "one batch", so neither may slip
/// through as a page size).
pub(super) fn page_limit(n: usize) -> Option<i64> {
    i64::try_from(n).ok()
}

/// An id read back from a document; one that no longer parses means
/// corruption.
pub(super) fn id<T: FromStr<Err = Error>>(s: &str) -> Result<T> {
    s.parse()
        .map_err(|e| Error::internal(format!("mongo: stored id `{s}` is invalid: {e}")))
}

pub(super) fn to_json<T: Serialize + ?Sized>(v: &T, what: &str) -> Result<String> {
    serde_json::to_string(v).map_err(|e| Error::Internal {
        context: format!("mongo: encoding {what}"),
        source: Some(Box::new(e)),
    })
}

pub(super) fn from_json<T: DeserializeOwned>(s: &str, what: &str) -> Result<T> {
    serde_json::from_str(s).map_err(|e| Error::Internal {
        context: format!("mongo: stored {what} does not decode"),
        source: Some(Box::new(e)),
    })
}

/// A string field of a stored document.
pub(super) fn get_str<'a>(d: &'a Document, key: &str, what: &str) -> Result<&'a str> {
    d.get_str(key)
        .map_err(|_| Error::internal(format!("mongo: stored {what} has no string `{key}`")))
}

/// An int64 field of a stored document (an int32 is taken too: a document
/// written by hand in the shell may hold small numbers as int32).
pub(super) fn get_i64(d: &Document, key: &str, what: &str) -> Result<i64> {
    match d.get(key) {
        Some(mongodb::bson::Bson::Int64(v)) => Ok(*v),
        Some(mongodb::bson::Bson::Int32(v)) => Ok(i64::from(*v)),
        _ => Err(Error::internal(format!(
            "mongo: stored {what} has no integer `{key}`"
        ))),
    }
}

/// The JSON body (`doc`) of a stored document, decoded.
pub(super) fn body<T: DeserializeOwned>(d: &Document, what: &str) -> Result<T> {
    from_json(get_str(d, "doc", what)?, what)
}

#[cfg(test)]
mod tests {
    use super::*;
    use mongodb::bson::doc;

    #[test]
    fn sizes_over_the_document_limit_are_refused_before_sending() {
        assert!(check_size("message", 1024).is_ok());
        assert!(check_size("message", MAX_DOCUMENT_BYTES - FRAMING_BYTES).is_ok());
        let err = check_size("message", MAX_DOCUMENT_BYTES).unwrap_err();
        assert_eq!(err.code(), "payload_too_large");
        assert!(matches!(
            err,
            Error::PayloadTooLarge { size, limit, .. }
                if size == MAX_DOCUMENT_BYTES && limit == MAX_DOCUMENT_BYTES - FRAMING_BYTES
        ));
    }

    #[test]
    fn out_of_range_integers_are_refused() {
        assert!(to_i64(u64::MAX, "seq").is_err());
        assert!(to_u64(-1, "seq").is_err());
        assert_eq!(bound(u64::MAX), i64::MAX);
        assert_eq!(page_limit(usize::MAX), None);
        assert_eq!(page_limit(50), Some(50));
    }

    #[test]
    fn malformed_documents_are_internal_errors_not_panics() {
        let d = doc! { "seq": "seven", "doc": "{not json", "n": 3_i32 };
        assert_eq!(
            get_i64(&d, "seq", "message").unwrap_err().code(),
            "internal"
        );
        assert_eq!(get_i64(&d, "n", "message").unwrap(), 3);
        assert_eq!(
            get_str(&d, "missing", "message").unwrap_err().code(),
            "internal"
        );
        let e = body::<caas_core::model::Message>(&d, "message").unwrap_err();
        assert_eq!(e.code(), "internal");
    }
}
