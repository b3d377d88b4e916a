use std::time::Duration;

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::TenantId;
use caas_core::model::{Tenant, TenantSettings, TenantStatus};
use caas_core::service::TenantChange;
use caas_core::time::Timestamp;
use serde::Deserialize;
use serde_json::json;

use super::id;
use crate::auth::Auth;
use crate::extract::{Api, OptionalJson};
use crate::gateway::AppState;
use crate::problem::ApiError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CreateTenant {
    #[schema(min_length = 1)]
    name: String,
    #[serde(default)]
    settings: TenantSettings,
}

/// The public view of a tenant: never the credential hashes, nor expired ones.
fn view(now: Timestamp, t: &Tenant) -> serde_json::Value {
    json!({
        "tenant_id": t.id,
        "name": t.name,
        "status": t.status,
        "settings": t.settings,
        "secrets": t.credentials.iter().filter(|c| c.expires_at.is_none_or(|e| e > now)).map(|c| json!({"key_id": c.key_id, "created_at": c.created_at, "expires_at": c.expires_at})).collect::<Vec<_>>(),
        "created_at": t.created_at,
        "updated_at": t.updated_at,
    })
}

#[utoipa::path(post, path = "/v1/tenants", tag = "tenants", request_body = CreateTenant, responses((status = 201, description = "`{tenant_id, secret, key_id}`; the secret is shown once", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `POST /v1/tenants` (operator): `{name, settings?}` → `{tenant_id, secret}`.
pub(super) async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Json(body)): Api<Json<CreateTenant>>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = state
        .caas
        .create_tenant(&p, &body.name, body.settings)
        .await?;
    let secret = state
        .caas
        .issue_tenant_secret(&p, &tenant.id, Duration::ZERO)
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"tenant_id": tenant.id, "secret": secret.secret, "key_id": secret.key_id})),
    ))
}

#[utoipa::path(get, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = caas_core::ids::TenantId, Path, description = "tenant id")), responses((status = 200, description = "the tenant (never credential hashes)", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/tenants/{id}`.
pub(super) async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(t)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let t: TenantId = id(&t)?;
    Ok(Json(view(
        state.caas.now(),
        &state.caas.get_tenant(&p, &t).await?,
    )))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PatchTenant {
    #[schema(min_length = 1)]
    name: Option<String>,
    settings: Option<TenantSettings>,
    status: Option<TenantStatus>,
}

#[utoipa::path(patch, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = caas_core::ids::TenantId, Path, description = "tenant id")), request_body = PatchTenant, responses((status = 200, description = "the tenant after the change", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `PATCH /v1/tenants/{id}` (operator): name, settings (limits, policy), status.
pub(super) async fn patch(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(t)): Api<Path<String>>,
    Api(Json(body)): Api<Json<PatchTenant>>,
) -> Result<impl IntoResponse, ApiError> {
    let t: TenantId = id(&t)?;
    let mut tenant = if body.name.is_some() || body.settings.is_some() {
        state
            .caas
            .update_tenant(
                &p,
                &t,
                TenantChange {
                    name: body.name,
                    settings: body.settings,
                },
            )
            .await?
    } else {
        state.caas.get_tenant(&p, &t).await?
    };
    if let Some(status) = body.status {
        tenant = state.caas.set_tenant_status(&p, &t, status).await?;
    }
    Ok(Json(view(state.caas.now(), &tenant)))
}

#[utoipa::path(delete, path = "/v1/tenants/{id}", tag = "tenants", params(("id" = caas_core::ids::TenantId, Path, description = "tenant id")), responses((status = 200, description = "the suspended tenant", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `DELETE /v1/tenants/{id}` (operator): suspends; data is kept.
pub(super) async fn suspend(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(t)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let t: TenantId = id(&t)?;
    Ok(Json(view(
        state.caas.now(),
        &state
            .caas
            .set_tenant_status(&p, &t, TenantStatus::Suspended)
            .await?,
    )))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotate {
    /// How long the current secrets keep working (default one hour, at most 30 days).
    #[schema(maximum = 2592000)]
    grace_secs: Option<u64>,
}

#[utoipa::path(post, path = "/v1/tenants/{id}/secrets", tag = "tenants", params(("id" = caas_core::ids::TenantId, Path, description = "tenant id")), request_body = Option<Rotate>, responses((status = 201, description = "`{secret, key_id, previous_valid_for_secs}`", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `POST /v1/tenants/{id}/secrets` (operator, tenant): a new secret, shown once;
/// the old ones keep working for the grace period.
pub(super) async fn rotate_secret(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(t)): Api<Path<String>>,
    OptionalJson(body): OptionalJson<Rotate>,
) -> Result<impl IntoResponse, ApiError> {
    let t: TenantId = id(&t)?;
    let grace = body.unwrap_or_default().grace_secs.unwrap_or(3600);
    if grace > 30 * 86_400 {
        return Err(ApiError::invalid("grace_secs: at most 30 days"));
    }
    let secret = state
        .caas
        .issue_tenant_secret(&p, &t, Duration::from_secs(grace))
        .await?;
    Ok((
        StatusCode::CREATED,
        Json(
            json!({"secret": secret.secret, "key_id": secret.key_id, "previous_valid_for_secs": grace}),
        ),
    ))
}
