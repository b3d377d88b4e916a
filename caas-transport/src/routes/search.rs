//! Search, only over what the caller may read, a page at a time.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;
use serde_json::json;

use super::Page;
use crate::auth::Auth;
use crate::dispatch::{SearchConversations, SearchMessages, SearchUsers, dispatch};
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::requests::SearchRequest;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SearchQuery {
    /// The words; each must be a prefix of a word of a match.
    #[param(min_length = 1)]
    q: String,
    /// At most this many (20 when absent).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

impl From<SearchQuery> for SearchRequest {
    fn from(q: SearchQuery) -> Self {
        SearchRequest {
            q: q.q,
            limit: q.limit,
            cursor: q.cursor,
        }
    }
}

#[utoipa::path(get, path = "/v1/search/messages", tag = "search", params(SearchQuery), responses((status = 200, description = "`{items: [{conversation_id, message_id, seq}], next_cursor}`, highest seq first", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/search/messages?q=`: only the caller's conversations.
pub(super) async fn messages(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<SearchQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let page = dispatch(&state.caas, &p, SearchMessages(q.into())).await?;
    let items = page
        .items
        .into_iter()
        .map(|h| json!({"conversation_id": h.conversation, "message_id": h.message_id, "seq": h.seq}))
        .collect();
    Ok(Json(Page {
        items,
        next_cursor: page.next_cursor,
    }))
}

#[utoipa::path(get, path = "/v1/search/conversations", tag = "search", params(SearchQuery), responses((status = 200, description = "`{items: [conversation id], next_cursor}`, by id", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/search/conversations?q=`: the caller's conversations by name.
pub(super) async fn conversations(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<SearchQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let page = dispatch(&state.caas, &p, SearchConversations(q.into())).await?;
    Ok(Json(Page::from(page)))
}

#[utoipa::path(get, path = "/v1/search/users", tag = "search", params(SearchQuery), responses((status = 200, description = "`{items: [user id], next_cursor}`, by id", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/search/users?q=`: users of the caller's tenant by name or id.
pub(super) async fn users(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<SearchQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let page = dispatch(&state.caas, &p, SearchUsers(q.into())).await?;
    Ok(Json(Page::from(page)))
}
