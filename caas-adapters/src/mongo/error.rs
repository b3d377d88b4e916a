//! How the driver's errors become `caas_core::Error` kinds, in one place.

use caas_core::Error;
use mongodb::error::{ErrorKind, TRANSIENT_TRANSACTION_ERROR, WriteFailure};

pub(super) const BACKEND: &str = "mongo";

/// The server's code for a unique index refusing a write (`E11000`).
pub(super) const DUPLICATE_KEY: i32 = 11000;

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// A unique index refused the write.
    Duplicate,
    /// A transaction met a concurrent one (a write conflict) or a failover:
    /// the server labels it `TransientTransactionError`, and the whole
    /// transaction may be run again.
    Retry,
    /// No server, a lost connection, a timeout, a server stepping down or
    /// shutting down: retrying later may work. For a write, the outcome is
    /// unknown: never an ack.
    Transient,
    /// Anything else: a bug, a document that does not decode, a deployment
    /// that refuses what caas needs.
    Internal,
}

/// The server's error code, if the error carries one.
fn code(kind: &ErrorKind) -> Option<i32> {
    match kind {
        ErrorKind::Command(c) => Some(c.code),
        ErrorKind::Write(WriteFailure::WriteError(w)) => Some(w.code),
        ErrorKind::Write(WriteFailure::WriteConcernError(w)) => Some(w.code),
        ErrorKind::InsertMany(m) => match (&m.write_errors, &m.write_concern_error) {
            (Some(errors), _) => errors.first().map(|w| w.code),
            (None, Some(w)) => Some(w.code),
            (None, None) => None,
        },
        _ => None,
    }
}

/// The server's code for "that collection exists already" (`create`).
pub(super) const NAMESPACE_EXISTS: i32 = 48;

/// Whether the error is the server's `NamespaceExists`.
pub(super) fn namespace_exists(e: &mongodb::error::Error) -> bool {
    code(&e.kind) == Some(NAMESPACE_EXISTS)
}

/// Whether every write of an unordered `insert_many` that failed was refused
/// only by a unique index (the others were stored): "already there".
pub(super) fn only_duplicates(e: &mongodb::error::Error) -> bool {
    match &*e.kind {
        ErrorKind::InsertMany(m) => {
            m.write_concern_error.is_none()
                && m.write_errors
                    .as_ref()
                    .is_some_and(|w| w.iter().all(|w| w.code == DUPLICATE_KEY))
        }
        _ => false,
    }
}

/// Server codes that mean "not now" rather than "never": a primary stepping
/// down or gone, a server shutting down, time limits, exceeded lock waits.
/// (From the server's `error_codes.yml`: NotWritablePrimary family,
/// ShutdownInProgress, InterruptedAtShutdown, InterruptedDueToReplStateChange,
/// MaxTimeMSExpired, LockTimeout, ExceededTimeLimit, NetworkTimeout,
/// HostUnreachable, HostNotFound, WriteConcernFailed.)
pub(super) fn transient_code(code: i32) -> bool {
    matches!(
        code,
        6 | 7 | 24 | 50 | 64 | 89 | 91 | 189 | 262 | 10107 | 11600 | 11602 | 13435 | 13436
    )
}

/// Classifies a driver error.
pub(super) fn classify(e: &mongodb::error::Error) -> Failure {
    if e.contains_label(TRANSIENT_TRANSACTION_ERROR) {
        return Failure::Retry;
    }
    let kind: &ErrorKind = &e.kind;
    match code(kind) {
        Some(DUPLICATE_KEY) => return Failure::Duplicate,
        Some(c) if transient_code(c) => return Failure::Transient,
        _ => {}
    }
    match kind {
        ErrorKind::Io(_)
        | ErrorKind::ServerSelection { .. }
        | ErrorKind::ConnectionPoolCleared { .. }
        | ErrorKind::DnsResolve { .. }
        | ErrorKind::Shutdown => Failure::Transient,
        _ => Failure::Internal,
    }
}

/// Maps an error met while doing `context`.
pub(super) fn map(context: &str, e: mongodb::error::Error) -> Error {
    match classify(&e) {
        // The context says what clashed; the server's own text names indexes
        // and key values, which callers must never see.
        Failure::Duplicate => Error::conflict(format!("{context}: already exists")),
        Failure::Retry | Failure::Transient => Error::unavailable(BACKEND, context, true, e),
        Failure::Internal => Error::Internal {
            context: format!("mongo: {context}"),
            source: Some(Box::new(e)),
        },
    }
}

/// A client-side deadline passed: the server or the network did not answer.
pub(super) fn timed_out(context: &str) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        context: format!("{context}: timed out"),
        temporary: true,
        source: None,
    }
}

/// `.ctx("what was being done")` on driver results.
pub(super) trait Ctx<T> {
    fn ctx(self, context: &str) -> caas_core::Result<T>;
}

impl<T> Ctx<T> for Result<T, mongodb::error::Error> {
    fn ctx(self, context: &str) -> caas_core::Result<T> {
        self.map_err(|e| map(context, e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn io_errors_are_unavailable_not_internal() {
        let e = mongodb::error::Error::from(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "reset",
        ));
        assert_eq!(classify(&e), Failure::Transient);
        let mapped = map("append message", e);
        assert_eq!(mapped.code(), "unavailable");
        assert!(mapped.is_retryable());
    }

    #[test]
    fn failover_codes_are_transient_and_others_are_not() {
        // NotWritablePrimary, InterruptedDueToReplStateChange, ShutdownInProgress,
        // MaxTimeMSExpired, WriteConcernFailed.
        for c in [10107, 11602, 91, 50, 64] {
            assert!(transient_code(c), "{c}");
        }
        // DuplicateKey, BadValue, Unauthorized, DocumentValidationFailure.
        for c in [DUPLICATE_KEY, 2, 13, 121] {
            assert!(!transient_code(c), "{c}");
        }
    }
}
