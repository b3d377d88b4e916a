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

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncQuery {
    since: Option<u64>,
    limit: Option<usize>,
}

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
        .map(|e| json!({"cursor": e.cursor, "event": e.event}))
        .collect();
    Ok(Json(json!({
        "items": items,
        "next_cursor": page.next_cursor,
        "has_more": page.has_more,
    })))
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    q: String,
    limit: Option<usize>,
}

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
