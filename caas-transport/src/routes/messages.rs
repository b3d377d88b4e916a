//! Messages: send, history, edit, delete, forward, reactions and pins. Each
//! handler builds the request every door shares and runs it through
//! [`crate::dispatch`].

use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::{ClientMsgId, ConversationId, MessageId, Seq, UserId};
use caas_core::model::{Attachment, Ciphertext};
use caas_core::service::Sent;
use serde::Deserialize;

use super::id;
use crate::auth::Auth;
use crate::dispatch::{Pinning, Reaction, dispatch};
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::requests::{ForwardRequest, HistoryRequest, PinRequest, PinsRequest};
use crate::ws::frames::{DeleteRequest, EditRequest, ReactionRequest, SendRequest};

/// 201 with a message stored now, 200 with the original for a retry.
fn stored(sent: Sent) -> impl IntoResponse {
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    (status, Json(sent.message))
}

fn ids(c: &str, m: &str) -> Result<(ConversationId, MessageId), ApiError> {
    Ok((id(c)?, id(m)?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Send {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    client_msg_id: String,
    body: Option<String>,
    ciphertext: Option<Ciphertext>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    reply_to: Option<String>,
    #[serde(default)]
    mentions: Vec<String>,
}

#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id")), request_body = Send, responses((status = 201, description = "stored", body = caas_core::model::Message), (status = 200, description = "a retry: the original message", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `POST /v1/conversations/{id}/messages`: 201 with the stored message; a retry
/// with the same `client_msg_id` gets 200 and the original.
pub(super) async fn send(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
    Api(Json(body)): Api<Json<Send>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = SendRequest {
        conversation_id: id(&c)?,
        client_msg_id: id::<ClientMsgId>(&body.client_msg_id)?,
        body: body.body,
        ciphertext: body.ciphertext,
        attachments: body.attachments,
        reply_to: body.reply_to.as_deref().map(id::<MessageId>).transpose()?,
        mentions: body
            .mentions
            .iter()
            .map(|m| id::<UserId>(m))
            .collect::<Result<_, _>>()?,
    };
    Ok(stored(dispatch(&state.caas, &p, request).await?))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    #[serde(default, deserialize_with = "super::position")]
    before_seq: Option<u64>,
    #[serde(default, deserialize_with = "super::position")]
    after_seq: Option<u64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), HistoryQuery), responses((status = 200, description = "`{items: [Message], next_cursor}` in ascending seq", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/conversations/{id}/messages?before_seq=|after_seq=&limit=`: ascending
/// seq. `next_cursor` continues in the same direction (pass it as `cursor`).
pub(super) async fn history(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
    Api(Query(q)): Api<Query<HistoryQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = HistoryRequest {
        conversation_id: id(&c)?,
        before_seq: q.before_seq.map(Seq),
        after_seq: q.after_seq.map(Seq),
        limit: q.limit,
        // An empty cursor is no cursor: the first page.
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let page = dispatch(&state.caas, &p, request).await?;
    Ok(Json(super::Page::from(page)))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
/// The body of an edit (`EditBody` in the OpenAPI document: the model's
/// `Edit` is an earlier version of a message).
pub(super) struct EditBody {
    body: String,
}

#[utoipa::path(patch, path = "/v1/conversations/{id}/messages/{message_id}", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")), request_body = EditBody, responses((status = 200, description = "the message after the edit", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `PATCH …/messages/{message_id}`: the sender edits the body.
pub(super) async fn edit(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path((c, m))): Api<Path<(String, String)>>,
    Api(Json(body)): Api<Json<EditBody>>,
) -> Result<impl IntoResponse, ApiError> {
    let (conversation_id, message_id) = ids(&c, &m)?;
    let request = EditRequest {
        conversation_id,
        message_id,
        body: body.body,
    };
    Ok(Json(dispatch(&state.caas, &p, request).await?))
}

#[utoipa::path(delete, path = "/v1/conversations/{id}/messages/{message_id}", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")), responses((status = 200, description = "the tombstone", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `DELETE …/messages/{message_id}`: tombstone (sender or moderator).
pub(super) async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path((c, m))): Api<Path<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let (conversation_id, message_id) = ids(&c, &m)?;
    let request = DeleteRequest {
        conversation_id,
        message_id,
    };
    Ok(Json(dispatch(&state.caas, &p, request).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Forward {
    /// Where to forward.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    to_conversation_id: String,
    /// Makes the forward idempotent: a retry with the same key returns the
    /// first copy. Without one, each call makes a new copy.
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    client_msg_id: Option<String>,
}

#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/forward", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")), request_body = Forward, responses((status = 201, description = "the copy", body = caas_core::model::Message), (status = 200, description = "a retry: the first copy", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `POST …/messages/{message_id}/forward`: `{to_conversation_id, client_msg_id?}`;
/// the caller must be able to read the source and send to the target. The copy
/// names where it came from; encrypted messages cannot be forwarded by the
/// server.
pub(super) async fn forward(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path((c, m))): Api<Path<(String, String)>>,
    Api(Json(body)): Api<Json<Forward>>,
) -> Result<impl IntoResponse, ApiError> {
    let (conversation_id, message_id) = ids(&c, &m)?;
    let request = ForwardRequest {
        conversation_id,
        message_id,
        to_conversation_id: id(&body.to_conversation_id)?,
        client_msg_id: body.client_msg_id.as_deref().map(id).transpose()?,
    };
    Ok(stored(dispatch(&state.caas, &p, request).await?))
}

async fn reaction(
    state: &AppState,
    p: &caas_core::Principal,
    (c, m, emoji): (String, String, String),
    add: bool,
) -> Result<Json<caas_core::model::Message>, ApiError> {
    let (conversation_id, message_id) = ids(&c, &m)?;
    let request = ReactionRequest {
        conversation_id,
        message_id,
        emoji,
    };
    Ok(Json(
        dispatch(&state.caas, p, Reaction { request, add }).await?,
    ))
}

#[utoipa::path(put, path = "/v1/conversations/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id"), ("emoji" = String, Path, description = "the emoji, percent-encoded")), responses((status = 200, description = "the message with its reactions", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `PUT …/reactions/{emoji}`.
pub(super) async fn react(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(path)): Api<Path<(String, String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    reaction(&state, &p, path, true).await
}

#[utoipa::path(delete, path = "/v1/conversations/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id"), ("emoji" = String, Path, description = "the emoji, percent-encoded")), responses((status = 200, description = "the message with its reactions", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `DELETE …/reactions/{emoji}`.
pub(super) async fn unreact(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(path)): Api<Path<(String, String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    reaction(&state, &p, path, false).await
}

async fn pinning(
    state: &AppState,
    p: &caas_core::Principal,
    (c, m): (String, String),
    pinned: bool,
) -> Result<Json<caas_core::model::Message>, ApiError> {
    let (conversation_id, message_id) = ids(&c, &m)?;
    let request = PinRequest {
        conversation_id,
        message_id,
    };
    Ok(Json(
        dispatch(&state.caas, p, Pinning { request, pinned }).await?,
    ))
}

#[utoipa::path(put, path = "/v1/conversations/{id}/messages/{message_id}/pin", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")), responses((status = 200, description = "the message, pinned", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `PUT …/messages/{message_id}/pin`: pins a message (moderators and above,
/// under the default policy); pinning a pinned message changes nothing.
pub(super) async fn pin(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(path)): Api<Path<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    pinning(&state, &p, path, true).await
}

#[utoipa::path(delete, path = "/v1/conversations/{id}/messages/{message_id}/pin", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("message_id" = caas_core::ids::MessageId, Path, description = "message id")), responses((status = 200, description = "the message, unpinned", body = caas_core::model::Message), crate::problem::Problems), security(("bearer" = [])))]
/// `DELETE …/messages/{message_id}/pin`: unpins it.
pub(super) async fn unpin(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(path)): Api<Path<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    pinning(&state, &p, path, false).await
}

#[utoipa::path(get, path = "/v1/conversations/{id}/pins", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id")), responses((status = 200, description = "`{items: [Message], next_cursor: null}`: the pinned messages in seq order", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/conversations/{id}/pins`: the pinned messages (members).
pub(super) async fn pins(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = PinsRequest {
        conversation_id: id(&c)?,
    };
    let items = dispatch(&state.caas, &p, request).await?;
    Ok(Json(super::Page::whole(items)))
}
