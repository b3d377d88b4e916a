//! The tenant's audit log.

use axum::Json;
use axum::extract::{Query, State};
use axum::response::IntoResponse;
use serde::Deserialize;

use super::{DEFAULT_LIMIT, Page};
use crate::auth::Auth;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;

#[derive(Debug, Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
#[serde(deny_unknown_fields)]
pub(super) struct AuditQuery {
    #[serde(default, deserialize_with = "super::position")]
    after: Option<u64>,
    #[param(minimum = 1, maximum = 200)]
    limit: Option<usize>,
}

/// `GET /v1/audit` (tenant): the audit log, oldest first.
#[utoipa::path(get, path = "/v1/audit", tag = "compliance", security(("bearer" = [])), params(AuditQuery),
    responses((status = 200, description = "`{items: [AuditRecord], next_cursor}`", body = Object), crate::problem::Problems))]
pub(super) async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Query(q)): Api<Query<AuditQuery>>,
) -> Result<impl IntoResponse, ApiError> {
    let limit = q.limit.unwrap_or(DEFAULT_LIMIT);
    let items = state
        .caas
        .audit_log(&p, q.after.unwrap_or(0), limit)
        .await?;
    let next_cursor = (items.len() == limit)
        .then(|| items.last().map(|r| r.position.to_string()))
        .flatten();
    Ok(Json(Page { items, next_cursor }))
}

/// `GET /v1/audit/verify` (tenant): walks the whole audit log and checks its
/// hash chain; the first record edited, removed or moved in storage is named
/// in `broken_at` (still a 200: the check itself succeeded).
#[utoipa::path(get, path = "/v1/audit/verify", tag = "compliance", security(("bearer" = [])),
    responses((status = 200, description = "what the check found", body = caas_core::model::AuditVerification), crate::problem::Problems))]
pub(super) async fn verify(
    State(state): State<AppState>,
    Auth(p): Auth,
) -> Result<impl IntoResponse, ApiError> {
    Ok(Json(state.caas.verify_audit(&p).await?))
}
