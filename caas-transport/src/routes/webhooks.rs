//! Tenants' webhook endpoints: registration, changes, secret rotation, and
//! their dead letters.

use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::WebhookId;
use caas_core::service::{NewWebhook, WebhookChange};
use serde::Deserialize;

use super::{Page, id};
use crate::auth::Auth;
use crate::extract::{Api, OptionalJson};
use crate::gateway::AppState;
use crate::problem::ApiError;

/// The body of a secret rotation.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Rotation {
    /// How long the previous secrets keep signing, in seconds (default one
    /// day, at most 7 days; 0 stops them at once).
    #[schema(maximum = 604800)]
    grace_secs: Option<u64>,
}

/// The body of a replay.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct ReplayRequest {
    /// The dead letters to send again (at most 100); absent: the oldest 100.
    ids: Option<Vec<String>>,
}

#[utoipa::path(post, path = "/v1/webhooks", tag = "webhooks",
    request_body = NewWebhook,
    responses((status = 201, description = "the endpoint and its signing secret, shown only here", body = caas_core::service::WebhookWithSecret), crate::problem::Problems),
    security(("bearer" = [])))]
/// `POST /v1/webhooks` (tenant server): registers an endpoint for the chosen
/// event kinds, from the next logged event on. Audited.
pub(super) async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Json(body)): Api<Json<NewWebhook>>,
) -> Result<impl IntoResponse, ApiError> {
    let created = state.caas.create_webhook(&p, body).await?;
    Ok((StatusCode::CREATED, Json(created)))
}

#[utoipa::path(get, path = "/v1/webhooks", tag = "webhooks",
    responses((status = 200, description = "`{items: [Webhook], next_cursor: null}`", body = Object), crate::problem::Problems),
    security(("bearer" = [])))]
/// `GET /v1/webhooks` (tenant server): the tenant's endpoints, without secrets.
pub(super) async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(Page::whole(state.caas.list_webhooks(&p).await?)))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = caas_core::ids::WebhookId, Path, description = "webhook id")),
    responses((status = 200, description = "the endpoint and where its delivery stands", body = caas_core::service::Webhook), crate::problem::Problems),
    security(("bearer" = [])))]
/// `GET /v1/webhooks/{id}` (tenant server).
pub(super) async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(w)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let w: WebhookId = id(&w)?;
    Ok(Json(state.caas.get_webhook(&p, &w).await?))
}

#[utoipa::path(patch, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = caas_core::ids::WebhookId, Path, description = "webhook id")),
    request_body = WebhookChange,
    responses((status = 200, description = "the endpoint after the change", body = caas_core::service::Webhook), crate::problem::Problems),
    security(("bearer" = [])))]
/// `PATCH /v1/webhooks/{id}` (tenant server): changes the URL or kinds, or
/// disables (keeping its place in the log) or enables it. Audited.
pub(super) async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(w)): Api<Path<String>>,
    Api(Json(body)): Api<Json<WebhookChange>>,
) -> Result<impl IntoResponse, ApiError> {
    let w: WebhookId = id(&w)?;
    Ok(Json(state.caas.update_webhook(&p, &w, body).await?))
}

#[utoipa::path(delete, path = "/v1/webhooks/{id}", tag = "webhooks",
    params(("id" = caas_core::ids::WebhookId, Path, description = "webhook id")),
    responses((status = 204, description = "removed, with its dead letters"), crate::problem::Problems),
    security(("bearer" = [])))]
/// `DELETE /v1/webhooks/{id}` (tenant server). Audited.
pub(super) async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(w)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let w: WebhookId = id(&w)?;
    state.caas.delete_webhook(&p, &w).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/secrets", tag = "webhooks",
    params(("id" = caas_core::ids::WebhookId, Path, description = "webhook id")),
    request_body = Option<Rotation>,
    responses((status = 201, description = "the endpoint and its new secret, shown only here; deliveries carry one `v1` per secret until the old ones expire", body = caas_core::service::WebhookWithSecret), crate::problem::Problems),
    security(("bearer" = [])))]
/// `POST /v1/webhooks/{id}/secrets` (tenant server): rotates the signing
/// secret. Audited.
pub(super) async fn rotate(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(w)): Api<Path<String>>,
    OptionalJson(body): OptionalJson<Rotation>,
) -> Result<impl IntoResponse, ApiError> {
    let w: WebhookId = id(&w)?;
    let grace = body.and_then(|r| r.grace_secs);
    let rotated = state.caas.rotate_webhook_secret(&p, &w, grace).await?;
    Ok((StatusCode::CREATED, Json(rotated)))
}

#[utoipa::path(get, path = "/v1/webhooks/{id}/dead-letters", tag = "webhooks",
    params(("id" = caas_core::ids::WebhookId, Path, description = "webhook id")),
    responses((status = 200, description = "`{items: [DeadLetter], next_cursor: null}`: deliveries given up, oldest first", body = Object), crate::problem::Problems),
    security(("bearer" = [])))]
/// `GET /v1/webhooks/{id}/dead-letters` (tenant server).
pub(super) async fn dead_letters(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(w)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let w: WebhookId = id(&w)?;
    Ok(Json(Page::whole(state.caas.dead_letters(&p, &w).await?)))
}

#[utoipa::path(post, path = "/v1/webhooks/{id}/dead-letters/replay", tag = "webhooks",
    params(("id" = caas_core::ids::WebhookId, Path, description = "webhook id")),
    request_body = Option<ReplayRequest>,
    responses((status = 200, description = "which letters were delivered (and removed), skipped, or failed again (and kept)", body = caas_core::service::Replay), crate::problem::Problems),
    security(("bearer" = [])))]
/// `POST /v1/webhooks/{id}/dead-letters/replay` (tenant server): sends dead
/// letters again, once each, now. Audited.
pub(super) async fn replay(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(w)): Api<Path<String>>,
    OptionalJson(body): OptionalJson<ReplayRequest>,
) -> Result<impl IntoResponse, ApiError> {
    let w: WebhookId = id(&w)?;
    let ids = body.and_then(|r| r.ids);
    Ok(Json(state.caas.replay_dead_letters(&p, &w, ids).await?))
}
