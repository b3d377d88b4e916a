//! Flags (members' reports of messages). The primary key is the port's "one
//! flag per reporter and message": a flag is one `INSERT ... ON CONFLICT DO
//! NOTHING`, so a repeat, from any node and whether the first is open or
//! settled, inserts nothing and reports it. What a resolution changes is in
//! columns, the truth on read (`open`, and `resolution` as JSON), so settling
//! a message's flags is one `UPDATE ... WHERE open`: PostgreSQL re-checks the
//! condition on each row's newest version under its lock, so concurrent
//! resolutions settle each flag once and count it once. The document holds
//! the flag as it was reported.

use async_trait::async_trait;
use caas_core::Result;
use caas_core::ids::{ConversationId, MessageId, TenantId};
use caas_core::model::{Flag, FlagResolution};
use caas_core::ports::FlagStore;
use tokio_postgres::Row;

use super::PostgresStore;
use super::codec::{bound, from_json, get, limit, to_json};

const WHAT: &str = "flag";
const RESOLUTION: &str = "flag resolution";

/// A row of `flags` as every query selects it (`doc`, `resolution`), the
/// column winning over the document.
fn decode(r: &Row) -> Result<Flag> {
    let mut f: Flag = from_json(&get::<String>(r, 0)?, WHAT)?;
    f.resolution = get::<Option<String>>(r, 1)?
        .map(|j| from_json(&j, RESOLUTION))
        .transpose()?;
    Ok(f)
}

#[async_trait]
impl FlagStore for PostgresStore {
    async fn flag(&self, flag: &Flag) -> Result<bool> {
        // The document leaves out what the columns hold, so there is one truth.
        let doc = to_json(
            &Flag {
                resolution: None,
                ..flag.clone()
            },
            WHAT,
        )?;
        let resolution = flag
            .resolution
            .as_ref()
            .map(|r| to_json(r, RESOLUTION))
            .transpose()?;
        // The time saturates rather than fails: it only orders the listing,
        // and the document keeps the exact value.
        let n = self
            .conn()
            .await?
            .execute(
                "INSERT INTO flags (tenant, conversation, message, reporter, created_at, open,
                                    resolution, doc)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
                 ON CONFLICT DO NOTHING",
                &[
                    &flag.tenant.as_str(),
                    &flag.conversation_id.as_str(),
                    &flag.message_id.as_str(),
                    &flag.reporter.as_str(),
                    &bound(flag.created_at.as_nanos()),
                    &resolution.is_none(),
                    &resolution,
                    &doc,
                ],
                "flag a message",
            )
            .await?;
        Ok(n > 0)
    }

    async fn open_flags(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        n: usize,
    ) -> Result<Vec<Flag>> {
        // The partial index `flags_open` holds exactly these rows, in this
        // order.
        let rows = self
            .conn()
            .await?
            .query(
                "SELECT doc, resolution FROM flags
                 WHERE tenant = $1 AND conversation = $2 AND open
                 ORDER BY created_at, message, reporter LIMIT $3",
                &[&tenant.as_str(), &conversation.as_str(), &limit(n)],
                "list open flags",
            )
            .await?;
        rows.iter().map(decode).collect()
    }

    async fn resolve(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
        resolution: &FlagResolution,
    ) -> Result<u64> {
        let resolution = to_json(resolution, RESOLUTION)?;
        self.conn()
            .await?
            .execute(
                "UPDATE flags SET open = false, resolution = $4
                 WHERE tenant = $1 AND conversation = $2 AND message = $3 AND open",
                &[
                    &tenant.as_str(),
                    &conversation.as_str(),
                    &message.as_str(),
                    &resolution,
                ],
                "resolve flags",
            )
            .await
    }
}
