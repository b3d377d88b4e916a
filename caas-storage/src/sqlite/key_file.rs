//! [`KeyFile`]: the keys of at-rest encryption in a SQLite file of their own,
//! apart from the data they protect.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use async_trait::async_trait;
use caas_core::ids::{TenantId, UserId};
use caas_core::{Error, Result};
use caas_crypto::KeyId;
use caas_crypto::keys::{KeyState, TenantKeyring, WrappedKey};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::codec::{from_json, to_json};
use super::error::{self, Ctx};
use crate::encrypted::KeyringStore;

/// The schema version this code writes.
const VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS keyrings (
    tenant TEXT NOT NULL PRIMARY KEY,
    doc    TEXT NOT NULL
) WITHOUT ROWID;
-- One data key per user and tenant; `wrapped` is NULL once destroyed (the id
-- stays, so what it sealed reads as destroyed, not as unknown).
CREATE TABLE IF NOT EXISTS user_keys (
    tenant       TEXT NOT NULL,
    key_id       TEXT NOT NULL,
    user         TEXT NOT NULL,
    wrapped      TEXT,
    destroyed_at INTEGER,
    PRIMARY KEY (tenant, key_id)
) WITHOUT ROWID;
CREATE UNIQUE INDEX IF NOT EXISTS user_keys_live
    ON user_keys (tenant, user) WHERE wrapped IS NOT NULL;
";

/// Tenants' keyrings and users' data keys, each wrapped under the
/// key-encryption key, in a SQLite file of their own (the embedded platform's
/// `keys.db`).
///
/// Apart from the data, because a backup of the data must not hold the keys:
/// then destroying a user's key (crypto-shredding) makes their bodies
/// unreadable in every backup of `caas.db` too. Back this file up on its own,
/// and keep those backups no longer than erasure may take, since an old copy
/// brings erased users' keys back. It runs with a rollback journal,
/// `synchronous = FULL` and `secure_delete`: a destroyed key's bytes are
/// overwritten in the file when the destruction commits (blocks the file system
/// freed before that are not scrubbed).
#[derive(Debug, Clone)]
pub struct KeyFile {
    conn: Arc<Mutex<Connection>>,
    path: Arc<PathBuf>,
}

impl KeyFile {
    /// Opens (creating, 0600) the key file at `path`. Returns the files whose
    /// group or other access it removed, for the caller to log.
    pub fn open(path: impl AsRef<Path>) -> Result<(Self, Vec<crate::PermissionChange>)> {
        let path = path.as_ref();
        let fail = |what: &str, p: &Path, e: std::io::Error| {
            Error::unavailable("sqlite", format!("{what} {}", p.display()), false, e)
        };
        crate::private::create_file(path).map_err(|e| fail("create", path, e))?;
        let mut tightened = Vec::new();
        for suffix in ["", "-journal"] {
            let mut name = path.as_os_str().to_owned();
            name.push(suffix);
            let file = PathBuf::from(name);
            tightened.extend(
                crate::private::restrict(&file)
                    .map_err(|e| fail("restrict access to", &file, e))?,
            );
        }
        let conn = Connection::open(path)
            .map_err(|e| error::map(&format!("open {}", path.display()), e))?;
        conn.busy_timeout(Duration::from_secs(5))
            .ctx("set busy timeout")?;
        let mode: String = conn
            .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
            .ctx("set the journal mode")?;
        if !mode.eq_ignore_ascii_case("delete") {
            return Err(Error::internal(format!(
                "the key file refused a rollback journal (it is in `{mode}` mode)"
            )));
        }
        conn.execute_batch("PRAGMA synchronous = FULL; PRAGMA secure_delete = ON;")
            .ctx("configure the key file")?;
        let version: i64 = conn
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .ctx("read the key file's version")?;
        if version > VERSION {
            return Err(Error::Unavailable {
                backend: "sqlite",
                context: format!(
                    "{} has key file version {version}, newer than this build's {VERSION}",
                    path.display()
                ),
                temporary: false,
                source: None,
            });
        }
        conn.execute_batch(&format!("{SCHEMA} PRAGMA user_version = {VERSION};"))
            .ctx("create the key file's tables")?;
        Ok((
            KeyFile {
                conn: Arc::new(Mutex::new(conn)),
                path: Arc::new(path.to_path_buf()),
            },
            tightened,
        ))
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Moves the keyrings an older version kept inside `store`'s database into
    /// this file (a keyring this file already has wins), then removes them from
    /// the database, so its backups stop holding them. Returns how many moved.
    pub async fn adopt_keyrings_of(&self, store: &SqliteStore) -> Result<usize> {
        let legacy = store.legacy_keyrings().await?;
        if legacy.is_empty() {
            return Ok(0);
        }
        for keyring in &legacy {
            let kept = self.create_keyring(keyring).await?;
            if kept != *keyring {
                // Both hold keys: dropping either could make bodies unreadable.
                return Err(Error::Unavailable {
                    backend: "encryption",
                    context: format!(
                        "tenant `{}` has one keyring in the database and another in {}; \
                         restore the key file that belongs with this database",
                        keyring.tenant(),
                        self.path.display()
                    ),
                    temporary: false,
                    source: None,
                });
            }
        }
        store.forget_legacy_keyrings().await?;
        Ok(legacy.len())
    }

    /// Runs `work` on the connection, off the async threads: a commit here
    /// waits for an fsync.
    async fn run<T, F>(&self, work: F) -> Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&mut Connection) -> Result<T> + Send + 'static,
    {
        let conn = self.conn.clone();
        tokio::task::spawn_blocking(move || {
            let mut conn = conn
                .lock()
                .map_err(|_| Error::internal("the key file's lock was poisoned by a panic"))?;
            work(&mut conn)
        })
        .await
        .map_err(|_| error::stopped("key file"))?
    }
}

fn wrapped_from(doc: &str) -> Result<WrappedKey> {
    from_json(doc, "wrapped key")
}

#[async_trait]
impl KeyringStore for KeyFile {
    async fn load_keyring(&self, tenant: &TenantId) -> Result<Option<TenantKeyring>> {
        let tenant = tenant.clone();
        self.run(move |c| {
            let doc: Option<String> = c
                .prepare_cached("SELECT doc FROM keyrings WHERE tenant = ?1")
                .and_then(|mut s| s.query_row([tenant.as_str()], |r| r.get(0)).optional())
                .ctx("load keyring")?;
            doc.map(|d| from_json(&d, "keyring")).transpose()
        })
        .await
    }

    async fn create_keyring(&self, keyring: &TenantKeyring) -> Result<TenantKeyring> {
        let tenant = keyring.tenant().to_owned();
        let doc = to_json(keyring, "keyring")?;
        let kept: String = self
            .run(move |c| {
                let tx = c.transaction().ctx("begin")?;
                tx.execute(
                    "INSERT INTO keyrings (tenant, doc) VALUES (?1, ?2)
                     ON CONFLICT (tenant) DO NOTHING",
                    params![tenant, doc],
                )
                .ctx("create keyring")?;
                let kept = tx
                    .query_row(
                        "SELECT doc FROM keyrings WHERE tenant = ?1",
                        [tenant.as_str()],
                        |r| r.get(0),
                    )
                    .ctx("read keyring")?;
                tx.commit().ctx("commit keyring")?;
                Ok(kept)
            })
            .await?;
        from_json(&kept, "keyring")
    }

    async fn save_keyring(&self, keyring: &TenantKeyring) -> Result<()> {
        let tenant = keyring.tenant().to_owned();
        let doc = to_json(keyring, "keyring")?;
        self.run(move |c| {
            c.execute(
                "INSERT INTO keyrings (tenant, doc) VALUES (?1, ?2)
                 ON CONFLICT (tenant) DO UPDATE SET doc = excluded.doc",
                params![tenant, doc],
            )
            .ctx("save keyring")?;
            Ok(())
        })
        .await
    }

    async fn user_key(&self, tenant: &TenantId, user: &UserId) -> Result<Option<WrappedKey>> {
        let (tenant, user) = (tenant.clone(), user.clone());
        let doc: Option<String> = self
            .run(move |c| {
                c.prepare_cached(
                    "SELECT wrapped FROM user_keys
                     WHERE tenant = ?1 AND user = ?2 AND wrapped IS NOT NULL",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), user.as_str()], |r| r.get(0))
                        .optional()
                })
                .ctx("read a user key")
            })
            .await?;
        doc.as_deref().map(wrapped_from).transpose()
    }

    async fn create_user_key(
        &self,
        tenant: &TenantId,
        user: &UserId,
        key: &WrappedKey,
    ) -> Result<WrappedKey> {
        let (tenant, user) = (tenant.clone(), user.clone());
        let (id, doc) = (key.key_id.as_str().to_owned(), to_json(key, "wrapped key")?);
        let kept: String = self
            .run(move |c| {
                let tx = c.transaction().ctx("begin")?;
                let live: Option<String> = tx
                    .query_row(
                        "SELECT wrapped FROM user_keys
                         WHERE tenant = ?1 AND user = ?2 AND wrapped IS NOT NULL",
                        params![tenant.as_str(), user.as_str()],
                        |r| r.get(0),
                    )
                    .optional()
                    .ctx("read a user key")?;
                if let Some(live) = live {
                    return Ok(live);
                }
                let erased_before: bool = tx
                    .query_row(
                        "SELECT EXISTS (SELECT 1 FROM user_keys WHERE tenant = ?1 AND user = ?2)",
                        params![tenant.as_str(), user.as_str()],
                        |r| r.get(0),
                    )
                    .ctx("read a user's keys")?;
                if erased_before {
                    return Err(crate::encrypted::erased(&user));
                }
                tx.execute(
                    "INSERT INTO user_keys (tenant, key_id, user, wrapped) VALUES (?1, ?2, ?3, ?4)",
                    params![tenant.as_str(), id, user.as_str(), doc],
                )
                .ctx("store a user key")?;
                tx.commit().ctx("commit a user key")?;
                Ok(doc)
            })
            .await?;
        wrapped_from(&kept)
    }

    async fn user_key_by_id(
        &self,
        tenant: &TenantId,
        key: &KeyId,
    ) -> Result<Option<(UserId, KeyState)>> {
        let (tenant, key) = (tenant.clone(), key.as_str().to_owned());
        let row: Option<(String, Option<String>, Option<i64>)> = self
            .run(move |c| {
                c.prepare_cached(
                    "SELECT user, wrapped, destroyed_at FROM user_keys
                     WHERE tenant = ?1 AND key_id = ?2",
                )
                .and_then(|mut s| {
                    s.query_row(params![tenant.as_str(), key], |r| {
                        Ok((r.get(0)?, r.get(1)?, r.get(2)?))
                    })
                    .optional()
                })
                .ctx("read a user key")
            })
            .await?;
        let Some((user, wrapped, destroyed_at)) = row else {
            return Ok(None);
        };
        let user = UserId::parse(&user)?;
        let state = match wrapped {
            Some(doc) => KeyState::Active {
                wrapped: wrapped_from(&doc)?,
            },
            None => KeyState::Destroyed {
                at: destroyed_at.unwrap_or(0),
            },
        };
        Ok(Some((user, state)))
    }

    async fn destroy_user_keys(&self, tenant: &TenantId, user: &UserId, at: i64) -> Result<u64> {
        let (tenant, user) = (tenant.clone(), user.clone());
        self.run(move |c| {
            let n = c
                .execute(
                    "UPDATE user_keys SET wrapped = NULL, destroyed_at = ?3
                     WHERE tenant = ?1 AND user = ?2 AND wrapped IS NOT NULL",
                    params![tenant.as_str(), user.as_str(), at],
                )
                .ctx("destroy user keys")?;
            Ok(n as u64)
        })
        .await
    }
}
