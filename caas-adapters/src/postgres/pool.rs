//! A small pool of PostgreSQL connections, each leased to one caller at a time.
//!
//! Each connection keeps its prepared statements, so a query costs one round trip
//! after its first use on that connection. A lease whose connection broke (the
//! server restarted, a deadline passed mid-call) is not returned: the next caller
//! gets a fresh connection. Connecting is bounded by the connect timeout, every
//! call by the statement timeout (on the server, and a little later on the client,
//! in case the server or the network stops answering altogether).

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use caas_core::Result;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio_postgres::types::ToSql;
use tokio_postgres::{Client, NoTls, Row, Statement};

use super::error::{self, Ctx};

/// How much later than the server's statement timeout the client gives up on a
/// call: time for the server's own cancellation to arrive first.
const CLIENT_GRACE: Duration = Duration::from_secs(2);

#[derive(Debug)]
pub(super) struct Pool {
    config: tokio_postgres::Config,
    free: Mutex<Vec<Conn>>,
    permits: Arc<Semaphore>,
    connect_timeout: Duration,
    call_timeout: Duration,
}

/// One connection and the statements prepared on it.
#[derive(Debug)]
pub(super) struct Conn {
    client: Client,
    statements: HashMap<&'static str, Statement, foldhash::fast::RandomState>,
}

/// A connection leased from the pool; returned on drop unless it broke.
#[derive(Debug)]
pub(super) struct Lease<'a> {
    conn: Option<Conn>,
    pool: &'a Pool,
    broken: bool,
    in_tx: bool,
    _permit: OwnedSemaphorePermit,
}

impl Pool {
    pub(super) fn new(
        config: tokio_postgres::Config,
        size: usize,
        connect_timeout: Duration,
        statement_timeout: Duration,
    ) -> Self {
        Self {
            config,
            free: Mutex::new(Vec::new()),
            permits: Arc::new(Semaphore::new(size.max(1))),
            connect_timeout,
            call_timeout: statement_timeout + CLIENT_GRACE,
        }
    }

    /// Opens a connection outside the pool (for `LISTEN`, which must own its
    /// connection's message stream): the client and the connection to drive.
    pub(super) async fn connect_raw(
        &self,
    ) -> Result<(
        Client,
        tokio_postgres::Connection<tokio_postgres::Socket, tokio_postgres::tls::NoTlsStream>,
    )> {
        match tokio::time::timeout(self.connect_timeout, self.config.connect(NoTls)).await {
            Ok(r) => r.ctx("connect"),
            Err(_) => Err(error::timed_out("connect")),
        }
    }

    async fn connect(&self) -> Result<Conn> {
        let (client, connection) = self.connect_raw().await?;
        tokio::spawn(async move {
            // Ends when the client is dropped or the server goes away; the client
            // then reports itself closed and the pool replaces it.
            let _ = connection.await;
        });
        Ok(Conn {
            client,
            statements: HashMap::default(),
        })
    }

    /// A connection for the caller's exclusive use, waiting (at most the connect
    /// timeout) for one to free up.
    pub(super) async fn get(&self) -> Result<Lease<'_>> {
        let permit =
            match tokio::time::timeout(self.connect_timeout, self.permits.clone().acquire_owned())
                .await
            {
                Ok(Ok(p)) => p,
                Ok(Err(_)) => return Err(error::timed_out("wait for a connection")),
                Err(_) => return Err(error::timed_out("wait for a free connection")),
            };
        let reused = loop {
            let next = self
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .pop();
            match next {
                Some(c) if c.client.is_closed() => continue,
                other => break other,
            }
        };
        let conn = match reused {
            Some(c) => c,
            None => self.connect().await?,
        };
        Ok(Lease {
            conn: Some(conn),
            pool: self,
            broken: false,
            in_tx: false,
            _permit: permit,
        })
    }

    /// Drops every idle connection (after the server restarted, say).
    pub(super) fn clear(&self) {
        self.free
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }
}

impl Drop for Lease<'_> {
    fn drop(&mut self) {
        if let Some(conn) = self.conn.take()
            && !self.broken
            && !self.in_tx
            && !conn.client.is_closed()
        {
            self.pool
                .free
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(conn);
        }
    }
}

impl Lease<'_> {
    fn conn(&mut self) -> Result<&mut Conn> {
        self.conn
            .as_mut()
            .ok_or_else(|| caas_core::Error::internal("postgres: lease without a connection"))
    }

    async fn statement(&mut self, sql: &'static str, context: &str) -> Result<Statement> {
        let timeout = self.pool.call_timeout;
        let (r, broken) = {
            let conn = self.conn()?;
            if let Some(s) = conn.statements.get(sql) {
                return Ok(s.clone());
            }
            guarded(timeout, context, conn.client.prepare(sql)).await
        };
        self.broken |= broken;
        let st = r?;
        self.conn()?.statements.insert(sql, st.clone());
        Ok(st)
    }

    /// Every row of a prepared query.
    pub(super) async fn query(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        context: &str,
    ) -> Result<Vec<Row>> {
        let st = self.statement(sql, context).await?;
        let timeout = self.pool.call_timeout;
        let (r, broken) = {
            let client = &self.conn()?.client;
            guarded(timeout, context, client.query(&st, params)).await
        };
        self.broken |= broken;
        r
    }

    /// The one row of a query, or `None`; several rows are a bug.
    pub(super) async fn query_opt(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        context: &str,
    ) -> Result<Option<Row>> {
        let mut rows = self.query(sql, params, context).await?;
        if rows.len() > 1 {
            return Err(caas_core::Error::internal(format!(
                "postgres: {context}: more than one row"
            )));
        }
        Ok(rows.pop())
    }

    /// The one row of a query that always returns one.
    pub(super) async fn query_one(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        context: &str,
    ) -> Result<Row> {
        self.query_opt(sql, params, context)
            .await?
            .ok_or_else(|| caas_core::Error::internal(format!("postgres: {context}: no row")))
    }

    /// Rows changed by a prepared statement.
    pub(super) async fn execute(
        &mut self,
        sql: &'static str,
        params: &[&(dyn ToSql + Sync)],
        context: &str,
    ) -> Result<u64> {
        let st = self.statement(sql, context).await?;
        let timeout = self.pool.call_timeout;
        let (r, broken) = {
            let client = &self.conn()?.client;
            guarded(timeout, context, client.execute(&st, params)).await
        };
        self.broken |= broken;
        r
    }

    /// Runs SQL text with the simple protocol (no parameters).
    pub(super) async fn batch(&mut self, sql: &str, context: &str) -> Result<()> {
        let timeout = self.pool.call_timeout;
        let (r, broken) = {
            let client = &self.conn()?.client;
            guarded(timeout, context, client.batch_execute(sql)).await
        };
        self.broken |= broken;
        r
    }

    /// Starts a transaction. Until [`Lease::finish`], a lease dropped (a caller
    /// that gave up, an early return) takes its connection out of the pool, so
    /// the server rolls the transaction back when the connection closes.
    pub(super) async fn begin(&mut self) -> Result<()> {
        self.in_tx = true;
        self.batch("BEGIN", "begin a transaction").await
    }

    /// Commits on `Ok` (the value is returned only once COMMIT has answered, so
    /// nothing is acknowledged that is not committed), rolls back on `Err`.
    pub(super) async fn finish<T>(&mut self, outcome: Result<T>) -> Result<T> {
        match outcome {
            Ok(v) => {
                self.batch("COMMIT", "commit").await?;
                self.in_tx = false;
                Ok(v)
            }
            Err(e) => {
                if self.batch("ROLLBACK", "roll back").await.is_ok() {
                    self.in_tx = false;
                }
                Err(e)
            }
        }
    }
}

/// Runs `fut` under the client-side deadline; the flag says whether the failure
/// leaves the connection in doubt (it must not be reused).
async fn guarded<T>(
    timeout: Duration,
    context: &str,
    fut: impl Future<Output = Result<T, tokio_postgres::Error>>,
) -> (Result<T>, bool) {
    match tokio::time::timeout(timeout, fut).await {
        Ok(Ok(v)) => (Ok(v), false),
        Ok(Err(e)) => {
            let broken = error::classify(&e) == error::Failure::Transient;
            (Err(error::map(context, e)), broken)
        }
        Err(_) => (Err(error::timed_out(context)), true),
    }
}
