//! What the contracts do not cover: restarts, migrations, group commit, backup,
//! and the whole platform on the embedded backends.

use caas_core::ids::{ClientMsgId, ConversationId, MessageId, Seq, TenantId, UserId};
use caas_core::model::{NewMessage, TenantSettings};
use caas_core::ports::{BlobStore, HistoryPage, MessageStore, UrlMethod};
use caas_core::service::{NewConversation, SendMessage};
use caas_core::time::{Clock, SystemClock};
use caas_core::{Caas, Config, Principal};
use caas_storage::embedded::{self, EmbeddedConfig};
use caas_storage::sqlite::{SqliteConfig, SqliteStore};

fn temp_dir(name: &str) -> std::path::PathBuf {
    let d = std::env::temp_dir().join(format!("caas-{name}-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&d).unwrap();
    d
}

fn message(conv: &str, sender: &str, key: &str) -> NewMessage {
    let clock = SystemClock::new();
    NewMessage {
        tenant: TenantId::parse("t").unwrap(),
        conversation: ConversationId::parse(conv).unwrap(),
        id: MessageId::generate(clock.now()),
        sender: UserId::parse(sender).unwrap(),
        client_msg_id: ClientMsgId::parse(key).unwrap(),
        body: Some(format!("body of {key}")),
        ciphertext: None,
        attachments: vec![],
        reply_to: None,
        forwarded_from: None,
        mentions: vec![],
        created_at: clock.now(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_sends_share_commits() {
    let s = SqliteStore::open_temp().unwrap();
    let mut tasks = Vec::new();
    for i in 0..64 {
        let s = s.clone();
        tasks.push(tokio::spawn(async move {
            for j in 0..10 {
                let m = message(&format!("c{}", i % 8), &format!("u{i}"), &format!("k{j}"));
                MessageStore::append(&s, m, caas_core::testkit::messages::announce())
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
    let stats = s.writer_stats();
    assert_eq!(stats.commands, 640);
    assert!(
        stats.batches < stats.commands / 2,
        "group commit should put several sends in one transaction: {stats:?}"
    );
    assert!(stats.largest_batch > 1, "{stats:?}");
}

#[tokio::test]
async fn a_failing_command_does_not_fail_its_batch() {
    let s = SqliteStore::open_temp().unwrap();
    // A message id reused in the same conversation is refused by the unique index
    // (a conflict), while the sends around it, likely in the same batch, commit.
    let dup = message("c", "alice", "k1");
    let mut clash = message("c", "alice", "k2");
    clash.id = dup.id.clone();
    let ok = message("c", "bob", "k3");
    let (a, b, c) = tokio::join!(
        MessageStore::append(&s, dup, caas_core::testkit::messages::announce()),
        MessageStore::append(&s, clash, caas_core::testkit::messages::announce()),
        MessageStore::append(&s, ok, caas_core::testkit::messages::announce())
    );
    assert!(a.is_ok() && c.is_ok(), "{a:?} {c:?}");
    assert!(matches!(b, Err(caas_core::Error::Conflict { .. })), "{b:?}");
    let t = TenantId::parse("t").unwrap();
    let conv = ConversationId::parse("c").unwrap();
    let all = s
        .history(&t, &conv, HistoryPage::After(Seq(0)), 10)
        .await
        .unwrap();
    assert_eq!(
        all.iter().map(|m| m.seq.get()).collect::<Vec<_>>(),
        [1, 2],
        "the failed send used no seq"
    );
}

#[tokio::test]
async fn newer_schemas_and_foreign_files_are_refused() {
    let dir = temp_dir("schema");
    let db = dir.join("caas.db");
    drop(SqliteStore::open(&db, SqliteConfig::default()).unwrap());
    {
        let c = rusqlite::Connection::open(&db).unwrap();
        c.execute_batch("PRAGMA user_version = 99").unwrap();
    }
    let err = SqliteStore::open(&db, SqliteConfig::default()).unwrap_err();
    let text = err.to_string();
    assert!(text.contains("newer") && text.contains("99"), "{text}");
    assert!(matches!(
        err,
        caas_core::Error::Unavailable {
            temporary: false,
            ..
        }
    ));

    let other = dir.join("other.db");
    rusqlite::Connection::open(&other)
        .unwrap()
        .execute_batch("CREATE TABLE theirs (x)")
        .unwrap();
    assert!(SqliteStore::open(&other, SqliteConfig::default()).is_err());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn online_backup_is_a_consistent_openable_copy() {
    let dir = temp_dir("backup");
    let s = SqliteStore::open(dir.join("caas.db"), SqliteConfig::default()).unwrap();
    for k in 0..50 {
        MessageStore::append(
            &s,
            message("c", "alice", &format!("k{k}")),
            caas_core::testkit::messages::announce(),
        )
        .await
        .unwrap();
    }
    // Writes go on while the copy is taken.
    let writer = {
        let s = s.clone();
        tokio::spawn(async move {
            for k in 50..200 {
                MessageStore::append(
                    &s,
                    message("c", "alice", &format!("k{k}")),
                    caas_core::testkit::messages::announce(),
                )
                .await
                .unwrap();
            }
        })
    };
    let copy = dir.join("backup.db");
    s.backup(&copy).await.unwrap();
    writer.await.unwrap();
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&copy).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "the backup holds messages: {mode:o}");
    }
    assert!(matches!(
        s.backup(&copy).await,
        Err(caas_core::Error::Conflict { .. })
    ));

    let restored = SqliteStore::open(&copy, SqliteConfig::default()).unwrap();
    assert!(restored.integrity_check().await.unwrap().is_empty());
    let t = TenantId::parse("t").unwrap();
    let conv = ConversationId::parse("c").unwrap();
    let all = restored
        .history(&t, &conv, HistoryPage::After(Seq(0)), 1000)
        .await
        .unwrap();
    assert!(all.len() >= 50, "{}", all.len());
    let seqs: Vec<u64> = all.iter().map(|m| m.seq.get()).collect();
    assert_eq!(seqs, (1..=all.len() as u64).collect::<Vec<_>>());
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_platform_keeps_its_data_across_restarts() {
    let dir = temp_dir("embedded");
    let operator = Principal::operator();
    let (tenant, conv, url) = {
        let e = embedded::open(&dir, EmbeddedConfig::default()).unwrap();
        let caas = Caas::new(e.backends.clone(), Config::default());
        let tenant = caas
            .create_tenant(&operator, "acme", TenantSettings::default())
            .await
            .unwrap()
            .id;
        let server = Principal::tenant_server(tenant.clone());
        for u in ["alice", "bob"] {
            caas.upsert_user(&server, &UserId::parse(u).unwrap(), u, Default::default())
                .await
                .unwrap();
        }
        let alice = Principal::user(tenant.clone(), UserId::parse("alice").unwrap());
        let conv = caas
            .create_conversation(
                &alice,
                NewConversation {
                    kind: caas_core::model::ConversationKind::Group,
                    members: vec![UserId::parse("bob").unwrap()],
                    name: Some("Lunch club".into()),
                    attributes: Default::default(),
                },
            )
            .await
            .unwrap()
            .into_inner()
            .id;
        for (k, body) in [
            ("k1", "lunch at noon?"),
            ("k2", "sure"),
            ("k3", "noon it is"),
        ] {
            caas.send_message(
                &alice,
                &conv,
                SendMessage::text(ClientMsgId::parse(k).unwrap(), body),
            )
            .await
            .unwrap();
        }
        assert_eq!(caas.index_failures(), 0);
        let blob = caas_core::ids::BlobId::parse("b_1").unwrap();
        e.backends
            .blobs
            .put(
                &tenant,
                &blob,
                "text/plain",
                b"menu".to_vec(),
                SystemClock::new().now(),
            )
            .await
            .unwrap();
        let url = e
            .backends
            .blobs
            .presign(
                &tenant,
                &blob,
                UrlMethod::Get,
                caas_core::time::Timestamp::from_secs(u64::from(u32::MAX)),
            )
            .await
            .unwrap();
        (tenant, conv, url)
    };

    let e = embedded::open(&dir, EmbeddedConfig::default()).unwrap();
    let caas = Caas::new(e.backends.clone(), Config::default());
    let bob = Principal::user(tenant.clone(), UserId::parse("bob").unwrap());
    let history = caas
        .history(&bob, &conv, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert_eq!(
        history.iter().map(|m| m.seq.get()).collect::<Vec<_>>(),
        [1, 2, 3]
    );
    let hits = caas
        .search_messages(&bob, "noon", 10, None)
        .await
        .unwrap()
        .items;
    assert_eq!(hits.iter().map(|h| h.seq.get()).collect::<Vec<_>>(), [3, 1]);
    let sent = caas
        .send_message(
            &bob,
            &conv,
            SendMessage::text(ClientMsgId::parse("k9").unwrap(), "back"),
        )
        .await
        .unwrap();
    assert_eq!(sent.message.seq, Seq(4));
    // Blobs and their URLs survive too (the URL secret is kept in the data dir).
    let (path, query) = url.split_once('?').unwrap();
    let (t, b) = e
        .blobs
        .verify_url(UrlMethod::Get, path, query, SystemClock::new().now())
        .unwrap();
    let (_, bytes) = e.backends.blobs.get(&t, &b).await.unwrap().unwrap();
    assert_eq!(bytes, b"menu");
    drop((caas, e));
    let _ = std::fs::remove_dir_all(&dir);
}

fn mode(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .permissions()
        .mode()
        & 0o777
}

fn set_mode(path: &std::path::Path, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// Stores a tenant, a message and a blob: every file of the data dir exists after.
async fn write_some(e: &embedded::Embedded) {
    let caas = Caas::new(e.backends.clone(), Config::default());
    let tenant = caas
        .create_tenant(&Principal::operator(), "acme", TenantSettings::default())
        .await
        .unwrap()
        .id;
    let server = Principal::tenant_server(tenant.clone());
    for u in ["alice", "bob"] {
        caas.upsert_user(&server, &UserId::parse(u).unwrap(), u, Default::default())
            .await
            .unwrap();
    }
    let alice = Principal::user(tenant.clone(), UserId::parse("alice").unwrap());
    let conv = caas
        .create_conversation(
            &alice,
            NewConversation {
                kind: caas_core::model::ConversationKind::Direct,
                members: vec![UserId::parse("bob").unwrap()],
                name: None,
                attributes: Default::default(),
            },
        )
        .await
        .unwrap()
        .into_inner()
        .id;
    caas.send_message(
        &alice,
        &conv,
        SendMessage::text(ClientMsgId::parse("k1").unwrap(), "private"),
    )
    .await
    .unwrap();
    e.backends
        .blobs
        .put(
            &tenant,
            &caas_core::ids::BlobId::parse("b_1").unwrap(),
            "text/plain",
            b"private".to_vec(),
            SystemClock::new().now(),
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_data_dir_and_everything_in_it_are_private_to_the_owner() {
    let parent = temp_dir("private");
    let dir = parent.join("data");
    let e = embedded::open(&dir, EmbeddedConfig::default()).unwrap();
    write_some(&e).await;
    assert!(e.tightened.is_empty(), "{:?}", e.tightened);
    assert_eq!(mode(&dir), 0o700);
    assert_eq!(mode(&dir.join("blobs")), 0o700);
    // The WAL and shared-memory files exist while the store is open; SQLite gives
    // them the database file's mode.
    for file in [
        "caas.db",
        "caas.db-wal",
        "caas.db-shm",
        "caas.lock",
        "blob-url.key",
    ] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    let mut stack = vec![dir.join("blobs")];
    let mut blobs = 0;
    while let Some(d) = stack.pop() {
        for entry in std::fs::read_dir(&d).unwrap().flatten() {
            let p = entry.path();
            if p.is_dir() {
                assert_eq!(mode(&p), 0o700, "{}", p.display());
                stack.push(p);
            } else {
                assert_eq!(mode(&p), 0o600, "{}", p.display());
                blobs += 1;
            }
        }
    }
    assert_eq!(blobs, 1);
    drop(e);
    let _ = std::fs::remove_dir_all(&parent);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_readable_data_dir_of_an_earlier_version_is_made_private_and_reported() {
    let dir = temp_dir("tighten");
    // What an earlier version left: everything world-readable.
    drop(embedded::open(&dir, EmbeddedConfig::default()).unwrap());
    std::fs::write(dir.join("caas.db-wal"), b"").unwrap();
    for (path, m) in [
        (dir.clone(), 0o755),
        (dir.join("blobs"), 0o755),
        (dir.join("caas.db"), 0o644),
        (dir.join("caas.db-wal"), 0o644),
    ] {
        set_mode(&path, m);
    }
    let e = embedded::open(&dir, EmbeddedConfig::default()).unwrap();
    let mut reported: Vec<_> = e
        .tightened
        .iter()
        .map(|c| (c.path.clone(), c.before, c.after))
        .collect();
    reported.sort();
    let mut expected = vec![
        (dir.clone(), 0o755, 0o700),
        (dir.join("blobs"), 0o755, 0o700),
        (dir.join("caas.db"), 0o644, 0o600),
        (dir.join("caas.db-wal"), 0o644, 0o600),
    ];
    expected.sort();
    assert_eq!(reported, expected);
    write_some(&e).await;
    for file in ["caas.db", "caas.db-wal", "caas.db-shm"] {
        assert_eq!(mode(&dir.join(file)), 0o600, "{file}");
    }
    assert_eq!(mode(&dir), 0o700);
    drop(e);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_dir_is_open_in_one_store_at_a_time() {
    let dir = temp_dir("lock");
    let first = embedded::open(&dir, EmbeddedConfig::default()).unwrap();
    let second = embedded::open(&dir, EmbeddedConfig::default()).unwrap_err();
    let message = second.to_string();
    assert!(!message.contains('\n'), "one line: {message}");
    assert!(
        message.contains(&dir.display().to_string()) && message.contains("another caas process"),
        "names the data dir and why: {message}"
    );
    assert!(
        matches!(
            second,
            caas_core::Error::Unavailable {
                temporary: false,
                ..
            }
        ),
        "{second:?}"
    );

    // Another process is refused the same way.
    let exe = std::env::current_exe().unwrap();
    let out = std::process::Command::new(exe)
        .args([
            "sqlite::lock_child",
            "--exact",
            "--ignored",
            "--nocapture",
            "--test-threads=1",
        ])
        .env("CAAS_LOCK_CHILD_DIR", &dir)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("lock child: refused:") && stdout.contains("another caas process"),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // Any clone keeps the lock; the last one to drop releases it.
    let kept = first.sqlite.clone();
    drop(first);
    assert!(embedded::open(&dir, EmbeddedConfig::default()).is_err());
    drop(kept);
    let again = embedded::open(&dir, EmbeddedConfig::default()).unwrap();
    drop(again);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The other process of `a_data_dir_is_open_in_one_store_at_a_time`.
#[tokio::test]
#[ignore = "the child process of a_data_dir_is_open_in_one_store_at_a_time; runs only when it starts it"]
async fn lock_child() {
    let Ok(dir) = std::env::var("CAAS_LOCK_CHILD_DIR") else {
        return;
    };
    match embedded::open(&dir, EmbeddedConfig::default()) {
        Ok(_) => println!("lock child: opened"),
        Err(e) => println!("lock child: refused: {e}"),
    }
}

#[tokio::test]
async fn revocations_survive_a_restart() {
    use caas_core::ports::Revocations;
    use caas_core::testkit::t;
    let dir = temp_dir("revocations");
    let path = dir.join("caas.db");
    let tn = TenantId::parse("t").unwrap();
    {
        let s = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
        s.revoke(&tn, "rf_gone", t(0), t(60)).await.unwrap();
        s.revoke(&tn, "rf_old", t(0), t(5)).await.unwrap();
        // A later revocation forgets the ones that refuse nothing any more.
        s.revoke(&tn, "rf_later", t(10), t(70)).await.unwrap();
    }
    let s = SqliteStore::open(&path, SqliteConfig::default()).unwrap();
    assert!(s.is_revoked(&tn, "rf_gone", t(30)).await.unwrap());
    assert!(!s.is_revoked(&tn, "rf_gone", t(60)).await.unwrap());
    assert!(!s.is_revoked(&tn, "rf_old", t(0)).await.unwrap(), "swept");
    drop(s);
    std::fs::remove_dir_all(&dir).unwrap();
}
