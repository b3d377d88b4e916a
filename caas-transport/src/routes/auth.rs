//! Password auth for tenants that enable it: register, login (with an optional
//! TOTP second factor), refresh-token rotation with reuse detection, logout, and
//! TOTP enrolment. The rules live in the core ([`caas_core::Caas::login`] and
//! its neighbours); these handlers map HTTP to those calls and back.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::service::SessionTokens;
use serde::Deserialize;
use serde_json::json;

use super::id;
use crate::auth::Auth;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;

/// The JSON of a session's tokens.
fn tokens(t: SessionTokens) -> Json<serde_json::Value> {
    Json(json!({
        "access_token": t.access.access_token,
        "token_type": "Bearer",
        "expires_at": t.access.expires_at,
        "refresh_token": t.refresh_token,
        "refresh_expires_at": t.refresh_expires_at,
    }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Register {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    tenant_id: String,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    user_id: String,
    password: String,
    name: Option<String>,
}

#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = Register,
    responses((status = 201, description = "the user", body = caas_core::model::User), crate::problem::Problems))]
/// `POST /v1/auth/register`: a new user with a password, when the tenant enables it.
pub(super) async fn register(
    State(state): State<AppState>,
    Api(Json(body)): Api<Json<Register>>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant: TenantId = id(&body.tenant_id)?;
    let user: UserId = id(&body.user_id)?;
    let created = state
        .caas
        .register(&tenant, &user, &body.password, body.name.as_deref())
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    tenant_id: String,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    user_id: String,
    password: String,
    totp_code: Option<String>,
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    device_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, description = "`{access_token, token_type, expires_at, refresh_token, refresh_expires_at}`", body = Object), crate::problem::Problems))]
/// `POST /v1/auth/login`: `{access_token, refresh_token, …}`.
pub(super) async fn login(
    State(state): State<AppState>,
    Api(Json(body)): Api<Json<Login>>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant: TenantId = id(&body.tenant_id)?;
    let user: UserId = id(&body.user_id)?;
    let device = body.device_id.as_deref().map(id::<DeviceId>).transpose()?;
    let session = state
        .caas
        .login(
            &tenant,
            &user,
            &body.password,
            body.totp_code.as_deref(),
            device,
        )
        .await?;
    Ok(tokens(session))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshBody {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    tenant_id: String,
    refresh_token: String,
}

#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, description = "new tokens; the presented refresh token is spent", body = Object), crate::problem::Problems))]
/// `POST /v1/auth/refresh`: exchanges a refresh token for new tokens (once).
pub(super) async fn refresh_tokens(
    State(state): State<AppState>,
    Api(Json(body)): Api<Json<RefreshBody>>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant: TenantId = id(&body.tenant_id)?;
    Ok(tokens(
        state.caas.refresh(&tenant, &body.refresh_token).await?,
    ))
}

#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshBody, responses((status = 204, description = "logged out (also for unknown tokens)"), crate::problem::Problems))]
/// `POST /v1/auth/logout`: revokes the login the refresh token belongs to.
pub(super) async fn logout(
    State(state): State<AppState>,
    Api(Json(body)): Api<Json<RefreshBody>>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant: TenantId = id(&body.tenant_id)?;
    state.caas.logout(&tenant, &body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TotpEnroll {
    /// The caller's current password: an access token alone (perhaps a stolen
    /// one) cannot bind a second factor and lock the owner out.
    password: String,
}

#[utoipa::path(post, path = "/v1/auth/totp", tag = "auth", request_body = TotpEnroll, security(("bearer" = [])),
    responses((status = 200, description = "`{secret, otpauth_uri}`; confirm with a first code", body = Object), crate::problem::Problems))]
/// `POST /v1/auth/totp`: starts TOTP enrolment for the caller's password login.
pub(super) async fn totp_enroll(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Json(body)): Api<Json<TotpEnroll>>,
) -> Result<impl IntoResponse, ApiError> {
    let e = state.caas.totp_enroll(&p, &body.password).await?;
    Ok(Json(
        json!({"secret": e.secret, "otpauth_uri": e.otpauth_uri}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TotpConfirm {
    code: String,
}

#[utoipa::path(post, path = "/v1/auth/totp/confirm", tag = "auth", request_body = TotpConfirm, security(("bearer" = [])),
    responses((status = 204, description = "the factor is on"), crate::problem::Problems))]
/// `POST /v1/auth/totp/confirm`: a first code turns the factor on.
pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Json(body)): Api<Json<TotpConfirm>>,
) -> Result<impl IntoResponse, ApiError> {
    state.caas.totp_confirm(&p, &body.code).await?;
    Ok(StatusCode::NO_CONTENT)
}
