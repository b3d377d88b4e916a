//! How SQLite's errors become `caas_core::Error` kinds, in one place.

use caas_core::Error;
use rusqlite::ErrorCode;

const BACKEND: &str = "sqlite";

/// What a failed SQLite call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// A UNIQUE (or other) constraint refused the change.
    Constraint,
    /// Busy, locked, disk full, an I/O error: retrying later may work.
    Transient,
    /// The file cannot be opened or written at all (permissions, read-only media).
    Unusable,
    /// Corruption or a bug.
    Internal,
}

pub(super) fn classify(e: &rusqlite::Error) -> Failure {
    match e {
        rusqlite::Error::SqliteFailure(f, _) => match f.code {
            ErrorCode::ConstraintViolation => Failure::Constraint,
            ErrorCode::DatabaseBusy
            | ErrorCode::DatabaseLocked
            | ErrorCode::DiskFull
            | ErrorCode::SystemIoFailure
            | ErrorCode::OutOfMemory
            | ErrorCode::FileLockingProtocolFailed => Failure::Transient,
            ErrorCode::CannotOpen | ErrorCode::PermissionDenied | ErrorCode::ReadOnly => {
                Failure::Unusable
            }
            _ => Failure::Internal,
        },
        _ => Failure::Internal,
    }
}

/// Maps a SQLite error met while doing `context`.
pub(super) fn map(context: &str, e: rusqlite::Error) -> Error {
    from_source(context, classify(&e), e)
}

/// Builds the error of a given failure kind around any cause (the writer shares one
/// cause among every command of a failed batch).
pub(super) fn from_source(
    context: &str,
    kind: Failure,
    source: impl std::error::Error + Send + Sync + 'static,
) -> Error {
    match kind {
        // The context says what clashed; SQLite's own text names tables and
        // columns, which callers must never see.
        Failure::Constraint => Error::conflict(format!("{context}: already exists")),
        Failure::Transient => Error::unavailable(BACKEND, context, true, source),
        Failure::Unusable => Error::unavailable(BACKEND, context, false, source),
        Failure::Internal => Error::Internal {
            context: format!("sqlite: {context}"),
            source: Some(Box::new(source)),
        },
    }
}

/// `.ctx("what was being done")` on rusqlite results.
pub(super) trait Ctx<T> {
    fn ctx(self, context: &str) -> caas_core::Result<T>;
}

impl<T> Ctx<T> for rusqlite::Result<T> {
    fn ctx(self, context: &str) -> caas_core::Result<T> {
        self.map_err(|e| map(context, e))
    }
}

/// The writer or reader threads are gone (the store is shutting down or a thread died).
pub(super) fn stopped(what: &str) -> Error {
    Error::Unavailable {
        backend: BACKEND,
        context: format!("the {what} thread has stopped"),
        temporary: false,
        source: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn failure(code: std::ffi::c_int) -> rusqlite::Error {
        rusqlite::Error::SqliteFailure(rusqlite::ffi::Error::new(code), None)
    }

    #[test]
    fn kinds_map_to_core_errors() {
        let conflict = map("x", failure(rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE));
        assert!(matches!(conflict, Error::Conflict { .. }), "{conflict:?}");
        let busy = map("x", failure(rusqlite::ffi::SQLITE_BUSY));
        assert!(busy.is_retryable(), "{busy:?}");
        let full = map("x", failure(rusqlite::ffi::SQLITE_FULL));
        assert!(full.is_retryable(), "{full:?}");
        let ro = map("x", failure(rusqlite::ffi::SQLITE_READONLY));
        assert!(
            matches!(
                ro,
                Error::Unavailable {
                    temporary: false,
                    ..
                }
            ),
            "{ro:?}"
        );
        let corrupt = map("x", failure(rusqlite::ffi::SQLITE_CORRUPT));
        assert!(matches!(corrupt, Error::Internal { .. }), "{corrupt:?}");
        let other = map("x", rusqlite::Error::QueryReturnedNoRows);
        assert!(matches!(other, Error::Internal { .. }), "{other:?}");
    }
}
