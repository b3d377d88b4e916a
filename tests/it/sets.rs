//! The backend sets the end-to-end tests run on, and the macro that runs a test on
//! each.
//!
//! To add a set: a variant of [`Set`], its arm in [`Set::open`], and its line in
//! [`on_every_set!`]. Every test in `pipeline.rs` and the property test then run on
//! it too.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use caas::core::ports::Backends;
use caas::core::time::ManualClock;
use caas::storage::embedded::{self, EmbeddedConfig};
use caas::storage::encrypted::{self, ManagedKeyrings};
use caas::storage::sqlite::{Durability, SqliteConfig};
use caas_crypto::KeyId;
use caas_crypto::keys::KeyEncryptionKey;

/// A set of backends, built as the library or the platform builds it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Set {
    /// Every port in memory (`caas::storage::memory`): what an embedding
    /// application gets by default.
    Memory,
    /// The platform's embedded default: SQLite for every store and search, files
    /// for blobs, memory for the bus, presence and rate limits, behind the metrics
    /// decorators (`platform::start` without encryption).
    Sqlite,
    /// [`Set::Sqlite`] with at-rest encryption of bodies under keyrings kept in the
    /// database (`platform::start` with `[encryption] enabled`): every tenant is
    /// sealed, and search runs on blind tokens.
    SqliteEncrypted,
}

/// Opened backends, and whatever must outlive them (a data directory).
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) backends: Backends,
    /// The data directory, removed on drop: declared after `backends`, so removed
    /// only once they are closed.
    pub(crate) dir: Option<TempDir>,
}

impl Set {
    /// Fresh, empty backends of this set on `clock`. Keep the result (or its `dir`)
    /// as long as the backends are used.
    pub(crate) fn open(self, clock: Arc<ManualClock>) -> Opened {
        match self {
            Set::Memory => Opened {
                backends: caas::storage::memory::backends_with_clock(clock),
                dir: None,
            },
            Set::Sqlite | Set::SqliteEncrypted => {
                let dir = TempDir::new("caas-e2e");
                let opened = embedded::open(
                    dir.path(),
                    EmbeddedConfig {
                        sqlite: SqliteConfig {
                            // The platform's default is `Full`; what an outage may
                            // take back is the subject of the crash tests, and an
                            // fsync per write would only make these slow.
                            durability: Durability::Normal,
                            ..SqliteConfig::default()
                        },
                        ..EmbeddedConfig::default()
                    },
                )
                .unwrap();
                let mut backends = Backends {
                    clock,
                    ..opened.backends
                };
                if self == Set::SqliteEncrypted {
                    let kek =
                        KeyEncryptionKey::from_bytes(KeyId::new("kek-test").unwrap(), &[7; 32])
                            .unwrap();
                    let keyrings = ManagedKeyrings::new(kek, Arc::new(opened.sqlite));
                    backends = encrypted::wrap(backends, Arc::new(keyrings));
                }
                Opened {
                    backends: caas::core::ports::metered::metered(backends),
                    dir: Some(dir),
                }
            }
        }
    }
}

/// Runs each named test on every [`Set`], in a module named for the set
/// (`memory::name`, `sqlite::name`, …). The test is a function of the same name
/// in the calling module taking the `Set`: `async` ones are listed after
/// `async`, and run as `#[tokio::test]`; the others run as `#[test]`.
macro_rules! on_every_set {
    ($($tests:tt)+) => {
        $crate::sets::on_set!(memory, Memory; $($tests)+);
        $crate::sets::on_set!(sqlite, Sqlite; $($tests)+);
        $crate::sets::on_set!(sqlite_encrypted, SqliteEncrypted; $($tests)+);
    };
}

/// One set's module of [`on_every_set!`].
macro_rules! on_set {
    ($module:ident, $set:ident; async $($test:ident),+ $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    super::$test($crate::sets::Set::$set).await
                }
            )+
        }
    };
    ($module:ident, $set:ident; $($test:ident),+ $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    super::$test($crate::sets::Set::$set)
                }
            )+
        }
    };
}

pub(crate) use {on_every_set, on_set};

/// A fresh directory under the system's temp dir, removed (recursively) on drop.
#[derive(Debug)]
pub(crate) struct TempDir(PathBuf);

impl TempDir {
    fn new(prefix: &str) -> Self {
        use std::sync::atomic::{AtomicU64, Ordering};
        static NEXT: AtomicU64 = AtomicU64::new(0);
        let path = std::env::temp_dir().join(format!(
            "{prefix}-{}-{}",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ));
        // A leftover of an earlier process with the same pid would not be empty.
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        Self(path)
    }

    fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
