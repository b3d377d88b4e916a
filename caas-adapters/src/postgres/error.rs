//! How PostgreSQL's errors become `caas_core::Error` kinds, in one place.

use caas_core::Error;
use tokio_postgres::error::SqlState;

pub(super) const BACKEND: &str = "postgres";

/// What a failed call means for the caller.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Failure {
    /// A unique constraint refused the change.
    Conflict,
    /// The connection was lost, the server is starting or stopping, a timeout or
    /// a lock wait fired, or it ran out of a resource: retrying later may work.
    /// For a write, the outcome is unknown (it may have committed): never an ack.
    Transient,
    /// Anything else: a bug, corrupt data, a schema that is not ours.
    Internal,
}

/// Classifies a tokio-postgres error.
pub(super) fn classify(e: &tokio_postgres::Error) -> Failure {
    let Some(state) = e.code() else {
        // No SQLSTATE: a closed connection or an I/O error leaves the connection
        // unusable and the outcome unknown; anything else (a value that does not
        // convert, a protocol surprise) is ours.
        let io = std::error::Error::source(e).is_some_and(|s| s.is::<std::io::Error>());
        return if e.is_closed() || io {
            Failure::Transient
        } else {
            Failure::Internal
        };
    };
    if *state == SqlState::UNIQUE_VIOLATION {
        return Failure::Conflict;
    }
    let code = state.code();
    let transient = [
        // connection exceptions
        "08", // insufficient resources (disk full, out of memory, too many connections)
        "53",
        // operator intervention: query canceled (statement timeout), admin or
        // crash shutdown, cannot connect now
        "57",    // serialization failure, deadlock
        "40",    // lock not available (lock timeout)
        "55P03", // idle-in-transaction timeout
        "25P03",
    ]
    .iter()
    .any(|p| code.starts_with(p));
    if transient {
        Failure::Transient
    } else {
        Failure::Internal
    }
}

/// Maps an error met while doing `context`.
pub(super) fn map(context: &str, e: tokio_postgres::Error) -> Error {
    match classify(&e) {
        // The context says what clashed; the server's own text names tables and
        // constraints, which callers must never see.
        Failure::Conflict => Error::conflict(format!("{context}: already exists")),
        Failure::Transient => Error::unavailable(BACKEND, context, true, e),
        Failure::Internal => Error::Internal {
            context: format!("postgres: {context}"),
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

/// `.ctx("what was being done")` on tokio-postgres results.
pub(super) trait Ctx<T> {
    fn ctx(self, context: &str) -> caas_core::Result<T>;
}

impl<T> Ctx<T> for Result<T, tokio_postgres::Error> {
    fn ctx(self, context: &str) -> caas_core::Result<T> {
        self.map_err(|e| map(context, e))
    }
}
