use axum::Json;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::IntoResponse;
use caas_core::ids::{DeviceId, UserId};
use caas_core::model::Attributes;
use serde::Deserialize;
use serde_json::json;

use super::id;
use crate::auth::Auth;
use crate::extract::{Api, OptionalJson};
use crate::gateway::AppState;
use crate::problem::ApiError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Upsert {
    #[schema(min_length = 1)]
    name: String,
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: Attributes,
}

#[utoipa::path(put, path = "/v1/users/{user_id}", tag = "users", params(("user_id" = caas_core::ids::UserId, Path, description = "user id")), request_body = Upsert, responses((status = 200, description = "the user as stored", body = caas_core::model::User), crate::problem::Problems), security(("bearer" = [])))]
/// `PUT /v1/users/{user_id}` (tenant).
pub(super) async fn upsert(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(u)): Api<Path<String>>,
    Api(Json(body)): Api<Json<Upsert>>,
) -> Result<impl IntoResponse, ApiError> {
    let u: UserId = id(&u)?;
    Ok(Json(
        state
            .caas
            .upsert_user(&p, &u, &body.name, body.attributes)
            .await?,
    ))
}

#[utoipa::path(get, path = "/v1/users/{user_id}", tag = "users", params(("user_id" = caas_core::ids::UserId, Path, description = "user id")), responses((status = 200, description = "the user", body = caas_core::model::User), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/users/{user_id}`.
pub(super) async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(u)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let u: UserId = id(&u)?;
    Ok(Json(state.caas.get_user(&p, &u).await?))
}

#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Mint {
    /// Seconds the token lives (900 by default, at most a day).
    #[schema(minimum = 1, maximum = 86400)]
    ttl_s: Option<u64>,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    device_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/users/{user_id}/tokens", tag = "users", params(("user_id" = caas_core::ids::UserId, Path, description = "user id")), request_body = Option<Mint>, responses((status = 200, description = "`{access_token, token_type, expires_at}`", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `POST /v1/users/{user_id}/tokens` (tenant): `{ttl_s?, device_id?}` →
/// `{access_token, expires_at}`. Only a tenant server mints, for its own users.
pub(super) async fn mint_token(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(u)): Api<Path<String>>,
    OptionalJson(body): OptionalJson<Mint>,
) -> Result<impl IntoResponse, ApiError> {
    let u: UserId = id(&u)?;
    let body = body.unwrap_or_default();
    let ttl = std::time::Duration::from_secs(body.ttl_s.unwrap_or(900));
    let device = body.device_id.as_deref().map(id::<DeviceId>).transpose()?;
    let token = state.caas.mint_token(&p, &u, device.as_ref(), ttl).await?;
    Ok(Json(
        json!({"access_token": token.access_token, "token_type": "Bearer", "expires_at": token.expires_at}),
    ))
}

#[utoipa::path(get, path = "/.well-known/jwks.json", tag = "users", responses((status = 200, description = "the JWKS document of the platform's token keys", content_type = "application/jwk-set+json", body = Object), crate::problem::Problems))]
/// `GET /.well-known/jwks.json`: the platform's token verification keys.
pub(super) async fn jwks(State(state): State<AppState>) -> Result<impl IntoResponse, ApiError> {
    Ok((
        [(header::CONTENT_TYPE, "application/jwk-set+json")],
        state.caas.public_keys()?,
    ))
}
