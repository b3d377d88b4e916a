//! [`MessageJournal`]: a message and its `message.created` event in one writer
//! command, so one commit (one fsync) per send and no crash window between them.

use std::sync::Arc;

use async_trait::async_trait;
use caas_core::Result;
use caas_core::events::{Event, EventPayload};
use caas_core::ids::{CorrelationId, Cursor, UserId};
use caas_core::model::NewMessage;
use caas_core::ports::{Journaled, MessageJournal};

use super::SqliteStore;
use super::codec::to_u64;
use super::events::{PreparedEvent, next_cursor, put_event};
use super::messages::{Inserted, Prepared, insert};

#[async_trait]
impl MessageJournal for SqliteStore {
    async fn append_announced(
        &self,
        message: NewMessage,
        audience: Arc<[UserId]>,
        correlation_id: CorrelationId,
    ) -> Result<Journaled> {
        let prepared = Prepared::new(message)?;
        self.write_prechecked(move |c| {
            // The event needs the message's seq, so it is built here, before the
            // message row is written. A failure here fails this command alone,
            // unless the conversation's first message just created its stream
            // row: then the writer fails the whole batch rather than commit half
            // a command (see `writer.rs`).
            let inserted = insert(c, prepared, |m| {
                let event = Arc::new(Event {
                    tenant: m.tenant.clone(),
                    correlation_id,
                    at: m.created_at,
                    audience,
                    payload: EventPayload::MessageCreated { message: m.clone() },
                });
                let prepared = PreparedEvent::new(&event)?;
                let cursor = next_cursor(c, event.tenant.as_str())?;
                Ok((event, prepared, cursor, Cursor(to_u64(cursor, "cursor")?)))
            })?;
            match inserted {
                Inserted::Existing(m) => Ok(Journaled::Existing(m)),
                Inserted::Created(message, (event, prepared, at, cursor)) => {
                    put_event(c, event.tenant.as_str(), at, &prepared)?;
                    Ok(Journaled::Created {
                        message,
                        event,
                        cursor,
                    })
                }
            }
        })
        .await
    }
}
