//! Billing: the payment provider's webhook (Stripe's signature scheme and
//! event shapes) and the invoice lines of a month.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::IntoResponse;
use caas_core::ids::TenantId;
use caas_core::service::{PaymentChange, PaymentEvent};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::auth::Auth;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;

/// The header Stripe signs its deliveries in.
const STRIPE_SIGNATURE: &str = "stripe-signature";

/// How old (or early) a delivery may be, as Stripe's own libraries allow.
const TOLERANCE_SECS: u64 = 300;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct InvoiceQuery {
    /// The month, `YYYY-MM`.
    #[param(pattern = "^[0-9]{4}-[0-9]{2}$")]
    period: String,
}

/// `GET /v1/usage/invoice?period=YYYY-MM` (tenant): the invoice lines of a month.
#[utoipa::path(get, path = "/v1/usage/invoice", tag = "compliance", security(("bearer" = [])), params(InvoiceQuery),
    responses((status = 200, description = "the month's invoice lines", body = caas_core::service::Invoice), crate::problem::Problems))]
pub(super) async fn invoice(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<InvoiceQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.caas.invoice(&p, &q.period).await?))
}

/// What of a Stripe event caas acts on: the tenant from the object's
/// `metadata.tenant_id`, the plan from `metadata.plan`.
fn change_of(kind: &str, object: &Value) -> Option<PaymentChange> {
    let plan = object["metadata"]["plan"].as_str();
    match kind {
        "customer.subscription.created"
        | "customer.subscription.updated"
        | "customer.subscription.resumed" => match object["status"].as_str() {
            Some("active" | "trialing") => plan.map(|p| PaymentChange::Plan(p.to_owned())),
            Some("canceled" | "incomplete_expired") => Some(PaymentChange::Cancelled),
            Some("past_due" | "unpaid") => Some(PaymentChange::PaymentFailed),
            _ => None,
        },
        "customer.subscription.deleted" => Some(PaymentChange::Cancelled),
        "invoice.payment_failed" => Some(PaymentChange::PaymentFailed),
        "invoice.paid" | "invoice.payment_succeeded" => Some(PaymentChange::Paid),
        _ => None,
    }
}

/// `POST /v1/billing/stripe`: the payment provider's webhook. The
/// `Stripe-Signature` header (`t=…,v1=…`: HMAC-SHA-256 of `"{t}.{body}"` with
/// the endpoint's secret) must verify and `t` be within 5 minutes; then plan
/// changes set the tenant's plan and quotas, failed payments suspend it and
/// paid invoices resume it. Events it does not act on are acknowledged.
#[utoipa::path(post, path = "/v1/billing/stripe", tag = "compliance",
    params(("Stripe-Signature" = String, Header, description = "t=<unix secs>,v1=<hex HMAC-SHA-256>")),
    request_body(content = Object, description = "a Stripe event"),
    responses((status = 200, description = "`{received: true, outcome}`", body = Object), crate::problem::Problems))]
pub(super) async fn stripe(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<impl IntoResponse, ApiError> {
    // An unsigned call is refused the same way whether or not a provider is
    // configured.
    let header = headers
        .get(STRIPE_SIGNATURE)
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| ApiError::unauthenticated("missing Stripe-Signature"))?;
    let Some(signer) = &state.config.payment_webhook else {
        return Err(ApiError::not_found("no payment provider is configured"));
    };
    let now = i64::try_from(state.caas.now().as_secs()).unwrap_or(i64::MAX);
    signer
        .verify(header, &body, now, TOLERANCE_SECS)
        .map_err(|why| ApiError::unauthenticated(format!("Stripe-Signature refused: {why}")))?;
    let event: Value = serde_json::from_slice(&body)
        .map_err(|e| ApiError::from(caas_core::Error::invalid("body", e.to_string())))?;
    let (Some(id), Some(kind)) = (event["id"].as_str(), event["type"].as_str()) else {
        return Err(caas_core::Error::invalid("body", "an event needs `id` and `type`").into());
    };
    let object = &event["data"]["object"];
    let tenant = object["metadata"]["tenant_id"]
        .as_str()
        .map(TenantId::parse)
        .transpose()?;
    let (Some(tenant), Some(change)) = (tenant, change_of(kind, object)) else {
        return Ok(Json(json!({"received": true, "outcome": "ignored"})));
    };
    let outcome = state
        .caas
        .apply_payment_event(PaymentEvent {
            id: id.to_owned(),
            kind: kind.to_owned(),
            tenant,
            change,
        })
        .await?;
    Ok(Json(json!({"received": true, "outcome": outcome})))
}
