//! Extractors whose rejections are `application/problem+json` like every other
//! error: [`Api`] wraps any axum extractor (`Path`, `Query`, `Json`) and turns
//! its rejection into an [`ApiError`]; [`OptionalJson`] is a JSON body that may
//! be empty.

use axum::extract::rejection::{BytesRejection, JsonRejection, PathRejection, QueryRejection};
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::StatusCode;
use axum::http::request::Parts;

use crate::problem::ApiError;

/// An axum extractor with problem+json rejections: `Api(Path(id)): Api<Path<String>>`.
/// Over the body limit is 413; malformed input, a wrong content type or JSON of
/// the wrong shape is 400.
#[derive(Debug)]
pub struct Api<E>(pub E);

impl<S, E> FromRequestParts<S> for Api<E>
where
    E: FromRequestParts<S>,
    E::Rejection: Into<ApiError>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        E::from_request_parts(parts, state)
            .await
            .map(Api)
            .map_err(Into::into)
    }
}

impl<S, E> FromRequest<S> for Api<E>
where
    E: FromRequest<S>,
    E::Rejection: Into<ApiError>,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        E::from_request(req, state)
            .await
            .map(Api)
            .map_err(Into::into)
    }
}

/// The problem of an axum rejection: its status decides 413 or 400, its text
/// says what was wrong.
fn rejected(status: StatusCode, text: String) -> ApiError {
    match status {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::too_large(text),
        _ => ApiError::invalid(text),
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        rejected(r.status(), r.body_text())
    }
}

impl From<PathRejection> for ApiError {
    fn from(r: PathRejection) -> Self {
        rejected(r.status(), r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        rejected(r.status(), r.body_text())
    }
}

impl From<BytesRejection> for ApiError {
    fn from(r: BytesRejection) -> Self {
        rejected(r.status(), r.body_text())
    }
}

/// An optional JSON body: `None` when the body is empty, otherwise as
/// `Api<Json<T>>`.
#[derive(Debug)]
pub struct OptionalJson<T>(pub Option<T>);

impl<T, S> FromRequest<S> for OptionalJson<T>
where
    T: serde::de::DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        let bytes = axum::body::Bytes::from_request(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        // `null` is an absent body too, as an optional request body's schema
        // allows it.
        serde_json::from_slice::<Option<T>>(&bytes)
            .map(OptionalJson)
            .map_err(|e| ApiError::invalid(format!("invalid JSON body: {e}")))
    }
}
