//! Receipts: moving the caller's watermark, and reading every member's.

use axum::Json;
use axum::extract::{Path, State};
use axum::response::IntoResponse;
use caas_core::ids::Seq;
use serde::Deserialize;

use super::{Page, id};
use crate::auth::Auth;
use crate::dispatch::dispatch;
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::requests::ReceiptsRequest;
use crate::ws::frames::ReadRequest;

#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct Read {
    seq: u64,
    #[serde(default)]
    delivered_only: bool,
}

#[utoipa::path(post, path = "/v1/conversations/{id}/read", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id")), request_body = Read, responses((status = 200, description = "the receipt after the call", body = caas_core::model::Receipt), crate::problem::Problems), security(("bearer" = [])))]
/// `POST /v1/conversations/{id}/read`: `{seq, delivered_only?}` moves the read
/// (or only the delivered) watermark forward; backwards changes nothing.
pub(super) async fn read(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
    Api(Json(body)): Api<Json<Read>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = ReadRequest {
        conversation_id: id(&c)?,
        seq: Seq(body.seq),
        delivered_only: body.delivered_only,
    };
    Ok(Json(dispatch(&state.caas, &p, request).await?))
}

#[utoipa::path(get, path = "/v1/conversations/{id}/receipts", tag = "messages", params(("id" = caas_core::ids::ConversationId, Path, description = "conversation id")), responses((status = 200, description = "`{items: [Receipt], next_cursor: null}`: every member's delivered and read watermarks", body = Object), crate::problem::Problems), security(("bearer" = [])))]
/// `GET /v1/conversations/{id}/receipts`: every member's receipt (members).
pub(super) async fn list(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(c)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = ReceiptsRequest {
        conversation_id: id(&c)?,
    };
    Ok(Json(Page::whole(dispatch(&state.caas, &p, request).await?)))
}
