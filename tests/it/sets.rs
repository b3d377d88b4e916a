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
use caas::storage::fs::FsBlobStore;
use caas::storage::sqlite::{Durability, KeyFile, SqliteConfig, SqliteStore};
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
    /// [`Set::Sqlite`] with at-rest encryption of bodies under per-user keys kept
    /// in the key file beside the database (`platform::start` with `[encryption]
    /// enabled`): every tenant is sealed, and search runs on blind tokens.
    SqliteEncrypted,
    /// What each node of a scaled-out platform runs on: every store and search on
    /// PostgreSQL (`caas_adapters::postgres`, a fresh schema per test), presence,
    /// rate limits, the bus, revocations and the conversation read cache on Redis
    /// (`caas_adapters::redis`, a fresh key prefix per test), blobs on files. On
    /// the servers `CAAS_TEST_POSTGRES_URL` and `CAAS_TEST_REDIS_URL` name.
    PostgresRedis,
}

/// Opened backends, and whatever must outlive them (a data directory).
#[derive(Debug)]
pub(crate) struct Opened {
    pub(crate) backends: Backends,
    /// The SQLite store behind the embedded sets, for backups.
    pub(crate) sqlite: Option<SqliteStore>,
    /// The data directory, removed on drop: declared after `backends`, so removed
    /// only once they are closed.
    pub(crate) dir: Option<TempDir>,
}

impl Set {
    /// Fresh, empty backends of this set on `clock`. Keep the result (or its `dir`)
    /// as long as the backends are used.
    pub(crate) async fn open(self, clock: Arc<ManualClock>) -> Opened {
        match self {
            Set::PostgresRedis => {
                let Some(servers) = scaled_out::servers() else {
                    unreachable!("on_set! runs this set only when its servers are known")
                };
                Opened {
                    backends: scaled_out::open(servers, clock).await,
                    sqlite: None,
                    dir: None,
                }
            }
            // Blobs on files, as the platform keeps them beside any store:
            // the memory blob store mints no URLs.
            Set::Memory => Opened {
                backends: Backends {
                    blobs: Arc::new(FsBlobStore::open_temp().unwrap()),
                    ..caas::storage::memory::backends_with_clock(clock)
                },
                sqlite: None,
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
                    backends = encrypted::wrap(backends, keyrings(dir.path()));
                }
                Opened {
                    backends: caas::core::ports::metered::metered(backends),
                    sqlite: Some(opened.sqlite),
                    dir: Some(dir),
                }
            }
        }
    }
}

/// The keys of [`Set::SqliteEncrypted`] in `data_dir`, as the platform keeps
/// them: its key file under one fixed key-encryption key. Every call gives a
/// fresh instance (no cached keys) over the same file.
pub(crate) fn keyrings(data_dir: &Path) -> Arc<ManagedKeyrings> {
    let kek = KeyEncryptionKey::from_bytes(KeyId::new("kek-test").unwrap(), &[7; 32]).unwrap();
    let (file, _) = KeyFile::open(data_dir.join(embedded::KEY_FILE)).unwrap();
    Arc::new(ManagedKeyrings::new(kek, Arc::new(file)))
}

impl Set {
    /// Whether this set's servers are known; when they are not and none are
    /// required, says so once and the set's tests return at once.
    pub(crate) fn available(self) -> bool {
        self != Set::PostgresRedis || scaled_out::servers().is_some()
    }
}

/// The servers of [`Set::PostgresRedis`], and its backends on them.
mod scaled_out {
    use std::io::Write;
    use std::sync::{Arc, OnceLock};

    use caas::core::ports::Backends;
    use caas::core::time::ManualClock;
    use caas_adapters::postgres::{PostgresConfig, PostgresStore};
    use caas_adapters::redis::{Redis, RedisConfig};

    /// The two servers' URLs.
    #[derive(Debug)]
    pub(super) struct Servers {
        postgres: String,
        redis: String,
    }

    /// The servers, or `None` (said once, plainly) when there is no PostgreSQL
    /// and none is required; with `CAAS_REQUIRE_INTEGRATION=1` a missing server
    /// fails the test.
    pub(super) fn servers() -> Option<&'static Servers> {
        static SERVERS: OnceLock<Option<Servers>> = OnceLock::new();
        SERVERS
            .get_or_init(|| {
                let var = |name: &str| std::env::var(name).ok().filter(|v| !v.trim().is_empty());
                match var("CAAS_TEST_POSTGRES_URL") {
                    Some(postgres) => Some(Servers {
                        postgres,
                        redis: var("CAAS_TEST_REDIS_URL")
                            .unwrap_or_else(|| "redis://127.0.0.1:6379".into()),
                    }),
                    None => {
                        // Straight to the descriptor: libtest swallows a passing
                        // test's output.
                        let _ = writeln!(
                            std::io::stderr(),
                            "\nSKIPPED: the end-to-end suites on PostgreSQL + Redis did not run \
                             (CAAS_TEST_POSTGRES_URL is not set); `scripts/test` provisions both.\n"
                        );
                        None
                    }
                }
            })
            .as_ref()
            .or_else(|| {
                assert_ne!(
                    std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref(),
                    Ok("1"),
                    "CAAS_TEST_POSTGRES_URL is not set but CAAS_REQUIRE_INTEGRATION=1"
                );
                None
            })
    }

    /// Fresh backends: a schema and a key prefix no other test uses, so tests
    /// share the servers without seeing each other.
    pub(super) async fn open(servers: &Servers, clock: Arc<ManualClock>) -> Backends {
        let unique = format!("{}_{}", std::process::id(), fastrand::u64(..));
        let store = PostgresStore::connect(PostgresConfig {
            schema: Some(format!("caas_e2e_{unique}")),
            pool_size: 4,
            ..PostgresConfig::new(servers.postgres.clone())
        })
        .await
        .unwrap();
        let redis = Redis::new(RedisConfig {
            key_prefix: format!("caas-e2e-{unique}:"),
            ..RedisConfig::new(servers.redis.clone())
        })
        .unwrap();
        let backends = Backends {
            clock,
            blobs: Arc::new(caas::storage::fs::FsBlobStore::open_temp().unwrap()),
            ..redis.backends(store.backends())
        };
        caas::core::ports::metered::metered(backends)
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
        $crate::sets::on_set!(postgres_redis, PostgresRedis; $($tests)+);
    };
}

/// One set's module of [`on_every_set!`].
macro_rules! on_set {
    ($module:ident, $set:ident; async $($test:ident),+ $(,)?) => {
        mod $module {
            $(
                #[tokio::test]
                async fn $test() {
                    if $crate::sets::Set::$set.available() {
                        super::$test($crate::sets::Set::$set).await
                    }
                }
            )+
        }
    };
    ($module:ident, $set:ident; $($test:ident),+ $(,)?) => {
        mod $module {
            $(
                #[test]
                fn $test() {
                    if $crate::sets::Set::$set.available() {
                        super::$test($crate::sets::Set::$set)
                    }
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

    pub(crate) fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
