//! The single-node platform's backends in one call: everything durable in a data
//! directory, nothing to install.
//!
//! ```text
//! <data_dir>/caas.db (+ -wal, -shm)   every store port and search (SqliteStore)
//! <data_dir>/blobs/                    media (FsBlobStore)
//! <data_dir>/blob-url.key              the secret that signs blob URLs (0600)
//! ```
//!
//! The event bus is the in-process [`MemoryBus`]; presence and rate-limit state are
//! in memory too. They are state, not data: presence is rebuilt by the next
//! heartbeats, and forgetting rate-limit state on restart only forgives a little.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use caas_core::ports::Backends;
use caas_core::{Error, Result};

use crate::fs::{FsBlobConfig, FsBlobStore};
use crate::sqlite::{SqliteConfig, SqliteStore};

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
    /// The database.
    pub sqlite: SqliteStore,
    /// The blob store.
    pub blobs: FsBlobStore,
}

/// Opens (creating if needed) the embedded backends under `data_dir`.
pub fn open(data_dir: impl AsRef<Path>, config: EmbeddedConfig) -> Result<Embedded> {
    let dir = data_dir.as_ref();
    std::fs::create_dir_all(dir)
        .map_err(|e| Error::unavailable("fs", format!("create {}", dir.display()), false, e))?;
    let sqlite = SqliteStore::open(dir.join("caas.db"), config.sqlite)?;
    let secret = url_secret(&dir.join("blob-url.key"))?;
    let blobs = FsBlobStore::open(dir.join("blobs"), &secret, config.blobs)?;
    let backends = Backends {
        blobs: Arc::new(blobs.clone()),
        ..sqlite.backends()
    };
    Ok(Embedded {
        backends,
        sqlite,
        blobs,
    })
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
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut f = options.open(&tmp).map_err(|e| fail("create", e))?;
    f.write_all(&secret)
        .and_then(|()| f.sync_all())
        .map_err(|e| fail("write", e))?;
    std::fs::rename(&tmp, path).map_err(|e| fail("install", e))?;
    Ok(secret.to_vec())
}
