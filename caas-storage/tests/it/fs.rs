//! The filesystem blob store: its contract, and what only a disk can get wrong.

use caas_core::ids::{BlobId, TenantId};
use caas_core::ports::{BlobStore, UrlMethod};
use caas_core::time::Timestamp;
use caas_storage::fs::{FsBlobConfig, FsBlobStore};

caas_core::contract_suites!(caas_core::ports::Backends {
    blobs: std::sync::Arc::new(FsBlobStore::open_temp().unwrap()),
    ..caas_storage::memory::backends()
}; blobs);

fn ids(t: &str, b: &str) -> (TenantId, BlobId) {
    (TenantId::parse(t).unwrap(), BlobId::parse(b).unwrap())
}

fn blob_files(root: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    let mut stack = vec![root.to_path_buf()];
    while let Some(dir) = stack.pop() {
        for e in std::fs::read_dir(&dir).unwrap().flatten() {
            let p = e.path();
            if p.is_dir() {
                stack.push(p);
            } else {
                out.push(p);
            }
        }
    }
    out
}

#[tokio::test]
async fn blobs_survive_reopen_and_stay_inside_the_root() {
    let dir = std::env::temp_dir().join(format!("caas-fs-{}", fastrand::u64(..)));
    let secret = [7u8; 32];
    // `..` and `:` are valid ids; they must never become path components.
    let (t, b) = ids("..", "..");
    {
        let s = FsBlobStore::open(&dir, &secret, FsBlobConfig::default()).unwrap();
        s.put(
            &t,
            &b,
            "text/plain",
            b"kept".to_vec(),
            Timestamp::from_secs(1),
        )
        .await
        .unwrap();
    }
    let s = FsBlobStore::open(&dir, &secret, FsBlobConfig::default()).unwrap();
    let (meta, bytes) = s.get(&t, &b).await.unwrap().unwrap();
    assert_eq!((meta.size, bytes.as_slice()), (4, &b"kept"[..]));
    let files = blob_files(&dir);
    assert_eq!(files.len(), 1, "{files:?}");
    assert!(files[0].starts_with(&dir));
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn corrupted_content_is_an_error_never_returned() {
    let s = FsBlobStore::open_temp().unwrap();
    let (t, b) = ids("t1", "b1");
    s.put(
        &t,
        &b,
        "image/png",
        vec![1, 2, 3, 4],
        Timestamp::from_secs(1),
    )
    .await
    .unwrap();
    let file = blob_files(s.root())
        .into_iter()
        .find(|p| !p.starts_with(s.root().join("tmp")))
        .unwrap();
    let mut raw = std::fs::read(&file).unwrap();
    let last = raw.len() - 1;
    raw[last] ^= 0xff;
    std::fs::write(&file, &raw).unwrap();
    let err = s.get(&t, &b).await.unwrap_err();
    assert!(matches!(err, caas_core::Error::Internal { .. }), "{err:?}");
    // Truncated too.
    std::fs::write(&file, &raw[..10]).unwrap();
    assert!(s.get(&t, &b).await.is_err());
}

#[tokio::test]
async fn oversized_blobs_are_refused_and_nothing_is_left_behind() {
    let dir = std::env::temp_dir().join(format!("caas-fs-{}", fastrand::u64(..)));
    let s = FsBlobStore::open(
        &dir,
        &[1u8; 32],
        FsBlobConfig {
            max_size: 8,
            ..FsBlobConfig::default()
        },
    )
    .unwrap();
    let (t, b) = ids("t", "b");
    let err = s
        .put(&t, &b, "a/b", vec![0; 9], Timestamp::EPOCH)
        .await
        .unwrap_err();
    assert!(
        matches!(err, caas_core::Error::PayloadTooLarge { limit: 8, .. }),
        "{err:?}"
    );
    s.put(&t, &b, "a/b", vec![0; 8], Timestamp::EPOCH)
        .await
        .unwrap();
    assert_eq!(
        blob_files(&dir.join("tmp")).len(),
        0,
        "no temporary file left"
    );
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn leftover_temporary_files_are_cleaned_at_open() {
    let dir = std::env::temp_dir().join(format!("caas-fs-{}", fastrand::u64(..)));
    std::fs::create_dir_all(dir.join("tmp")).unwrap();
    std::fs::write(dir.join("tmp").join("123-0.tmp"), b"half a blob").unwrap();
    let _s = FsBlobStore::open(&dir, &[1u8; 32], FsBlobConfig::default()).unwrap();
    assert!(blob_files(&dir.join("tmp")).is_empty());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test]
async fn signed_urls_grant_one_method_on_one_blob_until_expiry() {
    let s = FsBlobStore::open_temp().unwrap();
    let (t, b) = ids("t_1", "b_1");
    let get = s
        .presign(&t, &b, UrlMethod::Get, Timestamp::from_secs(2_000))
        .await
        .unwrap();
    let (path, query) = get.split_once('?').unwrap();
    assert_eq!(path, "/v1/blobs/t_1/b_1");
    let now = Timestamp::from_secs(1_000);
    assert_eq!(
        s.verify_url(UrlMethod::Get, path, query, now).unwrap(),
        (t.clone(), b.clone())
    );
    let refused = |r: caas_core::Result<(TenantId, BlobId)>| {
        assert!(
            matches!(r, Err(caas_core::Error::Unauthenticated { .. })),
            "{r:?}"
        )
    };
    refused(s.verify_url(UrlMethod::Put, path, query, now));
    refused(s.verify_url(UrlMethod::Get, path, query, Timestamp::from_secs(2_000)));
    refused(s.verify_url(UrlMethod::Get, "/v1/blobs/t_1/b_2", query, now));
    refused(s.verify_url(
        UrlMethod::Get,
        path,
        &query.replace("expires=2000", "expires=3000"),
        now,
    ));
    // Another store (another secret) does not accept it.
    let other = FsBlobStore::open_temp().unwrap();
    refused(other.verify_url(UrlMethod::Get, path, query, now));
}
