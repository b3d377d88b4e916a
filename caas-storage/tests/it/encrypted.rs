//! At-rest encryption of bodies: the decorator passes the message contract over
//! two backends, and nothing of a sealed body reaches the database file.

use std::sync::Arc;

use caas_core::events::{Event, EventPayload};
use caas_core::ids::Cursor;
use caas_core::ids::{ClientMsgId, ConversationId, MessageId, TenantId, UserId};
use caas_core::model::{Message, NewMessage};
use caas_core::ports::Backends;
use caas_core::ports::{Appended, EventLog, HistoryPage, MessageStore, SearchIndex};
use caas_core::testkit::messages::announce;
use caas_core::time::Timestamp;
use caas_crypto::KeyId;
use caas_crypto::blind::BlindIndex;
use caas_crypto::envelope::{AeadAlgorithm, DataKey};
use caas_crypto::keys::{KeyEncryptionKey, KeyScope, TenantKeyring};
use caas_storage::SEALED_BODY_PREFIX;
use caas_storage::encrypted::{
    self, BodyKeys, EncryptedMessageStore, KeyringStore, ManagedKeyrings, TenantKeyrings,
};
use caas_storage::memory::MemoryMessageStore;
use caas_storage::sqlite::SqliteStore;

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
    async fn sealing_key(&self, _: &TenantId) -> caas_core::Result<Option<Arc<DataKey>>> {
        Ok(Some(self.0.clone()))
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

#[tokio::test]
async fn keyrings_persist_in_sqlite() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    assert!(sqlite.load_keyring(&tenant).await.unwrap().is_none());
    let (ring, kek) = keyring(&tenant);
    sqlite.save_keyring(&ring).await.unwrap();
    assert_eq!(
        sqlite.load_keyring(&tenant).await.unwrap(),
        Some(ring.clone())
    );
    // Creating keeps the first keyring: a racing creator gets that one back.
    let mut other = TenantKeyring::new(tenant.as_str(), &kek);
    other
        .create_data_key(&kek, KeyScope::Tenant, AeadAlgorithm::Aes256Gcm)
        .unwrap();
    assert_eq!(sqlite.create_keyring(&other).await.unwrap(), ring);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn managed_keyrings_are_made_on_first_use_and_survive_a_restart() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let kek = || KeyEncryptionKey::from_bytes(KeyId::new("kek-1").unwrap(), &[7u8; 32]).unwrap();
    let store: Arc<dyn KeyringStore> = Arc::new(sqlite.clone());
    let first = encrypted::wrap(
        sqlite.backends(),
        Arc::new(ManagedKeyrings::new(kek(), store.clone())),
    );
    assert!(sqlite.load_keyring(&tenant).await.unwrap().is_none());
    let m = first
        .messages
        .append(message(&tenant, "k1", "marmalade"), announce())
        .await
        .unwrap()
        .message()
        .clone();
    let ring = sqlite
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
