//! The use cases. Every operation runs one pipeline:
//! **authorize (ABAC) → rate-limit → validate → persist → publish → return**, with
//! the principal already authenticated by the caller. A message is returned only
//! after the store has committed it, and events are published only for changes that
//! happened (a retried send or a repeated reaction publishes nothing).
//!
//! Tenant isolation is structural: every store call takes the principal's own
//! tenant, so another tenant's data cannot even be named.

mod auth;
mod billing;
mod compliance;
mod config;
mod conversations;
mod ephemeral;
mod exports;
mod keys;
mod media;
mod members;
mod messages;
mod moderation;
mod reads;
mod retention;
mod search;
mod slow_mode;
mod tenants;
mod usage;
mod webhooks;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, RwLock};

pub use auth::{
    AccessToken, Authenticated, MAX_PASSWORD_BYTES, MAX_TOKEN_TTL, MIN_PASSWORD_CHARS,
    NewTenantSecret, REFRESH_TTL, REVOCATION_MARGIN, SESSION_ACCESS_TTL, SessionTokens,
    TotpEnrolment,
};
pub use billing::{Invoice, InvoiceLine, PaymentChange, PaymentEvent, PaymentOutcome};
pub use compliance::{ERASED_ATTRIBUTE, Erasure, ExportItem, UserExport};
pub use config::{Config, Plan};
pub use conversations::{ConversationDetails, NewConversation};
pub use exports::{
    EXPORT_KEPT_FOR, ExportDownload, ExportFailure, ExportJob, ExportRun, ExportStatus,
    MAX_KEPT_EXPORTS, MAX_RUNNING_EXPORTS,
};
pub use media::{DownloadUrl, NewUpload, UploadTicket};
pub use members::MemberChange;
pub use messages::{SendMessage, Sent};
pub use moderation::{FlagAction, MAX_FLAG_REASON_BYTES};
pub use reads::{ConversationSummary, Page, SyncPage};
pub use retention::{RETENTION_ACTOR, RetentionRun};
pub use slow_mode::{MAX_SLOW_MODE_SECS, SLOW_MODE_ATTRIBUTE};
pub use tenants::TenantChange;
pub use usage::{
    API_CALLS, CONNECTIONS, DayUsage, MEDIA_BYTES, MESSAGES, STORAGE_BYTES, UsageReport,
};
pub use webhooks::{
    MAX_REPLAY, MAX_URL_BYTES, NewWebhook, PUSH_KIND, Replay, ReplayFailure, SecretTimes,
    WEBHOOK_KINDS, Webhook, WebhookChange, WebhookConfig, WebhookPass, WebhookWithSecret,
};

use crate::error::{EntityKind, Error, Result};
use crate::events::{Event, EventPayload};
use crate::ids::{ConversationId, TenantId, UserId};
use crate::model::{AuditRecord, Conversation, Member, Tenant, TenantStatus};
use crate::policy::{Action, Attrs, PolicySet, Request};
use crate::ports::{Backends, KeyVerifier};
use crate::principal::{Principal, PrincipalKind};
use crate::ratelimit::{Decision as RateDecision, Limits, RateKey};
use crate::time::Timestamp;

/// What the service knows about a tenant between store reads.
#[derive(Debug)]
struct TenantRuntime {
    tenant: Tenant,
    policy: Arc<PolicySet>,
    limits: Limits,
    /// The blocklist's words, lowercased as message text is tokenised.
    blocked: std::collections::HashSet<String>,
    loaded_at: Timestamp,
}

/// The chat service: every use case, over a set of [`Backends`].
///
/// Cheap to share: wrap it in an `Arc` and call it from any task.
#[derive(Debug)]
pub struct Caas {
    b: Backends,
    cfg: Config,
    key_verifier: Option<Arc<dyn KeyVerifier>>,
    auth: Option<auth::AuthPorts>,
    // Tenant settings are read on every call; caching them (for `cfg.tenant_cache_ttl`)
    // keeps a store read and a policy compilation off the hot path. Changes made
    // through this instance apply at once; changes made by another node apply within
    // the TTL.
    tenants: RwLock<HashMap<TenantId, Arc<TenantRuntime>>>,
    // Users acting are read on every call: that they still exist, and their
    // attributes for policies. Cached like tenants (changes through this instance
    // apply at once, through another node within the TTL).
    users: RwLock<HashMap<(TenantId, UserId), KnownUser>>,
    index_failures: AtomicU64,
    meters: usage::Meters,
    billing_seen: billing::SeenEvents,
    webhook_sender: Option<Arc<dyn crate::ports::WebhookSender>>,
    exports: exports::ExportJobs,
}

/// A user as the pipeline needs it between store reads.
#[derive(Debug, Clone)]
struct KnownUser {
    attributes: Arc<crate::model::Attributes>,
    loaded_at: Timestamp,
}

/// Users remembered at most; past it the cache starts over (a full sweep is
/// cheaper than tracking recency on every call, and a miss is one point read).
const MAX_KNOWN_USERS: usize = 65_536;

/// The request-scoped context of a tenant operation.
struct Ctx<'p> {
    p: &'p Principal,
    tenant: TenantId,
    rt: Arc<TenantRuntime>,
    now: Timestamp,
    /// The acting user's stored attributes (users only).
    user_attributes: Option<Arc<crate::model::Attributes>>,
}

/// The rule that refuses an operation only users can do (a send, a read
/// mark, a device's keys, TOTP) to a tenant server's or the operator's
/// credential.
pub const USER_TOKEN_REQUIRED: &str = "user-token-required";

impl Ctx<'_> {
    /// The acting user, for operations only users can do: any other
    /// credential is refused by the built-in rule [`USER_TOKEN_REQUIRED`].
    fn user(&self) -> Result<&UserId> {
        self.p
            .user
            .as_ref()
            .ok_or_else(|| Error::forbidden(USER_TOKEN_REQUIRED))
    }
}

impl Caas {
    /// A service over `backends` with `config`.
    pub fn new(backends: Backends, config: Config) -> Self {
        Self {
            b: backends,
            cfg: config,
            key_verifier: None,
            auth: None,
            tenants: RwLock::new(HashMap::new()),
            users: RwLock::new(HashMap::new()),
            index_failures: AtomicU64::new(0),
            meters: usage::Meters::default(),
            billing_seen: billing::SeenEvents::default(),
            webhook_sender: None,
            exports: exports::ExportJobs::default(),
        }
    }

    /// With the verifier of uploaded E2EE keys (required to publish keys).
    pub fn with_key_verifier(mut self, verifier: Arc<dyn KeyVerifier>) -> Self {
        self.key_verifier = Some(verifier);
        self
    }

    /// The backends.
    pub fn backends(&self) -> &Backends {
        &self.b
    }

    /// The configuration.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// How many search index updates failed since start. Search is updated after the
    /// message is committed; a failure there does not fail the send, it is counted
    /// here for metrics.
    pub fn index_failures(&self) -> u64 {
        self.index_failures.load(Ordering::Relaxed)
    }

    async fn runtime(&self, id: &TenantId, now: Timestamp) -> Result<Arc<TenantRuntime>> {
        if let Ok(cache) = self.tenants.read()
            && let Some(rt) = cache.get(id)
            && now.since(rt.loaded_at) < self.cfg.tenant_cache_ttl
        {
            return Ok(rt.clone());
        }
        let tenant = self
            .b
            .tenants
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Tenant, id))?;
        self.install(tenant, now)
    }

    fn install(&self, tenant: Tenant, now: Timestamp) -> Result<Arc<TenantRuntime>> {
        let policy = match &tenant.settings.policy {
            None => crate::policy::default_set(),
            Some(src) => Arc::new(PolicySet::from_source(src).map_err(|e| {
                Error::internal(format!(
                    "stored policy of tenant {} does not compile: {e}",
                    tenant.id
                ))
            })?),
        };
        let rt = Arc::new(TenantRuntime {
            limits: Limits::with_overrides(&tenant.settings.limits),
            blocked: tenant
                .settings
                .blocklist
                .iter()
                .flat_map(|w| crate::ports::tokenize(w))
                .collect(),
            policy,
            tenant,
            loaded_at: now,
        });
        if let Ok(mut cache) = self.tenants.write() {
            cache.insert(rt.tenant.id.clone(), rt.clone());
        }
        Ok(rt)
    }

    /// The context of an operation inside the principal's tenant: the tenant must
    /// exist and be active, and a user must exist (a validly signed token outlives
    /// neither its tenant's suspension nor its user).
    async fn ctx<'p>(&self, p: &'p Principal) -> Result<Ctx<'p>> {
        let tenant = match (&p.kind, &p.tenant) {
            (PrincipalKind::Operator, _) | (_, None) => {
                return Err(Error::forbidden("operator-manages-tenants"));
            }
            (_, Some(t)) => t.clone(),
        };
        let now = self.now();
        let rt = self.runtime(&tenant, now).await?;
        if rt.tenant.status == TenantStatus::Suspended {
            return Err(Error::forbidden("tenant-suspended"));
        }
        let user_attributes = match (&p.kind, &p.user) {
            (PrincipalKind::User, Some(u)) => Some(self.known_user(&tenant, u, now).await?),
            _ => None,
        };
        let ctx = Ctx {
            p,
            tenant,
            rt,
            now,
            user_attributes,
        };
        self.meter_call(&ctx);
        Ok(ctx)
    }

    /// Checks that `p` may act at all: its tenant exists and is active, and its
    /// user exists. For front doors that open a session (a WebSocket) before any
    /// operation: they refuse it as an operation would be refused.
    pub async fn verify_principal(&self, p: &Principal) -> Result<()> {
        match p.kind {
            PrincipalKind::Operator => Ok(()),
            _ => self.ctx(p).await.map(|_| ()),
        }
    }

    /// The acting user's stored attributes; unauthenticated when the user does
    /// not exist.
    async fn known_user(
        &self,
        tenant: &TenantId,
        user: &UserId,
        now: Timestamp,
    ) -> Result<Arc<crate::model::Attributes>> {
        let key = (tenant.clone(), user.clone());
        if let Ok(cache) = self.users.read()
            && let Some(known) = cache.get(&key)
            && now.since(known.loaded_at) < self.cfg.tenant_cache_ttl
        {
            return not_erased(user, known.attributes.clone());
        }
        let stored =
            self.b
                .users
                .get(tenant, user)
                .await?
                .ok_or_else(|| Error::Unauthenticated {
                    reason: format!("the credential's user `{user}` does not exist"),
                })?;
        not_erased(user, self.remember_user(stored, now))
    }

    fn remember_user(
        &self,
        user: crate::model::User,
        now: Timestamp,
    ) -> Arc<crate::model::Attributes> {
        let attributes = Arc::new(user.attributes);
        if let Ok(mut cache) = self.users.write() {
            if cache.len() >= MAX_KNOWN_USERS {
                cache.clear();
            }
            cache.insert(
                (user.tenant, user.id),
                KnownUser {
                    attributes: attributes.clone(),
                    loaded_at: now,
                },
            );
        }
        attributes
    }

    fn subject(ctx: &Ctx<'_>, member: Option<&Member>) -> Attrs {
        let p = ctx.p;
        let stored = ctx.user_attributes.as_ref().map_or(0, |a| a.len());
        let mut s = Attrs::with_capacity(8 + stored + p.attributes.len());
        s.set("kind", p.kind.as_str());
        if let Some(u) = &p.user {
            s.set("id", u.shared());
        }
        if !p.roles.is_empty() {
            let roles: Vec<crate::policy::Value> = p
                .roles
                .iter()
                .map(|r| crate::policy::Value::Str(Arc::from(r.as_str())))
                .collect();
            s.set("roles", crate::policy::Value::List(Arc::from(roles)));
        }
        // The stored attributes first: the credential's own (token claims) are
        // more specific and win.
        if let Some(stored) = &ctx.user_attributes {
            s.extend_json(stored);
        }
        s.extend_json(&p.attributes);
        match member {
            Some(m) => {
                s.set("is_member", !m.banned);
                s.set("member_role", m.role.as_str());
                s.set("member_rank", m.role.rank());
                s.set("muted", m.muted);
                s.set("banned", m.banned);
            }
            None => {
                s.set("is_member", false);
            }
        }
        s
    }

    fn conversation_resource(conv: &Conversation) -> Attrs {
        let mut r = Attrs::with_capacity(4 + conv.attributes.len());
        r.set("kind", "conversation");
        r.set("id", conv.id.shared());
        r.set("conversation_kind", conv.kind.as_str());
        r.set(
            "public",
            matches!(
                conv.attributes.get("public"),
                Some(serde_json::Value::Bool(true))
            ),
        );
        r.extend_json(&conv.attributes);
        r
    }

    fn environment(now: Timestamp) -> Attrs {
        let secs = now.as_secs();
        Attrs::with_capacity(2)
            .with("now", i64::try_from(secs).unwrap_or(i64::MAX))
            .with("hour", ((secs / 3600) % 24) as i64)
    }

    /// Authorizes against the tenant's policy; returns the allowing rule.
    fn authorize(
        ctx: &Ctx<'_>,
        action: Action,
        subject: Attrs,
        resource: Attrs,
    ) -> Result<Arc<str>> {
        let req = Request {
            action,
            subject,
            resource,
            environment: Self::environment(ctx.now),
        };
        let d = ctx.rt.policy.decide(&req);
        if d.is_allowed() {
            Ok(d.rule)
        } else {
            Err(Error::Forbidden {
                rule: d.rule.to_string(),
            })
        }
    }

    /// Applies the tenant's limit for `action`, keyed by the acting user (or `tenant`).
    async fn rate_limit(&self, ctx: &Ctx<'_>, action: Action) -> Result<()> {
        let action = action.as_str();
        let Some(quota) = ctx.rt.limits.get(action) else {
            return Ok(());
        };
        let subject: Arc<str> = ctx
            .p
            .user
            .as_ref()
            .map_or_else(|| Arc::from("tenant"), UserId::shared);
        let key = RateKey::new(&ctx.tenant, subject, action);
        match self.b.rate_limits.check(&key, quota, ctx.now).await? {
            RateDecision::Allow { .. } => Ok(()),
            RateDecision::Deny { retry_after } => Err(Error::RateLimited {
                action: action.to_owned(),
                retry_after,
            }),
        }
    }

    /// The active (non-banned) members of a conversation.
    async fn audience(&self, tenant: &TenantId, conv: &ConversationId) -> Result<Arc<[UserId]>> {
        let members = self.b.conversations.members(tenant, conv).await?;
        Ok(members
            .into_iter()
            .filter(|m| !m.banned)
            .map(|m| m.user)
            .collect())
    }

    /// Publishes an event: appended to the tenant's log (unless ephemeral) and then
    /// put on the bus, so a client that syncs after seeing it live finds it.
    async fn emit(
        &self,
        ctx: &Ctx<'_>,
        audience: Arc<[UserId]>,
        payload: EventPayload,
    ) -> Result<()> {
        let event = Arc::new(Event {
            tenant: ctx.tenant.clone(),
            correlation_id: ctx.p.correlation_id.clone(),
            at: ctx.now,
            audience,
            payload,
        });
        self.index(&event).await;
        if !event.payload.is_ephemeral() {
            self.b.events.append(event.clone()).await?;
        }
        self.b.bus.publish(event).await
    }

    async fn index(&self, event: &Event) {
        let s = &self.b.search;
        let r = match &event.payload {
            EventPayload::MessageCreated { message } | EventPayload::MessageEdited { message } => {
                s.index_message(message).await
            }
            EventPayload::MessageDeleted {
                conversation_id,
                message_id,
                ..
            } => {
                s.remove_message(&event.tenant, conversation_id, message_id)
                    .await
            }
            EventPayload::ConversationCreated { conversation }
            | EventPayload::ConversationUpdated { conversation } => {
                s.index_conversation(conversation).await
            }
            EventPayload::UserUpdated { user } => s.index_user(user).await,
            _ => Ok(()),
        };
        if r.is_err() {
            self.index_failures.fetch_add(1, Ordering::Relaxed);
        }
    }

    async fn audit(&self, tenant: &TenantId, record: AuditRecord) -> Result<()> {
        self.b.audit.append(tenant, record).await.map(|_| ())
    }
}

/// A user's attributes, unless the user was erased: an erased user's tokens
/// and sessions are refused like those of a user that does not exist.
fn not_erased(
    user: &UserId,
    attributes: Arc<crate::model::Attributes>,
) -> Result<Arc<crate::model::Attributes>> {
    if attributes.get(compliance::ERASED_ATTRIBUTE) == Some(&serde_json::Value::Bool(true)) {
        return Err(Error::Unauthenticated {
            reason: format!("the credential's user `{user}` was erased"),
        });
    }
    Ok(attributes)
}

/// An audit record of `p` doing `action` to `target`, allowed by `rule`.
fn audit_record(
    p: &Principal,
    action: Action,
    target: String,
    rule: &str,
    detail: serde_json::Value,
    at: Timestamp,
) -> AuditRecord {
    AuditRecord {
        position: 0,
        at,
        actor: p.actor(),
        action: action.as_str().to_owned(),
        target,
        rule: rule.to_owned(),
        correlation_id: p.correlation_id.clone(),
        detail,
        hash: String::new(),
    }
}

/// Checks a free-text field's length in bytes.
fn check_text(field: &str, text: &str, min: usize, max: usize) -> Result<()> {
    if text.len() > max {
        return Err(Error::PayloadTooLarge {
            field: field.to_owned(),
            size: text.len(),
            limit: max,
        });
    }
    if text.trim().len() < min {
        return Err(Error::invalid(field, "must not be empty"));
    }
    if text
        .chars()
        .any(|c| c.is_control() && c != '\n' && c != '\t' && c != '\r')
    {
        return Err(Error::invalid(field, "must not contain control characters"));
    }
    Ok(())
}
