//! The single-node platform's backends in one call: everything durable in a data
//! directory, nothing to install.
//!
//! ```text
//! <data_dir>/                          0700 (an existing one is made private)
//! <data_dir>/caas.lock                 exclusive lock of the process that has it open (0600)
//! <data_dir>/caas.db (+ -wal, -shm)    every store port and search (SqliteStore, 0600)
//! <data_dir>/blobs/                    media (FsBlobStore, 0700, files 0600)
//! <data_dir>/blob-url.key              the secret that signs blob URLs (0600)
//! <data_dir>/keys.db                   at-rest encryption's wrapped keys, when on
//!                                      (KeyFile, 0600; see KEY_FILE)
//! ```
//!
//! One process at a time: [`open`] takes an exclusive lock on `caas.lock` and
//! holds it until the last clone of the store is dropped. A second open of the
//! same directory, from another process or this one, is refused: each writer
//! caches conversations' last seqs, so two would pick the same next seqs.
//!
//! The event bus is the in-process [`MemoryBus`](crate::memory::MemoryBus); presence and rate-limit state are
//! in memory too. They are state, not data: presence is rebuilt by the next
//! heartbeats, and forgetting rate-limit state on restart only forgives a little.

use std::fs::{File, TryLockError};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use caas_core::ports::Backends;
use caas_core::{Error, Result};

use crate::PermissionChange;
use crate::fs::{FsBlobConfig, FsBlobStore};
use crate::sqlite::{SqliteConfig, SqliteStore};

/// The lock file in the data directory.
pub const LOCK_FILE: &str = "caas.lock";

/// The key file in the data directory, where at-rest encryption keeps its
/// wrapped keys ([`crate::sqlite::KeyFile`]), apart from `caas.db` so that a
/// backup of the data holds no key.
#[cfg(feature = "encryption")]
pub const KEY_FILE: &str = "keys.db";

/// How the embedded backends run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EmbeddedConfig {
    /// The SQLite store (durability, readers, batch size).
    pub sqlite: SqliteConfig,
    /// The blob store (size limit, URL prefix).
    pub blobs: FsBlobConfig,
}

/// The opened embedded backends, and the concrete stores behind them for what the
/// ports do not cover: online backup, integrity checks, keyrings and password
/// credentials (`SqliteStore` implements `CredentialStore`), and verifying blob
/// URLs in the gateway.
#[derive(Debug, Clone)]
pub struct Embedded {
    /// Every port, ready for `Caas::new`.
    pub backends: Backends,
    /// The database. It holds the data directory's lock: the directory stays
    /// locked until the last clone of it (including those inside `backends`) drops.
    pub sqlite: SqliteStore,
    /// The blob store.
    pub blobs: FsBlobStore,
    /// What [`open`] found readable by group or others and made private to the
    /// owner (the data directory, the database files, the blob directory), for the
    /// caller to log.
    pub tightened: Vec<PermissionChange>,
}

/// Opens (creating if needed) the embedded backends under `data_dir`, and locks
/// it. Fails if another [`Embedded`] (in any process) has it open.
pub fn open(data_dir: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Embedded> {
    let dir = data_dir.as_ref();
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        Error::unavailable("fs", format!("{what} {}", path.display()), false, e)
    };
    crate::private::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    // The lock comes before anything else is changed: a refused second process
    // leaves the directory as it found it.
    let lock = lock(dir)?;
    let mut tightened = Vec::new();
    tightened
        .extend(crate::private::restrict(dir).map_err(|e| fail("restrict access to", dir, e))?);
    let (sqlite, db_tightened) =
        SqliteStore::open_locked(&dir.join("caas.db"), config.sqlite, lock)?;
    tightened.extend(db_tightened);
    let (blobs, blobs_tightened) = open_blobs(dir, config.blobs)?;
    tightened.extend(blobs_tightened);
    let backends = Backends {
        blobs: Arc::new(blobs.clone()),
        ..sqlite.backends()
    };
    Ok(Embedded {
        backends,
        sqlite,
        blobs,
        tightened,
    })
}

/// Takes the data directory's exclusive lock (`flock` on Unix), which the kernel
/// releases when the process exits, however it exits.
fn lock(dir: &Path) -> Result<File> {
    let path = dir.join(LOCK_FILE);
    let file = crate::private::create_file(&path)
        .map_err(|e| Error::unavailable("fs", format!("create {}", path.display()), false, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(TryLockError::WouldBlock) => Err(Error::Unavailable {
            backend: "embedded",
            context: format!(
                "data dir {} is held by another caas process (lock file {LOCK_FILE})",
                dir.display()
            ),
            temporary: false,
            source: None,
        }),
        Err(TryLockError::Error(e)) => Err(Error::unavailable(
            "fs",
            format!("lock {}", path.display()),
            false,
            e,
        )),
    }
}

/// The blob store under `data_dir` (`blobs/`, and the URL secret `blob-url.key`),
/// as [`open`] makes it, for platforms whose other stores live elsewhere. The
/// data directory is not locked: files are written whole and renamed into place.
pub fn open_blobs(
    data_dir: impl AsRef<Path>,
    config: FsBlobConfig,
) -> Result<(FsBlobStore, Vec<PermissionChange>)> {
    let dir = data_dir.as_ref();
    let fail = |what: &str, path: &Path, e: std::io::Error| {
        Error::unavailable("fs", format!("{what} {}", path.display()), false, e)
    };
    crate::private::create_dir_all(dir).map_err(|e| fail("create", dir, e))?;
    let secret = url_secret(&dir.join("blob-url.key"))?;
    let blob_dir = dir.join("blobs");
    let tightened = crate::private::restrict(&blob_dir)
        .map_err(|e| fail("restrict access to", &blob_dir, e))?
        .into_iter()
        .collect();
    Ok((FsBlobStore::open(blob_dir, &secret, config)?, tightened))
}

/// [`open`], keeping only the ports.
pub fn backends(data_dir: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Backends> {
    open(data_dir, config).map(|e| e.backends)
}

/// The blob-URL secret: read, or made once and kept, so URLs handed out before a
/// restart still work after it.
fn url_secret(path: &PathBuf) -> Result<Vec<u8>> {
    let fail = |what: &str, e: std::io::Error| {
        Error::unavailable("fs", format!("{what} {}", path.display()), false, e)
    };
    match std::fs::read(path) {
        Ok(secret) if secret.len() >= 32 => return Ok(secret),
        Ok(_) => {
            return Err(Error::Unavailable {
                backend: "fs",
                context: format!("{} is shorter than 32 bytes", path.display()),
                temporary: false,
                source: None,
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(fail("read", e)),
    }
    let secret = crate::fs::random_secret()?;
    let tmp = path.with_extension("key.tmp");
    let mut f = crate::private::file_options()
        .write(true)
        .create(true)
        .truncate(true)
        .open(&tmp)
        .map_err(|e| fail("create", e))?;
    f.write_all(&secret)
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("install", e))?;
    Ok(secret.to_vec())
}
