//! Webhooks: a tenant's endpoints receive chosen kinds of its durable events,
//! signed, in log order, at least once.
//!
//! Delivery reads the tenant's event log, not the bus, from a cursor stored
//! per endpoint: a node that crashes mid-delivery loses nothing, and the node
//! that takes over its lease (or the same node, restarted) resends from the
//! stored cursor. Receivers dedupe by `caas-event-id`, which names one
//! delivery of one endpoint and never changes between attempts.

use std::net::IpAddr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::{Caas, audit_record};
use crate::error::{EntityKind, Error, Result};
use crate::events::{EventPayload, LoggedEvent};
use crate::ids::{Cursor, TenantId, UserId, WebhookId};
use crate::model::{DeadLetter, PresenceStatus, WebhookEndpoint, WebhookProgress, WebhookSecret};
use crate::policy::{Action, Attrs};
use crate::ports::{WebhookOutcome, WebhookRequest, WebhookSender, is_public_address};
use crate::principal::Principal;
use crate::time::Timestamp;

/// The kind of the delivery made when a message reaches members who are
/// offline: for the host's push notifications.
pub const PUSH_KIND: &str = "push.requested";

/// Every kind an endpoint may choose (besides `*`): the durable event kinds
/// and [`PUSH_KIND`].
pub const WEBHOOK_KINDS: &[&str] = &[
    "message.created",
    "message.edited",
    "message.deleted",
    "message.pinned",
    "reaction.added",
    "reaction.removed",
    "receipt.updated",
    "conversation.created",
    "conversation.updated",
    "member.joined",
    "member.left",
    "member.updated",
    "user.updated",
    "tenant.updated",
    PUSH_KIND,
];

/// Longest endpoint URL, in bytes.
pub const MAX_URL_BYTES: usize = 2048;

/// Most dead letters one replay sends.
pub const MAX_REPLAY: usize = 100;

/// Longest push preview, in characters.
const PREVIEW_CHARS: usize = 100;

/// Batches one delivery pass sends before it lets other endpoints run.
const BATCHES_PER_PASS: usize = 10;

/// Longest failure text kept, in bytes.
const MAX_ERROR_BYTES: usize = 300;

/// How webhooks are delivered.
#[derive(Debug, Clone)]
pub struct WebhookConfig {
    /// Attempts at one delivery before it becomes a dead letter.
    pub max_attempts: u32,
    /// The wait after the first failure; it doubles with each further one.
    pub backoff_base: Duration,
    /// The longest wait between attempts.
    pub backoff_max: Duration,
    /// How long a node holds an endpoint's delivery without renewing; at
    /// least four times the sender's time limit per attempt, so an event's
    /// two requests always end inside it.
    pub lease: Duration,
    /// Events read from the log at a time.
    pub batch: usize,
    /// Most endpoints per tenant.
    pub max_endpoints: usize,
    /// How long the previous secret still signs after a rotation, unless the
    /// rotation says otherwise.
    pub rotation_grace: Duration,
    /// How old a message may be when its push request is delivered; older
    /// ones are not pushed.
    pub push_window: Duration,
    /// Whether endpoints may be `http://` and name loopback or private
    /// addresses: for development and tests, never for a shared platform.
    pub allow_insecure_urls: bool,
}

impl Default for WebhookConfig {
    fn default() -> Self {
        Self {
            max_attempts: 8,
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(15 * 60),
            lease: Duration::from_secs(60),
            batch: 100,
            max_endpoints: 10,
            rotation_grace: Duration::from_secs(24 * 3600),
            push_window: Duration::from_secs(10 * 60),
            allow_insecure_urls: false,
        }
    }
}

/// A new endpoint.
#[derive(Debug, Clone, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct NewWebhook {
    /// Where deliveries are POSTed.
    #[cfg_attr(feature = "openapi", schema(pattern = "^https://", max_length = 2048))]
    pub url: String,
    /// The kinds delivered (see [`WEBHOOK_KINDS`]), or `["*"]` for all.
    pub kinds: Vec<String>,
    /// Created disabled: nothing is delivered until it is enabled.
    #[serde(default)]
    pub disabled: bool,
}

/// A change to an endpoint; absent fields stay.
#[derive(Debug, Clone, Default, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[serde(deny_unknown_fields)]
pub struct WebhookChange {
    /// A new URL.
    #[cfg_attr(feature = "openapi", schema(pattern = "^https://", max_length = 2048))]
    pub url: Option<String>,
    /// New kinds.
    pub kinds: Option<Vec<String>>,
    /// Disable (keeping its place in the log) or enable.
    pub disabled: Option<bool>,
}

/// An endpoint as its tenant sees it: everything but the secrets.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Webhook {
    /// The endpoint.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub id: WebhookId,
    /// Where deliveries go.
    pub url: String,
    /// The kinds delivered.
    pub kinds: Vec<String>,
    /// Whether delivery is paused.
    pub disabled: bool,
    /// When it was created.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
    /// When its configuration last changed.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub updated_at: Timestamp,
    /// The secrets that sign deliveries, newest first (their times only).
    pub secrets: Vec<SecretTimes>,
    /// How far delivery has come.
    pub progress: WebhookProgress,
}

/// When a signing secret was made and when it stops signing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SecretTimes {
    /// When it was made.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub created_at: Timestamp,
    /// When it stops signing; absent for the current secret.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub expires_at: Option<Timestamp>,
}

impl From<&WebhookEndpoint> for Webhook {
    fn from(e: &WebhookEndpoint) -> Self {
        Self {
            id: e.id.clone(),
            url: e.url.clone(),
            kinds: e.kinds.clone(),
            disabled: e.disabled,
            created_at: e.created_at,
            updated_at: e.updated_at,
            secrets: e
                .secrets
                .iter()
                .map(|s| SecretTimes {
                    created_at: s.created_at,
                    expires_at: s.expires_at,
                })
                .collect(),
            progress: e.progress.clone(),
        }
    }
}

/// An endpoint with a new signing secret, shown this once. Its `Debug` shows
/// no secret.
#[derive(Clone, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct WebhookWithSecret {
    /// The endpoint.
    pub webhook: Webhook,
    /// The new secret (`whsec_…`): verify deliveries' `caas-signature` with it.
    pub secret: String,
}

impl std::fmt::Debug for WebhookWithSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookWithSecret")
            .field("webhook", &self.webhook)
            .finish_non_exhaustive()
    }
}

/// What a replay of dead letters did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Replay {
    /// Letters delivered now, and removed.
    pub delivered: Vec<String>,
    /// Letters with nothing left to send (a push whose recipients are all
    /// online now), removed.
    pub skipped: Vec<String>,
    /// Letters that failed again, kept.
    pub failed: Vec<ReplayFailure>,
}

/// A dead letter that failed again.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReplayFailure {
    /// The letter.
    pub id: String,
    /// Why.
    pub error: String,
}

/// What one delivery pass over an endpoint did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WebhookPass {
    /// Deliveries the receiver took.
    pub delivered: u64,
    /// Attempts that failed (to be retried after a backoff).
    pub failed: u64,
    /// Deliveries given up and kept as dead letters.
    pub dead_lettered: u64,
}

/// An endpoint leased to this node for a pass.
struct Lease<'a> {
    holder: &'a str,
    claimed_at: Timestamp,
    endpoint: WebhookEndpoint,
}

/// One request to make for one logged event.
#[derive(Debug)]
struct Delivery {
    id: String,
    kind: &'static str,
    body: Vec<u8>,
}

/// What a push delivery carries.
#[derive(Serialize)]
struct PushRequest<'a> {
    conversation_id: &'a crate::ids::ConversationId,
    message_id: &'a crate::ids::MessageId,
    seq: crate::ids::Seq,
    sender_id: &'a UserId,
    recipients: Vec<UserId>,
    /// The first characters of a plain-text body; none for encrypted ones.
    #[serde(skip_serializing_if = "Option::is_none")]
    preview: Option<String>,
}

impl Caas {
    /// Makes deliveries with `sender` (an HTTP client). Without one, endpoints
    /// can be managed but nothing is delivered.
    pub fn with_webhook_sender(mut self, sender: std::sync::Arc<dyn WebhookSender>) -> Self {
        self.webhook_sender = Some(sender);
        self
    }

    /// Registers an endpoint; it receives events logged from now on. Returns
    /// its signing secret, shown only here.
    pub async fn create_webhook(
        &self,
        p: &Principal,
        new: NewWebhook,
    ) -> Result<WebhookWithSecret> {
        let ctx = self.ctx(p).await?;
        let rule = self.manage(&ctx).await?;
        let cfg = &self.cfg.webhooks;
        check_url(&new.url, cfg.allow_insecure_urls)?;
        let kinds = check_kinds(new.kinds)?;
        if self.b.webhooks.list(&ctx.tenant).await?.len() >= cfg.max_endpoints {
            return Err(Error::invalid(
                "webhook",
                format!("a tenant has at most {} endpoints", cfg.max_endpoints),
            ));
        }
        let secret = self.auth_ports()?.authority.new_webhook_secret()?;
        let endpoint = WebhookEndpoint {
            tenant: ctx.tenant.clone(),
            id: WebhookId::generate(ctx.now),
            url: new.url,
            kinds,
            secrets: vec![WebhookSecret {
                secret: secret.clone(),
                created_at: ctx.now,
                expires_at: None,
            }],
            disabled: new.disabled,
            created_at: ctx.now,
            updated_at: ctx.now,
            progress: WebhookProgress {
                cursor: self.b.events.head(&ctx.tenant).await?,
                ..WebhookProgress::default()
            },
        };
        self.audit_webhook(
            &ctx,
            &rule,
            &endpoint.id,
            serde_json::json!({
                "op": "create",
                "url": without_query(&endpoint.url),
                "kinds": endpoint.kinds,
            }),
        )
        .await?;
        self.b.webhooks.create(&endpoint).await?;
        Ok(WebhookWithSecret {
            webhook: Webhook::from(&endpoint),
            secret,
        })
    }

    /// The tenant's endpoints.
    pub async fn list_webhooks(&self, p: &Principal) -> Result<Vec<Webhook>> {
        let tenant = self.webhook_ctx(p).await?;
        let all = self.b.webhooks.list(&tenant).await?;
        Ok(all.iter().map(Webhook::from).collect())
    }

    /// One endpoint.
    pub async fn get_webhook(&self, p: &Principal, id: &WebhookId) -> Result<Webhook> {
        let tenant = self.webhook_ctx(p).await?;
        Ok(Webhook::from(&self.endpoint(&tenant, id).await?))
    }

    /// Changes an endpoint's URL, kinds or whether it is disabled.
    pub async fn update_webhook(
        &self,
        p: &Principal,
        id: &WebhookId,
        change: WebhookChange,
    ) -> Result<Webhook> {
        let ctx = self.ctx(p).await?;
        let rule = self.manage(&ctx).await?;
        if let Some(url) = &change.url {
            check_url(url, self.cfg.webhooks.allow_insecure_urls)?;
        }
        let kinds = change.kinds.map(check_kinds).transpose()?;
        self.endpoint(&ctx.tenant, id).await?;
        self.audit_webhook(
            &ctx,
            &rule,
            id,
            serde_json::json!({
                "op": "update",
                "url": change.url.as_deref().map(without_query),
                "kinds": kinds,
                "disabled": change.disabled,
            }),
        )
        .await?;
        let changed = self
            .change_endpoint(&ctx.tenant, id, ctx.now, |endpoint| {
                if let Some(url) = &change.url {
                    endpoint.url.clone_from(url);
                }
                if let Some(kinds) = &kinds {
                    endpoint.kinds.clone_from(kinds);
                }
                if let Some(disabled) = change.disabled {
                    endpoint.disabled = disabled;
                }
            })
            .await?;
        Ok(Webhook::from(&changed))
    }

    /// Reads the endpoint, applies `change` and writes it back unless another
    /// change came in between (then again, from the new state), so two
    /// changes at once (a PATCH and a rotation) never undo each other.
    async fn change_endpoint(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        now: Timestamp,
        change: impl Fn(&mut WebhookEndpoint),
    ) -> Result<WebhookEndpoint> {
        const TRIES: usize = 5;
        for _ in 0..TRIES {
            let mut endpoint = self.endpoint(tenant, id).await?;
            let expected = endpoint.updated_at;
            change(&mut endpoint);
            // Strictly later, so a change in the same instant is still seen.
            endpoint.updated_at = now.max(expected.plus(Duration::from_nanos(1)));
            match self.b.webhooks.update(&endpoint, expected).await {
                Ok(()) => return Ok(endpoint),
                Err(Error::Conflict { .. }) => continue,
                Err(e) => return Err(e),
            }
        }
        Err(Error::conflict(format!(
            "webhook `{id}` is being changed by others; try again"
        )))
    }

    /// Removes an endpoint and its dead letters.
    pub async fn delete_webhook(&self, p: &Principal, id: &WebhookId) -> Result<()> {
        let ctx = self.ctx(p).await?;
        let rule = self.manage(&ctx).await?;
        self.endpoint(&ctx.tenant, id).await?;
        self.audit_webhook(&ctx, &rule, id, serde_json::json!({"op": "delete"}))
            .await?;
        if !self.b.webhooks.delete(&ctx.tenant, id).await? {
            return Err(Error::not_found(EntityKind::Webhook, id));
        }
        Ok(())
    }

    /// Makes a new signing secret. The one it replaces keeps signing for
    /// `grace_secs` (default [`WebhookConfig::rotation_grace`], at most 7
    /// days; 0 stops it at once), so receivers can switch without losing a
    /// delivery; any older one stops now. Returns the new secret, shown only
    /// here.
    pub async fn rotate_webhook_secret(
        &self,
        p: &Principal,
        id: &WebhookId,
        grace_secs: Option<u64>,
    ) -> Result<WebhookWithSecret> {
        const MAX_GRACE_SECS: u64 = 7 * 24 * 3600;
        let ctx = self.ctx(p).await?;
        let rule = self.manage(&ctx).await?;
        let grace = match grace_secs {
            Some(s) if s > MAX_GRACE_SECS => {
                return Err(Error::invalid(
                    "grace_secs",
                    format!("at most {MAX_GRACE_SECS} (7 days)"),
                ));
            }
            Some(s) => Duration::from_secs(s),
            None => self.cfg.webhooks.rotation_grace,
        };
        self.endpoint(&ctx.tenant, id).await?;
        let secret = self.auth_ports()?.authority.new_webhook_secret()?;
        self.audit_webhook(
            &ctx,
            &rule,
            id,
            serde_json::json!({"op": "rotate_secret", "grace_secs": grace.as_secs()}),
        )
        .await?;
        let (now, until) = (ctx.now, ctx.now.plus(grace));
        let rotated = self
            .change_endpoint(&ctx.tenant, id, now, |endpoint| {
                // At most two secrets sign: the new one and the newest before
                // it, for the grace (receivers accept a bounded number of
                // signatures, so rotations in a row must not pile them up).
                let previous = endpoint
                    .signing_secrets(now)
                    .next()
                    .cloned()
                    .map(|mut s| {
                        s.expires_at = Some(s.expires_at.map_or(until, |at| at.min(until)));
                        s
                    })
                    .filter(|s| s.expires_at.is_none_or(|at| at > now));
                endpoint.secrets = std::iter::once(WebhookSecret {
                    secret: secret.clone(),
                    created_at: now,
                    expires_at: None,
                })
                .chain(previous)
                .collect();
            })
            .await?;
        Ok(WebhookWithSecret {
            webhook: Webhook::from(&rotated),
            secret,
        })
    }

    /// The endpoint's dead letters, oldest first.
    pub async fn dead_letters(&self, p: &Principal, id: &WebhookId) -> Result<Vec<DeadLetter>> {
        let tenant = self.webhook_ctx(p).await?;
        self.endpoint(&tenant, id).await?;
        self.b
            .webhooks
            .dead_letters(&tenant, id, self.cfg.max_page)
            .await
    }

    /// Sends dead letters again, once each, now: those named in `only`, or
    /// the oldest [`MAX_REPLAY`]. Delivered ones are removed; failed ones stay
    /// with the new failure.
    pub async fn replay_dead_letters(
        &self,
        p: &Principal,
        id: &WebhookId,
        only: Option<Vec<String>>,
    ) -> Result<Replay> {
        let ctx = self.ctx(p).await?;
        let rule = self.manage(&ctx).await?;
        if only.as_ref().is_some_and(|o| o.len() > MAX_REPLAY) {
            return Err(Error::invalid(
                "ids",
                format!("at most {MAX_REPLAY} per replay"),
            ));
        }
        let endpoint = self.endpoint(&ctx.tenant, id).await?;
        let limit = if only.is_some() {
            usize::MAX
        } else {
            MAX_REPLAY
        };
        let letters: Vec<DeadLetter> = self
            .b
            .webhooks
            .dead_letters(&ctx.tenant, id, limit)
            .await?
            .into_iter()
            .filter(|l| only.as_ref().is_none_or(|o| o.contains(&l.id)))
            .collect();
        if let Some(only) = &only
            && let Some(missing) = only.iter().find(|o| !letters.iter().any(|l| &l.id == *o))
        {
            return Err(Error::not_found(EntityKind::DeadLetter, missing));
        }
        let mut replay = Replay::default();
        if letters.is_empty() {
            return Ok(replay);
        }
        let sender = self
            .webhook_sender
            .clone()
            .ok_or_else(|| Error::Unavailable {
                backend: "webhooks",
                context: "no webhook sender is configured".into(),
                temporary: false,
                source: None,
            })?;
        self.audit_webhook(
            &ctx,
            &rule,
            id,
            serde_json::json!({
                "op": "replay",
                "letters": letters.iter().map(|l| l.id.as_str()).collect::<Vec<_>>(),
            }),
        )
        .await?;
        for letter in letters {
            let logged = self
                .b
                .events
                .read_tenant(&ctx.tenant, Cursor(letter.cursor.0.saturating_sub(1)), 1)
                .await?
                .into_iter()
                .find(|l| l.cursor == letter.cursor);
            let delivery = match logged {
                Some(logged) => {
                    let now = self.now();
                    let all = self.deliveries(&endpoint, &logged, now, true).await?;
                    all.into_iter().find(|d| d.id == letter.id)
                }
                None => None,
            };
            let Some(delivery) = delivery else {
                self.b
                    .webhooks
                    .remove_dead_letter(&ctx.tenant, id, &letter.id)
                    .await?;
                replay.skipped.push(letter.id);
                continue;
            };
            let now = self.now();
            let outcome = self
                .send(&*sender, &endpoint, &delivery, letter.attempts + 1, now)
                .await?;
            if outcome.delivered() {
                self.b
                    .webhooks
                    .remove_dead_letter(&ctx.tenant, id, &letter.id)
                    .await?;
                replay.delivered.push(letter.id);
            } else {
                let error = describe(&outcome);
                self.b
                    .webhooks
                    .dead_letter(&DeadLetter {
                        attempts: letter.attempts + 1,
                        last_error: error.clone(),
                        failed_at: now,
                        ..letter.clone()
                    })
                    .await?;
                replay.failed.push(ReplayFailure {
                    id: letter.id,
                    error,
                });
            }
        }
        Ok(replay)
    }

    /// Up to `limit` endpoints of any tenant that may have deliveries to
    /// attempt now, by tenant and id, after `after` (a page's last key).
    pub async fn webhooks_due(
        &self,
        after: Option<&(TenantId, WebhookId)>,
        limit: usize,
    ) -> Result<Vec<(TenantId, WebhookId)>> {
        if self.webhook_sender.is_none() {
            return Ok(Vec::new());
        }
        self.b.webhooks.due(self.now(), after, limit).await
    }

    /// Delivers what the endpoint has not received yet, as `holder` (a name
    /// unique to this node): takes the endpoint's lease, sends the log's
    /// events after its cursor in order, and records how far it came. A
    /// failure sets a backoff and ends the pass; after
    /// [`WebhookConfig::max_attempts`] the delivery becomes a dead letter and
    /// the next one follows. Another node's lease makes this a no-op. A store
    /// failure keeps what the pass delivered and waits a backoff before the
    /// next pass.
    pub async fn deliver_webhook(
        &self,
        tenant: &TenantId,
        id: &WebhookId,
        holder: &str,
    ) -> Result<WebhookPass> {
        let mut pass = WebhookPass::default();
        let Some(sender) = self.webhook_sender.clone() else {
            return Ok(pass);
        };
        let cfg = &self.cfg.webhooks;
        // Most passes find nothing new: two reads then, and no lease write.
        let head = self.b.events.head(tenant).await?;
        match self.b.webhooks.get(tenant, id).await? {
            Some(e) if e.progress.cursor < head => {}
            _ => return Ok(pass),
        }
        let now = self.now();
        let Some(endpoint) = self
            .b
            .webhooks
            .claim(tenant, id, holder, now, now.plus(cfg.lease))
            .await?
        else {
            return Ok(pass);
        };
        if endpoint.disabled || endpoint.progress.retry_at.is_some_and(|at| at > now) {
            return Ok(pass);
        }
        let mut lease = Lease {
            holder,
            claimed_at: now,
            endpoint,
        };
        let mut progress = lease.endpoint.progress.clone();
        let stored = progress.clone();
        match self
            .pass(&*sender, &mut lease, &mut progress, &mut pass)
            .await
        {
            Ok(()) => {
                if progress != stored {
                    self.b
                        .webhooks
                        .progress(tenant, id, holder, &progress)
                        .await?;
                }
                Ok(pass)
            }
            Err(e) => {
                // Keep what was delivered, and do not come back at once: a
                // store that failed is likely to fail again right away.
                let waiting = WebhookProgress {
                    retry_at: Some(self.now().plus(backoff(cfg, 1))),
                    last_error: Some(format!("delivery paused: {}", e.code())),
                    ..progress
                };
                if let Err(again) = self.b.webhooks.progress(tenant, id, holder, &waiting).await {
                    tracing::warn!(error = %again, "webhook progress not recorded");
                }
                Err(e)
            }
        }
    }

    /// The body of [`Caas::deliver_webhook`] once the lease is held: moves
    /// `progress` along as events are delivered or given up.
    async fn pass(
        &self,
        sender: &dyn WebhookSender,
        lease: &mut Lease<'_>,
        progress: &mut WebhookProgress,
        pass: &mut WebhookPass,
    ) -> Result<()> {
        let cfg = &self.cfg.webhooks;
        let (tenant, id) = (lease.endpoint.tenant.clone(), lease.endpoint.id.clone());
        for _ in 0..BATCHES_PER_PASS {
            let batch = self
                .b
                .events
                .read_tenant(&tenant, progress.cursor, cfg.batch)
                .await?;
            let full = batch.len() >= cfg.batch;
            for logged in &batch {
                let now = self.now();
                if !self.renew(lease, progress, now).await? {
                    return Ok(());
                }
                let endpoint = &lease.endpoint;
                let attempt = progress.attempts + 1;
                let (names, failure) = match self.deliveries(endpoint, logged, now, false).await {
                    Ok(deliveries) => {
                        let mut failure = None;
                        for (i, d) in deliveries.iter().enumerate() {
                            let outcome = match self.send(sender, endpoint, d, attempt, now).await {
                                Ok(outcome) => outcome,
                                Err(e) => {
                                    WebhookOutcome::Failed(format!("cannot sign: {}", e.code()))
                                }
                            };
                            count_delivery(&outcome);
                            if !outcome.delivered() {
                                failure = Some((i, describe(&outcome)));
                                break;
                            }
                            pass.delivered += 1;
                        }
                        let names: Vec<(String, &'static str)> =
                            deliveries.into_iter().map(|d| (d.id, d.kind)).collect();
                        (names, failure)
                    }
                    // An event that cannot be turned into deliveries (presence
                    // unreachable, a body that does not open) fails like a
                    // refused delivery: retried, then given up, never a stall.
                    Err(e) => (
                        vec![(logged.cursor.0.to_string(), logged.event.payload.kind())],
                        Some((0, format!("cannot build the delivery: {}", e.code()))),
                    ),
                };
                let Some((failed_at, error)) = failure else {
                    *progress = WebhookProgress {
                        cursor: logged.cursor,
                        ..WebhookProgress::default()
                    };
                    continue;
                };
                if attempt < cfg.max_attempts {
                    pass.failed += 1;
                    progress.attempts = attempt;
                    progress.retry_at = Some(now.plus(backoff(cfg, attempt)));
                    progress.last_error = Some(error);
                    return Ok(());
                }
                // Given up: what was not delivered waits for a replay, and the
                // endpoint moves on.
                for (name, kind) in names.into_iter().skip(failed_at) {
                    self.b
                        .webhooks
                        .dead_letter(&DeadLetter {
                            tenant: tenant.clone(),
                            webhook_id: id.clone(),
                            id: name,
                            cursor: logged.cursor,
                            kind: kind.to_owned(),
                            attempts: attempt,
                            last_error: error.clone(),
                            failed_at: now,
                        })
                        .await?;
                    pass.dead_lettered += 1;
                    #[cfg(feature = "metrics")]
                    metrics::counter!("caas_webhook_dead_letters_total").increment(1);
                }
                tracing::warn!(
                    tenant = %tenant,
                    webhook = %id,
                    cursor = logged.cursor.0,
                    attempts = attempt,
                    "webhook delivery given up; kept as a dead letter"
                );
                *progress = WebhookProgress {
                    cursor: logged.cursor,
                    ..WebhookProgress::default()
                };
            }
            if !full {
                break;
            }
        }
        Ok(())
    }

    /// Renews the lease once half of it is gone, recording `progress` so a
    /// successor starts there and taking up configuration changes. With the
    /// lease at least four attempts' time limits long (the platform sees to
    /// it), an event begun within the first half ends before it runs out.
    /// `false`: the lease is lost, or the endpoint disabled or gone: stop.
    async fn renew(
        &self,
        lease: &mut Lease<'_>,
        progress: &WebhookProgress,
        now: Timestamp,
    ) -> Result<bool> {
        let cfg = &self.cfg.webhooks;
        if now.since(lease.claimed_at) <= cfg.lease / 2 {
            return Ok(true);
        }
        let (tenant, id) = (&lease.endpoint.tenant, &lease.endpoint.id);
        if !self
            .b
            .webhooks
            .progress(tenant, id, lease.holder, progress)
            .await?
        {
            return Ok(false);
        }
        match self
            .b
            .webhooks
            .claim(tenant, id, lease.holder, now, now.plus(cfg.lease))
            .await?
        {
            Some(fresh) if !fresh.disabled => {
                lease.endpoint = fresh;
                lease.claimed_at = now;
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    /// The requests one logged event makes for `endpoint`: the event itself
    /// if the endpoint wants its kind and, for a new message, a push request
    /// for the members who are offline. `every_kind` builds them whatever the
    /// endpoint's kinds (a replay sends what was chosen then).
    async fn deliveries(
        &self,
        endpoint: &WebhookEndpoint,
        logged: &LoggedEvent,
        now: Timestamp,
        every_kind: bool,
    ) -> Result<Vec<Delivery>> {
        let event = &logged.event;
        let kind = event.payload.kind();
        let cursor = logged.cursor.0;
        let mut out = Vec::new();
        if every_kind || endpoint.wants(kind) {
            out.push(Delivery {
                id: cursor.to_string(),
                kind,
                body: body(&cursor.to_string(), kind, logged, &event.payload)?,
            });
        }
        // A push for a message long past (a backlog after an outage, an
        // endpoint enabled again) would wake people for old news.
        let fresh = now.since(event.at) <= self.cfg.webhooks.push_window;
        if let EventPayload::MessageCreated { message } = &event.payload
            && (every_kind || endpoint.wants(PUSH_KIND))
            && fresh
        {
            let others: Vec<UserId> = event
                .audience
                .iter()
                .filter(|u| **u != message.sender)
                .cloned()
                .collect();
            let presence = self.b.presence.get(&event.tenant, &others, now).await?;
            let recipients: Vec<UserId> = others
                .into_iter()
                .zip(presence)
                .filter(|(_, p)| p.status == PresenceStatus::Offline)
                .map(|(u, _)| u)
                .collect();
            if !recipients.is_empty() {
                let id = format!("{cursor}.push");
                let push = PushRequest {
                    conversation_id: &message.conversation,
                    message_id: &message.id,
                    seq: message.seq,
                    sender_id: &message.sender,
                    recipients,
                    preview: message
                        .body
                        .as_deref()
                        .map(|b| b.chars().take(PREVIEW_CHARS).collect()),
                };
                out.push(Delivery {
                    body: body(&id, PUSH_KIND, logged, &push)?,
                    id,
                    kind: PUSH_KIND,
                });
            }
        }
        Ok(out)
    }

    /// Signs and sends one delivery.
    async fn send(
        &self,
        sender: &dyn WebhookSender,
        endpoint: &WebhookEndpoint,
        delivery: &Delivery,
        attempt: u32,
        now: Timestamp,
    ) -> Result<WebhookOutcome> {
        let secrets: Vec<&str> = endpoint
            .signing_secrets(now)
            .map(|s| s.secret.as_str())
            .collect();
        let at = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
        let signature = self
            .auth_ports()?
            .authority
            .sign_webhook(&secrets, at, &delivery.body)?;
        let request = WebhookRequest {
            url: endpoint.url.clone(),
            headers: vec![
                ("caas-signature", signature),
                ("caas-event-id", delivery.id.clone()),
                ("caas-event-kind", delivery.kind.to_owned()),
                ("caas-webhook-id", endpoint.id.to_string()),
                ("caas-tenant-id", endpoint.tenant.to_string()),
                ("caas-delivery-attempt", attempt.to_string()),
            ],
            body: delivery.body.clone(),
        };
        Ok(sender.send(&request).await)
    }

    /// Authorizes and rate-limits a change to the tenant's webhooks; returns
    /// the allowing rule.
    async fn manage(&self, ctx: &super::Ctx<'_>) -> Result<std::sync::Arc<str>> {
        let rule = Self::may_manage(ctx)?;
        self.rate_limit(ctx, Action::WebhookManage).await?;
        Ok(rule)
    }

    /// Audits a change to endpoint `id`, allowed by `rule`.
    async fn audit_webhook(
        &self,
        ctx: &super::Ctx<'_>,
        rule: &str,
        id: &WebhookId,
        detail: serde_json::Value,
    ) -> Result<()> {
        self.audit(
            &ctx.tenant,
            audit_record(
                ctx.p,
                Action::WebhookManage,
                id.to_string(),
                rule,
                detail,
                ctx.now,
            ),
        )
        .await
    }

    /// Authorizes any webhook operation; returns the allowing rule.
    fn may_manage(ctx: &super::Ctx<'_>) -> Result<std::sync::Arc<str>> {
        Self::authorize(
            ctx,
            Action::WebhookManage,
            Self::subject(ctx, None),
            Attrs::default().with("kind", "webhook"),
        )
    }

    /// The tenant of a webhook read, authorized.
    async fn webhook_ctx(&self, p: &Principal) -> Result<TenantId> {
        let ctx = self.ctx(p).await?;
        Self::may_manage(&ctx)?;
        Ok(ctx.tenant)
    }

    async fn endpoint(&self, tenant: &TenantId, id: &WebhookId) -> Result<WebhookEndpoint> {
        self.b
            .webhooks
            .get(tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Webhook, id))
    }
}

/// A URL as the audit log keeps it: a query may carry the receiver's token,
/// and the log is read by more people than the endpoint's owner.
fn without_query(url: &str) -> &str {
    url.split(['?', '#']).next().unwrap_or(url)
}

/// A delivery's JSON body: the same envelope for every kind.
fn body<T: Serialize>(id: &str, kind: &str, logged: &LoggedEvent, data: &T) -> Result<Vec<u8>> {
    #[derive(Serialize)]
    struct Envelope<'a, T> {
        id: &'a str,
        kind: &'a str,
        tenant: &'a TenantId,
        cursor: u64,
        at: Timestamp,
        correlation_id: &'a crate::ids::CorrelationId,
        data: &'a T,
    }
    serde_json::to_vec(&Envelope {
        id,
        kind,
        tenant: &logged.event.tenant,
        cursor: logged.cursor.0,
        at: logged.event.at,
        correlation_id: &logged.event.correlation_id,
        data,
    })
    .map_err(|e| Error::internal(format!("encode a webhook body: {e}")))
}

/// The wait before attempt `attempts + 1`: the base doubled per failure,
/// capped, with a quarter of jitter either way so endpoints that failed
/// together do not retry together.
fn backoff(cfg: &WebhookConfig, attempts: u32) -> Duration {
    let doubled = cfg
        .backoff_base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20));
    doubled
        .min(cfg.backoff_max)
        .mul_f64(0.75 + fastrand::f64() / 2.0)
}

fn describe(outcome: &WebhookOutcome) -> String {
    let mut text = match outcome {
        WebhookOutcome::Status(s) => format!("the endpoint answered {s}"),
        WebhookOutcome::Failed(why) => why.clone(),
    };
    if text.len() > MAX_ERROR_BYTES {
        let mut end = MAX_ERROR_BYTES;
        while !text.is_char_boundary(end) {
            end -= 1;
        }
        text.truncate(end);
    }
    text
}

#[cfg_attr(not(feature = "metrics"), allow(unused_variables))]
fn count_delivery(outcome: &WebhookOutcome) {
    #[cfg(feature = "metrics")]
    metrics::counter!(
        "caas_webhook_deliveries_total",
        "outcome" => if outcome.delivered() { "delivered" } else { "failed" }
    )
    .increment(1);
}

/// Kinds an endpoint may choose: known ones, no repeats, at least one.
fn check_kinds(mut kinds: Vec<String>) -> Result<Vec<String>> {
    if kinds.is_empty() {
        return Err(Error::invalid("kinds", "name at least one kind, or `*`"));
    }
    if kinds.len() > WEBHOOK_KINDS.len() + 1 {
        return Err(Error::invalid("kinds", "too many kinds"));
    }
    if let Some(bad) = kinds
        .iter()
        .find(|k| *k != "*" && !WEBHOOK_KINDS.contains(&k.as_str()))
    {
        return Err(Error::invalid(
            "kinds",
            format!(
                "unknown kind `{}`; known: *, {}",
                bad.chars().take(64).collect::<String>(),
                WEBHOOK_KINDS.join(", ")
            ),
        ));
    }
    kinds.sort();
    kinds.dedup();
    Ok(kinds)
}

/// An endpoint URL: `https://host[:port]/…` with no credentials in it and, on a
/// shared platform, a host that is not a loopback, private or link-local
/// address. Names that resolve to such addresses are refused by the sender at
/// delivery time.
fn check_url(url: &str, allow_insecure: bool) -> Result<()> {
    if url.len() > MAX_URL_BYTES {
        return Err(Error::PayloadTooLarge {
            field: "url".into(),
            size: url.len(),
            limit: MAX_URL_BYTES,
        });
    }
    if url.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Error::invalid(
            "url",
            "must not contain spaces or control characters",
        ));
    }
    let rest = match (url.strip_prefix("https://"), url.strip_prefix("http://")) {
        (Some(rest), _) => rest,
        (None, Some(rest)) if allow_insecure => rest,
        (None, Some(_)) => return Err(Error::invalid("url", "must be an https:// URL")),
        (None, None) => return Err(Error::invalid("url", "must be an https:// URL")),
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err(Error::invalid("url", "must not carry credentials"));
    }
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| Error::invalid("url", "an IPv6 host needs its closing `]`"))?;
            (host, after.strip_prefix(':'))
        }
        None => match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        },
    };
    if host.is_empty() {
        return Err(Error::invalid("url", "must name a host"));
    }
    if let Some(port) = port
        && !port.parse::<u16>().is_ok_and(|p| p > 0)
    {
        return Err(Error::invalid("url", "the port must be 1-65535"));
    }
    if host.contains('%') {
        return Err(Error::invalid(
            "url",
            "the host must not be percent-encoded",
        ));
    }
    // `127.1`, `2130706433` or `0x7f.0.0.1` are IPv4 addresses to a URL
    // parser: only the plain four-number form is taken, and checked below.
    let last_label = host.rsplit('.').find(|l| !l.is_empty()).unwrap_or(host);
    let numeric = last_label.bytes().all(|b| b.is_ascii_digit())
        || last_label.to_ascii_lowercase().starts_with("0x");
    if numeric && !authority.starts_with('[') && host.parse::<std::net::Ipv4Addr>().is_err() {
        return Err(Error::invalid(
            "url",
            "an IPv4 host must be written as four decimal numbers",
        ));
    }
    if !allow_insecure {
        let name = host.trim_end_matches('.').to_ascii_lowercase();
        let local_name = name == "localhost" || name.ends_with(".localhost");
        let private_ip = host
            .parse::<IpAddr>()
            .is_ok_and(|ip| !is_public_address(ip));
        if local_name || private_ip {
            return Err(Error::invalid(
                "url",
                "must not name a loopback, private or link-local address",
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_must_be_https_public_and_without_credentials() {
        for ok in [
            "https://hooks.example.com/caas",
            "https://hooks.example.com:8443/x?y=1",
            "https://[2606:4700::1111]:443/x",
            "https://93.184.216.34/",
        ] {
            assert!(check_url(ok, false).is_ok(), "{ok}");
        }
        for bad in [
            "http://hooks.example.com/",
            "ftp://hooks.example.com/",
            "hooks.example.com",
            "https://user:pw@hooks.example.com/",
            "https:///path",
            "https://localhost/x",
            "https://api.localhost/x",
            "https://127.0.0.1/x",
            "https://10.1.2.3/x",
            "https://192.168.0.1/x",
            "https://169.254.169.254/latest/meta-data",
            "https://[::1]/x",
            "https://[fd00::1]/x",
            "https://[::ffff:127.0.0.1]/x",
            "https://hooks.example.com:0/",
            "https://hooks.example.com:99999/",
            "https://hooks.example.com/a b",
            "https://127.1/x",
            "https://2130706433/x",
            "https://0x7f.0.0.1/x",
            "https://%31%32%37.0.0.1/x",
            "https://localhost./x",
        ] {
            assert!(
                matches!(check_url(bad, false), Err(Error::InvalidArgument { .. })),
                "{bad}"
            );
        }
        assert!(check_url("http://127.0.0.1:8080/hook", true).is_ok());
        let long = format!("https://example.com/{}", "a".repeat(MAX_URL_BYTES));
        assert!(matches!(
            check_url(&long, false),
            Err(Error::PayloadTooLarge { .. })
        ));
    }

    #[test]
    fn audited_urls_lose_their_query() {
        assert_eq!(
            without_query("https://h.example.com/hook?token=s3cret#x"),
            "https://h.example.com/hook"
        );
        assert_eq!(
            without_query("https://h.example.com/"),
            "https://h.example.com/"
        );
    }

    #[test]
    fn kinds_are_known_sorted_and_unique() {
        assert_eq!(
            check_kinds(vec![
                "push.requested".into(),
                "message.created".into(),
                "message.created".into()
            ])
            .unwrap(),
            vec!["message.created".to_owned(), "push.requested".to_owned()]
        );
        assert!(check_kinds(vec!["*".into()]).is_ok());
        assert!(check_kinds(vec![]).is_err());
        assert!(check_kinds(vec!["typing".into()]).is_err());
        assert!(check_kinds(vec!["message.exploded".into()]).is_err());
    }

    #[test]
    fn backoff_doubles_within_jitter_and_caps() {
        let cfg = WebhookConfig {
            backoff_base: Duration::from_secs(2),
            backoff_max: Duration::from_secs(60),
            ..WebhookConfig::default()
        };
        for attempts in 1..=10u32 {
            let want = Duration::from_secs(2 * (1u64 << (attempts - 1))).min(cfg.backoff_max);
            let got = backoff(&cfg, attempts);
            assert!(
                got >= want.mul_f64(0.75) && got <= want.mul_f64(1.25),
                "{attempts}: {got:?}"
            );
        }
        assert!(backoff(&cfg, u32::MAX) <= Duration::from_secs(75));
    }

    #[test]
    fn failure_text_is_bounded_on_a_char_boundary() {
        let long = WebhookOutcome::Failed("é".repeat(400));
        let text = describe(&long);
        assert!(text.len() <= MAX_ERROR_BYTES);
        assert_eq!(
            describe(&WebhookOutcome::Status(503)),
            "the endpoint answered 503"
        );
    }
}
