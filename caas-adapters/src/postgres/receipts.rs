use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, Seq, TenantId, UserId};
use caas_core::model::{Receipt, ReceiptKind};
use caas_core::ports::ReceiptStore;
use caas_core::time::Timestamp;

use super::PostgresStore;
use super::codec::{get, id, to_i64, to_u64, ts_from_i64, ts_to_i64};

fn decode(conversation: &ConversationId, r: &tokio_postgres::Row) -> Result<Receipt> {
    Ok(Receipt {
        conversation: conversation.clone(),
        user: id(&get::<String>(r, 0)?)?,
        delivered: Seq(to_u64(get(r, 1)?, "delivered")?),
        read: Seq(to_u64(get(r, 2)?, "read")?),
        updated_at: ts_from_i64(get(r, 3)?, "updated_at")?,
    })
}

#[async_trait]
impl ReceiptStore for PostgresStore {
    async fn advance(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
        kind: ReceiptKind,
        seq: Seq,
        at: Timestamp,
    ) -> Result<Option<Receipt>> {
        if seq == Seq::ZERO {
            // Watermarks start at zero: nothing can move.
            return Ok(None);
        }
        let s = to_i64(seq.get(), "seq")?;
        let read = if kind == ReceiptKind::Read { s } else { 0 };
        let at = ts_to_i64(at, "at")?;
        // One statement: the row lock of the upsert makes it atomic per
        // (conversation, user), and the WHERE makes a no-op write nothing.
        let row = self
            .conn()
            .await?
            .query_opt(
                "INSERT INTO receipts AS r (tenant, conversation, member, delivered, read, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (tenant, conversation, member) DO UPDATE SET
                     delivered = greatest(r.delivered, excluded.delivered),
                     read = greatest(r.read, excluded.read),
                     updated_at = excluded.updated_at
                 WHERE excluded.delivered > r.delivered OR excluded.read > r.read
                 RETURNING member, delivered, read, updated_at",
                &[
                    &tenant.as_str(),
                    &conversation.as_str(),
                    &user.as_str(),
                    &s,
                    &read,
                    &at,
                ],
                "store receipt",
            )
            .await?;
        row.map(|r| decode(conversation, &r)).transpose()
    }

    async fn get(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        user: &UserId,
    ) -> Result<Receipt> {
        let row = self
            .conn()
            .await?
            .query_opt(
                "SELECT member, delivered, read, updated_at FROM receipts
                 WHERE tenant = $1 AND conversation = $2 AND member = $3",
                &[&tenant.as_str(), &conversation.as_str(), &user.as_str()],
                "get receipt",
            )
            .await?;
        match row {
            Some(r) => decode(conversation, &r),
            None => Ok(Receipt {
                conversation: conversation.clone(),
                user: user.clone(),
                delivered: Seq::ZERO,
                read: Seq::ZERO,
                updated_at: Timestamp::EPOCH,
            }),
        }
    }

    async fn list(&self, tenant: &TenantId, conversation: &ConversationId) -> Result<Vec<Receipt>> {
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT member, delivered, read, updated_at FROM receipts
                 WHERE tenant = $1 AND conversation = $2 ORDER BY member",
                &[&tenant.as_str(), &conversation.as_str()],
                "list receipts",
            )
            .await?;
        rows.iter().map(|r| decode(conversation, r)).collect()
    }
}
