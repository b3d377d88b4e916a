//! Webhook endpoints, their delivery progress and dead letters. One document
//! per tenant and endpoint (the unique index `webhooks_id`): the configuration
//! is its JSON body (`doc`) and the delivery progress a second JSON string
//! (`progress`), rewritten by the lease holder. `created_at` is native so an
//! update keeps the first (the body's copy is replaced by it on read);
//! `disabled` and `retry_at` (nanoseconds, absent when not backing off) are
//! native for `due`, which the partial index `webhooks_due` serves in its
//! order; `lease_holder` and `lease_until` (absent until the first claim) are
//! the delivery lease.
//!
//! **The lease.** A claim is one `findOneAndUpdate` whose filter is the lease
//! (free, run out, or already the claimer's), and progress one `updateOne`
//! whose filter is the holder. The server applies each atomically against the
//! document's current state, matching it again when a concurrent write got
//! there first: of concurrent claims exactly one matches, and a node whose
//! lease was taken over can no longer write.
//!
//! **Dead letters** (one document per tenant, endpoint and delivery id, in
//! their own collection) never outlive their endpoint. Keeping one is a
//! transaction that first counts it on the endpoint's document (`$inc` of
//! `dead_letters`), so it writes nothing when the endpoint is gone, and
//! write-conflicts with a delete, which is a transaction removing the endpoint
//! and its letters: one of the two runs again and sees the other's outcome.

use async_trait::async_trait;
use caas_core::ids::{TenantId, WebhookId};
use caas_core::model::{DeadLetter, WebhookEndpoint, WebhookProgress};
use caas_core::ports::WebhookStore;
use caas_core::time::Timestamp;
use caas_core::{EntityKind, Error, Result};
use mongodb::bson::Document;
use mongodb::options::ReturnDocument;

use super::MongoStore;
use super::codec::{
    body, bound, check_size, from_json, get_i64, get_str, id, page_limit, to_json, to_u64,
    ts_to_i64,
};
use super::names::{WEBHOOK_DEAD_LETTERS, WEBHOOKS};
use super::txn::{Abort, OnDuplicate};

const WHAT: &str = "webhook";
const PROGRESS: &str = "webhook progress";
const LETTER: &str = "dead letter";

/// The command, filter and update documents of webhooks, as pure functions of
/// their arguments.
pub(super) mod commands {
    use caas_core::ids::{TenantId, WebhookId};
    use caas_core::model::{DeadLetter, WebhookEndpoint, WebhookProgress};
    use mongodb::bson::{Document, doc};

    use super::super::codec::bound;
    use super::super::names::{WEBHOOK_DEAD_LETTERS, WEBHOOKS};

    /// The `retry_at` field: saturated rather than refused, since it only
    /// decides when `due` lists the endpoint and `progress` keeps the exact
    /// value.
    pub(crate) fn retry_at(progress: &WebhookProgress) -> Option<i64> {
        progress.retry_at.map(|t| bound(t.as_nanos()))
    }

    /// An endpoint as stored (`insert_one`; the unique index `webhooks_id`
    /// refuses a second one), with no lease. `created_at` is the creation
    /// in nanoseconds; `json` the configuration, `progress` the progress.
    pub(crate) fn endpoint_document(
        e: &WebhookEndpoint,
        created_at: i64,
        json: &str,
        progress: &str,
    ) -> Document {
        let mut d = doc! {
            "tenant": e.tenant.as_str(),
            "id": e.id.as_str(),
                        "created_at": created_at,
            "updated_at": bound(e.updated_at.as_nanos()),
            "disabled": e.disabled,
            "doc": json,
            "progress": progress,
        };
        if let Some(at) = retry_at(&e.progress) {
            d.insert("retry_at", at);
        }
        d
    }

    /// One endpoint (the key of the unique index `webhooks_id`).
    pub(crate) fn by_id(tenant: &TenantId, id: &WebhookId) -> Document {
        doc! { "tenant": tenant.as_str(), "id": id.as_str() }
    }

    /// The configuration's replacement (`update_one`), only while the
    /// stored `updated_at` is `expected`: progress, lease and `created_at`
    /// stay.
    pub(crate) fn update(e: &WebhookEndpoint, json: &str, expected: i64) -> (Document, Document) {
        let mut filter = by_id(&e.tenant, &e.id);
        filter.insert("updated_at", expected);
        (
            filter,
            doc! { "$set": {
                "disabled": e.disabled,
                "doc": json,
                "updated_at": bound(e.updated_at.as_nanos()),
            } },
        )
    }

    /// Enabled endpoints not backing off at `now`, and their order (that of
    /// the partial index `webhooks_due`).
    pub(crate) fn due(now: i64, after: Option<(&str, &str)>) -> (Document, Document) {
        let mut filter = doc! {
            "disabled": false,
            "$or": [
                { "retry_at": { "$exists": false } },
                { "retry_at": { "$lte": now } },
            ],
        };
        if let Some((tenant, id)) = after {
            filter.insert(
                "$and",
                vec![doc! {
                    "$or": [
                        { "tenant": { "$gt": tenant } },
                        { "tenant": tenant, "id": { "$gt": id } },
                    ],
                }],
            );
        }
        (filter, doc! { "tenant": 1, "id": 1 })
    }

    /// The claim (`findOneAndUpdate`, returning the new document): matches
    /// only while the lease is free, ran out by `now`, or is `holder`'s.
    pub(crate) fn claim(
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        now: i64,
        until: i64,
    ) -> (Document, Document) {
        (
            doc! {
                "tenant": tenant.as_str(),
                "id": id.as_str(),
                "$or": [
                    { "lease_holder": { "$exists": false } },
                    { "lease_holder": holder },
                    { "lease_until": { "$lte": now } },
                ],
            },
            doc! { "$set": { "lease_holder": holder, "lease_until": until } },
        )
    }

    /// The progress (`update_one`): matches only while `holder` holds the
    /// lease.
    pub(crate) fn progress(
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        progress: &WebhookProgress,
        json: &str,
    ) -> (Document, Document) {
        let update = match retry_at(progress) {
            Some(at) => doc! { "$set": { "progress": json, "retry_at": at } },
            None => doc! { "$set": { "progress": json }, "$unset": { "retry_at": "" } },
        };
        (
            doc! { "tenant": tenant.as_str(), "id": id.as_str(), "lease_holder": holder },
            update,
        )
    }

    /// The write on the endpoint that keeping a dead letter starts with
    /// (`update_one`, in the letter's transaction): it matches nothing once the
    /// endpoint is gone, and conflicts with a concurrent delete.
    pub(crate) fn count_letter(tenant: &TenantId, id: &WebhookId) -> (Document, Document) {
        (
            by_id(tenant, id),
            doc! { "$inc": { "dead_letters": 1_i64 } },
        )
    }

    /// One dead letter (the key of the unique index `webhook_dead_letters_id`).
    pub(crate) fn letter_id(tenant: &TenantId, id: &WebhookId, letter: &str) -> Document {
        doc! { "tenant": tenant.as_str(), "webhook": id.as_str(), "id": letter }
    }

    /// A dead letter as stored (`replace_one` with upsert on
    /// [`letter_id`], so a second with the same id replaces the first).
    /// `json` is the letter; the cursor saturates rather than fails, since it
    /// only orders the listing and `json` keeps the exact value.
    pub(crate) fn letter_document(l: &DeadLetter, json: &str) -> Document {
        doc! {
            "tenant": l.tenant.as_str(),
            "webhook": l.webhook_id.as_str(),
            "id": l.id.as_str(),
            "cursor": bound(l.cursor.0),
            "doc": json,
        }
    }

    /// An endpoint's dead letters (`delete_many` on delete), and their order
    /// (oldest cursor first, then id: that of `webhook_dead_letters_by_cursor`).
    pub(crate) fn letters(tenant: &TenantId, id: &WebhookId) -> (Document, Document) {
        (
            doc! { "tenant": tenant.as_str(), "webhook": id.as_str() },
            doc! { "cursor": 1, "id": 1 },
        )
    }

    /// The `createIndexes` commands of `webhooks` and `webhook_dead_letters`.
    pub(crate) fn create_indexes() -> [Document; 2] {
        [
            doc! {
                "createIndexes": WEBHOOKS,
                "indexes": [
                    { "key": { "tenant": 1, "id": 1 }, "name": "webhooks_id", "unique": true },
                    {
                        "key": { "tenant": 1, "id": 1, "retry_at": 1 },
                        "name": "webhooks_due",
                        "partialFilterExpression": { "disabled": false },
                    },
                ],
            },
            doc! {
                "createIndexes": WEBHOOK_DEAD_LETTERS,
                "indexes": [
                    {
                        "key": { "tenant": 1, "webhook": 1, "id": 1 },
                        "name": "webhook_dead_letters_id",
                        "unique": true,
                    },
                    {
                        "key": { "tenant": 1, "webhook": 1, "cursor": 1, "id": 1 },
                        "name": "webhook_dead_letters_by_cursor",
                    },
                ],
            },
        ]
    }
}

/// A stored endpoint: the body, with the native `created_at` and the
/// progress winning.
fn decode(d: &Document) -> Result<WebhookEndpoint> {
    let mut e: WebhookEndpoint = body(d, WHAT)?;
    e.created_at = Timestamp::from_nanos(to_u64(get_i64(d, "created_at", WHAT)?, "created_at")?);
    e.progress = from_json(get_str(d, "progress", WHAT)?, PROGRESS)?;
    Ok(e)
}

/// The key of a `due` result.
fn decode_key(d: &Document) -> Result<(TenantId, WebhookId)> {
    Ok((
        id::<TenantId>(get_str(d, "tenant", WHAT)?)?,
        id::<WebhookId>(get_str(d, "id", WHAT)?)?,
    ))
}

#[async_trait]
impl WebhookStore for MongoStore {
    async fn create(&self, endpoint: &WebhookEndpoint) -> Result<()> {
        let json = to_json(&endpoint.configuration(), WHAT)?;
        let progress = to_json(&endpoint.progress, PROGRESS)?;
        check_size(WHAT, json.len() + progress.len())?;
        let created_at = ts_to_i64(endpoint.created_at, "created_at")?;
        self.bounded(
            "create webhook",
            self.coll(WEBHOOKS).insert_one(commands::endpoint_document(
                endpoint, created_at, &json, &progress,
            )),
        )
        .await
        .map(|_| ())
        .map_err(|e| match e {
            Error::Conflict { .. } => Error::conflict(format!("webhook `{}` exists", endpoint.id)),
            e => e,
        })
    }

    async fn update(&self, endpoint: &WebhookEndpoint, expected: Timestamp) -> Result<()> {
        let json = to_json(&endpoint.configuration(), WHAT)?;
        check_size(WHAT, json.len())?;
        let (filter, update) = commands::update(endpoint, &json, bound(expected.as_nanos()));
        let done = self
            .bounded(
                "update webhook",
                self.coll(WEBHOOKS).update_one(filter, update),
            )
            .await?;
        if done.matched_count == 0 {
            return Err(match self.get(&endpoint.tenant, &endpoint.id).await? {
                Some(_) => Error::conflict(format!("webhook `{}` changed meanwhile", endpoint.id)),
                None => Error::not_found(EntityKind::Webhook, &endpoint.id),
            });
        }
        Ok(())
    }

    async fn get(&self, tenant: &TenantId, id: &WebhookId) -> Result<Option<WebhookEndpoint>> {
        let found = self
            .bounded(
                "get webhook",
                self.coll(WEBHOOKS).find_one(commands::by_id(tenant, id)),
            )
            .await?;
        found.as_ref().map(decode).transpose()
    }

    async fn list(&self, tenant: &TenantId) -> Result<Vec<WebhookEndpoint>> {
        self.find_all(
            "list webhooks",
            WEBHOOKS,
            mongodb::bson::doc! { "tenant": tenant.as_str() },
            mongodb::bson::doc! { "id": 1 },
            None,
        )
        .await?
        .iter()
        .map(decode)
        .collect()
    }

    async fn delete(&self, tenant: &TenantId, id: &WebhookId) -> Result<bool> {
        let (endpoints, letters) = (self.coll(WEBHOOKS), self.coll(WEBHOOK_DEAD_LETTERS));
        self.transaction("delete webhook", OnDuplicate::Retry, |s| {
            let (endpoints, letters) = (endpoints.clone(), letters.clone());
            let (tenant, id) = (tenant.clone(), id.clone());
            Box::pin(async move {
                let gone = endpoints
                    .delete_one(commands::by_id(&tenant, &id))
                    .session(&mut *s)
                    .await?;
                letters
                    .delete_many(commands::letters(&tenant, &id).0)
                    .session(&mut *s)
                    .await?;
                Ok::<_, Abort>(gone.deleted_count > 0)
            })
        })
        .await
    }

    async fn due(
        &self,
        now: Timestamp,
        after: Option<&(TenantId, WebhookId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, WebhookId)>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::due(
            bound(now.as_nanos()),
            after.map(|(t, i)| (t.as_str(), i.as_str())),
        );
        self.find_projected(
            "list due webhooks",
            WEBHOOKS,
            filter,
            sort,
            mongodb::bson::doc! { "_id": 0, "tenant": 1, "id": 1 },
            page_limit(limit),
        )
        .await?
        .iter()
        .map(decode_key)
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
        let (filter, update) = commands::claim(
            tenant,
            id,
            holder,
            bound(now.as_nanos()),
            bound(until.as_nanos()),
        );
        let done = self
            .bounded(
                "claim webhook",
                self.coll(WEBHOOKS)
                    .find_one_and_update(filter, update)
                    .return_document(ReturnDocument::After),
            )
            .await?;
        done.as_ref().map(decode).transpose()
    }

    async fn progress(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
        progress: &WebhookProgress,
    ) -> Result<bool> {
        let json = to_json(progress, PROGRESS)?;
        check_size(PROGRESS, json.len())?;
        let (filter, update) = commands::progress(tenant, id, holder, progress, &json);
        let done = self
            .bounded(
                "record webhook progress",
                self.coll(WEBHOOKS).update_one(filter, update),
            )
            .await?;
        Ok(done.matched_count > 0)
    }

    async fn dead_letter(&self, letter: &DeadLetter) -> Result<()> {
        let json = to_json(letter, LETTER)?;
        check_size(LETTER, json.len())?;
        let document = commands::letter_document(letter, &json);
        let (endpoints, letters) = (self.coll(WEBHOOKS), self.coll(WEBHOOK_DEAD_LETTERS));
        // A racing upsert of the same letter may meet the unique index: run
        // again, when it then replaces the other.
        self.transaction("keep dead letter", OnDuplicate::Retry, |s| {
            let (endpoints, letters) = (endpoints.clone(), letters.clone());
            let (letter, document) = (letter.clone(), document.clone());
            Box::pin(async move {
                let (filter, update) = commands::count_letter(&letter.tenant, &letter.webhook_id);
                let counted = endpoints
                    .update_one(filter, update)
                    .session(&mut *s)
                    .await?;
                // A letter of a deleted endpoint has nowhere to go.
                if counted.matched_count == 0 {
                    return Ok(());
                }
                letters
                    .replace_one(
                        commands::letter_id(&letter.tenant, &letter.webhook_id, &letter.id),
                        document,
                    )
                    .upsert(true)
                    .session(&mut *s)
                    .await?;
                Ok::<_, Abort>(())
            })
        })
        .await
    }

    async fn dead_letters(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        limit: usize,
    ) -> Result<Vec<DeadLetter>> {
        // MongoDB reads a limit of 0 as "no limit".
        if limit == 0 {
            return Ok(Vec::new());
        }
        let (filter, sort) = commands::letters(tenant, id);
        self.find_all(
            "list dead letters",
            WEBHOOK_DEAD_LETTERS,
            filter,
            sort,
            page_limit(limit),
        )
        .await?
        .iter()
        .map(|d| body(d, LETTER))
        .collect()
    }

    async fn remove_dead_letter(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        letter: &str,
    ) -> Result<bool> {
        let done = self
            .bounded(
                "remove dead letter",
                self.coll(WEBHOOK_DEAD_LETTERS)
                    .delete_one(commands::letter_id(tenant, id, letter)),
            )
            .await?;
        Ok(done.deleted_count > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::super::codec::bound;
    use super::commands::*;
    use super::{decode, decode_key};
    use caas_core::ids::{Cursor, TenantId, WebhookId};
    use caas_core::model::{DeadLetter, WebhookEndpoint, WebhookProgress, WebhookSecret};
    use caas_core::time::Timestamp;
    use mongodb::bson::doc;

    fn ids() -> (TenantId, WebhookId) {
        (
            TenantId::parse("acme").unwrap(),
            WebhookId::parse("wh_1").unwrap(),
        )
    }

    fn endpoint() -> WebhookEndpoint {
        let (tenant, id) = ids();
        WebhookEndpoint {
            tenant,
            id,
            url: "https://hooks.example.com/caas".into(),
            kinds: vec!["*".into()],
            secrets: vec![WebhookSecret {
                secret: "whsec_0123".into(),
                created_at: Timestamp::from_nanos(1),
                expires_at: None,
            }],
            disabled: false,
            created_at: Timestamp::from_nanos(1),
            updated_at: Timestamp::from_nanos(2),
            progress: WebhookProgress::default(),
        }
    }

    #[test]
    fn an_endpoint_is_stored_without_a_lease_and_updated_in_its_configuration_only() {
        let e = endpoint();
        assert_eq!(
            endpoint_document(&e, 1, "{e}", "{p}"),
            doc! {
                                "tenant": "acme", "id": "wh_1", "created_at": 1_i64,
                "updated_at": bound(e.updated_at.as_nanos()), "disabled": false,
                "doc": "{e}", "progress": "{p}",
            }
        );
        // One that comes backing off carries its `retry_at`, saturated.
        let backing_off = WebhookEndpoint {
            disabled: true,
            progress: WebhookProgress {
                retry_at: Some(Timestamp::from_nanos(u64::MAX)),
                ..WebhookProgress::default()
            },
            ..e.clone()
        };
        assert_eq!(
            endpoint_document(&backing_off, 1, "{e}", "{p}"),
            doc! {
                                "tenant": "acme", "id": "wh_1", "created_at": 1_i64,
                "updated_at": bound(e.updated_at.as_nanos()), "disabled": true,
                "doc": "{e}", "progress": "{p}", "retry_at": i64::MAX,
            }
        );
        assert_eq!(
            update(&backing_off, "{e2}", 7),
            (
                doc! { "tenant": "acme", "id": "wh_1", "updated_at": 7_i64 },
                doc! { "$set": {
                    "disabled": true,
                    "doc": "{e2}",
                    "updated_at": bound(e.updated_at.as_nanos()),
                } },
            )
        );
    }

    #[test]
    fn a_claim_matches_a_free_run_out_or_own_lease_and_progress_the_holder_only() {
        let (t, id) = ids();
        assert_eq!(
            claim(&t, &id, "n1", 10, 70),
            (
                doc! {
                    "tenant": "acme", "id": "wh_1",
                    "$or": [
                        { "lease_holder": { "$exists": false } },
                        { "lease_holder": "n1" },
                        { "lease_until": { "$lte": 10_i64 } },
                    ],
                },
                doc! { "$set": { "lease_holder": "n1", "lease_until": 70_i64 } },
            )
        );
        let backoff = WebhookProgress {
            cursor: Cursor(4),
            attempts: 2,
            retry_at: Some(Timestamp::from_nanos(30)),
            last_error: Some("status 503".into()),
        };
        assert_eq!(
            progress(&t, &id, "n1", &backoff, "{p}"),
            (
                doc! { "tenant": "acme", "id": "wh_1", "lease_holder": "n1" },
                doc! { "$set": { "progress": "{p}", "retry_at": 30_i64 } },
            )
        );
        // Delivered: no backoff left to keep.
        assert_eq!(
            progress(&t, &id, "n1", &WebhookProgress::default(), "{p}").1,
            doc! { "$set": { "progress": "{p}" }, "$unset": { "retry_at": "" } }
        );
    }

    #[test]
    fn due_takes_enabled_endpoints_not_backing_off_in_key_order() {
        assert_eq!(
            due(20, None),
            (
                doc! {
                    "disabled": false,
                    "$or": [
                        { "retry_at": { "$exists": false } },
                        { "retry_at": { "$lte": 20_i64 } },
                    ],
                },
                doc! { "tenant": 1, "id": 1 },
            )
        );
        assert_eq!(
            due(20, Some(("acme", "wh_1"))).0,
            doc! {
                "disabled": false,
                "$or": [
                    { "retry_at": { "$exists": false } },
                    { "retry_at": { "$lte": 20_i64 } },
                ],
                "$and": [{
                    "$or": [
                        { "tenant": { "$gt": "acme" } },
                        { "tenant": "acme", "id": { "$gt": "wh_1" } },
                    ],
                }],
            }
        );
        assert_eq!(
            decode_key(&doc! { "tenant": "acme", "id": "wh_1" }).unwrap(),
            ids()
        );
        assert_eq!(
            decode_key(&doc! { "tenant": "acme", "id": "not an id!" })
                .unwrap_err()
                .code(),
            "internal"
        );
    }

    #[test]
    fn dead_letters_are_kept_per_id_only_for_an_existing_endpoint() {
        let (t, id) = ids();
        assert_eq!(
            count_letter(&t, &id),
            (
                doc! { "tenant": "acme", "id": "wh_1" },
                doc! { "$inc": { "dead_letters": 1_i64 } },
            )
        );
        let l = DeadLetter {
            tenant: t.clone(),
            webhook_id: id.clone(),
            id: "4.push".into(),
            cursor: Cursor(u64::MAX),
            kind: "push.requested".into(),
            attempts: 3,
            last_error: "status 500".into(),
            failed_at: Timestamp::from_nanos(9),
        };
        assert_eq!(
            letter_document(&l, "{l}"),
            doc! {
                "tenant": "acme", "webhook": "wh_1", "id": "4.push", "cursor": i64::MAX,
                "doc": "{l}",
            }
        );
        assert_eq!(
            letter_id(&t, &id, "4.push"),
            doc! { "tenant": "acme", "webhook": "wh_1", "id": "4.push" }
        );
        assert_eq!(
            letters(&t, &id),
            (
                doc! { "tenant": "acme", "webhook": "wh_1" },
                doc! { "cursor": 1, "id": 1 },
            )
        );
    }

    #[test]
    fn the_indexes_are_unique_per_key_and_serve_the_listings() {
        assert_eq!(
            create_indexes(),
            [
                doc! {
                    "createIndexes": "webhooks",
                    "indexes": [
                        { "key": { "tenant": 1, "id": 1 }, "name": "webhooks_id", "unique": true },
                        {
                            "key": { "tenant": 1, "id": 1, "retry_at": 1 },
                            "name": "webhooks_due",
                            "partialFilterExpression": { "disabled": false },
                        },
                    ],
                },
                doc! {
                    "createIndexes": "webhook_dead_letters",
                    "indexes": [
                        {
                            "key": { "tenant": 1, "webhook": 1, "id": 1 },
                            "name": "webhook_dead_letters_id",
                            "unique": true,
                        },
                        {
                            "key": { "tenant": 1, "webhook": 1, "cursor": 1, "id": 1 },
                            "name": "webhook_dead_letters_by_cursor",
                        },
                    ],
                },
            ]
        );
    }

    #[test]
    fn stored_endpoints_decode_with_the_native_fields_winning() {
        let e = endpoint();
        let moved = WebhookProgress {
            cursor: Cursor(9),
            attempts: 1,
            retry_at: Some(Timestamp::from_nanos(40)),
            last_error: Some("status 500".into()),
        };
        let json = serde_json::to_string(&WebhookEndpoint {
            created_at: Timestamp::from_nanos(99),
            ..e.clone()
        })
        .unwrap();
        let mut d = endpoint_document(&e, 1, &json, &serde_json::to_string(&moved).unwrap());
        // A claimed endpoint carries its lease beside the rest.
        d.insert("lease_holder", "n1");
        d.insert("lease_until", 70_i64);
        assert_eq!(
            decode(&d).unwrap(),
            WebhookEndpoint {
                progress: moved,
                ..e
            }
        );
        d.insert("progress", "{not json");
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
        d.insert("progress", 3_i32);
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
        d.insert("progress", "{\"cursor\":0,\"attempts\":0}");
        assert!(decode(&d).is_ok());
        d.insert("created_at", -1_i64);
        assert_eq!(decode(&d).unwrap_err().code(), "internal");
    }
}
