//! Webhook endpoints, their delivery progress and dead letters. An endpoint's
//! configuration is the row's JSON document and its progress a second one, so
//! the lease holder's frequent writes rewrite the progress alone; `created_at`
//! is a column so an update keeps the first (the document's copy is replaced
//! by it on read). `disabled` and `retry_at` are columns only for `due`.
//!
//! **The lease.** A claim is one `UPDATE … RETURNING` whose condition is the
//! lease (free, run out, or already the claimer's). Of concurrent claims from
//! any node, one locks the row first; the others wait for it to commit and
//! then re-check the condition on the row's newest version, which the winner's
//! lease now fails: exactly one gets the endpoint. Progress is one `UPDATE`
//! conditional on the holder, re-checked the same way, so a node whose lease
//! was taken over can no longer write.
//!
//! **Dead letters** never outlive their endpoint: a letter is inserted only
//! while the endpoint's row exists and is key-share locked by the same
//! statement, so a concurrent delete either runs first (the letter then finds
//! no row) or waits for the letter to commit; the delete removes the endpoint
//! and then, in a later statement of its transaction (a fresh snapshot, which
//! sees such a letter), its letters.

use async_trait::async_trait;
use caas_core::ids::{TenantId, WebhookId};
use caas_core::model::{DeadLetter, WebhookEndpoint, WebhookProgress};
use caas_core::ports::WebhookStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use tokio_postgres::Row;

use super::PostgresStore;
use super::codec::{bound, from_json, get, id, limit, to_json, ts_from_i64, ts_to_i64};

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

/// An endpoint back from the columns of [`endpoint_columns!`], the
/// `created_at` column winning.
fn decode(r: &Row) -> Result<WebhookEndpoint> {
    let mut endpoint: WebhookEndpoint = from_json(&get::<String>(r, 0)?, WHAT)?;
    endpoint.created_at = ts_from_i64(get(r, 1)?, "created_at")?;
    endpoint.progress = from_json(&get::<String>(r, 2)?, PROGRESS)?;
    Ok(endpoint)
}

#[async_trait]
impl WebhookStore for PostgresStore {
    async fn create(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let doc = config_doc(endpoint)?;
        let progress = to_json(&endpoint.progress, PROGRESS)?;
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO webhooks (tenant, id, created_at, disabled, retry_at, doc, progress)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)
                 ON CONFLICT DO NOTHING",
                &[
                    &endpoint.tenant.as_str(),
                    &endpoint.id.as_str(),
                    &ts_to_i64(endpoint.created_at, "created_at")?,
                    &endpoint.disabled,
                    &retry_at(&endpoint.progress),
                    &doc,
                    &progress,
                ],
                "create webhook",
            )
            .await?;
        if n == 0 {
            return Err(Error::conflict(format!("webhook `{}` exists", endpoint.id)));
        }
        Ok(())
    }

    async fn update(&self, endpoint: &WebhookEndpoint, expected: Timestamp) -> Result<()> {
        let doc = config_doc(endpoint)?;
        // The stored document's `updated_at`, as the same serializer wrote it.
        let expected = serde_json::to_value(expected)
            .ok()
            .and_then(|v| v.as_str().map(str::to_owned))
            .ok_or_else(|| Error::internal("encode a webhook's updated_at"))?;
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE webhooks SET disabled = $3, doc = $4
                 WHERE tenant = $1 AND id = $2 AND (doc::jsonb ->> 'updated_at') = $5",
                &[
                    &endpoint.tenant.as_str(),
                    &endpoint.id.as_str(),
                    &endpoint.disabled,
                    &doc,
                    &expected,
                ],
                "update webhook",
            )
            .await?;
        if n == 0 {
            return Err(match self.get(&endpoint.tenant, &endpoint.id).await? {
                Some(_) => Error::conflict(format!("webhook `{}` changed meanwhile", endpoint.id)),
                None => Error::not_found(EntityKind::Webhook, &endpoint.id),
            });
        }
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                concat!(
                    "SELECT ",
                    endpoint_columns!(),
                    " FROM webhooks WHERE tenant = $1 AND id = $2"
                ),
                &[&tenant.as_str(), &id.as_str()],
                "get webhook",
            )
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<WebhookEndpoint>> {
        let rows = self
            .conn()
            .await?
            .query(
                concat!(
                    "SELECT ",
                    endpoint_columns!(),
                    " FROM webhooks WHERE tenant = $1 ORDER BY id"
                ),
                &[&tenant.as_str()],
                "list webhooks",
            )
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn delete(&self, tenant: &TenantId, id: &WebhookId) -> Result<bool> {
        let mut c = self.conn().await?;
        c.begin().await?;
        let outcome = async {
            let n = c
                .execute(
                    "DELETE FROM webhooks WHERE tenant = $1 AND id = $2",
                    &[&tenant.as_str(), &id.as_str()],
                    "delete webhook",
                )
                .await?;
            // A statement of its own: its snapshot sees a letter that
            // committed while the delete above waited for the row.
            c.execute(
                "DELETE FROM webhook_dead_letters WHERE tenant = $1 AND webhook = $2",
                &[&tenant.as_str(), &id.as_str()],
                "delete webhook dead letters",
            )
            .await?;
            Ok(n > 0)
        }
        .await;
        c.finish(outcome).await
    }

    async fn due(
        &self,
        now: Timestamp,
        after: Option<&(TenantId, WebhookId)>,
        n: usize,
    ) -> Result<Vec<(TenantId, WebhookId)>> {
        let (after_tenant, after_id) = match after {
            Some((t, i)) => (Some(t.as_str()), Some(i.as_str())),
            None => (None, None),
        };
        // The partial index `webhooks_due` holds the enabled endpoints, in this
        // order.
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT tenant, id FROM webhooks
                 WHERE NOT disabled AND (retry_at IS NULL OR retry_at <= $1)
                 AND ($3::text IS NULL OR (tenant, id) > ($3::text, $4::text))
                 ORDER BY tenant, id LIMIT $2",
                &[&bound(now.as_nanos()), &limit(n), &after_tenant, &after_id],
                "list due webhooks",
            )
            .await?;
        rows.iter()
            .map(|r| {
                Ok((
                    id::<TenantId>(&get::<String>(r, 0)?)?,
                    id::<WebhookId>(&get::<String>(r, 1)?)?,
                ))
            })
            .collect()
    }

    async fn claim(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        now: Timestamp,
        until: Timestamp,
    ) -> Result<Option<WebhookEndpoint>> {
        // Saturated rather than refused: the comparison differs from the
        // exact one only for times past i64::MAX nanoseconds (the year 2262).
        let row = self
            .conn()
            .await?
            .query_opt(
                concat!(
                    "UPDATE webhooks SET lease_holder = $3, lease_until = $5
                     WHERE tenant = $1 AND id = $2
                       AND (lease_holder IS NULL OR lease_holder = $3 OR lease_until <= $4)
                     RETURNING ",
                    endpoint_columns!()
                ),
                &[
                    &tenant.as_str(),
                    &id.as_str(),
                    &holder,
                    &bound(now.as_nanos()),
                    &bound(until.as_nanos()),
                ],
                "claim webhook",
            )
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn progress(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool> {
        let doc = to_json(progress, PROGRESS)?;
        let n = self
            .conn()
            .await?
            .execute(
                "UPDATE webhooks SET retry_at = $4, progress = $5
                 WHERE tenant = $1 AND id = $2 AND lease_holder = $3",
                &[
                    &tenant.as_str(),
                    &id.as_str(),
                    &holder,
                    &retry_at(progress),
                    &doc,
                ],
                "record webhook progress",
            )
            .await?;
        Ok(n > 0)
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let doc = to_json(letter, LETTER)?;
        // The cursor saturates rather than fails: it only orders the listing,
        // and the document keeps the exact value. A letter of a deleted
        // endpoint has nowhere to go: the `SELECT` finds no row.
        self.conn()
            .await?
            .execute(
                "WITH endpoint AS (
                     SELECT 1 FROM webhooks WHERE tenant = $1 AND id = $2 FOR KEY SHARE
                 )
                 INSERT INTO webhook_dead_letters (tenant, webhook, id, cursor, doc)
                 SELECT $1, $2, $3, $4, $5 FROM endpoint
                 ON CONFLICT (tenant, webhook, id)
                 DO UPDATE SET cursor = excluded.cursor, doc = excluded.doc",
                &[
                    &letter.tenant.as_str(),
                    &letter.webhook_id.as_str(),
                    &letter.id,
                    &bound(letter.cursor.0),
                    &doc,
                ],
                "keep dead letter",
            )
            .await?;
        Ok(())
    }

    async fn dead_letters(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        n: usize,
    ) -> Result<Vec<DeadLetter>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc FROM webhook_dead_letters
                 WHERE tenant = $1 AND webhook = $2
                 ORDER BY cursor, id LIMIT $3",
                &[&tenant.as_str(), &id.as_str(), &limit(n)],
                "list dead letters",
            )
            .await?;
        rows.iter()
            .map(|r| from_json(&get::<String>(r, 0)?, LETTER))
            .collect()
    }

    async fn remove_dead_letter(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        letter: &str,
    ) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "DELETE FROM webhook_dead_letters WHERE tenant = $1 AND webhook = $2 AND id = $3",
                &[&tenant.as_str(), &id.as_str(), &letter],
                "remove dead letter",
            )
            .await?;
        Ok(n > 0)
    }
}
