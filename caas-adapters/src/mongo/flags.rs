//! Flags (members' reports of messages). One document per tenant,
//! conversation, message and reporter, inserted once: the unique index
//! `flags_key` refuses a repeat (whether the first is open or settled), which
//! is how `flag` tells a new flag from one it keeps. What a resolution changes
//! is kept natively, the truth on read: `open`, and `resolution` (a JSON
//! string, absent while open). `created_at` (nanoseconds, saturated) orders
//! the listing, which the partial index `flags_open` serves from the open
//! flags alone. `doc` holds the flag as reported.
//!
//! Settling a message's flags is one `updateMany` of its open ones. Each
//! document's update is atomic and matched against the document's current
//! state, so concurrent resolutions settle (and count) each flag once. The
//! documents are not settled in one transaction: a listing that runs while
//! the update does may still show some of them open, as it would have just
//! before.

use async_trait::async_trait;
use caas_core::ids::{ConversationId, MessageId, TenantId};
use caas_core::model::{Flag, FlagResolution};
use caas_core::ports::FlagStore;
use caas_core::{Error, Result};
use mongodb::bson::{Bson, Document};

use super::MongoStore;
use super::codec::{body, check_size, from_json, page_limit, to_json};
use super::names::FLAGS;

const WHAT: &str = "flag";
const RESOLUTION: &str = "flag resolution";

/// The command, filter and update documents of flags, as pure functions of
/// their arguments.
pub(super) mod commands {
    use caas_core::ids::{ConversationId, MessageId, TenantId};
    use caas_core::model::Flag;
    use mongodb::bson::{Document, doc};

    use super::super::codec::bound;
    use super::super::names::FLAGS;

    /// A flag as stored (`insert_one`; the unique index `flags_key` refuses
    /// a second one). `json` is the flag without its resolution;
    /// `resolution` the resolution's JSON, if the flag comes settled.
    pub(crate) fn flag_document(f: &Flag, json: &str, resolution: Option<&str>) -> Document {
        let mut d = doc! {
            "tenant": f.tenant.as_str(),
            "conversation": f.conversation_id.as_str(),
            "message": f.message_id.as_str(),
            "reporter": f.reporter.as_str(),
            // Saturated rather than refused: it only orders the listing, and
            // `doc` keeps the exact value.
            "created_at": bound(f.created_at.as_nanos()),
            "open": resolution.is_none(),
            "doc": json,
        };
        if let Some(r) = resolution {
            d.insert("resolution", r);
        }
        d
    }

    /// A conversation's open flags and their order (oldest first, then
    /// message and reporter: the order of the partial index `flags_open`,
    /// byte order under the default collation).
    pub(crate) fn open_flags(
        tenant: &TenantId,
        conversation: &ConversationId,
    ) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "conversation": conversation.as_str(),
                "open": true,
            },
            doc! { "created_at": 1, "message": 1, "reporter": 1 },
        )
    }

    /// The settlement of a message's open flags (`update_many`): only open
    /// ones match, so a repeat settles nothing.
    pub(crate) fn resolve(
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
        resolution: &str,
    ) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "conversation": conversation.as_str(),
                "message": message.as_str(),
                "open": true,
            },
            doc! { "$set": { "open": false, "resolution": resolution } },
        )
    }

    /// The `createIndexes` command of `flags`.
    pub(crate) fn create_indexes() -> Document {
        doc! {
            "createIndexes": FLAGS,
            "indexes": [
                {
                    "key": { "tenant": 1, "conversation": 1, "message": 1, "reporter": 1 },
                    "name": "flags_key",
                    "unique": true,
                },
                {
                    "key": {
                        "tenant": 1, "conversation": 1, "created_at": 1, "message": 1,
                        "reporter": 1,
                    },
                    "name": "flags_open",
                    "partialFilterExpression": { "open": true },
                },
            ],
        }
    }
}

/// A stored flag: the body, with the native resolution winning.
fn decode(d: &Document) -> Result<Flag> {
    let mut f: Flag = body(d, WHAT)?;
    f.resolution = match d.get("resolution") {
        None | Some(Bson::Null) => None,
        Some(Bson::String(s)) => Some(from_json(s, RESOLUTION)?),
        Some(_) => {
            return Err(Error::internal(format!(
                "mongo: stored {WHAT} has a malformed `resolution`"
            )));
        }
    };
    Ok(f)
}

#[async_trait]
impl FlagStore for MongoStore {
    async fn flag(&self, flag: &Flag) -> Result<bool> {
        // The body leaves out what the native fields hold, so there is one
        // truth.
        let json = to_json(
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
        check_size(
            WHAT,
            json.len() + resolution.as_ref().map_or(0, String::len),
        )?;
        let done = self
            .bounded(
                "flag a message",
                self.coll(FLAGS).insert_one(commands::flag_document(
                    flag,
                    &json,
                    resolution.as_deref(),
                )),
            )
            .await;
        match done {
            Ok(_) => Ok(true),
            // Only the unique index maps to a conflict: flagged before.
            Err(Error::Conflict { .. }) => Ok(false),
            Err(e) => Err(e),
        }
    }

    async fn open_flags(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        limit: usize,
    ) -> Result<Vec<Flag>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::open_flags(tenant, conversation);
        self.find_all("list open flags", FLAGS, filter, sort, page_limit(limit))
            .await?
            .iter()
            .map(decode)
            .collect()
    }

    async fn resolve(
        &self,
        tenant: &TenantId,
        conversation: &ConversationId,
        message: &MessageId,
        resolution: &FlagResolution,
    ) -> Result<u64> {
        let resolution = to_json(resolution, RESOLUTION)?;
        let (filter, update) = commands::resolve(tenant, conversation, message, &resolution);
        let done = self
            .bounded(
                "resolve flags",
                self.coll(FLAGS).update_many(filter, update),
            )
            .await?;
        Ok(done.modified_count)
    }
}

#[cfg(test)]
mod tests {
    use super::commands::*;
    use super::decode;
    use caas_core::ids::{ConversationId, MessageId, TenantId, UserId};
    use caas_core::model::{Flag, FlagResolution};
    use caas_core::time::Timestamp;
    use mongodb::bson::doc;

    fn reported() -> Flag {
        Flag {
            tenant: TenantId::parse("acme").unwrap(),
            conversation_id: ConversationId::parse("c1").unwrap(),
            message_id: MessageId::parse("m_1").unwrap(),
            reporter: UserId::parse("bob").unwrap(),
            reason: "spam".into(),
            created_at: Timestamp::from_nanos(7),
            resolution: None,
        }
    }

    #[test]
    fn a_flag_is_stored_open_with_its_key_and_time() {
        let f = reported();
        assert_eq!(
            flag_document(&f, "{f}", None),
            doc! {
                "tenant": "acme", "conversation": "c1", "message": "m_1", "reporter": "bob",
                "created_at": 7_i64, "open": true, "doc": "{f}",
            }
        );
        // A time past i64::MAX saturates; one that comes settled is stored so.
        let late = Flag {
            created_at: Timestamp::from_nanos(u64::MAX),
            ..f
        };
        assert_eq!(
            flag_document(&late, "{f}", Some("{r}")),
            doc! {
                "tenant": "acme", "conversation": "c1", "message": "m_1", "reporter": "bob",
                "created_at": i64::MAX, "open": false, "doc": "{f}", "resolution": "{r}",
            }
        );
    }

    #[test]
    fn the_listing_and_the_settlement_take_open_flags_only() {
        let f = reported();
        assert_eq!(
            open_flags(&f.tenant, &f.conversation_id),
            (
                doc! { "tenant": "acme", "conversation": "c1", "open": true },
                doc! { "created_at": 1, "message": 1, "reporter": 1 },
            )
        );
        assert_eq!(
            resolve(&f.tenant, &f.conversation_id, &f.message_id, "{r}"),
            (
                doc! { "tenant": "acme", "conversation": "c1", "message": "m_1", "open": true },
                doc! { "$set": { "open": false, "resolution": "{r}" } },
            )
        );
        assert_eq!(
            create_indexes(),
            doc! {
                "createIndexes": "flags",
                "indexes": [
                    {
                        "key": { "tenant": 1, "conversation": 1, "message": 1, "reporter": 1 },
                        "name": "flags_key",
                        "unique": true,
                    },
                    {
                        "key": {
                            "tenant": 1, "conversation": 1, "created_at": 1, "message": 1,
                            "reporter": 1,
                        },
                        "name": "flags_open",
                        "partialFilterExpression": { "open": true },
                    },
                ],
            }
        );
    }

    #[test]
    fn stored_flags_decode_with_the_native_resolution_winning() {
        let f = reported();
        let json = serde_json::to_string(&f).unwrap();
        let mut d = flag_document(&f, &json, None);
        assert_eq!(decode(&d).unwrap(), f);
        let done = FlagResolution {
            by: UserId::parse("mod").unwrap(),
            at: Timestamp::from_nanos(9),
            action: "dismissed".into(),
        };
        d.insert("open", false);
        d.insert("resolution", serde_json::to_string(&done).unwrap());
        assert_eq!(
            decode(&d).unwrap(),
            Flag {
                resolution: Some(done),
                ..f
            }
        );
        d.insert("resolution", 3_i32);
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
        d.insert("resolution", "not json");
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
    }
}
