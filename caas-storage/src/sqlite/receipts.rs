use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, Seq, TenantId, UserId};
use caas_core::model::{Receipt, ReceiptKind};
use caas_core::ports::ReceiptStore;
use caas_core::time::Timestamp;
use rusqlite::{Connection, OptionalExtension, params};

use super::SqliteStore;
use super::codec::{id, to_i64, to_u64, ts_from_i64, ts_to_i64};
use super::error::Ctx;

fn zero(conversation: &ConversationId, user: &UserId) -> Receipt {
    Receipt {
        conversation: conversation.clone(),
        user: user.clone(),
        delivered: Seq::ZERO,
        read: Seq::ZERO,
        updated_at: Timestamp::EPOCH,
    }
}

/// (user, delivered, read, updated_at)
type Row = (String, i64, i64, i64);

fn decode(conversation: &ConversationId, (user, delivered, read, at): Row) -> Result<Receipt> {
    Ok(Receipt {
        conversation: conversation.clone(),
        user: id(&user)?,
        delivered: Seq(to_u64(delivered, "delivered")?),
        read: Seq(to_u64(read, "read")?),
        updated_at: ts_from_i64(at, "updated_at")?,
    })
}

fn get(c: &Connection, tenant: &TenantId, conv: &ConversationId, user: &UserId) -> Result<Receipt> {
    let row: Option<Row> = c
        .prepare_cached(
            "SELECT user, delivered, read, updated_at FROM receipts
             WHERE tenant = ?1 AND conversation = ?2 AND user = ?3",
        )
        .and_then(|mut s| {
            s.query_row(
                params![tenant.as_str(), conv.as_str(), user.as_str()],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
            )
            .optional()
        })
        .ctx("get receipt")?;
    row.map_or_else(|| Ok(zero(conv, user)), |r| decode(conv, r))
}

#[async_trait]
impl ReceiptStore for SqliteStore {
    async fn advance(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        kind: ReceiptKind,
        seq: Seq,
        at: Timestamp,
    ) -> Result<Option<Receipt>> {
        let (tenant, conv, user) = (tenant.clone(), conversation.clone(), user.clone());
        // Read-modify-write in the writer: the single writer makes it atomic per
        // (conversation, user) without any lock of ours.
        self.write(move |c| {
            let mut r = get(c, &tenant, &conv, &user)?;
            let mut moved = false;
            if kind == ReceiptKind::Read && seq > r.read {
                r.read = seq;
                moved = true;
            }
            if seq > r.delivered {
                r.delivered = seq;
                moved = true;
            }
            if !moved {
                return Ok(None);
            }
            r.updated_at = at;
            let delivered = to_i64(r.delivered.get(), "delivered")?;
            let read = to_i64(r.read.get(), "read")?;
            let at = ts_to_i64(r.updated_at, "at")?;
            c.prepare_cached(
                "INSERT INTO receipts (tenant, conversation, user, delivered, read, updated_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (tenant, conversation, user) DO UPDATE SET
                    delivered = excluded.delivered, read = excluded.read, updated_at = excluded.updated_at",
            )
            .and_then(|mut s| {
                s.execute(params![
                    tenant.as_str(),
                    conv.as_str(),
                    user.as_str(),
                    delivered,
                    read,
                    at,
                ])
            })
            .ctx("store receipt")?;
            Ok(Some(r))
        })
        .await
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Receipt> {
        let (tenant, conv, user) = (tenant.clone(), conversation.clone(), user.clone());
        self.read(move |c| get(c, &tenant, &conv, &user)).await
    }

    async fn list(&self, tenant: &TenantId, conversation: &ConversationId) -> Result<Vec<Receipt>> {
        let (tenant, conv) = (tenant.clone(), conversation.clone());
        self.read(move |c| {
            let mut stmt = c
                .prepare_cached(
                    "SELECT user, delivered, read, updated_at FROM receipts
                     WHERE tenant = ?1 AND conversation = ?2 ORDER BY user",
                )
                .ctx("list receipts")?;
            let rows = stmt
                .query_map(params![tenant.as_str(), conv.as_str()], |r| {
                    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
                })
                .ctx("list receipts")?
                .collect::<rusqlite::Result<Vec<Row>>>()
                .ctx("list receipts")?;
            rows.into_iter().map(|r| decode(&conv, r)).collect()
        })
        .await
    }
}
