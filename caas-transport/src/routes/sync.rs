use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use caas_core::ids::Cursor;
use serde::Deserialize;
use serde_json::json;

use crate::auth::Auth;
use crate::dispatch::{Sync, dispatch};
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::requests::DEFAULT_PAGE as DEFAULT_LIMIT;
use crate::ws::frames::{EventRef, SyncRequest};

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct SyncQuery {
    #[serde(default, deserialize_with = "super::position")]
    since: Option<u64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
}

#[utoipa::path(get, path = "/v1/sync", tag = "sync", params(SyncQuery), responses((status = 200, description = "`{items: [{cursor, event}], next_cursor, has_more}`", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/sync?since=&limit=`: every event for the caller after the cursor,
/// each as a WebSocket `event` frame shows it. A `limit` over the server's page
/// size is refused, as on every list.
pub(super) async fn sync(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<SyncQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let max_page = state.caas.config().max_page;
    // Refused over the page size, as on every list (a WebSocket `sync` is
    // served up to it instead: a catching-up client takes what it can).
    if q.limit
        .is_some_and(|l| l == 0 || usize::try_from(l).map_or(true, |l| l > max_page))
    {
        return Err(caas_core::Error::invalid("limit", format!("must be 1 to {max_page}")).into());
    }
    let request = SyncRequest {
        since: Some(Cursor(q.since.unwrap_or(0))),
        limit: Some(q.limit.unwrap_or(DEFAULT_LIMIT)),
    };
    let page = dispatch(&state.caas, &p, Sync { request, max_page }).await?;
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
