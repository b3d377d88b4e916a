//! Group commit for appends: concurrent sends on one node share a statement, a
//! transaction and a commit.
//!
//! Every [`MessageStore::append`](caas_core::ports::MessageStore::append) becomes
//! a job on a queue. A dispatcher task takes as many queued jobs as one batch may
//! hold whenever one of its `writers` slots is free, and runs the batch as one
//! call of the `caas_append` function (see `schema.rs`): one round trip, one
//! transaction, one WAL flush for all of them. While every slot is busy, jobs
//! pile up and the next batch is larger, so the batch size follows the load with
//! no timer: a lone send goes out at once.
//!
//! * **Acks only after commit.** A job is answered from the statement's result,
//!   which arrives after the implicit transaction has committed.
//! * **A failing job does not fail the others.** When a batch fails with an error
//!   that proves it rolled back (a taken message id, bad data), each of its jobs
//!   runs again alone and gets its own outcome. When the outcome is unknown (the
//!   connection dropped, a deadline passed), every job of the batch gets
//!   `unavailable`: it may have committed, so a retry with the same
//!   `client_msg_id` finds it.
//! * **Retries of one key** never share a batch (the database function relies on
//!   it): a second job for a (conversation, sender, client_msg_id) already in the
//!   batch waits for the next one.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use caas_core::{Error, Result};
use tokio::sync::{Semaphore, mpsc, oneshot};

use super::Shared;
use super::codec::get;

/// The database-side half of one append: everything `caas_append` takes for it.
#[derive(Debug, Clone)]
pub(super) struct AppendRow {
    pub(super) tenant: String,
    pub(super) conversation: String,
    pub(super) id: String,
    pub(super) sender: String,
    pub(super) client_msg_id: String,
    pub(super) created_at: i64,
    pub(super) doc: String,
    pub(super) words: Option<String>,
    pub(super) caller_words: bool,
    pub(super) event: String,
    pub(super) audience: Option<i64>,
    pub(super) digest: String,
    pub(super) users: String,
}

impl AppendRow {
    fn key(&self) -> (&str, &str, &str, &str) {
        (
            &self.tenant,
            &self.conversation,
            &self.sender,
            &self.client_msg_id,
        )
    }
}

/// What the database made of one append.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum Outcome {
    /// Stored with this seq; its event logged at this cursor, under this
    /// audience set.
    Created {
        seq: i64,
        cursor: i64,
        audience: i64,
    },
    /// A retry: the original's seq, id and document.
    Existing { seq: i64, id: String, doc: String },
}

struct Job {
    row: AppendRow,
    reply: oneshot::Sender<Result<Outcome>>,
}

/// How many batches ran and how many appends they carried.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterStats {
    /// Batches (transactions) run.
    pub batches: u64,
    /// Appends they carried: `appends / batches` is the group-commit factor.
    pub appends: u64,
}

#[derive(Debug, Default)]
pub(super) struct Counters {
    batches: AtomicU64,
    appends: AtomicU64,
}

impl Counters {
    pub(super) fn snapshot(&self) -> WriterStats {
        WriterStats {
            batches: self.batches.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
        }
    }
}

/// The queue's sending side; the dispatcher stops when it is dropped, after the
/// batches in flight.
#[derive(Debug)]
pub(super) struct Writer {
    queue: mpsc::Sender<Job>,
}

impl Writer {
    pub(super) fn start(shared: Arc<Shared>, writers: usize, max_batch: usize) -> Self {
        // Bounded: past this many waiting appends, senders wait for room.
        let (queue, rx) = mpsc::channel(16 * 1024);
        tokio::spawn(dispatch(shared, rx, writers.max(1), max_batch.max(1)));
        Self { queue }
    }

    /// Queues an append and waits for its outcome.
    pub(super) async fn append(&self, row: AppendRow) -> Result<Outcome> {
        let (reply, answer) = oneshot::channel();
        self.queue
            .send(Job { row, reply })
            .await
            .map_err(|_| stopped())?;
        answer.await.map_err(|_| stopped())?
    }
}

fn stopped() -> Error {
    Error::Unavailable {
        backend: super::error::BACKEND,
        context: "the append writer has stopped".into(),
        temporary: false,
        source: None,
    }
}

async fn dispatch(
    shared: Arc<Shared>,
    mut rx: mpsc::Receiver<Job>,
    writers: usize,
    max_batch: usize,
) {
    let slots = Arc::new(Semaphore::new(writers));
    let mut waiting: VecDeque<Job> = VecDeque::new();
    loop {
        // A free slot first: while all are busy, jobs queue up for a larger batch.
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let first = match waiting.pop_front() {
            Some(j) => j,
            None => match rx.recv().await {
                Some(j) => j,
                None => break,
            },
        };
        let mut batch = vec![first];
        let mut later = VecDeque::new();
        {
            let mut keys: HashSet<(String, String, String, String)> = HashSet::new();
            let key = |r: &AppendRow| {
                let (a, b, c, d) = r.key();
                (a.to_owned(), b.to_owned(), c.to_owned(), d.to_owned())
            };
            keys.insert(key(&batch[0].row));
            let mut take = |job: Job, batch: &mut Vec<Job>, later: &mut VecDeque<Job>| {
                if keys.insert(key(&job.row)) {
                    batch.push(job);
                } else {
                    later.push_back(job);
                }
            };
            while batch.len() < max_batch {
                let Some(job) = waiting.pop_front() else {
                    break;
                };
                take(job, &mut batch, &mut later);
            }
            while batch.len() < max_batch {
                let Ok(job) = rx.try_recv() else {
                    break;
                };
                take(job, &mut batch, &mut later);
            }
        }
        // Deferred retries go first next time, ahead of what is still waiting.
        while let Some(j) = later.pop_back() {
            waiting.push_front(j);
        }
        let shared = shared.clone();
        tokio::spawn(async move {
            run(&shared, batch).await;
            drop(permit);
        });
    }
    // The queue closed: wait for the batches in flight.
    let _ = slots.acquire_many(writers as u32).await;
}

async fn run(shared: &Shared, batch: Vec<Job>) {
    let rows: Vec<&AppendRow> = batch.iter().map(|j| &j.row).collect();
    match call(shared, &rows).await {
        Ok(outcomes) => {
            for (job, outcome) in batch.into_iter().zip(outcomes) {
                let _ = job.reply.send(Ok(outcome));
            }
        }
        // The batch rolled back for sure: each job alone, to get its own outcome.
        Err(Failed::RolledBack(_)) if batch.len() > 1 => {
            for job in batch {
                let outcome = call(shared, &[&job.row])
                    .await
                    .map_err(Failed::into_error)
                    .and_then(|mut o| {
                        o.pop()
                            .ok_or_else(|| Error::internal("postgres: no outcome"))
                    });
                let _ = job.reply.send(outcome);
            }
        }
        Err(failed) => {
            let e = failed.into_error();
            // Unknown outcome (or a lone job's error): every caller hears it. The
            // error cannot be cloned; each gets the same kind and context.
            for job in batch {
                let _ = job.reply.send(Err(copy_error(&e)));
            }
        }
    }
}

/// An error of the same kind and message for every job of a failed batch.
fn copy_error(e: &Error) -> Error {
    match e {
        Error::Unavailable {
            backend,
            context,
            temporary,
            ..
        } => Error::Unavailable {
            backend,
            context: format!("{context}: {e}"),
            temporary: *temporary,
            source: None,
        },
        Error::Conflict { reason } => Error::conflict(reason.clone()),
        other => Error::internal(other.to_string()),
    }
}

/// How a call failed.
enum Failed {
    /// The statement failed in a way that proves its transaction rolled back.
    RolledBack(Error),
    /// Anything else: it may have committed.
    Unknown(Error),
}

impl Failed {
    fn into_error(self) -> Error {
        match self {
            Failed::RolledBack(e) | Failed::Unknown(e) => e,
        }
    }
}

/// Runs one `caas_append` call; the outcomes come back in the order of `rows`.
async fn call(shared: &Shared, rows: &[&AppendRow]) -> Result<Vec<Outcome>, Failed> {
    macro_rules! col {
        ($f:ident) => {
            rows.iter().map(|r| r.$f.clone()).collect::<Vec<_>>()
        };
    }
    let tenant = col!(tenant);
    let conv = col!(conversation);
    let id = col!(id);
    let sender = col!(sender);
    let key = col!(client_msg_id);
    let created = col!(created_at);
    let doc = col!(doc);
    let words = col!(words);
    let caller = col!(caller_words);
    let event = col!(event);
    let audience = col!(audience);
    let digest = col!(digest);
    let users = col!(users);
    let mut c = shared.pool.get().await.map_err(Failed::Unknown)?;
    let found = c
        .query(
            "SELECT o_i, o_seq, o_cur, o_audience, o_id, o_doc FROM caas_append(
                 $1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::bigint[],
                 $7::text[], $8::text[], $9::boolean[], $10::text[], $11::bigint[],
                 $12::text[], $13::text[])",
            &[
                &tenant, &conv, &id, &sender, &key, &created, &doc, &words, &caller, &event,
                &audience, &digest, &users,
            ],
            "append messages",
        )
        .await
        .map_err(|e| {
            // A refusal from the server (not a lost connection or a deadline)
            // ended the statement, and with it the implicit transaction.
            if e.is_retryable() {
                Failed::Unknown(e)
            } else {
                Failed::RolledBack(e)
            }
        })?;
    drop(c);
    shared.counters.batches.fetch_add(1, Ordering::Relaxed);
    shared
        .counters
        .appends
        .fetch_add(rows.len() as u64, Ordering::Relaxed);
    decode(&found, rows.len()).map_err(Failed::Unknown)
}

fn decode(found: &[tokio_postgres::Row], n: usize) -> Result<Vec<Outcome>> {
    let mut outcomes: Vec<Option<Outcome>> = vec![None; n];
    for row in found {
        let i: i32 = get(row, 0)?;
        let seq: i64 = get(row, 1)?;
        let cursor: Option<i64> = get(row, 2)?;
        let audience: i64 = get(row, 3)?;
        let outcome = match cursor {
            Some(cursor) => Outcome::Created {
                seq,
                cursor,
                audience,
            },
            None => Outcome::Existing {
                seq,
                id: get(row, 4)?,
                doc: get(row, 5)?,
            },
        };
        let slot = usize::try_from(i)
            .ok()
            .and_then(|i| i.checked_sub(1))
            .and_then(|i| outcomes.get_mut(i))
            .ok_or_else(|| Error::internal("postgres: append returned an unknown item"))?;
        *slot = Some(outcome);
    }
    outcomes
        .into_iter()
        .map(|o| o.ok_or_else(|| Error::internal("postgres: append left an item without outcome")))
        .collect()
}
