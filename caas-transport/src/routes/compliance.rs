//! GDPR: a user's data export and erasure.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use caas_core::ids::UserId;
use caas_core::service::UserExport;
use serde_json::json;

use super::id;
use crate::auth::Auth;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;

/// `GET /v1/compliance/users/{user_id}/export` (tenant): everything the tenant
/// holds about the user as JSON lines, streamed as the stores are read. Each
/// line has a `kind` (`user`, `membership`, `receipt`, `device_keys`, `media`,
/// `message`, `reaction`); the last line is `{"kind":"end","items":N}`, or
/// `{"kind":"error",…}` when a store failed part-way, so a reader knows
/// whether it holds the whole export.
#[utoipa::path(get, path = "/v1/compliance/users/{user_id}/export", tag = "compliance",
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = [])),
    responses((status = 200, description = "JSON lines, one item each, ending with `{\"kind\":\"end\",\"items\":N}`", content_type = "application/x-ndjson", body = String),
        crate::problem::Problems))]
pub(super) async fn export(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(u)): Api<Path<String>>,
) -> Result<Response, ApiError> {
    let u: UserId = id(&u)?;
    // Refusals (who may, which user) are answered before the stream starts.
    let export = state.caas.export_user(&p, &u).await?;
    let lines = futures_util::stream::unfold(Some(export), |export| async move {
        let mut export = export?;
        let (value, more) = next_line(&mut export).await;
        let mut line =
            serde_json::to_vec(&value).unwrap_or_else(|_| b"{\"kind\":\"error\"}".to_vec());
        line.push(b'\n');
        Some((
            Ok::<_, Infallible>(Bytes::from(line)),
            more.then_some(export),
        ))
    });
    Ok((
        [(header::CONTENT_TYPE, "application/x-ndjson")],
        Body::from_stream(lines),
    )
        .into_response())
}

/// The next line of the export, and whether more follow it.
async fn next_line(export: &mut UserExport) -> (serde_json::Value, bool) {
    match export.next().await {
        Ok(Some(item)) => match serde_json::to_value(&item) {
            Ok(v) => (v, true),
            Err(e) => {
                tracing::error!(error = %e, "cannot encode an export item");
                (error_line(&ApiError::internal()), false)
            }
        },
        Ok(None) => (json!({"kind": "end", "items": export.items()}), false),
        Err(e) => {
            let e = ApiError::from(e);
            (error_line(&e), false)
        }
    }
}

fn error_line(e: &ApiError) -> serde_json::Value {
    json!({"kind": "error", "code": e.code(), "detail": e.detail()})
}

/// `DELETE /v1/compliance/users/{user_id}` (tenant): erases the user (GDPR
/// art. 17): their messages become tombstones (seqs kept) and leave the event
/// log and search, their reactions, memberships, uploads and device keys go,
/// and the profile becomes a tombstone that can no longer act or log in.
/// Audited; repeating it finishes an interrupted erasure.
#[utoipa::path(delete, path = "/v1/compliance/users/{user_id}", tag = "compliance",
    params(("user_id" = String, Path, description = "user id")), security(("bearer" = [])),
    responses((status = 200, description = "what was erased", body = caas_core::service::Erasure),
        crate::problem::Problems))]
pub(super) async fn erase(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(u)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let u: UserId = id(&u)?;
    Ok(axum::Json(state.caas.erase_user(&p, &u).await?))
}
