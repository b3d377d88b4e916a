//! Flags (members' reports of messages). The whole flag, its resolution
//! included, is the row's JSON document; the key, `created_at` and `open` are
//! columns only for the queries that filter and order on them. The primary key
//! is the port's "one flag per reporter and message": a repeat is an insert
//! that does nothing, whether the first is open or settled. A resolution is one
//! `UPDATE` of the message's open rows in one writer command, which sets the
//! document's `resolution` in place (`json_set`), so every open flag of the
//! message is settled in the same commit.

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, TenantId};
use caas_core::model::{Flag, FlagResolution};
use caas_core::ports::FlagStore;
use rusqlite::params;

use super::SqliteStore;
use super::codec::{bound, from_json, limit, to_json};
use super::error::Ctx;

const WHAT: &str = "flag";

#[async_trait]
impl FlagStore for SqliteStore {
    async fn flag(&self, flag: &Flag) -> Result<bool> {
        let (tenant, conversation, message, reporter) = (
            flag.tenant.clone(),
            flag.conversation_id.clone(),
            flag.message_id.clone(),
            flag.reporter.clone(),
        );
        // The time saturates rather than fails: it only orders the listing,
        // and the document keeps the exact value.
        let created_at = bound(flag.created_at.as_nanos());
        let open = flag.resolution.is_none();
        let doc = to_json(flag, WHAT)?;
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO flags (tenant, conversation, message, reporter, created_at,
                                        open, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        conversation.as_str(),
                        message.as_str(),
                        reporter.as_str(),
                        created_at,
                        open,
                        doc
                    ])
                })
                .ctx("flag a message")?;
            Ok(n > 0)
        })
        .await
    }

    async fn open_flags(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        n: usize,
    ) -> Result<Vec<Flag>> {
        let (tenant, conversation) = (tenant.clone(), conversation.clone());
        self.read(move |c| {
            // `open = 1` as a literal, so the partial index `flags_open` (which
            // is already in the listing's order) serves the query.
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM flags
                     WHERE tenant = ?1 AND conversation = ?2 AND open = 1
                     ORDER BY created_at, message, reporter LIMIT ?3",
                )
                .ctx("list open flags")?;
            let docs = stmt
                .query_map(
                    params![tenant.as_str(), conversation.as_str(), limit(n)],
                    |r| r.get::<_, String>(0),
                )
                .ctx("list open flags")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list open flags")?;
            docs.iter().map(|d| from_json(d, WHAT)).collect()
        })
        .await
    }

    async fn resolve(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
        resolution: &FlagResolution,
    ) -> Result<u64> {
        let (tenant, conversation, message) =
            (tenant.clone(), conversation.clone(), message.clone());
        let resolution = to_json(resolution, "flag resolution")?;
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE flags SET open = 0, doc = json_set(doc, '$.resolution', json(?4))
                     WHERE tenant = ?1 AND conversation = ?2 AND message = ?3 AND open = 1",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        conversation.as_str(),
                        message.as_str(),
                        resolution
                    ])
                })
                .ctx("resolve flags")?;
            Ok(n as u64)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use caas_core::ids::{ConversationId, MessageId, TenantId, UserId};
    use caas_core::model::{Flag, FlagResolution};
    use caas_core::ports::FlagStore;
    use caas_core::time::Timestamp;
    use rusqlite::params;

    use super::super::SqliteStore;
    use super::super::codec::from_json;
    use super::super::error::Ctx;

    fn flag(reporter: &str, at: u64) -> Flag {
        Flag {
            tenant: TenantId::parse("acme").unwrap(),
            conversation_id: ConversationId::parse("c1").unwrap(),
            message_id: MessageId::parse("m_1").unwrap(),
            reporter: UserId::parse(reporter).unwrap(),
            reason: "spam".into(),
            created_at: Timestamp::from_nanos(at),
            resolution: None,
        }
    }

    /// The settled flags' documents carry their resolution, and stay put.
    #[tokio::test]
    async fn a_resolution_is_stored_in_each_settled_document() {
        let store = SqliteStore::open_temp().unwrap();
        let (bob, carol) = (flag("bob", 1), flag("carol", u64::MAX));
        assert!(store.flag(&bob).await.unwrap());
        // A time past i64::MAX is kept exactly in the document.
        assert!(store.flag(&carol).await.unwrap());
        assert_eq!(
            store
                .open_flags(&bob.tenant, &bob.conversation_id, 10)
                .await
                .unwrap(),
            vec![bob.clone(), carol.clone()]
        );
        let done = FlagResolution {
            by: UserId::parse("mod").unwrap(),
            at: Timestamp::from_nanos(5),
            action: "deleted".into(),
        };
        assert_eq!(
            store
                .resolve(&bob.tenant, &bob.conversation_id, &bob.message_id, &done)
                .await
                .unwrap(),
            2
        );
        let stored: Vec<(bool, String)> = store
            .read(|c| {
                let mut s = c
                    .prepare("SELECT open, doc FROM flags ORDER BY reporter")
                    .ctx("test")?;
                s.query_map(params![], |r| Ok((r.get(0)?, r.get(1)?)))
                    .ctx("test")?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .ctx("test")
            })
            .await
            .unwrap();
        let settled: Vec<(bool, Flag)> = stored
            .iter()
            .map(|(open, d)| (*open, from_json(d, "flag").unwrap()))
            .collect();
        let with = |f: Flag| Flag {
            resolution: Some(done.clone()),
            ..f
        };
        assert_eq!(settled, vec![(false, with(bob)), (false, with(carol))]);
    }

    /// The listing reads the partial index of open flags, in its order, with
    /// no sort step.
    #[tokio::test]
    async fn the_listing_reads_the_open_flags_index() {
        let store = SqliteStore::open_temp().unwrap();
        let plan: Vec<String> = store
            .read(|c| {
                let mut s = c
                    .prepare(
                        "EXPLAIN QUERY PLAN SELECT doc FROM flags
                         WHERE tenant = 'a' AND conversation = 'c' AND open = 1
                         ORDER BY created_at, message, reporter LIMIT 10",
                    )
                    .ctx("test")?;
                s.query_map(params![], |r| r.get::<_, String>(3))
                    .ctx("test")?
                    .collect::<rusqlite::Result<Vec<_>>>()
                    .ctx("test")
            })
            .await
            .unwrap();
        assert!(plan.iter().any(|p| p.contains("flags_open")), "{plan:?}");
        assert!(!plan.iter().any(|p| p.contains("TEMP B-TREE")), "{plan:?}");
    }
}
