//! Contract of [`MessageJournal`], run against a store that is also the
//! [`MessageStore`] and [`EventLog`] it journals into (as the port requires).

use std::sync::Arc;

use crate::events::EventPayload;
use crate::ids::{CorrelationId, Cursor, Seq, UserId};
use crate::ports::{EventLog, HistoryPage, Journaled, MessageJournal, MessageStore};
use crate::testkit::messages::new_message;
use crate::testkit::{conversation, t, tenant, user};

/// One store seen through the three ports.
#[derive(Debug)]
pub struct Journal {
    /// The journal.
    pub journal: Arc<dyn MessageJournal>,
    /// The same store's messages.
    pub messages: Arc<dyn MessageStore>,
    /// The same store's event log.
    pub events: Arc<dyn EventLog>,
}

fn audience(names: &[&str]) -> Arc<[UserId]> {
    names.iter().map(|n| user(n)).collect()
}

/// A created message is in the history with its seq, and its `message.created`
/// event is in the log at the returned cursor for exactly its audience.
pub async fn created_message_is_stored_and_logged(j: Journal) {
    let (tn, c) = (tenant(), conversation());
    let correlation = CorrelationId::generate(t(0));
    let out = j
        .journal
        .append_announced(
            new_message(&tn, &c, "alice", "k1", "hello"),
            audience(&["alice", "bob"]),
            correlation.clone(),
        )
        .await
        .unwrap();
    let Journaled::Created {
        message,
        event,
        cursor,
    } = out
    else {
        panic!("a first append is created");
    };
    assert_eq!(message.seq, Seq(1));
    assert_eq!(event.correlation_id, correlation);
    assert_eq!(event.at, message.created_at);
    assert!(matches!(&event.payload, EventPayload::MessageCreated { message: m } if *m == message));
    let history = j
        .messages
        .history(&tn, &c, HistoryPage::Latest, 10)
        .await
        .unwrap();
    assert_eq!(history, vec![message.clone()]);
    assert_eq!(j.events.head(&tn).await.unwrap(), cursor);
    for (who, sees) in [("alice", true), ("bob", true), ("carol", false)] {
        let log = j.events.read(&tn, &user(who), Cursor(0), 10).await.unwrap();
        assert_eq!(log.len(), usize::from(sees), "{who}");
        if sees {
            assert_eq!(log[0].cursor, cursor);
            assert_eq!(*log[0].event, *event);
        }
    }
}

/// A retry returns the original message and logs nothing more.
pub async fn a_retry_logs_nothing(j: Journal) {
    let (tn, c) = (tenant(), conversation());
    let first = j
        .journal
        .append_announced(
            new_message(&tn, &c, "alice", "same", "one"),
            audience(&["alice"]),
            CorrelationId::generate(t(0)),
        )
        .await
        .unwrap();
    let Journaled::Created { message, .. } = first else {
        panic!("a first append is created");
    };
    let again = j
        .journal
        .append_announced(
            new_message(&tn, &c, "alice", "same", "two"),
            audience(&["alice"]),
            CorrelationId::generate(t(1)),
        )
        .await
        .unwrap();
    assert_eq!(again, Journaled::Existing(message));
    let log = j
        .events
        .read(&tn, &user("alice"), Cursor(0), 10)
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "the retry logged nothing");
}

/// Journaled and plain appends share one gap-free seq per conversation and one
/// increasing cursor per tenant, also when concurrent.
pub async fn interleaves_with_plain_appends(j: Journal) {
    let (tn, c) = (tenant(), conversation());
    let j = Arc::new(j);
    let mut tasks = Vec::new();
    for i in 0..20u32 {
        let (j, tn, c) = (j.clone(), tn.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let m = new_message(&tn, &c, "alice", &format!("k{i}"), "x");
            if i % 2 == 0 {
                match j
                    .journal
                    .append_announced(m, audience(&["alice"]), CorrelationId::generate(t(0)))
                    .await
                    .unwrap()
                {
                    Journaled::Created { message, .. } => message.seq,
                    Journaled::Existing(_) => panic!("no retries here"),
                }
            } else {
                j.messages.append(m).await.unwrap().message().seq
            }
        }));
    }
    let mut seqs = Vec::new();
    for task in tasks {
        seqs.push(task.await.unwrap().get());
    }
    seqs.sort_unstable();
    assert_eq!(seqs, (1..=20).collect::<Vec<u64>>());
    let log = j
        .events
        .read(&tn, &user("alice"), Cursor(0), 100)
        .await
        .unwrap();
    assert_eq!(log.len(), 10, "one event per journaled append");
    assert!(log.windows(2).all(|w| w[0].cursor < w[1].cursor));
}

/// Expands the suite for a store implementing [`MessageJournal`],
/// [`MessageStore`] and [`EventLog`].
#[macro_export]
macro_rules! message_journal_contract {
    ($make:expr) => {
        $crate::__journal_cases!(
            $make,
            [
                created_message_is_stored_and_logged,
                a_retry_logs_nothing,
                interleaves_with_plain_appends,
            ]
        );
    };
}

/// Expands one `#[tokio::test]` per journal case.
#[doc(hidden)]
#[macro_export]
macro_rules! __journal_cases {
    ($make:expr, [$($case:ident),* $(,)?]) => {
        $(
            #[::tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $case() {
                let store = ::std::sync::Arc::new($make);
                let journal = $crate::testkit::journal::Journal {
                    journal: store.clone(),
                    messages: store.clone(),
                    events: store,
                };
                $crate::testkit::journal::$case(journal).await;
            }
        )*
    };
}
