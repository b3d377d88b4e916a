use axum::Json;
use axum::extract::State;
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
use crate::gateway::{ApiJson, ApiPath, AppState};
use crate::problem::ApiError;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Create {
    kind: ConversationKind,
    members: Vec<String>,
    name: Option<String>,
    #[serde(default)]
    attributes: Attributes,
}

/// `POST /v1/conversations`: 201 when created, 200 with the existing one for a
/// direct conversation that already exists.
pub(super) async fn create(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiJson(body): ApiJson<Create>,
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

/// `GET /v1/conversations`: mine, newest activity first, with unread counts.
pub(super) async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<impl IntoResponse, ApiError> {
    let items = state
        .caas
        .list_conversations(&p)
        .await?
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
        next_cursor: None,
    }))
}

/// `GET /v1/conversations/{id}`: details and members (members only).
pub(super) async fn get(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(c): ApiPath<String>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    let d = state.caas.get_conversation(&p, &c).await?;
    Ok(Json(
        json!({"conversation": d.conversation, "members": d.members}),
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct Update {
    name: Option<String>,
    attributes: Option<Attributes>,
}

/// `PATCH /v1/conversations/{id}`: rename, change attributes (admins).
pub(super) async fn update(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(c): ApiPath<String>,
    ApiJson(body): ApiJson<Update>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    Ok(Json(
        state
            .caas
            .update_conversation(&p, &c, body.name, body.attributes)
            .await?,
    ))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct AddMember {
    user_id: String,
    role: Option<Role>,
}

/// `POST /v1/conversations/{id}/members`.
pub(super) async fn add_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath(c): ApiPath<String>,
    ApiJson(body): ApiJson<AddMember>,
) -> Result<impl IntoResponse, ApiError> {
    let c: ConversationId = id(&c)?;
    let u: UserId = id(&body.user_id)?;
    Ok((
        StatusCode::CREATED,
        Json(state.caas.add_member(&p, &c, &u, body.role).await?),
    ))
}

/// `DELETE /v1/conversations/{id}/members/{user_id}`: remove, or leave.
pub(super) async fn remove_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath((c, u)): ApiPath<(String, String)>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, u): (ConversationId, UserId) = (id(&c)?, id(&u)?);
    state.caas.remove_member(&p, &c, &u).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct UpdateMember {
    role: Option<Role>,
    muted: Option<bool>,
    banned: Option<bool>,
}

/// `PATCH /v1/conversations/{id}/members/{user_id}`: role, mute, ban.
pub(super) async fn update_member(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiPath((c, u)): ApiPath<(String, String)>,
    ApiJson(body): ApiJson<UpdateMember>,
) -> Result<impl IntoResponse, ApiError> {
    let (c, u): (ConversationId, UserId) = (id(&c)?, id(&u)?);
    let change = MemberChange {
        role: body.role,
        muted: body.muted,
        banned: body.banned,
    };
    Ok(Json(state.caas.update_member(&p, &c, &u, change).await?))
}
