//! Presence lookups.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use caas_core::ids::UserId;
use serde::Deserialize;

use super::{Page, id};
use crate::auth::Auth;
use crate::dispatch::dispatch;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::requests::PresenceQuery;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct Users {
    /// Comma-separated user ids (at most 200).
    users: String,
}

#[utoipa::path(get, path = "/v1/presence", tag = "presence", params(Users), responses((status = 200, description = "`{items: [Presence], next_cursor: null}`: each user's best status over their devices and when they were last seen", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/presence?users=alice,bob`: the presence of users of the caller's
/// tenant.
pub(super) async fn lookup(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<Users>>,
) -> Result<impl IntoResponse, ApiError> {
    let users = q
        .users
        .split(',')
        .filter(|u| !u.is_empty())
        .map(id::<UserId>)
        .collect::<Result<Vec<_>, _>>()?;
    let request = PresenceQuery { users };
    Ok(Json(Page::whole(dispatch(&state.caas, &p, request).await?)))
}
