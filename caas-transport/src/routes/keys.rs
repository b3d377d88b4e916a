use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use caas_core::ids::{DeviceId, UserId};
use caas_core::model::DeviceKeys;
use serde_json::json;

use super::{Page, id};
use crate::auth::Auth;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;

/// `PUT /v1/devices/{device_id}/keys` (user): publishes the caller's device keys
/// after their signatures check out.
#[utoipa::path(put, path = "/v1/devices/{device_id}/keys", tag = "e2ee", security(("bearer" = [])),
    params(("device_id" = caas_core::ids::DeviceId, Path, description = "the caller's device")), request_body = caas_core::model::DeviceKeys,
    responses((status = 200, description = "`{one_time_prekeys}`: the device's pool size", body = Object), crate::problem::Problems))]
pub(super) async fn publish(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(d)): Api<Path<String>>,
    Api(Json(keys)): Api<Json<DeviceKeys>>,
) -> Result<impl IntoResponse, ApiError> {
    let d: DeviceId = id(&d)?;
    let n = state.caas.publish_keys(&p, &d, &keys).await?;
    Ok(Json(json!({"one_time_prekeys": n})))
}

/// `GET /v1/users/{user_id}/keys` (user): one bundle per device; each one-time
/// prekey is handed out once.
#[utoipa::path(get, path = "/v1/users/{user_id}/keys", tag = "e2ee", security(("bearer" = [])),
    params(("user_id" = caas_core::ids::UserId, Path, description = "whose devices")),
    responses((status = 200, description = "`{items: [KeyBundle]}`: one bundle per device, with a one-time prekey while the claimer's budget for this user (10 a day, bursts of 5) and the user's budget across claimers (100 a day, bursts of 20) last, then with the signed prekey alone; 30 claims a minute per claimer", body = Object), crate::problem::Problems))]
pub(super) async fn claim(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(u)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let u: UserId = id(&u)?;
    let items = state.caas.claim_keys(&p, &u).await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}
