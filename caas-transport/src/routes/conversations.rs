use axum::Json;
use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use caas_core::ids::{ConversationId, UserId};
use caas_core::model::{Attributes, ConversationKind, Role};
use caas_core::ports::Created;
use caas_core::service::{MemberChange, NewConversation};
use serde::Deserialize;
use serde_json::json;

use super::{Page, id};
use crate::auth::Auth;
use crate::dispatch::dispatch;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::requests::ConversationsRequest;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    kind: ConversationKind,
    members: Vec<String>,
    #[schema(min_length = 1)]
    name: Option<String>,
    #[serde(default)]
    #[schema(value_type = Object)]
    attributes: Attributes,
}

#[utoipa::path(post, path = "/v1/conversations", tag = "conversations", request_body = Create, responses((status = 201, description = "created", body = caas_core::model::Conversation), (status = 200, description = "the existing direct conversation of the pair", body = caas_core::model::Conversation), crate::problem::Problems), security(("bearer" = [])))]
/// `POST /v1/conversations`: 201 when created, 200 with the existing one for a
/// direct conversation that already exists.
pub(super) async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Json(body)): Api<Json<Create>>,
) -> Result<impl IntoResponse, ApiError> {
    let members = body
        .members
        .iter()
        .map(|m| id::<UserId>(m))
        .collect::<Result<Vec<_>, _>>()?;
    let new = NewConversation {
        kind: body.kind,
        members,
        name: body.name,
        attributes: body.attributes,
    };
    Ok(match state.caas.create_conversation(&p, new).await? {
        Created::New(c) => (StatusCode::CREATED, Json(c)),
        Created::Existing(c) => (StatusCode::OK, Json(c)),
    })
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct ListQuery {
    /// At most this many (50 when absent).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

#[utoipa::path(get, path = "/v1/conversations", tag = "conversations", params(ListQuery), responses((status = 200, description = "`{items: [{conversation, role, muted, last_seq, last_activity_at, read_seq, unread_count}], next_cursor}`, newest activity first", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/conversations?limit=&cursor=`: mine, newest activity first, with
/// unread counts, a page at a time.
pub(super) async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<ListQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = ConversationsRequest {
        limit: q.limit,
        // An empty cursor is no cursor: the first page.
        cursor: q.cursor.filter(|c| !c.is_empty()),
    };
    let page = dispatch(&state.caas, &p, request).await?;
    let items = page
        .items
        .into_iter()
        .map(|s| {
            json!({
                "conversation": s.conversation,
                "role": s.member.role,
                "muted": s.member.muted,
                "last_seq": s.last_seq,
                "last_activity_at": s.last_activity,
                "read_seq": s.read_seq,
                "unread_count": s.unread_count,
            })
        })
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id")), responses((status = 200, description = "`{conversation, members}`", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/conversations/{id}`: details and members (members only).
pub(super) async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    let d = state.caas.get_conversation(&p, &c).await?;
    Ok(Json(
        json!({"conversation": d.conversation, "members": d.members}),
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Update {
    #[schema(min_length = 1)]
    name: Option<String>,
    #[schema(value_type = Object)]
    attributes: Option<Attributes>,
}

#[utoipa::path(patch, path = "/v1/conversations/{id}", tag = "conversations", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id")), request_body = Update, responses((status = 200, description = "after the change", body = caas_core::model::Conversation), crate::problem::Problems), security(("bearer" = [])))]
/// `PATCH /v1/conversations/{id}`: rename, change attributes (admins).
pub(super) async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
    Api(Json(body)): Api<Json<Update>>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    Ok(Json(
        state
            .caas
            .update_conversation(&p, &c, body.name, body.attributes)
            .await?,
    ))
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMember {
    #[schema(min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9_.:@-]+$")]
    user_id: String,
    role: Option<Role>,
}

#[utoipa::path(post, path = "/v1/conversations/{id}/members", tag = "members", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id")), request_body = AddMember, responses((status = 201, description = "the membership", body = caas_core::model::Member), crate::problem::Problems), security(("bearer" = [])))]
/// `POST /v1/conversations/{id}/members`.
pub(super) async fn add_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
    Api(Json(body)): Api<Json<AddMember>>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    let u: UserId = id(&body.user_id)?;
    Ok((
        StatusCode::CREATED,
        Json(state.caas.add_member(&p, &c, &u, body.role).await?),
    ))
}

#[utoipa::path(delete, path = "/v1/conversations/{id}/members/{user_id}", tag = "members", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("user_id" = caas_core::ids::UserId, Path, description = "user id")), responses((status = 204, description = "removed"), crate::problem::Problems), security(("bearer" = [])))]
/// `DELETE /v1/conversations/{id}/members/{user_id}`: remove, or leave.
pub(super) async fn remove_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path((c, u))): Api<Path<(String, String)>>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, u): (ConversationId, UserId) = (id(&c)?, id(&u)?);
    state.caas.remove_member(&p, &c, &u).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateMember {
    role: Option<Role>,
    muted: Option<bool>,
    banned: Option<bool>,
}

#[utoipa::path(patch, path = "/v1/conversations/{id}/members/{user_id}", tag = "members", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id"), ("user_id" = caas_core::ids::UserId, Path, description = "user id")), request_body = UpdateMember, responses((status = 200, description = "the membership after the change", body = caas_core::model::Member), crate::problem::Problems), security(("bearer" = [])))]
/// `PATCH /v1/conversations/{id}/members/{user_id}`: role, mute, ban.
pub(super) async fn update_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path((c, u))): Api<Path<(String, String)>>,
    Api(Json(body)): Api<Json<UpdateMember>>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, u): (ConversationId, UserId) = (id(&c)?, id(&u)?);
    let change = MemberChange {
        role: body.role,
        muted: body.muted,
        banned: body.banned,
    };
    Ok(Json(state.caas.update_member(&p, &c, &u, change).await?))
}
