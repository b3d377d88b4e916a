//! Media: announcing, completing, downloading and deleting uploads, and the
//! upload and download URLs this server serves itself (stores without their own
//! URL endpoint, such as the local filesystem).

use axum::Json;
use axum::body::Body;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use caas_core::ids::{BlobId, ConversationId};
use serde::Deserialize;

use crate::auth::Auth;
use crate::dispatch::{CompleteMedia, DeleteMedia, MediaUrl, dispatch};
use crate::extract::Api;
use crate::gateway::AppState;
use crate::problem::ApiError;
use crate::requests::{MediaRequest, MediaUploadRequest};
use crate::ws::frames::{DownloadResult, UploadResult};

/// The body of `POST /v1/media/uploads`.
#[derive(Debug, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct NewUpload {
    /// The conversation it is for (the caller must be a member).
    #[schema(value_type = String)]
    conversation_id: ConversationId,
    /// Its MIME type, e.g. `image/png`.
    #[schema(min_length = 1, max_length = 128)]
    content_type: String,
    /// Its exact size in bytes.
    size: u64,
    /// Its hex SHA-256; when given, completion checks the bytes against it.
    sha256: Option<String>,
    /// A file name.
    #[schema(min_length = 1)]
    name: Option<String>,
}

/// Makes a URL this server serves (a path) absolute, with the scheme and host
/// the request came to (a proxy's `X-Forwarded-Proto` / `X-Forwarded-Host`
/// win: the URL is for the caller, who reached us through it).
pub(crate) fn absolute(url: String, headers: &HeaderMap) -> String {
    if !url.starts_with('/') {
        return url;
    }
    let get = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let scheme = match get("x-forwarded-proto") {
        Some("https") => "https",
        _ => "http",
    };
    match get("x-forwarded-host").or_else(|| get("host")) {
        Some(host) if !host.is_empty() && !host.contains(['/', ' ', '@']) => {
            format!("{scheme}://{host}{url}")
        }
        _ => url,
    }
}

pub(crate) fn ticket(t: caas_core::service::UploadTicket, headers: &HeaderMap) -> UploadResult {
    UploadResult {
        blob_id: t.media.id,
        upload_url: absolute(t.upload_url, headers),
        upload_headers: t.headers.into_iter().collect(),
        expires_at: t.media.expires_at,
    }
}

pub(crate) fn download(d: caas_core::service::DownloadUrl, headers: &HeaderMap) -> DownloadResult {
    DownloadResult {
        url: absolute(d.url, headers),
        expires_at: d.expires_at,
    }
}

fn blob(raw: &str) -> Result<BlobId, ApiError> {
    BlobId::parse(raw)
        .map_err(|e| ApiError::from(caas_core::Error::invalid("blob_id", e.to_string())))
}

#[utoipa::path(post, path = "/v1/media/uploads", tag = "media", request_body = NewUpload,
    responses((status = 201, description = "the pending upload and where to PUT its bytes", body = UploadResult), crate::problem::Problems),
    security(("bearer" = [])))]
/// `POST /v1/media/uploads` (members): announces an upload; PUT the bytes to
/// `upload_url` with `upload_headers`, then complete it.
pub(super) async fn upload(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    Api(Json(body)): Api<Json<NewUpload>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = MediaUploadRequest {
        conversation_id: body.conversation_id,
        content_type: body.content_type,
        size: body.size,
        sha256: body.sha256,
        name: body.name,
    };
    let t = dispatch(&state.caas, &p, request).await?;
    Ok((StatusCode::CREATED, Json(ticket(t, &headers))))
}

#[utoipa::path(post, path = "/v1/media/{blob_id}/complete", tag = "media",
    params(("blob_id" = caas_core::ids::BlobId, Path, description = "the upload")),
    responses((status = 200, description = "the completed upload", body = caas_core::model::Media), crate::problem::Problems),
    security(("bearer" = [])))]
/// `POST /v1/media/{blob_id}/complete` (the uploader): checks the bytes that
/// arrived against the announcement and makes the upload usable.
pub(super) async fn complete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(b)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = CompleteMedia(MediaRequest { blob_id: blob(&b)? });
    Ok(Json(dispatch(&state.caas, &p, request).await?))
}

#[utoipa::path(get, path = "/v1/media/{blob_id}/url", tag = "media",
    params(("blob_id" = caas_core::ids::BlobId, Path, description = "the upload")),
    responses((status = 200, description = "a download URL", body = DownloadResult), crate::problem::Problems),
    security(("bearer" = [])))]
/// `GET /v1/media/{blob_id}/url` (the uploader, or a member of a conversation
/// it was shared in): a download URL.
pub(super) async fn url(
    State(state): State<AppState>,
    Auth(p): Auth,
    headers: HeaderMap,
    Api(Path(b)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = MediaUrl(MediaRequest { blob_id: blob(&b)? });
    let d = dispatch(&state.caas, &p, request).await?;
    Ok(Json(download(d, &headers)))
}

#[utoipa::path(delete, path = "/v1/media/{blob_id}", tag = "media",
    params(("blob_id" = caas_core::ids::BlobId, Path, description = "the upload")),
    responses((status = 204, description = "deleted"), crate::problem::Problems),
    security(("bearer" = [])))]
/// `DELETE /v1/media/{blob_id}` (the uploader): deletes the upload and its bytes.
pub(super) async fn delete(
    State(state): State<AppState>,
    Auth(p): Auth,
    Api(Path(b)): Api<Path<String>>,
) -> Result<impl IntoResponse, ApiError> {
    let request = DeleteMedia(MediaRequest { blob_id: blob(&b)? });
    dispatch(&state.caas, &p, request).await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(put, path = "/v1/blobs/{tenant}/{blob_id}", tag = "media",
    params(("tenant" = caas_core::ids::TenantId, Path, description = "the tenant"), ("blob_id" = caas_core::ids::BlobId, Path, description = "the upload"),
        ("expires" = u64, Query, description = "from the signed URL"), ("signature" = String, Query, description = "from the signed URL")),
    request_body(content = Vec<u8>, content_type = "application/octet-stream", description = "exactly the announced bytes, with the announced Content-Type"),
    responses((status = 204, description = "stored; now complete the upload"), crate::problem::Problems))]
/// `PUT` to an upload URL this server signed: the signature is the credential.
/// The URL, the upload and the type are checked before the body is read, and
/// no more than the announced size is read.
pub(super) async fn put_bytes(
    State(state): State<AppState>,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Result<impl IntoResponse, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok());
    let (path, query) = (uri.path(), uri.query().unwrap_or(""));
    let size = state.caas.upload_target(path, query, content_type).await?;
    let limit = usize::try_from(size).unwrap_or(usize::MAX);
    let bytes = axum::body::to_bytes(body, limit).await.map_err(|_| {
        ApiError::from(caas_core::Error::PayloadTooLarge {
            field: "body".into(),
            size: limit.saturating_add(1),
            limit,
        })
    })?;
    state
        .caas
        .put_by_url(path, query, content_type, Vec::from(bytes))
        .await?;
    Ok(StatusCode::NO_CONTENT)
}

#[utoipa::path(get, path = "/v1/blobs/{tenant}/{blob_id}", tag = "media",
    params(("tenant" = caas_core::ids::TenantId, Path, description = "the tenant"), ("blob_id" = caas_core::ids::BlobId, Path, description = "the upload"),
        ("expires" = u64, Query, description = "from the signed URL"), ("signature" = String, Query, description = "from the signed URL")),
    responses((status = 200, description = "the bytes, with their content type", content_type = "application/octet-stream"), crate::problem::Problems))]
/// `GET` of a download URL this server signed: the signature is the credential.
pub(super) async fn get_bytes(
    State(state): State<AppState>,
    uri: Uri,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let (meta, bytes) = state
        .caas
        .get_by_url(uri.path(), query.as_deref().unwrap_or(""))
        .await?;
    let content_type = HeaderValue::from_str(&meta.content_type)
        .unwrap_or(HeaderValue::from_static("application/octet-stream"));
    let etag = HeaderValue::from_str(&format!("\"{}\"", meta.sha256))
        .unwrap_or(HeaderValue::from_static("\"\""));
    // Bytes from users, served from the API's own origin: never sniffed, never
    // run as a page (an uploaded HTML or SVG file stays inert), not shared
    // by caches.
    Ok((
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ),
            (
                header::CONTENT_SECURITY_POLICY,
                HeaderValue::from_static("default-src 'none'; sandbox"),
            ),
            (
                header::CACHE_CONTROL,
                HeaderValue::from_static("private, max-age=300"),
            ),
            (header::ETAG, etag),
        ],
        bytes,
    )
        .into_response())
}
