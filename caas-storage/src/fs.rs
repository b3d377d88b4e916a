//! The [`BlobStore`] port on the local filesystem, with HMAC-signed URLs.
//!
//! **Layout.** One file per blob, id-addressed:
//! `<root>/<tenant hash>/<2 hex>/<blob hash>`, where the hashes are SHA-256 of the
//! ids. Ids may contain `.` and `:` (so `..` is a valid id), and may be 128 bytes
//! long, so they never become path components themselves; hashing makes every
//! path safe, fixed-length and evenly spread.
//!
//! **File format.** `caasblob` magic, a 4-byte big-endian header length, the JSON
//! [`BlobMeta`] (tenant, id, size, type, SHA-256, time), then the bytes. Metadata
//! and content live in one file so that replacing a blob replaces both at once.
//!
//! **Atomic and durable writes.** A put writes a temporary file in `<root>/tmp`,
//! fsyncs it, renames it over the target, and fsyncs the directories it touched:
//! a reader (or a crash) sees the old blob or the new one, never a mix. Leftover
//! temporary files of a crash are removed at open.
//!
//! **Private.** Directories the store creates are 0700 and blob files 0600: media
//! is for the members of a conversation, not for other accounts on the machine.
//!
//! **Checked reads.** A get recomputes the SHA-256 and checks size, tenant and id
//! against the header: content that no longer matches is an
//! [`caas_core::Error::Internal`], never returned.
//!
//! **Signed URLs.** [`BlobStore::presign`] returns a path-and-query,
//! `<url_prefix>/<tenant>/<blob>?expires=…&signature=…`, signed with
//! [`caas_crypto::signed_url::UrlSigner`] over the method, path and expiry. The
//! gateway serves it: [`BlobStore::verify_url`] checks a request and names the
//! blob it may read or write.
//!
//! File I/O runs on tokio's blocking pool (`spawn_blocking`), so a tokio runtime
//! must be running when the store is used.

use crate::sha256_hex;
use std::fs::{self, File};
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use caas_core::ids::{BlobId, TenantId};
use caas_core::model::BlobMeta;
use caas_core::ports::{BlobCapabilities, BlobStore, UrlMethod};
use caas_core::time::Timestamp;
use caas_core::{Error, Result};
use caas_crypto::signed_url::{self, UrlSigner};

use crate::temp::TempDir;

const MAGIC: &[u8; 8] = b"caasblob";
/// A header larger than this is corruption, not metadata.
const MAX_HEADER: usize = 64 * 1024;

/// How an [`FsBlobStore`] behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FsBlobConfig {
    /// The largest blob accepted, in bytes (default 16 MiB).
    pub max_size: usize,
    /// The path under which the gateway serves blob URLs (default `/v1/blobs`);
    /// must start with `/` and not end with one.
    pub url_prefix: String,
}

impl Default for FsBlobConfig {
    fn default() -> Self {
        Self {
            max_size: 16 * 1024 * 1024,
            url_prefix: "/v1/blobs".into(),
        }
    }
}

/// Blobs as files under one root directory. Cheap to clone.
#[derive(Clone)]
pub struct FsBlobStore {
    inner: Arc<Inner>,
}

struct Inner {
    root: PathBuf,
    config: FsBlobConfig,
    signer: UrlSigner,
    _temp: Option<TempDir>,
}

impl std::fmt::Debug for FsBlobStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FsBlobStore")
            .field("root", &self.inner.root)
            .field("config", &self.inner.config)
            .finish_non_exhaustive()
    }
}

fn io_err(context: &str) -> impl FnOnce(io::Error) -> Error + '_ {
    move |e| {
        // A full disk or quota is worth retrying later; the rest is the setup.
        let temporary = matches!(
            e.kind(),
            io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::Interrupted
        );
        Error::unavailable("fs", context, temporary, e)
    }
}

fn corrupt(id: &BlobId, why: &str) -> Error {
    Error::internal(format!("fs: blob `{id}` is corrupt: {why}"))
}

impl FsBlobStore {
    /// Opens (creating if needed) a store under `root`, signing URLs with
    /// `url_secret` (at least 32 bytes; keep it stable across restarts, or earlier
    /// URLs stop working).
    pub fn open(root: impl Into<PathBuf>, url_secret: &[u8], config: FsBlobConfig) -> Result<Self> {
        Self::open_inner(root.into(), url_secret, config, None)
    }

    /// A store in a new temporary directory (deleted when the last clone drops),
    /// with a random URL secret: for tests.
    pub fn open_temp() -> Result<Self> {
        let dir = TempDir::new("caas-blobs").map_err(io_err("create a temporary directory"))?;
        let secret = random_secret()?;
        Self::open_inner(
            dir.path().to_path_buf(),
            &secret,
            FsBlobConfig::default(),
            Some(dir),
        )
    }

    fn open_inner(
        root: PathBuf,
        secret: &[u8],
        config: FsBlobConfig,
        temp: Option<TempDir>,
    ) -> Result<Self> {
        if !config.url_prefix.starts_with('/') || config.url_prefix.ends_with('/') {
            return Err(Error::invalid(
                "url_prefix",
                "must start with / and not end with /",
            ));
        }
        let signer =
            UrlSigner::new(secret).map_err(|e| Error::invalid("url_secret", e.to_string()))?;
        let tmp = root.join("tmp");
        crate::private::create_dir_all(&tmp).map_err(io_err("create the blob directory"))?;
        // Temporary files left by a crash mid-put: never renamed, never visible.
        for entry in fs::read_dir(&tmp)
            .map_err(io_err("list temporary blobs"))?
            .flatten()
        {
            let _ = fs::remove_file(entry.path());
        }
        Ok(Self {
            inner: Arc::new(Inner {
                root,
                config,
                signer,
                _temp: temp,
            }),
        })
    }

    /// The root directory.
    pub fn root(&self) -> &Path {
        &self.inner.root
    }

    /// The URL path of a blob (without a signature): `<url_prefix>/<tenant>/<blob>`.
    pub fn url_path(&self, tenant: &TenantId, id: &BlobId) -> String {
        format!("{}/{tenant}/{id}", self.inner.config.url_prefix)
    }

    /// Where a blob's file lives.
    fn path_of(&self, tenant: &TenantId, id: &BlobId) -> PathBuf {
        let t = sha256_hex(tenant.as_str().as_bytes());
        let b = sha256_hex(id.as_str().as_bytes());
        self.inner.root.join(&t[..32]).join(&b[..2]).join(b)
    }

    fn temp_path(&self) -> PathBuf {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        self.inner.root.join("tmp").join(format!(
            "{}-{}.tmp",
            std::process::id(),
            NEXT.fetch_add(1, Ordering::Relaxed)
        ))
    }
}

fn url_method(m: UrlMethod) -> signed_url::UrlMethod {
    match m {
        UrlMethod::Get => signed_url::UrlMethod::Get,
        UrlMethod::Put => signed_url::UrlMethod::Put,
    }
}

/// 32 random bytes for a URL-signing secret.
pub(crate) fn random_secret() -> Result<[u8; 32]> {
    use ring::rand::SecureRandom;
    let mut secret = [0u8; 32];
    ring::rand::SystemRandom::new()
        .fill(&mut secret)
        .map_err(|_| Error::internal("fs: the system random generator failed"))?;
    Ok(secret)
}

/// Runs blocking file work off the async runtime's workers.
async fn blocking<T: Send + 'static>(f: impl FnOnce() -> Result<T> + Send + 'static) -> Result<T> {
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| Error::Internal {
            context: "fs: a blob operation panicked".into(),
            source: Some(Box::new(e)),
        })?
}

fn sync_dir(dir: &Path) -> Result<()> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("fsync a blob directory"))
}

fn write_atomically(tmp: &Path, target: &Path, header: &[u8], bytes: &[u8]) -> Result<()> {
    let write = || -> io::Result<()> {
        let mut f = crate::private::file_options()
            .write(true)
            .create_new(true)
            .open(tmp)?;
        f.write_all(MAGIC)?;
        f.write_all(&(header.len() as u32).to_be_bytes())?;
        f.write_all(header)?;
        f.write_all(bytes)?;
        f.sync_all()
    };
    if let Err(e) = write() {
        let _ = fs::remove_file(tmp);
        return Err(io_err("write a blob")(e));
    }
    let dir = target
        .parent()
        .ok_or_else(|| Error::internal("fs: blob path has no parent"))?;
    let created = !dir.exists();
    if let Err(e) = crate::private::create_dir_all(dir) {
        let _ = fs::remove_file(tmp);
        return Err(io_err("create a blob directory")(e));
    }
    if let Err(e) = fs::rename(tmp, target) {
        let _ = fs::remove_file(tmp);
        return Err(io_err("move a blob into place")(e));
    }
    // The rename is durable once the directory holding the new entry is synced;
    // directories created just now must reach their own parents too.
    sync_dir(dir)?;
    if created && let Some(tenant_dir) = dir.parent() {
        sync_dir(tenant_dir)?;
        if let Some(root) = tenant_dir.parent() {
            sync_dir(root)?;
        }
    }
    Ok(())
}

/// Reads and checks a blob file's header, leaving the file at the content.
fn read_header(file: &mut File, id: &BlobId) -> Result<BlobMeta> {
    let mut fixed = [0u8; 12];
    file.read_exact(&mut fixed)
        .map_err(|_| corrupt(id, "truncated header"))?;
    if &fixed[..8] != MAGIC {
        return Err(corrupt(id, "bad magic"));
    }
    let len = u32::from_be_bytes([fixed[8], fixed[9], fixed[10], fixed[11]]) as usize;
    if len > MAX_HEADER {
        return Err(corrupt(id, "header too large"));
    }
    let mut header = vec![0u8; len];
    file.read_exact(&mut header)
        .map_err(|_| corrupt(id, "truncated header"))?;
    serde_json::from_slice(&header).map_err(|_| corrupt(id, "unreadable header"))
}

fn open_existing(path: &Path) -> Result<Option<File>> {
    match File::open(path) {
        Ok(f) => Ok(Some(f)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("open a blob")(e)),
    }
}

fn check_owner(meta: &BlobMeta, tenant: &TenantId, id: &BlobId) -> Result<()> {
    if &meta.tenant != tenant || &meta.id != id {
        return Err(corrupt(id, "the file belongs to another blob"));
    }
    Ok(())
}

#[async_trait]
impl BlobStore for FsBlobStore {
    fn capabilities(&self) -> BlobCapabilities {
        BlobCapabilities {
            presigned_urls: true,
            durable: true,
        }
    }

    async fn put(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        content_type: &str,
        bytes: Vec<u8>,
        at: Timestamp,
    ) -> Result<BlobMeta> {
        let limit = self.inner.config.max_size;
        if bytes.len() > limit {
            return Err(Error::PayloadTooLarge {
                field: "blob".into(),
                size: bytes.len(),
                limit,
            });
        }
        let meta = BlobMeta {
            tenant: tenant.clone(),
            id: id.clone(),
            size: bytes.len() as u64,
            content_type: content_type.to_owned(),
            sha256: sha256_hex(&bytes),
            created_at: at,
        };
        let header = serde_json::to_vec(&meta).map_err(|e| Error::Internal {
            context: "fs: encode blob header".into(),
            source: Some(Box::new(e)),
        })?;
        let (tmp, target) = (self.temp_path(), self.path_of(tenant, id));
        blocking(move || write_atomically(&tmp, &target, &header, &bytes)).await?;
        Ok(meta)
    }

    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<(BlobMeta, Vec<u8>)>> {
        let (path, tenant, id) = (self.path_of(tenant, id), tenant.clone(), id.clone());
        blocking(move || {
            let Some(mut file) = open_existing(&path)? else {
                return Ok(None);
            };
            let meta = read_header(&mut file, &id)?;
            check_owner(&meta, &tenant, &id)?;
            let mut bytes = Vec::with_capacity(usize::try_from(meta.size).unwrap_or(0));
            file.read_to_end(&mut bytes)
                .map_err(io_err("read a blob"))?;
            if bytes.len() as u64 != meta.size {
                return Err(corrupt(&id, "size differs from its header"));
            }
            if sha256_hex(&bytes) != meta.sha256 {
                return Err(corrupt(&id, "content does not match its SHA-256"));
            }
            Ok(Some((meta, bytes)))
        })
        .await
    }

    async fn head(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<BlobMeta>> {
        let (path, tenant, id) = (self.path_of(tenant, id), tenant.clone(), id.clone());
        blocking(move || {
            let Some(mut file) = open_existing(&path)? else {
                return Ok(None);
            };
            let meta = read_header(&mut file, &id)?;
            check_owner(&meta, &tenant, &id)?;
            Ok(Some(meta))
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool> {
        let path = self.path_of(tenant, id);
        blocking(move || match fs::remove_file(&path) {
            Ok(()) => {
                if let Some(dir) = path.parent() {
                    sync_dir(dir)?;
                }
                Ok(true)
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_err("delete a blob")(e)),
        })
        .await
    }

    async fn presign(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        method: UrlMethod,
        expires_at: Timestamp,
    ) -> Result<String> {
        let expires = i64::try_from(expires_at.as_secs())
            .map_err(|_| Error::invalid("expires_at", "too far in the future"))?;
        self.inner
            .signer
            .sign(url_method(method), &self.url_path(tenant, id), expires)
            .map_err(|e| Error::Internal {
                context: "fs: sign a blob URL".into(),
                source: Some(Box::new(e)),
            })
    }

    /// Checks a request for a presigned URL: `path` and `query` as received (raw),
    /// `now` the current time. Returns the blob the URL grants `method` on.
    /// [`Error::Unauthenticated`] when the signature is wrong, the URL expired, or
    /// it was made for the other method; [`Error::NotFound`] for a path outside
    /// the blob prefix.
    fn verify_url(
        &self,
        method: UrlMethod,
        path: &str,
        query: &str,
        now: Timestamp,
    ) -> Result<(TenantId, BlobId)> {
        let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        self.inner
            .signer
            .verify(url_method(method), path, query, now)
            .map_err(|e| Error::Unauthenticated {
                reason: format!("blob URL refused: {e}"),
            })?;
        // Signed by us, so the path is one we made; parse it all the same.
        let rest = path
            .strip_prefix(self.inner.config.url_prefix.as_str())
            .and_then(|r| r.strip_prefix('/'))
            .ok_or_else(|| Error::not_found(caas_core::EntityKind::Blob, path))?;
        let (tenant, blob) = rest
            .split_once('/')
            .ok_or_else(|| Error::not_found(caas_core::EntityKind::Blob, path))?;
        Ok((TenantId::parse(tenant)?, BlobId::parse(blob)?))
    }
}
