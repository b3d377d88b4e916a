//! Contract of [`ReceiptStore`](crate::ports::ReceiptStore).

use crate::ids::Seq;
use crate::model::ReceiptKind;
use crate::ports::Backends;
use crate::testkit::{conversation, t, tenant, user};

/// Watermarks only move forward; read drags delivered along.
pub async fn watermarks_only_move_forward(b: Backends) {
    let s = b.receipts;
    let tn = tenant();
    let c = conversation();
    let a = user("alice");
    let r0 = s.get(&tn, &c, &a).await.unwrap();
    assert_eq!((r0.delivered, r0.read), (Seq(0), Seq(0)));
    let r = s
        .advance(&tn, &c, &a, ReceiptKind::Delivered, Seq(5), t(1))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.delivered, r.read), (Seq(5), Seq(0)));
    assert_eq!(
        s.advance(&tn, &c, &a, ReceiptKind::Delivered, Seq(3), t(2))
            .await
            .unwrap(),
        None
    );
    let r = s
        .advance(&tn, &c, &a, ReceiptKind::Read, Seq(7), t(3))
        .await
        .unwrap()
        .unwrap();
    assert_eq!((r.delivered, r.read), (Seq(7), Seq(7)));
    assert_eq!(
        s.advance(&tn, &c, &a, ReceiptKind::Read, Seq(7), t(4))
            .await
            .unwrap(),
        None
    );
    assert_eq!(s.get(&tn, &c, &a).await.unwrap(), r);
    assert_eq!(s.get(&tenant(), &c, &a).await.unwrap().read, Seq(0));
}

/// Concurrent advances end at the maximum.
pub async fn concurrent_advances_keep_the_max(b: Backends) {
    let s = b.receipts;
    let tn = tenant();
    let c = conversation();
    let mut hs = Vec::new();
    for i in [3u64, 9, 1, 7, 9, 2, 8] {
        let (s, tn, c) = (s.clone(), tn.clone(), c.clone());
        hs.push(tokio::spawn(async move {
            s.advance(&tn, &c, &user("bob"), ReceiptKind::Read, Seq(i), t(i))
                .await
                .unwrap()
        }));
    }
    for h in hs {
        h.await.unwrap();
    }
    assert_eq!(s.get(&tn, &c, &user("bob")).await.unwrap().read, Seq(9));
}

/// Listing a conversation's receipts by user.
pub async fn list_by_user(b: Backends) {
    let s = b.receipts;
    let tn = tenant();
    let c = conversation();
    for (u, n) in [("carol", 1), ("alice", 2)] {
        s.advance(&tn, &c, &user(u), ReceiptKind::Read, Seq(n), t(n))
            .await
            .unwrap();
    }
    let got: Vec<_> = s
        .list(&tn, &c)
        .await
        .unwrap()
        .into_iter()
        .map(|r| (r.user, r.read))
        .collect();
    assert_eq!(got, [(user("alice"), Seq(2)), (user("carol"), Seq(1))]);
}
