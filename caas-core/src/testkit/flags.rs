//! Contract of [`FlagStore`](crate::ports::FlagStore).

use std::sync::Arc;

use crate::ids::{ConversationId, MessageId, TenantId};
use crate::model::{Flag, FlagResolution};
use crate::ports::Backends;
use crate::testkit::{conversation, t, tenant, user};

fn msg(n: u32) -> MessageId {
    MessageId::parse(&format!("m_{n:04}")).unwrap()
}

fn flag(tn: &TenantId, c: &ConversationId, m: u32, reporter: &str, at: u64) -> Flag {
    Flag {
        tenant: tn.clone(),
        conversation_id: c.clone(),
        message_id: msg(m),
        reporter: user(reporter),
        reason: format!("{reporter} says no"),
        created_at: t(at),
        resolution: None,
    }
}

/// Flags come back open, oldest first, one per reporter and message, in their
/// own conversation and tenant; resolving settles every open flag of a message.
pub async fn flag_list_and_resolve(b: Backends) {
    let s = b.flags;
    let tn = tenant();
    let (c, other) = (conversation(), conversation());
    assert!(s.flag(&flag(&tn, &c, 2, "bob", 20)).await.unwrap());
    assert!(s.flag(&flag(&tn, &c, 1, "bob", 10)).await.unwrap());
    assert!(s.flag(&flag(&tn, &c, 1, "carol", 15)).await.unwrap());
    // A repeat keeps the first.
    let mut again = flag(&tn, &c, 1, "bob", 30);
    again.reason = "changed my mind".into();
    assert!(!s.flag(&again).await.unwrap());
    assert!(s.flag(&flag(&tn, &other, 1, "bob", 5)).await.unwrap());
    assert!(s.flag(&flag(&tenant(), &c, 1, "bob", 5)).await.unwrap());

    let open = s.open_flags(&tn, &c, 10).await.unwrap();
    assert_eq!(
        open,
        vec![
            flag(&tn, &c, 1, "bob", 10),
            flag(&tn, &c, 1, "carol", 15),
            flag(&tn, &c, 2, "bob", 20),
        ]
    );
    assert_eq!(s.open_flags(&tn, &c, 1).await.unwrap().len(), 1);

    let done = FlagResolution {
        by: user("mod"),
        at: t(40),
        action: "dismissed".into(),
    };
    assert_eq!(s.resolve(&tn, &c, &msg(1), &done).await.unwrap(), 2);
    assert_eq!(s.resolve(&tn, &c, &msg(1), &done).await.unwrap(), 0);
    assert_eq!(s.resolve(&tn, &c, &msg(9), &done).await.unwrap(), 0);
    assert_eq!(
        s.open_flags(&tn, &c, 10).await.unwrap(),
        vec![flag(&tn, &c, 2, "bob", 20)]
    );
    assert_eq!(s.open_flags(&tn, &other, 10).await.unwrap().len(), 1);
    // A settled flag still counts as that reporter's: no second one.
    assert!(!s.flag(&flag(&tn, &c, 1, "bob", 50)).await.unwrap());
}

/// Concurrent flags of one message by many reporters are all kept.
pub async fn concurrent_flags_all_count(b: Backends) {
    let s = b.flags;
    let tn = tenant();
    let c = conversation();
    let mut hs = Vec::new();
    for i in 0..16 {
        let (s, tn, c) = (Arc::clone(&s), tn.clone(), c.clone());
        hs.push(tokio::spawn(async move {
            s.flag(&flag(&tn, &c, 1, &format!("u{i}"), u64::from(i as u32)))
                .await
                .unwrap()
        }));
    }
    for h in hs {
        assert!(h.await.unwrap());
    }
    assert_eq!(s.open_flags(&tn, &c, 100).await.unwrap().len(), 16);
}
