//! Upload records. The whole record, `shared_in` included, is the row's JSON
//! document; `owner` and `pending_until` are columns only for the queries that
//! filter and order on them. A change (complete, share) reads, edits and
//! rewrites the document inside one writer command: the writer is the only
//! writer of the file and runs a command alone in its savepoint, so no
//! concurrent change can come between the read and the write.

use async_trait::async_trait;
use caas_core::ids::{BlobId, ConversationId, TenantId, UserId};
use caas_core::model::Media;
use caas_core::ports::MediaStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::codec::{bound, from_json, limit, to_json};
use super::error::Ctx;

const WHAT: &str = "media record";

fn missing(id: &BlobId) -> Error {
    Error::not_found(EntityKind::Blob, id)
}

/// The `pending_until` column: the deadline while the upload is pending, NULL
/// once complete, so the cleanup's index holds pending uploads only. The
/// deadline saturates rather than fails: it only orders and bounds the cleanup,
/// and the document keeps the exact value.
fn pending_until(m: &Media) -> Option<i64> {
    m.completed_at
        .is_none()
        .then(|| bound(m.expires_at.as_nanos()))
}

fn read_one(
    c: &Connection,
    tenant: &TenantId,
    id: &BlobId,
    context: &str,
) -> Result<Option<Media>> {
    let doc: Option<String> = c
        .prepare_cached("SELECT doc FROM media WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| {
            s.query_row(params![tenant.as_str(), id.as_str()], |r| r.get(0))
                .optional()
        })
        .ctx(context)?;
    doc.map(|d| from_json(&d, WHAT)).transpose()
}

/// Rewrites the document and the pending column of the record stored under
/// `tenant` and `id` (its key, not what its document says).
fn rewrite(c: &Connection, tenant: &TenantId, id: &BlobId, m: &Media, context: &str) -> Result<()> {
    let doc = to_json(m, WHAT)?;
    c.prepare_cached("UPDATE media SET pending_until = ?3, doc = ?4 WHERE tenant = ?1 AND id = ?2")
        .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str(), pending_until(m), doc]))
        .ctx(context)?;
    Ok(())
}

fn decode_all(docs: &[String]) -> Result<Vec<Media>> {
    docs.iter().map(|d| from_json(d, WHAT)).collect()
}

#[async_trait]
impl MediaStore for SqliteStore {
    async fn announce(&self, media: &Media) -> Result<()> {
        let (tenant, id, owner) = (media.tenant.clone(), media.id.clone(), media.owner.clone());
        let (pending, doc) = (pending_until(media), to_json(media, WHAT)?);
        self.write(move |c| {
            let n = c
                .prepare_cached(
                    "INSERT INTO media (tenant, id, owner, pending_until, doc)
                     VALUES (?1, ?2, ?3, ?4, ?5) ON CONFLICT DO NOTHING",
                )
                .and_then(|mut s| {
                    s.execute(params![
                        tenant.as_str(),
                        id.as_str(),
                        owner.as_str(),
                        pending,
                        doc
                    ])
                })
                .ctx("announce upload")?;
            if n == 0 {
                return Err(Error::conflict(format!("blob `{id}` exists")));
            }
            Ok(())
        })
        .await
    }

    async fn get(&self, tenant: &TenantId, id: &BlobId) -> Result<Option<Media>> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.read_short(move |c| read_one(c, &tenant, &id, "get upload"))
            .await
    }

    async fn complete(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        sha256: &str,
        at: Timestamp,
    ) -> Result<Media> {
        let (tenant, id, sha256) = (tenant.clone(), id.clone(), sha256.to_owned());
        self.write(move |c| {
            let mut m =
                read_one(c, &tenant, &id, "complete upload")?.ok_or_else(|| missing(&id))?;
            if m.completed_at.is_some() {
                return Ok(m);
            }
            if m.expires_at <= at {
                return Err(missing(&id));
            }
            m.completed_at = Some(at);
            m.sha256 = Some(sha256);
            rewrite(c, &tenant, &id, &m, "complete upload")?;
            Ok(m)
        })
        .await
    }

    async fn share(
        &self,
        tenant: &TenantId,
        id: &BlobId,
        conversation: &ConversationId,
    ) -> Result<()> {
        let (tenant, id, conversation) = (tenant.clone(), id.clone(), conversation.clone());
        self.write(move |c| {
            let mut m = read_one(c, &tenant, &id, "share upload")?.ok_or_else(|| missing(&id))?;
            if m.conversations().any(|known| *known == conversation) {
                return Ok(());
            }
            m.shared_in.push(conversation);
            rewrite(c, &tenant, &id, &m, "share upload")
        })
        .await
    }

    async fn delete(&self, tenant: &TenantId, id: &BlobId) -> Result<bool> {
        let (tenant, id) = (tenant.clone(), id.clone());
        self.write(move |c| {
            let n = c
                .prepare_cached("DELETE FROM media WHERE tenant = ?1 AND id = ?2")
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str()]))
                .ctx("delete upload")?;
            Ok(n > 0)
        })
        .await
    }

    async fn expired(&self, now: Timestamp, n: usize) -> Result<Vec<Media>> {
        let now = bound(now.as_nanos());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM media
                     WHERE pending_until IS NOT NULL AND pending_until <= ?1
                     ORDER BY pending_until LIMIT ?2",
                )
                .ctx("list expired uploads")?;
            let docs = stmt
                .query_map(params![now, limit(n)], |r| r.get::<_, String>(0))
                .ctx("list expired uploads")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list expired uploads")?;
            decode_all(&docs)
        })
        .await
    }

    async fn remove_expired(&self, tenant: &TenantId, id: &BlobId, now: Timestamp) -> Result<bool> {
        let (tenant, id, now) = (tenant.clone(), id.clone(), bound(now.as_nanos()));
        self.write(move |c| {
            // The condition is in the statement: an upload completed since it was
            // listed has a NULL `pending_until` and is kept.
            let n = c
                .prepare_cached(
                    "DELETE FROM media WHERE tenant = ?1 AND id = ?2
                     AND pending_until IS NOT NULL AND pending_until <= ?3",
                )
                .and_then(|mut s| s.execute(params![tenant.as_str(), id.as_str(), now]))
                .ctx("remove expired upload")?;
            Ok(n > 0)
        })
        .await
    }

    async fn by_owner(
        &self,
        tenant: &TenantId,
        owner: &UserId,
        after: Option<&BlobId>,
        n: usize,
    ) -> Result<Vec<Media>> {
        let (tenant, owner, after) = (tenant.clone(), owner.clone(), after.cloned());
        self.read(move |c| {
            // The empty string sorts before every id, so "no cursor" is "after ''".
            // Without statistics (the store never runs ANALYZE) SQLite prefers
            // the primary key here, which reads every upload of the tenant to
            // find one owner's: the owner index reads only theirs.
            let after = after.as_ref().map_or("", |a| a.as_str());
            let mut stmt = c
                .prepare_cached(
                    "SELECT doc FROM media INDEXED BY media_by_owner
                     WHERE tenant = ?1 AND owner = ?2 AND id > ?3
                     ORDER BY id LIMIT ?4",
                )
                .ctx("list uploads by owner")?;
            let docs = stmt
                .query_map(
                    params![tenant.as_str(), owner.as_str(), after, limit(n)],
                    |r| r.get::<_, String>(0),
                )
                .ctx("list uploads by owner")?
                .collect::<rusqlite::Result<Vec<_>>>()
                .ctx("list uploads by owner")?;
            decode_all(&docs)
        })
        .await
    }
}
