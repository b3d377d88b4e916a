//! Password auth for tenants that enable it: register, login (with an optional
//! TOTP second factor), refresh-token rotation with reuse detection, logout.
//!
//! A refresh token is exchanged once; presenting an already exchanged token means it
//! was copied, so its whole family (every token descended from that login) is
//! revoked and both holders must log in again.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::{DeviceId, TenantId, UserId};
use caas_core::model::TenantStatus;
use caas_core::ports::{PasswordLogin, RefreshSession, SessionStatus, TotpFactor};
use caas_core::ratelimit::{Decision, Quota, RateKey};
use caas_core::time::Timestamp;
use caas_core::{Error, Principal};
use caas_crypto::password::{PasswordHasher, PasswordVerdict};
use caas_crypto::refresh::{self, RefreshRecord, RefreshStatus, RefreshToken};
use caas_crypto::totp::{Totp, TotpAlgorithm};
use serde::Deserialize;
use serde_json::json;

use super::id;
use crate::auth::Auth;
use crate::gateway::{ApiJson, AppState};
use crate::problem::ApiError;

/// Access tokens from password logins last 15 minutes.
const ACCESS_TTL_SECS: u64 = 900;
/// Refresh tokens last 30 days.
const REFRESH_TTL_SECS: u64 = 30 * 86_400;
/// Longest password accepted: bounds the hashing work an attacker can ask for.
const MAX_PASSWORD_BYTES: usize = 1024;
/// Shortest password accepted.
const MIN_PASSWORD_CHARS: usize = 8;
/// Login attempts per user per minute, against password guessing.
const LOGIN_ATTEMPTS_PER_MINUTE: u32 = 10;

const INVALID_LOGIN: &str = "unknown user or wrong password";

fn secs(t: Timestamp) -> i64 {
    i64::try_from(t.as_secs()).unwrap_or(i64::MAX)
}

fn from_secs(s: i64) -> Timestamp {
    Timestamp::from_secs(u64::try_from(s).unwrap_or(0))
}

/// The tenant, which must exist, be active and have password auth on.
async fn password_tenant(state: &AppState, tenant: &str) -> Result<TenantId, ApiError> {
    let id: TenantId = id(tenant)?;
    let t = state
        .caas
        .backends()
        .tenants
        .get(&id)
        .await?
        .ok_or_else(|| ApiError::from(Error::not_found(caas_core::EntityKind::Tenant, &id)))?;
    if t.status == TenantStatus::Suspended {
        return Err(Error::forbidden("tenant-suspended").into());
    }
    if !t.settings.password_auth {
        return Err(Error::forbidden("password-auth-disabled").into());
    }
    Ok(id)
}

fn check_password(p: &str) -> Result<(), ApiError> {
    if p.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::too_large(format!(
            "password: at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    if p.chars().count() < MIN_PASSWORD_CHARS {
        return Err(ApiError::invalid(format!(
            "password: at least {MIN_PASSWORD_CHARS} characters"
        )));
    }
    Ok(())
}

/// Argon2 takes milliseconds of CPU: never on the async workers.
/// Argon2 calls allowed at once: each takes ~19 MiB and a core for ~14 ms, so
/// unauthenticated callers must not be able to start more than the machine runs.
fn argon2_permits() -> &'static tokio::sync::Semaphore {
    static PERMITS: OnceLock<tokio::sync::Semaphore> = OnceLock::new();
    PERMITS.get_or_init(|| {
        let cores = std::thread::available_parallelism().map_or(2, std::num::NonZero::get);
        tokio::sync::Semaphore::new(cores * 2)
    })
}

/// Waits briefly for an Argon2 permit; a queue that stays full is overload (503).
async fn argon2_permit() -> Result<tokio::sync::SemaphorePermit<'static>, ApiError> {
    match tokio::time::timeout(Duration::from_secs(2), argon2_permits().acquire()).await {
        Ok(Ok(p)) => Ok(p),
        _ => Err(Error::Unavailable {
            backend: "passwords",
            context: "too many password checks in progress".into(),
            temporary: true,
            source: None,
        }
        .into()),
    }
}

async fn hash(hasher: Arc<PasswordHasher>, password: String) -> Result<String, ApiError> {
    let _permit = argon2_permit().await?;
    tokio::task::spawn_blocking(move || hasher.hash(&password))
        .await
        .map_err(|_| ApiError::internal())?
        .map_err(ApiError::from)
}

async fn verify(
    hasher: Arc<PasswordHasher>,
    password: String,
    phc: String,
) -> Result<Option<PasswordVerdict>, ApiError> {
    let _permit = argon2_permit().await?;
    tokio::task::spawn_blocking(move || hasher.verify(&password, &phc).ok())
        .await
        .map_err(|_| ApiError::internal())
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Register {
    tenant_id: String,
    user_id: String,
    password: String,
    name: Option<String>,
}

/// `POST /v1/auth/register`: a new user with a password, when the tenant enables it.
#[utoipa::path(post, path = "/v1/auth/register", tag = "auth", request_body = Register,
    responses((status = 201, description = "the user", body = caas_core::model::User),
        (status = 403, description = "password auth is off for the tenant", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 409, description = "the user exists", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub(super) async fn register(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Register>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = password_tenant(&state, &body.tenant_id).await?;
    let user: UserId = id(&body.user_id)?;
    check_password(&body.password)?;
    let server = Principal::tenant_server(tenant.clone());
    if state
        .caas
        .backends()
        .users
        .get(&tenant, &user)
        .await?
        .is_some()
    {
        // Never let a registration take over an account the tenant created.
        return Err(Error::conflict(format!("user `{user}` exists")).into());
    }
    let phc = hash(state.passwords.clone(), body.password).await?;
    let now = state.caas.backends().clock.now();
    let login = PasswordLogin {
        tenant: tenant.clone(),
        user: user.clone(),
        phc,
        totp: None,
        updated_at: now,
    };
    state.credentials.create_login(&login).await?;
    let created = state
        .caas
        .upsert_user(
            &server,
            &user,
            body.name.as_deref().unwrap_or(user.as_str()),
            Default::default(),
        )
        .await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Login {
    tenant_id: String,
    user_id: String,
    password: String,
    totp_code: Option<String>,
    device_id: Option<String>,
}

/// Spends one of `user`'s password attempts (the login's per-user budget) and
/// refuses a password too long to hash; every path that checks a password
/// goes through it, so none is a cheaper way to guess.
async fn password_attempt(
    state: &AppState,
    tenant: &TenantId,
    user: &UserId,
    password: &str,
) -> Result<(), ApiError> {
    if password.len() > MAX_PASSWORD_BYTES {
        return Err(ApiError::too_large(format!(
            "password: at most {MAX_PASSWORD_BYTES} bytes"
        )));
    }
    let now = state.caas.backends().clock.now();
    let key = RateKey::new(tenant, user.shared(), "auth.login");
    match state
        .caas
        .backends()
        .rate_limits
        .check(&key, &Quota::per_minute(LOGIN_ATTEMPTS_PER_MINUTE), now)
        .await?
    {
        Decision::Deny { retry_after } => Err(ApiError::rate_limited(
            "too many login attempts for this user",
            retry_after,
        )),
        Decision::Allow { .. } => Ok(()),
    }
}

/// `POST /v1/auth/login`: `{access_token, refresh_token, …}`.
#[utoipa::path(post, path = "/v1/auth/login", tag = "auth", request_body = Login,
    responses((status = 200, description = "`{access_token, token_type, expires_at, refresh_token, refresh_expires_at}`", body = Object),
        (status = 401, description = "unknown user, wrong password, or a missing or wrong TOTP code", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many attempts for this user", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub(super) async fn login(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<Login>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = password_tenant(&state, &body.tenant_id).await?;
    let user: UserId = id(&body.user_id)?;
    let device = body.device_id.as_deref().map(id::<DeviceId>).transpose()?;
    password_attempt(&state, &tenant, &user, &body.password).await?;
    let now = state.caas.backends().clock.now();
    let stored = state.credentials.login(&tenant, &user).await?;
    // An unknown user costs the same hashing work as a wrong password, so timing
    // does not reveal which users exist.
    let phc = match &stored {
        Some(l) => l.phc.clone(),
        None => dummy_phc(&state.passwords).await?,
    };
    let verdict = verify(state.passwords.clone(), body.password, phc).await?;
    let (Some(mut login), Some(verdict)) = (stored, verdict) else {
        return Err(ApiError::unauthenticated(INVALID_LOGIN));
    };
    let mut changed = false;
    if let PasswordVerdict::ValidRehashed { new_hash } = verdict {
        login.phc = new_hash;
        changed = true;
    }
    if let Some(factor) = login.totp.as_mut().filter(|f| f.confirmed) {
        let code = body
            .totp_code
            .as_deref()
            .ok_or_else(|| ApiError::unauthenticated("a TOTP code is required"))?;
        let totp = Totp::from_base32(&factor.secret_base32, TotpAlgorithm::Sha1)
            .map_err(ApiError::from)?;
        let step = totp
            .verify(code, secs(now), factor.last_step)
            .map_err(|_| ApiError::unauthenticated("wrong or reused TOTP code"))?;
        factor.last_step = Some(step);
        changed = true;
    }
    if changed {
        login.updated_at = now;
        state.credentials.update_login(&login).await?;
    }
    let issued = refresh::issue(secs(now), REFRESH_TTL_SECS)?;
    let session = to_session(&tenant, &user, device.clone(), &issued.record);
    state.credentials.insert_session(&session).await?;
    tokens(
        &state,
        &tenant,
        &user,
        device.as_ref(),
        &issued.token,
        &session,
        now,
    )
}

async fn dummy_phc(hasher: &Arc<PasswordHasher>) -> Result<String, ApiError> {
    static DUMMY: OnceLock<String> = OnceLock::new();
    if let Some(p) = DUMMY.get() {
        return Ok(p.clone());
    }
    let p = hash(hasher.clone(), "no such user, no such password".into()).await?;
    Ok(DUMMY.get_or_init(|| p).clone())
}

fn to_session(
    tenant: &TenantId,
    user: &UserId,
    device: Option<DeviceId>,
    r: &RefreshRecord,
) -> RefreshSession {
    RefreshSession {
        tenant: tenant.clone(),
        hash: r.hash.to_string(),
        family: r.family.clone(),
        generation: r.generation,
        user: user.clone(),
        device,
        issued_at: from_secs(r.issued_at),
        expires_at: from_secs(r.expires_at),
        status: SessionStatus::Active,
    }
}

fn tokens(
    state: &AppState,
    tenant: &TenantId,
    user: &UserId,
    device: Option<&DeviceId>,
    refresh: &RefreshToken,
    session: &RefreshSession,
    now: Timestamp,
) -> Result<Json<serde_json::Value>, ApiError> {
    let access = state
        .auth
        .mint(tenant, user, device, ACCESS_TTL_SECS, now)?;
    Ok(Json(json!({
        "access_token": access,
        "token_type": "Bearer",
        "expires_at": now.plus(Duration::from_secs(ACCESS_TTL_SECS)),
        "refresh_token": refresh.expose_secret(),
        "refresh_expires_at": session.expires_at,
    })))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct RefreshBody {
    tenant_id: String,
    refresh_token: String,
}

/// `POST /v1/auth/refresh`: exchanges a refresh token for new tokens (once).
#[utoipa::path(post, path = "/v1/auth/refresh", tag = "auth", request_body = RefreshBody,
    responses((status = 200, description = "new tokens; the presented refresh token is spent", body = Object),
        (status = 401, description = "unknown, expired, revoked or reused token (reuse revokes the whole family)", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub(super) async fn refresh_tokens(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = password_tenant(&state, &body.tenant_id).await?;
    let presented = RefreshToken::parse(&body.refresh_token)
        .map_err(|_| ApiError::unauthenticated("malformed refresh token"))?;
    let hash = presented.hash();
    let session = state
        .credentials
        .session(&tenant, &hash.to_string())
        .await?
        .ok_or_else(|| ApiError::unauthenticated("unknown refresh token"))?;
    let now = state.caas.backends().clock.now();
    let mut record = RefreshRecord {
        hash,
        family: session.family.clone(),
        generation: session.generation,
        issued_at: secs(session.issued_at),
        expires_at: secs(session.expires_at),
        status: match session.status {
            SessionStatus::Active => RefreshStatus::Active,
            SessionStatus::Rotated => RefreshStatus::Rotated,
            SessionStatus::Revoked => RefreshStatus::Revoked,
        },
    };
    let next = match record.rotate(&presented, secs(now), REFRESH_TTL_SECS) {
        Ok(next) => next,
        Err(caas_crypto::Error::RefreshTokenReused { family }) => {
            let revoked = state.credentials.revoke_family(&tenant, &family).await?;
            tracing::warn!(tenant = %tenant, user = %session.user, revoked, "refresh token reuse: family revoked");
            return Err(ApiError::unauthenticated(
                "refresh token reuse detected; every session of this login was revoked",
            ));
        }
        Err(e) => {
            return Err(ApiError::unauthenticated(format!(
                "refresh token refused: {e}"
            )));
        }
    };
    let next_session = to_session(&tenant, &session.user, session.device.clone(), &next.record);
    if !state
        .credentials
        .rotate_session(&tenant, &session.hash, &next_session)
        .await?
    {
        // Another request spent it first: that is reuse too.
        state
            .credentials
            .revoke_family(&tenant, &session.family)
            .await?;
        return Err(ApiError::unauthenticated(
            "refresh token reuse detected; every session of this login was revoked",
        ));
    }
    tokens(
        &state,
        &tenant,
        &session.user,
        session.device.as_ref(),
        &next.token,
        &next_session,
        now,
    )
}

/// `POST /v1/auth/logout`: revokes the login the refresh token belongs to.
#[utoipa::path(post, path = "/v1/auth/logout", tag = "auth", request_body = RefreshBody, responses((status = 204, description = "logged out (also for unknown tokens)")))]
pub(super) async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshBody>,
) -> Result<impl IntoResponse, ApiError> {
    let tenant = password_tenant(&state, &body.tenant_id).await?;
    if let Ok(token) = RefreshToken::parse(&body.refresh_token)
        && let Some(s) = state
            .credentials
            .session(&tenant, &token.hash().to_string())
            .await?
    {
        state.credentials.revoke_family(&tenant, &s.family).await?;
    }
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's tenant, user and password login (TOTP belongs to a user who has one).
async fn caller_login(
    state: &AppState,
    p: &Principal,
) -> Result<(TenantId, UserId, PasswordLogin), ApiError> {
    let (Some(tenant), Some(user)) = (p.tenant.clone(), p.user.clone()) else {
        return Err(ApiError::invalid(
            "principal: TOTP belongs to a user; use a user token",
        ));
    };
    let login = state
        .credentials
        .login(&tenant, &user)
        .await?
        .ok_or_else(|| ApiError::from(Error::conflict("the user has no password login")))?;
    Ok((tenant, user, login))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TotpEnroll {
    /// The caller's current password: an access token alone (perhaps a stolen
    /// one) cannot bind a second factor and lock the owner out.
    password: String,
}

/// `POST /v1/auth/totp`: starts TOTP enrolment for the caller's password login.
#[utoipa::path(post, path = "/v1/auth/totp", tag = "auth", request_body = TotpEnroll, security(("bearer" = [])),
    responses((status = 200, description = "`{secret, otpauth_uri}`; confirm with a first code", body = Object),
        (status = 401, description = "wrong password", body = crate::problem::Problem, content_type = "application/problem+json"),
        (status = 429, description = "too many attempts for this user", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub(super) async fn totp_enroll(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<TotpEnroll>,
) -> Result<impl IntoResponse, ApiError> {
    let (tenant, user, login) = caller_login(&state, &p).await?;
    // The login's attempt budget: guessing the password here is no cheaper.
    password_attempt(&state, &tenant, &user, &body.password).await?;
    if verify(state.passwords.clone(), body.password, login.phc.clone())
        .await?
        .is_none()
    {
        return Err(ApiError::unauthenticated("wrong password"));
    }
    // Read again: the hashing took a while, and writing back the copy read
    // before it would undo a password change or a confirmation made meanwhile.
    let (_, _, mut login) = caller_login(&state, &p).await?;
    if login.totp.as_ref().is_some_and(|f| f.confirmed) {
        return Err(Error::conflict("TOTP is already enrolled").into());
    }
    let totp = Totp::generate()?;
    let secret = totp.expose_secret_base32();
    login.totp = Some(TotpFactor {
        secret_base32: secret.clone(),
        confirmed: false,
        last_step: None,
    });
    login.updated_at = state.caas.backends().clock.now();
    state.credentials.update_login(&login).await?;
    Ok(Json(
        json!({"secret": secret, "otpauth_uri": totp.provisioning_uri("caas", &format!("{user}@{tenant}"))}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct TotpConfirm {
    code: String,
}

/// `POST /v1/auth/totp/confirm`: a first code turns the factor on.
#[utoipa::path(post, path = "/v1/auth/totp/confirm", tag = "auth", request_body = TotpConfirm, security(("bearer" = [])),
    responses((status = 204, description = "the factor is on"), (status = 401, description = "wrong code", body = crate::problem::Problem, content_type = "application/problem+json")))]
pub(super) async fn totp_confirm(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<TotpConfirm>,
) -> Result<impl IntoResponse, ApiError> {
    let (_, _, mut login) = caller_login(&state, &p).await?;
    let now = state.caas.backends().clock.now();
    let factor = login
        .totp
        .as_mut()
        .ok_or_else(|| ApiError::from(Error::conflict("start enrolment first")))?;
    let totp = Totp::from_base32(&factor.secret_base32, TotpAlgorithm::Sha1)?;
    let step = totp
        .verify(&body.code, secs(now), factor.last_step)
        .map_err(|_| ApiError::unauthenticated("wrong TOTP code"))?;
    factor.confirmed = true;
    factor.last_step = Some(step);
    login.updated_at = now;
    state.credentials.update_login(&login).await?;
    Ok(StatusCode::NO_CONTENT)
}
