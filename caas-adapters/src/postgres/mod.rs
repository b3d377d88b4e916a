//! Every store port and the search index on PostgreSQL (15 or later), for
//! several nodes sharing one database.
//!
//! One [`PostgresStore`] (cheap to clone) implements [`TenantStore`],
//! [`UserStore`], [`ConversationStore`], [`MessageStore`], [`ReceiptStore`],
//! [`EventLog`], [`KeyDirectory`], [`AuditStore`], [`CredentialStore`],
//! [`MediaStore`], [`UsageStore`], [`FlagStore`], [`WebhookStore`] and
//! [`SearchIndex`]. The crate README says what is stored where and what each
//! part promises; in short:
//!
//! * **Seqs**: an append locks its conversation's head row (`streams`) until it
//!   commits and takes the next seq from it, so seqs are gap-free and unique
//!   across any number of nodes, and a rolled-back append leaves no trace.
//! * **The event log** hands out each tenant's cursors under the tenant's
//!   `log_heads` row, also held to commit: cursors become visible in order, so a
//!   `sync` reader never passes an event that commits later.
//! * **Group commit**: concurrent appends on one node share one statement, one
//!   transaction and one commit (`writer.rs`).
//! * **Reads of conversations and members** are cached per node and kept
//!   coherent with `LISTEN`/`NOTIFY` (`cache.rs`).
//! * **Schema**: versioned migrations applied at connect; a schema newer than
//!   this binary is refused (`schema.rs`).
//!
//! [`TenantStore`]: caas_core::ports::TenantStore
//! [`UserStore`]: caas_core::ports::UserStore
//! [`ConversationStore`]: caas_core::ports::ConversationStore
//! [`MessageStore`]: caas_core::ports::MessageStore
//! [`ReceiptStore`]: caas_core::ports::ReceiptStore
//! [`EventLog`]: caas_core::ports::EventLog
//! [`KeyDirectory`]: caas_core::ports::KeyDirectory
//! [`AuditStore`]: caas_core::ports::AuditStore
//! [`CredentialStore`]: caas_core::ports::CredentialStore
//! [`MediaStore`]: caas_core::ports::MediaStore
//! [`UsageStore`]: caas_core::ports::UsageStore
//! [`FlagStore`]: caas_core::ports::FlagStore
//! [`WebhookStore`]: caas_core::ports::WebhookStore
//! [`SearchIndex`]: caas_core::ports::SearchIndex

mod audit;
mod cache;
mod codec;
mod conversations;
mod credentials;
mod error;
mod events;
mod flags;
mod keys;
mod media;
mod messages;
mod pool;
mod receipts;
mod schema;
mod search;
mod tenants;
mod usage;
mod users;
mod webhooks;
mod writer;

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use caas_core::ids::{ConversationId, MessageId, TenantId, UserId};
use caas_core::{Error, Result};

pub use writer::WriterStats;

use cache::Caches;
use pool::{Lease, Pool};

/// How a [`PostgresStore`] connects and runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresConfig {
    /// A libpq-style URL or key=value string (`postgres://user@host:port/db`).
    /// TLS is not supported: use it on a trusted network or over a tunnel.
    pub url: String,
    /// The PostgreSQL schema (namespace) holding caas's tables, created if
    /// missing; `None` for the server's default (`public`). Letters, digits and
    /// `_` only.
    pub schema: Option<String>,
    /// Connections for calls (default 16). Appends use at most `writers` of them.
    pub pool_size: usize,
    /// Bound on opening a connection, and on waiting for a free one (default 5 s).
    pub connect_timeout: Duration,
    /// Bound on every statement, enforced by the server (`statement_timeout`,
    /// lock waits included) and shortly after by the client (default 10 s).
    pub statement_timeout: Duration,
    /// Append batches in flight at once (default 2). One is enough to batch; a
    /// second overlaps one batch's round trip and commit with the next.
    pub writers: usize,
    /// The most appends one batch carries (default 512).
    pub max_batch: usize,
    /// Whether conversations and member lists are cached (default on; see the
    /// README for what that means across nodes).
    pub read_cache: bool,
    /// The `application_name` of its connections (default `caas`), as the
    /// server's `pg_stat_activity` shows it.
    pub application_name: String,
}

impl PostgresConfig {
    /// The defaults, for the database at `url`.
    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            schema: None,
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
            statement_timeout: Duration::from_secs(10),
            writers: 2,
            max_batch: 512,
            read_cache: true,
            application_name: "caas".into(),
        }
    }
}

/// Every store port and the search index over one PostgreSQL database. Clones
/// share one pool, one append writer and one cache; the background tasks stop
/// when the last clone is dropped.
#[derive(Debug, Clone)]
pub struct PostgresStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    shared: Arc<Shared>,
    writer: writer::Writer,
    listener: Option<tokio::task::JoinHandle<()>>,
    config: PostgresConfig,
}

impl Drop for Inner {
    fn drop(&mut self) {
        if let Some(l) = &self.listener {
            l.abort();
        }
    }
}

/// What the background tasks share with the store.
#[derive(Debug)]
struct Shared {
    pool: Pool,
    caches: Caches,
    counters: writer::Counters,
    /// Audience sets already stored, by (tenant, digest): sets never change, so
    /// an append naming a known one skips looking it up.
    audience_ids: Mutex<HashMap<(TenantId, String), i64, foldhash::fast::RandomState>>,
    /// Audience sets' users, by id, for reads.
    audience_users: Mutex<HashMap<i64, Arc<[UserId]>, foldhash::fast::RandomState>>,
    /// Messages this node stored (or changed) whose index entry its write kept
    /// current: the service's `index_message` right after such a write has
    /// nothing to do, and skips the round trip.
    fresh: Mutex<
        std::collections::HashSet<
            (TenantId, ConversationId, MessageId),
            foldhash::fast::RandomState,
        >,
    >,
}

/// Entries the small per-node maps keep at most before starting over.
const MAX_REMEMBERED: usize = 64 * 1024;

impl Shared {
    fn remember_fresh(&self, tenant: &TenantId, conv: &ConversationId, id: &MessageId) {
        let mut fresh = self.fresh.lock().unwrap_or_else(PoisonError::into_inner);
        if fresh.len() >= MAX_REMEMBERED {
            fresh.clear();
        }
        fresh.insert((tenant.clone(), conv.clone(), id.clone()));
    }

    fn take_fresh(&self, tenant: &TenantId, conv: &ConversationId, id: &MessageId) -> bool {
        self.fresh
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .remove(&(tenant.clone(), conv.clone(), id.clone()))
    }
}

fn valid_schema(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 63
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        && !name.as_bytes()[0].is_ascii_digit()
}

impl PostgresStore {
    /// Connects, checks the server, and applies missing schema migrations;
    /// refuses a schema written by a newer caas (with a one-line reason). Starts
    /// the append writer and the cache's listener on the current Tokio runtime.
    pub async fn connect(config: PostgresConfig) -> Result<Self> {
        Self::connect_with(config, schema::MIGRATIONS).await
    }

    async fn connect_with(config: PostgresConfig, migrations: &[&str]) -> Result<Self> {
        let mut pg: tokio_postgres::Config = config
            .url
            .parse()
            .map_err(|e| Error::invalid("postgres url", format!("{e}")))?;
        let mut options = format!(
            "-c statement_timeout={} -c lock_timeout={} -c idle_in_transaction_session_timeout={}",
            config.statement_timeout.as_millis(),
            config.statement_timeout.as_millis(),
            (config.statement_timeout * 2).as_millis(),
        );
        if let Some(schema) = &config.schema {
            if !valid_schema(schema) {
                return Err(Error::invalid(
                    "postgres schema",
                    "lowercase letters, digits and _ only, not starting with a digit",
                ));
            }
            options.push_str(&format!(" -c search_path={schema}"));
        }
        pg.options(&options)
            .connect_timeout(config.connect_timeout)
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(30))
            .application_name(&config.application_name);
        let pool = Pool::new(
            pg,
            config.pool_size,
            config.connect_timeout,
            config.statement_timeout,
        );
        {
            let mut c = pool.get().await?;
            let row = c
                .query_one(
                    "SELECT current_setting('server_encoding'), current_setting('server_version_num')::int",
                    &[],
                    "check the server",
                )
                .await?;
            let (encoding, version): (String, i32) = (codec::get(&row, 0)?, codec::get(&row, 1)?);
            if encoding != "UTF8" || version < 130_000 {
                return Err(Error::Unavailable {
                    backend: error::BACKEND,
                    context: format!(
                        "caas needs PostgreSQL 13 or later with UTF8 encoding; the server is \
                         version {version} with {encoding}"
                    ),
                    temporary: false,
                    source: None,
                });
            }
            if let Some(schema) = &config.schema {
                // `IF NOT EXISTS` does not make two concurrent creates safe (the
                // loser fails on the catalog's unique index): nodes starting
                // together take turns, the lock held to the end of the implicit
                // transaction of this one batch.
                c.batch(
                    &format!(
                        "SELECT pg_advisory_xact_lock(hashtext('caas_create_schema'));
                         CREATE SCHEMA IF NOT EXISTS {schema}"
                    ),
                    "create the schema",
                )
                .await?;
            }
            schema::migrate(&mut c, migrations).await?;
        }
        let shared = Arc::new(Shared {
            pool,
            caches: Caches::new(),
            counters: writer::Counters::default(),
            audience_ids: Mutex::default(),
            audience_users: Mutex::default(),
            fresh: Mutex::default(),
        });
        let listener = config
            .read_cache
            .then(|| tokio::spawn(cache::listen(Arc::downgrade(&shared))));
        let writer = writer::Writer::start(shared.clone(), config.writers, config.max_batch);
        Ok(Self {
            inner: Arc::new(Inner {
                shared,
                writer,
                listener,
                config,
            }),
        })
    }

    /// Every port this store implements, on `Backends`, with the in-process bus,
    /// presence, rate limits and blobs of `caas_storage::memory` for the rest and
    /// the system clock.
    pub fn backends(&self) -> caas_core::ports::Backends {
        let db = Arc::new(self.clone());
        caas_core::ports::Backends {
            tenants: db.clone(),
            users: db.clone(),
            conversations: db.clone(),
            messages: db.clone(),
            receipts: db.clone(),
            events: db.clone(),
            credentials: db.clone(),
            keys: db.clone(),
            audit: db.clone(),
            media: db.clone(),
            usage: db.clone(),
            flags: db.clone(),
            shredder: Arc::new(caas_core::ports::NoShredding),
            webhooks: db.clone(),
            search: db,
            ..caas_storage::memory::backends()
        }
    }

    /// The configuration it was connected with.
    pub fn config(&self) -> &PostgresConfig {
        &self.inner.config
    }

    /// How many append batches ran and how many appends they carried.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.shared.counters.snapshot()
    }

    /// Whether the conversation cache is in use right now (its listening
    /// connection is up).
    pub fn cache_active(&self) -> bool {
        self.inner.shared.caches.is_on()
    }

    /// Drops every idle pooled connection, so the next calls connect afresh.
    pub fn reset_connections(&self) {
        self.inner.shared.pool.clear();
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    async fn conn(&self) -> Result<Lease<'_>> {
        self.inner.shared.pool.get().await
    }
}

/// The stream (conversation head) id of a conversation, if it has one.
async fn stream_of(
    c: &mut Lease<'_>,
    tenant: &TenantId,
    conv: &ConversationId,
) -> Result<Option<i64>> {
    let row = c
        .query_opt(
            "SELECT id FROM streams WHERE tenant = $1 AND conversation = $2",
            &[&tenant.as_str(), &conv.as_str()],
            "look up conversation stream",
        )
        .await?;
    row.map(|r| codec::get(&r, 0)).transpose()
}

/// The stream id of a conversation, created if missing.
async fn stream(c: &mut Lease<'_>, tenant: &TenantId, conv: &ConversationId) -> Result<i64> {
    if let Some(id) = stream_of(c, tenant, conv).await? {
        return Ok(id);
    }
    c.execute(
        "INSERT INTO streams (tenant, conversation) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        &[&tenant.as_str(), &conv.as_str()],
        "create conversation stream",
    )
    .await?;
    stream_of(c, tenant, conv)
        .await?
        .ok_or_else(|| Error::internal("postgres: a conversation stream vanished"))
}

/// Sends the cache invalidation of a conversation, inside the caller's
/// transaction (it goes out when that commits).
async fn notify(c: &mut Lease<'_>, tenant: &TenantId, conv: &ConversationId) -> Result<()> {
    let payload = cache::payload(tenant, conv);
    c.query(
        "SELECT pg_notify($1, $2)",
        &[&cache::CHANNEL, &payload],
        "notify other nodes",
    )
    .await
    .map(|_| ())
}
