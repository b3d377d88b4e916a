use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::{ClientMsgId, ConversationId, MessageId, Seq, UserId};
use caas_core::model::{Attachment, Ciphertext, ReceiptKind};
use caas_core::ports::HistoryPage;
use caas_core::service::SendMessage;
use serde::Deserialize;

use super::{DEFAULT_LIMIT, Page, id};
use crate::auth::Auth;
use crate::gateway::{ApiJson, ApiPath, ApiQuery, AppState};
use crate::problem::ApiError;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Send {
    client_msg_id: String,
    body: Option<String>,
    ciphertext: Option<Ciphertext>,
    #[serde(default)]
    attachments: Vec<Attachment>,
    reply_to: Option<String>,
    #[serde(default)]
    mentions: Vec<String>,
}

#[utoipa::path(post, path = "/v1/conversations/{id}/messages", tag = "messages", params(("id" = String, Path, description = "conversation id")), request_body = Send, responses((status = 201, description = "stored", body = caas_core::model::Message), (status = 200, description = "a retry: the original message", body = caas_core::model::Message), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 413, description = "body too large", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `POST /v1/conversations/{id}/messages`: 201 with the stored message; a retry
/// with the same `client_msg_id` gets 200 and the original.
pub(super) async fn send(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(c): ApiPath<String>,
    ApiJson(body): ApiJson<Send>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    let msg = SendMessage {
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
    let sent = state.caas.send_message(&p, &c, msg).await?;
    if !sent.duplicate {
        metrics::counter!("caas_messages_sent_total").increment(1);
    }
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(sent.message)))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct HistoryQuery {
    before_seq: Option<u64>,
    after_seq: Option<u64>,
    limit: Option<usize>,
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/conversations/{id}/messages", tag = "messages", params(("id" = String, Path, description = "conversation id"), HistoryQuery), responses((status = 200, description = "`{items: [Message], next_cursor}` in ascending seq", body = Object), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `GET /v1/conversations/{id}/messages?before_seq=|after_seq=&limit=`: ascending
/// seq. `next_cursor` continues in the same direction (a seq to pass as `cursor`).
pub(super) async fn history(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(c): ApiPath<String>,
    ApiQuery(q): ApiQuery<HistoryQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let cursor = q
        .cursor
        .as_deref()
        .map(|s| {
            s.parse::<u64>()
                .map_err(|_| ApiError::invalid("cursor: not a cursor from this endpoint"))
        })
        .transpose()?;
    let page = match (q.before_seq, q.after_seq, cursor) {
        (Some(_), Some(_), _) => {
            return Err(ApiError::invalid("give before_seq or after_seq, not both"));
        }
        (None, Some(a), None) => HistoryPage::After(Seq(a)),
        (Some(b), None, None) => HistoryPage::Before(Seq(b)),
        (None, None, None) => HistoryPage::Latest,
        (None, Some(_), Some(cur)) => HistoryPage::After(Seq(cur)),
        (_, None, Some(cur)) => HistoryPage::Before(Seq(cur)),
    };
    let items = state.caas.history(&p, &c, page, limit).await?;
    let next_cursor = match page {
        _ if items.len() < limit => None,
        HistoryPage::After(_) => items.last().map(|m| m.seq.to_string()),
        HistoryPage::Before(_) | HistoryPage::Latest => items
            .first()
            .filter(|m| m.seq.get() > 1)
            .map(|m| m.seq.to_string()),
    };
    Ok(Json(Page { items, next_cursor }))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Edit {
    body: String,
}

#[utoipa::path(patch, path = "/v1/conversations/{id}/messages/{message_id}", tag = "messages", params(("id" = String, Path, description = "conversation id"), ("message_id" = String, Path, description = "message id")), request_body = Edit, responses((status = 200, description = "after the edit", body = caas_core::model::Message), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 409, description = "conflict", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 413, description = "body too large", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `PATCH …/messages/{message_id}`: the sender edits the body.
pub(super) async fn edit(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath((c, m)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Edit>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, m): (ConversationId, MessageId) = (id(&c)?, id(&m)?);
    Ok(Json(state.caas.edit_message(&p, &c, &m, &body.body).await?))
}

#[utoipa::path(delete, path = "/v1/conversations/{id}/messages/{message_id}", tag = "messages", params(("id" = String, Path, description = "conversation id"), ("message_id" = String, Path, description = "message id")), responses((status = 200, description = "the tombstone", body = caas_core::model::Message), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `DELETE …/messages/{message_id}`: tombstone (sender or moderator).
pub(super) async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath((c, m)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, m): (ConversationId, MessageId) = (id(&c)?, id(&m)?);
    Ok(Json(state.caas.delete_message(&p, &c, &m).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Forward {
    to_conversation_id: String,
    client_msg_id: String,
}

#[utoipa::path(post, path = "/v1/conversations/{id}/messages/{message_id}/forward", tag = "messages", params(("id" = String, Path, description = "conversation id"), ("message_id" = String, Path, description = "message id")), request_body = Forward, responses((status = 201, description = "the copy", body = caas_core::model::Message), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 409, description = "conflict", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `POST …/messages/{message_id}/forward`: member of both.
pub(super) async fn forward(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath((c, m)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<Forward>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, m): (ConversationId, MessageId) = (id(&c)?, id(&m)?);
    let to: ConversationId = id(&body.to_conversation_id)?;
    let sent = state
        .caas
        .forward_message(&p, &c, &m, &to, id(&body.client_msg_id)?)
        .await?;
    let status = if sent.duplicate {
        StatusCode::OK
    } else {
        StatusCode::CREATED
    };
    Ok((status, Json(sent.message)))
}

#[utoipa::path(put, path = "/v1/conversations/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages", params(("id" = String, Path, description = "conversation id"), ("message_id" = String, Path, description = "message id"), ("emoji" = String, Path, description = "the emoji, percent-encoded")), responses((status = 200, description = "the message", body = caas_core::model::Message), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 409, description = "conflict", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `PUT …/reactions/{emoji}`.
pub(super) async fn react(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath((c, m, emoji)): ApiPath<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, m): (ConversationId, MessageId) = (id(&c)?, id(&m)?);
    Ok(Json(state.caas.react(&p, &c, &m, &emoji, true).await?))
}

#[utoipa::path(delete, path = "/v1/conversations/{id}/messages/{message_id}/reactions/{emoji}", tag = "messages", params(("id" = String, Path, description = "conversation id"), ("message_id" = String, Path, description = "message id"), ("emoji" = String, Path, description = "the emoji, percent-encoded")), responses((status = 200, description = "the message", body = caas_core::model::Message), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 409, description = "conflict", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `DELETE …/reactions/{emoji}`.
pub(super) async fn unreact(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath((c, m, emoji)): ApiPath<(String, String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, m): (ConversationId, MessageId) = (id(&c)?, id(&m)?);
    Ok(Json(state.caas.react(&p, &c, &m, &emoji, false).await?))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Read {
    seq: u64,
    #[serde(default)]
    delivered_only: bool,
}

#[utoipa::path(post, path = "/v1/conversations/{id}/read", tag = "messages", params(("id" = String, Path, description = "conversation id")), request_body = Read, responses((status = 200, description = "the receipt after the call", body = caas_core::model::Receipt), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `POST /v1/conversations/{id}/read`: `{seq}` read watermark (or delivered).
pub(super) async fn read(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(c): ApiPath<String>,
    ApiJson(body): ApiJson<Read>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    let kind = if body.delivered_only {
        ReceiptKind::Delivered
    } else {
        ReceiptKind::Read
    };
    Ok(Json(state.caas.mark(&p, &c, kind, Seq(body.seq)).await?))
}
