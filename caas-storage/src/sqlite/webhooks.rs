//! Webhook endpoints, their delivery progress and dead letters. An endpoint's
//! configuration is the row's JSON document and its progress a second one, so
//! the lease holder's frequent writes rewrite the progress alone; `created_at`
//! is a column so an update keeps the first (the document's copy is replaced
//! by it on read). `disabled` and `retry_at` are columns only for `due`.
//!
//! Every change runs in the single writer: a claim is one `UPDATE` whose
//! condition is the lease (free, run out, or already the claimer's), so of
//! concurrent claims the first the writer runs takes it and the others match
//! nothing; progress is one `UPDATE` conditional on the holder. Deleting an
//! endpoint and its dead letters is one writer command, and a dead letter is
//! inserted only while its endpoint exists, in the same statement, so no letter
//! outlives its endpoint.

use async_trait::async_trait;
use caas_core::ids::{TenantId, WebhookId};
use caas_core::model::{DeadLetter, WebhookEndpoint, WebhookProgress};
use caas_core::ports::WebhookStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::codec::{bound, from_json, id, limit, to_json, ts_from_i64, ts_to_i64};
use super::error::Ctx;

const WHAT: &str = "webhook";
const PROGRESS: &str = "webhook progress";
const LETTER: &str = "dead letter";

/// The columns every endpoint query selects, in the order [`decode`] takes
/// them.
macro_rules! endpoint_columns {
    () => {
        "doc, created_at, progress"
    };
}

/// The configuration document (the `progress` column holds the rest).
fn config_doc(endpoint: &WebhookEndpoint) -> Result<String> {
    to_json(&endpoint.configuration(), WHAT)
}

/// The `retry_at` column: saturated rather than refused, since it only
/// decides when `due` lists the endpoint and the progress document keeps the
/// exact value.
fn retry_at(progress: &WebhookProgress) -> Option<i64> {
    progress.retry_at.map(|t| bound(t.as_nanos()))
}

/// A row of [`endpoint_columns!`] as read.
type Row = (String, i64, String);

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?))
}

/// An endpoint back from its columns, the `created_at` column winning.
fn decode((doc, created_at, progress): &Row) -> Result<WebhookEndpoint> {
    let mut endpoint: WebhookEndpoint = from_json(doc, WHAT)?;
    endpoint.created_at = ts_from_i64(*created_at, "created_at")?;
    endpoint.progress = from_json(progress, PROGRESS)?;
    Ok(endpoint)
}

fn get_one(c: &Connection, tenant: &TenantId, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
    let row = c
        .prepare_cached(concat!(
            "SELECT ",
            endpoint_columns!(),
            " FROM webhooks WHERE tenant = ?1 AND id = ?2"
        ))
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), id.as_str()], read_row)
                .optional()
        })
        .ctx("get webhook")?;
    row.as_ref().map(decode).transpose()
}

#[async_trait]
impl WebhookStore for SqliteStore {
    async fn create(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let (tenant, id) = (endpoint.tenant.clone(), endpoint.id.clone());
        let created_at = ts_to_i64(endpoint.created_at, "created_at")?;
        let (disabled, retry) = (endpoint.disabled, retry_at(&endpoint.progress));
        let doc = config_doc(endpoint)?;
        let progress = to_json(&endpoint.progress, PROGRESS)?;
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO webhooks (tenant, id, created_at, disabled, retry_at, doc,
                                           progress)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        id.as_str(),
                        created_at,
                        disabled,
                        retry,
                        doc,
                        progress
                    ])
                })
                .ctx("create webhook")?;
            if n == 0 {
                return Err(Error::conflict(format!("webhook `{id}` exists")));
            }
            Ok(())
        })
        .await
    }

    async fn update(&self, endpoint: &WebhookEndpoint, expected: Timestamp) -> Result<()> {
        let (tenant, id) = (endpoint.tenant.clone(), endpoint.id.clone());
        let disabled = endpoint.disabled;
        let doc = config_doc(endpoint)?;
        self.write(move |c| {
            // The single writer makes this read and the update one step.
            match get_one(c, &tenant, &id)? {
                None => return Err(Error::not_found(EntityKind::Webhook, &id)),
                Some(stored) if stored.updated_at != expected => {
                    return Err(Error::conflict(format!("webhook `{id}` changed meanwhile")));
                }
                Some(_) => {}
            }
            let n = c
                .prepare_cached(
                    "UPDATE webhooks SET disabled = ?3, doc = ?4 WHERE tenant = ?1 AND id = ?2",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str(), disabled, doc]))
                .ctx("update webhook")?;
            if n == 0 {
                return Err(Error::not_found(EntityKind::Webhook, &id));
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read_short(move |c| get_one(c, &tenant, &id)).await
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<WebhookEndpoint>> {
        let tenant = tenant.clone();
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(concat!(
                    "SELECT ",
                    endpoint_columns!(),
                    " FROM webhooks WHERE tenant = ?1 ORDER BY id"
                ))
                .ctx("list webhooks")?;
            let rows = stmt
                .query_map(params![tenant.as_str()], read_row)
                .ctx("list webhooks")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list webhooks")?;
            rows.iter().map(decode).collect()
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId, id: &WebhookId) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM webhooks WHERE tenant = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str()]))
                .ctx("delete webhook")?;
            c.prepare_cached("DELETE FROM webhook_dead_letters WHERE tenant = ?1 AND webhook = ?2")
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str()]))
                .ctx("delete webhook dead letters")?;
            Ok(n > 0)
        })
        .await
    }

    async fn due(
        &self,
        now: Timestamp,
        after: Option<&(TenantId, WebhookId)>,
        n: usize,
    ) -> Result<Vec<(TenantId, WebhookId)>> {
        let now = bound(now.as_nanos());
        let (after_tenant, after_id) = match after {
            Some((t, i)) => (Some(t.to_string()), Some(i.to_string())),
            None => (None, None),
        };
        self.read(move |c| {
            // `disabled = 0` as a literal, so the partial index `webhooks_due`
            // (in the listing's order, `retry_at` included) answers alone.
            let mut stmt = c
                .prepare_cached(
                    "SELECT tenant, id FROM webhooks
                     WHERE disabled = 0 AND (retry_at IS NULL OR retry_at <= ?1)
                     AND (?3 IS NULL OR tenant > ?3 OR (tenant = ?3 AND id > ?4))
                     ORDER BY tenant, id LIMIT ?2",
                )
                .ctx("list due webhooks")?;
            let keys = stmt
                .query_map(params![now, limit(n), after_tenant, after_id], |r| {
                    Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                })
                .ctx("list due webhooks")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list due webhooks")?;
            keys.iter()
                .map(|(t, i)| Ok((id::<TenantId>(t)?, id::<WebhookId>(i)?)))
                .collect()
        })
        .await
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<WebhookEndpoint>> {
        let (tenant, id, holder) = (tenant.clone(), id.clone(), holder.to_owned());
        // Saturated rather than refused: the comparison differs from the
        // exact one only for times past i64::MAX nanoseconds (the year 2262).
        let (now, until) = (bound(now.as_nanos()), bound(until.as_nanos()));
        self.write(move |c| {
            let row = c
                .prepare_cached(concat!(
                    "UPDATE webhooks SET lease_holder = ?3, lease_until = ?5
                     WHERE tenant = ?1 AND id = ?2
                       AND (lease_holder IS NULL OR lease_holder = ?3 OR lease_until <= ?4)
                     RETURNING ",
                    endpoint_columns!()
                ))
                .and_then(|mut s| {
                    s.query_row(
                        params![tenant.as_str(), id.as_str(), holder, now, until],
                        read_row,
                    )
                    .optional()
                })
                .ctx("claim webhook")?;
            row.as_ref().map(decode).transpose()
        })
        .await
    }

    async fn progress(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool> {
        let (tenant, id, holder) = (tenant.clone(), id.clone(), holder.to_owned());
        let (retry, doc) = (retry_at(progress), to_json(progress, PROGRESS)?);
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "UPDATE webhooks SET retry_at = ?4, progress = ?5
                     WHERE tenant = ?1 AND id = ?2 AND lease_holder = ?3",
                )
                .and_then(|mut s| {
                    s.execute(params![tenant.as_str(), id.as_str(), holder, retry, doc])
                })
                .ctx("record webhook progress")?;
            Ok(n > 0)
        })
        .await
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let (tenant, webhook, name) = (
            letter.tenant.clone(),
            letter.webhook_id.clone(),
            letter.id.clone(),
        );
        // The cursor saturates rather than fails: it only orders the listing,
        // and the document keeps the exact value.
        let cursor = bound(letter.cursor.0);
        let doc = to_json(letter, LETTER)?;
        self.write(move |c| {
            // A letter of a deleted endpoint has nowhere to go. (`WHERE` is
            // also what lets SQLite parse an upsert after a `SELECT`.)
            c.prepare_cached(
                "INSERT INTO webhook_dead_letters (tenant, webhook, id, cursor, doc)
                 SELECT ?1, ?2, ?3, ?4, ?5
                 WHERE EXISTS (SELECT 1 FROM webhooks WHERE tenant = ?1 AND id = ?2)
                 ON CONFLICT (tenant, webhook, id)
                 DO UPDATE SET cursor = excluded.cursor, doc = excluded.doc",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant.as_str(),
                    webhook.as_str(),
                    name,
                    cursor,
                    doc
                ])
            })
            .ctx("keep dead letter")?;
            Ok(())
        })
        .await
    }

    async fn dead_letters(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        n: usize,
    ) -> Result<Vec<DeadLetter>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM webhook_dead_letters
                     WHERE tenant = ?1 AND webhook = ?2
                     ORDER BY cursor, id LIMIT ?3",
                )
                .ctx("list dead letters")?;
            let docs = stmt
                .query_map(params![tenant.as_str(), id.as_str(), limit(n)], |r| {
                    r.get::<_, String>(0)
                })
                .ctx("list dead letters")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list dead letters")?;
            docs.iter().map(|d| from_json(d, LETTER)).collect()
        })
        .await
    }

    async fn remove_dead_letter(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        letter: &str,
    ) -> Result<bool> {
        let (tenant, id, letter) = (tenant.clone(), id.clone(), letter.to_owned());
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "DELETE FROM webhook_dead_letters
                     WHERE tenant = ?1 AND webhook = ?2 AND id = ?3",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str(), letter]))
                .ctx("remove dead letter")?;
            Ok(n > 0)
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    use caas_core::ids::{Cursor, TenantId, WebhookId};
    use caas_core::model::{WebhookEndpoint, WebhookProgress};
    use caas_core::ports::WebhookStore;
    use caas_core::testkit::webhooks::endpoint;
    use caas_core::time::Timestamp;
    use rusqlite::params;

    use super::super::SqliteStore;
    use super::super::error::Ctx;

    fn plan(store: &SqliteStore, sql: &'static str) -> impl Future<Output = Vec<String>> {
        let store = store.clone();
        async move {
            store
                .read(move |c| {
                    let mut s = c.prepare(sql).ctx("test")?;
                    s.query_map(params![], |r| r.get::<_, String>(3))
                        .ctx("test")?
                        .collect::<rusqlite::Result<Vec<_>>>()
                        .ctx("test")
                })
                .await
                .unwrap()
        }
    }

    /// `due` reads the partial index of enabled endpoints alone, in its
    /// order; the dead letters' listing reads theirs.
    #[tokio::test]
    async fn due_and_the_dead_letters_read_their_indexes() {
        let store = SqliteStore::open_temp().unwrap();
        let due = plan(
            &store,
            "EXPLAIN QUERY PLAN SELECT tenant, id FROM webhooks
             WHERE disabled = 0 AND (retry_at IS NULL OR retry_at <= 5)
             ORDER BY tenant, id LIMIT 10",
        )
        .await;
        assert!(
            due.iter()
                .any(|p| p.contains("COVERING INDEX webhooks_due")),
            "{due:?}"
        );
        assert!(!due.iter().any(|p| p.contains("TEMP B-TREE")), "{due:?}");
        let letters = plan(
            &store,
            "EXPLAIN QUERY PLAN SELECT doc FROM webhook_dead_letters
             WHERE tenant = 'a' AND webhook = 'w' ORDER BY cursor, id LIMIT 10",
        )
        .await;
        assert!(
            letters
                .iter()
                .any(|p| p.contains("webhook_dead_letters_by_cursor")),
            "{letters:?}"
        );
        assert!(
            !letters.iter().any(|p| p.contains("TEMP B-TREE")),
            "{letters:?}"
        );
    }

    /// Times past i64::MAX nanoseconds are kept exactly in the progress, and
    /// an update keeps the first `created_at` whatever it is given.
    #[tokio::test]
    async fn the_documents_keep_what_the_columns_cannot() {
        let store = SqliteStore::open_temp().unwrap();
        let (tn, id) = (
            TenantId::parse("acme").unwrap(),
            WebhookId::parse("wh_1").unwrap(),
        );
        let first = endpoint(&tn, &id, 3);
        store.create(&first).await.unwrap();
        let far = WebhookProgress {
            cursor: Cursor(4),
            attempts: 1,
            retry_at: Some(Timestamp::from_nanos(u64::MAX)),
            last_error: Some("status 500".into()),
        };
        let (now, until) = (Timestamp::from_secs(1), Timestamp::from_nanos(u64::MAX));
        assert!(
            store
                .claim(&tn, &id, "n1", now, until)
                .await
                .unwrap()
                .is_some()
        );
        assert!(store.progress(&tn, &id, "n1", &far).await.unwrap());
        // Backing off to the end of time, and leased as long.
        let later = Timestamp::from_secs(1 << 32);
        let due = store.due(later, None, 10).await.unwrap();
        assert!(!due.contains(&(tn.clone(), id.clone())), "{due:?}");
        assert!(
            store
                .claim(&tn, &id, "n2", later, later)
                .await
                .unwrap()
                .is_none()
        );
        store
            .update(
                &WebhookEndpoint {
                    created_at: Timestamp::from_secs(99),
                    url: "https://hooks.example.com/v2".into(),
                    ..first.clone()
                },
                first.updated_at,
            )
            .await
            .unwrap();
        let got = store.get(&tn, &id).await.unwrap().unwrap();
        assert_eq!(got.created_at, first.created_at);
        assert_eq!(got.url, "https://hooks.example.com/v2");
        assert_eq!(got.progress, far);
    }

    /// A stored row that does not decode is an internal error, not a panic.
    #[tokio::test]
    async fn corrupt_rows_are_internal_errors() {
        let store = SqliteStore::open_temp().unwrap();
        let (tn, id) = (
            TenantId::parse("acme").unwrap(),
            WebhookId::parse("wh_1").unwrap(),
        );
        store.create(&endpoint(&tn, &id, 0)).await.unwrap();
        store
            .write(|c| {
                c.execute("UPDATE webhooks SET progress = '{not json'", [])
                    .ctx("test")
            })
            .await
            .unwrap();
        assert_eq!(store.get(&tn, &id).await.unwrap_err().code(), "internal");
        store
            .write(|c| {
                c.execute("UPDATE webhooks SET id = 'not an id!', disabled = 0", [])
                    .ctx("test")
            })
            .await
            .unwrap();
        let due = store.due(Timestamp::from_secs(1), None, 10).await;
        assert_eq!(due.unwrap_err().code(), "internal");
    }
}
