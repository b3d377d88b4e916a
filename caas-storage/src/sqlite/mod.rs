//! The embedded durable default: every store port and the search index on one
//! SQLite file.
//!
//! One [`SqliteStore`] (cheap to clone) implements [`TenantStore`], [`UserStore`],
//! [`ConversationStore`], [`MessageStore`], [`ReceiptStore`], [`EventLog`],
//! [`KeyDirectory`], [`AuditStore`], [`CredentialStore`], [`Revocations`],
//! [`MediaStore`], [`UsageStore`], [`FlagStore`], [`WebhookStore`] and
//! [`SearchIndex`].
//!
//! * **WAL mode, one writer with group commit.** Every write is a command sent to a
//!   single writer thread, which commits whatever has queued in one transaction and
//!   answers each caller only after that commit (see `writer.rs`). A send is
//!   acknowledged only once it is durable, and concurrent sends share the fsync.
//! * **Reads** run on a small pool of read-only connections that see the last
//!   commit and never wait for the writer.
//! * **Seqs and idempotency** are decided inside the writer's transaction, under
//!   `UNIQUE (conversation, seq)` and `UNIQUE (conversation, sender, client_msg_id)`:
//!   a crash can lose an unacknowledged batch as a whole, never leave a gap or a
//!   duplicate.
//! * **Schema** migrations are compiled in and applied at open; a database written
//!   by a newer caas is refused (see `schema.rs`).
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
//! [`Revocations`]: caas_core::ports::Revocations
//! [`MediaStore`]: caas_core::ports::MediaStore
//! [`UsageStore`]: caas_core::ports::UsageStore
//! [`FlagStore`]: caas_core::ports::FlagStore
//! [`WebhookStore`]: caas_core::ports::WebhookStore
//! [`SearchIndex`]: caas_core::ports::SearchIndex

mod audit;
mod codec;
mod conversations;
mod credentials;
mod error;
mod events;
mod flags;
#[cfg(feature = "encryption")]
mod key_file;
#[cfg(feature = "encryption")]
mod keyrings;
mod keys;
mod media;
mod messages;
mod read_cache;
mod readers;
mod receipts;
mod revocations;
mod schema;
mod search;
mod tenants;
mod usage;
mod users;
mod webhooks;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use caas_core::ids::{ConversationId, TenantId};
use caas_core::{Error, Result};
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};

#[cfg(feature = "encryption")]
pub use key_file::KeyFile;
pub use writer::WriterStats;

use crate::temp::TempDir;
use error::Ctx;
use readers::Readers;
use writer::Writer;

/// Connections for reads short enough to run on the caller's thread (see
/// `readers.rs`): one per core of the machines this targets.
const SHORT_READ_CONNECTIONS: usize = 2;

/// What a commit promises. Both modes keep the database consistent (never corrupt,
/// never a gap in a conversation's seqs); they differ in which acknowledged writes
/// an outage can take back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Durability {
    /// `synchronous=FULL`: each batch's commit fsyncs the WAL before anyone in it is
    /// answered. Nothing acknowledged is lost on a process crash, a kernel panic or a
    /// power loss (on disks that honour fsync). The default.
    #[default]
    Full,
    /// `synchronous=NORMAL`: a commit hands the WAL to the operating system without
    /// waiting for the disk; the WAL is fsynced at checkpoints. Nothing acknowledged
    /// is lost when the process crashes or is killed (the kernel still writes it
    /// out), but a power loss or kernel panic can take back the last transactions
    /// acknowledged before it (whole batches; the database stays consistent, and
    /// their seqs may then be given to other messages). Opt in for throughput where
    /// that is acceptable.
    Normal,
}

impl Durability {
    fn pragma(self) -> &'static str {
        match self {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        }
    }
}

/// How a [`SqliteStore`] runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SqliteConfig {
    /// What a commit promises (default [`Durability::Full`]).
    pub durability: Durability,
    /// Read connections, each on its own thread (default 4, at least 1).
    pub read_connections: usize,
    /// The most commands one transaction carries (default 1024). Larger batches
    /// share an fsync among more callers but make each wait for more work.
    pub max_batch: usize,
    /// Commands that may wait for the writer before callers are held back
    /// (default 16384).
    pub queue_capacity: usize,
    /// Page cache of each connection, in KiB (default 16 MiB for the writer; readers
    /// get half).
    pub cache_kib: u32,
}

impl Default for SqliteConfig {
    fn default() -> Self {
        Self {
            durability: Durability::Full,
            read_connections: 4,
            max_batch: 1024,
            queue_capacity: 16 * 1024,
            cache_kib: 16 * 1024,
        }
    }
}

/// Every durable store port and the search index over one SQLite database file.
/// Clones share one writer thread and one read pool; the threads stop and the file
/// is closed when the last clone is dropped (dropping waits for the batch in flight).
#[derive(Debug, Clone)]
pub struct SqliteStore {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    // Field order is drop order: threads (and their connections) before the
    // temporary directory holding the files.
    writer: Writer,
    readers: Readers,
    /// Conversations' members and the conversations themselves, as last read
    /// (see `read_cache.rs`).
    members: Arc<read_cache::ReadCache<Arc<[caas_core::model::Member]>>>,
    /// Whether events of schema version 1 exist (see `events.rs`).
    legacy_audiences: bool,
    conversations: Arc<read_cache::ReadCache<Option<caas_core::model::Conversation>>>,
    path: PathBuf,
    config: SqliteConfig,
    /// The embedded store's exclusive lock on its data directory: held as long as
    /// any clone lives, released after the connections above are closed.
    _lock: Option<std::fs::File>,
    _temp: Option<TempDir>,
}

impl SqliteStore {
    /// Opens (creating if needed) the database at `path`, applies missing schema
    /// migrations, and starts the writer and reader threads. Refuses a database of a
    /// newer schema version, or a SQLite file of another application.
    ///
    /// A new database file is created 0600 (and SQLite gives its `-wal` and `-shm`
    /// files the database file's mode); existing ones that group or others can read
    /// are made private to their owner.
    pub fn open(path: impl AsRef<Path>, config: SqliteConfig) -> Result<Self> {
        Self::open_inner(path.as_ref(), config, None, None).map(|(store, _)| store)
    }

    /// [`SqliteStore::open`] for the embedded assembly: keeps `lock` (the data
    /// directory's lock file) until the last clone drops, and reports the
    /// permissions it tightened.
    #[cfg(feature = "fs")]
    pub(crate) fn open_locked(
        path: &Path,
        config: SqliteConfig,
        lock: std::fs::File,
    ) -> Result<(Self, Vec<crate::PermissionChange>)> {
        Self::open_inner(path, config, None, Some(lock))
    }

    /// Every port this store implements, on `Backends`, with the in-process bus,
    /// presence, rate limits and blobs of [`crate::memory`] for the rest and the
    /// system clock: what a single node runs on, less its blob store.
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
            revocations: db.clone(),
            keys: db.clone(),
            audit: db.clone(),
            media: db.clone(),
            usage: db.clone(),
            flags: db.clone(),
            shredder: Arc::new(caas_core::ports::NoShredding),
            webhooks: db.clone(),
            search: db,
            ..crate::memory::backends()
        }
    }

    /// A fresh database in a new temporary directory that is deleted when the last
    /// clone drops: for tests and benchmarks.
    pub fn open_temp() -> Result<Self> {
        Self::open_temp_with(SqliteConfig {
            read_connections: 2,
            ..SqliteConfig::default()
        })
    }

    /// [`SqliteStore::open_temp`] with a configuration.
    pub fn open_temp_with(config: SqliteConfig) -> Result<Self> {
        let dir = TempDir::new("caas-sqlite")
            .map_err(|e| Error::unavailable("sqlite", "create a temporary directory", false, e))?;
        let path = dir.path().join("caas.db");
        Self::open_inner(&path, config, Some(dir), None).map(|(store, _)| store)
    }

    fn open_inner(
        path: &Path,
        config: SqliteConfig,
        temp: Option<TempDir>,
        lock: Option<std::fs::File>,
    ) -> Result<(Self, Vec<crate::PermissionChange>)> {
        let tightened = private_files(path)?;
        let conn = connect(path, &config, true)?;
        schema::migrate(&conn)?;
        let legacy_audiences = events::has_legacy_audiences(&conn)?;
        let readers = (0..config.read_connections.max(1))
            .map(|_| connect(path, &config, false))
            .collect::<Result<Vec<_>>>()?;
        let short = (0..SHORT_READ_CONNECTIONS)
            .map(|_| {
                let c = connect(path, &config, false)?;
                // They run on the caller's thread: never wait for a lock there
                // (`read_short` retries such a read on the pool).
                c.busy_timeout(Duration::ZERO).ctx("set busy timeout")?;
                Ok(c)
            })
            .collect::<Result<Vec<_>>>()?;
        let writer = Writer::start(conn, config.max_batch, config.queue_capacity)?;
        let readers = Readers::start(readers, short)?;
        let store = Self {
            inner: Arc::new(Inner {
                writer,
                readers,
                members: Arc::new(read_cache::ReadCache::new(read_cache::MAX_MEMBERS)),
                conversations: Arc::new(read_cache::ReadCache::new(read_cache::MAX_CONVERSATIONS)),
                legacy_audiences,
                path: path.to_path_buf(),
                config,
                _lock: lock,
                _temp: temp,
            }),
        };
        Ok((store, tightened))
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The configuration it was opened with.
    pub fn config(&self) -> &SqliteConfig {
        &self.inner.config
    }

    /// How many transactions the writer committed and how many commands they
    /// carried: `commands / batches` is the group-commit factor.
    pub fn writer_stats(&self) -> WriterStats {
        self.inner.writer.stats()
    }

    /// Writes a consistent copy of the database to `dest` (which must not exist,
    /// and is created readable by its owner only) while reads and writes go on,
    /// then fsyncs it. Uses `VACUUM INTO` on a
    /// connection of its own, so the copy is also compacted. Open the copy with
    /// [`SqliteStore::open`] to restore.
    pub async fn backup(&self, dest: impl AsRef<Path>) -> Result<()> {
        let dest = dest.as_ref().to_path_buf();
        let target = dest
            .to_str()
            .ok_or_else(|| Error::invalid("backup path", "must be valid UTF-8"))?
            .to_owned();
        if dest.exists() {
            return Err(Error::conflict(format!(
                "backup destination {} exists",
                dest.display()
            )));
        }
        let (config, path) = (self.inner.config.clone(), self.inner.path.clone());
        let (reply, answer) = tokio::sync::oneshot::channel();
        std::thread::Builder::new()
            .name("caas-sqlite-backup".into())
            .spawn(move || {
                let run = || -> Result<()> {
                    // The copy holds what the database holds: made empty and
                    // private first, which `VACUUM INTO` accepts and keeps.
                    crate::private::create_file(&dest).map_err(|e| {
                        Error::unavailable("sqlite", "create the backup file", false, e)
                    })?;
                    let conn = connect(&path, &config, false)?;
                    conn.execute_batch("PRAGMA query_only = 0")
                        .ctx("prepare backup")?;
                    conn.execute("VACUUM INTO ?1", params![target])
                        .ctx("write backup")?;
                    drop(conn);
                    std::fs::File::open(&dest)
                        .and_then(|f| f.sync_all())
                        .map_err(|e| Error::unavailable("sqlite", "fsync the backup", true, e))
                };
                let _ = reply.send(run());
            })
            .map_err(|e| Error::unavailable("sqlite", "start the backup thread", true, e))?;
        answer.await.map_err(|_| error::stopped("backup"))?
    }

    /// An erasure's last step on this store: merges the search index (dropping
    /// removed entries' words), then copies every committed page from the WAL
    /// into the database file and empties the WAL, so old versions of rewritten
    /// rows do not survive there. Best effort while readers hold old snapshots: SQLite then
    /// checkpoints what it can, and the rest goes at the next checkpoint.
    pub(super) async fn checkpoint_truncate(&self) -> Result<()> {
        let (config, path) = (self.inner.config.clone(), self.inner.path.clone());
        let (reply, answer) = tokio::sync::oneshot::channel();
        // Its own connection and thread, as a backup has: no async runtime needed.
        std::thread::Builder::new()
            .name("caas-sqlite-checkpoint".into())
            .spawn(move || {
                let run = || -> Result<()> {
                    let conn = connect(&path, &config, false)?;
                    conn.execute_batch("PRAGMA query_only = 0; PRAGMA secure_delete = ON")
                        .ctx("prepare a checkpoint")?;
                    // FTS5 keeps a removed entry's words in its segments until
                    // they merge: merge them all now (freed pages are zeroed).
                    conn.execute(
                        "INSERT INTO search_messages_fts (search_messages_fts) VALUES ('optimize')",
                        [],
                    )
                    .ctx("merge the search index")?;
                    conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
                        .ctx("checkpoint the WAL")
                };
                let _ = reply.send(run());
            })
            .map_err(|e| Error::unavailable("sqlite", "start the checkpoint thread", true, e))?;
        answer.await.map_err(|_| error::stopped("checkpoint"))?
    }

    /// SQLite's `PRAGMA integrity_check` of the whole file: the problems found, or
    /// an empty list when the database is sound. Reads every page: slow on big files.
    pub async fn integrity_check(&self) -> Result<Vec<String>> {
        self.read(|c| {
            let mut stmt = c.prepare("PRAGMA integrity_check").ctx("integrity check")?;
            let rows = stmt
                .query_map([], |r| r.get::<_, String>(0))
                .ctx("integrity check")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("integrity check")?;
            Ok(rows.into_iter().filter(|r| r != "ok").collect())
        })
        .await
    }

    /// Runs `work` on a read connection.
    async fn read<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.inner.readers.read(work).await
    }

    /// Runs a point lookup or small range on the caller's thread when it can
    /// (see `readers.rs`).
    async fn read_short<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T> + Send + Sync + 'static,
    {
        self.inner.readers.read_short(work).await
    }

    /// Runs `work` in the writer's next batch; returns once that batch is committed.
    async fn write<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&writer::Tx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.inner.writer.write(work).await
    }

    /// [`SqliteStore::write`] without a savepoint, for commands that check
    /// everything before their first change (see `writer.rs`).
    async fn write_prechecked<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&writer::Tx<'_, '_>) -> Result<T> + Send + 'static,
    {
        self.inner.writer.write_prechecked(work).await
    }
}

/// Creates the database file 0600 before SQLite does (SQLite would create it with
/// the umask's mode, usually world-readable) and takes group and other access from
/// it and from leftover `-wal` and `-shm` files: SQLite creates those two with the
/// database file's mode, so a private database file keeps all three private.
fn private_files(path: &Path) -> Result<Vec<crate::PermissionChange>> {
    let fail = |what: &str, p: &Path, e: std::io::Error| {
        Error::unavailable("sqlite", format!("{what} {}", p.display()), false, e)
    };
    crate::private::create_file(path).map_err(|e| fail("create", path, e))?;
    let mut tightened = Vec::new();
    for suffix in ["", "-wal", "-shm"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let file = PathBuf::from(name);
        if let Some(change) =
            crate::private::restrict(&file).map_err(|e| fail("restrict access to", &file, e))?
        {
            tightened.push(change);
        }
    }
    Ok(tightened)
}

/// Opens and configures one connection.
fn connect(path: &Path, config: &SqliteConfig, writer: bool) -> Result<Connection> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if writer {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)
        .map_err(|e| error::map(&format!("open {}", path.display()), e))?;
    // Another process holding the file (a backup tool, a second caas by mistake)
    // makes us wait a little rather than fail at once.
    conn.busy_timeout(Duration::from_secs(5))
        .ctx("set busy timeout")?;
    conn.set_prepared_statement_cache_capacity(64);
    let cache = if writer {
        config.cache_kib
    } else {
        config.cache_kib / 2
    };
    if writer {
        let mode: String = conn
            .query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))
            .ctx("enable WAL")?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(Error::Unavailable {
                backend: "sqlite",
                context: format!("the database refused WAL mode (it is in `{mode}` mode)"),
                temporary: false,
                source: None,
            });
        }
    }
    // `secure_delete`: content a write removes is zeroed in the file, so a
    // deleted or erased message's text does not linger in free space.
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {sync};
         PRAGMA foreign_keys = OFF;
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -{cache};
         PRAGMA journal_size_limit = 67108864;
         PRAGMA wal_autocheckpoint = 16384;
         PRAGMA secure_delete = ON;
         PRAGMA query_only = {query_only};",
        sync = config.durability.pragma(),
        query_only = i32::from(!writer),
    ))
    .ctx("configure connection")?;
    Ok(conn)
}

/// The stream (interned conversation key) of a conversation, if it has one.
fn stream_of(conn: &Connection, tenant: &TenantId, conv: &ConversationId) -> Result<Option<i64>> {
    conn.prepare_cached("SELECT id FROM streams WHERE tenant = ?1 AND conversation = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), conv.as_str()], |r| r.get(0))
                .optional()
        })
        .ctx("look up conversation stream")
}
