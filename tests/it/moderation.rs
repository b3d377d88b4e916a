//! Reports and their review through the public service API, on every backend
//! set.

use caas::Error;
use caas::core::ports::HistoryPage;
use caas::core::service::FlagAction;

use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden};

on_every_set!(async members_report_and_moderators_review,);

async fn members_report_and_moderators_review(set: Set) {
    let w = World::new(set, &["alice", "bob", "carol", "dave"]).await;
    let conv = w.group("alice", &["bob", "carol"]).await;
    let (alice, bob, carol, dave) = (
        w.user("alice"),
        w.user("bob"),
        w.user("carol"),
        w.user("dave"),
    );
    let spam = w
        .send("bob", &conv, "b1", "buy cheap stuff")
        .await
        .unwrap()
        .message;
    let fine = w
        .send("bob", &conv, "b2", "hello all")
        .await
        .unwrap()
        .message;

    let first = w
        .caas
        .flag_message(&carol, &conv, &spam.id, "spam")
        .await
        .unwrap();
    assert_eq!(
        (first.reporter.as_str(), first.reason.as_str()),
        ("carol", "spam")
    );
    let again = w
        .caas
        .flag_message(&carol, &conv, &spam.id, "really spam")
        .await
        .unwrap();
    assert_eq!(again, first);
    w.clock.advance(std::time::Duration::from_secs(1));
    w.caas
        .flag_message(&alice, &conv, &fine.id, "not sure")
        .await
        .unwrap();
    forbidden(
        w.caas.flag_message(&dave, &conv, &spam.id, "x").await,
        "default-deny",
    );
    assert!(matches!(
        w.caas.flag_message(&carol, &conv, &fine.id, "").await,
        Err(Error::InvalidArgument { .. })
    ));
    assert!(matches!(
        w.caas
            .flag_message(&carol, &conv, &fine.id, &"x".repeat(501))
            .await,
        Err(Error::PayloadTooLarge { .. })
    ));

    // Only moderators (here the owner) see the reports.
    forbidden(w.caas.open_flags(&bob, &conv, 10).await, "default-deny");
    let open = w.caas.open_flags(&alice, &conv, 10).await.unwrap();
    assert_eq!(
        open.iter()
            .map(|f| f.message_id.clone())
            .collect::<Vec<_>>(),
        vec![spam.id.clone(), fine.id.clone()]
    );

    // Edit histories: the sender and moderators, not other members.
    w.caas
        .edit_message(&bob, &conv, &fine.id, "hello everyone")
        .await
        .unwrap();
    assert_eq!(
        w.caas.edit_history(&bob, &conv, &fine.id).await.unwrap()[0].body,
        "hello all"
    );
    assert_eq!(
        w.caas
            .edit_history(&alice, &conv, &fine.id)
            .await
            .unwrap()
            .len(),
        1
    );
    forbidden(
        w.caas.edit_history(&carol, &conv, &fine.id).await,
        "default-deny",
    );

    forbidden(
        w.caas
            .resolve_flags(&carol, &conv, &spam.id, FlagAction::Delete)
            .await,
        "default-deny",
    );
    assert_eq!(
        w.caas
            .resolve_flags(&alice, &conv, &spam.id, FlagAction::Delete)
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        w.caas
            .resolve_flags(&alice, &conv, &fine.id, FlagAction::Dismiss)
            .await
            .unwrap(),
        1
    );
    assert!(
        w.caas
            .open_flags(&alice, &conv, 10)
            .await
            .unwrap()
            .is_empty()
    );
    let history = w
        .caas
        .history(&carol, &conv, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert!(history[0].is_deleted());
    assert_eq!(history[1].body.as_deref(), Some("hello everyone"));
    // A deleted message cannot be reported.
    assert!(matches!(
        w.caas.flag_message(&carol, &conv, &spam.id, "again").await,
        Err(Error::Conflict { .. })
    ));
    let audit = w.caas.audit_log(&w.server(), 0, 100).await.unwrap();
    let actions: Vec<_> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions.iter().filter(|a| **a == "flag.review").count(),
        2,
        "{actions:?}"
    );
    assert!(actions.contains(&"message.delete"), "{actions:?}");
}
