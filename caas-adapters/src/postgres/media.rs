//! Upload records. What changes after the announcement (`completed_at`,
//! `sha256`, `shared_in`) is kept in columns, the truth on read, so that every
//! change is one conditional statement on one row: PostgreSQL locks the row and
//! re-checks the condition on its newest version, which is what keeps
//! concurrent completions and shares from any node from losing each other. The
//! document holds the rest of the record as announced.

use async_trait::async_trait;
use caas_core::ids::{BlobId, ConversationId, TenantId, UserId};
use caas_core::model::Media;
use caas_core::ports::MediaStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use tokio_postgres::Row;

use super::PostgresStore;
use super::codec::{bound, from_json, get, id, limit, to_json, ts_from_i64, ts_to_i64};

const WHAT: &str = "media record";

fn missing(id: &BlobId) -> Error {
    Error::not_found(EntityKind::Blob, id)
}

/// The `pending_until` column: the deadline while the upload is pending, NULL
/// once complete, so the cleanup's partial index holds pending uploads only.
/// The deadline saturates rather than fails: it only orders and bounds the
/// cleanup, and the document keeps the exact value.
fn pending_until(m: &Media) -> Option<i64> {
    m.completed_at
        .is_none()
        .then(|| bound(m.expires_at.as_nanos()))
}

/// A row of `media`'s four columns as every query selects them (`doc`,
/// `completed_at`, `sha256`, `shared_in`), the columns winning over the
/// document.
fn decode(r: &Row) -> Result<Media> {
    let mut m: Media = from_json(&get::<String>(r, 0)?, WHAT)?;
    m.completed_at = get::<Option<i64>>(r, 1)?
        .map(|t| ts_from_i64(t, "completed_at"))
        .transpose()?;
    m.sha256 = get(r, 2)?;
    m.shared_in = get::<Vec<String>>(r, 3)?
        .iter()
        .map(|c| id::<ConversationId>(c))
        .collect::<Result<_>>()?;
    Ok(m)
}

#[async_trait]
impl MediaStore for PostgresStore {
    async fn announce(&self, media: &Media) -> Result<()> {
        // The document leaves out what the columns hold, so there is one truth.
        let doc = to_json(
            &Media {
                sha256: None,
                completed_at: None,
                shared_in: Vec::new(),
                ..media.clone()
            },
            WHAT,
        )?;
        let completed_at = media
            .completed_at
            .map(|t| ts_to_i64(t, "completed_at"))
            .transpose()?;
        let shared_in: Vec<&str> = media.shared_in.iter().map(|c| c.as_str()).collect();
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO media (tenant, id, owner, conversation, pending_until, completed_at,
                                    sha256, shared_in, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
                 ON CONFLICT DO NOTHING",
                &[
                    &media.tenant.as_str(),
                    &media.id.as_str(),
                    &media.owner.as_str(),
                    &media.conversation_id.as_str(),
                    &pending_until(media),
                    &completed_at,
                    &media.sha256,
                    &shared_in,
                    &doc,
                ],
                "announce upload",
            )
            .await?;
        if n == 0 {
            return Err(Error::conflict(format!("blob `{}` exists", media.id)));
        }
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<Media>> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT doc, completed_at, sha256, shared_in FROM media
                 WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
                "get upload",
            )
            .await?;
        row.as_ref().map(decode).transpose()
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        sha256: &str,
        at: Timestamp,
    ) -> Result<Media> {
        let at = ts_to_i64(at, "completed_at")?;
        // One statement: a pending upload still in time is completed, a
        // completed one is matched as it is (its columns written back
        // unchanged) so it is returned from the same row version; anything
        // else matches nothing. A concurrent completion makes the re-check see
        // it completed, and both callers get the first one's values.
        let row = self
            .conn()
            .await?
            .query_opt(
                "UPDATE media SET
                     sha256 = CASE WHEN completed_at IS NULL THEN $4 ELSE sha256 END,
                     completed_at = coalesce(completed_at, $3),
                     pending_until = NULL
                 WHERE tenant = $1 AND id = $2
                   AND (completed_at IS NOT NULL OR pending_until > $3)
                 RETURNING doc, completed_at, sha256, shared_in",
                &[&tenant.as_str(), &id.as_str(), &at, &sha256],
                "complete upload",
            )
            .await?;
        match row {
            Some(r) => decode(&r),
            None => Err(missing(id)),
        }
    }

    async fn share(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        conversation: &ConversationId,
    ) -> Result<()> {
        // The append is conditional on the row's newest version, so concurrent
        // shares each land once; when it matches nothing, the statement's
        // snapshot tells a missing record from one already shared there.
        let row = self
            .conn()
            .await?
            .query_one(
                "WITH added AS (
                     UPDATE media SET shared_in = array_append(shared_in, $3::text)
                     WHERE tenant = $1 AND id = $2
                       AND conversation <> $3::text AND NOT ($3::text = ANY (shared_in))
                     RETURNING 1
                 )
                 SELECT EXISTS (SELECT 1 FROM added)
                     OR EXISTS (SELECT 1 FROM media WHERE tenant = $1 AND id = $2)",
                &[&tenant.as_str(), &id.as_str(), &conversation.as_str()],
                "share upload",
            )
            .await?;
        if get::<bool>(&row, 0)? {
            Ok(())
        } else {
            Err(missing(id))
        }
    }

    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool> {
        let n = self
            .conn()
            .await?
            .execute(
                "DELETE FROM media WHERE tenant = $1 AND id = $2",
                &[&tenant.as_str(), &id.as_str()],
                "delete upload",
            )
            .await?;
        Ok(n > 0)
    }

    async fn expired(&self, now: Timestamp, n: usize) -> Result<Vec<Media>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc, completed_at, sha256, shared_in FROM media
                 WHERE pending_until IS NOT NULL AND pending_until <= $1
                 ORDER BY pending_until LIMIT $2",
                &[&bound(now.as_nanos()), &limit(n)],
                "list expired uploads",
            )
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn remove_expired(&self, tenant: &TenantId, id: &BlobId, now: Timestamp) -> Result<bool> {
        // The condition is re-checked on the row's newest version: an upload
        // completed since it was listed has a NULL `pending_until` and is kept.
        let n = self
            .conn()
            .await?
            .execute(
                "DELETE FROM media WHERE tenant = $1 AND id = $2 AND pending_until <= $3",
                &[&tenant.as_str(), &id.as_str(), &bound(now.as_nanos())],
                "remove expired upload",
            )
            .await?;
        Ok(n > 0)
    }

    async fn by_owner(
        &self,
        tenant: &TenantId,
        owner: &UserId,
        after: Option<&BlobId>,
        n: usize,
    ) -> Result<Vec<Media>> {
        // The empty string sorts before every id, so "no cursor" is "after ''".
        let after = after.map_or("", |a| a.as_str());
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc, completed_at, sha256, shared_in FROM media
                 WHERE tenant = $1 AND owner = $2 AND id > $3
                 ORDER BY id LIMIT $4",
                &[&tenant.as_str(), &owner.as_str(), &after, &limit(n)],
                "list uploads by owner",
            )
            .await?;
        rows.iter().map(decode).collect()
    }
}
