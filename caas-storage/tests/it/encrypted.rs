//! At-rest encryption of bodies: the decorator passes the message contract over
//! two backends, and nothing of a sealed body reaches the database file.

use std::sync::Arc;

use caas_core::events::{Event, EventPayload};
use caas_core::ids::Cursor;
use caas_core::ids::{ClientMsgId, ConversationId, MessageId, TenantId, UserId};
use caas_core::model::{Message, NewMessage};
use caas_core::ports::{Appended, EventLog, HistoryPage, MessageStore, SearchIndex};
use caas_core::ports::{Backends, Shredder};
use caas_core::testkit::messages::announce;
use caas_core::time::Timestamp;
use caas_crypto::KeyId;
use caas_crypto::blind::BlindIndex;
use caas_crypto::envelope::{AeadAlgorithm, DataKey};
use caas_crypto::keys::{KeyEncryptionKey, KeyScope, KeyState, TenantKeyring};
use caas_storage::SEALED_BODY_PREFIX;
use caas_storage::encrypted::{
    self, BodyKeys, EncryptedMessageStore, KeyringStore, ManagedKeyrings, MemoryKeyrings,
    TenantKeyrings,
};
use caas_storage::memory::MemoryMessageStore;
use caas_storage::sqlite::{KeyFile, SqliteStore};

/// One key for every tenant: the contract cases use random tenants.
#[derive(Debug)]
struct EveryTenant(Arc<DataKey>, Arc<BlindIndex>);

impl EveryTenant {
    fn new() -> Arc<Self> {
        let key = DataKey::generate(KeyId::new("dk_test").unwrap(), AeadAlgorithm::Aes256Gcm);
        let search = DataKey::generate(KeyId::new("dk_search").unwrap(), AeadAlgorithm::Aes256Gcm);
        Arc::new(Self(
            Arc::new(key.unwrap()),
            Arc::new(BlindIndex::from_data_key(&search.unwrap())),
        ))
    }
}

#[async_trait::async_trait]
impl BodyKeys for EveryTenant {
    async fn sealing_key(
        &self,
        _: &TenantId,
        _: &UserId,
    ) -> caas_core::Result<Option<Arc<DataKey>>> {
        Ok(Some(self.0.clone()))
    }

    async fn seals(&self, _: &TenantId) -> caas_core::Result<bool> {
        Ok(true)
    }

    async fn opening_key(
        &self,
        _: &TenantId,
        _: &KeyId,
    ) -> caas_core::Result<Option<Arc<DataKey>>> {
        Ok(Some(self.0.clone()))
    }

    async fn search_index(&self, _: &TenantId) -> caas_core::Result<Option<Arc<BlindIndex>>> {
        Ok(Some(self.1.clone()))
    }
}

#[async_trait::async_trait]
impl Shredder for EveryTenant {
    async fn shred_user(&self, _: &TenantId, _: &UserId) -> caas_core::Result<u64> {
        Ok(0)
    }
}

/// The decorators pass the contracts of the ports they wrap, over two backends.
mod contract_over_sqlite {
    use super::*;
    fn make() -> Backends {
        encrypted::wrap(
            SqliteStore::open_temp().unwrap().backends(),
            EveryTenant::new(),
        )
    }
    caas_core::contract_suites!(make(); messages, events, search);
}

mod contract_over_memory {
    use super::*;
    fn make() -> Backends {
        encrypted::wrap(caas_storage::memory::backends(), EveryTenant::new())
    }
    caas_core::contract_suites!(make(); messages, events, search);
}

fn message(tenant: &TenantId, key: &str, body: &str) -> NewMessage {
    NewMessage {
        tenant: tenant.clone(),
        conversation: ConversationId::parse("c1").unwrap(),
        id: MessageId::generate(Timestamp::from_secs(1_700_000_000)),
        sender: UserId::parse("alice").unwrap(),
        client_msg_id: ClientMsgId::parse(key).unwrap(),
        body: Some(body.into()),
        ciphertext: None,
        attachments: vec![],
        reply_to: None,
        forwarded_from: None,
        mentions: vec![],
        created_at: Timestamp::from_secs(1_700_000_000),
    }
}

/// A tenant keyring with one tenant-scope key, and its KEK.
fn keyring(tenant: &TenantId) -> (TenantKeyring, KeyEncryptionKey) {
    let kek = KeyEncryptionKey::generate(KeyId::new("kek-1").unwrap()).unwrap();
    let mut ring = TenantKeyring::new(tenant.as_str(), &kek);
    for scope in [KeyScope::Tenant, KeyScope::Search] {
        ring.create_data_key(&kek, scope, AeadAlgorithm::Aes256Gcm)
            .unwrap();
    }
    (ring, kek)
}

fn file_contains(store: &SqliteStore, needle: &str) -> bool {
    let mut bytes = std::fs::read(store.path()).unwrap();
    let wal = store.path().with_extension("db-wal");
    if let Ok(w) = std::fs::read(wal) {
        bytes.extend(w);
    }
    bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sealed_bodies_never_reach_the_file_in_clear_and_stay_searchable() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let keys = Arc::new(TenantKeyrings::new());
    let (ring, kek) = keyring(&tenant);
    keys.insert(&tenant, ring, kek).unwrap();
    let b = encrypted::wrap(sqlite.backends(), keys.clone());

    // What the service does for a send: append (the event is logged in the same
    // write), then index the plaintext it got back.
    let sent = b
        .messages
        .append(
            message(&tenant, "k1", "zanzibar rendezvous at dawn"),
            caas_core::testkit::messages::announce_to(&["alice"]),
        )
        .await
        .unwrap();
    let Appended::Created {
        message: m, event, ..
    } = sent
    else {
        panic!("created")
    };
    assert_eq!(m.body.as_deref(), Some("zanzibar rendezvous at dawn"));
    assert!(
        matches!(&event.payload, EventPayload::MessageCreated { message } if message == &m),
        "the published event is in clear"
    );
    b.search.index_message(&m).await.unwrap();
    // And for an edit: change, log its event, index.
    let edited = b
        .messages
        .edit(
            &tenant,
            &m.conversation,
            &m.id,
            "quixotic change of plan",
            Timestamp::from_secs(1_700_000_100),
        )
        .await
        .unwrap();
    assert_eq!(edited.edits[0].body, "zanzibar rendezvous at dawn");
    let mut in_event = edited.clone();
    in_event.edits.clear();
    b.events
        .append(Arc::new(Event {
            payload: EventPayload::MessageEdited { message: in_event },
            ..(*event).clone()
        }))
        .await
        .unwrap();
    b.search.index_message(&edited).await.unwrap();

    // The inner store holds envelopes only, in the messages and in the log.
    let raw: Message = MessageStore::get(&sqlite, &tenant, &m.conversation, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert!(raw.body.as_deref().unwrap().starts_with(SEALED_BODY_PREFIX));
    assert!(raw.edits[0].body.starts_with(SEALED_BODY_PREFIX));
    for logged in EventLog::read(
        &sqlite,
        &tenant,
        &UserId::parse("alice").unwrap(),
        Cursor(0),
        10,
    )
    .await
    .unwrap()
    {
        match &logged.event.payload {
            EventPayload::MessageCreated { message } | EventPayload::MessageEdited { message } => {
                assert!(
                    message
                        .body
                        .as_deref()
                        .unwrap()
                        .starts_with(SEALED_BODY_PREFIX)
                );
            }
            other => panic!("{other:?}"),
        }
    }
    for word in ["zanzibar", "rendezvous", "quixotic"] {
        assert!(
            !file_contains(&sqlite, word),
            "`{word}` is in the database file"
        );
        let hits = sqlite
            .search_messages(
                &tenant,
                word,
                std::slice::from_ref(&m.conversation),
                None,
                10,
            )
            .await
            .unwrap();
        assert!(hits.is_empty(), "`{word}` is searchable without the key");
    }
    // Through the decorator, search finds the current body by whole words and
    // prefixes, and no longer the old one.
    let within = std::slice::from_ref(&m.conversation);
    for (q, found) in [
        ("quixotic", true),
        ("quix", true),
        ("PLAN", true),
        ("zanzibar", false),
    ] {
        let hits = b
            .search
            .search_messages(&tenant, q, within, None, 10)
            .await
            .unwrap();
        assert_eq!(hits.len(), usize::from(found), "{q}");
    }
    // And everything reads back in clear through the decorators.
    let page = b
        .messages
        .history(&tenant, &m.conversation, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert_eq!(page, vec![edited.clone()]);
    let log = b
        .events
        .read(&tenant, &UserId::parse("alice").unwrap(), Cursor(0), 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 2);
    assert!(
        matches!(&log[1].event.payload, EventPayload::MessageEdited { message } if message.body == edited.body)
    );
}

#[tokio::test]
async fn tenants_without_keys_stay_in_clear() {
    let keys = Arc::new(TenantKeyrings::new());
    let inner = Arc::new(MemoryMessageStore::default());
    let store = EncryptedMessageStore::new(inner.clone(), keys);
    let tenant = TenantId::parse("plain").unwrap();
    let m = store
        .append(message(&tenant, "k1", "hello"), announce())
        .await
        .unwrap()
        .message()
        .clone();
    let raw = inner
        .get(&tenant, &m.conversation, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(raw.body.as_deref(), Some("hello"));
    let forged = format!("{SEALED_BODY_PREFIX}AAAA");
    let err = store
        .append(message(&tenant, "k2", &forged), announce())
        .await
        .unwrap_err();
    assert!(
        matches!(err, caas_core::Error::InvalidArgument { .. }),
        "{err:?}"
    );
}

#[tokio::test]
async fn destroyed_keys_shred_the_bodies_they_sealed() {
    let tenant = TenantId::parse("acme").unwrap();
    // The host keeps its KEK outside the database; here, as fixed bytes.
    let kek = || KeyEncryptionKey::from_bytes(KeyId::new("kek-1").unwrap(), &[9u8; 32]).unwrap();
    let mut ring = TenantKeyring::new(tenant.as_str(), &kek());
    let first = ring
        .create_data_key(&kek(), KeyScope::Tenant, AeadAlgorithm::Aes256Gcm)
        .unwrap();
    let keys = Arc::new(TenantKeyrings::new());
    keys.insert(&tenant, ring.clone(), kek()).unwrap();
    let store = EncryptedMessageStore::new(Arc::new(MemoryMessageStore::default()), keys.clone());
    let old = store
        .append(message(&tenant, "k1", "before the erasure"), announce())
        .await
        .unwrap()
        .message()
        .clone();

    ring.destroy(&first, 1_700_000_000).unwrap();
    ring.create_data_key(&kek(), KeyScope::Tenant, AeadAlgorithm::Aes256Gcm)
        .unwrap();
    keys.insert(&tenant, ring.clone(), kek()).unwrap();
    let new = store
        .append(message(&tenant, "k2", "after the erasure"), announce())
        .await
        .unwrap()
        .message()
        .clone();

    let gone = store
        .get(&tenant, &old.conversation, &old.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!((gone.body, gone.seq), (None, old.seq), "shredded, seq kept");
    let kept = store
        .get(&tenant, &new.conversation, &new.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(kept.body.as_deref(), Some("after the erasure"));

    // With every key destroyed the tenant's messages cannot be stored at all.
    ring.destroy_all(1_700_000_001);
    keys.insert(&tenant, ring, kek()).unwrap();
    let err = store
        .append(message(&tenant, "k3", "x"), announce())
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            caas_core::Error::Unavailable {
                temporary: false,
                ..
            }
        ),
        "{err:?}"
    );
}

/// What every [`KeyringStore`] does, run on both.
async fn keyring_store_contract(store: &dyn KeyringStore) {
    let tenant = TenantId::parse(&format!("t{}", fastrand::u32(..))).unwrap();
    assert!(store.load_keyring(&tenant).await.unwrap().is_none());
    let (ring, kek) = keyring(&tenant);
    store.save_keyring(&ring).await.unwrap();
    assert_eq!(
        store.load_keyring(&tenant).await.unwrap(),
        Some(ring.clone())
    );
    // Creating keeps the first keyring: a racing creator gets that one back.
    let mut other = TenantKeyring::new(tenant.as_str(), &kek);
    other
        .create_data_key(&kek, KeyScope::Tenant, AeadAlgorithm::Aes256Gcm)
        .unwrap();
    assert_eq!(store.create_keyring(&other).await.unwrap(), ring);

    let (alice, bob) = (
        UserId::parse("alice").unwrap(),
        UserId::parse("bob").unwrap(),
    );
    let wrapped = |id: &str| {
        let key = DataKey::generate(KeyId::new(id).unwrap(), AeadAlgorithm::Aes256Gcm).unwrap();
        kek.wrap(tenant.as_str(), &key).unwrap()
    };
    let (a1, a2, b1) = (wrapped("dk_a1"), wrapped("dk_a2"), wrapped("dk_b1"));
    assert!(store.user_key(&tenant, &alice).await.unwrap().is_none());
    assert_eq!(
        store.create_user_key(&tenant, &alice, &a1).await.unwrap(),
        a1
    );
    // One live key per user: a racing creator gets the kept one.
    assert_eq!(
        store.create_user_key(&tenant, &alice, &a2).await.unwrap(),
        a1
    );
    assert_eq!(store.create_user_key(&tenant, &bob, &b1).await.unwrap(), b1);
    assert_eq!(
        store.user_key(&tenant, &alice).await.unwrap(),
        Some(a1.clone())
    );
    assert_eq!(
        store.user_key_by_id(&tenant, &a1.key_id).await.unwrap(),
        Some((
            alice.clone(),
            KeyState::Active {
                wrapped: a1.clone()
            }
        ))
    );
    assert!(
        store
            .user_key_by_id(&tenant, &a2.key_id)
            .await
            .unwrap()
            .is_none()
    );
    let elsewhere = TenantId::parse("elsewhere").unwrap();
    assert!(
        store
            .user_key_by_id(&elsewhere, &a1.key_id)
            .await
            .unwrap()
            .is_none()
    );
    assert_eq!(
        store
            .destroy_user_keys(&elsewhere, &alice, 5)
            .await
            .unwrap(),
        0
    );

    assert_eq!(
        store.destroy_user_keys(&tenant, &alice, 5).await.unwrap(),
        1
    );
    assert_eq!(
        store.destroy_user_keys(&tenant, &alice, 6).await.unwrap(),
        0
    );
    assert!(store.user_key(&tenant, &alice).await.unwrap().is_none());
    assert_eq!(
        store.user_key_by_id(&tenant, &a1.key_id).await.unwrap(),
        Some((alice.clone(), KeyState::Destroyed { at: 5 }))
    );
    assert_eq!(store.user_key(&tenant, &bob).await.unwrap(), Some(b1));
    // An erased user gets no new key: what a racing send would seal could
    // otherwise outlive the erasure.
    let refused = store.create_user_key(&tenant, &alice, &a2).await;
    assert!(
        matches!(refused, Err(caas_core::Error::Conflict { .. })),
        "{refused:?}"
    );
    assert!(store.user_key(&tenant, &alice).await.unwrap().is_none());
}

#[tokio::test]
async fn memory_keyrings_keep_the_store_contract() {
    keyring_store_contract(&MemoryKeyrings::default()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_key_file_keeps_the_store_contract_and_forgets_destroyed_keys() {
    let dir = std::env::temp_dir().join(format!("caas-keys-{}", fastrand::u64(..)));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("keys.db");
    let (file, _) = KeyFile::open(&path).unwrap();
    keyring_store_contract(&file).await;

    let tenant = TenantId::parse("acme").unwrap();
    let alice = UserId::parse("alice").unwrap();
    let (ring, kek) = keyring(&tenant);
    file.save_keyring(&ring).await.unwrap();
    let key = DataKey::generate(KeyId::new("dk_gone").unwrap(), AeadAlgorithm::Aes256Gcm).unwrap();
    let wrapped = kek.wrap(tenant.as_str(), &key).unwrap();
    file.create_user_key(&tenant, &alice, &wrapped)
        .await
        .unwrap();
    let needle = {
        use base64::Engine;
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(&wrapped.wrapped)
    };
    let in_file = || {
        let bytes = std::fs::read(&path).unwrap();
        bytes.windows(needle.len()).any(|w| w == needle.as_bytes())
    };
    assert!(in_file(), "the wrapped key is stored");
    file.destroy_user_keys(&tenant, &alice, 9).await.unwrap();
    assert!(
        !in_file(),
        "a destroyed key's bytes are overwritten in the file"
    );

    // What was stored survives a reopen.
    drop(file);
    let (file, _) = KeyFile::open(&path).unwrap();
    assert_eq!(file.load_keyring(&tenant).await.unwrap(), Some(ring));
    assert_eq!(
        file.user_key_by_id(&tenant, &wrapped.key_id).await.unwrap(),
        Some((alice, KeyState::Destroyed { at: 9 }))
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o077, 0, "{mode:o}");
    }
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn keyrings_kept_in_the_database_by_older_versions_move_to_the_key_file() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let (ring, _) = keyring(&tenant);
    let doc = serde_json::to_string(&ring).unwrap();
    {
        // As an older version wrote it.
        let c = rusqlite::Connection::open(sqlite.path()).unwrap();
        c.busy_timeout(std::time::Duration::from_secs(5)).unwrap();
        c.execute(
            "INSERT INTO keyrings (tenant, doc) VALUES (?1, ?2)",
            [tenant.as_str(), doc.as_str()],
        )
        .unwrap();
    }
    assert!(
        file_contains(&sqlite, "kek-1"),
        "the keyring is in the database"
    );
    let dir = sqlite.path().parent().unwrap().to_path_buf();
    // A key file that holds another keyring for the tenant is not overruled.
    let (other_file, _) = KeyFile::open(dir.join("other-keys.db")).unwrap();
    let (other, _) = keyring(&tenant);
    other_file.save_keyring(&other).await.unwrap();
    let refused = other_file.adopt_keyrings_of(&sqlite).await;
    assert!(
        matches!(refused, Err(caas_core::Error::Unavailable { .. })),
        "{refused:?}"
    );
    assert!(file_contains(&sqlite, "kek-1"), "nothing was dropped");
    let (file, _) = KeyFile::open(dir.join("keys.db")).unwrap();
    assert_eq!(file.adopt_keyrings_of(&sqlite).await.unwrap(), 1);
    assert_eq!(file.load_keyring(&tenant).await.unwrap(), Some(ring));
    assert_eq!(file.adopt_keyrings_of(&sqlite).await.unwrap(), 0);
    assert!(
        !file_contains(&sqlite, "kek-1"),
        "no keyring left in the database"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_keys_seal_each_user_apart_and_shredding_one_leaves_the_others() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let dir = sqlite.path().parent().unwrap().to_path_buf();
    let (file, _) = KeyFile::open(dir.join("keys.db")).unwrap();
    let store: Arc<dyn KeyringStore> = Arc::new(file);
    let tenant = TenantId::parse("acme").unwrap();
    let kek = || KeyEncryptionKey::from_bytes(KeyId::new("kek-1").unwrap(), &[7u8; 32]).unwrap();
    let keys = Arc::new(ManagedKeyrings::new(kek(), store.clone()));
    let b = encrypted::wrap(sqlite.backends(), keys.clone());
    let send = |key: &str, sender: &str, body: &str| NewMessage {
        sender: UserId::parse(sender).unwrap(),
        ..message(&tenant, key, body)
    };
    let a = b
        .messages
        .append(send("k1", "alice", "alice's quince"), announce())
        .await
        .unwrap()
        .message()
        .clone();
    let edited = b
        .messages
        .edit(
            &tenant,
            &a.conversation,
            &a.id,
            "alice's medlar",
            Timestamp::from_secs(1_700_000_001),
        )
        .await
        .unwrap();
    assert_eq!(edited.edits.len(), 1);
    let bob = b
        .messages
        .append(send("k2", "bob", "bob's damson"), announce())
        .await
        .unwrap()
        .message()
        .clone();
    let alice_id = UserId::parse("alice").unwrap();
    let alice_key = store.user_key(&tenant, &alice_id).await.unwrap().unwrap();
    let bob_key = store
        .user_key(&tenant, &UserId::parse("bob").unwrap())
        .await
        .unwrap()
        .unwrap();
    assert_ne!(alice_key.key_id, bob_key.key_id);

    assert_eq!(b.shredder.shred_user(&tenant, &alice_id).await.unwrap(), 1);
    assert_eq!(b.shredder.shred_user(&tenant, &alice_id).await.unwrap(), 0);
    // Through this instance (its caches) and a fresh one (a restart) alike.
    let restarted = encrypted::wrap(
        sqlite.backends(),
        Arc::new(ManagedKeyrings::new(kek(), store.clone())),
    );
    for backends in [&b, &restarted] {
        let gone = backends
            .messages
            .get(&tenant, &a.conversation, &a.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!((gone.body, gone.edits.len(), gone.seq), (None, 0, a.seq));
        let kept = backends
            .messages
            .get(&tenant, &bob.conversation, &bob.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(kept.body.as_deref(), Some("bob's damson"));
        let log = backends
            .events
            .read_tenant(&tenant, Cursor(0), 10)
            .await
            .unwrap();
        let json =
            serde_json::to_string(&log.iter().map(|l| &l.event).collect::<Vec<_>>()).unwrap();
        assert!(
            !json.contains("quince") && !json.contains("medlar"),
            "{json}"
        );
        assert!(json.contains("bob's damson"), "{json}");
    }
    // What a send racing the erasure would store is refused, not sealed under
    // a new key that would outlive it.
    for backends in [&b, &restarted] {
        let late = backends
            .messages
            .append(send("k3", "alice", "a late one"), announce())
            .await;
        assert!(
            matches!(late, Err(caas_core::Error::Conflict { .. })),
            "{late:?}"
        );
    }
}

#[tokio::test]
async fn installed_keyrings_shred_a_users_scope_and_hand_the_keyring_back() {
    let tenant = TenantId::parse("acme").unwrap();
    let (mut ring, kek) = keyring(&tenant);
    ring.create_data_key(
        &kek,
        KeyScope::User("alice".into()),
        AeadAlgorithm::Aes256Gcm,
    )
    .unwrap();
    let keys = Arc::new(TenantKeyrings::new());
    keys.insert(&tenant, ring, kek).unwrap();
    let store = EncryptedMessageStore::new(Arc::new(MemoryMessageStore::default()), keys.clone());
    let alices = store
        .append(message(&tenant, "k1", "under her own key"), announce())
        .await
        .unwrap()
        .message()
        .clone();
    let bobs = store
        .append(
            NewMessage {
                sender: UserId::parse("bob").unwrap(),
                ..message(&tenant, "k2", "under the tenant's key")
            },
            announce(),
        )
        .await
        .unwrap()
        .message()
        .clone();
    let alice = UserId::parse("alice").unwrap();
    assert_eq!(keys.shred_user(&tenant, &alice).await.unwrap(), 1);
    let mut bodies = Vec::new();
    for m in [&alices, &bobs] {
        let read = store.get(&tenant, &m.conversation, &m.id).await.unwrap();
        bodies.push(read.unwrap().body);
    }
    assert_eq!(bodies, [None, Some("under the tenant's key".to_owned())]);
    // The host saves what it gets back: alice's key is destroyed in it.
    let saved = keys.keyring(&tenant).unwrap().unwrap();
    assert!(
        saved.current_key(&KeyScope::User("alice".into())).is_none() && saved.entries().len() == 3
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_keyrings_are_made_on_first_use_and_survive_a_restart() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let kek = || KeyEncryptionKey::from_bytes(KeyId::new("kek-1").unwrap(), &[7u8; 32]).unwrap();
    let dir = sqlite.path().parent().unwrap().to_path_buf();
    let (file, _) = KeyFile::open(dir.join("keys.db")).unwrap();
    let store: Arc<dyn KeyringStore> = Arc::new(file);
    let first = encrypted::wrap(
        sqlite.backends(),
        Arc::new(ManagedKeyrings::new(kek(), store.clone())),
    );
    assert!(store.load_keyring(&tenant).await.unwrap().is_none());
    let m = first
        .messages
        .append(message(&tenant, "k1", "marmalade"), announce())
        .await
        .unwrap()
        .message()
        .clone();
    let ring = store
        .load_keyring(&tenant)
        .await
        .unwrap()
        .expect("made on first use");
    assert!(ring.current_key(&KeyScope::Tenant).is_some());
    assert!(ring.current_key(&KeyScope::Search).is_some());
    assert!(!file_contains(&sqlite, "marmalade"));
    // Another process with the same KEK reads what the first sealed.
    let again = encrypted::wrap(
        sqlite.backends(),
        Arc::new(ManagedKeyrings::new(kek(), store.clone())),
    );
    let read = again
        .messages
        .get(&tenant, &m.conversation, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(read.body.as_deref(), Some("marmalade"));
    // With another KEK it refuses rather than store in clear or misread.
    let wrong = KeyEncryptionKey::from_bytes(KeyId::new("kek-2").unwrap(), &[8u8; 32]).unwrap();
    let wrong = encrypted::wrap(
        sqlite.backends(),
        Arc::new(ManagedKeyrings::new(wrong, store)),
    );
    let err = wrong
        .messages
        .append(message(&tenant, "k2", "x"), announce())
        .await
        .unwrap_err();
    assert!(
        matches!(err, caas_core::Error::Unavailable { .. }),
        "{err:?}"
    );
}
