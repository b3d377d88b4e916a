//! At-rest encryption of bodies: the decorator passes the message contract over
//! two backends, and nothing of a sealed body reaches the database file.

use std::sync::Arc;

use caas_core::ids::{ClientMsgId, ConversationId, MessageId, TenantId, UserId};
use caas_core::model::{Message, NewMessage};
use caas_core::ports::{HistoryPage, MessageStore, SearchIndex};
use caas_core::time::Timestamp;
use caas_crypto::KeyId;
use caas_crypto::envelope::{AeadAlgorithm, DataKey};
use caas_crypto::keys::{KeyEncryptionKey, KeyScope, TenantKeyring};
use caas_storage::SEALED_BODY_PREFIX;
use caas_storage::encrypted::{
    BodyKeys, EncryptedMessageStore, EncryptedSearchIndex, TenantKeyrings,
};
use caas_storage::memory::MemoryMessageStore;
use caas_storage::sqlite::SqliteStore;

/// One key for every tenant: the contract cases use random tenants.
#[derive(Debug)]
struct EveryTenant(Arc<DataKey>);

impl EveryTenant {
    fn new() -> Arc<Self> {
        let key = DataKey::generate(KeyId::new("dk_test").unwrap(), AeadAlgorithm::Aes256Gcm);
        Arc::new(Self(Arc::new(key.unwrap())))
    }
}

impl BodyKeys for EveryTenant {
    fn sealing_key(&self, _: &TenantId) -> caas_core::Result<Option<Arc<DataKey>>> {
        Ok(Some(self.0.clone()))
    }

    fn opening_key(&self, _: &TenantId, _: &KeyId) -> caas_core::Result<Option<Arc<DataKey>>> {
        Ok(Some(self.0.clone()))
    }
}

mod contract_over_sqlite {
    use super::*;
    caas_core::message_store_contract!(EncryptedMessageStore::new(
        Arc::new(SqliteStore::open_temp().unwrap()),
        EveryTenant::new()
    ));
}

mod contract_over_memory {
    use super::*;
    caas_core::message_store_contract!(EncryptedMessageStore::new(
        Arc::new(MemoryMessageStore::default()),
        EveryTenant::new()
    ));
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
    ring.create_data_key(&kek, KeyScope::Tenant, AeadAlgorithm::Aes256Gcm)
        .unwrap();
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
async fn sealed_bodies_never_reach_the_file_in_clear() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let tenant = TenantId::parse("acme").unwrap();
    let keys = Arc::new(TenantKeyrings::new());
    let (ring, kek) = keyring(&tenant);
    keys.insert(&tenant, ring, kek).unwrap();
    let store = EncryptedMessageStore::new(Arc::new(sqlite.clone()), keys.clone());
    let search = EncryptedSearchIndex::new(Arc::new(sqlite.clone()), keys.clone());

    let m = store
        .append(message(&tenant, "k1", "zanzibar rendezvous at dawn"))
        .await
        .unwrap()
        .message()
        .clone();
    assert_eq!(m.body.as_deref(), Some("zanzibar rendezvous at dawn"));
    let edited = store
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
    // What the service does after each write: index the plaintext it was given.
    search.index_message(&edited).await.unwrap();

    // The inner store holds envelopes only.
    let raw: Message = MessageStore::get(&sqlite, &tenant, &m.conversation, &m.id)
        .await
        .unwrap()
        .unwrap();
    assert!(raw.body.as_deref().unwrap().starts_with(SEALED_BODY_PREFIX));
    assert!(raw.edits[0].body.starts_with(SEALED_BODY_PREFIX));
    for word in ["zanzibar", "rendezvous", "quixotic"] {
        assert!(
            !file_contains(&sqlite, word),
            "`{word}` is in the database file"
        );
        let hits = sqlite
            .search_messages(&tenant, word, std::slice::from_ref(&m.conversation), 10)
            .await
            .unwrap();
        assert!(hits.is_empty(), "`{word}` is searchable");
    }
    // And everything reads back in clear through the decorator.
    let page = store
        .history(&tenant, &m.conversation, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert_eq!(page, vec![edited]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_index_keeps_sealed_messages_searchable() {
    let sqlite = SqliteStore::open_temp().unwrap();
    let store = EncryptedMessageStore::new(Arc::new(sqlite.clone()), EveryTenant::new());
    let tenant = TenantId::parse("acme").unwrap();
    let m = store
        .append(message(&tenant, "k1", "lunch at noon"))
        .await
        .unwrap()
        .message()
        .clone();
    let within = std::slice::from_ref(&m.conversation);
    // Not indexed from the stored (sealed) form…
    assert!(
        sqlite
            .search_messages(&tenant, "lunch", within, 10)
            .await
            .unwrap()
            .is_empty()
    );
    // …but from the plaintext the service passes on.
    sqlite.index_message(&m).await.unwrap();
    let hits = sqlite
        .search_messages(&tenant, "lunch", within, 10)
        .await
        .unwrap();
    assert_eq!(hits.len(), 1);
    assert_eq!(hits[0].message_id, m.id);
    // Deleting removes it, and a stale re-index of the old plaintext cannot bring it back.
    let deleted = store
        .delete(
            &tenant,
            &m.conversation,
            &m.id,
            &m.sender,
            Timestamp::from_secs(1_700_000_200),
        )
        .await
        .unwrap();
    assert!(deleted.changed);
    sqlite.index_message(&m).await.unwrap();
    assert!(
        sqlite
            .search_messages(&tenant, "lunch", within, 10)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test]
async fn tenants_without_keys_stay_in_clear() {
    let keys = Arc::new(TenantKeyrings::new());
    let inner = Arc::new(MemoryMessageStore::default());
    let store = EncryptedMessageStore::new(inner.clone(), keys);
    let tenant = TenantId::parse("plain").unwrap();
    let m = store
        .append(message(&tenant, "k1", "hello"))
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
        .append(message(&tenant, "k2", &forged))
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
        .append(message(&tenant, "k1", "before the erasure"))
        .await
        .unwrap()
        .message()
        .clone();

    ring.destroy(&first, 1_700_000_000).unwrap();
    ring.create_data_key(&kek(), KeyScope::Tenant, AeadAlgorithm::Aes256Gcm)
        .unwrap();
    keys.insert(&tenant, ring.clone(), kek()).unwrap();
    let new = store
        .append(message(&tenant, "k2", "after the erasure"))
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
    let err = store.append(message(&tenant, "k3", "x")).await.unwrap_err();
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
    let (ring, _kek) = keyring(&tenant);
    sqlite.save_keyring(&ring).await.unwrap();
    assert_eq!(sqlite.load_keyring(&tenant).await.unwrap(), Some(ring));
}
