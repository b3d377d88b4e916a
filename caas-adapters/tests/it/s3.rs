//! The `s3` module against a real S3-compatible server (s3s-fs, which checks
//! SigV4): the blob contract suite, presigned URLs driven by a plain HTTP
//! client (reqwest, never the adapter's signer), multipart uploads, corruption
//! on disk, tenant isolation, and outages.
//!
//! The shared server is `CAAS_TEST_S3_URL` with `CAAS_TEST_S3_ACCESS_KEY` and
//! `CAAS_TEST_S3_SECRET_KEY`; each test process makes a bucket of its own.
//! Tests that spoil the data directory or stop the server run their own s3s-fs
//! (`CAAS_TEST_S3S_FS`, the binary) on a free port and a temporary directory.
//! Without these variables the tests say so and return; with
//! `CAAS_REQUIRE_INTEGRATION=1` they fail instead.

use std::io::Write;
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Once, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use caas_adapters::s3::{S3BlobStore, S3Config};
use caas_core::Error;
use caas_core::ids::{BlobId, TenantId};
use caas_core::ports::{Backends, BlobStore, UrlMethod};
use caas_core::testkit::{t, tenant};
use caas_core::time::Timestamp;

static SKIP_NOTICE: Once = Once::new();

fn required() -> bool {
    std::env::var("CAAS_REQUIRE_INTEGRATION").as_deref() == Ok("1")
}

fn skip(what: &str) {
    if required() {
        panic!("{what} but CAAS_REQUIRE_INTEGRATION=1 (scripts/test provisions s3s-fs)");
    }
    // Straight to the file descriptor: libtest would swallow a passing
    // test's `eprintln!`.
    let _ = writeln!(
        std::io::stderr(),
        "\nSKIPPED: {what}; the S3 tests that need it return at once and count as passed. \
         `scripts/test` provisions s3s-fs.\n"
    );
}

/// Endpoint and credentials of the shared server.
fn shared() -> Option<(String, String, String)> {
    let var = |k: &str| std::env::var(k).ok().filter(|v| !v.trim().is_empty());
    match (
        var("CAAS_TEST_S3_URL"),
        var("CAAS_TEST_S3_ACCESS_KEY"),
        var("CAAS_TEST_S3_SECRET_KEY"),
    ) {
        (Some(u), Some(a), Some(s)) => Some((u, a, s)),
        _ => {
            SKIP_NOTICE.call_once(|| skip("CAAS_TEST_S3_URL and its keys are not set"));
            None
        }
    }
}

/// This process's bucket on the shared server.
fn bucket() -> &'static str {
    static BUCKET: OnceLock<String> = OnceLock::new();
    BUCKET.get_or_init(|| format!("caas-it-{}-{:08x}", std::process::id(), fastrand::u32(..)))
}

async fn store_on(config: S3Config) -> S3BlobStore {
    let s = S3BlobStore::new(config).unwrap();
    s.create_bucket().await.unwrap();
    s
}

/// A store on the shared server, its configuration changed by `tweak`.
async fn store_with(tweak: impl FnOnce(&mut S3Config)) -> Option<S3BlobStore> {
    let (url, ak, sk) = shared()?;
    let mut c = S3Config::new(url, bucket(), ak, sk);
    tweak(&mut c);
    Some(store_on(c).await)
}

async fn store() -> Option<S3BlobStore> {
    store_with(|_| {}).await
}

caas_core::contract_suites!(
    match store().await {
        Some(s) => Backends {
            blobs: Arc::new(s),
            ..caas_storage::memory::backends()
        },
        None => return,
    };
    blobs);

fn blob() -> BlobId {
    BlobId::generate(t(0))
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

fn in_secs(s: u64) -> Timestamp {
    Timestamp::from_secs(now_secs() + s)
}

fn random_bytes(n: usize) -> Vec<u8> {
    let mut rng = fastrand::Rng::with_seed(n as u64);
    (0..n).map(|_| rng.u8(..)).collect()
}

fn sha256_hex(bytes: &[u8]) -> String {
    ring::digest::digest(&ring::digest::SHA256, bytes)
        .as_ref()
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// A plain HTTP client: nothing of the adapter's signing takes part.
fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

async fn http_get(url: &str) -> (u16, Vec<u8>) {
    let r = http().get(url).send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.bytes().await.unwrap().to_vec())
}

#[tokio::test]
async fn presigned_upload_binds_type_and_size_then_downloads() {
    let Some(s) = store().await else { return };
    let (tn, id) = (tenant(), blob());
    let body = random_bytes(70_000);
    let up = s
        .presign_upload(&tn, &id, "image/png", body.len() as u64, in_secs(300))
        .await
        .unwrap();
    assert!(up.url.contains("X-Amz-Signature="), "{}", up.url);
    assert!(
        up.url.contains("content-length%3Bcontent-type%3Bhost"),
        "{}",
        up.url
    );

    // Another content type than the one signed: refused, nothing stored.
    let wrong = http()
        .put(&up.url)
        .header("content-type", "text/html")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 403, "a different content type");
    // Another size than the one signed: refused.
    let short = http()
        .put(&up.url)
        .header("content-type", "image/png")
        .body(body[..100].to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(short.status().as_u16(), 403, "a different size");
    assert!(matches!(
        s.complete_upload(&tn, &id, "image/png", body.len() as u64, t(5))
            .await,
        Err(Error::NotFound { .. })
    ));

    let ok = http()
        .put(&up.url)
        .header("content-type", "image/png")
        .body(body.clone())
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status().as_u16(), 200);
    // Uploaded but not completed: not a blob yet.
    assert_eq!(s.head(&tn, &id).await.unwrap(), None);
    assert_eq!(s.get(&tn, &id).await.unwrap(), None);
    // Completing with a size other than the upload's is refused.
    assert!(matches!(
        s.complete_upload(&tn, &id, "image/png", 5, t(5)).await,
        Err(Error::InvalidArgument { .. })
    ));
    let meta = s
        .complete_upload(&tn, &id, "image/png", body.len() as u64, t(5))
        .await
        .unwrap();
    assert_eq!(meta.sha256, sha256_hex(&body));
    assert_eq!(
        (meta.size, meta.content_type.as_str()),
        (70_000, "image/png")
    );
    assert_eq!(s.head(&tn, &id).await.unwrap(), Some(meta.clone()));

    let get = s
        .presign(&tn, &id, UrlMethod::Get, in_secs(300))
        .await
        .unwrap();
    let (status, got) = http_get(&get).await;
    assert_eq!(status, 200);
    assert_eq!(sha256_hex(&got), meta.sha256);
    assert_eq!(s.get(&tn, &id).await.unwrap(), Some((meta, body)));
}

#[tokio::test]
async fn port_presigned_put_then_get() {
    let Some(s) = store().await else { return };
    let (tn, id) = (tenant(), blob());
    let put = s
        .presign(&tn, &id, UrlMethod::Put, in_secs(60))
        .await
        .unwrap();
    let r = http()
        .put(&put)
        .body(b"direct".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 200);
    let get = s
        .presign(&tn, &id, UrlMethod::Get, in_secs(60))
        .await
        .unwrap();
    assert_eq!(http_get(&get).await, (200, b"direct".to_vec()));
    // A GET URL does not allow a PUT, nor a PUT URL a GET.
    let r = http()
        .put(&get)
        .body(b"other".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);
    assert_eq!(http_get(&put).await.0, 403);
}

#[tokio::test]
async fn expired_urls_are_refused() {
    let Some(s) = store().await else { return };
    let (tn, id) = (tenant(), blob());
    s.put(&tn, &id, "text/plain", b"soon gone".to_vec(), t(1))
        .await
        .unwrap();
    // Asked to expire in the past: refused at once.
    let past = s.presign(&tn, &id, UrlMethod::Get, t(100)).await.unwrap();
    assert_eq!(http_get(&past).await.0, 403);
    let past_put = s.presign(&tn, &id, UrlMethod::Put, t(100)).await.unwrap();
    let r = http()
        .put(&past_put)
        .body(b"x".to_vec())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 403);

    let url = s
        .presign(&tn, &id, UrlMethod::Get, in_secs(2))
        .await
        .unwrap();
    assert_eq!(http_get(&url).await, (200, b"soon gone".to_vec()));
    tokio::time::sleep(Duration::from_millis(3_200)).await;
    assert_eq!(http_get(&url).await.0, 403, "an expired URL");
    // The content was never changed by the refused PUT.
    assert_eq!(s.get(&tn, &id).await.unwrap().unwrap().1, b"soon gone");
}

#[tokio::test]
async fn tampered_urls_are_refused() {
    let Some(s) = store().await else { return };
    let (tn, other_tn) = (tenant(), tenant());
    let (id, other) = (blob(), blob());
    s.put(&tn, &id, "text/plain", b"mine".to_vec(), t(1))
        .await
        .unwrap();
    s.put(&tn, &other, "text/plain", b"other".to_vec(), t(1))
        .await
        .unwrap();
    s.put(&other_tn, &id, "text/plain", b"theirs".to_vec(), t(1))
        .await
        .unwrap();
    let url = s
        .presign(&tn, &id, UrlMethod::Get, in_secs(300))
        .await
        .unwrap();
    assert_eq!(http_get(&url).await, (200, b"mine".to_vec()));

    let tampered = [
        ("another key", url.replacen(id.as_str(), other.as_str(), 1)),
        (
            "another tenant",
            url.replacen(
                &format!("/{}/", tn.as_str()),
                &format!("/{}/", other_tn.as_str()),
                1,
            ),
        ),
        ("a longer expiry", {
            let (head, tail) = url.split_once("X-Amz-Expires=").unwrap();
            let digits = tail.find('&').unwrap_or(tail.len());
            format!("{head}X-Amz-Expires=604800{}", &tail[digits..])
        }),
        ("another signature", {
            let (head, sig) = url.split_once("X-Amz-Signature=").unwrap();
            let first = if sig.starts_with('0') { "1" } else { "0" };
            format!("{head}X-Amz-Signature={first}{}", &sig[1..])
        }),
        (
            "no signature",
            url.split("&X-Amz-Signature=").next().unwrap().to_owned(),
        ),
    ];
    for (what, bad) in tampered {
        assert_ne!(bad, url, "{what}: the URL must actually change");
        let (status, body) = http_get(&bad).await;
        assert!(
            status == 403 || status == 400,
            "{what}: answered {status}: {}",
            String::from_utf8_lossy(&body)
        );
    }
}

#[tokio::test]
async fn multipart_round_trip_is_checked() {
    let Some(s) = store_with(|c| c.part_size = 5 * 1024 * 1024).await else {
        return;
    };
    let (tn, id) = (tenant(), blob());
    // Three parts, the last a short one.
    let body = random_bytes(11 * 1024 * 1024 + 123);
    let meta = s
        .put(&tn, &id, "video/mp4", body.clone(), t(3))
        .await
        .unwrap();
    assert_eq!(meta.sha256, sha256_hex(&body));
    assert_eq!(meta.size, body.len() as u64);
    assert_eq!(s.head(&tn, &id).await.unwrap(), Some(meta.clone()));
    let (m, got) = s.get(&tn, &id).await.unwrap().unwrap();
    assert_eq!(m, meta);
    assert!(
        got == body,
        "the multipart object differs from what was put"
    );
}

#[tokio::test]
async fn sizes_over_the_limit_are_refused() {
    let Some(s) = store_with(|c| c.max_blob_size = 1024).await else {
        return;
    };
    let (tn, id) = (tenant(), blob());
    assert!(matches!(
        s.put(&tn, &id, "a/b", vec![0; 1025], t(1)).await,
        Err(Error::PayloadTooLarge {
            size: 1025,
            limit: 1024,
            ..
        })
    ));
    assert!(matches!(
        s.presign_upload(&tn, &id, "a/b", 1025, in_secs(60)).await,
        Err(Error::PayloadTooLarge { .. })
    ));
    s.put(&tn, &id, "a/b", vec![0; 1024], t(1)).await.unwrap();
    assert!(matches!(
        s.put(&tn, &id, "bad\ntype", vec![0; 4], t(1)).await,
        Err(Error::InvalidArgument { .. })
    ));
}

#[tokio::test]
async fn tenant_prefixes_isolate() {
    let Some(s) = store_with(|c| c.key_prefix = "media/v1".into()).await else {
        return;
    };
    let (a, b) = (tenant(), tenant());
    let id = blob();
    s.put(&a, &id, "text/plain", b"a's".to_vec(), t(1))
        .await
        .unwrap();
    assert_eq!(
        s.key(&a, &id).unwrap(),
        format!("media/v1/{}/{}", a.as_str(), id.as_str())
    );
    assert_eq!(s.get(&b, &id).await.unwrap(), None);
    assert_eq!(s.head(&b, &id).await.unwrap(), None);
    assert!(!s.delete(&b, &id).await.unwrap());
    // An id that would step out of its tenant's prefix is refused.
    let dots = TenantId::parse("..").unwrap();
    assert!(matches!(
        s.put(&dots, &id, "text/plain", vec![1], t(1)).await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(
        s.presign(&dots, &id, UrlMethod::Get, in_secs(60))
            .await
            .is_err()
    );
    assert_eq!(s.get(&a, &id).await.unwrap().unwrap().1, b"a's");
    // Another prefix on the same bucket is another namespace.
    let other = store_with(|c| c.key_prefix = "media/v2".into())
        .await
        .unwrap();
    assert_eq!(other.get(&a, &id).await.unwrap(), None);
}

#[tokio::test]
async fn wrong_credentials_are_unavailable_not_temporary() {
    let Some((url, ak, _)) = shared() else { return };
    let s = S3BlobStore::new(S3Config::new(url, bucket(), ak, "not-the-secret")).unwrap();
    let r = s.get(&tenant(), &blob()).await;
    assert!(
        matches!(
            r,
            Err(Error::Unavailable {
                temporary: false,
                ..
            })
        ),
        "{r:?}"
    );
}

/// A server that accepts connections and never answers.
#[tokio::test]
async fn a_silent_server_times_out() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let s = S3BlobStore::new(S3Config {
        request_timeout: Duration::from_millis(500),
        ..S3Config::new(format!("http://127.0.0.1:{port}"), "b", "ak", "sk")
    })
    .unwrap();
    let start = Instant::now();
    let r = s.get(&tenant(), &blob()).await;
    assert!(
        matches!(
            r,
            Err(Error::Unavailable {
                temporary: true,
                ..
            })
        ),
        "{r:?}"
    );
    assert!(
        start.elapsed() < Duration::from_secs(3),
        "{:?}",
        start.elapsed()
    );
    drop(listener);
}

/// An s3s-fs of this test's own, on a free port and a temporary directory,
/// with fresh random keys.
struct OwnServer {
    bin: PathBuf,
    child: Option<Child>,
    dir: PathBuf,
    port: u16,
    access_key: String,
    secret_key: String,
}

impl OwnServer {
    fn start() -> Option<Self> {
        let Some(bin) = std::env::var_os("CAAS_TEST_S3S_FS").map(PathBuf::from) else {
            skip("CAAS_TEST_S3S_FS (the s3s-fs binary) is not set");
            return None;
        };
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let dir = std::env::temp_dir().join(format!(
            "caas-s3-own-{}-{:08x}",
            std::process::id(),
            fastrand::u32(..)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let key = || format!("{:016x}{:016x}", fastrand::u64(..), fastrand::u64(..));
        let mut s = Self {
            bin,
            child: None,
            dir,
            port,
            access_key: key(),
            secret_key: key(),
        };
        s.run();
        Some(s)
    }

    fn run(&mut self) {
        let child = Command::new(&self.bin)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args([
                "--access-key",
                &self.access_key,
                "--secret-key",
                &self.secret_key,
            ])
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    fn config(&self) -> S3Config {
        S3Config {
            connect_timeout: Duration::from_millis(500),
            request_timeout: Duration::from_secs(5),
            ..S3Config::new(
                format!("http://127.0.0.1:{}", self.port),
                "own",
                self.access_key.clone(),
                self.secret_key.clone(),
            )
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn corruption_on_disk_is_internal_never_returned() {
    let Some(server) = OwnServer::start() else {
        return;
    };
    let s = store_on(server.config()).await;
    let (tn, id) = (tenant(), blob());
    s.put(&tn, &id, "text/plain", b"original".to_vec(), t(1))
        .await
        .unwrap();
    let file = server.dir.join("own").join(s.key(&tn, &id).unwrap());
    assert_eq!(std::fs::read(&file).unwrap(), b"original", "{file:?}");

    // Same length, different bytes: only the checksum can tell.
    std::fs::write(&file, b"0riginal").unwrap();
    let r = s.get(&tn, &id).await;
    assert!(matches!(r, Err(Error::Internal { .. })), "{r:?}");
    // Another length.
    std::fs::write(&file, b"short").unwrap();
    let r = s.get(&tn, &id).await;
    assert!(matches!(r, Err(Error::Internal { .. })), "{r:?}");
    // A good copy put back reads again.
    std::fs::write(&file, b"original").unwrap();
    assert_eq!(s.get(&tn, &id).await.unwrap().unwrap().1, b"original");
}

#[tokio::test]
async fn a_stopped_server_is_unavailable_then_recovers() {
    let Some(mut server) = OwnServer::start() else {
        return;
    };
    let s = store_on(server.config()).await;
    let (tn, id) = (tenant(), blob());
    s.put(&tn, &id, "text/plain", b"kept".to_vec(), t(1))
        .await
        .unwrap();

    server.stop();
    let start = Instant::now();
    let got = s.get(&tn, &id).await;
    assert!(
        matches!(
            got,
            Err(Error::Unavailable {
                temporary: true,
                ..
            })
        ),
        "{got:?}"
    );
    let put = s.put(&tn, &blob(), "text/plain", b"x".to_vec(), t(2)).await;
    assert!(matches!(put, Err(Error::Unavailable { .. })), "{put:?}");
    let head = s.head(&tn, &id).await;
    assert!(matches!(head, Err(Error::Unavailable { .. })), "{head:?}");
    let del = s.delete(&tn, &id).await;
    assert!(matches!(del, Err(Error::Unavailable { .. })), "{del:?}");
    assert!(
        start.elapsed() < Duration::from_secs(5),
        "{:?}",
        start.elapsed()
    );

    server.run();
    // The same store, no restart: a connection the client still held from
    // before may fail one call, so allow a few seconds for recovery.
    let deadline = Instant::now() + Duration::from_secs(5);
    let back = loop {
        match s.get(&tn, &id).await {
            Ok(v) => break v,
            Err(e) if Instant::now() < deadline => {
                eprintln!("not back yet: {e}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("no recovery: {e:?}"),
        }
    };
    assert_eq!(back.unwrap().1, b"kept");
    s.put(&tn, &id, "text/plain", b"again".to_vec(), t(3))
        .await
        .unwrap();
    assert_eq!(s.get(&tn, &id).await.unwrap().unwrap().1, b"again");
}
