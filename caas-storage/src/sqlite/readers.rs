//! The read side: a few threads, each owning one connection.
//!
//! In WAL mode a reader sees the last committed state and neither waits for the
//! writer nor holds it up, so reads run on their own connections in parallel with
//! the writer's batches. Each connection lives on one thread for its whole life,
//! which keeps its prepared-statement cache warm, and keeps blocking SQLite calls
//! off the async runtime's workers.
//!
//! Short reads (point lookups) are different: handing one to a pool thread and
//! the answer back costs two thread wake-ups, several times the read itself. So the pool also keeps a few connections behind
//! locks that the caller's thread uses directly when one is free
//! ([`Readers::read_short`]).

use std::panic::{AssertUnwindSafe, catch_unwind};
use std::sync::{Arc, Mutex, mpsc};
use std::thread::JoinHandle;

use caas_core::{Error, Result};
use rusqlite::Connection;
use tokio::sync::oneshot;

use super::error;

type Job = Box<dyn FnOnce(&Connection) + Send>;

/// The pool; dropping it stops its threads once the queued reads are done.
#[derive(Debug)]
pub(super) struct Readers {
    tx: Option<mpsc::Sender<Job>>,
    threads: Vec<JoinHandle<()>>,
    short: Vec<Mutex<Connection>>,
}

impl Readers {
    /// One thread per connection of `conns`; `short` serve
    /// [`Readers::read_short`] on the caller's thread.
    pub(super) fn start(conns: Vec<Connection>, short: Vec<Connection>) -> Result<Self> {
        let (tx, rx) = mpsc::channel::<Job>();
        let rx = Arc::new(Mutex::new(rx));
        let mut threads = Vec::with_capacity(conns.len());
        for (i, conn) in conns.into_iter().enumerate() {
            let rx = rx.clone();
            let t = std::thread::Builder::new()
                .name(format!("caas-sqlite-reader-{i}"))
                .spawn(move || serve(&conn, &rx))
                .map_err(|e| Error::unavailable("sqlite", "start a reader thread", false, e))?;
            threads.push(t);
        }
        Ok(Self {
            tx: Some(tx),
            threads,
            short: short.into_iter().map(Mutex::new).collect(),
        })
    }

    /// Runs a short read on the caller's thread when a short-read connection is
    /// free (it blocks that thread for the read's duration: only point lookups
    /// belong here), on the pool otherwise. The short connections never wait for
    /// a lock (another process holding the file): such a read, or any other
    /// that fails in a way a retry may fix, is run again on the pool, which
    /// waits.
    pub(super) async fn read_short<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + Sync + 'static,
    {
        for conn in &self.short {
            // A panic is caught inside the lock, so it is never poisoned; a
            // poisoned or busy one is passed over.
            let Ok(conn) = conn.try_lock() else {
                continue;
            };
            match catch_unwind(AssertUnwindSafe(|| work(&conn)))
                .unwrap_or_else(|_| Err(Error::internal("sqlite: a read panicked")))
            {
                Err(e) if e.is_retryable() => break,
                r => return r,
            }
        }
        self.read(work).await
    }

    /// Runs `work` on the next free read connection.
    pub(super) async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        let tx = self.tx.as_ref().ok_or_else(|| error::stopped("reader"))?;
        let (reply, answer) = oneshot::channel();
        let job: Job = Box::new(move |conn| {
            let result = catch_unwind(AssertUnwindSafe(|| work(conn)))
                .unwrap_or_else(|_| Err(Error::internal("sqlite: a read panicked")));
            let _ = reply.send(result);
        });
        tx.send(job).map_err(|_| error::stopped("reader"))?;
        answer.await.map_err(|_| error::stopped("reader"))?
    }
}

impl Drop for Readers {
    fn drop(&mut self) {
        self.tx.take();
        let me = std::thread::current().id();
        for t in self.threads.drain(..) {
            if t.thread().id() != me {
                let _ = t.join();
            }
        }
    }
}

fn serve(conn: &Connection, rx: &Mutex<mpsc::Receiver<Job>>) {
    loop {
        // Only the thread holding the lock waits in recv; the others queue on the
        // lock. The guard is dropped before the job runs, so jobs run in parallel.
        let job = match rx.lock() {
            Ok(guard) => guard.recv(),
            Err(_) => return,
        };
        match job {
            Ok(job) => job(conn),
            Err(_) => return,
        }
    }
}
