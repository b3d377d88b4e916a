//! Contract of [`BlobStore`](crate::ports::BlobStore).

use crate::ids::BlobId;
use crate::ports::Backends;
use crate::ports::UrlMethod;
use crate::testkit::{t, tenant};

fn blob() -> BlobId {
    BlobId::generate(t(0))
}

/// Put then get returns the bytes and metadata with a SHA-256; other tenants see nothing.
pub async fn put_get_head_delete(b: Backends) {
    let s = b.blobs;
    let tn = tenant();
    let id = blob();
    let meta = s
        .put(&tn, &id, "text/plain", b"hello".to_vec(), t(1))
        .await
        .unwrap();
    assert_eq!(meta.size, 5);
    assert_eq!(
        meta.sha256,
        "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"
    );
    assert_eq!(meta.content_type, "text/plain");
    let (m2, bytes) = s.get(&tn, &id).await.unwrap().unwrap();
    assert_eq!((m2, bytes), (meta.clone(), b"hello".to_vec()));
    assert_eq!(s.head(&tn, &id).await.unwrap(), Some(meta));
    assert_eq!(s.get(&tenant(), &id).await.unwrap(), None);
    assert!(s.delete(&tn, &id).await.unwrap());
    assert!(!s.delete(&tn, &id).await.unwrap());
    assert_eq!(s.get(&tn, &id).await.unwrap(), None);
}

/// A second put replaces the content.
pub async fn put_replaces(b: Backends) {
    let s = b.blobs;
    let tn = tenant();
    let id = blob();
    s.put(&tn, &id, "a/b", vec![1; 10], t(1)).await.unwrap();
    s.put(&tn, &id, "a/c", vec![2; 3], t(2)).await.unwrap();
    let (m, b) = s.get(&tn, &id).await.unwrap().unwrap();
    assert_eq!((m.size, m.content_type.as_str(), b), (3, "a/c", vec![2; 3]));
}

/// Presigned URLs where supported; a clear refusal where not.
pub async fn presign_by_capability(b: Backends) {
    let s = b.blobs;
    let tn = tenant();
    let id = blob();
    let r = s.presign(&tn, &id, UrlMethod::Get, t(100)).await;
    if s.capabilities().presigned_urls {
        let url = r.unwrap();
        assert!(!url.is_empty());
        let put = s.presign(&tn, &id, UrlMethod::Put, t(100)).await.unwrap();
        assert_ne!(url, put);
    } else {
        eprintln!(
            "skipped: presign_by_capability: backend has no presigned URLs; checking the refusal only"
        );
        assert!(
            matches!(
                r,
                Err(crate::Error::Unavailable {
                    temporary: false,
                    ..
                })
            ),
            "{r:?}"
        );
    }
}
