//! GDPR erasure through the public service API, on every backend set: what
//! the user wrote leaves history, the event log, search and (on disk) the
//! files; seqs stay; the user can no longer act.

use caas::Error;
use caas::core::ids::Cursor;
use caas::core::ports::HistoryPage;
use caas::core::service::{ExportItem, NewUpload};

use caas::storage::sqlite::{SqliteConfig, SqliteStore};

use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden};

on_every_set!(async erasure_leaves_tombstones_and_no_trace_of_the_users_text,);

/// A word only the erased user wrote.
const SECRET: &str = "swordfishzebra";

async fn erasure_leaves_tombstones_and_no_trace_of_the_users_text(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol"]).await;
    let conv = w.group("alice", &["bob", "carol"]).await;
    let (alice, bob) = (w.user("alice"), w.user("bob"));
    let first = w
        .send("alice", &conv, "a1", &format!("the {SECRET} one"))
        .await
        .unwrap()
        .message;
    w.caas
        .edit_message(&alice, &conv, &first.id, &format!("the {SECRET} edited"))
        .await
        .unwrap();
    let second = w
        .send("alice", &conv, "a2", &format!("{SECRET} again"))
        .await
        .unwrap()
        .message;
    let theirs = w
        .send("bob", &conv, "b1", "bob's own words")
        .await
        .unwrap()
        .message;
    w.caas
        .react(&alice, &conv, &theirs.id, "👍", true)
        .await
        .unwrap();
    w.caas
        .react(&bob, &conv, &second.id, "🎉", true)
        .await
        .unwrap();
    let upload = w
        .caas
        .request_upload(
            &alice,
            NewUpload {
                conversation_id: conv.clone(),
                content_type: "text/plain".into(),
                size: 3,
                sha256: None,
                name: None,
            },
        )
        .await
        .unwrap();
    // A conversation she wrote in and left is reached too.
    let left = w.group("bob", &["alice"]).await;
    w.send("alice", &left, "l1", &format!("{SECRET} before leaving"))
        .await
        .unwrap();
    let alice_id = caas::core::ids::UserId::parse("alice").unwrap();
    w.caas
        .remove_member(&alice, &left, &alice_id)
        .await
        .unwrap();
    // Search finds it before.
    assert_eq!(
        w.caas
            .search_messages(&bob, SECRET, 10, None)
            .await
            .unwrap()
            .items
            .len(),
        3
    );

    forbidden(
        w.caas
            .erase_user(&bob, &caas::core::ids::UserId::parse("alice").unwrap())
            .await,
        "default-deny",
    );
    let done = w.caas.erase_user(&w.server(), &alice_id).await.unwrap();
    assert_eq!(
        (
            done.messages,
            done.reactions,
            done.memberships,
            done.uploads
        ),
        (3, 1, 1, 1),
        "{done:?}"
    );
    assert!(done.events_scrubbed >= 3, "{done:?}");
    // Her key is destroyed where bodies are sealed under per-user keys.
    assert_eq!(
        done.keys_destroyed,
        u64::from(set == Set::SqliteEncrypted),
        "{done:?}"
    );

    // Tombstones keep their seqs; bob's message keeps bob's words, not alice's reaction.
    let history = w
        .caas
        .history(&bob, &conv, HistoryPage::Latest, 50)
        .await
        .unwrap();
    let by_id = |id| history.iter().find(|m| &m.id == id).unwrap();
    for (id, seq) in [(&first.id, first.seq), (&second.id, second.seq)] {
        let m = by_id(id);
        assert!(
            m.is_deleted() && m.body.is_none() && m.edits.is_empty(),
            "{m:?}"
        );
        assert_eq!(m.seq, seq);
    }
    assert_eq!(by_id(&theirs.id).body.as_deref(), Some("bob's own words"));
    assert!(by_id(&theirs.id).reactions.is_empty());
    assert!(
        w.caas
            .search_messages(&bob, SECRET, 10, None)
            .await
            .unwrap()
            .items
            .is_empty()
    );
    // Nothing bob can sync carries the text.
    let synced = w.caas.sync(&bob, Cursor(0), 200).await.unwrap();
    let json = serde_json::to_string(&synced.events).unwrap();
    assert!(!json.contains(SECRET), "{json}");
    assert!(json.contains("bob's own words"));

    // The user can no longer act; the tenant's export holds only the tombstone.
    assert!(matches!(
        w.send("alice", &conv, "a3", "back").await,
        Err(Error::Unauthenticated { .. })
    ));
    assert!(matches!(
        w.caas.complete_upload(&alice, &upload.media.id).await,
        Err(Error::Unauthenticated { .. })
    ));
    let mut export = w.caas.export_user(&w.server(), &alice_id).await.unwrap();
    let mut items = Vec::new();
    while let Some(item) = export.next().await.unwrap() {
        items.push(item);
    }
    assert_eq!(items.len(), 1, "{items:?}");
    assert!(matches!(&items[0], ExportItem::User { user } if user.name == "erased user"));
    let audit = w.caas.audit_log(&w.server(), 0, 100).await.unwrap();
    assert!(
        audit
            .iter()
            .any(|r| r.action == "compliance.erase" && r.target == "user:alice")
    );

    // The host's user sync cannot bring her back.
    assert!(matches!(
        w.caas
            .upsert_user(&w.server(), &alice_id, "alice", Default::default())
            .await,
        Err(Error::Conflict { .. })
    ));
    // Repeating finds nothing left.
    let again = w.caas.erase_user(&w.server(), &alice_id).await.unwrap();
    assert_eq!(
        (
            again.messages,
            again.reactions,
            again.uploads,
            again.keys_destroyed
        ),
        (0, 0, 0, 0)
    );

    // On disk, no file of the store holds the text any more.
    if let Some(dir) = w.data_dir() {
        let mut found = Vec::new();
        for path in files_under(dir) {
            let bytes = std::fs::read(&path).unwrap_or_default();
            if let Some(at) = bytes
                .windows(SECRET.len())
                .position(|b| b == SECRET.as_bytes())
            {
                let around = &bytes[at.saturating_sub(120)..(at + 60).min(bytes.len())];
                found.push(format!(
                    "{} at {at}: {}",
                    path.display(),
                    String::from_utf8_lossy(around)
                ));
            }
        }
        assert!(found.is_empty(), "the erased text is still in {found:?}");
    }
}

/// Crypto-shredding: a backup of the database taken before the erasure still
/// holds the user's sealed bodies, and with the keys as they are after the
/// erasure none of them opens, while everyone else's still does.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_taken_before_an_erasure_no_longer_opens_the_users_bodies() {
    let w = World::new(Set::SqliteEncrypted, &["alice", "bob"]).await;
    let conv = w.group("alice", &["bob"]).await;
    let first = w
        .send("alice", &conv, "a1", &format!("the {SECRET} plan"))
        .await
        .unwrap()
        .message;
    w.caas
        .edit_message(&w.user("alice"), &conv, &first.id, &format!("{SECRET} v2"))
        .await
        .unwrap();
    let bobs = w
        .send("bob", &conv, "b1", "bob keeps his words")
        .await
        .unwrap()
        .message;
    let dir = w.data_dir().unwrap().to_path_buf();
    let backup = dir.join("before-erasure.db");
    w.sqlite.as_ref().unwrap().backup(&backup).await.unwrap();

    // The backup, read with the keys of the time: everything opens.
    let read_backup = |label: &'static str| {
        let (dir, backup, conv, tenant) =
            (dir.clone(), backup.clone(), conv.clone(), w.tenant.clone());
        async move {
            let copy = dir.join(format!("restore-{label}.db"));
            std::fs::copy(&backup, &copy).unwrap();
            let store = SqliteStore::open(&copy, SqliteConfig::default()).unwrap();
            let restored =
                caas::storage::encrypted::wrap(store.backends(), crate::sets::keyrings(&dir));
            let history = restored
                .messages
                .history(&tenant, &conv, HistoryPage::Latest, 10)
                .await
                .unwrap();
            let log = restored
                .events
                .read_tenant(&tenant, Cursor(0), 100)
                .await
                .unwrap();
            let raw = std::fs::read(&copy).unwrap();
            (
                history,
                serde_json::to_string(&log.iter().map(|l| &l.event).collect::<Vec<_>>()).unwrap(),
                raw,
            )
        }
    };
    let (history, log, raw) = read_backup("before").await;
    let body = |id| history.iter().find(|m| &m.id == id).unwrap().body.clone();
    assert_eq!(body(&first.id), Some(format!("{SECRET} v2")));
    assert!(log.contains(SECRET));
    assert!(
        !raw.windows(SECRET.len()).any(|b| b == SECRET.as_bytes()),
        "the backup holds only sealed bodies"
    );

    let alice = caas::core::ids::UserId::parse("alice").unwrap();
    let done = w.caas.erase_user(&w.server(), &alice).await.unwrap();
    assert_eq!(done.keys_destroyed, 1, "{done:?}");

    let (history, log, _) = read_backup("after").await;
    let m = history.iter().find(|m| m.id == first.id).unwrap();
    assert_eq!(
        (m.body.as_ref(), m.edits.len(), m.seq),
        (None, 0, first.seq)
    );
    assert!(
        !m.is_deleted(),
        "the backup's copy was never tombstoned: only the key is gone"
    );
    assert_eq!(
        history
            .iter()
            .find(|m| m.id == bobs.id)
            .unwrap()
            .body
            .as_deref(),
        Some("bob keeps his words")
    );
    assert!(!log.contains(SECRET), "{log}");
    assert!(log.contains("bob keeps his words"));
}

fn files_under(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir(dir).unwrap().flatten() {
        let path = entry.path();
        if path.is_dir() {
            out.extend(files_under(&path));
        } else {
            out.push(path);
        }
    }
    out
}
