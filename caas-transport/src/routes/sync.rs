use axum::Json;
use axum::extract::State;
use axum::response::IntoResponse;
use caas_core::ids::Cursor;
use serde::Deserialize;
use serde_json::json;

use super::{DEFAULT_LIMIT, Page};
use crate::auth::Auth;
use crate::gateway::{ApiQuery, AppState};
use crate::problem::ApiError;
use crate::ws::frames::EventRef;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/sync", tag = "sync", params(SyncQuery), responses((status = 200, description = "`{items: [{cursor, event}], next_cursor, has_more}`", body = Object), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `GET /v1/sync?since=`: every event for the caller after the cursor.
pub(super) async fn sync(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SyncQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let page = state
        .caas
        .sync(
            &p,
            Cursor(q.since.unwrap_or(0)),
            q.limit.unwrap_or(DEFAULT_LIMIT),
        )
        .await?;
    let items: Vec<_> = page
        .events
        .iter()
        .map(|e| json!({"cursor": e.cursor, "event": EventRef::new(&e.event, Some(e.cursor))}))
        .collect();
    Ok(Json(json!({
        "items": items,
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    })))
}

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    q: String,
    limit: Option<usize>,
}

#[utoipa::path(get, path = "/v1/search/messages", tag = "search", params(SearchQuery), responses((status = 200, description = "`{items: [{conversation_id, message_id, seq}]}`", body = Object), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `GET /v1/search/messages?q=`: only the caller's conversations.
pub(super) async fn search_messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let hits = state
        .caas
        .search_messages(&p, &q.q, q.limit.unwrap_or(20))
        .await?;
    let items = hits.into_iter().map(|h| json!({"conversation_id": h.conversation, "message_id": h.message_id, "seq": h.seq})).collect();
    Ok(Json(Page::<serde_json::Value> {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/v1/search/conversations", tag = "search", params(SearchQuery), responses((status = 200, description = "`{items: [conversation id]}`", body = Object), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `GET /v1/search/conversations?q=`.
pub(super) async fn search_conversations(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let items = state
        .caas
        .search_conversations(&p, &q.q, q.limit.unwrap_or(20))
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}

#[utoipa::path(get, path = "/v1/search/users", tag = "search", params(SearchQuery), responses((status = 200, description = "`{items: [user id]}`", body = Object), (status = 400, description = "invalid argument", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 401, description = "no or bad credential", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 403, description = "denied by a policy rule", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 404, description = "not found", body = crate::problem::Problem, content_type = "application/problem+json"), (status = 429, description = "rate limited", body = crate::problem::Problem, content_type = "application/problem+json")), security(("bearer" = [])))]
/// `GET /v1/search/users?q=`.
pub(super) async fn search_users(
    State(state): State<AppState>,
    Auth(p): Auth,
    ApiQuery(q): ApiQuery<SearchQuery>,
) -> Result<impl IntoResponse, ApiError> {
    let items = state
        .caas
        .search_users(&p, &q.q, q.limit.unwrap_or(20))
        .await?;
    Ok(Json(Page {
        items,
        next_cursor: None,
    }))
}
