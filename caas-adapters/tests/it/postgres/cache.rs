//! The per-node conversation cache: a change made on one node reaches another
//! node's cached reads through LISTEN/NOTIFY, and a node reads its own writes
//! at once.

use std::time::{Duration, Instant};

use caas_adapters::postgres::PostgresStore;
use caas_core::model::{Conversation, ConversationKind, Member, Role};
use caas_core::ports::ConversationStore;
use caas_core::testkit::{conversation, t, tenant, user};

use super::support;

async fn node(url: &str) -> PostgresStore {
    let store = PostgresStore::connect(support::config(url)).await.unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while !store.cache_active() {
        assert!(
            Instant::now() < deadline,
            "the cache listener never connected"
        );
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    store
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_nodes_change_reaches_cached_reads() {
    let Some(url) = support::url() else { return };
    let (a, b) = (node(&url).await, node(&url).await);
    let tn = tenant();
    let mut c = Conversation {
        tenant: tn.clone(),
        id: conversation(),
        kind: ConversationKind::Group,
        name: Some("before".into()),
        attributes: Default::default(),
        created_by: None,
        direct_key: None,
        created_at: t(0),
    };
    let alice = Member::new(c.id.clone(), user("alice"), Role::Member, t(0));
    a.create(&c, std::slice::from_ref(&alice)).await.unwrap();
    // Node B reads (and caches) both.
    assert_eq!(b.members(&tn, &c.id).await.unwrap().len(), 1);
    assert_eq!(
        b.get(&tn, &c.id).await.unwrap().unwrap().name.as_deref(),
        Some("before")
    );
    // Node A changes both; its own reads see it at once.
    let bob = Member::new(c.id.clone(), user("bob"), Role::Member, t(1));
    assert!(a.put_member(&tn, &bob).await.unwrap());
    c.name = Some("after".into());
    a.update(&c).await.unwrap();
    assert_eq!(a.members(&tn, &c.id).await.unwrap().len(), 2);
    // Node B sees it once the notification arrives.
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let members = b.members(&tn, &c.id).await.unwrap().len();
        let name = b.get(&tn, &c.id).await.unwrap().unwrap().name;
        if members == 2 && name.as_deref() == Some("after") {
            break;
        }
        assert!(Instant::now() < deadline, "node B kept a stale cache");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    // And a removal too.
    assert!(b.remove_member(&tn, &c.id, &user("alice")).await.unwrap());
    assert_eq!(b.members(&tn, &c.id).await.unwrap().len(), 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while a.members(&tn, &c.id).await.unwrap().len() != 1 {
        assert!(Instant::now() < deadline, "node A kept a stale cache");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}
