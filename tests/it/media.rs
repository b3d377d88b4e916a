//! Media through the public service API, on every backend set: announce, put
//! the bytes to the signed URL, complete, download, attach, share, delete, and
//! the cleanup of uploads never completed.

use std::time::Duration;

use caas::core::ids::{BlobId, ConversationId};
use caas::core::model::{Attachment, MediaSettings, TenantSettings};
use caas::core::ports::HistoryPage;
use caas::core::service::{NewUpload, SendMessage, UploadTicket};
use caas::{Error, Principal};

use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden, key};

on_every_set!(async
    an_upload_is_put_completed_downloaded_and_deleted,
    completion_checks_the_bytes_against_the_announcement,
    attachments_name_uploads_the_sender_may_use,
    uploads_never_completed_expire,
    tenant_limits_on_type_size_and_rate,
);

/// SHA-256 of `hello`.
const HELLO_SHA: &str = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824";

fn upload(conv: &ConversationId, content_type: &str, size: u64) -> NewUpload {
    NewUpload {
        conversation_id: conv.clone(),
        content_type: content_type.into(),
        size,
        sha256: None,
        name: Some("note.txt".into()),
    }
}

/// The path and query of a URL the gateway would serve.
fn split(url: &str) -> (&str, &str) {
    assert!(url.starts_with("/v1/blobs/"), "{url}");
    url.split_once('?').unwrap()
}

async fn put(w: &World, t: &UploadTicket, content_type: &str, bytes: &[u8]) -> caas::Result<()> {
    let (path, query) = split(&t.upload_url);
    w.caas
        .put_by_url(path, query, Some(content_type), bytes.to_vec())
        .await
        .map(|_| ())
}

async fn download(w: &World, who: &Principal, id: &BlobId) -> caas::Result<Vec<u8>> {
    let url = w.caas.download_url(who, id).await?;
    let (path, query) = split(&url.url);
    w.caas.get_by_url(path, query).await.map(|(_, bytes)| bytes)
}

/// A completed upload of `hello` by `who` into `conv`.
async fn hello(w: &World, who: &str, conv: &ConversationId) -> BlobId {
    let t = w
        .caas
        .request_upload(&w.user(who), upload(conv, "text/plain", 5))
        .await
        .unwrap();
    put(w, &t, "text/plain", b"hello").await.unwrap();
    w.caas
        .complete_upload(&w.user(who), &t.media.id)
        .await
        .unwrap();
    t.media.id
}

fn attach(k: &str, blob: &BlobId) -> SendMessage {
    SendMessage {
        body: None,
        attachments: vec![Attachment {
            blob_id: blob.clone(),
            // The record's type and size win over what the sender says.
            content_type: "image/png".into(),
            size: 999,
            name: None,
        }],
        ..SendMessage::text(key(k), "")
    }
}

async fn an_upload_is_put_completed_downloaded_and_deleted(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let conv = w.group("alice", &["bob"]).await;
    let (alice, bob, carol) = (w.user("alice"), w.user("bob"), w.user("carol"));

    // Outsiders cannot upload into the conversation.
    forbidden(
        w.caas
            .request_upload(&carol, upload(&conv, "text/plain", 5))
            .await,
        "default-deny",
    );
    let t = w
        .caas
        .request_upload(&alice, upload(&conv, "text/plain", 5))
        .await
        .unwrap();
    assert!(!t.media.is_complete());
    assert_eq!(t.media.owner.as_str(), "alice");
    assert!(
        t.headers
            .contains(&("content-type".into(), "text/plain".into()))
    );

    // Not downloadable, not completable by another, not attachable while pending.
    assert!(matches!(
        w.caas.download_url(&alice, &t.media.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.caas.complete_upload(&alice, &t.media.id).await,
        Err(Error::InvalidArgument { .. })
    ));

    // The signed URL takes exactly the announced bytes and type.
    let (path, query) = split(&t.upload_url);
    let tampered = query.replace("signature=", "signature=A");
    assert!(matches!(
        w.caas
            .put_by_url(path, &tampered, Some("text/plain"), b"hello".to_vec())
            .await,
        Err(Error::Unauthenticated { .. })
    ));
    assert!(matches!(
        put(&w, &t, "text/html", b"hello").await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        put(&w, &t, "text/plain", b"hello!").await,
        Err(Error::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        put(&w, &t, "text/plain", b"hell").await,
        Err(Error::InvalidArgument { .. })
    ));
    put(&w, &t, "text/plain", b"hello").await.unwrap();

    assert!(matches!(
        w.caas.complete_upload(&bob, &t.media.id).await,
        Err(Error::NotFound { .. })
    ));
    let done = w.caas.complete_upload(&alice, &t.media.id).await.unwrap();
    assert_eq!(done.sha256.as_deref(), Some(HELLO_SHA));
    assert!(done.is_complete());
    // Completing again is harmless; the bytes are final.
    assert_eq!(
        w.caas.complete_upload(&alice, &t.media.id).await.unwrap(),
        done
    );
    assert!(matches!(
        put(&w, &t, "text/plain", b"HELLO").await,
        Err(Error::Conflict { .. })
    ));

    assert_eq!(download(&w, &alice, &t.media.id).await.unwrap(), b"hello");
    assert_eq!(download(&w, &bob, &t.media.id).await.unwrap(), b"hello");
    forbidden(
        w.caas.download_url(&carol, &t.media.id).await,
        "default-deny",
    );
    // A download URL is not an upload URL.
    let url = w.caas.download_url(&bob, &t.media.id).await.unwrap();
    let (path, query) = split(&url.url);
    assert!(matches!(
        w.caas
            .put_by_url(path, query, Some("text/plain"), b"HELLO".to_vec())
            .await,
        Err(Error::Unauthenticated { .. })
    ));

    forbidden(w.caas.delete_media(&bob, &t.media.id).await, "default-deny");
    w.caas.delete_media(&alice, &t.media.id).await.unwrap();
    // A URL handed out before the delete no longer serves anything.
    assert!(matches!(
        w.caas.get_by_url(path, query).await,
        Err(Error::NotFound { .. })
    ));
    assert!(matches!(
        w.caas.delete_media(&alice, &t.media.id).await,
        Err(Error::NotFound { .. })
    ));
    let audit = w.caas.audit_log(&w.server(), 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "media.delete" && r.target == t.media.id.as_str()),
        "{audit:?}"
    );
}

async fn completion_checks_the_bytes_against_the_announcement(set: Set) {
    let w = World::new(set, &["alice"]).await;
    let conv = w.group("alice", &[]).await;
    let alice = w.user("alice");
    let t = w
        .caas
        .request_upload(
            &alice,
            NewUpload {
                sha256: Some(HELLO_SHA.to_uppercase()),
                ..upload(&conv, "text/plain", 5)
            },
        )
        .await
        .unwrap();
    assert_eq!(t.media.sha256.as_deref(), Some(HELLO_SHA));
    put(&w, &t, "text/plain", b"world").await.unwrap();
    match w.caas.complete_upload(&alice, &t.media.id).await {
        Err(Error::InvalidArgument { field, .. }) => assert_eq!(field, "sha256"),
        other => panic!("expected a checksum mismatch, got {other:?}"),
    }
    // The wrong bytes are gone; the right ones can still come while the URL lasts.
    assert!(matches!(
        w.caas.complete_upload(&alice, &t.media.id).await,
        Err(Error::InvalidArgument { .. })
    ));
    put(&w, &t, "text/plain", b"hello").await.unwrap();
    let done = w.caas.complete_upload(&alice, &t.media.id).await.unwrap();
    assert_eq!(done.sha256.as_deref(), Some(HELLO_SHA));
}

async fn attachments_name_uploads_the_sender_may_use(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol", "dave"]).await;
    let first = w.group("alice", &["bob"]).await;
    let second = w.group("bob", &["dave"]).await;
    let elsewhere = w.group("carol", &["dave"]).await;
    let blob = hello(&w, "alice", &first).await;

    // Unknown and pending uploads are refused, and nothing is stored.
    let unknown = BlobId::parse("b_nope").unwrap();
    match w
        .caas
        .send_message(&w.user("alice"), &first, attach("k0", &unknown))
        .await
    {
        Err(Error::InvalidArgument { field, .. }) => {
            assert_eq!(field, "attachments[0].blob_id");
        }
        other => panic!("expected invalid_argument, got {other:?}"),
    }
    let pending = w
        .caas
        .request_upload(&w.user("alice"), upload(&first, "text/plain", 5))
        .await
        .unwrap();
    assert!(matches!(
        w.caas
            .send_message(&w.user("alice"), &first, attach("k1", &pending.media.id))
            .await,
        Err(Error::InvalidArgument { .. })
    ));

    let sent = w
        .caas
        .send_message(&w.user("alice"), &first, attach("k2", &blob))
        .await
        .unwrap();
    let a = &sent.message.attachments[0];
    assert_eq!((a.content_type.as_str(), a.size), ("text/plain", 5));
    assert_eq!(a.name.as_deref(), Some("note.txt"));

    // Dave is in neither conversation it lives in: no download.
    forbidden(
        w.caas.download_url(&w.user("dave"), &blob).await,
        "default-deny",
    );
    // Bob may use it (a participant of its conversation) and shares it into
    // the second conversation, whose members then download it.
    w.caas
        .send_message(&w.user("bob"), &second, attach("k3", &blob))
        .await
        .unwrap();
    assert_eq!(
        download(&w, &w.user("dave"), &blob).await.unwrap(),
        b"hello"
    );
    // Carol could never see it: she cannot attach it either.
    assert!(matches!(
        w.caas
            .send_message(&w.user("carol"), &elsewhere, attach("k4", &blob))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    // Forwarding shares it too.
    let fwd = w
        .caas
        .forward_message(
            &w.user("dave"),
            &second,
            &w.caas
                .history(&w.user("dave"), &second, HistoryPage::Latest, 10)
                .await
                .unwrap()[0]
                .id,
            &elsewhere,
            key("k5"),
        )
        .await
        .unwrap();
    assert_eq!(fwd.message.attachments[0].blob_id, blob);
    assert_eq!(
        download(&w, &w.user("carol"), &blob).await.unwrap(),
        b"hello"
    );
}

async fn uploads_never_completed_expire(set: Set) {
    let w = World::new(set, &["alice"]).await;
    let conv = w.group("alice", &[]).await;
    let alice = w.user("alice");
    let kept = hello(&w, "alice", &conv).await;
    let t = w
        .caas
        .request_upload(&alice, upload(&conv, "text/plain", 5))
        .await
        .unwrap();
    put(&w, &t, "text/plain", b"hello").await.unwrap();
    assert_eq!(w.caas.expire_uploads().await.unwrap(), 0);

    w.clock.advance(Duration::from_secs(15 * 60));
    // Past its deadline it can neither take bytes nor complete.
    assert!(matches!(
        put(&w, &t, "text/plain", b"hello").await,
        Err(Error::Unauthenticated { .. } | Error::NotFound { .. })
    ));
    assert!(matches!(
        w.caas.complete_upload(&alice, &t.media.id).await,
        Err(Error::NotFound { .. })
    ));
    assert!(w.caas.expire_uploads().await.unwrap() >= 1);
    assert!(
        w.caas
            .backends()
            .media
            .get(&w.tenant, &t.media.id)
            .await
            .unwrap()
            .is_none()
    );
    assert!(
        w.caas
            .backends()
            .blobs
            .head(&w.tenant, &t.media.id)
            .await
            .unwrap()
            .is_none()
    );
    // The completed one stays.
    assert_eq!(download(&w, &alice, &kept).await.unwrap(), b"hello");
}

async fn tenant_limits_on_type_size_and_rate(set: Set) {
    let w = World::with_settings(
        set,
        &["alice"],
        TenantSettings {
            media: MediaSettings {
                max_bytes: Some(1_000),
                content_types: vec!["image/*".into(), "text/plain".into()],
            },
            ..TenantSettings::default()
        },
    )
    .await;
    let conv = w.group("alice", &[]).await;
    let alice = w.user("alice");
    assert!(matches!(
        w.caas
            .request_upload(&alice, upload(&conv, "image/png", 1_001))
            .await,
        Err(Error::PayloadTooLarge { .. })
    ));
    assert!(matches!(
        w.caas
            .request_upload(&alice, upload(&conv, "application/pdf", 10))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    for bad in ["", "image", "image/png\u{0}", "ima ge/png"] {
        assert!(
            matches!(
                w.caas.request_upload(&alice, upload(&conv, bad, 10)).await,
                Err(Error::InvalidArgument { .. })
            ),
            "{bad:?}"
        );
    }
    assert!(matches!(
        w.caas
            .request_upload(&alice, upload(&conv, "image/png", 0))
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        w.caas
            .request_upload(
                &alice,
                NewUpload {
                    sha256: Some("abc".into()),
                    ..upload(&conv, "image/png", 10)
                }
            )
            .await,
        Err(Error::InvalidArgument { .. })
    ));
    // Ten uploads a minute (the refused ones above spent some).
    w.clock.advance(Duration::from_secs(60));
    for _ in 0..10 {
        w.caas
            .request_upload(&alice, upload(&conv, "image/png", 10))
            .await
            .unwrap();
    }
    match w
        .caas
        .request_upload(&alice, upload(&conv, "image/png", 10))
        .await
    {
        Err(Error::RateLimited { action, .. }) => assert_eq!(action, "media.upload"),
        other => panic!("expected rate_limited, got {other:?}"),
    }
}
