//! The single writer and its group commit.
//!
//! One OS thread owns the only write connection. Callers send it commands over a
//! bounded channel; it takes whatever has queued up (up to `max_batch`), runs every
//! command inside ONE transaction, commits (one fsync under `synchronous=FULL`), and
//! only then answers each caller. While it waits for the disk, the next batch queues
//! up, so the cost of an fsync is shared by everyone who arrived during the previous
//! one: with 256 concurrent senders a batch holds up to 256 commands.
//!
//! Each command runs inside its own SAVEPOINT by default: a command that fails (a
//! conflict, a not-found) is rolled back alone and answered with its error, and the rest of the
//! batch still commits. Only a failure of the transaction itself (disk full, I/O
//! error) fails every command of the batch, and none of them is then answered as
//! done.
//!
//! A savepoint is not free: SQLite copies every page the command then touches into
//! a statement journal, a sizeable share of the writer's work per send. So the
//! two commands that run for every message, the message append and the event-log
//! append, go without one: each makes every check before its first change, and
//! their writes are single-row statements that SQLite makes atomic by themselves,
//! so they can only fail with nothing written ([`Writer::write_prechecked`]). The writer verifies that promise
//! (`total_changes`) and, should a command ever break it, fails the whole batch
//! rather than commit half a command.
//!
//! Full-text index changes are the exception to "everything inside the command's
//! savepoint": FTS5 flushes its pending terms to a new segment at every SAVEPOINT,
//! which with one savepoint per command would write one segment per message and
//! spend most of the writer's time merging them. Commands therefore queue their FTS
//! changes on the [`Tx`]; the writer drops the queue of a command that failed, and
//! runs the rest after the last savepoint, still inside the batch's transaction. The
//! index stays atomic with the data; only an FTS failure there (an I/O error) fails
//! the whole batch rather than one command.
//!
//! The thread is a plain OS thread rather than a runtime task because SQLite calls
//! block, and a blocked runtime worker would stall unrelated tasks.

use std::cell::RefCell;
use std::collections::HashMap;
use std::ops::Deref;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::Rc;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;

use caas_core::ids::{ConversationId, TenantId};
use caas_core::{Error, Result};
use rusqlite::{Connection, Statement};
use tokio::sync::{mpsc, oneshot};

use super::error::{self, Failure};

/// How many batches and commands the writer has committed; see
/// [`super::SqliteStore::writer_stats`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriterStats {
    /// Transactions committed (each one fsync under `Durability::Full`).
    pub batches: u64,
    /// Commands carried by those transactions, including ones that failed alone.
    pub commands: u64,
    /// The most commands one transaction carried.
    pub largest_batch: u64,
}

#[derive(Debug, Default)]
struct Counters {
    batches: AtomicU64,
    commands: AtomicU64,
    largest_batch: AtomicU64,
}

/// Why a whole batch failed; shared by every command in it.
#[derive(Debug)]
struct BatchFailure {
    kind: Failure,
    cause: Arc<rusqlite::Error>,
}

impl BatchFailure {
    fn new(e: rusqlite::Error) -> Self {
        Self {
            kind: error::classify(&e),
            cause: Arc::new(e),
        }
    }

    /// From an error that already went through the mapping (it lost its kind).
    fn other(e: Error) -> Self {
        Self {
            kind: Failure::Internal,
            cause: Arc::new(rusqlite::Error::ToSqlConversionFailure(Box::new(e))),
        }
    }

    fn to_error(&self) -> Error {
        // A constraint cannot fail a whole transaction; anything that does is about
        // the database, not the command.
        let kind = match self.kind {
            Failure::Constraint => Failure::Internal,
            k => k,
        };
        error::from_source(
            "committing a write batch (nothing in it was stored)",
            kind,
            self.cause.clone(),
        )
    }
}

/// One FTS5 table's statements.
#[derive(Debug)]
pub(super) struct FtsTable {
    insert: &'static str,
    delete: &'static str,
}

macro_rules! fts_table {
    ($name:literal) => {
        FtsTable {
            insert: concat!("INSERT INTO ", $name, " (rowid, words) VALUES (?1, ?2)"),
            delete: concat!("DELETE FROM ", $name, " WHERE rowid = ?1"),
        }
    };
}

/// The message index.
pub(super) const FTS_MESSAGES: &FtsTable = &fts_table!("search_messages_fts");
/// The conversation-name index.
pub(super) const FTS_CONVERSATIONS: &FtsTable = &fts_table!("search_conversations_fts");
/// The user index.
pub(super) const FTS_USERS: &FtsTable = &fts_table!("search_users_fts");

/// A change to an FTS5 table, run at the end of the batch.
#[derive(Debug)]
enum FtsChange {
    Insert {
        table: &'static FtsTable,
        row: i64,
        words: String,
    },
    Delete {
        table: &'static FtsTable,
        row: i64,
    },
}

type StreamKey = (TenantId, ConversationId);

/// What the writer knows of a stream.
#[derive(Debug, Clone, Copy)]
struct CachedStream {
    id: i64,
    /// The head, once an append has read or set it.
    last_seq: Option<i64>,
}

/// Streams the writer has seen, so an append needs neither to look its
/// conversation up nor to read its head. Ids never change once committed; heads
/// change only by appends, which go through this cache. Whatever a rolled-back
/// command or batch put here is taken out again (`created`, or the whole cache on
/// a failed batch).
#[derive(Debug, Default)]
struct StreamCache {
    streams: HashMap<StreamKey, CachedStream, foldhash::fast::RandomState>,
}

/// Beyond this many conversations the cache starts over rather than grow.
const STREAM_CACHE_MAX: usize = 100_000;

/// Statements prepared once for the writer's whole life, found by the address of
/// their `&'static str` SQL. rusqlite's own cache takes a statement out of an LRU
/// map and puts it back on every use, which on the append path cost more than some
/// of the statements themselves.
type Hot<'c> = RefCell<Vec<(usize, Rc<RefCell<Statement<'c>>>)>>;

/// The batch transaction as a command sees it: the connection (through `Deref`),
/// the queue of full-text changes, and the writer's stream cache.
pub(super) struct Tx<'t, 'c> {
    conn: &'c Connection,
    hot: &'t Hot<'c>,
    fts: RefCell<Vec<FtsChange>>,
    streams: &'t RefCell<StreamCache>,
    /// Streams created in this batch, in order.
    created: RefCell<Vec<StreamKey>>,
    /// Run once the batch has committed or failed, before anyone is answered.
    after: RefCell<Vec<Box<dyn FnOnce()>>>,
}

impl std::fmt::Debug for Tx<'_, '_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Tx")
            .field("fts", &self.fts.borrow().len())
            .field("created", &self.created.borrow().len())
            .field("after", &self.after.borrow().len())
            .finish_non_exhaustive()
    }
}

impl Deref for Tx<'_, '_> {
    type Target = Connection;

    fn deref(&self) -> &Connection {
        self.conn
    }
}

impl<'c> Tx<'_, 'c> {
    /// Runs `f` once this batch has committed or failed (whichever; also when
    /// this command alone failed), before any of its callers is answered: for
    /// caches of what the batch may have changed.
    pub(super) fn after_batch(&self, f: impl FnOnce() + 'static) {
        self.after.borrow_mut().push(Box::new(f));
    }

    /// A statement of the hot path (run for every append), prepared once. Use
    /// `prepare_cached` for the rest.
    pub(super) fn hot(&self, sql: &'static str) -> Result<Rc<RefCell<Statement<'c>>>> {
        let key = sql.as_ptr() as usize;
        if let Some((_, st)) = self.hot.borrow().iter().find(|(k, _)| *k == key) {
            return Ok(st.clone());
        }
        let st = Rc::new(RefCell::new(
            self.conn
                .prepare(sql)
                .map_err(|e| error::map("prepare statement", e))?,
        ));
        self.hot.borrow_mut().push((key, st.clone()));
        Ok(st)
    }

    /// Adds `words` to an FTS5 table under `row`, at the end of the batch.
    pub(super) fn fts_insert(&self, table: &'static FtsTable, row: i64, words: String) {
        self.fts
            .borrow_mut()
            .push(FtsChange::Insert { table, row, words });
    }

    /// Removes `row` from an FTS5 table, at the end of the batch.
    pub(super) fn fts_delete(&self, table: &'static FtsTable, row: i64) {
        self.fts.borrow_mut().push(FtsChange::Delete { table, row });
    }

    /// The stream (interned conversation key) of a conversation, created on first
    /// use.
    pub(super) fn stream(&self, tenant: &TenantId, conv: &ConversationId) -> Result<i64> {
        self.cached_stream(tenant, conv).map(|s| s.id)
    }

    /// The stream of a conversation and the seq its next message gets.
    pub(super) fn next_seq(&self, tenant: &TenantId, conv: &ConversationId) -> Result<(i64, i64)> {
        let s = self.cached_stream(tenant, conv)?;
        let last = match s.last_seq {
            Some(last) => last,
            None => self
                .hot("SELECT last_seq FROM streams WHERE id = ?1")?
                .borrow_mut()
                .query_row([s.id], |r| r.get(0))
                .map_err(|e| error::map("read conversation head", e))?,
        };
        Ok((s.id, last + 1))
    }

    /// Records that an append moved a conversation's head (after it succeeded).
    pub(super) fn advanced(&self, tenant: &TenantId, conv: &ConversationId, stream: i64, seq: i64) {
        let key = (tenant.clone(), conv.clone());
        self.streams.borrow_mut().streams.insert(
            key,
            CachedStream {
                id: stream,
                last_seq: Some(seq),
            },
        );
    }

    fn cached_stream(&self, tenant: &TenantId, conv: &ConversationId) -> Result<CachedStream> {
        let key = (tenant.clone(), conv.clone());
        if let Some(s) = self.streams.borrow().streams.get(&key) {
            return Ok(*s);
        }
        let id = match super::stream_of(self.conn, tenant, conv)? {
            Some(id) => id,
            None => {
                self.conn
                    .prepare_cached("INSERT INTO streams (tenant, conversation) VALUES (?1, ?2)")
                    .and_then(|mut s| s.execute(rusqlite::params![tenant.as_str(), conv.as_str()]))
                    .map_err(|e| error::map("create conversation stream", e))?;
                self.created.borrow_mut().push(key.clone());
                self.conn.last_insert_rowid()
            }
        };
        let mut cache = self.streams.borrow_mut();
        if cache.streams.len() >= STREAM_CACHE_MAX {
            cache.streams.clear();
        }
        let s = CachedStream { id, last_seq: None };
        cache.streams.insert(key, s);
        Ok(s)
    }

    /// Where a command starts: how much it will have to undo if it fails.
    fn mark(&self) -> (usize, usize) {
        (self.fts.borrow().len(), self.created.borrow().len())
    }

    /// Forgets what the command since `mark` queued or cached: it was rolled back.
    fn undo_to(&self, (fts, created): (usize, usize)) {
        self.fts.borrow_mut().truncate(fts);
        self.forget_created(created);
    }

    fn forget_created(&self, from: usize) {
        let mut created = self.created.borrow_mut();
        let mut cache = self.streams.borrow_mut();
        for key in created.drain(from..) {
            cache.streams.remove(&key);
        }
    }

    fn run_fts(&self) -> Result<(), BatchFailure> {
        for change in self.fts.take() {
            let r = match &change {
                FtsChange::Insert { table, row, words } => {
                    let st = self.hot(table.insert).map_err(BatchFailure::other)?;
                    let mut st = st.borrow_mut();
                    st.execute(rusqlite::params![row, words])
                }
                FtsChange::Delete { table, row } => self
                    .conn
                    .prepare_cached(table.delete)
                    .and_then(|mut s| s.execute([row])),
            };
            r.map_err(BatchFailure::new)?;
        }
        Ok(())
    }
}

/// One queued command.
trait Command: Send {
    /// Runs inside the batch transaction; returns whether the command succeeded.
    fn apply(&mut self, tx: &Tx<'_, '_>) -> bool;
    /// Answers the caller once the batch's fate is known.
    fn answer(self: Box<Self>, batch: Result<(), &BatchFailure>);
    /// Whether it runs inside a savepoint of its own.
    fn sheltered(&self) -> bool;
}

struct Pending<T, F> {
    work: Option<F>,
    result: Option<Result<T>>,
    reply: oneshot::Sender<Result<T>>,
    sheltered: bool,
}

impl<T, F> Command for Pending<T, F>
where
    T: Send,
    F: FnOnce(&Tx<'_, '_>) -> Result<T> + Send,
{
    fn apply(&mut self, tx: &Tx<'_, '_>) -> bool {
        let Some(work) = self.work.take() else {
            return false;
        };
        // A panicking command must not take the writer (and every later write) down.
        let result = catch_unwind(AssertUnwindSafe(|| work(tx)))
            .unwrap_or_else(|_| Err(Error::internal("sqlite: a write command panicked")));
        let ok = result.is_ok();
        self.result = Some(result);
        ok
    }

    fn answer(self: Box<Self>, batch: Result<(), &BatchFailure>) {
        let result = match (self.result, batch) {
            // A command's own error stands: it changed nothing either way.
            (Some(Err(e)), _) => Err(e),
            (Some(Ok(v)), Ok(())) => Ok(v),
            (_, Err(f)) => Err(f.to_error()),
            (None, Ok(())) => Err(Error::internal("sqlite: a write command was skipped")),
        };
        // The caller may have gone away (cancelled); the write is done regardless.
        let _ = self.reply.send(result);
    }

    fn sheltered(&self) -> bool {
        self.sheltered
    }
}

/// The handle callers use; dropping it stops the thread after the queued commands.
#[derive(Debug)]
pub(super) struct Writer {
    tx: Option<mpsc::Sender<Box<dyn Command>>>,
    thread: Option<JoinHandle<()>>,
    counters: Arc<Counters>,
}

impl Writer {
    /// Starts the writer thread on `conn` (already configured and migrated).
    pub(super) fn start(conn: Connection, max_batch: usize, queue: usize) -> Result<Self> {
        let (tx, rx) = mpsc::channel(queue.max(1));
        let counters = Arc::new(Counters::default());
        let c = counters.clone();
        let thread = std::thread::Builder::new()
            .name("caas-sqlite-writer".into())
            .spawn(move || run(conn, rx, max_batch.max(1), &c))
            .map_err(|e| Error::unavailable("sqlite", "start the writer thread", false, e))?;
        Ok(Self {
            tx: Some(tx),
            thread: Some(thread),
            counters,
        })
    }

    /// Runs `work` in the next batch, inside a savepoint of its own, and returns
    /// its result once the batch is committed. If the caller stops waiting, the
    /// command still runs.
    pub(super) async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.send(work, true).await
    }

    /// [`Writer::write`] without the savepoint, for a command that makes all its
    /// checks before its first change and fails after it only as the whole
    /// transaction does (I/O). The writer checks the promise.
    pub(super) async fn write_prechecked<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.send(work, false).await
    }

    async fn send<T, F>(&self, work: F, sheltered: bool) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Tx<'_, '_>) -> Result<T> + Send + 'static,
    {
        let tx = self.tx.as_ref().ok_or_else(|| error::stopped("writer"))?;
        let (reply, answer) = oneshot::channel();
        let command: Box<dyn Command> = Box::new(Pending {
            work: Some(work),
            result: None,
            reply,
            sheltered,
        });
        tx.send(command)
            .await
            .map_err(|_| error::stopped("writer"))?;
        answer.await.map_err(|_| error::stopped("writer"))?
    }

    pub(super) fn stats(&self) -> WriterStats {
        WriterStats {
            batches: self.counters.batches.load(Ordering::Relaxed),
            commands: self.counters.commands.load(Ordering::Relaxed),
            largest_batch: self.counters.largest_batch.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        // Closing the channel lets the thread finish what is queued and exit; joining
        // makes sure the connection is closed before the store's files may be reused.
        self.tx.take();
        if let Some(t) = self.thread.take()
            && t.thread().id() != std::thread::current().id()
        {
            let _ = t.join();
        }
    }
}

fn run(conn: Connection, mut rx: mpsc::Receiver<Box<dyn Command>>, max: usize, c: &Counters) {
    let mut batch: Vec<Box<dyn Command>> = Vec::with_capacity(max.min(4096));
    let streams = RefCell::new(StreamCache::default());
    let hot: Hot<'_> = RefCell::new(Vec::new());
    while let Some(first) = rx.blocking_recv() {
        batch.push(first);
        while batch.len() < max {
            match rx.try_recv() {
                Ok(cmd) => batch.push(cmd),
                Err(_) => break,
            }
        }
        let outcome = commit(&conn, &hot, &streams, &mut batch);
        if outcome.is_ok() {
            let n = batch.len() as u64;
            c.batches.fetch_add(1, Ordering::Relaxed);
            c.commands.fetch_add(n, Ordering::Relaxed);
            c.largest_batch.fetch_max(n, Ordering::Relaxed);
        }
        for cmd in batch.drain(..) {
            cmd.answer(outcome.as_ref().map(|_| ()));
        }
    }
}

/// Runs a batch in one transaction. `Ok` means it is committed (and durable as far
/// as the configured `synchronous` level promises).
fn commit<'c>(
    conn: &'c Connection,
    hot: &Hot<'c>,
    streams: &RefCell<StreamCache>,
    batch: &mut [Box<dyn Command>],
) -> Result<(), BatchFailure> {
    let tx = Tx {
        conn,
        hot,
        fts: RefCell::new(Vec::new()),
        streams,
        created: RefCell::new(Vec::new()),
        after: RefCell::new(Vec::new()),
    };
    let result = apply_all(&tx, batch).and_then(|()| exec(&tx, "COMMIT"));
    if result.is_err() {
        if !conn.is_autocommit() {
            let _ = exec(&tx, "ROLLBACK");
        }
        // Heads cached during the batch are gone with it.
        streams.borrow_mut().streams.clear();
        tx.forget_created(0);
    }
    for f in tx.after.take() {
        f();
    }
    result
}

fn apply_all(tx: &Tx<'_, '_>, batch: &mut [Box<dyn Command>]) -> Result<(), BatchFailure> {
    let conn = tx.conn;
    exec(tx, "BEGIN IMMEDIATE")?;
    for cmd in batch.iter_mut() {
        let mark = tx.mark();
        if cmd.sheltered() {
            exec(tx, "SAVEPOINT command")?;
            let ok = cmd.apply(tx);
            aborted(conn)?;
            if !ok {
                exec(tx, "ROLLBACK TO command")?;
                tx.undo_to(mark);
            }
            exec(tx, "RELEASE command")?;
        } else {
            let before = conn.total_changes();
            let ok = cmd.apply(tx);
            aborted(conn)?;
            if !ok {
                if conn.total_changes() != before {
                    // Half a command cannot be undone alone without a savepoint:
                    // give up the batch rather than commit it.
                    return Err(BatchFailure {
                        kind: Failure::Internal,
                        cause: Arc::new(rusqlite::Error::SqliteFailure(
                            rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                            Some("a command without a savepoint failed after writing".into()),
                        )),
                    });
                }
                tx.undo_to(mark);
            }
        }
    }
    tx.run_fts()
}

/// Fails the batch if SQLite rolled the whole transaction back by itself
/// (SQLITE_FULL, SQLITE_IOERR, …): everything applied so far is gone.
fn aborted(conn: &Connection) -> Result<(), BatchFailure> {
    if conn.is_autocommit() {
        return Err(BatchFailure {
            kind: Failure::Transient,
            cause: Arc::new(rusqlite::Error::SqliteFailure(
                rusqlite::ffi::Error::new(rusqlite::ffi::SQLITE_ABORT),
                Some("the transaction was rolled back by SQLite".into()),
            )),
        });
    }
    Ok(())
}

fn exec(tx: &Tx<'_, '_>, sql: &'static str) -> Result<(), BatchFailure> {
    let st = tx.hot(sql).map_err(BatchFailure::other)?;
    let mut st = st.borrow_mut();
    st.execute([]).map(|_| ()).map_err(BatchFailure::new)
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn writer() -> Arc<Writer> {
        let c = Connection::open_in_memory().unwrap();
        c.execute_batch("CREATE TABLE t (x INTEGER PRIMARY KEY)")
            .unwrap();
        Arc::new(Writer::start(c, 100, 100).unwrap())
    }

    /// Holds the writer busy, so the commands sent meanwhile share the next batch.
    async fn hold(w: &Arc<Writer>) -> tokio::task::JoinHandle<Result<()>> {
        let (started, running) = std::sync::mpsc::channel();
        let w2 = w.clone();
        let h = tokio::spawn(async move {
            w2.write(move |_| {
                let _ = started.send(());
                std::thread::sleep(Duration::from_millis(100));
                Ok(())
            })
            .await
        });
        running.recv().unwrap();
        h
    }

    fn insert(c: &Tx<'_, '_>, x: i64) -> Result<()> {
        c.execute("INSERT INTO t VALUES (?1)", [x])
            .map_err(|e| error::map("insert", e))?;
        Ok(())
    }

    async fn rows(w: &Writer) -> Vec<i64> {
        w.write(|c| {
            let mut s = c.prepare("SELECT x FROM t ORDER BY x").unwrap();
            Ok(s.query_map([], |r| r.get(0))
                .unwrap()
                .collect::<rusqlite::Result<Vec<i64>>>()
                .unwrap())
        })
        .await
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_failed_command_is_undone_alone_and_its_batch_commits() {
        let w = writer();
        let held = hold(&w).await;
        let (a, b, c, d) = tokio::join!(
            w.write(|c| insert(c, 1)),
            w.write(|c| {
                insert(c, 2)?;
                Err::<(), _>(Error::conflict("refused after writing"))
            }),
            w.write_prechecked(|c| insert(c, 3)),
            w.write_prechecked(|_| Err::<(), _>(Error::conflict("refused before writing"))),
        );
        held.await.unwrap().unwrap();
        assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
        assert!(matches!(b, Err(Error::Conflict { .. })), "{b:?}");
        assert!(matches!(d, Err(Error::Conflict { .. })), "{d:?}");
        assert_eq!(rows(&w).await, [1, 3]);
        assert!(w.stats().largest_batch >= 4, "{:?}", w.stats());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_savepointless_command_failing_after_writing_fails_its_batch() {
        let w = writer();
        let held = hold(&w).await;
        let (ok, liar) = tokio::join!(
            w.write(|c| insert(c, 1)),
            w.write_prechecked(|c| {
                insert(c, 2)?;
                Err::<(), _>(Error::conflict("broke its promise"))
            }),
        );
        held.await.unwrap().unwrap();
        assert!(matches!(liar, Err(Error::Conflict { .. })), "{liar:?}");
        assert!(matches!(ok, Err(Error::Internal { .. })), "{ok:?}");
        assert!(
            rows(&w).await.is_empty(),
            "nothing of that batch was committed"
        );
    }

    #[tokio::test]
    async fn a_panicking_command_does_not_stop_the_writer() {
        let w = writer();
        let r = w.write(|_| -> Result<()> { panic!("bug") }).await;
        assert!(matches!(r, Err(Error::Internal { .. })), "{r:?}");
        w.write(|c| insert(c, 7)).await.unwrap();
        assert_eq!(rows(&w).await, [7]);
    }
}
