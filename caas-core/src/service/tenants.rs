//! Tenants (operator) and users (tenant server).

use std::time::Duration;

use super::{Caas, Ctx, audit_record, check_text};
use crate::error::{EntityKind, Error, Result};
use crate::events::EventPayload;
use crate::ids::{TenantId, UserId};
use crate::model::{
    Attributes, PolicySource, Tenant, TenantCredential, TenantSettings, TenantStatus, User,
};
use crate::policy::{Action, Attrs, PolicySet};
use crate::principal::{Principal, PrincipalKind};

/// A change to a tenant; absent fields stay as they are.
#[derive(Debug, Clone, Default)]
pub struct TenantChange {
    /// New display name.
    pub name: Option<String>,
    /// New settings (replacing the old ones whole).
    pub settings: Option<TenantSettings>,
}

const MAX_NAME: usize = 256;
const MAX_ATTRIBUTES: usize = 64;
const MAX_ATTRIBUTES_BYTES: usize = 8 * 1024;

fn check_settings(s: &TenantSettings) -> Result<()> {
    for (action, q) in &s.limits {
        if crate::policy::Action::from_name(action).is_none()
            && action != crate::ratelimit::EDGE_ACTION
        {
            return Err(Error::invalid(
                format!("settings.limits.{action}"),
                "unknown action",
            ));
        }
        q.validate()
            .map_err(|e| Error::invalid(format!("settings.limits.{action}"), e))?;
    }
    if let Some(src) = &s.policy {
        // Rejected here, at load, with its line or field, never at decision time.
        PolicySet::from_source(src).map_err(|e| match e {
            Error::InvalidArgument { field, reason } => {
                Error::invalid(format!("settings.policy.{field}"), reason)
            }
            other => other,
        })?;
    }
    if s.blocklist.len() > crate::model::MAX_BLOCKLIST {
        return Err(Error::PayloadTooLarge {
            field: "settings.blocklist".into(),
            size: s.blocklist.len(),
            limit: crate::model::MAX_BLOCKLIST,
        });
    }
    for (i, word) in s.blocklist.iter().enumerate() {
        let field = format!("settings.blocklist[{i}]");
        if word.len() > crate::model::MAX_BLOCKED_WORD_BYTES {
            return Err(Error::invalid(
                field,
                format!("at most {} bytes", crate::model::MAX_BLOCKED_WORD_BYTES),
            ));
        }
        let mut tokens = crate::ports::tokenize(word);
        if tokens.next().is_none() || tokens.next().is_some() {
            return Err(Error::invalid(
                field,
                "must be one word (letters and digits, no spaces or punctuation)",
            ));
        }
    }
    super::media::check_media_settings(&s.media)?;
    for (field, days) in [
        ("direct_days", s.retention.direct_days),
        ("group_days", s.retention.group_days),
        ("channel_days", s.retention.channel_days),
    ] {
        if days.is_some_and(|d| d == 0 || d > crate::model::MAX_RETENTION_DAYS) {
            return Err(Error::invalid(
                format!("settings.retention.{field}"),
                format!("1 to {} days", crate::model::MAX_RETENTION_DAYS),
            ));
        }
    }
    if s.max_message_bytes == Some(0) || s.max_members.is_some_and(|m| m < 2) {
        return Err(Error::invalid(
            "settings",
            "max_message_bytes must be >= 1 and max_members >= 2",
        ));
    }
    Ok(())
}

pub(super) fn check_attributes(field: &str, a: &Attributes) -> Result<()> {
    if a.len() > MAX_ATTRIBUTES {
        return Err(Error::invalid(
            field,
            format!("at most {MAX_ATTRIBUTES} attributes"),
        ));
    }
    let size = serde_json::to_vec(a).map(|v| v.len()).unwrap_or(usize::MAX);
    if size > MAX_ATTRIBUTES_BYTES {
        return Err(Error::PayloadTooLarge {
            field: field.to_owned(),
            size,
            limit: MAX_ATTRIBUTES_BYTES,
        });
    }
    Ok(())
}

impl Caas {
    /// Authorizes an operator-level action on a tenant: the operator for any
    /// tenant, a tenant server only for its own (and only as its policy allows).
    async fn tenant_admin(
        &self,
        p: &Principal,
        action: Action,
        id: &TenantId,
    ) -> Result<(Tenant, String)> {
        let now = self.now();
        let tenant = self
            .b
            .tenants
            .get(id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Tenant, id))?;
        if p.kind != PrincipalKind::Operator && tenant.status == TenantStatus::Suspended {
            return Err(Error::forbidden("tenant-suspended"));
        }
        let policy = match p.kind {
            PrincipalKind::Operator => crate::policy::default_set(),
            _ if p.tenant.as_ref() != Some(id) => {
                return Err(Error::not_found(EntityKind::Tenant, id));
            }
            _ => self.runtime(id, now).await?.policy.clone(),
        };
        let req = crate::policy::Request {
            action,
            subject: Attrs::default().with("kind", p.kind.as_str()),
            resource: Attrs::default()
                .with("kind", "tenant")
                .with("id", id.shared()),
            environment: Self::environment(now),
        };
        let d = policy.decide(&req);
        if !d.is_allowed() {
            return Err(Error::forbidden(d.rule.to_string()));
        }
        Ok((tenant, d.rule.to_string()))
    }

    /// Creates a tenant (operator only).
    pub async fn create_tenant(
        &self,
        p: &Principal,
        name: &str,
        settings: TenantSettings,
    ) -> Result<Tenant> {
        let now = self.now();
        let req = crate::policy::Request {
            action: Action::TenantCreate,
            subject: Attrs::default().with("kind", p.kind.as_str()),
            resource: Attrs::default().with("kind", "tenant"),
            environment: Self::environment(now),
        };
        let d = crate::policy::default_set().decide(&req);
        if !d.is_allowed() {
            return Err(Error::forbidden(d.rule.to_string()));
        }
        check_text("name", name, 1, MAX_NAME)?;
        check_settings(&settings)?;
        let tenant = Tenant {
            id: TenantId::generate(now),
            name: name.to_owned(),
            status: TenantStatus::Active,
            settings,
            credentials: Vec::new(),
            created_at: now,
            updated_at: now,
        };
        self.b.tenants.create(&tenant).await?;
        self.audit(
            &tenant.id,
            audit_record(
                p,
                Action::TenantCreate,
                format!("tenant:{}", tenant.id),
                &d.rule,
                serde_json::json!({"name": name}),
                now,
            ),
        )
        .await?;
        Ok(tenant)
    }

    /// Reads a tenant (operator, or the tenant's own server).
    pub async fn get_tenant(&self, p: &Principal, id: &TenantId) -> Result<Tenant> {
        Ok(self.tenant_admin(p, Action::TenantRead, id).await?.0)
    }

    /// Lists tenants (operator only), by id.
    pub async fn list_tenants(
        &self,
        p: &Principal,
        after: Option<&TenantId>,
        limit: usize,
    ) -> Result<Vec<Tenant>> {
        if p.kind != PrincipalKind::Operator {
            return Err(Error::forbidden(crate::policy::DEFAULT_DENY));
        }
        self.b
            .tenants
            .list(after, limit.clamp(1, self.cfg.max_page))
            .await
    }

    async fn store_tenant(
        &self,
        p: &Principal,
        tenant: Tenant,
        action: Action,
        rule: &str,
        detail: serde_json::Value,
    ) -> Result<Tenant> {
        let now = tenant.updated_at;
        self.b.tenants.update(&tenant).await?;
        self.audit(
            &tenant.id,
            audit_record(
                p,
                action,
                format!("tenant:{}", tenant.id),
                rule,
                detail,
                now,
            ),
        )
        .await?;
        let _ = self.install(tenant.clone(), now)?;
        Ok(tenant)
    }

    /// Changes a tenant's name or settings (limits, policy). A policy that does not
    /// compile is refused here, naming its line or field.
    pub async fn update_tenant(
        &self,
        p: &Principal,
        id: &TenantId,
        change: TenantChange,
    ) -> Result<Tenant> {
        let (mut tenant, rule) = self.tenant_admin(p, Action::TenantUpdate, id).await?;
        if let Some(name) = &change.name {
            check_text("name", name, 1, MAX_NAME)?;
            tenant.name = name.clone();
        }
        if let Some(mut settings) = change.settings {
            check_settings(&settings)?;
            // The payment provider's standing is its webhooks' to change, not
            // a settings write's (which would silently reset the plan).
            settings.billing = tenant.settings.billing.clone();
            tenant.settings = settings;
        }
        tenant.updated_at = self.now();
        let detail = serde_json::json!({"name": change.name.is_some()});
        self.store_tenant(p, tenant, Action::TenantUpdate, &rule, detail)
            .await
    }

    /// Replaces only the tenant's policy, from JSON or TOML text.
    pub async fn set_tenant_policy(
        &self,
        p: &Principal,
        id: &TenantId,
        policy: Option<PolicySource>,
    ) -> Result<Tenant> {
        let (tenant, _) = self.tenant_admin(p, Action::TenantUpdate, id).await?;
        let mut settings = tenant.settings;
        settings.policy = policy;
        self.update_tenant(
            p,
            id,
            TenantChange {
                name: None,
                settings: Some(settings),
            },
        )
        .await
    }

    /// Suspends or resumes a tenant (operator only). A suspended tenant's every
    /// operation is refused with rule `tenant-suspended`.
    pub async fn set_tenant_status(
        &self,
        p: &Principal,
        id: &TenantId,
        status: TenantStatus,
    ) -> Result<Tenant> {
        let (mut tenant, rule) = self.tenant_admin(p, Action::TenantSuspend, id).await?;
        if tenant.status == status {
            return Ok(tenant);
        }
        tenant.status = status;
        tenant.updated_at = self.now();
        let detail = serde_json::json!({ "status": status });
        let tenant = self
            .store_tenant(p, tenant, Action::TenantSuspend, &rule, detail)
            .await?;
        let event = crate::events::Event {
            tenant: tenant.id.clone(),
            correlation_id: p.correlation_id.clone(),
            at: tenant.updated_at,
            audience: std::sync::Arc::from(Vec::new()),
            payload: EventPayload::TenantUpdated {
                tenant_id: tenant.id.clone(),
                status,
            },
        };
        self.b.bus.publish(std::sync::Arc::new(event)).await?;
        Ok(tenant)
    }

    /// Adds a new secret hash; secrets still valid get `grace` before they expire,
    /// and expired ones are dropped. Returns the tenant as stored.
    pub async fn rotate_tenant_credential(
        &self,
        p: &Principal,
        id: &TenantId,
        new: TenantCredential,
        grace: Duration,
    ) -> Result<Tenant> {
        let (mut tenant, rule) = self.tenant_admin(p, Action::TenantRotateSecret, id).await?;
        let now = self.now();
        let deadline = now.plus(grace);
        tenant
            .credentials
            .retain(|c| c.expires_at.is_none_or(|e| e > now));
        for c in &mut tenant.credentials {
            c.expires_at = Some(c.expires_at.map_or(deadline, |e| e.min(deadline)));
        }
        let key_id = new.key_id.clone();
        tenant.credentials.push(new);
        tenant.updated_at = now;
        let detail = serde_json::json!({ "key_id": key_id, "grace_secs": grace.as_secs() });
        self.store_tenant(p, tenant, Action::TenantRotateSecret, &rule, detail)
            .await
    }

    /// Creates or updates a user (tenant server).
    pub async fn upsert_user(
        &self,
        p: &Principal,
        id: &UserId,
        name: &str,
        attributes: Attributes,
    ) -> Result<User> {
        let ctx = self.ctx(p).await?;
        let rule = Self::authorize(
            &ctx,
            Action::UserUpsert,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "user")
                .with("id", id.shared()),
        )?;
        check_text("name", name, 1, MAX_NAME)?;
        check_attributes("attributes", &attributes)?;
        // An erased user stays erased: an upsert (a host's user sync) must not
        // bring its sessions and tokens back.
        if let Some(existing) = self.b.users.get(&ctx.tenant, id).await?
            && existing.attributes.get(super::ERASED_ATTRIBUTE)
                == Some(&serde_json::Value::Bool(true))
        {
            return Err(Error::conflict(format!(
                "user `{id}` was erased; its id is not reused"
            )));
        }
        let user = User {
            tenant: ctx.tenant.clone(),
            id: id.clone(),
            name: name.to_owned(),
            attributes,
            created_at: ctx.now,
            updated_at: ctx.now,
        };
        let user = self.b.users.upsert(&user).await?;
        // Its attributes reach this instance's next decisions at once.
        self.remember_user(user.clone(), ctx.now);
        self.audit(
            &ctx.tenant,
            audit_record(
                p,
                Action::UserUpsert,
                format!("user:{id}"),
                &rule,
                serde_json::Value::Null,
                ctx.now,
            ),
        )
        .await?;
        self.emit(
            &ctx,
            std::sync::Arc::from(vec![id.clone()]),
            EventPayload::UserUpdated { user: user.clone() },
        )
        .await?;
        Ok(user)
    }

    /// The tenant's audit log after position `after` (tenant server).
    pub async fn audit_log(
        &self,
        p: &Principal,
        after: u64,
        limit: usize,
    ) -> Result<Vec<crate::model::AuditRecord>> {
        let ctx = self.audit_reader(p).await?;
        self.check_limit(limit)?;
        self.b.audit.list(&ctx.tenant, after, limit).await
    }

    /// The context of reading the caller's tenant's audit log, authorized.
    async fn audit_reader<'p>(&self, p: &'p Principal) -> Result<Ctx<'p>> {
        let ctx = self.ctx(p).await?;
        Self::authorize(
            &ctx,
            Action::AuditRead,
            Self::subject(&ctx, None),
            Attrs::default().with("kind", "audit"),
        )?;
        Ok(ctx)
    }

    /// Walks the caller's tenant's whole audit log and checks its hash chain:
    /// the first record edited, removed or moved in storage is named.
    pub async fn verify_audit(&self, p: &Principal) -> Result<crate::model::AuditVerification> {
        use crate::model::ChainCheck;
        const PAGE: usize = 1000;
        let ctx = self.audit_reader(p).await?;
        let mut check = ChainCheck::new();
        let mut after = 0;
        loop {
            let page = self.b.audit.list(&ctx.tenant, after, PAGE).await?;
            for record in &page {
                if let Err(b) = check.check(record) {
                    return Ok(check.verification(Some(b)));
                }
            }
            match page.last() {
                Some(last) if page.len() == PAGE => after = last.position,
                _ => break,
            }
        }
        Ok(check.verification(None))
    }

    /// Reads a user of the caller's tenant.
    pub async fn get_user(&self, p: &Principal, id: &UserId) -> Result<User> {
        let ctx = self.ctx(p).await?;
        Self::authorize(
            &ctx,
            Action::UserRead,
            Self::subject(&ctx, None),
            Attrs::default()
                .with("kind", "user")
                .with("id", id.shared()),
        )?;
        self.b
            .users
            .get(&ctx.tenant, id)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::User, id))
    }
}

// Used by other service modules for the same checks.
impl Ctx<'_> {
    /// Refuses a message body holding a word of the tenant's blocklist.
    pub(super) fn check_blocklist(&self, body: &str) -> Result<()> {
        if self.rt.blocked.is_empty() {
            return Ok(());
        }
        // Invisible format characters (soft hyphen, zero-width space and
        // joiners, word joiner, BOM) would otherwise split a word in two.
        let visible: String = body
            .chars()
            .filter(|c| {
                !matches!(
                    c,
                    '\u{ad}' | '\u{200b}'..='\u{200d}' | '\u{2060}' | '\u{feff}'
                )
            })
            .collect();
        if crate::ports::tokenize(&visible).any(|w| self.rt.blocked.contains(&w)) {
            return Err(Error::invalid(
                "body",
                "contains a word this tenant does not allow",
            ));
        }
        Ok(())
    }

    pub(super) fn max_message_bytes(&self, cfg: &super::Config) -> usize {
        self.rt
            .tenant
            .settings
            .max_message_bytes
            .unwrap_or(cfg.max_message_bytes)
    }

    pub(super) fn max_members(&self, cfg: &super::Config) -> usize {
        self.rt
            .tenant
            .settings
            .max_members
            .unwrap_or(cfg.max_members)
    }
}
