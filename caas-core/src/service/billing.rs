//! Billing: what a payment provider's webhooks say about a tenant (plan
//! changes, failed and paid invoices) applied to its plan, quotas and status,
//! and the invoice lines of a month from the usage meters.
//!
//! The front door verifies the provider's signature and timestamp; this module
//! trusts what it is given, applies each event id once (remembered for the
//! replay window on this node; applying an event twice sets the same state
//! again), and audits every change as the actor `billing`.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;
use std::time::Duration;

use serde::Serialize;

use super::Caas;
use crate::error::{EntityKind, Error, Result};
use crate::ids::TenantId;
use crate::model::{AuditRecord, TenantStatus, UsageQuotas};
use crate::policy::{Action, Attrs};
use crate::principal::Principal;
use crate::time::{Day, Timestamp};

/// How long an applied event id is remembered (the providers' replay window).
const REMEMBER: Duration = Duration::from_secs(600);

/// What a payment provider's event asks for, read from its payload.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PaymentChange {
    /// The tenant subscribes to `plan` (created, updated, resumed).
    Plan(String),
    /// The subscription ended: no plan, no plan quotas.
    Cancelled,
    /// A payment failed: the tenant is suspended until one succeeds.
    PaymentFailed,
    /// A payment succeeded: a suspension for a failed payment is lifted.
    Paid,
}

/// A verified event of the payment provider.
#[derive(Debug, Clone)]
pub struct PaymentEvent {
    /// The provider's event id (each is applied once).
    pub id: String,
    /// The provider's event type, for the audit log.
    pub kind: String,
    /// The tenant it concerns.
    pub tenant: TenantId,
    /// What it asks for.
    pub change: PaymentChange,
}

/// What applying an event did.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum PaymentOutcome {
    /// The tenant changed.
    Applied,
    /// This event id was already applied.
    Duplicate,
    /// Nothing needed to change.
    Unchanged,
}

/// Event ids applied lately.
#[derive(Debug, Default)]
pub(super) struct SeenEvents(Mutex<HashMap<String, Timestamp>>);

/// One line of an invoice.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct InvoiceLine {
    /// `monthly_fee`, or the meter (`messages`, `active_users`, …).
    pub item: String,
    /// How many units.
    pub quantity: i64,
    /// The price of one, in millionths of the currency unit (`None` when the
    /// plan does not price it).
    pub unit_price_micros: Option<u64>,
    /// `quantity × unit_price_micros` (0 when unpriced or negative).
    pub amount_micros: u64,
}

/// A tenant's invoice lines for one month.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Invoice {
    /// The tenant.
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub tenant_id: TenantId,
    /// The billing period, `YYYY-MM`.
    pub period: String,
    /// The plan the tenant is on now (`None`: none).
    pub plan: Option<String>,
    /// The currency of the prices (empty without a plan).
    pub currency: String,
    /// The lines: the monthly fee, then every meter of the month.
    pub lines: Vec<InvoiceLine>,
    /// The sum of the lines' amounts.
    pub total_micros: u64,
}

/// Parses `YYYY-MM` into its first day.
fn month_start(period: &str) -> Result<Day> {
    let bad = || Error::invalid("period", format!("`{period}` is not a month (YYYY-MM)"));
    if period.len() != 7 {
        return Err(bad());
    }
    Day::parse(&format!("{period}-01")).map_err(|_| bad())
}

impl Caas {
    /// Applies a payment provider's verified event to its tenant: a plan
    /// change sets the plan and its quotas (an unknown plan is
    /// `invalid_argument`), a cancellation removes both, a failed payment
    /// suspends the tenant, a paid invoice resumes a tenant suspended for
    /// payment. Audited; an event id seen lately is a `Duplicate`.
    pub async fn apply_payment_event(&self, e: PaymentEvent) -> Result<PaymentOutcome> {
        let now = self.now();
        {
            let mut seen = self
                .billing_seen
                .0
                .lock()
                .map_err(|_| Error::internal("billing event ids lock poisoned"))?;
            seen.retain(|_, at| now.since(*at) < REMEMBER);
            if seen.contains_key(&e.id) {
                return Ok(PaymentOutcome::Duplicate);
            }
        }
        let mut tenant = self
            .b
            .tenants
            .get(&e.tenant)
            .await?
            .ok_or_else(|| Error::not_found(EntityKind::Tenant, &e.tenant))?;
        let before = tenant.clone();
        let billing = &mut tenant.settings.billing;
        match &e.change {
            PaymentChange::Plan(name) => {
                let plan = self.cfg.plans.get(name).ok_or_else(|| {
                    Error::invalid("plan", format!("no plan `{name}` in the catalog"))
                })?;
                billing.plan = Some(name.clone());
                tenant.settings.quotas = plan.quotas.clone();
            }
            PaymentChange::Cancelled => {
                billing.plan = None;
                tenant.settings.quotas = UsageQuotas::default();
            }
            // Only an active tenant is suspended for payment: one the operator
            // suspended stays the operator's to resume, whatever is paid.
            PaymentChange::PaymentFailed => {
                if tenant.status == TenantStatus::Active {
                    billing.payment_failed = true;
                    tenant.status = TenantStatus::Suspended;
                }
            }
            PaymentChange::Paid => {
                if billing.payment_failed {
                    billing.payment_failed = false;
                    tenant.status = TenantStatus::Active;
                }
            }
        }
        let outcome = if tenant == before {
            PaymentOutcome::Unchanged
        } else {
            self.b.tenants.update(&tenant).await?;
            self.audit(
                &tenant.id,
                AuditRecord {
                    position: 0,
                    at: now,
                    actor: "billing".into(),
                    action: "billing.event".into(),
                    target: format!("tenant:{}", tenant.id),
                    rule: "payment-provider-signature".into(),
                    correlation_id: crate::ids::CorrelationId::generate(now),
                    detail: serde_json::json!({
                        "event_id": e.id,
                        "event_type": e.kind,
                        "plan": tenant.settings.billing.plan,
                        "status": tenant.status,
                    }),
                    hash: String::new(),
                },
            )
            .await?;
            self.install(tenant, now)?;
            PaymentOutcome::Applied
        };
        if let Ok(mut seen) = self.billing_seen.0.lock() {
            seen.insert(e.id, now);
        }
        Ok(outcome)
    }

    /// The invoice lines of `period` (`YYYY-MM`) for the caller's tenant
    /// (`usage.read`): the plan's monthly fee, then each meter of the month
    /// and the month's active users, priced by the tenant's current plan.
    pub async fn invoice(&self, p: &Principal, period: &str) -> Result<Invoice> {
        let ctx = self.ctx(p).await?;
        Self::authorize(
            &ctx,
            Action::UsageRead,
            Self::subject(&ctx, None),
            Attrs::default().with("kind", "usage"),
        )?;
        let start = month_start(period)?;
        let end = Day(Day(start.0 + 31).month_start().0 - 1);
        self.flush_usage().await?;
        let mut quantities: BTreeMap<String, i64> = BTreeMap::new();
        for row in self.b.usage.read(&ctx.tenant, start.0, end.0).await? {
            *quantities.entry(row.meter).or_default() += row.value;
        }
        let active = self
            .b
            .usage
            .active_users(&ctx.tenant, start.month())
            .await?;
        quantities.insert(
            "active_users".into(),
            i64::try_from(active).unwrap_or(i64::MAX),
        );
        let plan_name = ctx.rt.tenant.settings.billing.plan.clone();
        let plan = plan_name.as_ref().and_then(|n| self.cfg.plans.get(n));
        let mut lines = Vec::new();
        if let Some(plan) = plan {
            lines.push(InvoiceLine {
                item: "monthly_fee".into(),
                quantity: 1,
                unit_price_micros: Some(plan.monthly_fee_micros),
                amount_micros: plan.monthly_fee_micros,
            });
        }
        for (item, quantity) in quantities {
            let unit = plan.and_then(|p| p.unit_price_micros.get(&item).copied());
            let amount = unit.map_or(0, |u| {
                u64::try_from(quantity).unwrap_or(0).saturating_mul(u)
            });
            lines.push(InvoiceLine {
                item,
                quantity,
                unit_price_micros: unit,
                amount_micros: amount,
            });
        }
        let total_micros = lines
            .iter()
            .fold(0u64, |t, l| t.saturating_add(l.amount_micros));
        Ok(Invoice {
            tenant_id: ctx.tenant.clone(),
            period: period.to_owned(),
            plan: plan_name,
            currency: plan.map(|p| p.currency.clone()).unwrap_or_default(),
            lines,
            total_micros,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn periods_are_months() {
        assert_eq!(month_start("2026-12").unwrap().to_string(), "2026-12-01");
        for bad in ["2026-13", "2026-1", "2026-12-01", "", "abcd-ef"] {
            assert!(month_start(bad).is_err(), "{bad}");
        }
    }
}
