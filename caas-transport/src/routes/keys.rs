use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use caas_core::ids::{DeviceId, UserId};
use caas_core::model::DeviceKeys;
use serde::Deserialize;
use serde_json::json;

use super::{DEFAULT_LIMIT, Page, id};
use crate::auth::Auth;
use crate::gateway::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::problem::ApiError;

/// `PUT /v1/devices/{device_id}/keys` (user): publishes the caller's device keys
/// after their signatures check out.
#[utoipa::path(put, path = "/v1/devices/{device_id}/keys", tag = "e2ee", security(("bearer" = [])),
    params(("device_id" = String, Path, description = "the caller's device")), request_body = caas_core::model::DeviceKeys,
    responses((status = 200, description = "`{one_time_prekeys}`: the device's pool size", body = Object),
        (status = 400, description = "malformed keys or a bad signature", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub(super) async fn publish(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(d): ApiPath<String>,
    ApiJson(keys): ApiJson<DeviceKeys>,
) -> Result<impl IntoResponse, ApiError> {
    let d: DeviceId = id(&d)?;
    let n = state.caas.publish_keys(&p, &d, &keys).await?;
    Ok(Json(json!({"one_time_prekeys": n})))
}

/// `GET /v1/users/{user_id}/keys` (user): one bundle per device; each one-time
/// prekey is handed out once.
#[utoipa::path(get, path = "/v1/users/{user_id}/keys", tag = "e2ee", security(("bearer" = [])),
    params(("user_id" = String, Path, description = "whose devices")),
    responses((status = 200, description = "`{items: [KeyBundle]}`", body = Object)))]
pub(super) async fn claim(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(u): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let u: UserId = id(&u)?;
    let items = state.caas.claim_keys(&p, &u).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    after: Option<u64>,
    limit: Option<usize>,
}

/// `GET /v1/audit` (tenant): the audit log, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "compliance", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "`{items: [AuditRecord], next_cursor}`", body = Object)))]
pub(super) async fn audit(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let items = state
        .caas
        .audit_log(&p, q.after.unwrap_or(0), limit)
        .await?;
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|r| r.position.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}
