use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::IntoResponse;
use serde_json::json;

use crate::gateway::AppState;

#[utoipa::path(get, path = "/health/live", tag = "health", responses((status = 200, description = "alive")))]
/// Process up and serving.
pub(super) async fn live() -> impl IntoResponse {
    Json(json!({"status": "ok"}))
}

#[utoipa::path(get, path = "/health/ready", tag = "health", responses((status = 200, description = "ready"), (status = 503, description = "a store does not answer, or the node is draining")))]
/// Ready to serve traffic: the stores answer, and the node is not draining
/// (once shutdown begins, load balancers must stop sending it new clients).
pub(super) async fn ready(State(state): State<AppState>) -> impl IntoResponse {
    if state.ws.is_closing() {
        return (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"status": "draining"})),
        );
    }
    match state.caas.ready().await {
        Ok(()) => (StatusCode::OK, Json(json!({"status": "ready"}))),
        Err(e) => {
            tracing::warn!(error = %e, "not ready");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(json!({"status": "unavailable"})),
            )
        }
    }
}

#[utoipa::path(get, path = "/health", tag = "health", responses((status = 200, description = "ready"), (status = 503, description = "a store does not answer")))]
/// Summary of both.
pub(super) async fn health(state: State<AppState>) -> impl IntoResponse {
    ready(state).await
}
