//! Multi-document transactions, run again when they meet a concurrent one.
//!
//! MongoDB does not make a transaction wait for another that holds a document
//! it wants to write: the second fails at once with a write conflict, labelled
//! `TransientTransactionError`, and must be run again from the start. So the
//! conversation head and the tenant's log head serialize their writers the way
//! a row lock would, at the cost of retries under contention. Retries back off
//! (with jitter, so colliding writers spread out) and stop at the store's
//! deadline.

use std::time::Duration;

use caas_core::{Error, Result};
use mongodb::BoxFuture;
use mongodb::ClientSession;
use mongodb::error::UNKNOWN_TRANSACTION_COMMIT_RESULT;

use super::MongoStore;
use super::error::{Ctx, Failure, classify, map, timed_out};

/// Why a transaction's body stopped.
#[derive(Debug)]
pub(super) enum Abort {
    /// A driver call failed: retried when the server says the transaction may
    /// be run again, mapped otherwise.
    Driver(mongodb::error::Error),
    /// The body decided (a refused value, a corrupt document): returned as is.
    Caas(Error),
}

impl From<mongodb::error::Error> for Abort {
    fn from(e: mongodb::error::Error) -> Self {
        Abort::Driver(e)
    }
}

impl From<Error> for Abort {
    fn from(e: Error) -> Self {
        Abort::Caas(e)
    }
}

/// Attempts of one transaction at most (the deadline usually ends it first).
const MAX_ATTEMPTS: u32 = 200;

/// Attempts of a transaction whose unique index refused a write, with
/// [`OnDuplicate::Retry`].
const MAX_DUPLICATE_ATTEMPTS: u32 = 3;

/// What a unique index refusing a write in a transaction means.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum OnDuplicate {
    /// A racing upsert of a head: run the transaction again.
    Retry,
    /// Maybe a twin (a retried send, a taken id): report a conflict.
    Report,
}

/// Commit attempts when the server's answer to a commit was lost.
const MAX_COMMITS: u32 = 3;

/// The pause before attempt `attempt + 1`: doubling from 1 ms to 64 ms, with
/// a random factor in [0.5, 1.5).
pub(super) fn backoff(attempt: u32) -> Duration {
    let base_us = 1000u64 << attempt.min(6);
    Duration::from_micros(base_us / 2 + fastrand::u64(..base_us))
}

/// Commits, asking again when the first answer was lost (commits are
/// idempotent on the server; the driver already retried once).
async fn commit(session: &mut ClientSession) -> mongodb::error::Result<()> {
    let mut tries = 0;
    loop {
        tries += 1;
        match session.commit_transaction().await {
            Err(e)
                if tries < MAX_COMMITS && e.contains_label(UNKNOWN_TRANSACTION_COMMIT_RESULT) => {}
            other => return other,
        }
    }
}

impl MongoStore {
    /// Runs `body` in a transaction until it commits, fails for good, or the
    /// store's deadline passes. A unique index refusing a write is run again
    /// (a few times) with [`OnDuplicate::Retry`], for transactions whose only
    /// unique keys are heads a racing first upsert may have created; with
    /// [`OnDuplicate::Report`] it comes back as [`Error::Conflict`], for the
    /// caller to look up the twin.
    pub(super) async fn transaction<T, F>(
        &self,
        context: &str,
        duplicates: OnDuplicate,
        mut body: F,
    ) -> Result<T>
    where
        T: Send,
        F: for<'s> FnMut(&'s mut ClientSession) -> BoxFuture<'s, std::result::Result<T, Abort>>
            + Send,
    {
        let run = async {
            let mut session = self.client().start_session().await.ctx(context)?;
            let mut attempt = 0;
            loop {
                attempt += 1;
                session.start_transaction().await.ctx(context)?;
                let failed = match body(&mut session).await {
                    Ok(value) => match commit(&mut session).await {
                        Ok(()) => return Ok(value),
                        Err(e) => e,
                    },
                    Err(abort) => {
                        // The server has aborted it already after a failed
                        // write; this ends it on our side either way.
                        let _ = session.abort_transaction().await;
                        match abort {
                            Abort::Caas(e) => return Err(e),
                            Abort::Driver(e) => e,
                        }
                    }
                };
                let again = match classify(&failed) {
                    Failure::Retry => attempt < MAX_ATTEMPTS,
                    Failure::Duplicate => {
                        duplicates == OnDuplicate::Retry && attempt < MAX_DUPLICATE_ATTEMPTS
                    }
                    Failure::Transient | Failure::Internal => false,
                };
                if !again {
                    return Err(map(context, failed));
                }
                tokio::time::sleep(backoff(attempt)).await;
            }
        };
        tokio::time::timeout(self.config().op_timeout, run)
            .await
            .map_err(|_| timed_out(context))?
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_a_cap_with_jitter() {
        for _ in 0..100 {
            let first = backoff(0);
            assert!(first >= Duration::from_micros(500) && first < Duration::from_micros(1500));
            let late = backoff(50);
            assert!(late >= Duration::from_millis(32) && late < Duration::from_millis(96));
        }
    }
}
