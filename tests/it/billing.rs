//! The payment provider's events applied to tenants, and invoice lines, through
//! the public service API on every backend set.

use std::collections::BTreeMap;

use caas::core::model::{TenantSettings, TenantStatus, UsageQuotas};
use caas::core::service::{PaymentChange, PaymentEvent, PaymentOutcome, Plan};
use caas::{Config, Error};

use crate::sets::{Set, on_every_set};
use crate::world::{World, forbidden};

on_every_set!(async
    payment_events_set_plans_suspend_and_resume,
    invoices_price_the_months_meters_by_plan,
);

fn catalog() -> Config {
    let pro = Plan {
        quotas: UsageQuotas {
            messages_per_month: Some(1_000),
            media_bytes: Some(1 << 30),
        },
        monthly_fee_micros: 49_000_000,
        unit_price_micros: BTreeMap::from([("messages".to_owned(), 1_000)]),
        currency: "usd".into(),
    };
    Config {
        plans: BTreeMap::from([("pro".to_owned(), pro)]),
        ..Config::default()
    }
}

fn event(w: &World, id: &str, change: PaymentChange) -> PaymentEvent {
    PaymentEvent {
        id: id.into(),
        kind: "test.event".into(),
        tenant: w.tenant.clone(),
        change,
    }
}

async fn payment_events_set_plans_suspend_and_resume(set: Set) {
    let w = World::with_config(set, &["alice"], TenantSettings::default(), catalog()).await;
    let tenant = || async {
        w.caas
            .get_tenant(&caas::Principal::operator(), &w.tenant)
            .await
            .unwrap()
    };
    let apply = |id: &str, change| w.caas.apply_payment_event(event(&w, id, change));

    assert_eq!(
        apply("evt_1", PaymentChange::Plan("pro".into()))
            .await
            .unwrap(),
        PaymentOutcome::Applied
    );
    let t = tenant().await;
    assert_eq!(t.settings.billing.plan.as_deref(), Some("pro"));
    assert_eq!(t.settings.quotas.messages_per_month, Some(1_000));
    assert_eq!(
        apply("evt_1", PaymentChange::Plan("pro".into()))
            .await
            .unwrap(),
        PaymentOutcome::Duplicate
    );
    assert_eq!(
        apply("evt_2", PaymentChange::Plan("pro".into()))
            .await
            .unwrap(),
        PaymentOutcome::Unchanged
    );
    assert!(matches!(
        apply("evt_3", PaymentChange::Plan("platinum".into())).await,
        Err(Error::InvalidArgument { .. })
    ));

    let conv = w.group("alice", &[]).await;
    apply("evt_4", PaymentChange::PaymentFailed).await.unwrap();
    assert_eq!(tenant().await.status, TenantStatus::Suspended);
    forbidden(w.send("alice", &conv, "k0", "x").await, "tenant-suspended");
    apply("evt_5", PaymentChange::Paid).await.unwrap();
    assert_eq!(tenant().await.status, TenantStatus::Active);
    w.send("alice", &conv, "k1", "back").await.unwrap();

    // A suspension by the operator is not the payment provider's to lift.
    w.caas
        .set_tenant_status(
            &caas::Principal::operator(),
            &w.tenant,
            TenantStatus::Suspended,
        )
        .await
        .unwrap();
    assert_eq!(
        apply("evt_6", PaymentChange::Paid).await.unwrap(),
        PaymentOutcome::Unchanged
    );
    // Not even after a failed payment arrives meanwhile.
    apply("evt_6b", PaymentChange::PaymentFailed).await.unwrap();
    apply("evt_6c", PaymentChange::Paid).await.unwrap();
    assert_eq!(tenant().await.status, TenantStatus::Suspended);

    apply("evt_7", PaymentChange::Cancelled).await.unwrap();
    let t = tenant().await;
    assert_eq!(t.settings.billing.plan, None);
    assert_eq!(t.settings.quotas, UsageQuotas::default());
    let audit = w.caas.audit_log(&w.server(), 0, 100).await;
    // Suspended: the tenant cannot read its log now; the operator resumes it.
    assert!(audit.is_err());
    w.caas
        .set_tenant_status(
            &caas::Principal::operator(),
            &w.tenant,
            TenantStatus::Active,
        )
        .await
        .unwrap();
    let audit = w.caas.audit_log(&w.server(), 0, 100).await.unwrap();
    let billing: Vec<_> = audit
        .iter()
        .filter(|r| r.action == "billing.event")
        .map(|r| r.detail["event_id"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(billing, vec!["evt_1", "evt_4", "evt_5", "evt_7"]);
}

async fn invoices_price_the_months_meters_by_plan(set: Set) {
    let w = World::with_config(set, &["alice"], TenantSettings::default(), catalog()).await;
    let conv = w.group("alice", &[]).await;
    for i in 0..3 {
        w.send("alice", &conv, &format!("k{i}"), "hi")
            .await
            .unwrap();
    }
    let period = &w.caas.usage(&w.server(), None, None).await.unwrap().to[..7].to_owned();
    // No plan: quantities without prices.
    let inv = w.caas.invoice(&w.server(), period).await.unwrap();
    assert_eq!(inv.plan, None);
    assert_eq!(inv.total_micros, 0);
    let messages = inv.lines.iter().find(|l| l.item == "messages").unwrap();
    assert_eq!((messages.quantity, messages.unit_price_micros), (3, None));

    w.caas
        .apply_payment_event(event(&w, "evt_p", PaymentChange::Plan("pro".into())))
        .await
        .unwrap();
    let inv = w.caas.invoice(&w.server(), period).await.unwrap();
    assert_eq!(inv.currency, "usd");
    assert_eq!(inv.lines[0].item, "monthly_fee");
    let messages = inv.lines.iter().find(|l| l.item == "messages").unwrap();
    assert_eq!(messages.amount_micros, 3_000);
    let active = inv.lines.iter().find(|l| l.item == "active_users").unwrap();
    assert_eq!(active.quantity, 1);
    assert_eq!(inv.total_micros, 49_003_000);
    assert!(matches!(
        w.caas.invoice(&w.server(), "2026-13").await,
        Err(Error::InvalidArgument { .. })
    ));
    forbidden(
        w.caas.invoice(&w.user("alice"), period).await,
        "default-deny",
    );
}
