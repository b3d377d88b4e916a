//! Reported messages and their review, and edit histories for moderators.

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::{ConversationId, MessageId};
use caas_core::service::FlagAction;
use serde::Deserialize;

use super::{DEFAULT_LIMIT, Page, id};
use crate::auth::Auth;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;

/// The body of a report.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewFlag {
    /// Why (1 to 500 bytes).
    reason: String,
}

/// How to settle a message's flags.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Settle {
    /// `dismiss` (the message stays) or `delete` (it becomes a tombstone).
    #[schema(pattern = "^(dismiss|delete)$")]
    action: String,
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct FlagsQuery {
    /// At most this many (50 by default).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

fn ids(path: (String, String)) -> Result<(ConversationId, MessageId), ApiError> {
    Ok((id(&path.0)?, id(&path.1)?))
}

#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/flag", tag = "moderation",
    params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")),
    request_body = NewFlag,
    responses((status = 201, description = "the report (a repeat returns the first)", body = caas_core::model::Flag), crate::problem::Problems),
    security(("bearer" = [])))]
/// `POST …/messages/{message_id}/flag` (members): reports a message to the
/// conversation's moderators.
pub(super) async fn flag(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(path)): Api<Path<(String, String)>>,
    Api(Json(body)): Api<Json<NewFlag>>,
) -> Result<impl IntoResponse, ApiError> {
    let (conv, msg) = ids(path)?;
    let flag = state
        .caas
        .flag_message(&p, &conv, &msg, &body.reason)
        .await?;
    Ok((StatusCode::CREATED, Json(flag)))
}

#[utoipa::path(get, path = "/v1/conversations/{id}/flags", tag = "moderation",
    params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), FlagsQuery),
    responses((status = 200, description = "`{items: [Flag], next_cursor: null}`: the open reports, oldest first", body = Object), crate::problem::Problems),
    security(("bearer" = [])))]
/// `GET /v1/conversations/{id}/flags` (moderators): the open reports.
pub(super) async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
    Api(Query(q)): Api<Query<FlagsQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let conv: ConversationId = id(&c)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let flags = state.caas.open_flags(&p, &conv, limit).await?;
    Ok(Json(Page::whole(flags)))
}

#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/flags/resolve", tag = "moderation",
    params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")),
    request_body = Settle,
    responses((status = 200, description = "`{resolved: N}`: how many reports were settled", body = Object), crate::problem::Problems),
    security(("bearer" = [])))]
/// `POST …/messages/{message_id}/flags/resolve` (moderators): settles the
/// message's reports, dismissing them or deleting the message. Audited.
pub(super) async fn resolve(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(path)): Api<Path<(String, String)>>,
    Api(Json(body)): Api<Json<Settle>>,
) -> Result<impl IntoResponse, ApiError> {
    let (conv, msg) = ids(path)?;
    let action = FlagAction::parse(&body.action)?;
    let resolved = state.caas.resolve_flags(&p, &conv, &msg, action).await?;
    Ok(Json(serde_json::json!({ "resolved": resolved })))
}

#[utoipa::path(get, path = "/v1/conversations/{id}/messages/{message_id}/edits", tag = "moderation",
    params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")),
    responses((status = 200, description = "`{items: [Edit], next_cursor: null}`: the earlier bodies, oldest first", body = Object), crate::problem::Problems),
    security(("bearer" = [])))]
/// `GET …/messages/{message_id}/edits` (moderators and the sender): the
/// message's edit history.
pub(super) async fn edits(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(path)): Api<Path<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let (conv, msg) = ids(path)?;
    Ok(Json(Page::whole(
        state.caas.edit_history(&p, &conv, &msg).await?,
    )))
}
