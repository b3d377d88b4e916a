//! The tenant's usage meters.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

use crate::auth::Auth;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct UsageQuery {
    /// The first day, `YYYY-MM-DD` (UTC); the first of `to`'s month by default.
    #[param(format = Date)]
    from: Option<String>,
    /// The last day, included; today by default. At most 366 days after `from`.
    #[param(format = Date)]
    to: Option<String>,
}

/// `GET /v1/usage` (tenant): the meters summed over the range, each day's
/// meters, and the users active in each month the range touches.
#[utoipa::path(get, path = "/v1/usage", tag = "compliance", security(("bearer" = [])), params(UsageQuery),
    responses((status = 200, description = "the tenant's usage", body = caas_core::service::UsageReport), crate::problem::Problems))]
pub(super) async fn usage(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<UsageQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(
        state
            .caas
            .usage(&p, q.from.as_deref(), q.to.as_deref())
            .await?,
    ))
}
