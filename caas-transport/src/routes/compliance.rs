//! GDPR: a user's data export and erasure.

use std::convert::Infallible;

use axum::body::{Body, Bytes};
use axum::extract::{Path, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use caas_core::ids::{ExportId, UserId};
use caas_core::service::{ExportItem, UserExport};
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
    params(("user_id" = caas_core::ids::UserId, Path, description = "user id")), security(("bearer" = [])),
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
        let (line, more) = next_line(&mut export).await;
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
async fn next_line(export: &mut UserExport) -> (Vec<u8>, bool) {
    match export
        .next()
        .await
        .and_then(|item| item.map(|i| i.to_line()).transpose())
    {
        Ok(Some(line)) => (line, true),
        Ok(None) => (ExportItem::end_line(export.items()), false),
        Err(e) => (error_line(&ApiError::from(e)), false),
    }
}

fn error_line(e: &ApiError) -> Vec<u8> {
    let mut line = json!({"kind": "error", "code": e.code(), "detail": e.detail()}).to_string();
    line.push('\n');
    line.into_bytes()
}

/// `DELETE /v1/compliance/users/{user_id}` (tenant): erases the user (GDPR
/// art. 17): their messages become tombstones (seqs kept) and leave the event
/// log and search, their reactions, memberships, uploads and device keys go,
/// and the profile becomes a tombstone that can no longer act or log in.
/// Audited; repeating it finishes an interrupted erasure.
#[utoipa::path(delete, path = "/v1/compliance/users/{user_id}", tag = "compliance",
    params(("user_id" = caas_core::ids::UserId, Path, description = "user id")), security(("bearer" = [])),
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

/// `POST /v1/compliance/users/{user_id}/exports` (tenant): starts the same
/// export as a job, for exports too large for one request. Answers 202 with
/// the job at once; follow it at `GET /v1/compliance/exports/{export_id}` and
/// download it from `…/download` once `complete`. At most 2 run per tenant
/// (`conflict` beyond); a complete one stays downloadable for an hour. Jobs
/// live on the node that runs them and end with it. Audited.
#[utoipa::path(post, path = "/v1/compliance/users/{user_id}/exports", tag = "compliance",
    params(("user_id" = caas_core::ids::UserId, Path, description = "user id")), security(("bearer" = [])),
    responses((status = 202, description = "the job, running", body = caas_core::service::ExportJob),
        crate::problem::Problems))]
pub(super) async fn start_export(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(u)): Api<Path<String>>,
) -> Result<Response, ApiError> {
    let u: UserId = id(&u)?;
    let (job, run) = state.caas.start_export(&p, &u).await?;
    tokio::spawn(run.run());
    let location = format!("/v1/compliance/exports/{}", job.export_id);
    Ok((
        StatusCode::ACCEPTED,
        [(header::LOCATION, location)],
        axum::Json(job),
    )
        .into_response())
}

/// `GET /v1/compliance/exports/{export_id}` (tenant): the job's status and
/// progress (`items`, `bytes`, `conversations_done` of `conversations_total`).
#[utoipa::path(get, path = "/v1/compliance/exports/{export_id}", tag = "compliance",
    params(("export_id" = caas_core::ids::ExportId, Path, description = "export job id")), security(("bearer" = [])),
    responses((status = 200, description = "the job", body = caas_core::service::ExportJob),
        crate::problem::Problems))]
pub(super) async fn export_job(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(e)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let e: ExportId = id(&e)?;
    Ok(axum::Json(state.caas.export_job(&p, &e).await?))
}

/// Bytes read from an export's spool per chunk of the download.
const DOWNLOAD_CHUNK: usize = 64 * 1024;

/// `GET /v1/compliance/exports/{export_id}/download` (tenant): a complete
/// export's JSON lines, as the streamed export gives them and ending with
/// `{"kind":"end","items":N}`; `conflict` while it runs or if it failed.
/// Audited.
#[utoipa::path(get, path = "/v1/compliance/exports/{export_id}/download", tag = "compliance",
    params(("export_id" = caas_core::ids::ExportId, Path, description = "export job id")), security(("bearer" = [])),
    responses((status = 200, description = "JSON lines, one item each, ending with `{\"kind\":\"end\",\"items\":N}`", content_type = "application/x-ndjson", body = String),
        crate::problem::Problems))]
pub(super) async fn download_export(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(e)): Api<Path<String>>,
) -> Result<Response, ApiError> {
    let e: ExportId = id(&e)?;
    let download = state.caas.download_export(&p, &e).await?;
    let len = download.len();
    let chunks = futures_util::stream::unfold(0u64, move |offset| {
        let download = download.clone();
        async move {
            if offset >= download.len() {
                return None;
            }
            let read =
                tokio::task::spawn_blocking(move || download.read_at(offset, DOWNLOAD_CHUNK)).await;
            match read {
                Ok(Ok(bytes)) if !bytes.is_empty() => {
                    let next = offset + bytes.len() as u64;
                    Some((Ok(Bytes::from(bytes)), next))
                }
                // The length was announced: a short body tells the client it
                // did not get everything.
                Ok(Ok(_)) => None,
                Ok(Err(e)) => Some((Err(std::io::Error::other(e.to_string())), u64::MAX)),
                Err(e) => Some((Err(std::io::Error::other(e.to_string())), u64::MAX)),
            }
        }
    });
    Ok((
        [
            (header::CONTENT_TYPE, "application/x-ndjson".to_owned()),
            (header::CONTENT_LENGTH, len.to_string()),
        ],
        Body::from_stream(chunks),
    )
        .into_response())
}

/// `DELETE /v1/compliance/exports/{export_id}` (tenant): stops a running
/// export or drops a complete one.
#[utoipa::path(delete, path = "/v1/compliance/exports/{export_id}", tag = "compliance",
    params(("export_id" = caas_core::ids::ExportId, Path, description = "export job id")), security(("bearer" = [])),
    responses((status = 204, description = "deleted"), crate::problem::Problems))]
pub(super) async fn delete_export(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(e)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let e: ExportId = id(&e)?;
    state.caas.delete_export(&p, &e).await?;
    Ok(StatusCode::NO_CONTENT)
}
